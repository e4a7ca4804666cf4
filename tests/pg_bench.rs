//! The 1-1 archive on PostgreSQL: jidstore's PostgreSQL engine against MongooseIM's own
//! `mam_message` table (its `priv/pg.sql`: columns `id`, `user_id`, `from_jid`,
//! `remote_bare_jid`, `remote_resource`, `direction`, `message`, `search_body`, `origin_id`,
//! `is_groupchat`; primary key (`user_id`, `id`); indexes (`user_id`, `remote_bare_jid`,
//! `id`) and (`user_id`, `remote_bare_jid`,
//! `origin_id`)), in two databases of the same server (the test cluster of `tests/pg`,
//! default settings: `fsync` and `synchronous_commit` on), in the same run. Not a check: a
//! measurement, printed; BENCHMARKS.md has the figures and how they were run:
//!
//! ```sh
//! cargo test --release --test integration pg_mam_bench -- --ignored --nocapture
//! JIDSTORE_PG_BENCH_SIZES=1000000 JIDSTORE_PG_BENCH_RUNS=1 cargo test --release ...
//! ```
//!
//! Per size N (default `10000,100000`, `JIDSTORE_PG_BENCH_SIZES`) and run (default 3,
//! `JIDSTORE_PG_BENCH_RUNS`), on fresh databases, every message and row generated before its
//! timer starts:
//!
//! - **ingest**: alice's N messages in chunks of 10,000 and four other users' N/8 each, in
//!   the same chunks on both sides, one committed (durable) transaction per chunk: jidstore
//!   `mam().append_bulk`; MongooseIM rows by multi-row `INSERT`s of 30 rows (its async
//!   writer's default batch), prepared once;
//! - **live append**: 1,000 single messages to an empty archive, each its own committed
//!   transaction: `mam().append` against a one-row `INSERT` in autocommit;
//! - **pages** of 50 (51 rows read, no count), 200 repetitions after one warm-up, median:
//!   the newest page; the newest page `with` one bare peer (1/10 of the archive); the first
//!   page of a time range covering 40 % to 60 % of the archive (MongooseIM's ids carry the
//!   time, microseconds shifted left by 8, so its range is an id range on the primary key,
//!   as MongooseIM queries it);
//! - **erase** of alice: jidstore `gdpr::remove` (the commit and the whole sweep, so every
//!   row is gone when it returns) against MongooseIM's `DELETE FROM mam_message WHERE
//!   user_id = $1` in one transaction; both durable when they return;
//! - **size**: the tables with their indexes and TOAST after ingest.

use std::time::{Duration, Instant};

use jidstore::ext::mam::{Direction, PageFrom, PmMessage, Query};
use jidstore::{BareJid, Config, Jid, Store, Timestamp};

use crate::pg;

const CHUNK: u64 = 10_000;
const OTHERS: u64 = 4;
const PEERS: u64 = 10;
const PAGE: usize = 50;
const REPS: usize = 200;
const LIVE: u64 = 1000;
const MIM_BATCH: usize = 30;
const T0: i64 = 1_600_000_000;
const BODY: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation.";

/// MongooseIM's `mam_message` and its indexes, as `priv/pg.sql` creates them.
const MIM_DDL: &str = "
CREATE TYPE mam_direction AS ENUM('I','O');
CREATE TABLE mam_message(
  id BIGINT NOT NULL,
  user_id INT NOT NULL,
  from_jid varchar(250) NOT NULL,
  remote_bare_jid varchar(250) NOT NULL,
  remote_resource varchar(250) NOT NULL,
  direction mam_direction NOT NULL,
  message bytea NOT NULL,
  search_body text,
  origin_id varchar,
  is_groupchat boolean NOT NULL,
  PRIMARY KEY(user_id, id)
);
CREATE INDEX i_mam_message_username_jid_id
    ON mam_message USING BTREE (user_id, remote_bare_jid, id);
CREATE INDEX i_mam_message_username_jid_origin_id
    ON mam_message USING BTREE (user_id, remote_bare_jid, origin_id);
";

const MIM_COLUMNS: &str = "id, user_id, from_jid, remote_bare_jid, remote_resource, direction, \
     message, search_body, origin_id, is_groupchat";

/// Message `i` of `user`: a ~300-byte stanza, ten peers with three resources each, one
/// second apart.
fn message(user: &str, i: u64) -> PmMessage {
    let peer = Jid::parse(&format!("peer{}@localhost/r{}", i % PEERS, i % 3)).unwrap();
    let me = Jid::parse(&format!("{user}@localhost/phone")).unwrap();
    let incoming = i.is_multiple_of(2);
    let (from, to) = if incoming { (peer, me) } else { (me, peer) };
    PmMessage {
        id: None,
        timestamp: at(i),
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

fn at(i: u64) -> Timestamp {
    Timestamp::from_secs(T0 + i64::try_from(i).unwrap())
}

/// MongooseIM's id of a message archived at `ts`: microseconds shifted left by 8, the low
/// byte random (here the message number, which keeps ids unique).
fn mim_id(ts: Timestamp, i: u64) -> i64 {
    (ts.as_micros() << 8) | i64::try_from(i & 0xff).unwrap()
}

/// One `mam_message` row.
struct MimRow {
    id: i64,
    user_id: i32,
    from_jid: String,
    remote_bare_jid: String,
    remote_resource: String,
    direction: &'static str,
    message: Vec<u8>,
    search_body: String,
    origin_id: Option<String>,
    is_groupchat: bool,
}

impl MimRow {
    /// The row's values, in the column order of [`mim_insert_sql`].
    fn params(&self) -> [&(dyn postgres::types::ToSql + Sync); 10] {
        [
            &self.id,
            &self.user_id,
            &self.from_jid,
            &self.remote_bare_jid,
            &self.remote_resource,
            &self.direction,
            &self.message,
            &self.search_body,
            &self.origin_id,
            &self.is_groupchat,
        ]
    }
}

/// The row MongooseIM writes for `m`, archived by user `user_id` (the stanza bytes stand
/// in for its term-encoded packet, of about the same size).
fn mim_row(user_id: i32, m: &PmMessage, i: u64) -> MimRow {
    let remote = match m.direction {
        Direction::Incoming => &m.from,
        Direction::Outgoing => &m.to,
    };
    MimRow {
        id: mim_id(m.timestamp, i),
        user_id,
        from_jid: m.from.to_string(),
        remote_bare_jid: remote.to_bare().to_string(),
        remote_resource: remote.resource().unwrap_or_default().to_owned(),
        direction: match m.direction {
            Direction::Incoming => "I",
            Direction::Outgoing => "O",
        },
        message: m.stanza.as_bytes().to_vec(),
        search_body: BODY.to_lowercase(),
        origin_id: m.origin_id.clone(),
        is_groupchat: false,
    }
}

/// The ingest schedule: (user number, first message, count); user 0 is alice.
fn schedule(n: u64) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        out.push((0, start, len));
        for u in 1..=OTHERS {
            out.push((u, start / 8, (CHUNK / 8).min(len / 8).max(1)));
        }
        start += len;
    }
    out
}

fn user_name(u: u64) -> String {
    if u == 0 {
        "alice".into()
    } else {
        format!("user{u}")
    }
}

fn jid(u: u64) -> BareJid {
    BareJid::from_parts(&user_name(u), "localhost").unwrap()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        f64::midpoint(v[m - 1], v[m])
    } else {
        v[m]
    }
}

/// Median microseconds of `f` over [`REPS`] calls after a warm-up.
fn time_reps(mut f: impl FnMut()) -> f64 {
    f();
    let mut v = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let t = Instant::now();
        f();
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    median(v)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The multi-row INSERT of `rows` rows.
fn mim_insert_sql(rows: usize) -> String {
    let groups: Vec<String> = (0..rows)
        .map(|r| {
            let p: Vec<String> = (1..=10)
                .map(|c| {
                    let n = r * 10 + c;
                    if c == 6 {
                        format!("${n}::text::mam_direction")
                    } else {
                        format!("${n}")
                    }
                })
                .collect();
            format!("({})", p.join(","))
        })
        .collect();
    format!(
        "INSERT INTO mam_message ({MIM_COLUMNS}) VALUES {}",
        groups.join(",")
    )
}

fn mim_insert(
    tx: &mut impl postgres::GenericClient,
    statements: &mut std::collections::BTreeMap<usize, postgres::Statement>,
    rows: &[MimRow],
) {
    for batch in rows.chunks(MIM_BATCH) {
        let st = statements
            .entry(batch.len())
            .or_insert_with(|| tx.prepare(&mim_insert_sql(batch.len())).unwrap())
            .clone();
        let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = Vec::new();
        for r in batch {
            params.extend_from_slice(&r.params());
        }
        tx.execute(&st, &params).unwrap();
    }
}

/// Bytes of the tables whose names start with `prefix`, with indexes and TOAST.
fn table_bytes(c: &mut postgres::Client, like: &str) -> f64 {
    let bytes: i64 = c
        .query_one(
            "SELECT coalesce(sum(pg_total_relation_size(quote_ident(tablename)))::bigint, 0) \
             FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE $1",
            &[&like],
        )
        .unwrap()
        .get(0);
    #[expect(clippy::cast_precision_loss, reason = "megabytes, printed")]
    let mb = bytes as f64 / 1e6;
    mb
}

/// One run at size `n`: (metric, jidstore, MongooseIM).
#[expect(
    clippy::too_many_lines,
    reason = "one phase after the other, both sides"
)]
fn run(n: u64) -> Vec<(&'static str, f64, f64)> {
    let mut out = Vec::new();
    let (j_url, m_url) = (pg::database().unwrap(), pg::database().unwrap());
    let store: Store = Config::database(&j_url)
        .scram_iterations(16)
        .open()
        .unwrap();
    let mut mim = postgres::Client::connect(&m_url, postgres::NoTls).unwrap();
    mim.batch_execute(MIM_DDL).unwrap();
    for u in 0..=OTHERS {
        store.accounts().create(&jid(u), "pw").unwrap();
    }
    store.accounts().create(&jid(99), "pw").unwrap();

    // Ingest: the chunks generated first, then timed.
    let chunks: Vec<(u64, Vec<PmMessage>)> = schedule(n)
        .into_iter()
        .map(|(u, start, len)| {
            let name = user_name(u);
            (u, (start..start + len).map(|i| message(&name, i)).collect())
        })
        .collect();
    let rows: Vec<Vec<MimRow>> = schedule(n)
        .into_iter()
        .zip(&chunks)
        .map(|((u, start, _), (_, msgs))| {
            (start..)
                .zip(msgs)
                .map(|(i, m)| mim_row(i32::try_from(u).unwrap(), m, i))
                .collect()
        })
        .collect();
    let total: usize = chunks.iter().map(|(_, m)| m.len()).sum();
    let t = Instant::now();
    for (u, msgs) in chunks {
        store.mam().append_bulk(&jid(u), msgs).unwrap();
    }
    store.flush().unwrap();
    let j_ingest = t.elapsed();
    let mut statements = std::collections::BTreeMap::new();
    let t = Instant::now();
    for chunk in &rows {
        let mut tx = mim.transaction().unwrap();
        mim_insert(&mut tx, &mut statements, chunk);
        tx.commit().unwrap();
    }
    let m_ingest = t.elapsed();
    drop(rows);
    #[expect(clippy::cast_precision_loss, reason = "a rate, printed")]
    let total = total as f64;
    out.push((
        "ingest msg/s",
        total / secs(j_ingest),
        total / secs(m_ingest),
    ));
    mim.batch_execute("ANALYZE mam_message").unwrap();
    {
        let mut c = postgres::Client::connect(&j_url, postgres::NoTls).unwrap();
        c.batch_execute("ANALYZE").unwrap();
        out.push((
            "tables MB",
            table_bytes(&mut c, "jidstore\\_%"),
            table_bytes(&mut mim, "mam\\_message"),
        ));
    }

    // Live append: one committed transaction per message.
    let live: Vec<PmMessage> = (0..LIVE).map(|i| message("live", i)).collect();
    let live_rows: Vec<MimRow> = (0..LIVE)
        .zip(&live)
        .map(|(i, m)| mim_row(99, m, i))
        .collect();
    let t = Instant::now();
    for m in &live {
        store.mam().append(&jid(99), m).unwrap();
    }
    let j_live = t.elapsed();
    let one = mim.prepare(&mim_insert_sql(1)).unwrap();
    let t = Instant::now();
    for r in &live_rows {
        mim.execute(&one, &r.params()).unwrap();
    }
    let m_live = t.elapsed();
    #[expect(clippy::cast_precision_loss, reason = "a rate, printed")]
    let live_n = LIVE as f64;
    out.push((
        "live append msg/s",
        live_n / secs(j_live),
        live_n / secs(m_live),
    ));

    // Pages of 50 (51 rows read).
    let alice = jid(0);
    let page = |q: Query| {
        let p = store.mam().query(&alice, &q).unwrap();
        assert_eq!(p.messages.len(), PAGE);
    };
    let q = |from: PageFrom| Query {
        max: Some(PAGE),
        page: from,
        ..Query::default()
    };
    let peer = Jid::parse("peer3@localhost").unwrap();
    let (lo, hi) = (at(n * 2 / 5), at(n * 3 / 5));
    let newest = mim
        .prepare(
            "SELECT id, from_jid, message FROM mam_message WHERE user_id = $1 \
             ORDER BY id DESC LIMIT $2",
        )
        .unwrap();
    let with = mim
        .prepare(
            "SELECT id, from_jid, message FROM mam_message WHERE user_id = $1 \
             AND remote_bare_jid = $2 ORDER BY id DESC LIMIT $3",
        )
        .unwrap();
    let range = mim
        .prepare(
            "SELECT id, from_jid, message FROM mam_message WHERE user_id = $1 \
             AND id BETWEEN $2 AND $3 ORDER BY id LIMIT $4",
        )
        .unwrap();
    let limit = i64::try_from(PAGE + 1).unwrap();
    let (lo_id, hi_id) = (lo.as_micros() << 8, (hi.as_micros() << 8) | 0xff);
    let mut mim_page = |st: &postgres::Statement, p: &[&(dyn postgres::types::ToSql + Sync)]| {
        let rows = mim.query(st, p).unwrap();
        assert_eq!(rows.len(), PAGE + 1);
        for r in &rows {
            let _: (i64, &str, &[u8]) = (r.get(0), r.get(1), r.get(2));
        }
    };
    out.push((
        "newest page us",
        time_reps(|| page(q(PageFrom::Before(None)))),
        time_reps(|| mim_page(&newest, &[&0i32, &limit])),
    ));
    out.push((
        "with page us",
        time_reps(|| {
            page(Query {
                with: Some(peer.clone()),
                ..q(PageFrom::Before(None))
            });
        }),
        time_reps(|| mim_page(&with, &[&0i32, &"peer3@localhost", &limit])),
    ));
    out.push((
        "time-range page us",
        time_reps(|| {
            page(Query {
                start: Some(lo),
                end: Some(hi),
                ..q(PageFrom::First)
            });
        }),
        time_reps(|| mim_page(&range, &[&0i32, &lo_id, &hi_id, &limit])),
    ));

    // Erase alice's archive, durable when it returns.
    let t = Instant::now();
    let receipt = jidstore::gdpr::remove(&store, &alice).unwrap();
    let j_erase = t.elapsed();
    assert!(receipt.sweep_error.is_none());
    assert_eq!(store.mam().count(&alice).unwrap(), 0);
    let t = Instant::now();
    let mut tx = mim.transaction().unwrap();
    let deleted = tx
        .execute("DELETE FROM mam_message WHERE user_id = $1", &[&0i32])
        .unwrap();
    tx.commit().unwrap();
    let m_erase = t.elapsed();
    assert_eq!(deleted, n);
    out.push(("erase ms", secs(j_erase) * 1e3, secs(m_erase) * 1e3));
    drop(store);
    drop(mim);
    let mut admin =
        postgres::Client::connect(&pg::shared().unwrap().url("postgres"), postgres::NoTls).unwrap();
    for url in [&j_url, &m_url] {
        let name = url.rsplit('/').next().unwrap();
        admin
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .unwrap();
    }
    out
}

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().expect("a number"))
        .collect()
}

#[test]
#[ignore = "a measurement, printed"]
fn pg_mam_bench() {
    if pg::database().is_none() {
        return;
    }
    let runs = env_list("JIDSTORE_PG_BENCH_RUNS", "3")[0];
    for n in env_list("JIDSTORE_PG_BENCH_SIZES", "10000,100000") {
        let started = Instant::now();
        let results: Vec<Vec<(&'static str, f64, f64)>> = (0..runs).map(|_| run(n)).collect();
        println!(
            "\n### alice with {n} messages (+{} for 4 other users), medians of {runs} run(s), \
             {:.0} s\n",
            n / 8 * OTHERS,
            started.elapsed().as_secs_f64()
        );
        println!(
            "| metric | jidstore (PostgreSQL engine) | MongooseIM mam_message | ratio jidstore / MongooseIM |"
        );
        println!("| --- | --- | --- | --- |");
        for (i, (metric, _, _)) in results[0].iter().enumerate() {
            let j = median(results.iter().map(|r| r[i].1).collect());
            let m = median(results.iter().map(|r| r[i].2).collect());
            println!("| {metric} | {j:.1} | {m:.1} | {:.2}x |", j / m);
        }
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nload average after the run: {}", load.trim());
}
