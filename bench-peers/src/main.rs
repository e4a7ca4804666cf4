//! jidstore against its peers on the same data, machine and run (issue 18).
//!
//! Engines (labels as printed):
//! - `jidstore`: this crate through its public API (`Store`, `mam()`, `gdpr`).
//! - `ejabberd`: SQLite with ejabberd's `archive` table and indexes (`sql/lite.sql`) and the
//!   shape of ejabberd's MAM queries (the timestamp is the message id).
//! - `prosody`: SQLite with Prosody's `prosodyarchive` table and indexes (mod_storage_sql)
//!   and its `sqlite_tune = "normal"` pragmas.
//! - `sqlite`: the best-tuned SQLite we could write (integer owner ids, WITHOUT ROWID keyed
//!   by (owner, time id), a `with` index ending in the sort key, 8 KiB pages, 64 MiB cache).
//! - `rocksdb`: RocksDB with jidstore's keyspace layout (8-byte archive prefix, sequence
//!   suffix, a `with` keyspace), prefix iterators, `DeleteRange`, WAL synced on the same
//!   window as sled's flush.
//!
//! `bench-peers compare` runs every phase of every engine in a child process (its own peak
//! RSS) and prints medians over runs; `bench-peers growth` measures per-operation cost
//! against archive size. See README "Comparing with peers" and RESULTS.md.

#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::too_many_lines,
    clippy::missing_panics_doc
)]

mod data;
mod engines;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use data::{ALICE, USERS, alice_share};
use engines::{Factory, Q};

/// Every engine, in the order of the first run (later runs rotate it).
pub const ENGINES: &[&str] = &["jidstore", "ejabberd", "prosody", "sqlite", "rocksdb"];
const PHASES: &[&str] = &[
    "ingest",
    "live1",
    "live8",
    "query",
    "export",
    "erase",
    "erase_live",
];
const LIVE_MSGS: u64 = 20_000;
const REPS: usize = 200;
const COLD_USERS: usize = 200;
const PAGE: usize = 50;

/// Process CPU time (all threads), in seconds.
pub fn cpu_s() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Wall and CPU seconds of `f`.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (c, t) = (cpu_s(), Instant::now());
    let out = f();
    (out, t.elapsed().as_secs_f64(), cpu_s() - c)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1e3
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let Ok(m) = e.metadata() else { continue };
        n += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}

fn pct(mut v: Vec<Duration>, q: f64) -> f64 {
    v.sort();
    let i = ((v.len() - 1) as f64 * q).round() as usize;
    v.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

/// p50 and p99 (us) and CPU us per call of `f` over `REPS` calls after one warm-up.
fn reps(mut f: impl FnMut() -> usize) -> (f64, f64, f64) {
    assert!(f() > 0, "a query returned no rows");
    let mut v = Vec::with_capacity(REPS);
    let c = cpu_s();
    for _ in 0..REPS {
        let t = Instant::now();
        f();
        v.push(t.elapsed());
    }
    let cpu = (cpu_s() - c) / REPS as f64 * 1e6;
    (pct(v.clone(), 0.5), pct(v, 0.99), cpu)
}

type Out = Vec<(String, f64)>;

fn put(out: &mut Out, k: &str, v: f64) {
    out.push((k.to_owned(), v));
}

/// Deterministic user pick for the live and query phases.
fn pick_user(seed: u64) -> u32 {
    1 + (data::mix(seed ^ 0x5eed) % u64::from(USERS - 1)) as u32
}

/// Single-message appends from `writers` threads (`LIVE_MSGS` in all), with the engine's
/// background sync on the shared 500 ms window and a final sync inside the timer.
/// Index base of the messages a live phase appends: past the data set and apart per phase
/// and size, so ids and keys never collide with archived ones.
fn live_base(n: u64, phase: u64) -> u64 {
    (1 << 40) + n * 8 + phase * (1 << 32)
}

/// Sets the stop flag when dropped, also on a panic, so a background syncer always ends.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn live(f: &Factory, n: u64, writers: u64, out: &mut Out, name: &str) {
    let per = LIVE_MSGS / writers;
    let msgs: Vec<Vec<data::Gen>> = (0..writers)
        .map(|w| {
            (0..per)
                .map(|k| {
                    let i = live_base(n, writers) + w * per + k;
                    data::gen_for(i, pick_user(i))
                })
                .collect()
        })
        .collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let ((), wall, cpu) = timed(|| {
        std::thread::scope(|s| {
            let syncer = s.spawn(|| f.background_sync(&stop));
            let guard = StopOnDrop(&stop);
            let hs: Vec<_> = msgs
                .iter()
                .map(|batch| {
                    s.spawn(move || {
                        let mut h = f.connect();
                        for m in batch {
                            h.append(m);
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().expect("writer");
            }
            drop(guard);
            syncer.join().expect("syncer");
            f.connect().sync();
        });
    });
    put(
        out,
        &format!("{name}_msg_per_s"),
        (per * writers) as f64 / wall,
    );
    put(
        out,
        &format!("{name}_cpu_us_per_msg"),
        cpu / (per * writers) as f64 * 1e6,
    );
}

fn phase(engine: &str, phase: &str, dir: &Path, n: u64, out: &mut Out) {
    match phase {
        "ingest" => {
            let chunks = data::chunks(0, n);
            let f = Factory::open(engine, dir, true);
            f.prepare_users();
            let mut h = f.connect();
            let ((), wall, cpu) = timed(|| {
                for (u, msgs) in &chunks {
                    h.bulk(*u, msgs);
                }
                h.sync();
            });
            put(out, "ingest_msg_per_s", n as f64 / wall);
            put(out, "ingest_cpu_us_per_msg", cpu / n as f64 * 1e6);
            drop(h);
            drop(f);
            put(
                out,
                "disk_mb_after_ingest",
                dir_size(&dir.join(engine)) as f64 / 1e6,
            );
        }
        "live1" => live(&Factory::open(engine, dir, false), n, 1, out, "live1"),
        "live8" => live(&Factory::open(engine, dir, false), n, 8, out, "live8"),
        "query" => {
            let f = Factory::open(engine, dir, false);
            let mut h = f.connect();
            // Cold: the engine was just opened; each page is another user's newest page.
            let mut v = Vec::with_capacity(COLD_USERS);
            let c = cpu_s();
            for k in 0..COLD_USERS {
                let u = pick_user(k as u64 * 7919);
                let t = Instant::now();
                h.page(u, &Q::Last);
                v.push(t.elapsed());
            }
            put(
                out,
                "page_cold_users_cpu_us",
                (cpu_s() - c) / COLD_USERS as f64 * 1e6,
            );
            put(out, "page_cold_users_p50_us", pct(v.clone(), 0.5));
            put(out, "page_cold_users_p99_us", pct(v, 0.99));
            let a = alice_share(n);
            let mid = h.id_at(ALICE, data::alice_ts(a / 2));
            let qs = [
                ("first", Q::First),
                ("last", Q::Last),
                ("after_mid", Q::After(mid)),
                ("with", Q::With(data::peer_bare(3))),
                ("with_rare", Q::With(data::RARE.to_owned())),
                (
                    "time_range",
                    Q::Range(data::alice_ts(a * 2 / 5), data::alice_ts(a * 3 / 5)),
                ),
            ];
            for (name, q) in qs {
                put(out, &format!("page_{name}_rows"), h.page(ALICE, &q) as f64);
                let (p50, p99, cpu) = reps(|| h.page(ALICE, &q));
                put(out, &format!("page_{name}_p50_us"), p50);
                put(out, &format!("page_{name}_p99_us"), p99);
                put(out, &format!("page_{name}_cpu_us"), cpu);
            }
        }
        "export" => {
            let f = Factory::open(engine, dir, false);
            let path = dir.join(format!("{engine}-alice.zip"));
            let (rows, wall, cpu) = timed(|| {
                let rows = f.export(ALICE, &path);
                std::fs::File::open(&path)
                    .and_then(|f| f.sync_all())
                    .expect("sync zip");
                rows
            });
            assert_eq!(rows, alice_share(n), "{engine} exported {rows} rows");
            put(out, "export_s", wall);
            put(out, "export_cpu_s", cpu);
            put(
                out,
                "export_zip_mb",
                std::fs::metadata(&path).map_or(0.0, |m| m.len() as f64) / 1e6,
            );
        }
        "erase" => {
            let f = Factory::open(engine, dir, false);
            let mut h = f.connect();
            let c = cpu_s();
            let t = Instant::now();
            h.erase_commit(ALICE);
            put(out, "erase_commit_ms", t.elapsed().as_secs_f64() * 1e3);
            let removed = h.erase_complete(ALICE);
            h.sync();
            put(out, "erase_complete_ms", t.elapsed().as_secs_f64() * 1e3);
            put(out, "erase_cpu_ms", (cpu_s() - c) * 1e3);
            assert!(removed >= alice_share(n), "{engine} removed {removed}");
            drop(h);
            drop(f);
            put(
                out,
                "disk_mb_after_erase",
                dir_size(&dir.join(engine)) as f64 / 1e6,
            );
        }
        "erase_live" => {
            // 50 users erased one after the other (commit, completion, sync) while two writers
            // append single messages to other users.
            let f = Factory::open(engine, dir, false);
            let stop = std::sync::atomic::AtomicBool::new(false);
            let written = std::sync::atomic::AtomicU64::new(0);
            let victims: Vec<u32> = (0..50).map(|k| 1 + k * 97).collect();
            let mut lat = Vec::new();
            let t0 = Instant::now();
            std::thread::scope(|s| {
                let syncer = s.spawn(|| f.background_sync(&stop));
                let guard = StopOnDrop(&stop);
                let ws: Vec<_> = (0..2u64)
                    .map(|w| {
                        let (stop, written, f) = (&stop, &written, &f);
                        s.spawn(move || {
                            let mut h = f.connect();
                            let mut k = 0u64;
                            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                                let i = live_base(n, 20 + w) + k;
                                let u = 5000 + (data::mix(i) % 4999) as u32;
                                h.append(&data::gen_for(i, u));
                                written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                k += 1;
                            }
                        })
                    })
                    .collect();
                let mut h = f.connect();
                for u in &victims {
                    let t = Instant::now();
                    h.erase_commit(*u);
                    h.erase_complete(*u);
                    h.sync();
                    lat.push(t.elapsed());
                }
                drop(guard);
                for w in ws {
                    w.join().expect("writer");
                }
                syncer.join().expect("syncer");
            });
            let secs = t0.elapsed().as_secs_f64();
            put(out, "erase_live_p50_ms", pct(lat.clone(), 0.5) / 1e3);
            put(out, "erase_live_max_ms", pct(lat, 1.0) / 1e3);
            put(
                out,
                "erase_live_writers_msg_per_s",
                written.load(std::sync::atomic::Ordering::Relaxed) as f64 / secs,
            );
        }
        other => panic!("unknown phase {other}"),
    }
}

/// Growth: one engine, ingest up to each size in `sizes`; at each size the per-operation
/// costs. Data for each step is generated before its timer.
fn growth(engine: &str, dir: &Path, sizes: &[u64]) {
    let f = Factory::open(engine, dir, true);
    f.prepare_users();
    let mut at = 0u64;
    for &n in sizes {
        let chunks = data::chunks(at, n);
        let mut h = f.connect();
        let ((), wall, _) = timed(|| {
            for (u, msgs) in &chunks {
                h.bulk(*u, msgs);
            }
            h.sync();
        });
        drop(chunks);
        let ingest_us = wall / (n - at) as f64 * 1e6;
        at = n;
        // 1000 single appends to random users, then a sync, inside the timer.
        let live: Vec<data::Gen> = (0..1000u64)
            .map(|k| {
                let i = live_base(n, 30) + k;
                data::gen_for(i, pick_user(i))
            })
            .collect();
        let ((), wall, _) = timed(|| {
            for m in &live {
                h.append(m);
            }
            h.sync();
        });
        let append_us = wall / 1000.0 * 1e6;
        let mut v = Vec::new();
        for k in 0..200u64 {
            let u = pick_user(k * 31 + n);
            let t = Instant::now();
            h.page(u, &Q::Last);
            v.push(t.elapsed());
        }
        let cold = pct(v, 0.5);
        let (last, _, _) = reps(|| h.page(ALICE, &Q::Last));
        let (rare, _, _) = reps(|| h.page(ALICE, &Q::With(data::RARE.to_owned())));
        let a = alice_share(n);
        let (range, _, _) = reps(|| {
            h.page(
                ALICE,
                &Q::Range(data::alice_ts(a * 2 / 5), data::alice_ts(a * 3 / 5)),
            )
        });
        drop(h);
        let disk = dir_size(&dir.join(engine)) as f64 / 1e6;
        println!(
            "growth {engine} n={n} ingest_us_per_msg={ingest_us:.2} append_us={append_us:.1} \
             page_user_p50_us={cold:.1} page_last_p50_us={last:.1} with_rare_p50_us={rare:.1} \
             time_range_p50_us={range:.1} disk_mb={disk:.1} rss_mb={:.1}",
            peak_rss_mb()
        );
    }
}

fn child(engine: &str, phase: &str, dir: &Path, n: u64) -> Out {
    let exe = std::env::current_exe().expect("exe");
    let out = Command::new(exe)
        .args(["__phase", engine, phase])
        .arg(dir)
        .arg(n.to_string())
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{engine} {phase} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 0 && m > 0 {
        f64::midpoint(v[m - 1], v[m])
    } else {
        v[m]
    }
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn higher_is_better(k: &str) -> bool {
    k.ends_with("_per_s")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scratch = std::env::var("PEERS_DIR").map_or_else(|_| std::env::temp_dir(), PathBuf::from);
    match args.get(1).map(String::as_str) {
        Some("__phase") => {
            let (engine, ph) = (&args[2], &args[3]);
            let dir = PathBuf::from(&args[4]);
            let n: u64 = args[5].parse().expect("n");
            let mut out = Vec::new();
            phase(engine, ph, &dir, n, &mut out);
            if ph != "ingest" {
                put(&mut out, &format!("{ph}_peak_rss_mb"), peak_rss_mb());
            }
            for (k, v) in out {
                print!("{k}={v} ");
            }
            println!();
        }
        Some("growth") => {
            let sizes: Vec<u64> = env_list("PEERS_GROWTH", "10000,100000,1000000")
                .iter()
                .map(|s| s.parse().expect("a size"))
                .collect();
            println!("# growth; load average before: {}", loadavg());
            for engine in env_list("PEERS_ENGINES", &ENGINES.join(",")) {
                let tmp = tempfile::tempdir_in(&scratch).expect("tmp");
                let exe = std::env::current_exe().expect("exe");
                let st = Command::new(exe)
                    .args(["__growth", &engine])
                    .arg(tmp.path())
                    .arg(
                        sizes
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                    )
                    .status()
                    .expect("spawn");
                assert!(st.success(), "growth {engine} failed");
                println!("# load average after {engine}: {}", loadavg());
            }
        }
        Some("__growth") => {
            let sizes: Vec<u64> = args[4].split(',').map(|s| s.parse().expect("n")).collect();
            growth(&args[2], Path::new(&args[3]), &sizes);
        }
        _ => compare(&scratch),
    }
}

fn compare(scratch: &Path) {
    let sizes: Vec<u64> = env_list("PEERS_SIZES", "100000")
        .iter()
        .map(|s| s.parse().expect("a size"))
        .collect();
    let runs: usize = env_list("PEERS_RUNS", "5")[0].parse().expect("runs");
    let engines = env_list("PEERS_ENGINES", &ENGINES.join(","));
    println!(
        "# bench-peers compare; medians of {runs} runs; load average before: {}",
        loadavg()
    );
    for n in sizes {
        let mut metrics: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        for run in 0..runs {
            let mut es = engines.clone();
            let len = es.len();
            es.rotate_left(run % len);
            if run % 2 == 1 {
                es.reverse();
            }
            eprintln!(
                "n={n} run {}/{runs}: order {es:?}, load {}",
                run + 1,
                loadavg()
            );
            for engine in &es {
                let tmp = tempfile::tempdir_in(scratch).expect("tmp");
                for ph in PHASES {
                    for (k, v) in child(engine, ph, tmp.path(), n) {
                        if !order.contains(&k) {
                            order.push(k.clone());
                        }
                        metrics.entry((k, engine.clone())).or_default().push(v);
                    }
                }
            }
        }
        println!();
        println!(
            "## {n} messages over {USERS} users (alice: {}); load average after: {}",
            alice_share(n),
            loadavg()
        );
        println!();
        let mut head = "| metric |".to_owned();
        let mut sep = "|---|".to_owned();
        for e in &engines {
            head += &format!(" {e} |");
            sep += "---:|";
        }
        println!("{head} best SQLite | jidstore/best SQLite | jidstore/rocksdb |");
        println!("{sep}---|---:|---:|");
        for k in order {
            let mut row = format!("| {k} |");
            let mut val = BTreeMap::new();
            for e in &engines {
                let m = metrics.get_mut(&(k.clone(), e.clone())).map(|v| median(v));
                row += &m.map_or_else(|| " - |".to_owned(), |x| format!(" {x:.2} |"));
                if let Some(x) = m {
                    val.insert(e.as_str(), x);
                }
            }
            let best = ["ejabberd", "prosody", "sqlite"]
                .iter()
                .filter_map(|e| val.get(e).map(|x| (*e, *x)))
                .reduce(|a, b| {
                    let better = if higher_is_better(&k) {
                        b.1 > a.1
                    } else {
                        b.1 < a.1
                    };
                    if better { b } else { a }
                });
            let ratio = |o: Option<f64>| match (val.get("jidstore"), o) {
                (Some(j), Some(o)) if o > 0.0 => format!("{:.2}", j / o),
                _ => "-".to_owned(),
            };
            row += &format!(
                " {} | {} | {} |",
                best.map_or("-", |b| b.0),
                ratio(best.map(|b| b.1)),
                ratio(val.get("rocksdb").copied())
            );
            println!("{row}");
        }
    }
}
