//! `unregister --redact-kept` (issue 17): the rows an erasure keeps (the subject's group-chat
//! messages, the items it published on other users' nodes) move from its JID and nick to a
//! stable keyed pseudonym, in every index, through the binary and the library.

use jidstore::__internal::{class_keyspaces, keys::Keyspace};
use jidstore::ext::mam::MucMessage;
use jidstore::ext::pubsub::{Node, NodeType};
use jidstore::gdpr::{self, EraseOptions};
use jidstore::{Store, Timestamp};
use serde_json::Value;

use crate::util::*;

const ROOMS: [&str; 2] = ["room1@muc.localhost", "room2@muc.localhost"];
const NODE: &str = "urn:xmpp:microblog:0";

/// alice, bob and carol; alice wrote twice in room1 (nick "Al") and once in room2 (nick
/// "alice"), bob once in each; alice published one item on bob's PEP node and one on her
/// own (which her erasure deletes), bob one on his.
fn deployment(store: &Store) -> TestResult {
    let alice = user(store, "alice@localhost");
    let bob = user(store, "bob@localhost");
    user(store, "carol@localhost");
    let mut t = 1_700_000_000;
    let mut say = |room: &str, sender: &jidstore::BareJid, nick: &str, body: &str| {
        t += 10;
        let stanza = format!(
            "<message from='{room}/{nick}' type='groupchat'><x \
             xmlns='http://jabber.org/protocol/muc#user'><item jid='{sender}/phone' \
             nick='{nick}'/></x><body>{body}</body></message>"
        );
        store.muc().append(
            &bare(room),
            &MucMessage::new(Timestamp::from_secs(t), sender.clone(), nick, stanza),
        )
    };
    say(ROOMS[0], &alice, "Al", "hello from Alice@localhost")?;
    say(ROOMS[0], &bob, "bob", "hi Al")?;
    say(ROOMS[0], &alice, "Al", "bye")?;
    say(ROOMS[1], &alice, "alice", "here too")?;
    say(ROOMS[1], &bob, "bob", "welcome")?;
    let at = Timestamp::from_secs(1_700_000_000);
    for owner in [&alice, &bob] {
        store.pubsub().create_node(&Node::new(
            owner.clone(),
            NODE,
            owner.clone(),
            NodeType::Pep,
            at,
        ))?;
    }
    let p = store.pubsub();
    p.publish(
        &bob,
        NODE,
        "a1",
        &alice,
        "<entry>by alice@localhost</entry>",
        at,
    )?;
    p.publish(&bob, NODE, "b1", &bob, "<entry>bob's own</entry>", at)?;
    p.publish(&alice, NODE, "a2", &alice, "<entry>mine</entry>", at)?;
    Ok(())
}

/// A data directory holding [`deployment`], closed.
fn data_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, store) = store();
    deployment(&store).unwrap();
    store.flush().unwrap();
    drop(store);
    let data = dir.path().join("data");
    (dir, data)
}

/// Every key and value of the group-chat and pubsub keyspaces.
fn kept_bytes(store: &Store) -> Vec<u8> {
    let mut all = Vec::new();
    let group_chat = class_keyspaces("mam")
        .iter()
        .filter(|ks| !matches!(ks, Keyspace::MamPm | Keyspace::MamPmIds));
    for &ks in group_chat.chain(class_keyspaces("pubsub")) {
        for kv in store.raw_tree(ks).scan_prefix([]) {
            let (k, v) = kv.unwrap();
            all.extend_from_slice(&k);
            all.push(0);
            all.extend_from_slice(&v);
            all.push(0);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    let needle = needle.to_ascii_lowercase();
    hay.to_ascii_lowercase()
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// `mam query --room R [--with W] --json`: the (sender, nick, stanza) of each message.
fn room_page(
    data: &std::path::Path,
    room: &str,
    with: Option<&str>,
) -> Vec<(String, String, String)> {
    let mut args = vec!["--json", "mam", "query", "--room", room];
    if let Some(w) = with {
        args.extend(["--with", w]);
    }
    let v = json_ok(&jidstore(data, &args));
    items(&v["messages"])
        .iter()
        .map(|m| {
            let field = |name: &str| m[name].as_str().unwrap().to_owned();
            (field("sender"), field("nick"), field("stanza"))
        })
        .collect()
}

fn assert_verify_clean(data: &std::path::Path) {
    let r = jidstore(data, &["verify"]);
    assert_eq!(r.code, 0, "verify: {}{}", r.stdout, r.stderr);
}

/// The arguments `[--json] unregister alice localhost <flags>`.
fn unregister_alice(json: bool, flags: &[&'static str]) -> Vec<&'static str> {
    let mut args = if json { vec!["--json"] } else { Vec::new() };
    args.extend(["unregister", "alice", "localhost"]);
    args.extend(flags);
    args
}

/// The JSON output of a run that exited 0.
#[track_caller]
fn json_ok(r: &Run) -> Value {
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    serde_json::from_str(&r.stdout).unwrap()
}

/// The elements of a JSON array.
fn items(v: &Value) -> &[Value] {
    v.as_array().unwrap()
}

/// Room history, as another user reads it: the subject's messages under the pseudonym, the
/// same in both rooms, by time and by sender and nick; bob's untouched.
fn room_history_is_under_the_pseudonym(data: &std::path::Path, pseudonym: &str, nick: &str) {
    for (room, mine) in [(ROOMS[0], 2), (ROOMS[1], 1)] {
        let all = room_page(data, room, None);
        assert_eq!(all.len(), mine + 1);
        let by_p: Vec<_> = all.iter().filter(|m| m.0 == pseudonym).collect();
        assert_eq!(by_p.len(), mine);
        for (_, n, stanza) in &by_p {
            assert_eq!(n, &nick);
            assert!(
                stanza.contains(&format!("from='{room}/{nick}'")),
                "{stanza}"
            );
            assert!(
                stanza.contains(&format!("jid='{pseudonym}' nick='{nick}'")),
                "{stanza}"
            );
            assert!(
                !stanza.contains("'Al'") && !stanza.contains("/Al'"),
                "{stanza}"
            );
            assert!(!contains(stanza.as_bytes(), "alice@localhost"), "{stanza}");
        }
        assert!(all.iter().any(|m| m.0 == "bob@localhost" && m.1 == "bob"));
        assert_eq!(room_page(data, room, Some(pseudonym)).len(), mine);
        assert_eq!(
            room_page(data, room, Some(&format!("{room}/{nick}"))).len(),
            mine
        );
        assert!(room_page(data, room, Some("alice@localhost")).is_empty());
        assert!(room_page(data, room, Some(&format!("{room}/Al"))).is_empty());
    }
    // By time: alice's last message in room1 (at +30 s), found by its archive time.
    let r = jidstore(
        data,
        &[
            "--json",
            "mam",
            "query",
            "--room",
            ROOMS[0],
            "--start",
            "2023-11-14T22:13:50Z",
        ],
    );
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let page = items(&v["messages"]);
    assert_eq!(page.len(), 1, "{v}");
    assert_eq!(page[0]["sender"], pseudonym);
    assert!(page[0]["stanza"].as_str().unwrap().contains("bye"));
}

#[test]
fn redact_kept_pseudonymises_room_messages_and_items_everywhere() {
    let (dir, data) = data_dir();
    let v = json_ok(&jidstore(
        &data,
        &unregister_alice(true, &["--redact-kept"]),
    ));
    let p = &v["pseudonymised"];
    assert_eq!(p["rows"]["mam_muc"], 3, "{v}");
    assert_eq!(p["rows"]["pubsub_items"], 1, "{v}");
    assert_eq!(p["total"], 4);
    let pseudonym = p["pseudonym"].as_str().unwrap().to_owned();
    let nick = p["nick"].as_str().unwrap().to_owned();
    assert!(
        pseudonym.starts_with("erased-") && pseudonym.ends_with("@erased.invalid"),
        "{pseudonym}"
    );
    assert_eq!(
        pseudonym.len(),
        "erased-".len() + 16 + "@erased.invalid".len()
    );
    assert_eq!(format!("{nick}@erased.invalid"), pseudonym);
    // Nothing is said to be kept under the JID any more; alice's own PEP item went with her node.
    let classes = items(&v["kept"])
        .iter()
        .map(|k| k["class"].as_str().unwrap());
    let kept: Vec<&str> = classes.collect();
    assert!(
        !kept.contains(&"mam_muc") && !kept.contains(&"pubsub_items"),
        "{v}"
    );
    assert_eq!(v["removed"]["pubsub_items"], 1);

    room_history_is_under_the_pseudonym(&data, &pseudonym, &nick);
    assert_verify_clean(&data);
    // Nothing held under the JID any more.
    let out = dir.path().join("alice.zip");
    let r = retrieve_to(&data, "alice", &out);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_has(&r.stderr, "alice@localhost");
    assert!(!out.exists());
    let r = jidstore(&data, &unregister_alice(false, &["--redact-kept"]));
    assert_eq!(r.code, 1, "{}", r.stdout);

    let store = open(&dir);
    assert!(matches!(
        gdpr::retrieve(
            &store,
            &bare("alice@localhost"),
            std::io::Cursor::new(Vec::new()),
            &gdpr::ExportOptions::default()
        ),
        Err(jidstore::Error::NoPersonalData(_))
    ));
    let bytes = kept_bytes(&store);
    assert!(
        !contains(&bytes, "alice@localhost"),
        "the JID is still held"
    );
    assert!(contains(&bytes, &pseudonym));
    let item = store
        .pubsub()
        .get_item(&bare("bob@localhost"), NODE, "a1")
        .unwrap()
        .unwrap();
    assert_eq!(item.publisher.as_str(), pseudonym);
    assert_eq!(item.payload, format!("<entry>by {pseudonym}</entry>"));
    let b1 = store
        .pubsub()
        .get_item(&bare("bob@localhost"), NODE, "b1")
        .unwrap()
        .unwrap();
    assert_eq!(b1.publisher.as_str(), "bob@localhost");
    // Stable: the library derives the same pseudonym again.
    let again = gdpr::redact::pseudonym(&store, &bare("alice@localhost"), false)
        .unwrap()
        .unwrap();
    assert_eq!(again.jid().as_str(), pseudonym);
    assert_eq!(again.nick(), nick);
    // No account can take the pseudonym (nor any name on its domain).
    drop(store);
    let r = jidstore(
        &data,
        &["register", "--user", &nick, "erased.invalid", "pw"],
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_has(&r.stderr, "reserved");
}

#[test]
fn receipt_text_says_pseudonymised() {
    let (_dir, data) = data_dir();
    let r = jidstore(&data, &unregister_alice(false, &["--redact-kept"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_has(&r.stdout, "User alice@localhost successfully unregistered");
    assert_has(&r.stdout, "Pseudonymised (kept rows were moved");
    assert_has(&r.stdout, "@erased.invalid, nick erased-");
    let line = |class: &str| {
        r.stdout
            .lines()
            .skip_while(|l| !l.starts_with("Pseudonymised"))
            .find(|l| l.trim_start().starts_with(class))
            .map(|l| l.split_whitespace().last().unwrap_or_default().to_owned())
    };
    assert_eq!(line("mam_muc").as_deref(), Some("3"), "{}", r.stdout);
    assert_eq!(line("pubsub_items").as_deref(), Some("1"), "{}", r.stdout);
    assert_lacks(&r.stdout, "group-chat history belongs");
    // The audit log counts them too (by keyed hash, as every entry).
    let r = jidstore(&data, &["--json", "audit"]);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let is_erase = |e: &&Value| e["action"] == "erase";
    let erase = items(&v["entries"]).iter().find(is_erase).unwrap();
    assert_eq!(erase["counts"]["pseudonymised"], 4, "{erase}");
}

#[test]
fn without_the_flag_kept_rows_stay_under_the_jid() {
    let (dir, data) = data_dir();
    let v = json_ok(&jidstore(&data, &unregister_alice(true, &[])));
    assert!(v.get("pseudonymised").is_none(), "{v}");
    let mam = items(&v["kept"])
        .iter()
        .find(|k| k["class"] == "mam_muc")
        .unwrap();
    assert_eq!(mam["rows"], 3);
    let all = room_page(&data, ROOMS[0], Some("alice@localhost"));
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|m| m.1 == "Al"));
    assert_verify_clean(&data);
    let store = open(&dir);
    assert!(contains(&kept_bytes(&store), "alice@localhost"));
    drop(store);

    // An objection upheld later: the kept rows are pseudonymised then (exit 0, nothing
    // erased), and the pseudonym is the one the erasure would have used.
    let v = json_ok(&jidstore(
        &data,
        &unregister_alice(true, &["--redact-kept"]),
    ));
    assert_eq!(v["erased"], false);
    assert_eq!(v["account"], false);
    assert_eq!(v["pseudonymised"]["rows"]["mam_muc"], 3);
    assert_eq!(v["pseudonymised"]["rows"]["pubsub_items"], 1);
    let store = open(&dir);
    let p = gdpr::redact::pseudonym(&store, &bare("alice@localhost"), false)
        .unwrap()
        .unwrap();
    assert_eq!(v["pseudonymised"]["pseudonym"], p.jid().as_str());
    assert!(!contains(&kept_bytes(&store), "alice@localhost"));
    drop(store);
    assert_verify_clean(&data);
}

#[test]
fn dry_run_with_redact_kept_writes_nothing() {
    let (dir, data) = data_dir();
    let before = {
        let store = open(&dir);
        let b = kept_bytes(&store);
        assert!(
            gdpr::redact::pseudonym(&store, &bare("alice@localhost"), false)
                .unwrap()
                .is_none()
        );
        b
    };
    let dry_redact = ["--dry-run", "--redact-kept"];
    let v = json_ok(&jidstore(&data, &unregister_alice(true, &dry_redact)));
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["pseudonymised"]["rows"]["mam_muc"], 3, "{v}");
    assert_eq!(v["pseudonymised"]["rows"]["pubsub_items"], 1, "{v}");
    // No key yet, and a dry run does not make one.
    assert_eq!(v["pseudonymised"]["pseudonym"], Value::Null);
    let r = jidstore(&data, &unregister_alice(false, &dry_redact));
    assert_has(&r.stdout, "kept rows would be moved");
    assert_has(&r.stdout, "Nothing was written (dry run)");
    let store = open(&dir);
    assert_eq!(kept_bytes(&store), before);
    assert!(
        gdpr::redact::pseudonym(&store, &bare("alice@localhost"), false)
            .unwrap()
            .is_none()
    );
    assert!(store.accounts().exists(&bare("alice@localhost")).unwrap());
}

/// A commit with the pseudonymisation still pending (the process died after the commit):
/// the next open finishes it, and finishing it again changes nothing.
#[test]
fn a_pending_redaction_resumes_on_the_next_open() {
    let (dir, store) = store();
    deployment(&store).unwrap();
    let alice = bare("alice@localhost");
    let receipt =
        gdpr::commit_with(&store, &alice, &EraseOptions::default().redact_kept(true)).unwrap();
    assert_eq!(receipt.pseudonymised, None);
    // Committed, not yet rewritten: the messages are still under the JID.
    assert_eq!(store.muc().by_sender(&alice).unwrap().len(), 3);
    let store = reopen(&dir, store);
    assert!(store.muc().by_sender(&alice).unwrap().is_empty());
    let p = gdpr::redact::pseudonym(&store, &alice, false)
        .unwrap()
        .unwrap();
    assert_eq!(store.muc().by_sender(p.jid()).unwrap().len(), 3);
    assert!(!contains(&kept_bytes(&store), "alice@localhost"));
    let sweep: Vec<_> = store
        .raw_tree(Keyspace::Sweep)
        .scan_prefix([])
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(sweep.is_empty(), "a pending record left");
    let before = kept_bytes(&store);
    assert_eq!(gdpr::finish_sweeps(&store).unwrap(), 0);
    assert_eq!(kept_bytes(&store), before);
    let report = jidstore::verify(&store).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn from_file_shares_the_flag() {
    let (dir, data) = data_dir();
    let list = dir.path().join("subjects.txt");
    std::fs::write(&list, "alice@localhost\nbob@localhost\n").unwrap();
    let list = list.to_str().unwrap();
    let r = jidstore(&data, &["unregister", "--from-file", list, "--redact-kept"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_has(&r.stdout, "erased alice@localhost");
    assert_has(&r.stdout, "; 4 kept rows were pseudonymised");
    // bob's 2 room messages; his items went with his PEP node.
    assert_has(&r.stdout, "; 2 kept rows were pseudonymised");
    let store = open(&dir);
    let bytes = kept_bytes(&store);
    assert!(!contains(&bytes, "alice@localhost") && !contains(&bytes, "bob@localhost"));
    drop(store);
    assert_verify_clean(&data);
}

/// The same on PostgreSQL, through the storage interface: the binary's erasure, and a
/// pending redaction finished by the next open.
#[cfg(feature = "postgres")]
#[test]
fn redact_kept_on_postgresql() {
    let Some(url) = crate::pg::database() else {
        return;
    };
    let open_db = || {
        jidstore::Config::database(&url)
            .scram_iterations(16)
            .open()
            .unwrap()
    };
    deployment(&open_db()).unwrap();
    let args = unregister_alice(true, &["--redact-kept"]);
    let v = json_ok(&crate::postgres::jidstore_db(&url, false, &args));
    assert_eq!(v["pseudonymised"]["rows"]["mam_muc"], 3, "{v}");
    assert_eq!(v["pseudonymised"]["rows"]["pubsub_items"], 1, "{v}");
    let pseudonym = v["pseudonymised"]["pseudonym"].as_str().unwrap().to_owned();
    let bob = bare("bob@localhost");
    {
        let store = open_db();
        assert!(!contains(&kept_bytes(&store), "alice@localhost"));
        assert_eq!(store.muc().by_sender(&bare(&pseudonym)).unwrap().len(), 3);
        // bob: committed with the redaction pending, finished by the next open.
        gdpr::commit_with(&store, &bob, &EraseOptions::default().redact_kept(true)).unwrap();
        assert_eq!(store.muc().by_sender(&bob).unwrap().len(), 2);
    }
    let store = open_db();
    assert!(store.muc().by_sender(&bob).unwrap().is_empty());
    assert!(!contains(&kept_bytes(&store), "bob@localhost"));
    drop(store);
    let r = crate::postgres::jidstore_db(&url, false, &["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

/// The text receipt of a pseudonymisation after an earlier erasure without the flag.
#[test]
fn redact_kept_after_a_plain_erasure_says_only_that() {
    let (_dir, data) = data_dir();
    assert_eq!(jidstore(&data, &unregister_alice(false, &[])).code, 0);
    let r = jidstore(&data, &unregister_alice(false, &[]));
    assert_eq!(r.code, 3, "{}", r.stdout);
    let r = jidstore(&data, &unregister_alice(false, &["--redact-kept"]));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with(
            "Nothing left to erase for alice@localhost; the rows kept about it were \
             pseudonymised\n"
        ),
        "{}",
        r.stdout
    );
    assert_lacks(&r.stdout, "Erased alice");
    assert_has(&r.stdout, "Pseudonymised (kept rows were moved");
    let r = jidstore(&data, &unregister_alice(false, &["--redact-kept"]));
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_has(&r.stderr, "user alice@localhost does not exist");
}

/// A crash after some rows moved and before the pending record went: the record is put
/// back by hand over a store where part of the subject's rows are under the pseudonym and
/// part (written since) still under the JID. The next open moves the rest, leaves the
/// moved rows as they are, and deletes the record.
#[test]
fn a_redaction_resumes_over_partly_moved_rows() {
    let (dir, store) = store();
    deployment(&store).unwrap();
    let alice = bare("alice@localhost");
    gdpr::remove_with(&store, &alice, &EraseOptions::default().redact_kept(true)).unwrap();
    let p = gdpr::redact::pseudonym(&store, &alice, false)
        .unwrap()
        .unwrap();
    let moved = store.muc().by_sender(p.jid()).unwrap();
    assert_eq!(moved.len(), 3);
    // The part not yet moved: one more message under the JID.
    store
        .muc()
        .append(
            &bare(ROOMS[1]),
            &MucMessage::new(
                Timestamp::from_secs(1_700_000_100),
                alice.clone(),
                "alice",
                format!("<message from='{}/alice' type='groupchat'/>", ROOMS[1]),
            ),
        )
        .unwrap();
    let pending = jidstore::__internal::keys::sweep_redact(alice.as_str());
    store
        .raw_tree(Keyspace::Sweep)
        .insert(
            &pending,
            jidstore::__internal::codec::encode(&p.jid().as_str()),
        )
        .unwrap();
    let store = reopen(&dir, store);
    assert!(store.muc().by_sender(&alice).unwrap().is_empty());
    let now = store.muc().by_sender(p.jid()).unwrap();
    assert_eq!(now.len(), 4);
    for m in &moved {
        assert!(now.contains(m), "{m:?} changed");
    }
    let last = now.iter().find(|m| !moved.contains(m)).unwrap();
    assert_eq!(last.nick, p.nick());
    assert_eq!(
        last.stanza,
        format!(
            "<message from='{}/{}' type='groupchat'/>",
            ROOMS[1],
            p.nick()
        )
    );
    assert!(
        !store
            .raw_tree(Keyspace::Sweep)
            .contains_key(&pending)
            .unwrap()
    );
    let report = jidstore::verify(&store).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

    /// Generated deployments (lookalike JIDs, tricky stanzas), in memory: after an erasure
    /// with `redact_kept`, every room holds the same messages in the same order with the same
    /// ids and times, the subject's under its pseudonym and everyone else's byte-identical;
    /// every item that stays is unchanged unless the subject published it (then under the
    /// pseudonym); nothing is indexed under the subject's JID; `verify` is clean; and unless
    /// the subject owns a flat node, nothing is held about it.
    #[test]
    fn redact_kept_moves_exactly_the_subjects_rows(
        (d, subject) in jidstore::testing::deployment_and_subject(),
    ) {
        let store = jidstore::Config::in_memory()
            .scram_iterations(16)
            .open()
            .unwrap();
        d.apply(&store).unwrap();
        let rooms: Vec<_> = d
            .rooms
            .iter()
            .map(|r| (r.jid.clone(), store.muc().list(&r.jid).unwrap()))
            .collect();
        let nodes: Vec<_> = d
            .nodes
            .iter()
            .map(|n| {
                let items = store.pubsub().items(&n.node.service, &n.node.node).unwrap();
                (n.node.clone(), items)
            })
            .collect();
        gdpr::remove_with(&store, &subject, &EraseOptions::default().redact_kept(true)).unwrap();
        let p = gdpr::redact::pseudonym(&store, &subject, false).unwrap().unwrap();
        for (room, before) in &rooms {
            let after = store.muc().list(room).unwrap();
            proptest::prop_assert_eq!(before.len(), after.len());
            for (b, a) in before.iter().zip(&after) {
                proptest::prop_assert_eq!((&b.id, b.timestamp), (&a.id, a.timestamp));
                if b.sender == subject {
                    proptest::prop_assert_eq!(&a.sender, p.jid());
                    proptest::prop_assert_eq!(a.nick.as_str(), p.nick());
                    proptest::prop_assert!(jidstore::xml::check_element("stanza", &a.stanza).is_ok());
                } else {
                    proptest::prop_assert_eq!(b, a);
                }
            }
        }
        for (node, before) in &nodes {
            let erased = node.owner == subject && node.kind != NodeType::Flat;
            let after = store.pubsub().items(&node.service, &node.node).unwrap();
            if erased {
                proptest::prop_assert!(after.is_empty());
                continue;
            }
            proptest::prop_assert_eq!(before.len(), after.len());
            for (b, a) in before.iter().zip(&after) {
                if b.publisher == subject {
                    proptest::prop_assert_eq!(&a.publisher, p.jid());
                    proptest::prop_assert_eq!(&a.id, &b.id);
                } else {
                    proptest::prop_assert_eq!(b, a);
                }
            }
        }
        let mut prefix = subject.as_str().as_bytes().to_vec();
        prefix.push(0);
        for ks in [Keyspace::MamMucBySender, Keyspace::PubsubItemsByPublisher] {
            proptest::prop_assert!(store.raw_tree(ks).scan_prefix(&prefix).next().is_none());
        }
        let report = jidstore::verify(&store).unwrap();
        proptest::prop_assert!(report.problems.is_empty(), "{:?}", report.problems);
        let owns_flat = d
            .nodes
            .iter()
            .any(|n| n.node.owner == subject && n.node.kind == NodeType::Flat);
        if !owns_flat {
            let held = gdpr::retrieve(
                &store,
                &subject,
                std::io::Cursor::new(Vec::new()),
                &gdpr::ExportOptions::default(),
            );
            proptest::prop_assert!(
                matches!(held, Err(jidstore::Error::NoPersonalData(_))),
                "{:?}",
                held.map(|s| s.total_rows())
            );
        }
    }
}

/// With progress forced, the pseudonymisation is its own phase, after the sweep's, ending
/// on the rows it moved; no JID on stderr.
#[test]
fn progress_counts_the_pseudonymised_rows() {
    let (_dir, data) = data_dir();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jidstore"))
        .arg("--data-dir")
        .arg(&data)
        .args(unregister_alice(false, &["--redact-kept"]))
        .env_remove("JIDSTORE_DATA_DIR")
        .env("JIDSTORE_PROGRESS", "always")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let last = err.rsplit('\r').next().unwrap_or("").trim_end_matches('\n');
    assert_eq!(last, "pseudonymisation: 4 rows", "{err:?}");
    assert!(err.contains("erasure sweep: "), "{err:?}");
    assert!(
        !err.contains("alice") && !err.contains("localhost"),
        "{err:?}"
    );
}

/// Removals of the subject's room messages (by id, newest first) racing the erasure's
/// pseudonymisation in another thread: whatever the interleaving, each message ends removed
/// or under the pseudonym, none stays under the JID, and every index agrees.
#[test]
fn removals_racing_the_pseudonymisation_leave_a_consistent_store() {
    let (_dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let room = bare(ROOMS[0]);
    let n = 2 * gdpr::REDACT_CHUNK + 50;
    for i in 0..n {
        let ts = Timestamp::from_secs(1_700_000_000 + i64::try_from(i).unwrap());
        let stanza = format!("<message from='{}/Al' type='groupchat'/>", ROOMS[0]);
        store
            .muc()
            .append(&room, &MucMessage::new(ts, alice.clone(), "Al", stanza))
            .unwrap();
    }
    let ids: Vec<String> = store
        .muc()
        .list(&room)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    let removed = std::thread::scope(|s| {
        let remover = s.spawn(|| {
            ids.iter()
                .rev()
                .step_by(3)
                .filter(|id| store.muc().remove(&room, id).unwrap())
                .count()
        });
        gdpr::remove_with(&store, &alice, &EraseOptions::default().redact_kept(true)).unwrap();
        remover.join().unwrap()
    });
    assert!(store.muc().by_sender(&alice).unwrap().is_empty());
    let p = gdpr::redact::pseudonym(&store, &alice, false)
        .unwrap()
        .unwrap();
    let left = store.muc().list(&room).unwrap();
    assert_eq!(left.len(), n - removed);
    assert!(
        left.iter()
            .all(|m| &m.sender == p.jid() && m.nick == p.nick())
    );
    let report = jidstore::verify(&store).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// Nothing held: an error, and nothing written, not even the store's key.
#[test]
fn redact_kept_of_nobody_writes_nothing() {
    let (dir, data) = data_dir();
    let r = jidstore(
        &data,
        &["unregister", "nobody", "localhost", "--redact-kept"],
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_has(&r.stderr, "user nobody@localhost does not exist");
    let store = open(&dir);
    assert!(
        gdpr::redact::pseudonym(&store, &bare("alice@localhost"), false)
            .unwrap()
            .is_none()
    );
}
