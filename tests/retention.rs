//! Storage limitation (issue 17): archive trims (`Mam::trim`, `MucArchive::trim`), offline
//! retention, retention policies and `expire`, and `jidstore expire` / `jidstore mam delete`
//! through the binary.

use jidstore::ext::mam::{Direction, MucMessage, PageFrom, PmMessage, Query, TRIM_CHUNK, Trim};
use jidstore::ext::offline::OfflineMessage;
use jidstore::gdpr::retention::{ExpiryCounts, Limit, Retention};
use jidstore::{BareJid, Error, Store, Timestamp};

use crate::util::*;

const T0: i64 = 1_700_000_000;

fn peer(i: usize) -> &'static str {
    if i.is_multiple_of(3) {
        "carol@localhost/c"
    } else {
        "bob@localhost/b"
    }
}

/// Message `i` of alice's archive: at `T0 + i` s, every third with an imported id.
fn pm(i: usize) -> PmMessage {
    let mut m = PmMessage::new(
        Timestamp::from_secs(T0 + i64::try_from(i).unwrap()),
        full(peer(i)),
        full("alice@localhost/a"),
        Direction::Incoming,
        format!("<message xmlns='jabber:client'><body>message {i}</body></message>"),
    );
    if i % 3 == 1 {
        m.id = Some(format!("imp{i}"));
    }
    m
}

fn ids(store: &Store, owner: &BareJid) -> Vec<String> {
    store
        .mam()
        .list(owner)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect()
}

fn with_count(store: &Store, owner: &BareJid, with: &str) -> u64 {
    let q = Query {
        with: Some(full(with)),
        count: true,
        ..Query::default()
    };
    store.mam().query(owner, &q).unwrap().count.unwrap()
}

#[track_caller]
fn assert_verify_clean(store: &Store) {
    let report = jidstore::verify(store).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// An archive of bulk blocks (several trim chunks) followed by single records.
fn archive(store: &Store, owner: &BareJid, bulk: usize, single: usize) -> Vec<String> {
    store.mam().append_bulk(owner, (0..bulk).map(pm)).unwrap();
    for i in bulk..bulk + single {
        store.mam().append(owner, &pm(i)).unwrap();
    }
    ids(store, owner)
}

#[test]
fn trim_removes_a_prefix_across_blocks_chunks_and_indexes() -> TestResult {
    let (_dir, store, alice, _bob) = alice_and_bob();
    let n = 2 * TRIM_CHUNK + 600;
    let all = archive(&store, &alice, n, 5);
    assert_eq!(all.len(), n + 5);
    // Mid-block cut: 1,234 is not a multiple of the block size.
    let cut = 1_234;
    let before = Trim::before(Timestamp::from_secs(T0 + i64::try_from(cut)?));
    assert_eq!(store.mam().count_trim(&alice, &before)?, cut as u64);
    assert_eq!(ids(&store, &alice), all, "a count wrote something");
    assert_eq!(store.mam().trim(&alice, &before)?, cut as u64);
    assert_eq!(ids(&store, &alice), all[cut..]);
    assert_eq!(
        store.mam().trim(&alice, &before)?,
        0,
        "a second trim found more"
    );
    // The `with` index lost exactly the trimmed messages.
    let left = |p: &str| (cut..n + 5).filter(|i| peer(*i) == p).count() as u64;
    assert_eq!(
        with_count(&store, &alice, "bob@localhost"),
        left("bob@localhost/b")
    );
    assert_eq!(
        with_count(&store, &alice, "carol@localhost"),
        left("carol@localhost/c")
    );
    // A trimmed id, native or imported, is item-not-found; the next one still pages.
    for gone in [&all[0], &all[1], &all[cut - 1]] {
        let q = Query {
            page: PageFrom::After(gone.clone()),
            ..Query::default()
        };
        assert!(
            matches!(store.mam().query(&alice, &q), Err(Error::NotFound(_))),
            "{gone}"
        );
        assert_eq!(store.mam().get(&alice, gone)?, None);
    }
    let q = Query {
        page: PageFrom::After(all[cut].clone()),
        max: Some(3),
        ..Query::default()
    };
    let page = store.mam().query(&alice, &q)?;
    let got: Vec<&str> = page.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(got, [&all[cut + 1], &all[cut + 2], &all[cut + 3]]);
    assert_verify_clean(&store);

    // By count: all but the newest 10, then everything.
    assert_eq!(
        store.mam().trim(&alice, &Trim::keep_newest(10))?,
        (n + 5 - cut - 10) as u64
    );
    assert_eq!(ids(&store, &alice), all[n + 5 - 10..]);
    assert_verify_clean(&store);
    assert_eq!(store.mam().trim(&alice, &Trim::all())?, 10);
    assert_eq!(store.mam().count(&alice)?, 0);
    assert_eq!(with_count(&store, &alice, "bob@localhost"), 0);
    assert_verify_clean(&store);
    // Ids are never reused: a new message gets a new id, an old imported id is free again.
    let id = store.mam().append(&alice, &pm(n + 10))?;
    assert!(!all.contains(&id));
    let mut again = pm(1);
    again.timestamp = Timestamp::from_secs(T0 + 100_000);
    assert_eq!(store.mam().append(&alice, &again)?, "imp1");
    assert_verify_clean(&store);
    Ok(())
}

#[test]
fn trim_by_time_and_count_together_and_no_archive() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    let all = archive(&store, &alice, 100, 0);
    // Before T0+20 removes 20; keep_newest 50 removes 50: the larger prefix wins.
    let t = Trim::before(Timestamp::from_secs(T0 + 20)).and_keep_newest(50);
    assert_eq!(store.mam().count_trim(&alice, &t)?, 50);
    assert_eq!(store.mam().trim(&alice, &t)?, 50);
    assert_eq!(ids(&store, &alice), all[50..]);
    let t = Trim::before(Timestamp::from_secs(T0 + 70)).and_keep_newest(45);
    assert_eq!(store.mam().trim(&alice, &t)?, 20);
    assert_eq!(ids(&store, &alice), all[70..]);
    // Nothing selected, nothing held, no account: 0, no error.
    assert_eq!(store.mam().trim(&alice, &Trim::default())?, 0);
    assert_eq!(store.mam().trim(&bob, &Trim::all())?, 0);
    assert_eq!(
        store.mam().trim(&bare("nobody@localhost"), &Trim::all())?,
        0
    );
    assert_verify_clean(&store);
    Ok(())
}

fn muc(i: usize) -> MucMessage {
    let (sender, nick) = if i.is_multiple_of(2) {
        ("alice@localhost", "Al")
    } else {
        ("bob@localhost", "Bo")
    };
    MucMessage::new(
        Timestamp::from_secs(T0 + i64::try_from(i).unwrap()),
        bare(sender),
        nick,
        format!("<message xmlns='jabber:client' type='groupchat'><body>room {i}</body></message>"),
    )
}

#[test]
fn room_trim_keeps_nick_and_sender_indexes_and_lists_rooms() -> TestResult {
    let (_dir, store, alice, _bob) = alice_and_bob();
    let lounge = bare("lounge@conference.localhost");
    let attic = bare("attic@conference.localhost");
    for i in 0..40 {
        store.muc().append(&lounge, &muc(i))?;
    }
    store.muc().append(&attic, &muc(0))?;
    let rooms: Vec<BareJid> = store.muc().rooms().collect::<Result<_, _>>()?;
    assert_eq!(rooms, [attic.clone(), lounge.clone()]);
    let all: Vec<String> = store
        .muc()
        .list(&lounge)?
        .into_iter()
        .map(|m| m.id)
        .collect();
    let t = Trim::before(Timestamp::from_secs(T0 + 15));
    assert_eq!(store.muc().count_trim(&lounge, &t)?, 15);
    assert_eq!(store.muc().trim(&lounge, &t)?, 15);
    let left: Vec<String> = store
        .muc()
        .list(&lounge)?
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(left, all[15..]);
    // alice sent the even ones: 15..40 holds 12 of them (16, 18, ..., 38), plus attic's.
    assert_eq!(store.muc().by_sender(&alice)?.len(), 13);
    let q = Query {
        with: Some(full("lounge@conference.localhost/Bo")),
        count: true,
        ..Query::default()
    };
    assert_eq!(store.muc().query(&lounge, &q)?.count, Some(13));
    assert_verify_clean(&store);
    // A room's whole history; the other room is untouched.
    assert_eq!(store.muc().trim(&lounge, &Trim::all())?, 25);
    assert_eq!(store.muc().count(&lounge)?, 0);
    assert_eq!(store.muc().count(&attic)?, 1);
    let rooms: Vec<BareJid> = store.muc().rooms().collect::<Result<_, _>>()?;
    assert_eq!(rooms, [attic]);
    assert_verify_clean(&store);
    Ok(())
}

#[test]
fn policy_json_resolves_most_specific_limit_and_refuses_mistakes() -> TestResult {
    let p = Retention::from_json(
        r#"{
            "default": { "archive_days": 365, "offline_days": 30 },
            "domains": { "Example.ORG": { "archive_days": 90, "archive_max": 1000 } },
            "jids": { "Alice@example.org": { "archive_days": "never" } }
        }"#,
    )?;
    let alice = p.rule_for(&bare("alice@example.org"));
    assert_eq!(alice.archive_days, Some(Limit::Never));
    assert_eq!(alice.archive_max, Some(Limit::At(1000)));
    assert_eq!(alice.offline_days, Some(Limit::At(30)));
    let bob = p.rule_for(&bare("bob@example.org"));
    assert_eq!(bob.archive_days, Some(Limit::At(90)));
    let carol = p.rule_for(&bare("carol@other.net"));
    assert_eq!(carol.archive_days, Some(Limit::At(365)));
    assert_eq!(carol.archive_max, None);
    assert_eq!(carol.room_days, None);
    for (bad, says) in [
        (r#"{"default": {"archive_dayz": 3}}"#, "archive_dayz"),
        (r#"{"default": {"archive_days": 0}}"#, "at least 1"),
        (r#"{"default": {"room_max": "forever"}}"#, "\"forever\""),
        (r#"{"domains": {"bad domain": {}}}"#, "bad domain"),
        (r#"{"jids": {"@x": {}}}"#, "@x"),
        (r#"{"defaults": {}}"#, "defaults"),
        ("[", "retention policy"),
    ] {
        let e = Retention::from_json(bad).unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
        assert!(!e.contains('\n'), "{e}");
    }
    Ok(())
}

fn offline(secs: i64) -> OfflineMessage {
    OfflineMessage::new(
        full("dave@elsewhere/d"),
        full("x@localhost"),
        Timestamp::from_secs(secs),
        "<message xmlns='jabber:client'><body>offline</body></message>",
    )
}

#[test]
fn expire_applies_each_jids_limits_and_a_dry_run_counts_the_same() -> TestResult {
    let (_dir, store) = store();
    let now = Timestamp::from_secs(T0 + 100 * 86_400);
    let day = |d: i64| Timestamp::from_secs(T0 + d * 86_400);
    let alice = user(&store, "alice@example.org");
    let bob = user(&store, "bob@example.org");
    let carol = user(&store, "carol@other.net");
    for u in [&alice, &bob, &carol] {
        // One message a day, days 0..100.
        let msgs = (0..100).map(|d| {
            let mut m = pm(0);
            m.id = None;
            m.timestamp = day(d);
            m
        });
        store.mam().append_bulk(u, msgs)?;
        for d in [10, 95] {
            store.offline().store(u, &offline(day(d).as_secs()))?;
        }
    }
    let room = bare("lounge@conference.example.org");
    for d in 0..100 {
        let mut m = muc(0);
        m.timestamp = day(d);
        store.muc().append(&room, &m)?;
    }
    let policy = Retention::from_json(
        r#"{
            "default": { "archive_days": 30, "offline_days": 7 },
            "domains": { "conference.example.org": { "room_max": 5 } },
            "jids": { "bob@example.org": { "archive_days": "never", "archive_max": 60 } }
        }"#,
    )?;
    let dry = jidstore::gdpr::expire(&store, &policy, now, true)?;
    assert_eq!(store.mam().count(&alice)?, 100, "a dry run wrote");
    let done = jidstore::gdpr::expire(&store, &policy, now, false)?;
    assert!(dry.dry_run && !done.dry_run);
    assert_eq!(dry.domains, done.domains);
    assert_eq!((done.accounts, done.rooms), (3, 1));
    let org = &done.domains["example.org"];
    // alice: days 0..70 (before day 70); bob: all but the newest 60.
    assert_eq!(org.archive_messages, 70 + 40);
    assert_eq!(org.offline_messages, 2);
    assert_eq!(done.domains["other.net"].archive_messages, 70);
    assert_eq!(done.domains["conference.example.org"].room_messages, 95);
    assert_eq!(done.total().archive_messages, 180);
    assert_eq!(store.mam().count(&alice)?, 30);
    assert_eq!(store.mam().count(&bob)?, 60);
    assert_eq!(store.muc().count(&room)?, 5);
    let kept = store.offline().list(&carol)?;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].timestamp, day(95));
    // Applying it again at the same time finds nothing more.
    let again = jidstore::gdpr::expire(&store, &policy, now, false)?;
    assert_eq!(again.total(), ExpiryCounts::default());
    assert_verify_clean(&store);
    Ok(())
}

/// A closed store at `<dir>/data` with alice's archive of 3 old and 2 new messages (by
/// real time), a room with the same, and the archive's ids.
fn cli_store() -> (tempfile::TempDir, std::path::PathBuf, Vec<String>) {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let now = Timestamp::now().as_secs();
    let at = [
        now - 50 * 86_400,
        now - 40 * 86_400,
        now - 31 * 86_400,
        now - 3600,
        now - 60,
    ];
    for (i, t) in at.iter().enumerate() {
        let mut m = pm(i);
        m.id = None;
        m.timestamp = Timestamp::from_secs(*t);
        store.mam().append(&alice, &m).unwrap();
        let mut r = muc(i);
        r.timestamp = Timestamp::from_secs(*t);
        store
            .muc()
            .append(&bare("lounge@conference.localhost"), &r)
            .unwrap();
    }
    let all = ids(&store, &alice);
    store.flush().unwrap();
    drop(store);
    let data = dir.path().join("data");
    (dir, data, all)
}

#[test]
fn cli_expire_reports_then_removes_and_is_audited() -> TestResult {
    let (dir, data, all) = cli_store();
    let policy = dir.path().join("retention.json");
    std::fs::write(
        &policy,
        r#"{"default": {"archive_days": 30, "room_max": 4}}"#,
    )?;
    let p = policy.to_str().unwrap();
    let r = jidstore_settled(&data, &["--json", "expire", "--policy", p, "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["total"]["archive_messages"], 3);
    assert_eq!(doc["total"]["room_messages"], 1);
    assert_eq!(doc["domains"]["localhost"]["archive_messages"], 3);
    let r = jidstore(&data, &["expire", "--policy", p]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with(
            "Removed 3 1-1 archive messages, 1 group-chat messages, 0 offline messages"
        ),
        "{}",
        r.stdout
    );
    let r = jidstore(&data, &["--json", "mam", "query", "alice", "localhost"]);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout)?;
    let left: Vec<&str> = doc["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(left, [all[3].as_str(), all[4].as_str()]);
    let r = jidstore(&data, &["audit"]);
    let line = r
        .stdout
        .lines()
        .find(|l| l.contains(" expire "))
        .expect("an expire entry");
    assert!(
        line.contains("archive_messages=3") && line.contains("room_messages=1"),
        "{line}"
    );
    assert!(!r.stdout.contains("alice"), "{}", r.stdout);
    // A second run removes nothing; a bad policy is one line naming the file, exit 1.
    let r = jidstore(&data, &["--json", "expire", "--policy", p]);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(doc["total"]["archive_messages"], 0);
    std::fs::write(&policy, r#"{"default": {"archive_days": -1}}"#)?;
    let r = jidstore(&data, &["expire", "--policy", p]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("retention.json"), "{}", r.stderr);
    let r = jidstore(&data, &["expire", "--policy", "/nonexistent/policy.json"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("/nonexistent/policy.json"),
        "{}",
        r.stderr
    );
    assert_eq!(jidstore(&data, &["verify"]).code, 0);
    Ok(())
}

#[test]
fn cli_mam_delete_one_before_all_and_room() -> TestResult {
    let (_dir, data, all) = cli_store();
    let r = jidstore_settled(
        &data,
        &["mam", "delete", "alice", "localhost", "--id", &all[1]],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "Deleted 1 archived messages of alice@localhost\n");
    let r = jidstore(
        &data,
        &["mam", "delete", "alice", "localhost", "--id", &all[1]],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no message with id"), "{}", r.stderr);
    // Before a time between the old and the new messages: the two old ones left.
    let cut = Timestamp::from_secs(Timestamp::now().as_secs() - 86_400).to_rfc3339();
    let r = jidstore(
        &data,
        &[
            "--json",
            "mam",
            "delete",
            "alice",
            "localhost",
            "--before",
            &cut,
            "--dry-run",
        ],
    );
    let doc: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(
        (doc["deleted"].as_u64(), doc["dry_run"].as_bool()),
        (Some(2), Some(true))
    );
    let r = jidstore(
        &data,
        &["mam", "delete", "alice", "localhost", "--before", &cut],
    );
    assert_eq!(
        r.stdout, "Deleted 2 archived messages of alice@localhost\n",
        "{}",
        r.stderr
    );
    let r = jidstore(&data, &["mam", "delete", "alice", "localhost", "--all"]);
    assert_eq!(
        r.stdout, "Deleted 2 archived messages of alice@localhost\n",
        "{}",
        r.stderr
    );
    let r = jidstore(
        &data,
        &[
            "mam",
            "delete",
            "--room",
            "lounge@conference.localhost",
            "--all",
        ],
    );
    assert_eq!(
        r.stdout, "Deleted 5 archived messages of lounge@conference.localhost\n",
        "{}",
        r.stderr
    );
    let audit = jidstore(&data, &["audit"]).stdout;
    assert_eq!(
        audit.lines().filter(|l| l.contains(" delete ok ")).count(),
        4,
        "{audit}"
    );
    assert_eq!(jidstore(&data, &["verify"]).code, 0);
    Ok(())
}

#[test]
fn cli_mam_delete_refusals_are_one_line() {
    let (_dir, data, _all) = cli_store();
    assert_eq!(
        jidstore_settled(
            &data,
            &[
                "mam",
                "delete",
                "--room",
                "lounge@conference.localhost",
                "--all"
            ]
        )
        .code,
        0
    );
    // The account stays; errors are one line.
    assert_eq!(jidstore(&data, &["users"]).stdout, "alice@localhost\n");
    for (args, says) in [
        (
            &["mam", "delete", "nobody", "localhost", "--all"][..],
            "user nobody@localhost does not exist",
        ),
        (
            &[
                "mam",
                "delete",
                "--room",
                "lounge@conference.localhost",
                "--all",
            ][..],
            "has no archived messages",
        ),
        (
            &["mam", "delete", "a@b", "localhost", "--all"][..],
            "invalid",
        ),
    ] {
        let r = jidstore(&data, args);
        assert_eq!(r.code, 1, "{args:?}");
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    }
    // Exactly one of --id, --before, --all.
    assert_eq!(
        jidstore(&data, &["mam", "delete", "alice", "localhost"]).code,
        2
    );
    assert_eq!(
        jidstore(
            &data,
            &["mam", "delete", "alice", "localhost", "--id", "x", "--all"]
        )
        .code,
        2
    );
}
