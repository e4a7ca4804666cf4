//! jidstore against SQLite on the same data, machine and run: `cargo bench --bench compare`
//! prints a table of medians and jidstore/SQLite ratios.
//!
//! Sizes come from `JIDSTORE_COMPARE_SIZES` (default `10000,100000`), runs per size from
//! `JIDSTORE_COMPARE_RUNS` (default 3). Each phase (ingest, queries, export, unregister) of
//! each engine runs in a child process of this binary, so its peak RSS (`VmHWM`) is its own.
//!
//! The SQLite baseline is the schema an operator of Prosody or ejabberd has: one archive
//! table keyed by (owner, sort id), an index on (owner, with, time), WAL with
//! `synchronous=NORMAL`. Both engines ingest in the same chunks (one `sled::Batch` per tree
//! vs one SQLite transaction per chunk), neither syncs per message, and both make the data
//! durable once at the end (`Store::flush` vs a WAL checkpoint).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::indexing_slicing,
    clippy::too_many_lines,
    clippy::many_single_char_names,
    reason = "a benchmark: aborts on setup errors, prints rounded figures, one function per phase"
)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use jidstore::ext::mam::{Direction, PageFrom, PmMessage, Query};
use jidstore::gdpr::{self, ExportOptions};
use jidstore::{BareJid, Config, Jid, Store, Timestamp};
use rusqlite::{Connection, params};

const CHUNK: u64 = 10_000;
const OTHERS: u64 = 4;
const PEERS: u64 = 10;
const PAGE: usize = 50;
const QUERY_REPS: usize = 200;
const T0: i64 = 1_600_000_000;
const BODY: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation.";

/// Message `i` of `user`: ~300-byte stanza, ten peers with three resources each.
fn message(user: &str, i: u64) -> PmMessage {
    let peer = Jid::parse(&format!("peer{}@localhost/r{}", i % PEERS, i % 3)).unwrap();
    let me = Jid::parse(&format!("{user}@localhost/phone")).unwrap();
    let incoming = i.is_multiple_of(2);
    let (from, to) = if incoming { (peer, me) } else { (me, peer) };
    PmMessage {
        id: None,
        timestamp: Timestamp::from_secs(T0 + i as i64),
        stanza: format!(
            "<message xmlns='jabber:client' from='{from}' to='{to}' id='{i:016x}' type='chat'><body>{BODY}</body></message>"
        ),
        from,
        to,
        direction: if incoming {
            Direction::Incoming
        } else {
            Direction::Outgoing
        },
        origin_id: None,
    }
}

/// The ingest schedule: for every chunk of alice's archive, a proportional chunk of each
/// other user's (each other user holds n/8 messages).
fn schedule(n: u64) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    let other_chunk = CHUNK / 8;
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        out.push(("alice".to_owned(), start, len));
        for u in 0..OTHERS {
            out.push((
                format!("user{u}"),
                start / 8,
                other_chunk.min(len / 8).max(1),
            ));
        }
        start += len;
    }
    out
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

fn time_reps(mut f: impl FnMut()) -> (f64, f64) {
    f();
    let mut v = Vec::with_capacity(QUERY_REPS);
    for _ in 0..QUERY_REPS {
        let t = Instant::now();
        f();
        v.push(t.elapsed());
    }
    percentiles(v)
}

// ---------------------------------------------------------------- jidstore phases

fn sled_open(dir: &Path) -> Store {
    Config::new(dir.join("sled"))
        .scram_iterations(4096)
        .open()
        .unwrap()
}

fn alice() -> BareJid {
    BareJid::parse("alice@localhost").unwrap()
}

fn sled_phase(phase: &str, dir: &Path, n: u64, out: &mut Vec<(String, f64)>) {
    let store = sled_open(dir);
    match phase {
        "ingest" => {
            let users: Vec<String> = std::iter::once("alice".to_owned())
                .chain((0..OTHERS).map(|u| format!("user{u}")))
                .collect();
            for u in &users {
                let j = BareJid::from_parts(u, "localhost").unwrap();
                store.accounts().create(&j, "pw").unwrap();
            }
            let t = Instant::now();
            let mut total = 0;
            for (u, start, len) in schedule(n) {
                let j = BareJid::from_parts(&u, "localhost").unwrap();
                total += store
                    .mam()
                    .append_bulk(&j, (start..start + len).map(|i| message(&u, i)))
                    .unwrap();
            }
            store.flush().unwrap();
            out.push((
                "ingest_msg_per_s".into(),
                total as f64 / t.elapsed().as_secs_f64(),
            ));
            drop(store);
            out.push((
                "disk_mb_after_ingest".into(),
                dir_size(&dir.join("sled")) as f64 / 1e6,
            ));
        }
        "live" => {
            let j = BareJid::parse("live@localhost").unwrap();
            store.accounts().create(&j, "pw").unwrap();
            let k = 20_000;
            let t = Instant::now();
            for i in 0..k {
                store.mam().append(&j, &message("live", i)).unwrap();
            }
            store.flush().unwrap();
            out.push((
                "live_append_msg_per_s".into(),
                k as f64 / t.elapsed().as_secs_f64(),
            ));
        }
        "query" => {
            let a = alice();
            let mam = store.mam();
            let page = |q: Query| {
                let p = mam.query(&a, &q).unwrap();
                assert_eq!(p.messages.len(), PAGE);
            };
            let q = |page: PageFrom| Query {
                max: Some(PAGE),
                page,
                ..Query::default()
            };
            let at = |i: u64| Timestamp::from_secs(T0 + i as i64);
            let mid = mam
                .query(
                    &a,
                    &Query {
                        start: Some(at(n / 2)),
                        max: Some(1),
                        ..Query::default()
                    },
                )
                .unwrap()
                .first
                .unwrap();
            let ops: Vec<(&str, Query)> = vec![
                ("first", q(PageFrom::First)),
                ("last", q(PageFrom::Before(None))),
                ("after_mid", q(PageFrom::After(mid))),
                (
                    "with",
                    Query {
                        with: Some(Jid::parse("peer3@localhost").unwrap()),
                        ..q(PageFrom::Before(None))
                    },
                ),
                (
                    "time_range",
                    Query {
                        start: Some(at(n * 2 / 5)),
                        end: Some(at(n * 3 / 5)),
                        ..q(PageFrom::First)
                    },
                ),
            ];
            for (name, query) in ops {
                let (p50, p99) = time_reps(|| page(query.clone()));
                out.push((format!("page_{name}_p50_us"), p50));
                out.push((format!("page_{name}_p99_us"), p99));
            }
        }
        "export" => {
            let t = Instant::now();
            let path = dir.join("alice-sled.zip");
            // CSVs only, as the SQLite side writes: the readable index.html is extra work.
            let csv_only = ExportOptions::default().page(false);
            gdpr::retrieve_to_path(&store, &alice(), &path, &csv_only).unwrap();
            out.push(("export_s".into(), t.elapsed().as_secs_f64()));
            out.push(("export_zip_mb".into(), dir_size_file(&path) / 1e6));
        }
        "unregister" => {
            let t = Instant::now();
            gdpr::commit(&store, &alice()).unwrap();
            out.push((
                "unregister_commit_ms".into(),
                t.elapsed().as_secs_f64() * 1e3,
            ));
            let swept = gdpr::finish_sweeps(&store).unwrap();
            assert_eq!(swept, n);
            out.push((
                "unregister_complete_ms".into(),
                t.elapsed().as_secs_f64() * 1e3,
            ));
            drop(store);
            out.push((
                "disk_mb_after_unregister".into(),
                dir_size(&dir.join("sled")) as f64 / 1e6,
            ));
        }
        other => panic!("unknown phase {other}"),
    }
}

fn dir_size_file(p: &Path) -> f64 {
    std::fs::metadata(p).map_or(0.0, |m| m.len() as f64)
}

// ---------------------------------------------------------------- SQLite phases

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS archive (
    owner TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    with_bare TEXT NOT NULL,
    with_full TEXT NOT NULL,
    from_jid TEXT NOT NULL,
    to_jid TEXT NOT NULL,
    direction TEXT NOT NULL,
    origin_id TEXT,
    stanza TEXT NOT NULL,
    PRIMARY KEY (owner, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS archive_with ON archive (owner, with_bare, ts);
";

fn sqlite_open(dir: &Path) -> Connection {
    let c = Connection::open(dir.join("archive.sqlite")).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
        .unwrap();
    c.execute_batch(SCHEMA).unwrap();
    c
}

fn sqlite_size(dir: &Path) -> f64 {
    ["archive.sqlite", "archive.sqlite-wal", "archive.sqlite-shm"]
        .iter()
        .map(|f| dir_size_file(&dir.join(f)))
        .sum::<f64>()
        / 1e6
}

/// Row of a page, materialised as jidstore materialises `ArchivedMessage`.
#[expect(
    dead_code,
    reason = "fields are read to materialise rows like the other engine"
)]
struct Row(i64, i64, String, String, String);

fn sqlite_page(c: &Connection, sql: &str, p: impl rusqlite::Params) -> Vec<Row> {
    let mut st = c.prepare_cached(sql).unwrap();
    let rows = st
        .query_map(p, |r| {
            Ok(Row(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap();
    let mut v: Vec<Row> = rows.map(Result::unwrap).collect();
    v.truncate(PAGE);
    v
}

fn sqlite_phase(phase: &str, dir: &Path, n: u64, out: &mut Vec<(String, f64)>) {
    let mut c = sqlite_open(dir);
    let cols = "seq, ts, from_jid, to_jid, stanza";
    match phase {
        "ingest" => {
            let t = Instant::now();
            let mut seq = 0i64;
            let mut total = 0u64;
            for (u, start, len) in schedule(n) {
                let owner = format!("{u}@localhost");
                let tx = c.transaction().unwrap();
                {
                    let mut st = tx
                        .prepare_cached(
                            "INSERT INTO archive VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                        )
                        .unwrap();
                    for i in start..start + len {
                        let m = message(&u, i);
                        let with = match m.direction {
                            Direction::Incoming => &m.from,
                            Direction::Outgoing => &m.to,
                        };
                        seq += 1;
                        st.execute(params![
                            owner,
                            seq,
                            m.timestamp.as_micros(),
                            with.to_bare().as_str(),
                            with.as_str(),
                            m.from.as_str(),
                            m.to.as_str(),
                            m.direction.as_str(),
                            m.origin_id,
                            m.stanza
                        ])
                        .unwrap();
                        total += 1;
                    }
                }
                tx.commit().unwrap();
            }
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
            out.push((
                "ingest_msg_per_s".into(),
                total as f64 / t.elapsed().as_secs_f64(),
            ));
            drop(c);
            out.push(("disk_mb_after_ingest".into(), sqlite_size(dir)));
        }
        "live" => {
            let k = 20_000u64;
            let t = Instant::now();
            for i in 0..k {
                let m = message("live", i);
                let tx = c.transaction().unwrap();
                tx.prepare_cached(
                    "INSERT INTO archive VALUES ('live@localhost', ?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, ?8)",
                )
                .unwrap()
                .execute(params![
                    i as i64 + (1 << 40),
                    m.timestamp.as_micros(),
                    m.to.to_bare().as_str(),
                    m.to.as_str(),
                    m.from.as_str(),
                    m.to.as_str(),
                    m.direction.as_str(),
                    m.stanza
                ])
                .unwrap();
                tx.commit().unwrap();
            }
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
            out.push((
                "live_append_msg_per_s".into(),
                k as f64 / t.elapsed().as_secs_f64(),
            ));
        }
        "query" => {
            let o = "alice@localhost";
            let at = |i: u64| (T0 + i as i64) * 1_000_000;
            let mid: i64 = c
                .query_row(
                    "SELECT seq FROM archive WHERE owner = ?1 AND ts >= ?2 ORDER BY seq LIMIT 1",
                    params![o, at(n / 2)],
                    |r| r.get(0),
                )
                .unwrap();
            let limit = PAGE as i64 + 1;
            let mut run = |name: &str, f: &mut dyn FnMut() -> Vec<Row>| {
                let (p50, p99) = time_reps(|| assert_eq!(f().len(), PAGE));
                out.push((format!("page_{name}_p50_us"), p50));
                out.push((format!("page_{name}_p99_us"), p99));
            };
            run("first", &mut || {
                sqlite_page(
                    &c,
                    &format!("SELECT {cols} FROM archive WHERE owner = ?1 ORDER BY seq LIMIT ?2"),
                    params![o, limit],
                )
            });
            run("last", &mut || {
                sqlite_page(
                    &c,
                    &format!(
                        "SELECT {cols} FROM archive WHERE owner = ?1 ORDER BY seq DESC LIMIT ?2"
                    ),
                    params![o, limit],
                )
            });
            run("after_mid", &mut || {
                sqlite_page(
                    &c,
                    &format!(
                        "SELECT {cols} FROM archive WHERE owner = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
                    ),
                    params![o, mid, limit],
                )
            });
            run("with", &mut || {
                sqlite_page(
                    &c,
                    &format!(
                        "SELECT {cols} FROM archive WHERE owner = ?1 AND with_bare = ?2 ORDER BY seq DESC LIMIT ?3"
                    ),
                    params![o, "peer3@localhost", limit],
                )
            });
            run("time_range", &mut || {
                sqlite_page(
                    &c,
                    &format!(
                        "SELECT {cols} FROM archive WHERE owner = ?1 AND ts >= ?2 AND ts <= ?3 ORDER BY seq LIMIT ?4"
                    ),
                    params![o, at(n * 2 / 5), at(n * 3 / 5), limit],
                )
            });
        }
        "export" => {
            let t = Instant::now();
            let path = dir.join("alice-sqlite.zip");
            let file = std::fs::File::create(&path).unwrap();
            let mut zip = zip::ZipWriter::new(file);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .compression_level(Some(1));
            zip.start_file("mam_pm.csv", opts).unwrap();
            {
                let mut w = csv::Writer::from_writer(&mut zip);
                w.write_record(["id", "from", "message", "timestamp", "to", "direction"])
                    .unwrap();
                let mut st = c
                    .prepare(
                        "SELECT seq, from_jid, stanza, ts, to_jid, direction FROM archive WHERE owner = ?1 ORDER BY seq",
                    )
                    .unwrap();
                let mut rows = st.query(params!["alice@localhost"]).unwrap();
                while let Some(r) = rows.next().unwrap() {
                    let seq: i64 = r.get(0).unwrap();
                    let ts: i64 = r.get(3).unwrap();
                    w.write_record([
                        seq.to_string(),
                        r.get::<_, String>(1).unwrap(),
                        r.get::<_, String>(2).unwrap(),
                        Timestamp::from_micros(ts).to_rfc3339(),
                        r.get::<_, String>(4).unwrap(),
                        r.get::<_, String>(5).unwrap(),
                    ])
                    .unwrap();
                }
                w.flush().unwrap();
            }
            let mut f = zip.finish().unwrap();
            f.flush().unwrap();
            f.sync_all().unwrap();
            out.push(("export_s".into(), t.elapsed().as_secs_f64()));
            out.push(("export_zip_mb".into(), dir_size_file(&path) / 1e6));
        }
        "unregister" => {
            let t = Instant::now();
            let tx = c.transaction().unwrap();
            let k = tx
                .execute(
                    "DELETE FROM archive WHERE owner = ?1",
                    params!["alice@localhost"],
                )
                .unwrap();
            tx.commit().unwrap();
            assert_eq!(k as u64, n);
            let ms = t.elapsed().as_secs_f64() * 1e3;
            out.push(("unregister_commit_ms".into(), ms));
            out.push(("unregister_complete_ms".into(), ms));
            c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
            drop(c);
            out.push(("disk_mb_after_unregister".into(), sqlite_size(dir)));
        }
        other => panic!("unknown phase {other}"),
    }
}

// ---------------------------------------------------------------- driver

const PHASES: &[&str] = &["ingest", "live", "query", "export", "unregister"];

/// Runs one phase of one engine in a child process; returns its metrics.
fn child(engine: &str, phase: &str, dir: &Path, n: u64) -> Vec<(String, f64)> {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["__phase", engine, phase])
        .arg(dir)
        .arg(n.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{engine} {phase} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        f64::midpoint(v[m - 1], v[m])
    } else {
        v[m]
    }
}

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().expect("a number"))
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("__phase") {
        let (engine, phase) = (&args[2], &args[3]);
        let dir = PathBuf::from(&args[4]);
        let n: u64 = args[5].parse().unwrap();
        let mut out = Vec::new();
        match engine.as_str() {
            "jidstore" => sled_phase(phase, &dir, n, &mut out),
            _ => sqlite_phase(phase, &dir, n, &mut out),
        }
        out.push((format!("{phase}_peak_rss_mb"), peak_rss_kb() as f64 / 1e3));
        for (k, v) in out {
            print!("{k}={v} ");
        }
        println!();
        return;
    }
    let sizes = env_list("JIDSTORE_COMPARE_SIZES", "10000,100000");
    let runs = env_list("JIDSTORE_COMPARE_RUNS", "3")[0].max(1);
    println!(
        "jidstore vs SQLite (WAL, synchronous=NORMAL); medians of {runs} runs; ratio = jidstore/SQLite"
    );
    for n in sizes {
        let mut metrics: BTreeMap<(String, &str), Vec<f64>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        for run in 0..runs {
            eprintln!("size {n}: run {}/{runs}", run + 1);
            let tmp = tempfile::tempdir().unwrap();
            for phase in PHASES {
                for engine in ["jidstore", "sqlite"] {
                    for (k, v) in child(engine, phase, tmp.path(), n) {
                        if !order.contains(&k) {
                            order.push(k.clone());
                        }
                        metrics.entry((k, engine)).or_default().push(v);
                    }
                }
            }
        }
        println!();
        println!("## user with {n} messages (+{} for 4 other users)", n / 2);
        println!();
        println!("| metric | jidstore | SQLite | ratio |");
        println!("|---|---:|---:|---:|");
        for k in order {
            let j = metrics.get_mut(&(k.clone(), "jidstore")).map(|v| median(v));
            let s = metrics.get_mut(&(k.clone(), "sqlite")).map(|v| median(v));
            let fmt = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.2}"));
            let ratio = match (j, s) {
                (Some(j), Some(s)) if s > 0.0 => format!("{:.2}", j / s),
                _ => "-".to_owned(),
            };
            println!("| {k} | {} | {} | {ratio} |", fmt(j), fmt(s));
        }
    }
}
