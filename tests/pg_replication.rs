//! Issue 15's replicated set-up on loopback: a primary and two synchronous standbys
//! (`synchronous_standby_names = 'ANY 2 (s1, s2)'`), each its own throwaway cluster
//! (`tests/pg`).
//!
//! 1. With `synchronous_commit = remote_apply`: an erasure that returned (`jidstore
//!    unregister`, the binary) is already invisible on both standbys: every `jidstore_` table
//!    holds the same rows there as on the primary, and no row holds the subject's JID.
//! 2. With `synchronous_commit = on` (the engine's floor): a child process erases subjects
//!    one after the other and, between erasures, makes acknowledged writes (an archived
//!    message for a kept subject, a new account with a vCard), printing each acknowledgement.
//!    When it announces erasure number [`KILL_AT`] (so after that many acknowledged
//!    erasures; a count, never a timer) the primary dies by `kill -9` (postmaster and every
//!    backend). Then each standby in turn is promoted and opened with the library: every
//!    subject is wholly present or wholly gone, every acknowledged erasure is gone, every
//!    acknowledged write is there, and `verify` (library and `jidstore verify`) is clean.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jidstore::ext::mam::{Direction, PmMessage};
use jidstore::{BareJid, Config, Error, Store, Timestamp};

use crate::pg::{self, Cluster};
use crate::postgres::jidstore_db;
use crate::util::{bare, full};

/// Subjects erased one by one in phase 1 (through the binary), each checked on both standbys.
const PHASE1: usize = 5;
/// Subjects the child process erases in phase 2 (it is killed long before the last).
const PHASE2: usize = 20;
/// Subjects never erased; the child appends to their archives.
const KEEPERS: usize = 4;
/// Messages in each subject's archive (the sweep deletes them in chunks of 1,000 keys).
const MESSAGES: u64 = 1_000;
/// The primary dies during this erasure of the child's (0-based), i.e. after this many
/// acknowledged erasures and twice as many acknowledged writes: once the erasure's commit
/// is seen on the primary (a state polled for, not a time).
const KILL_AT: usize = 8;
/// Messages of the subject erased at [`KILL_AT`] (a longer sweep).
const BIG: u64 = 5_000;

/// Starts each line of the child's that the parent reads (libtest may print on the same line).
const MARK: &str = "@@ ";

fn vcard_of(who: &str) -> String {
    format!("<vCard xmlns='vcard-temp'><FN>card of {who}</FN></vCard>")
}

fn message(owner: &BareJid, i: u64, body: &str) -> PmMessage {
    PmMessage {
        id: None,
        timestamp: Timestamp::from_secs(1_700_000_000 + i64::try_from(i).unwrap()),
        from: full(&format!("{owner}/phone")),
        to: full("peer@elsewhere"),
        direction: Direction::Outgoing,
        origin_id: None,
        stanza: format!("<message type='chat'><body>{body}</body></message>"),
    }
}

fn open(url: &str) -> Store {
    Config::database(url)
        .scram_iterations(16)
        .open()
        .expect("open the store on PostgreSQL")
}

/// One subject: account, vCard, `messages` archived messages.
fn populate(store: &Store, who: &str, messages: u64) {
    let jid = bare(who);
    store.accounts().create(&jid, "pw").unwrap();
    store.vcard().set(&jid, &vcard_of(who)).unwrap();
    let n = store
        .mam()
        .append_bulk(&jid, (0..messages).map(|i| message(&jid, i, "hello")))
        .unwrap();
    assert_eq!(n, messages);
}

fn sql(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect")
}

/// Runs each `ALTER SYSTEM` statement (one per call: they refuse a transaction block), then
/// reloads the configuration.
fn configure(url: &str, statements: &[&str]) {
    let mut c = sql(url);
    for s in statements {
        c.batch_execute(s).unwrap();
    }
    c.batch_execute("SELECT pg_reload_conf()").unwrap();
}

/// Every row of every `jidstore_` table, sorted: (table, key, value).
fn rows(url: &str) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut c = sql(url);
    let tables: Vec<String> = c
        .query(
            "SELECT tablename::text FROM pg_tables WHERE tablename LIKE 'jidstore\\_%' \
             ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(!tables.is_empty(), "no jidstore_ tables at {url}");
    let mut out = Vec::new();
    for t in tables {
        // The id sequence is a table-like relation of pg_class but not in pg_tables.
        for r in c
            .query(&format!("SELECT key, value FROM {t} ORDER BY key"), &[])
            .unwrap()
        {
            out.push((t.clone(), r.get(0), r.get(1)));
        }
    }
    out
}

/// How many rows hold the subject's JID (key or value).
fn mentions(rows: &[(String, Vec<u8>, Vec<u8>)], who: &str) -> usize {
    let needle = who.as_bytes();
    let has = |b: &[u8]| b.windows(needle.len()).any(|w| w == needle);
    rows.iter().filter(|(_, k, v)| has(k) || has(v)).count()
}

/// Waits (polling, up to 60 s) until both standbys stream as synchronous (quorum) standbys.
fn wait_streaming(primary: &str) {
    let mut c = sql(primary);
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE application_name IN \
                 ('s1', 's2') AND state = 'streaming' AND sync_state IN ('quorum', 'sync')",
                &[],
            )
            .unwrap()
            .get(0);
        if n == 2 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the standbys did not stream within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The key of the first of `who`'s archived messages on the primary.
fn first_message(c: &mut postgres::Client, who: &str) -> Vec<u8> {
    let needle = format!("{who}/").into_bytes();
    c.query_one(
        "SELECT key FROM jidstore_mam_pm WHERE position($1::bytea in value) > 0 \
         ORDER BY key LIMIT 1",
        &[&needle],
    )
    .unwrap()
    .get(0)
}

/// Where the primary was in the erasure when it was killed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum KilledAt {
    /// The erasure's commit (its sweep tombstones) was on the primary, the sweep not done.
    Committed,
    /// The sweep had deleted the subject's messages already.
    Swept,
}

/// Waits (polling the primary, up to 60 s) until the erasure of the subject whose first
/// archived message is `first` has committed there (a tombstone in `jidstore_sweep`; no
/// other erasure is pending then) or already swept that message.
fn wait_for_erasure(c: &mut postgres::Client, first: &[u8]) -> KilledAt {
    let probe = c
        .prepare(
            "SELECT (SELECT count(*) FROM jidstore_sweep), \
             (SELECT count(*) FROM jidstore_mam_pm WHERE key = $1)",
        )
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let row = c.query_one(&probe, &[&first]).unwrap();
        let (tombstones, message): (i64, i64) = (row.get(0), row.get(1));
        if tombstones > 0 {
            return KilledAt::Committed;
        }
        if message == 0 {
            return KilledAt::Swept;
        }
        assert!(
            Instant::now() < deadline,
            "the erasure did not commit within 60 s"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// What the primary's death left on a promoted standby, seen through the library.
#[derive(Debug, PartialEq)]
enum Seen {
    Present,
    Gone,
}

/// The subject is wholly present (account, its vCard, `messages` archived messages) or
/// wholly gone (nothing: no account, no vCard, no message, no row naming it); anything in
/// between fails the test.
fn wholly(store: &Store, rows: &[(String, Vec<u8>, Vec<u8>)], who: &str, messages: u64) -> Seen {
    let jid = bare(who);
    let account = store.accounts().exists(&jid).unwrap();
    let vcard = store.vcard().get(&jid).unwrap();
    let count = store.mam().count(&jid).unwrap();
    if account {
        assert_eq!(
            vcard.as_deref(),
            Some(vcard_of(who).as_str()),
            "{who}: torn"
        );
        assert_eq!(count, messages, "{who}: torn archive");
        Seen::Present
    } else {
        assert_eq!(vcard, None, "{who}: torn (vCard without account)");
        assert_eq!(count, 0, "{who}: torn (messages without account)");
        let export = jidstore::gdpr::retrieve(
            store,
            &jid,
            &mut std::io::Cursor::new(Vec::new()),
            &jidstore::gdpr::ExportOptions::default(),
        );
        assert!(
            matches!(export, Err(Error::NoPersonalData(_))),
            "{who}: {export:?}"
        );
        assert_eq!(mentions(rows, who), 0, "{who}: rows still name the subject");
        Seen::Gone
    }
}

/// The child of phase 2 (`JIDSTORE_REPL_URL` names the primary's database): erases
/// `v0`, `v1`, ... in turn and, after each, appends a message to a keeper and creates a new
/// subject `n<i>` with a vCard. Prints (after [`MARK`]) `erasing <i>` before each erasure and `erased <i>`,
/// `wrote <keeper> <id>`, `created <i>` after each call returned. Stops at the first error
/// (the primary is gone).
#[test]
#[ignore = "a child process of erasure_and_failover_on_synchronous_standbys"]
fn replication_churn() {
    let Ok(url) = std::env::var("JIDSTORE_REPL_URL") else {
        return;
    };
    let store = open(&url);
    let run = || -> jidstore::Result<()> {
        for i in 0..PHASE2 {
            println!("{MARK}erasing {i}");
            jidstore::gdpr::remove(&store, &bare(&format!("v{i}@localhost")))?;
            println!("{MARK}erased {i}");
            let keeper = format!("k{}@localhost", i % KEEPERS);
            let id = store.mam().append(
                &bare(&keeper),
                &message(&bare(&keeper), 10_000 + i as u64, &format!("ack {i}")),
            )?;
            println!("{MARK}wrote {keeper} {id}");
            let new = format!("n{i}@localhost");
            store.accounts().create(&bare(&new), "pw")?;
            store.vcard().set(&bare(&new), &vcard_of(&new))?;
            println!("{MARK}created {i}");
        }
        Ok(())
    };
    if let Err(e) = run() {
        println!("{MARK}stopped: {e}");
    }
}

/// The acknowledgements of phase 2's child.
#[derive(Default, Debug)]
struct Acks {
    erased: Vec<usize>,
    /// (keeper, message id, erasure number).
    wrote: Vec<(String, String, usize)>,
    created: Vec<usize>,
    announced: Vec<usize>,
}

#[test]
fn erasure_and_failover_on_synchronous_standbys() {
    if pg::skipped() {
        return;
    }
    let started = Instant::now();
    let (primary, s1, s2) = set_up(started);
    let purl = primary.url("postgres");
    erasures_reach_the_standbys(&purl, &[s1.url("postgres"), s2.url("postgres")]);
    let acks = churn_and_kill(&primary, &purl);
    // Failover: each standby in turn, promoted, must hold everything acknowledged.
    check_promoted("s1", &s1, &acks);
    check_promoted("s2", &s2, &acks);
    eprintln!("done in {:.1} s", started.elapsed().as_secs_f64());
}

/// The primary, populated, and its two synchronous standbys, streaming.
fn set_up(started: Instant) -> (Cluster, Cluster, Cluster) {
    let bin = pg::binaries().unwrap_or_else(|why| panic!("{why}"));
    let primary = Cluster::start_with(bin, "-c wal_level=replica -c max_wal_senders=10")
        .unwrap_or_else(|why| panic!("{why}"));
    primary.watch(std::process::id());
    let purl = primary.url("postgres");

    // Everyone is written before the standbys exist: their base backups carry it.
    {
        let store = open(&purl);
        for i in 0..PHASE1 {
            populate(&store, &format!("u{i}@localhost"), MESSAGES);
        }
        for i in 0..PHASE2 {
            let n = if i == KILL_AT { BIG } else { MESSAGES };
            populate(&store, &format!("v{i}@localhost"), n);
        }
        for i in 0..KEEPERS {
            populate(&store, &format!("k{i}@localhost"), MESSAGES);
        }
    }
    eprintln!("populated in {:.1} s", started.elapsed().as_secs_f64());
    configure(
        &purl,
        &[
            "ALTER SYSTEM SET synchronous_standby_names = 'ANY 2 (s1, s2)'",
            "ALTER SYSTEM SET synchronous_commit = 'remote_apply'",
        ],
    );
    // A standby that is promoted must not wait for standbys of its own (it has none): the
    // command-line setting overrides the one its base backup copied.
    let no_sync = "-c synchronous_standby_names=''";
    let s1 = primary
        .standby("s1", no_sync)
        .unwrap_or_else(|why| panic!("{why}"));
    s1.watch(std::process::id());
    let s2 = primary
        .standby("s2", no_sync)
        .unwrap_or_else(|why| panic!("{why}"));
    s2.watch(std::process::id());
    wait_streaming(&purl);
    eprintln!("set up in {:.1} s", started.elapsed().as_secs_f64());

    (primary, s1, s2)
}

/// Phase 1 (`remote_apply`): an erasure that returned is applied on both standbys.
fn erasures_reach_the_standbys(purl: &str, standbys: &[String]) {
    for i in 0..PHASE1 {
        let who = format!("u{i}@localhost");
        for s in standbys {
            assert!(mentions(&rows(s), &who) > 0, "{who} not on {s} before");
        }
        let r = jidstore_db(purl, false, &["unregister", &format!("u{i}"), "localhost"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        let on_primary = rows(purl);
        assert_eq!(mentions(&on_primary, &who), 0);
        for s in standbys {
            let there = rows(s);
            assert_eq!(mentions(&there, &who), 0, "{who} still on {s}");
            assert!(
                there == on_primary,
                "{s} differs from the primary after erasing {who}"
            );
        }
    }
}

/// Phase 2: the child's erasures and writes, the primary killed in erasure [`KILL_AT`];
/// returns what the child acknowledged.
fn churn_and_kill(primary: &Cluster, purl: &str) -> Acks {
    // Phase 2: the engine's own floor (`on`: the standbys have flushed, not yet applied).
    configure(purl, &["ALTER SYSTEM SET synchronous_commit = 'on'"]);
    let mut watcher = sql(purl);
    let first = first_message(&mut watcher, &format!("v{KILL_AT}@localhost"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pg_replication::replication_churn",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("JIDSTORE_REPL_URL", purl)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acks = Acks::default();
    let mut killed = false;
    let mut killed_at = None;
    let mut transcript = String::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        transcript.push_str(&line);
        transcript.push('\n');
        let Some((_, said)) = line.split_once(MARK) else {
            continue;
        };
        let words: Vec<&str> = said.split_whitespace().collect();
        match words.as_slice() {
            ["erasing", i] => {
                let i: usize = i.parse().unwrap();
                acks.announced.push(i);
                if i == KILL_AT && !killed {
                    killed_at = Some(wait_for_erasure(&mut watcher, &first));
                    primary.kill_9();
                    killed = true;
                }
            }
            ["erased", i] => acks.erased.push(i.parse().unwrap()),
            ["wrote", keeper, id] => {
                let n = *acks.announced.last().unwrap();
                acks.wrote.push(((*keeper).to_owned(), (*id).to_owned(), n));
            }
            ["created", i] => acks.created.push(i.parse().unwrap()),
            _ => {}
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "the child failed: {transcript}");
    assert!(
        killed,
        "the child never reached erasure {KILL_AT}: {transcript}"
    );
    assert!(
        transcript.contains(&format!("{MARK}stopped:")),
        "the child did not stop on the dead primary: {transcript}"
    );
    assert!(acks.erased.len() >= KILL_AT, "{acks:?}");
    eprintln!(
        "primary killed in erasure {KILL_AT} ({killed_at:?} seen on the primary; the erasure \
         {}); acknowledged: {} erasures, {} messages, {} accounts",
        if acks.erased.contains(&KILL_AT) {
            "returned before the kill"
        } else {
            "never returned"
        },
        acks.erased.len(),
        acks.wrote.len(),
        acks.created.len()
    );
    acks
}

/// Promotes `standby` and checks it holds every subject whole or not at all, and everything
/// acknowledged.
fn check_promoted(name: &str, standby: &Cluster, acks: &Acks) {
    standby.promote().unwrap_or_else(|why| panic!("{why}"));
    let url = standby.url("postgres");
    let store = open(&url);
    let report = jidstore::verify(&store).unwrap();
    assert!(report.is_clean(), "{name}: {report:?}");
    let r = jidstore_db(&url, false, &["verify"]);
    assert_eq!(r.code, 0, "{name}: {}{}", r.stdout, r.stderr);
    let all = rows(&url);
    for i in 0..PHASE1 {
        let who = format!("u{i}@localhost");
        assert_eq!(wholly(&store, &all, &who, MESSAGES), Seen::Gone, "{name}");
    }
    let mut outcome = Vec::new();
    for i in 0..PHASE2 {
        let who = format!("v{i}@localhost");
        let n = if i == KILL_AT { BIG } else { MESSAGES };
        let seen = wholly(&store, &all, &who, n);
        if acks.erased.contains(&i) {
            assert_eq!(seen, Seen::Gone, "{name}: acknowledged erasure of {who}");
        } else if !acks.announced.contains(&i) {
            assert_eq!(seen, Seen::Present, "{name}: {who} was never erased");
        } else {
            outcome.push((i, seen));
        }
    }
    for (keeper, id, n) in &acks.wrote {
        let m = store.mam().get(&bare(keeper), id).unwrap();
        let m = m.unwrap_or_else(|| panic!("{name}: acknowledged message {id} lost"));
        assert!(m.stanza.contains(&format!("ack {n}")), "{name}: {m:?}");
    }
    for i in 0..KEEPERS {
        let who = format!("k{i}@localhost");
        let jid = bare(&who);
        assert!(store.accounts().exists(&jid).unwrap(), "{name}: {who}");
        assert_eq!(
            store.vcard().get(&jid).unwrap().as_deref(),
            Some(vcard_of(&who).as_str())
        );
        let acked = acks.wrote.iter().filter(|w| w.0 == who).count() as u64;
        let count = store.mam().count(&jid).unwrap();
        // At most one unacknowledged append (the one in flight) may have landed.
        assert!(
            (MESSAGES + acked..=MESSAGES + acked + 1).contains(&count),
            "{name}: {who} holds {count}"
        );
    }
    for i in &acks.created {
        let who = format!("n{i}@localhost");
        assert!(
            store.accounts().exists(&bare(&who)).unwrap(),
            "{name}: {who}"
        );
        assert_eq!(
            store.vcard().get(&bare(&who)).unwrap().as_deref(),
            Some(vcard_of(&who).as_str()),
            "{name}: {who}"
        );
    }
    eprintln!("{name} promoted: in-flight erasures {outcome:?}");
}
