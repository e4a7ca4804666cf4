//! Kill -9 of `jidstore unregister --from-file` during erasures on PostgreSQL (issue 15): a
//! database holds several subjects with data in every class (account, roster, vCard,
//! private XML, a large 1-1 archive and inbox, offline messages, group-chat messages, a PEP
//! node with many items and a subscriber, last activity, a privacy list, a blocklist,
//! generic records) and a keeper, bob, who shares the archive, the inbox and the room with
//! each of them. Every kill runs on a fresh copy of that database (`CREATE DATABASE ...
//! TEMPLATE`).
//!
//! The kill points, chosen by observed state, never by a delay that must hit a window:
//!
//! - `erase:in-commit` / `erase:committed` / `erase:swept-chunk`: the binary kills itself
//!   (the crash tests' hook `JIDSTORE_TEST_KILL_AT`) inside the first subject's commit
//!   transaction, its writes sent but not committed (the state must be the one before,
//!   nothing queued), right after that commit, or after the first chunk its sweep deleted
//!   (then the first subject must be gone with its sweep left pending: the
//!   `jidstore_sweep` table is not empty before the reopen);
//! - after the `k`-th line of output (the `k`-th subject erased), at once;
//! - after the `k`-th line, then at a random moment of the next subject's erasure (the
//!   moment does not decide the outcome, it only spreads the kills over the commit and the
//!   sweep, as `tests/crash.rs` does).
//!
//! After each kill, as in the sled crash test (`tests/crash.rs`): the store reopens (which
//! finishes pending sweeps: the sweep table must then be empty), `jidstore verify` is clean,
//! and the whole state (every subject's and bob's export at a fixed time, byte for byte,
//! and every keyspace's entry count but the audit log's) equals the state after an
//! uninterrupted run over the first `j` subjects for some `j`: each subject wholly present
//! (export identical to before) or wholly gone (identical to a clean erasure's), never torn.
//! Running the same file again then ends in the full run's state.
//!
//! `JIDSTORE_PG_CRASH_KILLS` (default 15) sets the kills, `JIDSTORE_PG_CRASH_SUBJECTS`
//! (default 4), `JIDSTORE_PG_CRASH_MESSAGES` (default 3000 per subject) and
//! `JIDSTORE_PG_CRASH_RECORDS` (default 200 roster items, offline messages and PEP items per
//! subject) the size. `cargo test --test integration pg_crash -- --nocapture` prints the
//! counts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jidstore::ext::mam::{Direction, MucMessage, PmMessage};
use jidstore::ext::offline::OfflineMessage;
use jidstore::ext::pubsub::{Node, NodeType, SubState};
use jidstore::ext::roster::{Ask, RosterItem, Subscription};
use jidstore::{BareJid, Config, Jid, Store, Timestamp};

#[path = "crash_util.rs"]
mod crash_util;

use crash_util::{Res, bare, entry_counts, env_usize, export, rand_below};

use crate::pg;
use crate::postgres::jidstore_db;

const T0: i64 = 1_700_000_000;

fn subject(i: usize) -> BareJid {
    bare(&format!("s{i}@localhost"))
}

fn bob() -> BareJid {
    bare("bob@localhost")
}

fn open(url: &str) -> Res<Store> {
    Ok(Config::database(url).scram_iterations(16).open()?)
}

/// Subject `i` with data in every class, sharing an archive, an inbox, the room and a PEP
/// subscription with bob.
#[expect(
    clippy::too_many_lines,
    reason = "one linear script of a subject's data"
)]
fn populate_subject(store: &Store, i: usize, messages: usize, records: usize) -> Res {
    let (s, bob) = (subject(i), bob());
    let at = |secs: usize| Timestamp::from_secs(T0 + i64::try_from(secs).unwrap());
    store.accounts().create(&s, "pw")?;
    store.vcard().set(
        &s,
        &format!("<vCard xmlns='vcard-temp'><FN>Subject {i}</FN></vCard>"),
    )?;
    store.private().set(
        &s,
        "storage:bookmarks",
        "<storage xmlns='storage:bookmarks'><conference jid='room@muc.localhost'/></storage>",
    )?;
    store.private().set(
        &s,
        "storage:rosternotes",
        "<storage xmlns='storage:rosternotes'><note jid='bob@localhost'>bob</note></storage>",
    )?;
    let item = |jid: &BareJid, name: String| RosterItem {
        jid: jid.clone(),
        name: Some(name),
        subscription: Subscription::Both,
        ask: Ask::None,
        groups: vec!["Friends".into()],
        askmessage: None,
    };
    store.roster().set(&s, &item(&bob, "Bob".into()))?;
    store
        .roster()
        .set(&bob, &item(&s, format!("Subject {i}")))?;
    let (sr, br) = (
        Jid::parse(&format!("{s}/phone"))?,
        Jid::parse("bob@localhost/laptop")?,
    );
    let mut archive = Vec::with_capacity(messages);
    for m in 0..messages {
        let outgoing = m % 2 == 0;
        let (from, to) = if outgoing { (&sr, &br) } else { (&br, &sr) };
        let stanza = format!(
            "<message xmlns='jabber:client' from='{from}' to='{to}' id='m{m}' type='chat'><body>message {m} of subject {i}, some text the size of a chat line</body></message>"
        );
        let msg = |outgoing| PmMessage {
            id: None,
            timestamp: at(m),
            from: from.clone(),
            to: to.clone(),
            direction: if outgoing {
                Direction::Outgoing
            } else {
                Direction::Incoming
            },
            origin_id: Some(format!("m{m}")),
            stanza: stanza.clone(),
        };
        archive.push(msg(outgoing));
        if m % 10 == 0 {
            store.mam().append(&bob, &msg(!outgoing))?;
            store
                .inbox()
                .on_message(&s, &bob, &stanza, None, at(m), !outgoing)?;
            store
                .inbox()
                .on_message(&bob, &s, &stanza, None, at(m), outgoing)?;
        }
    }
    store.mam().append_bulk(&s, archive)?;
    let room = bare("room@muc.localhost");
    for (n, (sender, nick)) in [
        (&s, format!("s{i}")),
        (&bob, "bob".into()),
        (&s, format!("s{i}")),
    ]
    .into_iter()
    .enumerate()
    {
        store.muc().append(
            &room,
            &MucMessage {
                id: None,
                timestamp: at(n),
                sender: sender.clone(),
                nick,
                stanza: format!(
                    "<message xmlns='jabber:client' type='groupchat'><body>room line {n} of s{i}</body></message>"
                ),
            },
        )?;
    }
    let pep = "urn:xmpp:avatar:metadata";
    store.pubsub().create_node(&Node {
        service: s.clone(),
        node: pep.into(),
        owner: s.clone(),
        kind: NodeType::Pep,
        access_model: "presence".into(),
        config: vec![],
        created_at: at(0),
    })?;
    store
        .pubsub()
        .subscribe(&s, pep, &bob, SubState::Subscribed)?;
    store.pubsub().publish(
        &s,
        pep,
        "from-bob",
        &bob,
        "<metadata xmlns='urn:xmpp:avatar:metadata'/>",
        at(0),
    )?;
    for r in 0..records {
        store.roster().set(
            &s,
            &item(
                &bare(&format!("contact{r}@example.org")),
                format!("Contact {r}"),
            ),
        )?;
        store.offline().store(
            &s,
            &OfflineMessage {
                from: br.clone(),
                to: sr.clone(),
                timestamp: at(r),
                expires: None,
                stanza: format!("<message><body>offline {r}</body></message>"),
            },
        )?;
        store.pubsub().publish(
            &s,
            pep,
            &format!("item{r}"),
            &s,
            "<metadata xmlns='urn:xmpp:avatar:metadata'/>",
            at(r),
        )?;
    }
    store.last().set(&s, T0 + 99, "away")?;
    jidstore::__internal::sample::work_privacy_list(store, &s)?;
    store
        .blocklist()
        .block(&s, &[Jid::parse("troll@bad.example")?])?;
    store.generic().set(&s, "pep", Some("{ }"))?;
    store.generic().append(
        &s,
        "archive",
        None,
        at(0),
        Some("bob@localhost"),
        "<message xmlns='jabber:client'><body>prosody</body></message>",
    )?;
    Ok(())
}

/// The whole state the test compares: every subject's and bob's export (fixed time), and
/// every keyspace's entry count but the audit log's.
#[derive(PartialEq, Eq)]
struct Snapshot {
    exports: Vec<Option<Vec<u8>>>,
    counts: Vec<(&'static str, u64)>,
}

/// Rows of the sweep queue, read with plain SQL (opening the store would finish them).
fn pending_sweeps(url: &str) -> Res<i64> {
    let mut c = postgres::Client::connect(url, postgres::NoTls)?;
    Ok(c.query_one("SELECT count(*) FROM jidstore_sweep", &[])?
        .get(0))
}

/// Opens the store (finishing pending sweeps), checks the sweep queue is then empty and
/// `jidstore verify` is clean, and returns the state.
fn snapshot(url: &str, subjects: usize) -> Res<Snapshot> {
    let snap = {
        let store = open(url)?;
        let mut exports = Vec::new();
        for who in (0..subjects).map(subject).chain([bob()]) {
            exports.push(export(&store, &who)?);
        }
        Snapshot {
            exports,
            counts: entry_counts(&store)?,
        }
    };
    let left = pending_sweeps(url)?;
    if left != 0 {
        return Err(format!("{left} sweeps still queued after the reopen").into());
    }
    let r = jidstore_db(url, false, &["verify"]);
    if r.code != 0 {
        return Err(format!("jidstore verify: {}{}", r.stdout, r.stderr).into());
    }
    Ok(snap)
}

/// The cluster's maintenance database: creates and drops the copies.
fn admin() -> Res<postgres::Client> {
    Ok(postgres::Client::connect(
        &pg::shared()?.url("postgres"),
        postgres::NoTls,
    )?)
}

fn db_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// A new database copied from `template` (no session may be connected to it); its URL.
fn copy_of(admin: &mut postgres::Client, template: &str, name: &str) -> Res<String> {
    admin.batch_execute(&format!(
        "CREATE DATABASE {name} TEMPLATE {}",
        db_name(template)
    ))?;
    Ok(pg::shared()?.url(name))
}

fn drop_db(admin: &mut postgres::Client, url: &str) -> Res {
    admin.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        db_name(url)
    ))?;
    Ok(())
}

/// `jidstore --database URL unregister --from-file FILE`, stdout piped; with `kill_at`, the
/// binary kills itself there.
fn unregister(url: &str, file: &Path, kill_at: Option<&str>) -> Res<Child> {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jidstore"));
    c.env_remove("JIDSTORE_DATA_DIR")
        .env_remove("JIDSTORE_DATABASE_URL")
        .env_remove("JIDSTORE_TEST_KILL_AT")
        .arg("--database")
        .arg(url)
        .arg("unregister")
        .arg("--from-file")
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(point) = kill_at {
        c.env("JIDSTORE_TEST_KILL_AT", point);
    }
    Ok(c.spawn()?)
}

/// Writes the subjects `0..n` one a line.
fn subject_file(path: &Path, n: usize) -> Res {
    let text: Vec<String> = (0..n).map(|i| subject(i).to_string()).collect();
    let text = text.join("\n") + "\n";
    std::fs::write(path, text)?;
    Ok(())
}

/// Where a kill was aimed.
#[derive(Clone, Copy, Debug)]
enum Point {
    /// The binary's own SIGKILL at a named step (of the first subject).
    Hook(&'static str),
    /// SIGKILL once `k` subjects are reported erased.
    AfterLine(usize),
    /// SIGKILL at a random moment of the erasure after the `k`-th line.
    During(usize),
}

#[test]
fn pg_crash_kill_9_during_unregister_leaves_subjects_whole() {
    if pg::database().is_none() {
        return;
    }
    run().unwrap();
}

#[expect(
    clippy::too_many_lines,
    reason = "one scenario, its checks and its report"
)]
fn run() -> Res {
    let kills = env_usize("JIDSTORE_PG_CRASH_KILLS", 15);
    let subjects = env_usize("JIDSTORE_PG_CRASH_SUBJECTS", 4).max(2);
    let messages = env_usize("JIDSTORE_PG_CRASH_MESSAGES", 3000);
    let records = env_usize("JIDSTORE_PG_CRASH_RECORDS", 200);
    let tmp = tempfile::tempdir()?;
    let begun = Instant::now();
    let mut admin = admin()?;
    let template = pg::database().ok_or("no database")?;
    {
        let store = open(&template)?;
        store.accounts().create(&bob(), "pw")?;
        store
            .vcard()
            .set(&bob(), "<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>")?;
        for i in 0..subjects {
            populate_subject(&store, i, messages, records)?;
        }
        store.flush()?;
    }
    let tag = db_name(&template).to_owned();
    eprintln!(
        "pg_crash: populated in {:.1} s",
        begun.elapsed().as_secs_f64()
    );

    // The reference states: after an uninterrupted run over the first j subjects.
    let mut refs = Vec::new();
    let mut full_run = Duration::ZERO;
    for j in 0..=subjects {
        let url = copy_of(&mut admin, &template, &format!("{tag}_ref{j}"))?;
        if j > 0 {
            let file = tmp.path().join(format!("ref{j}.txt"));
            subject_file(&file, j)?;
            let started = Instant::now();
            let out = unregister(&url, &file, None)?.wait_with_output()?;
            assert!(out.status.success(), "uninterrupted unregister of {j}");
            if j == subjects {
                full_run = started.elapsed();
            }
        }
        refs.push(snapshot(&url, subjects)?);
        drop_db(&mut admin, &url)?;
    }
    for j in 1..=subjects {
        assert!(
            refs[j].exports[j - 1] != refs[0].exports[j - 1],
            "erasing subject {} changed nothing",
            j - 1
        );
    }
    eprintln!(
        "pg_crash: references in {:.1} s",
        begun.elapsed().as_secs_f64()
    );
    let per_subject = full_run / u32::try_from(subjects)?;
    let file = tmp.path().join("all.txt");
    subject_file(&file, subjects)?;

    let (mut states, mut present, mut gone, mut torn) = (vec![0usize; subjects + 1], 0, 0, 0);
    let (mut pending_at_kill, mut finished_first, mut failed) = (0, 0, 0);
    for i in 0..kills {
        let point = match i % 5 {
            0 => Point::Hook("erase:in-commit"),
            1 => Point::Hook("erase:committed"),
            2 => Point::Hook("erase:swept-chunk"),
            3 => Point::AfterLine(1 + (i / 5) % (subjects - 1)),
            _ => Point::During((i / 5) % subjects),
        };
        let url = copy_of(&mut admin, &template, &format!("{tag}_kill{i}"))?;
        let hook = match point {
            Point::Hook(p) => Some(p),
            _ => None,
        };
        let mut child = unregister(&url, &file, hook)?;
        let mut lines = BufReader::new(child.stdout.take().ok_or("stdout")?).lines();
        let wait_lines = match point {
            Point::Hook(_) => 0,
            Point::AfterLine(k) | Point::During(k) => k,
        };
        for _ in 0..wait_lines {
            if lines.next().transpose()?.is_none() {
                break;
            }
        }
        if let Point::During(_) = point {
            let micros = u64::try_from(rand_below(per_subject.as_micros()))?;
            std::thread::sleep(Duration::from_micros(micros));
        }
        if hook.is_none() {
            let _ = child.kill();
        }
        let exit = child.wait()?;
        drop(lines);
        if exit.success() {
            finished_first += 1;
        } else if hook.is_some() {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(exit.signal(), Some(9), "{point:?}: not killed at the hook");
        }
        let pending = pending_sweeps(&url)?;
        if pending > 0 {
            pending_at_kill += 1;
        }
        // Inside the commit nothing is queued; after it the first subject's sweep is.
        let expected = match hook {
            Some("erase:in-commit") => Some((false, 0)),
            Some(_) => Some((true, 1)),
            None => None,
        };
        if let Some((queued, _)) = expected
            && queued != (pending > 0)
        {
            failed += 1;
            eprintln!("kill {i} at {point:?}: {pending} sweeps queued after the kill");
        }
        let now = match snapshot(&url, subjects) {
            Ok(now) => now,
            Err(e) => {
                failed += 1;
                eprintln!("kill {i} at {point:?}: {e} (database {url} kept)");
                continue;
            }
        };
        // Each subject: wholly present or wholly gone.
        for s in 0..subjects {
            if now.exports[s] == refs[0].exports[s] {
                present += 1;
            } else if now.exports[s] == refs[subjects].exports[s] {
                gone += 1;
            } else {
                torn += 1;
                eprintln!("kill {i} at {point:?}: subject {s} torn");
            }
        }
        // The whole state: that of a clean run over a prefix of the file.
        match refs.iter().position(|r| *r == now) {
            Some(j) if expected.is_some_and(|(_, e)| e != j) => {
                failed += 1;
                eprintln!("kill {i} at {point:?}: {j} subjects erased");
                continue;
            }
            Some(j) => states[j] += 1,
            None => {
                failed += 1;
                eprintln!(
                    "kill {i} at {point:?}: the state is no clean prefix's\n  counts now {:?}\n  before     {:?}\n  after      {:?}",
                    now.counts, refs[0].counts, refs[subjects].counts
                );
                continue;
            }
        }
        // Running the file again completes the erasures.
        let out = unregister(&url, &file, None)?.wait_with_output()?;
        if !out.status.success() || snapshot(&url, subjects)? != refs[subjects] {
            failed += 1;
            eprintln!("kill {i} at {point:?}: the rerun did not end in the full run's state");
            continue;
        }
        drop_db(&mut admin, &url)?;
    }
    drop_db(&mut admin, &template)?;
    println!(
        "pg_crash: {kills} SIGKILLs of `unregister --from-file` over {subjects} subjects \
         ({messages} archived messages, {records} roster items, offline messages and PEP items \
         each; uninterrupted run {:.0} ms): subjects {present} wholly present, {gone} wholly \
         gone, {torn} torn; states by subjects erased {states:?}; {pending_at_kill} kills left \
         a sweep pending (finished on reopen); {finished_first} runs ended before the kill; \
         {failed} failed",
        full_run.as_secs_f64() * 1e3
    );
    assert_eq!(torn, 0, "torn subjects");
    assert_eq!(failed, 0, "failed kills");
    Ok(())
}
