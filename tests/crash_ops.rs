//! Crash tests: SIGKILL at random moments during bulk ingest (`append_bulk`), `jidstore
//! import` and `jidstore compact`, then reopen and check that nothing reported durable is
//! lost, nothing is torn, and `verify` is clean.
//!
//! - **ingest**: a child process (this binary, re-run with `--child-ingest`) appends an
//!   archive with imported ids `m0, m1, ...` in calls of random size (some above
//!   `BULK_CHUNK`), flushing after each and printing `durable <n>`. After the kill the
//!   archive must be a prefix `m0..m<k>` of what was sent with `k >= n`, every message with
//!   its content, paged and `with` queries and counts must agree with it, the next id must
//!   count as absent (appending from `k` on succeeds), and `verify` must be clean.
//! - **live**: a child (`--child-live`) appends single messages (native ids) with
//!   `Mam::append`, flushing and printing `durable <n>` every 50. After the kill the archive
//!   must be a prefix of what was sent, at least `n` long, with every `with` count matching
//!   it (no record without its index entry), and `verify` must be clean.
//! - **import**: `jidstore import` of a PIE file with several users. Every user it printed
//!   as `imported <jid> (durable)` must be whole (export CSVs equal to an uninterrupted
//!   import's, `created_at` aside); a user written but not reported may be partial. The
//!   README's recovery (`unregister` the unreported users that have an account, import
//!   again) must give every user whole.
//! - **compact**: the data dir must hold the old or the new store with identical content
//!   (every user's export and every keyspace's entry count), or be missing with a
//!   `<dir>.old-*` sibling, which the test renames back as the README tells operators.
//!
//! - **expire**: `jidstore expire` of a policy that removes most of a bulk-ingested archive
//!   (several trim chunks) and of a room. Each archive must be a suffix of the original
//!   (removed oldest first, whole messages, no hole), a removed id must answer
//!   item-not-found, `verify` must be clean, and running `expire` again must end in the
//!   uninterrupted run's state.
//!
//! `JIDSTORE_CRASH_KILLS` sets the kills per scenario (default 12 each),
//! `JIDSTORE_CRASH_LIVE_MESSAGES` (default 5000) the live appends,
//! `JIDSTORE_CRASH_INGEST_MESSAGES` (default 20000) and `JIDSTORE_CRASH_COMPACT_MESSAGES`
//! (default 5000 per user) the sizes; `JIDSTORE_CRASH_ONLY=ingest,live,import,compact,expire`
//! picks scenarios; `JIDSTORE_CRASH_EXPIRE_MESSAGES` (default 12000) the expired archive's
//! size.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::format_push_string,
    clippy::similar_names,
    reason = "test code: a failed expectation is a failed test"
)]

#[path = "crash_util.rs"]
mod crash_util;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crash_util::{
    Res, bare, copy_dir, entry_counts, env_usize, export, export_csvs, open, rand_below, reopen,
    verify_clean,
};
use jidstore::ext::mam::{Direction, PageFrom, PmMessage, Query};
use jidstore::{BareJid, Jid, Store, Timestamp};

/// Tallies of one scenario.
#[derive(Default)]
struct Tally {
    kills: usize,
    failed: usize,
    outcomes: BTreeMap<&'static str, usize>,
}

impl Tally {
    fn note(&mut self, outcome: &'static str) {
        *self.outcomes.entry(outcome).or_default() += 1;
    }

    fn fail(&mut self, scenario: &str, i: usize, dir: &Path, e: &dyn std::fmt::Display) {
        self.failed += 1;
        let keep = std::env::temp_dir().join(format!("jidstore-crash-{scenario}-failure-{i}"));
        let _ = copy_dir(dir, &keep);
        eprintln!("{scenario} kill {i}: {e} (copy kept in {})", keep.display());
    }

    fn report(&self, scenario: &str, what: &str) -> Res {
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        println!(
            "crash {scenario}: {} SIGKILLs during {what}: {}; {} torn or failed",
            self.kills,
            outcomes.join(", "),
            self.failed
        );
        if self.failed > 0 {
            return Err(format!("{scenario}: {} kills failed", self.failed).into());
        }
        Ok(())
    }
}

fn kill_after(child: &mut Child, delay: Duration) {
    std::thread::sleep(delay);
    let _ = child.kill();
    let _ = child.wait();
}

/// Kills a child appender at a random moment of `window`, then reads what it printed: the
/// highest `durable <n>` (0 if none).
fn kill_and_read_durable(
    mut child: Child,
    mut out: BufReader<std::process::ChildStdout>,
    window: Duration,
) -> Res<usize> {
    kill_after(&mut child, random_delay(window));
    let mut text = String::new();
    out.read_to_string(&mut text)?;
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("durable "))
        .filter_map(|n| n.parse::<usize>().ok())
        .max()
        .unwrap_or(0))
}

/// Starts this binary as a child appender (`mode`: `--child-ingest` or `--child-live`) on
/// `dir` with `args`, and waits for its `ready` line; it then prints `durable <n>` lines.
fn spawn_appender(
    mode: &str,
    dir: &Path,
    args: &[String],
) -> Res<(Child, BufReader<std::process::ChildStdout>)> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg(mode)
        .arg(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut reader = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    if line.trim() != "ready" {
        return Err(format!("child said {line:?}").into());
    }
    Ok((child, reader))
}

fn random_delay(window: Duration) -> Duration {
    let micros = u64::try_from(rand_below(window.as_micros())).unwrap_or(0);
    Duration::from_micros(micros)
}

// ---------------------------------------------------------------------------------------
// Bulk ingest

const INGEST_BASE: i64 = 1_700_000_000;

fn alice() -> BareJid {
    bare("alice@localhost")
}

fn peer(i: usize) -> Jid {
    if i.is_multiple_of(3) {
        Jid::parse("carol@localhost/c").unwrap()
    } else {
        Jid::parse("bob@localhost/b").unwrap()
    }
}

fn ingest_message(i: usize) -> PmMessage {
    PmMessage {
        id: Some(format!("m{i}")),
        timestamp: Timestamp::from_secs(INGEST_BASE + i64::try_from(i / 4).unwrap()),
        from: peer(i),
        to: Jid::parse("alice@localhost/a").unwrap(),
        direction: Direction::Incoming,
        origin_id: None,
        stanza: format!(
            "<message xmlns='jabber:client' id='m{i}'><body>bulk message {i}: some text the size of a chat line</body></message>"
        ),
    }
}

/// The child: appends `total` messages in calls of pseudo-random size, flushing and
/// printing `durable <n>` after each.
fn child_ingest(dir: &Path, total: usize, seed: u64) -> Res {
    let store = open(dir)?;
    if !store.accounts().exists(&alice())? {
        store.accounts().create(&alice(), "pw")?;
    }
    store.flush()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    let mut state = seed | 1;
    let mut sent = 0;
    while sent < total {
        // xorshift: call sizes from 1 to 12,000 (some above BULK_CHUNK, so some calls are
        // several chunks).
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let size = usize::try_from(state % 12_000).unwrap() + 1;
        let end = (sent + size).min(total);
        store
            .mam()
            .append_bulk(&alice(), (sent..end).map(ingest_message))?;
        store.flush()?;
        sent = end;
        writeln!(out, "durable {sent}")?;
        out.flush()?;
    }
    Ok(())
}

fn spawn_ingest(dir: &Path, total: usize) -> Res<(Child, BufReader<std::process::ChildStdout>)> {
    let seed = u64::try_from(rand_below(u128::from(u64::MAX)))?;
    spawn_appender(
        "--child-ingest",
        dir,
        &[total.to_string(), seed.to_string()],
    )
}

/// Checks the archive after a kill; returns how many messages it holds.
fn check_ingest(dir: &Path, durable: usize, total: usize) -> Res<usize> {
    let store = reopen(dir)?;
    verify_clean(&store)?;
    let list = store.mam().list(&alice())?;
    let k = list.len();
    if k < durable {
        return Err(format!("{durable} reported durable, {k} present").into());
    }
    for (i, m) in list.iter().enumerate() {
        let want = ingest_message(i);
        if m.id != format!("m{i}") || m.stanza != want.stanza || m.from != want.from {
            return Err(format!("position {i} holds {} (hole or torn record)", m.id).into());
        }
    }
    let mut paged = 0;
    let mut page = PageFrom::First;
    loop {
        let q = Query {
            max: Some(7_000),
            page: page.clone(),
            count: paged == 0,
            ..Query::default()
        };
        let got = store.mam().query(&alice(), &q)?;
        if let Some(c) = got.count
            && c != k as u64
        {
            return Err(format!("query count {c}, archive holds {k}").into());
        }
        for m in &got.messages {
            if m.id != format!("m{paged}") {
                return Err(format!("paged query: {} at {paged}", m.id).into());
            }
            paged += 1;
        }
        match (got.complete, got.last) {
            (false, Some(last)) => page = PageFrom::After(last),
            _ => break,
        }
    }
    if paged != k {
        return Err(format!("paged query found {paged} of {k}").into());
    }
    let carol = store.mam().query(
        &alice(),
        &Query {
            with: Some(Jid::parse("carol@localhost")?),
            max: Some(1),
            count: true,
            ..Query::default()
        },
    )?;
    let want = (0..k).filter(|i| i.is_multiple_of(3)).count() as u64;
    if carol.count != Some(want) {
        return Err(format!("with=carol count {:?}, want {want}", carol.count).into());
    }
    if k < total && store.mam().get(&alice(), &format!("m{k}"))?.is_some() {
        return Err(format!("m{k} readable beyond the archive's end").into());
    }
    // The recovery an importer does: carry on from the first absent id.
    let more = (k..(k + 10).min(total)).map(ingest_message);
    store.mam().append_bulk(&alice(), more)?;
    verify_clean(&store)?;
    Ok(k)
}

fn scenario_ingest(tmp: &Path) -> Res {
    let kills = env_usize("JIDSTORE_CRASH_KILLS", 12);
    let total = env_usize("JIDSTORE_CRASH_INGEST_MESSAGES", 20_000);
    let full_dir = tmp.join("ingest-full");
    let started = Instant::now();
    let (mut child, _out) = spawn_ingest(&full_dir, total)?;
    let status = child.wait()?;
    let full_run = started.elapsed();
    assert!(status.success(), "uninterrupted ingest failed");
    assert_eq!(check_ingest(&full_dir, total, total)?, total);
    std::fs::remove_dir_all(&full_dir)?;

    let mut tally = Tally::default();
    let mut acknowledged = 0;
    for i in 0..kills {
        let dir: PathBuf = tmp.join(format!("ingest{i}"));
        let (child, out) = spawn_ingest(&dir, total)?;
        let durable = kill_and_read_durable(child, out, full_run)?;
        tally.kills += 1;
        match check_ingest(&dir, durable, total) {
            Ok(k) => {
                acknowledged += durable;
                tally.note(if k == durable {
                    "exactly the acknowledged messages"
                } else {
                    "acknowledged plus unacknowledged"
                });
            }
            Err(e) => tally.fail("ingest", i, &dir, &e),
        }
        std::fs::remove_dir_all(&dir)?;
    }
    println!(
        "crash ingest: {acknowledged} acknowledged messages over all kills, all present (full run {} ms)",
        full_run.as_millis()
    );
    tally.report(
        "ingest",
        &format!("append_bulk of {total} messages in random-size calls"),
    )
}

// ---------------------------------------------------------------------------------------
// Live appends

fn live_message(i: usize) -> PmMessage {
    PmMessage {
        id: None,
        ..ingest_message(i)
    }
}

/// The child: appends `total` messages one at a time (native ids), flushing and printing
/// `durable <n>` after every 50.
fn child_live(dir: &Path, total: usize) -> Res {
    let store = open(dir)?;
    if !store.accounts().exists(&alice())? {
        store.accounts().create(&alice(), "pw")?;
    }
    store.flush()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    for i in 0..total {
        store.mam().append(&alice(), &live_message(i))?;
        if (i + 1) % 50 == 0 {
            store.flush()?;
            writeln!(out, "durable {}", i + 1)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// Checks the archive after a kill: a prefix of what was sent, at least `durable` long,
/// every record with its `with` entry; returns its length.
fn check_live(dir: &Path, durable: usize) -> Res<usize> {
    let store = reopen(dir)?;
    verify_clean(&store)?;
    let list = store.mam().list(&alice())?;
    let k = list.len();
    if k < durable {
        return Err(format!("{durable} reported durable, {k} present").into());
    }
    for (i, m) in list.iter().enumerate() {
        let want = live_message(i);
        if m.stanza != want.stanza || m.from != want.from {
            return Err(format!("position {i} holds another message (hole or torn)").into());
        }
    }
    for (peer, pick) in [("carol@localhost", 0), ("bob@localhost", 1)] {
        let got = store.mam().query(
            &alice(),
            &Query {
                with: Some(Jid::parse(peer)?),
                max: Some(1),
                count: true,
                ..Query::default()
            },
        )?;
        let want = (0..k).filter(|i| usize::from(i % 3 != 0) == pick).count() as u64;
        if got.count != Some(want) {
            return Err(format!("with={peer} count {:?}, want {want}", got.count).into());
        }
    }
    store.mam().append(&alice(), &live_message(k))?;
    verify_clean(&store)?;
    Ok(k)
}

fn spawn_live(dir: &Path, total: usize) -> Res<(Child, BufReader<std::process::ChildStdout>)> {
    spawn_appender("--child-live", dir, &[total.to_string()])
}

fn scenario_live(tmp: &Path) -> Res {
    let kills = env_usize("JIDSTORE_CRASH_KILLS", 12);
    let total = env_usize("JIDSTORE_CRASH_LIVE_MESSAGES", 5_000);
    let full_dir = tmp.join("live-full");
    let started = Instant::now();
    let (mut child, _out) = spawn_live(&full_dir, total)?;
    let status = child.wait()?;
    let full_run = started.elapsed();
    assert!(status.success(), "uninterrupted live appends failed");
    assert_eq!(check_live(&full_dir, total)?, total);
    std::fs::remove_dir_all(&full_dir)?;

    let mut tally = Tally::default();
    for i in 0..kills {
        let dir: PathBuf = tmp.join(format!("live{i}"));
        let (child, out) = spawn_live(&dir, total)?;
        let durable = kill_and_read_durable(child, out, full_run)?;
        tally.kills += 1;
        match check_live(&dir, durable) {
            Ok(k) => tally.note(if k == durable {
                "exactly the acknowledged messages"
            } else {
                "acknowledged plus unacknowledged"
            }),
            Err(e) => tally.fail("live", i, &dir, &e),
        }
        std::fs::remove_dir_all(&dir)?;
    }
    tally.report(
        "live",
        &format!(
            "{total} single appends, flushed every 50 (full run {} ms)",
            full_run.as_millis()
        ),
    )
}

// ---------------------------------------------------------------------------------------
// Import

const IMPORT_USERS: usize = 12;
const IMPORT_MESSAGES: usize = 300;

fn import_user_name(u: usize) -> String {
    format!("user{u:02}")
}

fn write_pie(path: &Path) -> Res {
    let mut x = String::from(
        "<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>\n",
    );
    for u in 0..IMPORT_USERS {
        let name = import_user_name(u);
        x.push_str(&format!(
            "<user name='{name}' password='pw{u}'>\n<query xmlns='jabber:iq:roster' ver='{u}'>"
        ));
        for c in 0..20 {
            x.push_str(&format!(
                "<item jid='contact{c}@example.net' name='C {c}' subscription='both'><group>G{}</group></item>",
                c % 3
            ));
        }
        x.push_str("</query>\n");
        x.push_str(&format!(
            "<vCard xmlns='vcard-temp'><FN>User {u}</FN></vCard>\n<query xmlns='jabber:iq:private'>"
        ));
        for p in 0..5 {
            x.push_str(&format!("<s{p} xmlns='urn:example:{p}'>{u}</s{p}>"));
        }
        x.push_str("</query>\n<offline-messages>");
        for m in 0..10 {
            x.push_str(&format!("<message xmlns='jabber:client' from='contact{m}@example.net/r' to='{name}@example.org' type='chat'><body>offline {m}</body><delay xmlns='urn:xmpp:delay' stamp='2020-01-01T00:00:{m:02}Z'/></message>"));
        }
        x.push_str("</offline-messages>\n<archive xmlns='urn:xmpp:pie:0#mam'>\n");
        for m in 0..IMPORT_MESSAGES {
            x.push_str(&format!(
                "<result xmlns='urn:xmpp:mam:2' id='{name}-{m}'><forwarded xmlns='urn:xmpp:forward:0'><delay xmlns='urn:xmpp:delay' stamp='2020-01-02T{:02}:{:02}:{:02}Z'/><message xmlns='jabber:client' to='{name}@example.org/r' from='contact{}@example.net/r' type='chat'><body>archived {m} for {name}</body></message></forwarded></result>\n",
                m / 3600, (m / 60) % 60, m % 60, m % 20
            ));
        }
        x.push_str("</archive>\n</user>\n");
    }
    x.push_str("</host></server-data>\n");
    std::fs::write(path, x)?;
    Ok(())
}

fn import_jid(u: usize) -> BareJid {
    bare(&format!("{}@example.org", import_user_name(u)))
}

/// A user's export CSVs with `accounts.csv` reduced to its row count (`created_at` is the
/// import time).
fn import_state(store: &Store, u: usize) -> Res<Option<Vec<(String, String)>>> {
    Ok(export_csvs(store, &import_jid(u))?.map(|files| {
        files
            .into_iter()
            .map(|(name, text)| {
                if name == "accounts.csv" {
                    let rows = text.lines().count();
                    (name, format!("{rows} lines"))
                } else {
                    (name, text)
                }
            })
            .collect()
    }))
}

fn run_jidstore(data: &Path, args: &[&str]) -> Res<std::process::Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_jidstore"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("JIDSTORE_DATA_DIR")
        .stdin(Stdio::null())
        .output()?)
}

fn spawn_jidstore(data: &Path, args: &[&str], stderr: Stdio) -> Res<Child> {
    Ok(Command::new(env!("CARGO_BIN_EXE_jidstore"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("JIDSTORE_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()?)
}

/// An empty store (an account unrelated to the import, so `import` finds a store).
fn empty_store(dir: &Path) -> Res {
    let store = open(dir)?;
    store.accounts().create(&bare("admin@example.org"), "pw")?;
    store.flush()?;
    Ok(())
}

type Reference = Vec<Option<Vec<(String, String)>>>;

/// Checks a killed import; returns (reported users, partial users found).
fn check_import(
    dir: &Path,
    pie: &Path,
    reported: &BTreeSet<String>,
    reference: &Reference,
) -> Res<(usize, usize)> {
    let mut partial = 0;
    let mut to_erase = Vec::new();
    {
        let store = reopen(dir)?;
        verify_clean(&store)?;
        for (u, want) in reference.iter().enumerate() {
            let jid = import_jid(u);
            let now = import_state(&store, u)?;
            if reported.contains(jid.as_str()) {
                if &now != want {
                    return Err(format!("{jid} was reported durable but is not whole").into());
                }
            } else if store.accounts().exists(&jid)? {
                if &now != want {
                    partial += 1;
                }
                to_erase.push(jid);
            } else if now.is_some() {
                return Err(format!("{jid} has data but no account").into());
            }
        }
    }
    // The README's recovery: unregister what was not reported, import again (telling the
    // import that those erasures were this recovery's, not people's).
    for jid in &to_erase {
        let out = run_jidstore(dir, &["unregister", jid.node().unwrap(), jid.domain()])?;
        if !out.status.success() {
            return Err(
                format!("unregister {jid}: {}", String::from_utf8_lossy(&out.stderr)).into(),
            );
        }
    }
    let out = run_jidstore(dir, &["import", "--import-erased", pie.to_str().unwrap()])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expect_refused = reported.len();
    let refused = stderr.matches("exists already").count();
    if refused != expect_refused {
        return Err(format!(
            "re-import refused {refused} users, {expect_refused} expected: {stderr}"
        )
        .into());
    }
    let store = reopen(dir)?;
    verify_clean(&store)?;
    for (u, want) in reference.iter().enumerate() {
        if &import_state(&store, u)? != want {
            return Err(format!("{} not whole after recovery", import_jid(u)).into());
        }
    }
    Ok((reported.len(), partial))
}

fn scenario_import(tmp: &Path) -> Res {
    let kills = env_usize("JIDSTORE_CRASH_KILLS", 12);
    let pie = tmp.join("import.xml");
    write_pie(&pie)?;
    let template = tmp.join("import-template");
    empty_store(&template)?;
    let full = tmp.join("import-full");
    copy_dir(&template, &full)?;
    let started = Instant::now();
    let out = run_jidstore(&full, &["import", pie.to_str().unwrap()])?;
    let full_run = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import failed: {stderr}");
    assert_eq!(
        stderr.matches("(durable)").count(),
        IMPORT_USERS,
        "{stderr}"
    );
    let reference: Reference = {
        let store = reopen(&full)?;
        verify_clean(&store)?;
        (0..IMPORT_USERS)
            .map(|u| import_state(&store, u))
            .collect::<Res<_>>()?
    };
    assert!(reference.iter().all(Option::is_some));
    std::fs::remove_dir_all(&full)?;

    let mut tally = Tally::default();
    let (mut reported_total, mut partial_total) = (0, 0);
    for i in 0..kills {
        let dir = tmp.join(format!("import{i}"));
        copy_dir(&template, &dir)?;
        let mut child = spawn_jidstore(&dir, &["import", pie.to_str().unwrap()], Stdio::piped())?;
        let mut err = child.stderr.take().ok_or("no stderr")?;
        kill_after(&mut child, random_delay(full_run));
        let mut text = String::new();
        err.read_to_string(&mut text)?;
        let reported: BTreeSet<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("jidstore: imported "))
            .filter_map(|l| l.strip_suffix(" (durable)"))
            .map(str::to_owned)
            .collect();
        tally.kills += 1;
        match check_import(&dir, &pie, &reported, &reference) {
            Ok((r, p)) => {
                reported_total += r;
                partial_total += p;
                tally.note(if p > 0 {
                    "with a partly imported user (recovered)"
                } else {
                    "with every user whole or absent"
                });
            }
            Err(e) => tally.fail("import", i, &dir, &e),
        }
        std::fs::remove_dir_all(&dir)?;
    }
    println!(
        "crash import: {reported_total} users reported durable over all kills, all whole; {partial_total} partly imported users recovered by unregister + import (full run {} ms)",
        full_run.as_millis()
    );
    tally.report("import", &format!("import of {IMPORT_USERS} users"))
}

// ---------------------------------------------------------------------------------------
// Compact

const COMPACT_USERS: [&str; 4] = [
    "alice@localhost",
    "bob@localhost",
    "al@localhost",
    "alice@localhost.org",
];

fn populate_compact(dir: &Path, messages: usize) -> Res {
    let store = open(dir)?;
    for (n, u) in COMPACT_USERS.iter().enumerate() {
        let j = bare(u);
        store.accounts().create(&j, "pw")?;
        store.vcard().set(
            &j,
            &format!("<vCard xmlns='vcard-temp'><FN>{n}</FN></vCard>"),
        )?;
        let me = Jid::from(j.clone());
        let msgs = (0..messages).map(|i| {
            PmMessage::new(
                Timestamp::from_secs(INGEST_BASE + i64::try_from(i).unwrap()),
                me.clone(),
                Jid::parse("bob@localhost/b").unwrap(),
                Direction::Outgoing,
                format!("<message xmlns='jabber:client'><body>{u} says {i}</body></message>"),
            )
        });
        store.mam().append_bulk(&j, msgs)?;
    }
    // Something erased, so compaction has bytes to drop.
    jidstore::gdpr::remove(&store, &bare("bob@localhost"))?;
    store.flush()?;
    Ok(())
}

#[derive(PartialEq, Eq, Debug)]
struct CompactState {
    exports: Vec<Option<Vec<u8>>>,
    counts: Vec<(&'static str, u64)>,
}

fn compact_state(dir: &Path) -> Res<CompactState> {
    let store = reopen(dir)?;
    verify_clean(&store)?;
    Ok(CompactState {
        exports: COMPACT_USERS
            .iter()
            .map(|u| export(&store, &bare(u)))
            .collect::<Res<_>>()?,
        counts: entry_counts(&store)?,
    })
}

fn siblings(dir: &Path, infix: &str) -> Res<Vec<PathBuf>> {
    let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir.parent().unwrap())? {
        let e = e?;
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&format!("{name}{infix}")))
        {
            found.push(e.path());
        }
    }
    Ok(found)
}

/// Checks a killed compaction; returns the outcome.
fn check_compact(dir: &Path, old_inode: u64, reference: &CompactState) -> Res<&'static str> {
    let outcome = match std::fs::metadata(dir) {
        Err(_) => {
            // Between the two renames: every command refuses and names the .old-* directory.
            let out = run_jidstore(dir, &["verify"])?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() || !stderr.contains(".old-") {
                return Err(format!("missing data dir not explained: {stderr}").into());
            }
            let old = siblings(dir, ".old-")?;
            if old.len() != 1 {
                return Err(format!("{} .old-* directories", old.len()).into());
            }
            std::fs::rename(&old[0], dir)?;
            "missing, renamed back from .old-*"
        }
        Ok(m) if m.ino() == old_inode => "old store in place",
        Ok(_) => "new store in place",
    };
    let now = compact_state(dir)?;
    if &now != reference {
        return Err(format!(
            "content differs ({outcome}): counts {:?} vs {:?}",
            now.counts, reference.counts
        )
        .into());
    }
    // What the README says may be deleted.
    for stale in siblings(dir, ".compact-")?
        .into_iter()
        .chain(siblings(dir, ".old-")?)
    {
        std::fs::remove_dir_all(stale)?;
    }
    let out = run_jidstore(dir, &["verify"])?;
    if !out.status.success() {
        return Err(format!("jidstore verify: {}", String::from_utf8_lossy(&out.stdout)).into());
    }
    Ok(outcome)
}

fn scenario_compact(tmp: &Path) -> Res {
    let kills = env_usize("JIDSTORE_CRASH_KILLS", 12);
    let messages = env_usize("JIDSTORE_CRASH_COMPACT_MESSAGES", 5_000);
    let template = tmp.join("compact-template");
    populate_compact(&template, messages)?;
    let reference = compact_state(&template)?;
    let full = tmp.join("compact-full");
    copy_dir(&template, &full)?;
    let started = Instant::now();
    let out = run_jidstore(&full, &["compact"])?;
    let full_run = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        compact_state(&full)?,
        reference,
        "uninterrupted compact changed content"
    );
    std::fs::remove_dir_all(&full)?;

    let mut tally = Tally::default();
    for i in 0..kills {
        // Each run in its own parent, so siblings are this run's only.
        let parent = tmp.join(format!("compact{i}"));
        let dir = parent.join("data");
        copy_dir(&template, &dir)?;
        let inode = std::fs::metadata(&dir)?.ino();
        let mut child = spawn_jidstore(&dir, &["compact"], Stdio::null())?;
        kill_after(&mut child, random_delay(full_run));
        tally.kills += 1;
        match check_compact(&dir, inode, &reference) {
            Ok(outcome) => tally.note(outcome),
            Err(e) => tally.fail("compact", i, &parent, &e),
        }
        std::fs::remove_dir_all(&parent)?;
    }
    println!("crash compact: full run {} ms", full_run.as_millis());
    tally.report(
        "compact",
        &format!(
            "compact of {} users' {messages}-message archives",
            COMPACT_USERS.len()
        ),
    )
}

// ---------------------------------------------------------------------------------------
// Retention expiry

const EXPIRE_ROOM: &str = "lounge@conference.localhost";

/// The ids of alice's archive and of the room's, oldest first.
fn expire_state(store: &Store) -> Res<(Vec<String>, Vec<String>)> {
    let pm = store
        .mam()
        .list(&alice())?
        .into_iter()
        .map(|m| m.id)
        .collect();
    let room = store.muc().list(&bare(EXPIRE_ROOM))?;
    Ok((pm, room.into_iter().map(|m| m.id).collect()))
}

/// alice's archive: `old` messages 200 days ago (bulk, in blocks, every third with an
/// imported id), then 100 from the last day; the room: `old / 4` old and 50 new. The
/// policy's 30 days fall far from every message, so the kills' later clocks select the same.
fn populate_expire(dir: &Path, old: usize) -> Res {
    let store = open(dir)?;
    store.accounts().create(&alice(), "pw")?;
    let now = Timestamp::now().as_secs();
    let at = |i: usize, base: i64| Timestamp::from_secs(base + i64::try_from(i).unwrap());
    let msgs = (0..old + 100).map(|i| {
        let mut m = ingest_message(i);
        m.timestamp = if i < old {
            at(i, now - 200 * 86_400)
        } else {
            at(i, now - 86_400)
        };
        if i % 3 != 0 {
            m.id = None;
        }
        m
    });
    store.mam().append_bulk(&alice(), msgs)?;
    let room = bare(EXPIRE_ROOM);
    for i in 0..old / 4 + 50 {
        let base = if i < old / 4 {
            now - 200 * 86_400
        } else {
            now - 86_400
        };
        let m = jidstore::ext::mam::MucMessage::new(
            at(i, base),
            bare(if i % 2 == 0 {
                "bob@localhost"
            } else {
                "carol@localhost"
            }),
            if i % 2 == 0 { "Bo" } else { "Ca" },
            format!(
                "<message xmlns='jabber:client' type='groupchat'><body>room {i}</body></message>"
            ),
        );
        store.muc().append(&room, &m)?;
    }
    store.flush()?;
    Ok(())
}

/// After a kill: each archive is a suffix of the original (whole messages removed oldest
/// first, never a hole, nothing new removed), trimmed ids answer item-not-found, `verify`
/// is clean, and expiring again ends in the uninterrupted run's state.
fn check_expire(
    dir: &Path,
    before: &(Vec<String>, Vec<String>),
    after: &(Vec<String>, Vec<String>),
    policy: &str,
) -> Res<&'static str> {
    let store = reopen(dir)?;
    verify_clean(&store)?;
    let now = expire_state(&store)?;
    let mut removed = 0;
    for (orig, left, done) in [(&before.0, &now.0, &after.0), (&before.1, &now.1, &after.1)] {
        let k = orig.len() - left.len();
        if left.len() > orig.len() || orig[k..] != left[..] || left.len() < done.len() {
            return Err(format!(
                "archive not a suffix of the original: {} of {} left",
                left.len(),
                orig.len()
            )
            .into());
        }
        removed += k;
    }
    if let Some(gone) = before.0.len().checked_sub(now.0.len()).filter(|k| *k > 0) {
        let q = Query {
            page: PageFrom::After(before.0[gone - 1].clone()),
            ..Query::default()
        };
        if !matches!(
            store.mam().query(&alice(), &q),
            Err(jidstore::Error::NotFound(_))
        ) {
            return Err("a trimmed id still pages".into());
        }
    }
    drop(store);
    let out = run_jidstore(dir, &["expire", "--policy", policy])?;
    if !out.status.success() {
        return Err(format!("expire again: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let store = reopen(dir)?;
    verify_clean(&store)?;
    if expire_state(&store)? != *after {
        return Err("expire again did not end where an uninterrupted run does".into());
    }
    let total = before.0.len() + before.1.len() - after.0.len() - after.1.len();
    Ok(match removed {
        0 => "nothing removed yet",
        r if r == total => "all removed",
        _ => "part removed",
    })
}

fn scenario_expire(tmp: &Path) -> Res {
    let kills = env_usize("JIDSTORE_CRASH_KILLS", 12);
    let old = env_usize("JIDSTORE_CRASH_EXPIRE_MESSAGES", 12_000);
    let template = tmp.join("expire-template");
    populate_expire(&template, old)?;
    let policy = tmp.join("retention.json");
    std::fs::write(
        &policy,
        r#"{"default": {"archive_days": 30, "room_days": 30}}"#,
    )?;
    let policy = policy.to_str().ok_or("policy path")?;
    let before = expire_state(&reopen(&template)?)?;
    let full = tmp.join("expire-full");
    copy_dir(&template, &full)?;
    let started = Instant::now();
    let out = run_jidstore(&full, &["expire", "--policy", policy])?;
    let full_run = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = expire_state(&reopen(&full)?)?;
    assert_eq!(
        (after.0.len(), after.1.len()),
        (100, 50),
        "uninterrupted expire"
    );
    assert_eq!(after.0[..], before.0[old..]);
    std::fs::remove_dir_all(&full)?;

    let mut tally = Tally::default();
    for i in 0..kills {
        let dir = tmp.join(format!("expire{i}"));
        copy_dir(&template, &dir)?;
        let mut child = spawn_jidstore(&dir, &["expire", "--policy", policy], Stdio::null())?;
        kill_after(&mut child, random_delay(full_run));
        tally.kills += 1;
        match check_expire(&dir, &before, &after, policy) {
            Ok(outcome) => tally.note(outcome),
            Err(e) => tally.fail("expire", i, &dir, &e),
        }
        std::fs::remove_dir_all(&dir)?;
    }
    println!("crash expire: full run {} ms", full_run.as_millis());
    tally.report(
        "expire",
        &format!("expire of a {}-message archive and a room", old + 100),
    )
}

type Scenario = fn(&Path) -> Res;

fn main() -> Res {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child-ingest") {
        return child_ingest(Path::new(&args[2]), args[3].parse()?, args[4].parse()?);
    }
    if args.get(1).map(String::as_str) == Some("--child-live") {
        return child_live(Path::new(&args[2]), args[3].parse()?);
    }
    let only = std::env::var("JIDSTORE_CRASH_ONLY").unwrap_or_default();
    let wanted = |s: &str| only.is_empty() || only.split(',').any(|o| o.trim() == s);
    let tmp = tempfile::tempdir()?;
    let mut failures = Vec::new();
    let scenarios: [(&str, Scenario); 5] = [
        ("ingest", scenario_ingest),
        ("live", scenario_live),
        ("import", scenario_import),
        ("compact", scenario_compact),
        ("expire", scenario_expire),
    ];
    for (name, run) in scenarios {
        if wanted(name) {
            let started = Instant::now();
            if let Err(e) = run(tmp.path()) {
                failures.push(format!("{name}: {e}"));
            }
            println!("crash {name}: {:.1} s", started.elapsed().as_secs_f64());
        }
    }
    if failures.is_empty() {
        println!("crash_ops passed");
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}
