//! Process safety (issue 13): signals clean up what a command created, a data directory
//! owned by another user is refused, the admin client never hangs, and a caught panic stays
//! one line on stderr.

use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::util::{jidstore, running_as_root, unpack};

// See issue 13, item 8: sled's panic message printed before the one-line error.
#[test]
fn a_panic_caught_on_a_damaged_store_prints_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // A store killed during an import, its `db` then cut just past the first segment:
    // sled 0.34 panics ("tried to serialize Uninitialized") while recovering it.
    unpack(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/damaged/sled-panics-on-open.zip"
        )),
        dir.path(),
    );
    let data = dir.path().join("data");
    for cmd in ["stats", "verify"] {
        let run = jidstore(&data, &[cmd]);
        assert_eq!(run.code, 1, "{cmd}: {}", run.stderr);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "{cmd}: stderr is not one line:\n{}",
            run.stderr
        );
        assert!(
            lines[0].starts_with("jidstore: ") && lines[0].contains("sled panicked"),
            "{cmd}: {}",
            lines[0]
        );
    }
}

/// Runs `jidstore --data-dir <data> <args>` with extra environment, killed (and the test
/// failed) if it hangs.
fn run_env(data: &Path, args: &[&str], env: &[(&str, &str)]) -> crate::util::Run {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jidstore"));
    cmd.arg("--data-dir").arg(data).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    crate::bounded::run_bounded(&mut cmd)
}

/// A store held open by this process (so the CLI finds it locked and forwards), with a fake
/// admin socket whose connections `serve` handles.
fn fake_server(
    serve: impl FnOnce(std::os::unix::net::UnixStream) + Send + 'static,
) -> (
    tempfile::TempDir,
    jidstore::Store,
    std::thread::JoinHandle<()>,
) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = jidstore::Config::new(&data).open().unwrap();
    let listener = std::os::unix::net::UnixListener::bind(data.join("admin.sock")).unwrap();
    let thread = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        serve(conn);
    });
    (dir, store, thread)
}

/// Reads the client's request frame.
fn read_request(conn: &mut std::os::unix::net::UnixStream) {
    use std::io::Read;
    let mut len = [0u8; 4];
    conn.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    conn.read_exact(&mut body).unwrap();
}

// See issue 13, item 6: a server that holds the socket but never answers hung the client.
#[test]
fn admin_client_times_out_on_a_server_that_never_answers() {
    let (dir, _store, server) = fake_server(|mut conn| {
        // Accept, then say nothing until the client gives up and closes.
        let _ = std::io::Read::read_to_end(&mut conn, &mut Vec::new());
    });
    let run = run_env(
        &dir.path().join("data"),
        &["stats"],
        &[("JIDSTORE_ADMIN_TIMEOUT", "0.3")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr
            .starts_with("jidstore: cannot use the admin socket")
            && run.stderr.contains("the server did not answer for 0.3 s"),
        "{}",
        run.stderr
    );
    server.join().unwrap();
    // A bad value is refused with one line.
    let run = run_env(
        &dir.path().join("data"),
        &["stats"],
        &[("JIDSTORE_ADMIN_TIMEOUT", "soon")],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("JIDSTORE_ADMIN_TIMEOUT must be"),
        "{}",
        run.stderr
    );
}

// See issue 13, item 6: a stopped server's backlog fills up, and a blocking connect then
// waits forever.
#[test]
fn admin_client_times_out_on_a_full_backlog() {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _store = jidstore::Config::new(&data).open().unwrap();
    // A listener that never accepts, its backlog filled.
    let addr = SocketAddrUnix::new(data.join("admin.sock")).unwrap();
    let listener = rustix::net::socket(AddressFamily::UNIX, SocketType::STREAM, None).unwrap();
    rustix::net::bind(&listener, &addr).unwrap();
    rustix::net::listen(&listener, 0).unwrap();
    let mut queued = Vec::new();
    for _ in 0..100 {
        let c = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK,
            None,
        )
        .unwrap();
        match rustix::net::connect(&c, &addr) {
            Ok(()) => queued.push(c),
            Err(rustix::io::Errno::AGAIN) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(queued.len() < 100, "the backlog never filled");
    let run = run_env(&data, &["stats"], &[("JIDSTORE_ADMIN_TIMEOUT", "0.3")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("the server did not answer for 0.3 s"),
        "{}",
        run.stderr
    );
}

// See issue 13, item 6: a server that dies after taking the command (an erasure that
// committed) was reported as "not the server's user?".
#[test]
fn admin_client_says_a_command_taken_may_have_run() {
    let (dir, _store, server) = fake_server(|mut conn| {
        read_request(&mut conn);
        // Take the command (a heartbeat), then die without answering.
        std::io::Write::write_all(&mut conn, &0u32.to_be_bytes()).unwrap();
    });
    let run = run_env(
        &dir.path().join("data"),
        &["unregister", "alice", "localhost"],
        &[("JIDSTORE_ADMIN_TIMEOUT", "30")],
    );
    server.join().unwrap();
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("the command may have run") && !run.stderr.contains("user?"),
        "{}",
        run.stderr
    );
}

// See issue 13, item 6: the timeout bounds the silence between bytes, not a long command.
#[test]
fn admin_heartbeats_keep_a_long_command_alive() {
    let (dir, _store, server) = fake_server(|mut conn| {
        use std::io::Write;
        read_request(&mut conn);
        // Runs for ~2 s, twice the client's timeout, with a heartbeat every 50 ms.
        for _ in 0..40 {
            conn.write_all(&0u32.to_be_bytes()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let body = br#"{"code":0,"stdout":"ZG9uZQo=","stderr":""}"#;
        conn.write_all(&u32::try_from(body.len()).unwrap().to_be_bytes())
            .unwrap();
        conn.write_all(body).unwrap();
    });
    let run = run_env(
        &dir.path().join("data"),
        &["stats"],
        &[("JIDSTORE_ADMIN_TIMEOUT", "1")],
    );
    server.join().unwrap();
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "done\n"),
        "{}",
        run.stderr
    );
}

/// Names of the entries of `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Starts `jidstore --data-dir <data> <args>` stopped at the test pause `point` (it printed
/// `jidstore: paused at <point>` and waits for a signal).
#[expect(
    clippy::zombie_processes,
    reason = "the child is returned, and the caller waits for it"
)]
fn paused(data: &Path, args: &[&str], point: &str) -> std::process::Child {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jidstore"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("JIDSTORE_DATA_DIR")
        .env("JIDSTORE_TEST_PAUSE", point)
        .env("JIDSTORE_PROGRESS", "never")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let want = format!("jidstore: paused at {point}\n");
    loop {
        line.clear();
        if stderr.read_line(&mut line).unwrap() == 0 {
            let status = child.wait().unwrap();
            panic!("{args:?} ended ({status}) without pausing at {point}");
        }
        if line == want {
            return child;
        }
    }
}

/// Sends `signal` and waits (at most a minute: a hang fails the test) for the exit code.
fn stop(mut child: std::process::Child, signal: rustix::process::Signal) -> Option<i32> {
    rustix::process::kill_process(rustix::process::Pid::from_child(&child), signal).unwrap();
    let deadline = std::time::Instant::now() + crate::bounded::CHILD_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("jidstore did not exit after a signal");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A stopped store holding alice@localhost, at `<root>/data`.
fn alice_store(root: &Path) -> std::path::PathBuf {
    let data = root.join("data");
    let run = jidstore(&data, &["register", "--user", "alice", "localhost", "pw"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    data
}

// See issue 13, item 4: an interrupted export left its partial `.tmp` zip.
#[test]
fn a_signal_during_retrieve_removes_the_partial_zip() {
    use rustix::process::Signal;
    for (signal, code) in [(Signal::TERM, 143), (Signal::HUP, 129)] {
        let dir = tempfile::tempdir().unwrap();
        let data = alice_store(dir.path());
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let args = [
            "retrieve_personal_data",
            "alice",
            "localhost",
            out.to_str().unwrap(),
        ];
        let child = paused(&data, &args, "export-tmp");
        let left = names(&out);
        assert!(
            left.len() == 1
                && left[0].starts_with(".alice.zip.")
                && left[0].rsplit('.').next() == Some("tmp"),
            "{left:?}"
        );
        assert_eq!(stop(child, signal), Some(code));
        assert_eq!(names(&out), Vec::<String>::new());
        // The store is untouched and still opens.
        assert_eq!(jidstore(&data, &["stats"]).code, 0);
    }
}

// See issue 13, item 4: an interrupted forensic export left `.jidstore-forensic-*`, a full
// copy of the source, and its partial `.tmp` zip.
#[test]
fn a_signal_during_forensic_export_removes_the_working_copy() {
    let dir = tempfile::tempdir().unwrap();
    let data = alice_store(dir.path());
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let zip = out.join("alice.zip");
    let args = [
        "forensic-export",
        "--from",
        data.to_str().unwrap(),
        "alice",
        "localhost",
        zip.to_str().unwrap(),
    ];
    let child = paused(&dir.path().join("unused"), &args, "export-tmp");
    let left = names(&out);
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left[0].starts_with(".alice.zip.") && left[1].starts_with(".jidstore-forensic-"));
    assert_eq!(stop(child, rustix::process::Signal::INT), Some(130));
    assert_eq!(names(&out), Vec::<String>::new());
}

// See issue 13, item 4: compaction's scratch copy of the store.
#[test]
fn a_signal_during_compact_removes_the_scratch_copy() {
    let dir = tempfile::tempdir().unwrap();
    let data = alice_store(dir.path());
    let child = paused(&data, &["compact"], "compact-swap");
    let left = names(dir.path());
    assert!(
        left.len() == 2 && left[0] == "data" && left[1].starts_with("data.compact-"),
        "{left:?}"
    );
    assert_eq!(stop(child, rustix::process::Signal::TERM), Some(143));
    assert_eq!(names(dir.path()), vec!["data".to_owned()]);
    assert_eq!(jidstore(&data, &["verify"]).code, 0);
}

// See issue 13, item 4: backup's copy under its temporary name.
#[test]
fn a_signal_during_backup_removes_the_partial_copy() {
    let dir = tempfile::tempdir().unwrap();
    let data = alice_store(dir.path());
    let dest = dir.path().join("bk");
    let child = paused(&data, &["backup", dest.to_str().unwrap()], "backup-copied");
    let left = names(dir.path());
    assert!(
        left.len() == 2 && left[0].starts_with(".bk.jidstore-backup-tmp-") && left[1] == "data",
        "{left:?}"
    );
    assert_eq!(stop(child, rustix::process::Signal::INT), Some(130));
    assert_eq!(names(dir.path()), vec!["data".to_owned()]);
    assert_eq!(jidstore(&data, &["verify"]).code, 0);
}

const NOBODY: u32 = 65534;

/// Gives `path` and everything under it to nobody.
fn chown_nobody(path: &Path) {
    std::os::unix::fs::lchown(path, Some(NOBODY), Some(NOBODY)).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            chown_nobody(&e.unwrap().path());
        }
    }
}

/// Every entry under `path` (itself included) whose owner is not `uid`.
fn not_owned_by(path: &Path, uid: u32) -> Vec<std::path::PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let meta = std::fs::symlink_metadata(path).unwrap();
    if meta.uid() != uid {
        out.push(path.to_path_buf());
    }
    if meta.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            out.extend(not_owned_by(&e.unwrap().path(), uid));
        }
    }
    out
}

// See issue 13, item 5: `stats` run by root on a store nobody owns left a root-owned,
// owner-only `snap.*` file, and the owner could no longer open its store.
#[test]
fn a_data_dir_owned_by_another_user_is_refused_unless_allowed() {
    if !running_as_root() {
        eprintln!("skipped: needs root to give a data directory to another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = alice_store(dir.path());
    chown_nobody(&data);
    let before = names(&data);
    for args in [
        &["stats"][..],
        &["retrieve_personal_data", "alice", "localhost", "x.zip"],
    ] {
        let run = jidstore(&data, args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(
            run.stderr
                .contains("belongs to nobody (uid 65534), not to root (uid 0)"),
            "{}",
            run.stderr
        );
    }
    // Nothing was written into it.
    assert_eq!(names(&data), before);
    assert_eq!(
        not_owned_by(&data, NOBODY),
        Vec::<std::path::PathBuf>::new()
    );

    // Allowed: the command runs, and every file it created is given to the owner.
    let run = jidstore(&data, &["--allow-foreign-owner", "stats"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let out = dir.path().join("alice.zip");
    let run = jidstore(
        &data,
        &[
            "register",
            "--allow-foreign-owner",
            "--user",
            "bob",
            "localhost",
            "pw",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        not_owned_by(&data, NOBODY),
        Vec::<std::path::PathBuf>::new()
    );

    // The owner can still open its store and sees the new account.
    let owner = std::process::Command::new(env!("CARGO_BIN_EXE_jidstore"))
        .arg("--data-dir")
        .arg(&data)
        .arg("stats")
        .uid(NOBODY)
        .gid(NOBODY)
        .env_remove("JIDSTORE_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        owner.status.success(),
        "{}",
        String::from_utf8_lossy(&owner.stderr)
    );
    assert!(String::from_utf8_lossy(&owner.stdout).contains("localhost                      2"));

    // compact swaps in a new store as this user: refused even when allowed.
    for args in [&["compact"][..], &["--allow-foreign-owner", "compact"]] {
        let run = jidstore(&data, args);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr.contains("compact must run as the owner"),
            "{}",
            run.stderr
        );
    }

    // forensic-export only reads the source (its working copy is this user's): it works.
    let run = jidstore(
        &dir.path().join("unused"),
        &[
            "forensic-export",
            "--from",
            data.to_str().unwrap(),
            "alice",
            "localhost",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        not_owned_by(&data, NOBODY),
        Vec::<std::path::PathBuf>::new()
    );
}

// See issue 13, item 5: a foreign directory held by its owner's server still takes commands
// through the admin socket (the server writes as its own user).
#[test]
fn a_foreign_dir_held_by_its_owners_server_is_served_through_the_socket() {
    use std::io::BufRead;
    if !running_as_root() {
        eprintln!("skipped: needs root to run a server as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let data = alice_store(dir.path());
    chown_nobody(&data);
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_jidstore"))
        .arg("--data-dir")
        .arg(&data)
        .arg("serve-admin")
        .uid(NOBODY)
        .gid(NOBODY)
        .env_remove("JIDSTORE_DATA_DIR")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("serving "), "{line}");
    let run = jidstore(&data, &["stats"]);
    drop(server.stdin.take());
    assert!(server.wait().unwrap().success());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("localhost                      1"),
        "{}",
        run.stdout
    );
    assert_eq!(
        not_owned_by(&data, NOBODY),
        Vec::<std::path::PathBuf>::new()
    );
}
