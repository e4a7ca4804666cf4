//! The admin socket with two real processes: a `jidstore serve-admin` process holds the store
//! and serves the socket; `jidstore` commands run in other processes must print what a direct
//! run on an identical store prints, with the same exit codes.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use crate::util::*;

/// A `jidstore serve-admin` process; dropping it closes its stdin, which stops it. Shared
/// with the other modules that need a running server.
pub(crate) struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    socket: PathBuf,
}

impl Server {
    pub(crate) fn start(data: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jidstore"))
            .arg("--data-dir")
            .arg(data)
            .arg("serve-admin")
            .env_remove("JIDSTORE_DATA_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // The first line says the socket is ready.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let socket = data.join("admin.sock");
        assert_eq!(line.trim(), format!("serving {}", socket.display()));
        let stdin = child.stdin.take();
        Server {
            child,
            stdin,
            socket,
        }
    }

    fn stop(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Runs the binary in `cwd` with `stdin`.
fn run_in(data: &Path, cwd: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_jidstore"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .current_dir(cwd)
        .env_remove("JIDSTORE_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    Run::from(out)
}

/// A store with two users, a 1-1 archive and a room, closed; returns its data dir.
fn populated(root: &Path) -> PathBuf {
    let data = root.join("data");
    let store = jidstore::Config::new(&data)
        .scram_iterations(16)
        .open()
        .unwrap();
    let (alice, bob) = (
        user(&store, "alice@localhost"),
        user(&store, "bob@localhost"),
    );
    store
        .vcard()
        .set(&alice, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
        .unwrap();
    for i in 0..3 {
        store
            .mam()
            .append(
                &alice,
                &jidstore::ext::mam::PmMessage::new(
                    jidstore::Timestamp::from_micros(1_700_000_000_000_000 + i),
                    full("alice@localhost/a"),
                    full("bob@localhost/b"),
                    jidstore::ext::mam::Direction::Outgoing,
                    format!("<message xmlns='jabber:client'><body>m{i}</body></message>"),
                ),
            )
            .unwrap();
    }
    let _ = bob;
    store.flush().unwrap();
    drop(store);
    data
}

/// Copies a closed data dir file by file (an identical store for the direct runs).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Lines that legitimately differ between two runs (timings, sizes on disk, paths of the
/// two stores) are masked.
fn masked(text: &str, data: &Path) -> String {
    text.lines()
        .map(|l| {
            if l.starts_with("Committed in ") || l.starts_with("size on disk:") {
                "<masked>".to_owned()
            } else {
                l.replace(data.to_str().unwrap(), "<data>")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `args` through the socket of the server holding `served`, then directly on the
/// identical store `direct`, both in `cwd`, and compares what they print.
fn assert_same_output(served: &Path, direct: &Path, cwd: &Path, args: &[&str], stdin: &[u8]) {
    let via_socket = run_in(served, cwd, args, stdin);
    // Relative output paths resolve against the client's cwd, not the server's.
    let zip = cwd.join("alice.zip");
    if args.contains(&"retrieve_personal_data") {
        assert!(zip.exists(), "{}", via_socket.stderr);
    }
    if zip.exists() {
        assert!(unzip(&zip).contains_key("vcard.csv"));
        std::fs::remove_file(&zip).unwrap();
    }
    let direct_run = run_in(direct, cwd, args, stdin);
    assert_eq!(
        via_socket.code, direct_run.code,
        "{args:?}: {}",
        via_socket.stderr
    );
    let json = args.contains(&"--json");
    if json && args.contains(&"stats") {
        // size_on_disk differs; everything else must not.
        let strip = |s: &str| {
            let mut v: serde_json::Value = serde_json::from_str(s).unwrap();
            v.as_object_mut().unwrap().remove("size_on_disk");
            v
        };
        assert_eq!(strip(&via_socket.stdout), strip(&direct_run.stdout));
    } else {
        assert_eq!(
            masked(&via_socket.stdout, served),
            masked(&direct_run.stdout, direct),
            "{args:?}"
        );
    }
    assert_eq!(
        masked(&via_socket.stderr, served),
        masked(&direct_run.stderr, direct),
        "{args:?}"
    );
}

#[test]
fn forwarded_commands_print_what_direct_runs_print() {
    let tmp = tempfile::tempdir().unwrap();
    let served = populated(&tmp.path().join("a"));
    // Wait for sled's lock of the closed store to go before copying and serving it.
    drop(
        jidstore::Config::new(&served)
            .lock_timeout(std::time::Duration::from_secs(5))
            .open()
            .unwrap(),
    );
    let direct = tmp.path().join("b/data");
    copy_dir(&served, &direct);
    let cwd = tmp.path().join("work");
    std::fs::create_dir(&cwd).unwrap();
    let serving = Server::start(&served);

    let cases: &[(&[&str], &[u8])] = &[
        (&["stats"], b""),
        (&["verify"], b""),
        (&["mam", "query", "alice", "localhost", "--max", "2"], b""),
        (
            &["--json", "mam", "query", "alice", "localhost", "--max", "2"],
            b"",
        ),
        (
            &["register", "--user", "carol", "localhost", "-"],
            b"secret\n",
        ),
        (&["register", "--user", "carol", "localhost", "pw"], b""),
        (
            &["retrieve_personal_data", "alice", "localhost", "alice.zip"],
            b"",
        ),
        (&["unregister", "bob", "localhost"], b""),
        (&["unregister", "nobody", "localhost"], b""),
        (
            &["mam", "query", "alice", "localhost", "--after", "nope"],
            b"",
        ),
        (&["--json", "stats"], b""),
    ];
    for (args, stdin) in cases {
        assert_same_output(&served, &direct, &cwd, args, stdin);
    }
    // The error case is one line, exit 1.
    let r = run_in(&served, &cwd, &["unregister", "nobody", "localhost"], b"");
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr, "jidstore: user nobody@localhost does not exist\n");
    // The password read from the client's stdin was used.
    let r = run_in(&served, &cwd, &["stats"], b"");
    assert!(
        r.stdout.contains("localhost                      2"),
        "{}",
        r.stdout
    );
    // Commands needing the directory to themselves are refused, one line, exit 1.
    let r = run_in(
        &served,
        &cwd,
        &["unregister", "--purge", "alice", "localhost"],
        b"",
    );
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("unregister --purge cannot run while a server holds the store")
    );
    serving.stop();
    // The socket is gone, and the server's writes are on disk.
    assert!(!served.join("admin.sock").exists());
    let store = jidstore::Config::new(&served)
        .lock_timeout(std::time::Duration::from_secs(5))
        .open()
        .unwrap();
    assert!(
        store
            .accounts()
            .check_password(&bare("carol@localhost"), "secret")
            .unwrap()
    );
    assert!(store.accounts().exists(&bare("alice@localhost")).unwrap());
    assert!(!store.accounts().exists(&bare("bob@localhost")).unwrap());
}

#[test]
fn socket_is_owner_only_and_a_stale_one_is_ignored_then_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let data = populated(tmp.path());
    let server = Server::start(&data);
    let meta = std::fs::metadata(&server.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    // No temporary directory left behind.
    let names: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".admin-")), "{names:?}");
    server.stop();

    // A stale socket (its process gone): clients report the lock, as without a socket.
    let stale = std::os::unix::net::UnixListener::bind(data.join("admin.sock")).unwrap();
    drop(stale);
    assert!(data.join("admin.sock").exists());
    let held = jidstore::Config::new(&data)
        .lock_timeout(std::time::Duration::from_secs(5))
        .open()
        .unwrap();
    let r = jidstore(&data, &["stats"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("is locked by another process"),
        "{}",
        r.stderr
    );
    // serve replaces it.
    let admin = jidstore::admin::serve(&held).unwrap();
    let r = jidstore(&data, &["stats"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("accounts:"));
    // A second serve of the same directory is refused while the first is live.
    assert!(jidstore::admin::serve(&held).is_err());
    drop(admin);
    assert!(!data.join("admin.sock").exists());
}

/// Run as another user by `other_users_are_refused`: tries the socket named in
/// `JIDSTORE_TEST_ADMIN_DIR` and prints whether it was answered.
#[test]
#[ignore = "helper process for other_users_are_refused"]
fn admin_peer_child() {
    let Some(dir) = std::env::var_os("JIDSTORE_TEST_ADMIN_DIR") else {
        return;
    };
    let ctx = jidstore::__internal::command::Context {
        cwd: "/".into(),
        ..Default::default()
    };
    match jidstore::admin::forward(Path::new(&dir), &["stats".into()], &ctx) {
        Ok(Some(r)) => println!("ANSWERED {}", r.code),
        Ok(None) => println!("NO SERVER"),
        Err(e) => println!("REFUSED {e}"),
    }
}

#[test]
fn other_users_are_refused() {
    if !running_as_root() {
        eprintln!("skipped: other_users_are_refused needs root to run a client as another user");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = populated(tmp.path());
    let server = Server::start(&data);
    // Open the way to the socket, the socket included: only the peer check is left.
    for p in [tmp.path(), data.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&server.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let child = |uid: Option<u32>| {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "admin::admin_peer_child",
            "--ignored",
            "--nocapture",
        ])
        .env("JIDSTORE_TEST_ADMIN_DIR", &data);
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        String::from_utf8(cmd.output().unwrap().stdout).unwrap()
    };
    let same_user = child(None);
    assert!(same_user.contains("ANSWERED 0"), "{same_user}");
    let nobody = child(Some(65534));
    assert!(nobody.contains("REFUSED"), "{nobody}");
    assert!(!nobody.contains("ANSWERED"), "{nobody}");
    server.stop();
}
