//! Making erasure stick (issue 17): the erasure ledger written in the erasure's own commit,
//! `register` refusing a recently erased name, `import` skipping erased users, and
//! `restore` re-applying erasures made since the backup, through the library and the binary.

use jidstore::gdpr::{audit, ledger};
use jidstore::{Store, Timestamp};

use crate::util::*;

/// Every byte of the `audit` keyspace, keys and values.
fn audit_bytes(store: &Store) -> Vec<u8> {
    let mut all = Vec::new();
    for kv in store
        .raw_tree(jidstore::__internal::keys::Keyspace::Audit)
        .scan_prefix([])
    {
        let (k, v) = kv.unwrap();
        all.extend_from_slice(&k);
        all.extend_from_slice(&v);
    }
    all
}

#[test]
fn an_erasure_is_in_the_ledger_by_keyed_hash_only() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    store
        .vcard()
        .set(&alice, "<vCard xmlns='vcard-temp'><FN>Al</FN></vCard>")?;
    assert_eq!(ledger::erased_at(&store, &alice)?, None);
    let before = Timestamp::now();
    jidstore::gdpr::remove(&store, &alice)?;
    let at = ledger::erased_at(&store, &alice)?.expect("a ledger entry");
    assert!(at >= before && at <= Timestamp::now());
    assert_eq!(ledger::erased_at(&store, &bob)?, None);
    let entries: Vec<(String, Timestamp)> = ledger::entries(&store).collect::<Result<_, _>>()?;
    assert_eq!(entries, [(audit::subject_hash(&store, &alice)?, at)]);
    let bytes = audit_bytes(&store);
    assert!(
        !bytes.windows(5).any(|w| w == b"alice"),
        "a JID in the audit keyspace"
    );
    // A subject held nowhere is not "erased": no entry.
    assert!(jidstore::gdpr::remove(&store, &bare("nobody@localhost")).is_err());
    assert_eq!(ledger::entries(&store).count(), 1);
    let report = jidstore::verify(&store)?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    Ok(())
}

#[test]
fn register_refuses_a_recently_erased_name_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let reg = |extra: &[&str]| {
        let mut args = vec!["register", "--user", "alice", "localhost", "pw"];
        args.extend_from_slice(extra);
        jidstore(&data, &args)
    };
    assert_eq!(reg(&[]).code, 0);
    assert_eq!(
        jidstore(&data, &["unregister", "alice", "localhost"]).code,
        0
    );
    let r = reg(&[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("alice@localhost was erased on"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--force"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1);
    assert_eq!(jidstore(&data, &["users"]).stdout, "");
    // Another name is fine; so is the same one with --force or a period of 0.
    let r = jidstore(&data, &["register", "--user", "alicia", "localhost", "pw"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(reg(&["--force"]).code, 0);
    assert_eq!(
        jidstore(&data, &["unregister", "alice", "localhost"]).code,
        0
    );
    assert_eq!(reg(&["--hold-erased-days", "0"]).code, 0);
}

#[test]
fn import_skips_an_erased_user_unless_told_to_import_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (file, f) = (dir.path().join("alice.xml"), dir.path().join("alice.xml"));
    assert_eq!(
        jidstore(&data, &["register", "--user", "alice", "localhost", "pw"]).code,
        0
    );
    assert_eq!(
        jidstore(&data, &["register", "--user", "bob", "localhost", "pw"]).code,
        0
    );
    let r = export_to(&data, "export-xep0227", "alice", "localhost", &file);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        jidstore(&data, &["unregister", "alice", "localhost"]).code,
        0
    );
    let f = f.to_str().unwrap();
    let r = jidstore(&data, &["--json", "import", f]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["erased"], serde_json::json!(["alice@localhost"]));
    assert_eq!(doc["imported"], serde_json::json!([]));
    assert!(r.stderr.contains("erasure is re-applied"), "{}", r.stderr);
    assert_eq!(jidstore(&data, &["users"]).stdout, "bob@localhost\n");
    let r = jidstore(&data, &["import", "--import-erased", f]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        jidstore(&data, &["users"]).stdout,
        "alice@localhost\nbob@localhost\n"
    );
}

/// Every file under `dir` with its bytes.
fn tree_bytes(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn restore_reapplies_erasures_made_since_the_backup() -> TestResult {
    let (dir, store, alice, bob) = alice_and_bob();
    let me = jidstore::Jid::from(alice.clone());
    let msg = |i: i64| {
        jidstore::ext::mam::PmMessage::new(
            Timestamp::from_secs(1_700_000_000 + i),
            me.clone(),
            full("bob@localhost/b"),
            jidstore::ext::mam::Direction::Outgoing,
            format!("<message xmlns='jabber:client'><body>secret {i}</body></message>"),
        )
    };
    let mut ids = vec![store.mam().append(&alice, &msg(0))?];
    ids.push(store.mam().append(&bob, &msg(1))?);
    store.flush()?;
    drop(store);
    let data = dir.path().join("data");
    let backup = dir.path().join("backup");
    let r = jidstore_settled(&data, &["backup", backup.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let backup_files = tree_bytes(&backup);
    // After the backup: alice erased, carol registered, bob writes more.
    assert_eq!(
        jidstore(&data, &["unregister", "alice", "localhost"]).code,
        0
    );
    assert_eq!(
        jidstore(&data, &["register", "--user", "carol", "localhost", "pw"]).code,
        0
    );
    let store = open(&dir);
    for i in 2..5 {
        ids.push(store.mam().append(&bob, &msg(i))?);
    }
    store.flush()?;
    drop(store);

    let r = jidstore_settled(&data, &["--json", "restore", backup.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout)?;
    assert_eq!(doc["erasures_since_backup"], 1);
    assert_eq!(doc["reapplied"], 1);
    assert_eq!(
        tree_bytes(&backup),
        backup_files,
        "restore wrote into the backup"
    );
    // The backup's state, less alice; the log remembers the erasure and the restore.
    assert_eq!(jidstore(&data, &["users"]).stdout, "bob@localhost\n");
    let audit = jidstore(&data, &["audit"]).stdout;
    assert!(audit.contains(" erase ok "), "{audit}");
    assert!(
        audit.contains(" restore ok ") && audit.contains("reapplied=1"),
        "{audit}"
    );
    assert_eq!(jidstore(&data, &["verify"]).code, 0);
    let store = open(&dir);
    assert!(ledger::erased_at(&store, &alice)?.is_some());
    assert_eq!(store.mam().count(&bob)?, 1);
    // Ids handed out before the restore are never handed out again.
    for i in 5..10 {
        let id = store.mam().append(&bob, &msg(i))?;
        assert!(!ids.contains(&id), "id {id} reused");
    }
    drop(store);
    // Refused: the data directory itself, an incomplete copy, a missing one.
    let r = jidstore_settled(&data, &["restore", data.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("overlap"), "{}", r.stderr);
    std::fs::write(backup.join("jidstore-incomplete-copy"), "x")?;
    let r = jidstore(&data, &["restore", backup.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("incomplete"), "{}", r.stderr);
    let r = jidstore(&data, &["restore", "/nonexistent/backup"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert_eq!(jidstore(&data, &["users"]).stdout, "bob@localhost\n");
    Ok(())
}
