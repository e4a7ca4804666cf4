//! The operator's toolbox (issue 17): `users`, `inspect`, `passwd`, `unregister --dry-run`
//! and `unregister --from-file`, through the real binary and the library.

use std::io::Write as _;

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
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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
    let r = jidstore(&data, &["users", "--prefix", "al", "--domain", "example.org"]);
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
    assert!(store.accounts().iter(Some("bad domain"), None).is_err());
    assert!(store.accounts().iter(None, Some("a/b")).is_err());
    let all: Vec<_> = store
        .accounts()
        .iter(Some("LocalHost"), None)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(all, [bare("a@localhost"), bare("b@localhost")]);
    let first = store.accounts().iter(None, Some("A")).unwrap().next();
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
        let store = jidstore::Config::new(&data).open().unwrap();
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
    let store = jidstore::Config::new(&data).open().unwrap();
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
        let store = jidstore::Config::new(&data).open().unwrap();
        let alice = bare("alice@localhost");
        assert!(store.accounts().check_password(&alice, "new-pw").unwrap());
        assert!(!store.accounts().check_password(&alice, "password").unwrap());
    }
    let r = jidstore(&data, &["passwd", "nobody", "localhost", "pw"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "jidstore: user nobody@localhost does not exist\n"
    );
    let r = jidstore(&data, &["passwd", "a@b", "localhost", "pw"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let r = jidstore_stdin(&data, &["passwd", "alice", "localhost", "-"], b"\n");
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr, "jidstore: invalid input: password must not be empty\n");
}
