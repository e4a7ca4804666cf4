//! The operator's toolbox (issue 17): `users`, `inspect`, `passwd`, `unregister --dry-run`
//! and `unregister --from-file`, through the real binary and the library.

use std::io::Write as _;

use jidstore::Timestamp;

use crate::util::*;

/// Runs the binary with `stdin` piped in.
fn jidstore_stdin(data: &std::path::Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jidstore"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("JIDSTORE_DATA_DIR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run jidstore");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    Run::from(out)
}

/// A store with accounts on two domains, closed, and its data directory.
fn accounts_store(jids: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let (dir, store) = store();
    for j in jids {
        user(&store, j);
    }
    store.flush().unwrap();
    drop(store);
    let data = dir.path().join("data");
    (dir, data)
}

#[test]
fn users_lists_accounts_filtered_by_domain_and_prefix() {
    let (_dir, data) = accounts_store(&[
        "bob@example.org",
        "alice@localhost",
        "albert@example.org",
        "al@localhost",
        "carol@localhost",
    ]);
    let r = jidstore(&data, &["users"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "al@localhost\nalbert@example.org\nalice@localhost\nbob@example.org\ncarol@localhost\n"
    );
    let r = jidstore(&data, &["users", "--domain", "LOCALHOST"]);
    assert_eq!(r.stdout, "al@localhost\nalice@localhost\ncarol@localhost\n");
    let r = jidstore(&data, &["users", "--prefix", "Al"]);
    assert_eq!(
        r.stdout,
        "al@localhost\nalbert@example.org\nalice@localhost\n"
    );
    let r = jidstore(
        &data,
        &["users", "--prefix", "al", "--domain", "example.org"],
    );
    assert_eq!(r.stdout, "albert@example.org\n");
    let r = jidstore(&data, &["users", "--domain", "nowhere.example"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    let r = jidstore(&data, &["--json", "users", "--domain", "localhost"]);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "users": ["al@localhost", "alice@localhost", "carol@localhost"],
            "count": 3
        })
    );
    assert_eq!(r.stdout.lines().count(), 1);
}

#[test]
fn users_bad_filters_and_missing_store_are_one_line_errors() {
    let (dir, data) = accounts_store(&["alice@localhost"]);
    let r = jidstore(&data, &["users", "--domain", "bad domain"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.starts_with("jidstore: "), "{}", r.stderr);
    assert!(r.stderr.contains("bad domain"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
    let r = jidstore(&data, &["users", "--prefix", "a@b"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let r = jidstore(&dir.path().join("missing"), &["users"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stdout.is_empty());
}

/// The library call: filters normalised, checked before any read, rows in JID order.
#[test]
fn users_library_call_checks_filters_first() {
    let (_dir, store) = store();
    user(&store, "b@localhost");
    user(&store, "a@localhost");
    user(&store, "a@other.example");
    assert!(store.accounts().users(Some("bad domain"), None).is_err());
    assert!(store.accounts().users(None, Some("a/b")).is_err());
    let all: Vec<_> = store
        .accounts()
        .users(Some("LocalHost"), None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(all, [bare("a@localhost"), bare("b@localhost")]);
    let first = store.accounts().users(None, Some("A")).unwrap().next();
    assert_eq!(first.unwrap().unwrap(), bare("a@localhost"));
}

const NO_CREDENTIALS: &str = "<server-data xmlns='urn:xmpp:pie:0'>\
    <host jid='localhost'><user name='nocred'/></host></server-data>";

#[test]
fn passwd_lets_an_imported_user_without_credentials_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("in.xml");
    std::fs::write(&file, NO_CREDENTIALS).unwrap();
    let r = jidstore(&data, &["import", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    {
        let store = jidstore::Config::new(&data)
            .lock_timeout(std::time::Duration::from_secs(5))
            .open()
            .unwrap();
        assert!(
            !store
                .accounts()
                .check_password(&bare("nocred@localhost"), "s3cret")
                .unwrap()
        );
    }
    let r = jidstore_stdin(&data, &["passwd", "nocred", "localhost", "-"], b"s3cret\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "Password of nocred@localhost set\n");
    let store = jidstore::Config::new(&data)
        .lock_timeout(std::time::Duration::from_secs(5))
        .open()
        .unwrap();
    let jid = bare("nocred@localhost");
    assert!(store.accounts().check_password(&jid, "s3cret").unwrap());
    assert!(!store.accounts().check_password(&jid, "s3cret\n").unwrap());
    for m in jidstore::ext::scram::Mechanism::ALL {
        let v = store.accounts().verifier(&jid, m).unwrap().unwrap();
        assert!(v.matches("s3cret"), "{m:?}");
        assert!(!v.matches("wrong"), "{m:?}");
    }
}

#[test]
fn passwd_replaces_a_password_and_refuses_unknown_users() {
    let (_dir, data) = accounts_store(&["alice@localhost"]);
    let r = jidstore(&data, &["--json", "passwd", "Alice", "localhost", "new-pw"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "{\"jid\":\"alice@localhost\"}\n");
    {
        let store = jidstore::Config::new(&data)
            .lock_timeout(std::time::Duration::from_secs(5))
            .open()
            .unwrap();
        let alice = bare("alice@localhost");
        assert!(store.accounts().check_password(&alice, "new-pw").unwrap());
        assert!(!store.accounts().check_password(&alice, "password").unwrap());
    }
    let r = jidstore(&data, &["passwd", "nobody", "localhost", "pw"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr, "jidstore: user nobody@localhost does not exist\n");
    let r = jidstore(&data, &["passwd", "a@b", "localhost", "pw"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let r = jidstore_stdin(&data, &["passwd", "alice", "localhost", "-"], b"\n");
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "jidstore: invalid input: password must not be empty\n"
    );
}

// ---------------------------------------------------------------------------------------------
// A deployment for inspect and unregister: the sample (`jidstore::__internal::sample`, what
// `jidstore demo` builds). Alice holds something in every class, including what erasure
// keeps (group-chat messages, her items on bob's and on her flat node) and what goes with
// her as a consequence (bob's item on her push node, his subscription to her PEP node);
// carol (remote, no account) holds one subscription to alice's flat node.

/// The sample in `dir/data`, closed; the data dir and the subjects (alice, bob, kate, carol).
fn deployment(dir: &std::path::Path) -> (std::path::PathBuf, Vec<jidstore::BareJid>) {
    let data = dir.join("data");
    let store = jidstore::Config::new(&data)
        .scram_iterations(16)
        .open()
        .unwrap();
    let s = jidstore::__internal::sample::populate(&store, Timestamp::from_secs(1_700_000_000))
        .unwrap();
    store.flush().unwrap();
    drop(store);
    (data, vec![s.alice, s.bob, s.kate, s.carol])
}

/// Every subject's export (fixed time, so equal data gives equal bytes), the account list
/// and the row counts of `stats`.
fn snapshot(data: &std::path::Path, subjects: &[jidstore::BareJid]) -> Vec<Vec<u8>> {
    let store = jidstore::Config::new(data)
        .lock_timeout(std::time::Duration::from_secs(5))
        .open()
        .unwrap();
    let mut out = Vec::new();
    for s in subjects {
        let mut sink = std::io::Cursor::new(Vec::new());
        let opts = jidstore::gdpr::ExportOptions::default()
            .timestamp(jidstore::Timestamp::from_secs(1_800_000_000));
        match jidstore::gdpr::retrieve(&store, s, &mut sink, &opts) {
            Ok(_) => out.push(sink.into_inner()),
            Err(e) => out.push(e.to_string().into_bytes()),
        }
    }
    let users: Vec<String> = store
        .accounts()
        .users(None, None)
        .unwrap()
        .map(|j| j.unwrap().to_string())
        .collect();
    out.push(users.join("\n").into_bytes());
    drop(store);
    let stats = jidstore(data, &["--json", "stats"]);
    let doc: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    out.push(doc["keyspaces"].to_string().into_bytes());
    out
}

/// The receipt lines from `Removed:` up to the last line (which says when it was committed
/// or that nothing was written).
fn receipt_body(stdout: &str) -> Vec<&str> {
    let lines: Vec<&str> = stdout.lines().collect();
    let start = lines.iter().position(|l| *l == "Removed:").unwrap();
    let end = lines
        .iter()
        .position(|l| l.starts_with("Committed in") || l.starts_with("Nothing was written"))
        .unwrap();
    lines[start..end].to_vec()
}

#[test]
fn unregister_dry_run_gives_the_real_receipt_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (data, subjects) = deployment(dir.path());
    let before = snapshot(&data, &subjects);
    let dry_text = jidstore(&data, &["unregister", "--dry-run", "alice", "localhost"]);
    assert_eq!(dry_text.code, 0, "{}", dry_text.stderr);
    assert!(
        dry_text
            .stdout
            .starts_with("User alice@localhost would be unregistered\nDry run, nothing written"),
        "{}",
        dry_text.stdout
    );
    assert!(!dry_text.stdout.contains("compact"), "{}", dry_text.stdout);
    let dry_json = jidstore(
        &data,
        &["--json", "unregister", "--dry-run", "alice", "localhost"],
    );
    assert_eq!(dry_json.code, 0, "{}", dry_json.stderr);
    assert_eq!(
        snapshot(&data, &subjects),
        before,
        "a dry run changed the store"
    );

    // A copy erased for real (JSON), the original erased for real (text).
    let copy = dir.path().join("copy");
    let r = jidstore(&data, &["backup", copy.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let real_json = jidstore(&copy, &["--json", "unregister", "alice", "localhost"]);
    assert_eq!(real_json.code, 0, "{}", real_json.stderr);
    let real_text = jidstore(&data, &["unregister", "alice", "localhost"]);
    assert_eq!(real_text.code, 0, "{}", real_text.stderr);

    let mut dry: serde_json::Value = serde_json::from_str(&dry_json.stdout).unwrap();
    let mut real: serde_json::Value = serde_json::from_str(&real_json.stdout).unwrap();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(real["dry_run"], false);
    assert_eq!(real["purged"], serde_json::Value::Null);
    for doc in [&mut dry, &mut real] {
        let obj = doc.as_object_mut().unwrap();
        obj.remove("dry_run");
        obj.remove("purged");
    }
    assert_eq!(dry, real);
    // The receipt holds what this deployment should give: consequences and kept rows.
    assert_eq!(real["removed"]["mam_pm"], 4);
    assert_eq!(real["removed"]["pubsub_items"], 2);
    let kept = real["kept"].to_string();
    assert!(kept.contains("\"class\":\"mam_muc\",\"reason\"") || kept.contains("mam_muc"));
    let rows = |class: &str| {
        real["kept"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["class"] == class)
            .map(|k| k["rows"].clone())
    };
    assert_eq!(rows("mam_muc"), Some(serde_json::json!(2)));
    assert_eq!(rows("pubsub_items"), Some(serde_json::json!(2)));
    assert!(
        !real["removed_as_consequence"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        receipt_body(&dry_text.stdout),
        receipt_body(&real_text.stdout)
    );
}

#[test]
fn unregister_dry_run_of_kept_only_and_unknown_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let (data, subjects) = deployment(dir.path());
    let r = jidstore(&data, &["unregister", "alice", "localhost"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let before = snapshot(&data, &subjects);
    // Only kept data is left: exit 3, as the real second unregister.
    let dry = jidstore(&data, &["unregister", "--dry-run", "alice", "localhost"]);
    let real = jidstore(
        &data,
        &["--json", "unregister", "--dry-run", "alice", "localhost"],
    );
    assert_eq!((dry.code, real.code), (3, 3), "{}", dry.stderr);
    assert!(
        dry.stdout
            .starts_with("Dry run, nothing written: Nothing erased for alice@localhost"),
        "{}",
        dry.stdout
    );
    let doc: serde_json::Value = serde_json::from_str(&real.stdout).unwrap();
    assert_eq!(
        (doc["erased"].clone(), doc["total_removed"].clone()),
        (false.into(), 0.into())
    );
    let r = jidstore(&data, &["unregister", "--dry-run", "nobody", "localhost"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr, "jidstore: user nobody@localhost does not exist\n");
    assert!(r.stdout.is_empty());
    let r = jidstore(
        &data,
        &["unregister", "--dry-run", "--purge", "bob", "localhost"],
    );
    assert_eq!(r.code, 2);
    assert_eq!(snapshot(&data, &subjects), before);
}

/// Writes `text` to `dir/subjects.txt` and returns its path as a string.
fn subjects_file(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("subjects.txt");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn unregister_from_file_erases_each_subject_and_sums_up() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = deployment(dir.path());
    let file = subjects_file(
        dir.path(),
        "# erasure requests of the week\n\nAlice@localhost  # ticket 1\ncarol@remote.example\n\
         nobody@localhost\n",
    );
    let users_before = jidstore(&data, &["users"]).stdout;
    let dry = jidstore(&data, &["unregister", "--dry-run", "--from-file", &file]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let r = jidstore(&data, &["unregister", "--from-file", &file]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "erased alice@localhost (32 rows)\n\
         erased carol@remote.example (1 rows)\n\
         nothing held about nobody@localhost (already unregistered?)\n\
         Erased 2 of 3 subject(s); 0 held only data erasure keeps, 1 nothing at all, 0 failed\n\
         The erased bytes stay in the data directory's files until `jidstore compact` rewrites \
         the store (or erase with `unregister --purge`).\n"
    );
    assert_eq!(
        dry.stdout.lines().take(2).collect::<Vec<_>>(),
        [
            "would erase alice@localhost (32 rows)",
            "would erase carol@remote.example (1 rows)"
        ]
    );
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    // Every account but alice's is left (carol has none).
    let users = jidstore(&data, &["users"]);
    assert_eq!(users.stdout, users_before.replace("alice@localhost\n", ""));
    assert!(
        users_before.lines().any(|l| l == "alice@localhost"),
        "{users_before}"
    );
}

/// Resumable: after an interruption (here: the first subjects erased by an earlier run),
/// the same file runs again; the subjects done before are reported, not failed.
#[test]
fn unregister_from_file_runs_again_after_an_interruption() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = deployment(dir.path());
    let all = "alice@localhost\ncarol@remote.example\nbob@localhost\n";
    let done = subjects_file(dir.path(), "alice@localhost\ncarol@remote.example\n");
    assert_eq!(
        jidstore(&data, &["unregister", "--from-file", &done]).code,
        0
    );
    let file = subjects_file(dir.path(), all);
    let r = jidstore(&data, &["--json", "unregister", "--from-file", &file]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let outcomes: Vec<(String, String)> = doc["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["subject"].as_str().unwrap().to_owned(),
                s["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("alice@localhost".to_owned(), "nothing-erased".to_owned()),
            ("carol@remote.example".to_owned(), "not-held".to_owned()),
            ("bob@localhost".to_owned(), "erased".to_owned()),
        ]
    );
    assert_eq!(
        (
            &doc["erased"],
            &doc["nothing_erased"],
            &doc["not_held"],
            &doc["failed"]
        ),
        (&1.into(), &1.into(), &1.into(), &0.into())
    );
    assert_eq!(doc["subjects"][2]["receipt"]["removed"]["accounts"], 1);
    assert_eq!(doc["subjects"][2]["line"], 3);
    // A third run: nothing left to erase, still exit 0.
    let r = jidstore(&data, &["unregister", "--from-file", &file]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("Erased 0 of 3 subject(s)"),
        "{}",
        r.stdout
    );
}

#[test]
fn unregister_from_file_refuses_a_malformed_file_before_erasing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (data, subjects) = deployment(dir.path());
    let before = snapshot(&data, &subjects);
    let file = subjects_file(
        dir.path(),
        "alice@localhost\nnot a jid\nlocalhost\nbob@localhost extra\n",
    );
    let r = jidstore(&data, &["unregister", "--from-file", &file]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.stderr);
    assert!(
        lines[0].starts_with(&format!("jidstore: {file}:2: ")),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(":3: ") && lines[1].contains("needs a username"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(":4: ") && lines[2].contains("one JID per line"),
        "{}",
        lines[2]
    );
    assert_eq!(
        lines[3],
        format!("jidstore: 3 malformed line(s) in {file}; nothing erased")
    );
    assert_eq!(snapshot(&data, &subjects), before);
    let missing = dir.path().join("missing.txt");
    let r = jidstore(
        &data,
        &["unregister", "--from-file", missing.to_str().unwrap()],
    );
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        format!(
            "jidstore: cannot open {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
    let r = jidstore(
        &data,
        &["unregister", "--from-file", &file, "alice", "localhost"],
    );
    assert_eq!(r.code, 2);
}

/// A subject whose erasure fails is reported with its line, the others are erased, and the
/// exit code is 1.
#[test]
fn unregister_from_file_exits_1_when_a_subject_fails() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = deployment(dir.path());
    {
        let store = jidstore::Config::new(&data)
            .lock_timeout(std::time::Duration::from_secs(5))
            .open()
            .unwrap();
        let mut key = b"bob@localhost".to_vec();
        key.push(0);
        store
            .raw_tree(jidstore::__internal::keys::Keyspace::Accounts)
            .insert(key.as_slice(), &b"not an account"[..])
            .unwrap();
        store.flush().unwrap();
    }
    let file = subjects_file(dir.path(), "bob@localhost\nalice@localhost\n");
    let r = jidstore(&data, &["unregister", "--from-file", &file]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with(&format!("jidstore: {file}:1: bob@localhost: ")),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout
            .starts_with("FAILED bob@localhost\nerased alice@localhost"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1 failed"), "{}", r.stdout);
}

#[test]
fn inspect_counts_what_is_held_and_what_erasure_keeps_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (data, subjects) = deployment(dir.path());
    let before = snapshot(&data, &subjects);
    let r = jidstore(&data, &["--json", "inspect", "alice", "localhost"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["subject"], "alice@localhost");
    assert_eq!(
        doc["account"]["mechanisms"],
        serde_json::json!(["SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-512"])
    );
    // The table counts are the export's row counts.
    let store = jidstore::Config::new(&data)
        .lock_timeout(std::time::Duration::from_secs(5))
        .open()
        .unwrap();
    let mut sink = std::io::Cursor::new(Vec::new());
    let summary = jidstore::gdpr::retrieve(
        &store,
        &bare("alice@localhost"),
        &mut sink,
        &jidstore::gdpr::ExportOptions::default(),
    )
    .unwrap();
    drop(store);
    for f in &summary.files {
        let stem = f.name.strip_suffix(".csv").unwrap();
        assert_eq!(doc["tables"][stem], f.rows, "{stem}");
    }
    assert_eq!(doc["total_rows"], summary.total_rows());
    assert_eq!(doc["tables"]["mam_muc"], 2);
    assert_eq!(doc["tables"]["pubsub_items"], 4);
    // The erasure part is the dry run's receipt.
    let dry = jidstore(
        &data,
        &["--json", "unregister", "--dry-run", "alice", "localhost"],
    );
    let mut dry: serde_json::Value = serde_json::from_str(&dry.stdout).unwrap();
    dry.as_object_mut().unwrap().remove("purged");
    assert_eq!(doc["erasure"], dry);

    let r = jidstore(&data, &["inspect", "alice", "localhost"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = r.stdout;
    assert!(
        text.starts_with("alice@localhost: account created 2"),
        "{text}"
    );
    for line in [
        "  mam_pm                     4",
        "  mam_muc                    2",
        "  pubsub_items               4",
        "Erasure would remove 32 rows (unregister --dry-run shows the receipt)",
        "Erasure would keep:",
        "  mam_muc                    2 (group-chat history belongs to every participant)",
        "  pubsub_items               2 (items published on flat nodes and on other users' \
         nodes stay, as in MongooseIM)",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in\n{text}");
    }
    assert_eq!(
        snapshot(&data, &subjects),
        before,
        "inspect changed the store"
    );
}

#[test]
fn inspect_works_without_an_account_and_says_when_nothing_is_held() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = deployment(dir.path());
    let r = jidstore(&data, &["inspect", "carol", "remote.example"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("carol@remote.example: no account\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l == "  pubsub_subscriptions       1"),
        "{}",
        r.stdout
    );
    // After alice's erasure: only what erasure keeps, and nothing more to remove.
    assert_eq!(
        jidstore(&data, &["unregister", "alice", "localhost"]).code,
        0
    );
    let r = jidstore(&data, &["--json", "inspect", "alice", "localhost"]);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["account"], serde_json::Value::Null);
    assert_eq!(doc["erasure"]["total_removed"], 0);
    assert_eq!(doc["tables"]["mam_muc"], 2);
    assert_eq!(doc["tables"]["accounts"], 0);
    let r = jidstore(&data, &["inspect", "nobody", "localhost"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "jidstore: no personal data held for nobody@localhost\n"
    );
    let r = jidstore(&data, &["inspect", "a/b", "localhost"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("a/b@localhost"), "{}", r.stderr);
}

/// The audit log lines, without their time (first word).
fn audit_lines(data: &std::path::Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    let r = jidstore(data, &all);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.to_owned())
        .collect()
}

#[test]
fn audit_records_retrievals_erasures_imports_and_compactions_without_jids() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = deployment(dir.path());
    let zip = dir.path().join("alice.zip");
    let r = retrieve_to(&data, "alice", &zip);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // An error writes nothing, an audit entry neither; nor do a dry run and inspect.
    let other = dir.path().join("nobody.zip");
    let r = retrieve_to(&data, "nobody", &other);
    assert_eq!(r.code, 1);
    assert_eq!(
        jidstore(&data, &["unregister", "nobody", "localhost"]).code,
        1
    );
    assert_eq!(
        jidstore(&data, &["unregister", "--dry-run", "alice", "localhost"]).code,
        0
    );
    assert_eq!(jidstore(&data, &["inspect", "alice", "localhost"]).code, 0);
    let before_erasure = jidstore(&data, &["--json", "audit"]).stdout;
    let r = jidstore(&data, &["unregister", "--purge", "alice", "localhost"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pie = dir.path().join("in.xml");
    std::fs::write(&pie, NO_CREDENTIALS).unwrap();
    assert_eq!(jidstore(&data, &["import", pie.to_str().unwrap()]).code, 0);
    let file = subjects_file(dir.path(), "carol@remote.example\nalice@localhost\n");
    assert_eq!(
        jidstore(&data, &["unregister", "--from-file", &file]).code,
        0
    );

    let store = jidstore::Config::new(&data)
        .lock_timeout(std::time::Duration::from_secs(5))
        .open()
        .unwrap();
    let hash = |j: &str| jidstore::gdpr::audit::subject_hash(&store, &bare(j)).unwrap();
    let (alice, carol) = (hash("alice@localhost"), hash("carol@remote.example"));
    drop(store);
    let lines = audit_lines(&data, &[]);
    let size = |l: &str| l.split(" entries=").nth(1).unwrap().to_owned();
    assert_eq!(
        lines,
        [
            format!("retrieve ok subject={alice} rows=37"),
            format!("erase ok subject={alice} kept=6 removed=32"),
            format!("compact ok subject=- entries={}", size(&lines[2])),
            "import ok subject=- failed=0 imported=1 records=1".to_owned(),
            format!("erase ok subject={carol} kept=0 removed=1"),
            format!("erase nothing-erased subject={alice} kept=6 removed=0"),
        ]
    );
    // The entries written before the subject's erasure (and the compaction) are all there.
    let after: serde_json::Value =
        serde_json::from_str(&jidstore(&data, &["--json", "audit"]).stdout).unwrap();
    let before: serde_json::Value = serde_json::from_str(&before_erasure).unwrap();
    assert_eq!(before["count"], 1);
    assert_eq!(after["entries"][0], before["entries"][0]);
    assert_eq!(after["count"], 6);
    // --jid picks one subject's entries, --since drops older ones.
    assert_eq!(audit_lines(&data, &["--jid", "Alice@localhost"]).len(), 3);
    let t = after["entries"][3]["time"].as_str().unwrap();
    assert_eq!(audit_lines(&data, &["--since", t]).len(), 3);
    // No JID anywhere in the log or its keyspace.
    let text = jidstore(&data, &["audit"]).stdout;
    for j in ["alice", "carol", "localhost", "remote.example", "nocred"] {
        assert!(!text.contains(j), "{j} in\n{text}");
    }
    let store = jidstore::Config::new(&data)
        .lock_timeout(std::time::Duration::from_secs(5))
        .open()
        .unwrap();
    for entry in store.raw_tree(jidstore::__internal::keys::Keyspace::Audit) {
        let (k, v) = entry.unwrap();
        for bytes in [&k[..], &v[..]] {
            let lossy = String::from_utf8_lossy(bytes);
            assert!(
                !lossy.contains("alice") && !lossy.contains("localhost"),
                "{lossy}"
            );
        }
    }
}

#[test]
fn verify_checks_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let (data, _) = deployment(dir.path());
    let zip = dir.path().join("alice.zip");
    let r = retrieve_to(&data, "alice", &zip);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = jidstore(&data, &["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    {
        let store = jidstore::Config::new(&data)
            .lock_timeout(std::time::Duration::from_secs(5))
            .open()
            .unwrap();
        let tree = store.raw_tree(jidstore::__internal::keys::Keyspace::Audit);
        let (key, _) = tree.iter().next().unwrap().unwrap();
        tree.insert(key, &b"damaged"[..]).unwrap();
        store.flush().unwrap();
    }
    let r = jidstore(&data, &["verify"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("audit"), "{}", r.stdout);
}

#[test]
fn audit_rejects_a_bad_since_and_a_bad_jid() {
    let (_dir, data) = accounts_store(&["alice@localhost"]);
    let r = jidstore(&data, &["audit", "--since", "yesterday"]);
    assert_eq!(r.code, 2);
    let r = jidstore(&data, &["audit", "--jid", "a@b/c"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let r = jidstore(&data, &["audit"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
}
