//! Output paths and backup safety (issue 13): a killed `backup` never leaves a directory
//! that passes as a good copy; no output replaces anything but a regular file; no output
//! lands inside the data directory (also through the admin socket); `-` is refused; the
//! free-space reserve (`JIDSTORE_MIN_FREE`) holds for `backup` and `compact`; a deleted `db`
//! is reported as missing.

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use jidstore::Timestamp;
use jidstore::ext::mam::{Direction, PmMessage};

use crate::admin::Server;
use crate::util::*;

/// One run of the binary: exit code (-1 when killed), output, and the killing signal.
struct Ran {
    run: Run,
    signal: Option<i32>,
}

fn run_with(data: &Path, args: &[&std::ffi::OsStr], env: &[(&str, &str)], cwd: &Path) -> Ran {
    let out = Command::new(env!("CARGO_BIN_EXE_jidstore"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .envs(env.iter().copied())
        .env_remove("JIDSTORE_DATA_DIR")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run jidstore");
    Ran {
        signal: out.status.signal(),
        run: Run::from(out),
    }
}

fn os(s: &(impl AsRef<std::ffi::OsStr> + ?Sized)) -> &std::ffi::OsStr {
    s.as_ref()
}

/// A closed store at `<root>/data`: alice with a vCard and a 1-1 archive appended one
/// message at a time (as a live server does), bob with a vCard.
fn populated(root: &Path, messages: i64) -> PathBuf {
    let data = root.join("data");
    let store = jidstore::Config::new(&data)
        .scram_iterations(16)
        .open()
        .unwrap();
    let alice = user(&store, "alice@localhost");
    let bob = user(&store, "bob@localhost");
    for (who, name) in [(&alice, "Alice"), (&bob, "Bob")] {
        store
            .vcard()
            .set(
                who,
                &format!("<vCard xmlns='vcard-temp'><FN>{name}</FN></vCard>"),
            )
            .unwrap();
    }
    for i in 0..messages {
        let m = PmMessage::new(
            Timestamp::from_secs(1_700_000_000 + i),
            full("alice@localhost/a"),
            full("bob@localhost/b"),
            Direction::Outgoing,
            format!("<message xmlns='jabber:client'><body>m{i}</body></message>"),
        );
        store.mam().append(&alice, &m).unwrap();
    }
    store.flush().unwrap();
    drop(store);
    data
}

/// The CSV files of a zip export.
fn csvs(zip: &Path) -> BTreeMap<String, String> {
    let mut files = unzip(zip);
    files.retain(|name, _| Path::new(name).extension().is_some_and(|e| e == "csv"));
    files
}

/// Names in `dir` containing `part`.
fn named(dir: &Path, part: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(part))
        .collect();
    found.sort();
    found
}

/// `copy` holds exactly what the source exported: verify is clean and a forensic export of
/// each user from it has the same CSVs as `expected`.
fn assert_whole_copy(copy: &Path, expected: &BTreeMap<&str, BTreeMap<String, String>>, at: &str) {
    let r = jidstore_settled(copy, &["verify"]);
    assert_eq!(
        r.code,
        0,
        "{at}: verify of {}: {}",
        copy.display(),
        r.stderr
    );
    for (who, want) in expected {
        let zip = copy.with_extension(format!("{who}.zip"));
        let _ = std::fs::remove_file(&zip);
        let r = jidstore(
            copy,
            &[
                "forensic-export",
                "--from",
                copy.to_str().unwrap(),
                who,
                "localhost",
                zip.to_str().unwrap(),
            ],
        );
        assert_eq!(r.code, 0, "{at}: forensic export of {who}: {}", r.stderr);
        assert_eq!(&csvs(&zip), want, "{at}: {who}'s data in the copy differs");
        std::fs::remove_file(&zip).unwrap();
    }
}

/// `dir` is refused as an incomplete copy by `verify` and by `forensic-export`, which
/// writes nothing.
fn assert_refused_as_incomplete(dir: &Path, at: &str) {
    let r = jidstore_settled(dir, &["verify"]);
    assert_eq!(r.code, 1, "{at}: verify of {}: {}", dir.display(), r.stdout);
    assert_eq!(r.stderr.lines().count(), 1, "{at}: {}", r.stderr);
    assert!(r.stderr.contains("incomplete copy"), "{at}: {}", r.stderr);
    let zip = dir.with_extension("zip");
    let r = jidstore(
        dir,
        &[
            "forensic-export",
            "--from",
            dir.to_str().unwrap(),
            "alice",
            "localhost",
            zip.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1, "{at}: forensic-export: {}", r.stdout);
    assert!(r.stderr.contains("incomplete copy"), "{at}: {}", r.stderr);
    assert!(
        !zip.exists(),
        "{at}: forensic-export wrote {}",
        zip.display()
    );
}

/// Issue 13, item 1: `backup` killed with SIGKILL at each step (by its `JIDSTORE_TEST_KILL_AT`
/// hook: a chosen point, no timing) leaves either no `<dest>` or a whole one; the temporary
/// directory it leaves is refused as an incomplete copy (or, killed after the copy was
/// complete and synced, holds the whole copy); a new backup then succeeds. Before the fix the
/// copy was written in place: killed after the accounts were copied, `<dest>` verified clean
/// and held none of alice's messages.
#[test]
fn killed_backup_leaves_no_copy_or_a_whole_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = populated(dir.path(), 3_000);
    let mut expected = BTreeMap::new();
    for who in ["alice", "bob"] {
        let zip = dir.path().join(format!("{who}-source.zip"));
        let r = jidstore_settled(
            &data,
            &[
                "retrieve_personal_data",
                who,
                "localhost",
                zip.to_str().unwrap(),
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        expected.insert(who, csvs(&zip));
    }
    let dest = dir.path().join("backup");
    let points = [
        ("copy:created", false),
        ("copy:keyspace:accounts", false),
        ("copy:keyspace:mam_pm", false),
        ("copy:flushed", false),
        ("backup:completed", false),
        ("backup:renamed", true),
    ];
    for (point, dest_expected) in points {
        let ran = run_with(
            &data,
            &[os("backup"), os(&dest)],
            &[("JIDSTORE_TEST_KILL_AT", point)],
            dir.path(),
        );
        assert_eq!(
            ran.signal,
            Some(9),
            "{point}: backup was not killed there: exit {} {}",
            ran.run.code,
            ran.run.stderr
        );
        assert_eq!(dest.exists(), dest_expected, "{point}: {}", dest.display());
        if dest.exists() {
            assert_whole_copy(&dest, &expected, point);
            std::fs::remove_dir_all(&dest).unwrap();
        } else {
            let r = jidstore_settled(&dest, &["verify"]);
            assert_eq!(r.code, 1, "{point}: {}", r.stdout);
        }
        for leftover in named(dir.path(), ".backup.jidstore-backup-tmp-") {
            if leftover.join("jidstore-incomplete-copy").exists() {
                assert_refused_as_incomplete(&leftover, point);
            } else {
                assert_eq!(point, "backup:completed", "{}", leftover.display());
                assert_whole_copy(&leftover, &expected, point);
            }
            std::fs::remove_dir_all(&leftover).unwrap();
        }
    }
    let r = jidstore_settled(&data, &["backup", dest.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_whole_copy(&dest, &expected, "uninterrupted");
    assert!(named(dir.path(), "jidstore-backup-tmp").is_empty());
}

/// A FIFO, a socket or a device is never replaced by an export, with or without `--force`,
/// for every command that writes a file. Before the fix `--force` turned them into a zip
/// (as root, `/dev/null` too).
#[test]
fn outputs_that_are_not_regular_files_are_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let data = populated(dir.path(), 3);
    let copy = dir.path().join("copy");
    crate::bounded::copy_dir(&data, &copy);
    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let socket = dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let commands = |target: &Path| -> Vec<Vec<std::ffi::OsString>> {
        let t = target.as_os_str().to_owned();
        vec![
            vec![
                "retrieve_personal_data".into(),
                "alice".into(),
                "localhost".into(),
                t.clone(),
            ],
            vec![
                "export-xep0227".into(),
                "alice".into(),
                "localhost".into(),
                t.clone(),
            ],
            vec![
                "forensic-export".into(),
                "--from".into(),
                copy.clone().into_os_string(),
                "alice".into(),
                "localhost".into(),
                t,
            ],
        ]
    };
    let kind = |p: &Path| std::fs::symlink_metadata(p).unwrap().file_type();
    // The FIFO and the socket first: /dev/null (replaced by the unfixed binary when run as
    // root) is tried only once they are known to be refused.
    for (target, what) in [
        (fifo.as_path(), "a FIFO"),
        (socket.as_path(), "a socket"),
        (Path::new("/dev/null"), "a character device"),
    ] {
        for mut args in commands(target) {
            for force in [false, true] {
                if force {
                    args.push("--force".into());
                }
                let argv: Vec<&std::ffi::OsStr> = args.iter().map(os).collect();
                let r = run_with(&data, &argv, &[], dir.path()).run;
                assert_eq!(r.code, 1, "{args:?}: {}", r.stdout);
                assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
                assert!(
                    r.stderr
                        .contains(&format!("it is {what}, not a regular file")),
                    "{args:?}: {}",
                    r.stderr
                );
                assert!(r.stdout.is_empty());
            }
            assert!(kind(&fifo).is_fifo() && kind(&socket).is_socket());
            assert!(kind(Path::new("/dev/null")).is_char_device());
        }
    }
    let stray: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            Path::new(n).extension().is_some_and(|e| e == "tmp")
                || n.starts_with(".jidstore-forensic")
        })
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

/// Issue 13, item 3: no export (nor forensic-export's working directory) is written inside
/// the data directory, however the path is spelt, directly or through the admin socket.
/// Before the fix `retrieve_personal_data ... DATA/db --force` replaced the store's own file
/// and the store no longer opened.
#[test]
fn outputs_inside_the_data_dir_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = populated(dir.path(), 3);
    let copy = dir.path().join("copy");
    crate::bounded::copy_dir(&data, &copy);
    let link = dir.path().join("datalink");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    let d = |rel: &str| data.join(rel).to_str().unwrap().to_owned();
    let l = |rel: &str| link.join(rel).to_str().unwrap().to_owned();
    let from = copy.to_str().unwrap().to_owned();
    let outside = dir.path().join("out.zip").to_str().unwrap().to_owned();
    let retrieve = |path: String| -> Vec<String> {
        let mut v = vec![
            "retrieve_personal_data".to_owned(),
            "alice".into(),
            "localhost".into(),
        ];
        v.push(path);
        v
    };
    let forensic = |path: String| -> Vec<String> {
        let mut v = vec!["forensic-export".to_owned(), "--from".into(), from.clone()];
        v.extend(["alice".to_owned(), "localhost".into(), path]);
        v
    };
    let force = |mut v: Vec<String>| -> Vec<String> {
        v.push("--force".into());
        v
    };
    let mut xep0227 = retrieve(d("conf"));
    xep0227[0] = "export-xep0227".into();
    let mut via_link = retrieve(l("alice.xml"));
    via_link[0] = "export-xep0227".into();
    let mut work_dir = forensic(outside);
    work_dir.extend(["--work-dir".to_owned(), l("")]);
    let cases: Vec<Vec<String>> = vec![
        force(retrieve(d("db"))),
        force(xep0227),
        retrieve(d("")),
        retrieve(d("blobs/../alice.zip")),
        via_link,
        retrieve(l("")),
        forensic(d("x.zip")),
        force(forensic(l("db"))),
        work_dir,
    ];
    let names = |p: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("snap."))
            .collect();
        v.sort();
        v
    };
    let before = names(&data);
    let check = |r: &Run, args: &[String], how: &str| {
        assert_eq!(r.code, 1, "{how} {args:?}: {}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{how} {args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("cannot be inside the data directory"),
            "{how} {args:?}: {}",
            r.stderr
        );
    };
    for args in &cases {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        check(&jidstore_settled(&data, &argv), args, "direct");
        assert_eq!(names(&data), before, "{args:?}");
    }
    // Through the admin socket: the command runs in the server process.
    {
        let _server = Server::start(&data);
        for args in cases.iter().filter(|a| a[0] != "forensic-export") {
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            check(&jidstore(&data, &argv), args, "forwarded");
        }
    }
    let mut after = names(&data);
    after.retain(|n| n != "admin.sock");
    assert_eq!(after, before);
    let r = jidstore_settled(&data, &["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

/// Issue 13, item 4: an output path of `-` is refused with one line (no file named `-`).
#[test]
fn dash_as_output_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = populated(dir.path(), 3);
    let copy = dir.path().join("copy");
    crate::bounded::copy_dir(&data, &copy);
    let from = copy.to_str().unwrap();
    for args in [
        vec!["retrieve_personal_data", "alice", "localhost", "-"],
        vec!["export-xep0227", "alice", "localhost", "-"],
        vec!["forensic-export", "--from", from, "alice", "localhost", "-"],
        vec!["backup", "-"],
    ] {
        let argv: Vec<&std::ffi::OsStr> = args.iter().map(os).collect();
        let r = run_with(&data, &argv, &[], dir.path()).run;
        assert_eq!(r.code, 1, "{args:?}: {}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("output path `-`"),
            "{args:?}: {}",
            r.stderr
        );
        assert!(
            !dir.path().join("-").exists(),
            "{args:?} created a file named -"
        );
    }
    // `./-` is a file name like any other.
    let r = run_with(
        &data,
        &[
            os("retrieve_personal_data"),
            os("alice"),
            os("localhost"),
            os("./-"),
        ],
        &[],
        dir.path(),
    )
    .run;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(dir.path().join("-").is_file());
}

/// Issue 13, item 4: `backup` and `compact` keep the reserve `JIDSTORE_MIN_FREE` sets. Before
/// the fix their copy used the default whatever the setting: a reserve larger than the free
/// space was ignored, and `0` did not let them run on a nearly full disk.
#[test]
fn backup_and_compact_honour_min_free() {
    let dir = tempfile::tempdir().unwrap();
    let data = populated(dir.path(), 20);
    let dest = dir.path().join("backup");
    let huge = [("JIDSTORE_MIN_FREE", "1000000G")];
    for args in [vec![os("backup"), os(&dest)], vec![os("compact")]] {
        let r = run_with(&data, &args, &huge, dir.path()).run;
        assert_eq!(r.code, 1, "{args:?}: {}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("JIDSTORE_MIN_FREE"),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert!(!dest.exists());
    assert!(named(dir.path(), "jidstore-backup-tmp").is_empty());
    assert!(named(dir.path(), ".compact-").is_empty());
    assert_eq!(jidstore_settled(&data, &["verify"]).code, 0);

    // On a nearly full filesystem the default reserve refuses and `0` lets them run.
    let Some(fs) = crate::bounded::Tmpfs::mount_or_skip(16, "backup_and_compact_honour_min_free")
    else {
        return;
    };
    let small = fs.path().join("data");
    crate::bounded::copy_dir(&data, &small);
    fs.fill(3 << 20);
    let dest = fs.path().join("backup");
    for args in [vec![os("backup"), os(&dest)], vec![os("compact")]] {
        let r = run_with(&small, &args, &[], fs.path()).run;
        assert_eq!(r.code, 1, "default reserve, {args:?}: {}", r.stdout);
        assert!(r.stderr.contains("no space left"), "{args:?}: {}", r.stderr);
        let r = run_with(&small, &args, &[("JIDSTORE_MIN_FREE", "0")], fs.path()).run;
        assert_eq!(r.code, 0, "JIDSTORE_MIN_FREE=0, {args:?}: {}", r.stderr);
    }
    assert_eq!(jidstore_settled(&dest, &["verify"]).code, 0);
    assert_eq!(jidstore_settled(&small, &["verify"]).code, 0);
}

/// Issue 13, item 4: a data directory whose `db` was deleted is reported as missing that
/// file (one line naming it), not as damaged, and sled does not create an empty one.
#[test]
fn deleted_db_is_reported_missing() {
    let dir = tempfile::tempdir().unwrap();
    let data = populated(dir.path(), 3);
    std::fs::remove_file(data.join("db")).unwrap();
    let db = data.join("db");
    for args in [
        vec!["stats"],
        vec!["verify"],
        vec!["retrieve_personal_data", "alice", "localhost", "x.zip"],
        vec!["register", "--user", "carol", "localhost", "pw"],
    ] {
        let r = jidstore_settled(&data, &args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("{} (sled's data file) is missing", db.display())),
            "{args:?}: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("damaged"), "{}", r.stderr);
        assert!(!db.exists(), "{args:?} created a new db");
    }
}

/// A `Config::temporary` store's path is the system temp directory, not its own: a backup
/// into a directory there is not "inside the data directory" (it was refused before), and
/// exports there are written.
#[test]
fn temporary_store_backs_up_and_exports_into_the_temp_dir() {
    let store = jidstore::Config::temporary()
        .scram_iterations(16)
        .open()
        .unwrap();
    let alice = user(&store, "alice@localhost");
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("backup");
    jidstore::maintenance::copy_into(&store, &dest).unwrap();
    let copy = jidstore::Config::new(&dest)
        .must_exist(true)
        .open()
        .unwrap();
    assert!(copy.accounts().exists(&alice).unwrap());
    let zip = dir.path().join("alice.zip");
    jidstore::gdpr::retrieve_to_path(
        &store,
        &alice,
        &zip,
        &jidstore::gdpr::ExportOptions::default(),
    )
    .unwrap();
    assert!(zip.is_file());
}
