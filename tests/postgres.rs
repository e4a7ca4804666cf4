//! The store on PostgreSQL through the real binary (`--database`, `JIDSTORE_DATABASE_URL`),
//! an erasure racing a writer in another process, the commands refused there, errors that
//! keep the password out, and (ignored) the cost of one archive append. The engine's contracts are checked in `src/backend/tests.rs`, the
//! property model and the GDPR checker in `tests/prop_model.rs`, all on the cluster of
//! `tests/pg`.

use std::process::{Command, Stdio};

use jidstore::ext::mam::{Direction, PmMessage};
use jidstore::{Config, Error, Store, Timestamp};

use crate::pg;
use crate::util::{Run, bare, csv_rows, full, unzip};

/// Runs the binary with `--database <url>` (or, with `env`, `JIDSTORE_DATABASE_URL`).
pub(crate) fn jidstore_db(url: &str, env: bool, args: &[&str]) -> Run {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jidstore"));
    c.env_remove("JIDSTORE_DATA_DIR")
        .env_remove("JIDSTORE_DATABASE_URL")
        .stdin(Stdio::null());
    if env {
        c.env("JIDSTORE_DATABASE_URL", url);
    } else {
        c.arg("--database").arg(url);
    }
    let out = c.args(args).output().expect("run jidstore");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn open(url: &str) -> Store {
    Config::database(url)
        .scram_iterations(16)
        .open()
        .expect("open the store on PostgreSQL")
}

fn pm(secs: i64, body: &str) -> PmMessage {
    PmMessage {
        id: None,
        timestamp: Timestamp::from_secs(secs),
        from: full("alice@localhost/phone"),
        to: full("bob@localhost"),
        direction: Direction::Outgoing,
        origin_id: None,
        stanza: format!("<message type='chat'><body>{body}</body></message>"),
    }
}

/// Alice's export holds her account, her vCard and her three messages.
fn check_export(zip: &std::path::Path) {
    let files = unzip(zip);
    let (_, accounts) = csv_rows(&files["accounts.csv"]);
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0][0], "alice@localhost");
    let vcard = files
        .iter()
        .find(|(name, _)| name.starts_with("vcard"))
        .map(|(_, text)| text.clone())
        .unwrap_or_default();
    assert!(vcard.contains("Alice A."), "{files:?}");
    let messages: usize = files
        .iter()
        .filter(|(name, _)| name.starts_with("mam"))
        .map(|(_, text)| csv_rows(text).1.len())
        .sum();
    assert_eq!(messages, 3, "{:?}", files.keys());
}

#[test]
fn register_retrieve_unregister_through_the_binary() {
    let Some(url) = pg::database() else { return };
    let r = jidstore_db(
        &url,
        false,
        &["register", "--user", "alice", "localhost", "pw"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.trim(),
        "User alice@localhost successfully registered"
    );
    let r = jidstore_db(
        &url,
        true,
        &["register", "--user", "bob", "localhost", "pw"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Data the CLI cannot write, through the library on the same database.
    let alice = bare("alice@localhost");
    {
        let store = open(&url);
        store
            .vcard()
            .set(
                &alice,
                "<vCard xmlns='vcard-temp'><FN>Alice A.</FN></vCard>",
            )
            .unwrap();
        for i in 0..3 {
            store
                .mam()
                .append(&alice, &pm(1_700_000_000 + i, &format!("hello {i}")))
                .unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("alice.zip");
    let r = jidstore_db(
        &url,
        false,
        &[
            "retrieve_personal_data",
            "alice",
            "localhost",
            zip.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    check_export(&zip);
    // backup: a copy into a new sled data directory, which opens and verifies there.
    let copy = dir.path().join("copy");
    let r = jidstore_db(&url, false, &["backup", copy.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = crate::util::jidstore(&copy, &["users"]);
    assert_eq!(r.stdout, "alice@localhost\nbob@localhost\n", "{}", r.stderr);
    assert_eq!(crate::util::jidstore(&copy, &["verify"]).code, 0);

    let r = jidstore_db(&url, false, &["unregister", "alice", "localhost"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("User alice@localhost successfully unregistered")
    );
    // Gone, also for a new process; bob untouched; verify clean.
    let r = jidstore_db(
        &url,
        false,
        &[
            "retrieve_personal_data",
            "--force",
            "alice",
            "localhost",
            zip.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    let store = open(&url);
    assert!(matches!(
        jidstore::gdpr::retrieve(
            &store,
            &alice,
            &mut std::io::Cursor::new(Vec::new()),
            &jidstore::gdpr::ExportOptions::default()
        ),
        Err(Error::NoPersonalData(_))
    ));
    assert_eq!(store.mam().count(&alice).unwrap_or(0), 0);
    assert!(store.vcard().get(&alice).unwrap().is_none());
    assert!(store.accounts().exists(&bare("bob@localhost")).unwrap());
    assert!(jidstore::verify(&store).unwrap().is_clean());
    let r = jidstore_db(&url, true, &["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn import_into_a_new_database() {
    let Some(url) = pg::database() else { return };
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/xep0227/v11.xml"
    );
    // The fixture holds a bad timestamp on purpose: skipped, as the sled import below.
    let r = jidstore_db(&url, false, &["import", "--bad-timestamps", "skip", file]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let users = jidstore_db(&url, false, &["users"]);
    assert_eq!(users.code, 0, "{}", users.stderr);
    assert!(!users.stdout.is_empty());
    // The same file into sled gives the same users.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let r = crate::util::jidstore(&data, &["import", "--bad-timestamps", "skip", file]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        crate::util::jidstore(&data, &["users"]).stdout,
        users.stdout
    );
    assert_eq!(jidstore_db(&url, false, &["verify"]).code, 0);
}

#[test]
fn directory_commands_are_refused_in_one_line() {
    let Some(url) = pg::database() else { return };
    // compact and unregister --purge vacuum there (tests/pg_purge.rs).
    for args in [
        &["demo"][..],
        &["serve-admin"],
        &["restore", "/nonexistent"],
    ] {
        let r = jidstore_db(&url, false, args);
        assert_eq!(r.code, 1, "{args:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(
            r.stderr.contains("does not work on a PostgreSQL store yet"),
            "{}",
            r.stderr
        );
    }
    let r = Command::new(env!("CARGO_BIN_EXE_jidstore"))
        .args(["--data-dir", "/nonexistent", "--database", &url, "users"])
        .env_remove("JIDSTORE_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("give one"));
}

#[test]
fn errors_are_one_line_and_never_show_the_password() {
    // A port nothing listens on (bound, then released), and a password in the URL.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://someone:hunter2secret@127.0.0.1:{port}/db");
    let r = jidstore_db(&url, false, &["users"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("PostgreSQL"), "{}", r.stderr);
    assert!(!r.stderr.contains("hunter2secret"), "{}", r.stderr);
    let err = Config::database(&url).open().unwrap_err().to_string();
    assert!(!err.contains("hunter2secret"), "{err}");
    assert!(!format!("{:?}", Config::database(&url)).contains("hunter2secret"));
    // Not a PostgreSQL URL.
    let err = Config::database("mysql://x/y")
        .open()
        .unwrap_err()
        .to_string();
    assert!(err.contains("postgres://"), "{err}");
    // A read-only command on an empty database creates nothing and says so.
    let Some(url) = pg::database() else { return };
    let r = jidstore_db(&url, false, &["users"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("no store has been created"),
        "{}",
        r.stderr
    );
    let r = jidstore_db(&url, false, &["init"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("created an empty store"), "{}", r.stdout);
    let r = jidstore_db(&url, false, &["init"]);
    assert!(r.stdout.contains("already exists"), "{}", r.stdout);
}

/// The cost of one archive append on PostgreSQL (and on sled, for scale). Not a timed
/// assertion: run with `cargo test --release --test integration append_cost -- --ignored
/// --nocapture` and read the numbers.
#[test]
#[ignore = "a measurement, not a check"]
fn append_cost() {
    let Some(url) = pg::database() else { return };
    let n = 2000;
    let alice = bare("alice@localhost");
    let dir = tempfile::tempdir().unwrap();
    let sled = Config::new(dir.path().join("data"))
        .scram_iterations(16)
        .open()
        .unwrap();
    for (name, store) in [("postgres", open(&url)), ("sled", sled)] {
        store.accounts().create(&alice, "pw").unwrap();
        let start = std::time::Instant::now();
        for i in 0..n {
            store
                .mam()
                .append(&alice, &pm(1_700_000_000 + i, "hello there"))
                .unwrap();
        }
        let per = start.elapsed() / u32::try_from(n).unwrap();
        let start = std::time::Instant::now();
        let read = store.mam().iter(&alice).unwrap().count();
        let scan = start.elapsed();
        assert_eq!(read, usize::try_from(n).unwrap());
        println!("{name}: append {per:?} per message ({n} appends); full archive read {scan:?}");
    }
}

/// The writer process of [`erasure_is_race_free_across_processes`]: appends to alice's
/// archive and sets her vCard (`JIDSTORE_RACE_URL` names the database) until her account is
/// gone, then 50 times more. Once one write was refused for want of an account, every later
/// one must be: nothing lands after the erasure.
#[test]
#[ignore = "a child process of erasure_is_race_free_across_processes"]
fn race_writer() {
    let Ok(url) = std::env::var("JIDSTORE_RACE_URL") else {
        return;
    };
    let store = open(&url);
    let alice = bare("alice@localhost");
    let (mut refused, mut i) = (0, 0);
    while refused < 50 {
        i += 1;
        let appended = store.mam().append(&alice, &pm(1_700_000_000 + i, "racing"));
        let set = store
            .vcard()
            .set(&alice, "<vCard xmlns='vcard-temp'><FN>again</FN></vCard>");
        for res in [appended.map(|_| ()), set] {
            match res {
                Ok(()) => assert_eq!(refused, 0, "a write landed after one was refused"),
                Err(Error::NoAccount(_)) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }
}

/// Two processes on one database: this one erases alice while the other keeps writing for
/// her. Afterwards nothing of her remains (seen from a new connection) and verify is clean.
#[test]
fn erasure_is_race_free_across_processes() {
    use jidstore::__internal::keys::Keyspace;
    let Some(url) = pg::database() else { return };
    let store = open(&url);
    let alice = bare("alice@localhost");
    store.accounts().create(&alice, "pw").unwrap();
    store
        .accounts()
        .create(&bare("bob@localhost"), "pw")
        .unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "postgres::race_writer",
            "--ignored",
            "--test-threads=1",
        ])
        .env("JIDSTORE_RACE_URL", &url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Erase once the writer's messages are landing (waits for a state, not for a time).
    while store.mam().count(&alice).unwrap() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let receipt = jidstore::gdpr::remove(&store, &alice).unwrap();
    assert!(receipt.sweep_error.is_none());
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("1 passed"), "the writer did not run: {said}");
    drop(store);
    let fresh = open(&url);
    assert!(matches!(
        jidstore::gdpr::retrieve(
            &fresh,
            &alice,
            &mut std::io::Cursor::new(Vec::new()),
            &jidstore::gdpr::ExportOptions::default()
        ),
        Err(Error::NoPersonalData(_))
    ));
    // Only alice ever wrote these: empty, not merely unreachable.
    for ks in [Keyspace::MamPm, Keyspace::Vcard] {
        assert!(fresh.raw_tree(ks).is_empty(), "{} holds entries", ks.name());
    }
    assert!(jidstore::verify(&fresh).unwrap().is_clean());
}
