//! Bad input matrix: every command that takes a JID, a path or a data directory, run through
//! the real binary with malformed JIDs, non-UTF-8 arguments, unknown users, files used as
//! directories, symlinks, directories without permission, missing, foreign and locked data
//! directories. Each case must fail with the documented exit code (1 operational, 2 usage)
//! and one line on stderr (usage errors: clap's `error:` line and its short usage hint), no
//! panic, and write nothing: the scratch tree (every file, mode, size, CRC, symlink target;
//! data directories by their entries) is compared before and after each case, the store's
//! keyspace counts after each case, and every user's export after the whole matrix.

#![allow(
    clippy::too_many_lines,
    reason = "the case tables are long lists, read top to bottom"
)]

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use jidstore::__internal::sample;
use jidstore::{Config, Timestamp};

use crate::util::*;

/// What a case expects.
struct Case {
    /// Shown when it fails.
    name: String,
    /// Arguments after the program name (each case names its data directory itself).
    args: Vec<OsString>,
    /// Exit code.
    code: i32,
    /// Text stderr must contain (empty: anything).
    says: String,
    /// Run as `nobody` when the tests run as root (permission cases).
    nobody: bool,
}

fn os(s: impl AsRef<OsStr>) -> OsString {
    s.as_ref().to_os_string()
}

fn case(name: impl Into<String>, args: Vec<OsString>, code: i32, says: &str) -> Case {
    Case {
        name: name.into(),
        args,
        code,
        says: says.to_owned(),
        nobody: false,
    }
}

pub fn running_as_root() -> bool {
    let probe = tempfile::NamedTempFile::new().unwrap();
    std::fs::set_permissions(probe.path(), std::fs::Permissions::from_mode(0o400)).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(probe.path())
        .is_ok()
}

/// Runs the binary (as `nobody` through setpriv when asked and running as root), with
/// `RUST_BACKTRACE=1` so that a panic would show. Retries while the directory is still held
/// by a store this test process just closed (sled releases its lock a moment later), unless
/// the case is about the lock.
fn run(args: &[OsString], nobody: bool, retry_locked: bool) -> Run {
    let once = || {
        let mut cmd = if nobody && running_as_root() {
            let mut c = std::process::Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_jidstore"));
            c
        } else {
            std::process::Command::new(env!("CARGO_BIN_EXE_jidstore"))
        };
        let out = cmd
            .args(args)
            .env_remove("JIDSTORE_DATA_DIR")
            .env("RUST_BACKTRACE", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run jidstore (setpriv from util-linux drops root for permission cases)");
        Run::from(out)
    };
    let mut r = once();
    for _ in 0..100 {
        if !retry_locked || !r.stderr.contains("is locked by another process") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        r = once();
    }
    r
}

/// Everything under `root`: path, kind, mode, size, CRC-32 of small files, symlink target.
/// Inside a store (a directory with sled's `conf`), only the entry names: sled rewrites its
/// own files on open, and the logical content is compared through the binary instead.
fn tree(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, p: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            return;
        };
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(p).unwrap();
            out.insert(rel, format!("link {mode:o} -> {}", target.display()));
        } else if meta.is_dir() {
            out.insert(rel, format!("dir {mode:o}"));
            let store = p.join("conf").exists();
            // sled writes snapshot files of its own on open.
            let sled_own = |path: &Path| {
                path.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("snap."))
            };
            let Ok(entries) = std::fs::read_dir(p) else {
                return;
            };
            for e in entries {
                let path = e.unwrap().path();
                if store && sled_own(&path) {
                    continue;
                }
                if store {
                    let rel = path.strip_prefix(root).unwrap().to_path_buf();
                    out.insert(rel, "store entry".into());
                } else {
                    walk(root, &path, out);
                }
            }
        } else {
            let crc = std::fs::read(p).map_or(0, |b| crc32fast::hash(&b));
            out.insert(rel, format!("file {mode:o} {} {crc:08x}", meta.len()));
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The store's logical content in short: entries and bytes per keyspace (`stats --json`).
fn counts(data: &Path, nobody: bool) -> String {
    let r = run(
        &[os("--data-dir"), os(data), os("--json"), os("stats")],
        nobody,
        true,
    );
    assert_eq!(r.code, 0, "stats: {}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    doc["keyspaces"].to_string()
}

/// Every CSV of every user's export (the manifest's time left out).
fn exports(data: &Path, users: &[(&str, &str)]) -> BTreeMap<String, String> {
    let out = tempfile::tempdir().unwrap();
    let mut all = BTreeMap::new();
    for (user, domain) in users {
        let zip = out.path().join(format!("{user}.zip"));
        let r = run(
            &[
                os("--data-dir"),
                os(data),
                os("retrieve_personal_data"),
                os(user),
                os(domain),
                os(&zip),
            ],
            false,
            true,
        );
        assert_eq!(r.code, 0, "export {user}: {}", r.stderr);
        for (name, text) in unzip(&zip) {
            if name != "manifest.json" && name != "index.html" {
                all.insert(format!("{user}/{name}"), text);
            }
        }
    }
    all
}

/// The fixture: the sample deployment (`jidstore::__internal::sample`: alice with data in
/// every class, bob and kate), and a scratch tree of traps.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        // `nobody` must be able to reach the scratch tree.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = root.join("data");
        let store = Config::new(&data).scram_iterations(16).open().unwrap();
        // The demo's deployment: alice and bob (and kate) with data in every class.
        sample::populate(&store, Timestamp::from_secs(1_700_000_000)).unwrap();
        store.flush().unwrap();
        drop(store);
        let f = Fixture {
            _dir: dir,
            root,
            data,
        };
        std::fs::write(f.p("file"), b"a plain file\n").unwrap();
        std::fs::write(f.p("victim"), b"must never be overwritten\n").unwrap();
        std::os::unix::fs::symlink(f.p("victim"), f.p("link.zip")).unwrap();
        std::os::unix::fs::symlink(f.p("victim"), f.p("link.xml")).unwrap();
        std::os::unix::fs::symlink(f.p("nowhere"), f.p("dangling")).unwrap();
        std::os::unix::fs::symlink(&f.data, f.p("datalink")).unwrap();
        std::fs::create_dir(f.p("out")).unwrap();
        std::fs::write(f.p("out/alice.zip"), b"an earlier export\n").unwrap();
        std::fs::write(f.p("out/alice.xml"), b"an earlier export\n").unwrap();
        std::fs::create_dir(f.p("empty")).unwrap();
        std::fs::create_dir(f.p("foreign")).unwrap();
        std::fs::write(f.p("foreign/notes.txt"), b"someone else's\n").unwrap();
        std::fs::write(f.p("junk.xml"), [0xff, 0xfe, 0x00, 0x01, b'<']).unwrap();
        std::fs::write(f.p("text.xml"), b"not xml at all\n").unwrap();
        std::fs::write(f.p("empty.xml"), b"").unwrap();
        std::fs::write(f.p("unclosed.xml"), b"<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'><user name='carol' password='x'>").unwrap();
        f
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// `--data-dir <dir>` then `args`.
    #[expect(clippy::unused_self, reason = "reads like f.cmd(..)")]
    fn with(&self, dir: impl AsRef<OsStr>, args: &[&dyn AsRef<OsStr>]) -> Vec<OsString> {
        let mut v = vec![os("--data-dir"), os(dir)];
        v.extend(args.iter().map(os));
        v
    }

    /// `--data-dir <data>` then `args`.
    fn cmd(&self, args: &[&dyn AsRef<OsStr>]) -> Vec<OsString> {
        self.with(&self.data, args)
    }
}

/// Usernames no command may accept, with what the error says.
fn bad_usernames() -> Vec<(String, OsString, &'static str)> {
    let mut v: Vec<(String, OsString, &'static str)> = vec![
        ("empty".into(), os(""), "empty username"),
        (
            "1024 bytes".into(),
            os("a".repeat(1024)),
            "longer than 1023",
        ),
        (
            "100k bytes".into(),
            os("b".repeat(100_000)),
            "bytes)': localpart longer",
        ),
    ];
    for c in [
        '@', '/', '"', '&', '\'', ':', '<', '>', ' ', '\t', '\n', '\r', '\u{1}', '\u{1b}', '\u{7f}',
    ] {
        v.push((format!("with {c:?}"), os(format!("a{c}b")), "invalid JID"));
    }
    v.push(("non-UTF-8".into(), OsString::from_vec(vec![b'a', 0xff]), ""));
    v
}

/// Domains no command may accept.
fn bad_domains() -> Vec<(String, OsString, &'static str)> {
    let label = "a".repeat(64);
    let long = vec!["a".repeat(60); 18].join(".");
    let mut v: Vec<(String, OsString, &'static str)> = vec![
        ("empty".into(), os(""), "invalid JID"),
        (
            "label of 64".into(),
            os(format!("{label}.org")),
            "invalid JID",
        ),
        ("domain over 1023".into(), os(long), "invalid JID"),
        ("empty label".into(), os("a..b"), "invalid JID"),
        ("leading dot".into(), os(".a"), "invalid JID"),
        ("only a dot".into(), os("."), "invalid JID"),
        ("open IPv6 literal".into(), os("[::1"), "invalid JID"),
        ("bad IPv6 literal".into(), os("[nope]"), "invalid JID"),
    ];
    for c in [
        '@', '/', '"', '&', '\'', ':', '<', '>', ' ', '\t', '\n', '\u{1}', '!', '*', '=', '%', '{',
    ] {
        v.push((format!("with {c:?}"), os(format!("a{c}b")), "invalid JID"));
    }
    v.push(("non-UTF-8".into(), OsString::from_vec(vec![b'a', 0xff]), ""));
    v
}

/// Exit 2 for arguments clap takes as `String` when they are not UTF-8, else 1.
fn code_for(arg: &OsStr) -> i32 {
    if arg.to_str().is_some() { 1 } else { 2 }
}

fn jid_cases(f: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();
    let out = f.p("out");
    for (what, u, says) in bad_usernames() {
        let code = code_for(&u);
        let says = if code == 2 { "" } else { says };
        let d = &"localhost";
        cases.push(case(
            format!("register --user {what}"),
            f.cmd(&[&"register", &"--user", &u, d, &"pw"]),
            code,
            says,
        ));
        cases.push(case(
            format!("register --user {what} (no data dir yet)"),
            f.with(f.p("newdata"), &[&"register", &"--user", &u, d, &"pw"]),
            code,
            says,
        ));
        for cmd in ["retrieve_personal_data", "export-xep0227"] {
            cases.push(case(
                format!("{cmd} username {what}"),
                f.cmd(&[&cmd, &u, d, &out]),
                code,
                says,
            ));
        }
        cases.push(case(
            format!("unregister username {what}"),
            f.cmd(&[&"unregister", &u, d]),
            code,
            says,
        ));
        cases.push(case(
            format!("mam query username {what}"),
            f.cmd(&[&"mam", &"query", &u, d]),
            code,
            says,
        ));
    }
    for (what, d, says) in bad_domains() {
        let code = code_for(&d);
        let says = if code == 2 { "" } else { says };
        let u = &"alice";
        cases.push(case(
            format!("register domain {what}"),
            f.cmd(&[&"register", &"--user", u, &d, &"pw"]),
            code,
            says,
        ));
        cases.push(case(
            format!("register random, domain {what} (no data dir yet)"),
            f.with(f.p("newdata"), &[&"register", &d, &"pw"]),
            code,
            says,
        ));
        for cmd in ["retrieve_personal_data", "export-xep0227"] {
            cases.push(case(
                format!("{cmd} domain {what}"),
                f.cmd(&[&cmd, u, &d, &out]),
                code,
                says,
            ));
        }
        cases.push(case(
            format!("unregister domain {what}"),
            f.cmd(&[&"unregister", u, &d]),
            code,
            says,
        ));
        cases.push(case(
            format!("mam query domain {what}"),
            f.cmd(&[&"mam", &"query", u, &d]),
            code,
            says,
        ));
        if what == "with '@'" {
            continue; // `a@b` is a fine room JID
        }
        cases.push(case(
            format!("mam query --room domain {what}"),
            f.cmd(&[&"mam", &"query", &"--room", &d]),
            code,
            says,
        ));
        let mut room = os("room@");
        room.push(&d);
        cases.push(case(
            format!("mam query --room room@{what}"),
            f.cmd(&[&"mam", &"query", &"--room", &room]),
            code,
            says,
        ));
        let mut with = os("bob@");
        with.push(&d);
        if what == "with '/'" {
            continue; // `bob@a/b` is a fine full JID
        }
        cases.push(case(
            format!("mam query --with bob@{what}"),
            f.cmd(&[&"mam", &"query", u, &"localhost", &"--with", &with]),
            code,
            says,
        ));
    }
    for room in ["", "@localhost", "room@", "a@b@c", "room@localhost/nick"] {
        cases.push(case(
            format!("mam query --room {room:?}"),
            f.cmd(&[&"mam", &"query", &"--room", &room]),
            1,
            "invalid JID",
        ));
    }
    for with in ["", "a b@localhost", "@localhost", "bob@localhost/"] {
        cases.push(case(
            format!("mam query --with {with:?}"),
            f.cmd(&[&"mam", &"query", &"alice", &"localhost", &"--with", &with]),
            1,
            "invalid JID",
        ));
    }
    // Unknown users.
    let nobody_zip = f.p("nobody.zip");
    for (cmd, args) in [
        (
            "retrieve_personal_data",
            f.cmd(&[
                &"retrieve_personal_data",
                &"carol",
                &"localhost",
                &nobody_zip,
            ]),
        ),
        (
            "export-xep0227",
            f.cmd(&[&"export-xep0227", &"carol", &"localhost", &nobody_zip]),
        ),
        (
            "unregister",
            f.cmd(&[&"unregister", &"carol", &"localhost"]),
        ),
        (
            "mam query",
            f.cmd(&[&"mam", &"query", &"carol", &"localhost"]),
        ),
        (
            "unregister (other domain)",
            f.cmd(&[&"unregister", &"alice", &"example.org"]),
        ),
    ] {
        cases.push(case(
            format!("{cmd} unknown user"),
            args,
            1,
            "carol@localhost",
        ));
    }
    if let Some(c) = cases.last_mut() {
        c.says = "alice@example.org".into();
    }
    cases.push(case(
        "register existing user",
        f.cmd(&[&"register", &"--user", &"ALICE", &"localhost", &"pw"]),
        1,
        "alice@localhost already exists",
    ));
    cases
}

fn path_cases(f: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();
    let non_utf8 = {
        let mut p = f.p("missing").into_os_string();
        p.push(OsStr::from_bytes(b"\xff/x"));
        p
    };
    for (cmd, ext) in [("retrieve_personal_data", "zip"), ("export-xep0227", "xml")] {
        let link = f.p(&format!("link.{ext}"));
        let earlier = f.p(&format!("out/alice.{ext}"));
        for (what, path, says) in [
            ("empty path", os(""), "empty".to_owned()),
            (
                "a file used as a directory",
                os(f.p("file/alice.zip")),
                f.p("file").display().to_string(),
            ),
            (
                "missing parent",
                os(f.p("missing/alice.zip")),
                f.p("missing").display().to_string(),
            ),
            (
                "existing file",
                os(f.p("victim")),
                "already exists".to_owned(),
            ),
            (
                "existing symlink to a file",
                os(&link),
                "already exists".to_owned(),
            ),
            (
                "dangling symlink",
                os(f.p("dangling")),
                "already exists".to_owned(),
            ),
            (
                "directory holding <username> file",
                os(f.p("out")),
                "already exists".to_owned(),
            ),
            (
                "existing file again",
                os(&earlier),
                "already exists".to_owned(),
            ),
            (
                "non-UTF-8 missing parent",
                non_utf8.clone(),
                "missing".to_owned(),
            ),
            (
                "through a symlink into a file",
                os(f.p("link.zip/alice.zip")),
                "not a directory".to_owned(),
            ),
        ] {
            cases.push(case(
                format!("{cmd} to {what}"),
                f.cmd(&[&cmd, &"alice", &"localhost", &path]),
                1,
                &says,
            ));
        }
    }
    for (what, dest, code, says) in [
        ("empty", os(""), 2, String::new()),
        (
            "existing directory",
            os(f.p("out")),
            1,
            "already exists".to_owned(),
        ),
        (
            "existing file",
            os(f.p("file")),
            1,
            "already exists".to_owned(),
        ),
        (
            "existing symlink",
            os(f.p("link.zip")),
            1,
            "already exists".to_owned(),
        ),
        (
            "dangling symlink",
            os(f.p("dangling")),
            1,
            "already exists".to_owned(),
        ),
        (
            "missing parent",
            os(f.p("missing/copy")),
            1,
            f.p("missing").display().to_string(),
        ),
        (
            "a file used as a directory",
            os(f.p("file/copy")),
            1,
            "not a directory".to_owned(),
        ),
        (
            "inside the data dir",
            os(f.data.join("copy")),
            1,
            "inside the data directory".to_owned(),
        ),
        (
            "inside the data dir through ..",
            os(f.data.join("blobs/../copy")),
            1,
            "inside the data directory".to_owned(),
        ),
        (
            "inside the data dir through a symlink",
            os(f.p("datalink/copy")),
            1,
            "inside the data directory".to_owned(),
        ),
        (
            "non-UTF-8 missing parent",
            non_utf8.clone(),
            1,
            "missing".to_owned(),
        ),
    ] {
        cases.push(case(
            format!("backup to {what}"),
            f.cmd(&[&"backup", &dest]),
            code,
            &says,
        ));
    }
    for (what, file, says) in [
        ("missing file", os(f.p("missing.xml")), "No such file"),
        ("a directory", os(f.p("out")), "Is a directory"),
        ("empty file", os(f.p("empty.xml")), "empty.xml"),
        ("text", os(f.p("text.xml")), "text.xml"),
        ("binary junk", os(f.p("junk.xml")), "junk.xml"),
        ("unclosed elements", os(f.p("unclosed.xml")), "unclosed.xml"),
        ("dangling symlink", os(f.p("dangling")), "No such file"),
        ("symlink to a text file", os(f.p("link.xml")), "link.xml"),
        (
            "a file used as a directory",
            os(f.p("file/x.xml")),
            "Not a directory",
        ),
        ("non-UTF-8 missing", non_utf8.clone(), "missing"),
        ("empty path", os(""), "error: a value is required"),
    ] {
        for dry in [false, true] {
            let mut args = f.cmd(&[&"import", &file]);
            if dry {
                args.push(os("--dry-run"));
            }
            let code = if file.is_empty() { 2 } else { 1 };
            cases.push(case(
                format!("import {what} (dry run {dry})"),
                args,
                code,
                says,
            ));
        }
    }
    cases
}

/// Every command that opens a data directory, against directories that are not usable.
fn data_dir_cases(f: &Fixture) -> Vec<Case> {
    let mut cases = Vec::new();
    let commands = |zip: PathBuf| -> Vec<(&'static str, Vec<OsString>)> {
        vec![
            ("stats", vec![os("stats")]),
            ("verify", vec![os("verify")]),
            ("compact", vec![os("compact")]),
            ("backup", vec![os("backup"), os(zip.with_extension("copy"))]),
            (
                "retrieve",
                vec![
                    os("retrieve_personal_data"),
                    os("alice"),
                    os("localhost"),
                    os(&zip),
                ],
            ),
            (
                "export-xep0227",
                vec![os("export-xep0227"), os("alice"), os("localhost"), os(&zip)],
            ),
            (
                "unregister",
                vec![os("unregister"), os("alice"), os("localhost")],
            ),
            (
                "unregister --purge",
                vec![
                    os("unregister"),
                    os("--purge"),
                    os("alice"),
                    os("localhost"),
                ],
            ),
            (
                "mam query",
                vec![os("mam"), os("query"), os("alice"), os("localhost")],
            ),
            ("import", vec![os("import"), os(f.p("text.xml"))]),
        ]
    };
    let non_utf8 = {
        let mut p = f.root.clone().into_os_string();
        p.push(OsStr::from_bytes(b"/d\xff"));
        p
    };
    for (what, dir, says) in [
        ("missing", os(f.p("missing")), "No such file"),
        ("a file", os(f.p("file")), "not a directory"),
        ("empty", os(f.p("empty")), "no store has been created here"),
        ("foreign files", os(f.p("foreign")), "not sled's"),
        ("dangling symlink", os(f.p("dangling")), "No such file"),
        ("under a file", os(f.p("file/data")), "Not a directory"),
        ("non-UTF-8 missing", non_utf8, "No such file"),
    ] {
        for (cmd, args) in commands(f.p("dd.zip")) {
            let mut all = vec![os("--data-dir"), dir.clone()];
            all.extend(args);
            // `import` creates a store where there is none (as `register` does), but only
            // for input that passes its checks: this file is not XML, so nothing is created.
            let creates = matches!(
                what,
                "missing" | "empty" | "dangling symlink" | "non-UTF-8 missing"
            );
            let says = if cmd == "import" && creates {
                "text.xml:1: not well-formed XML"
            } else {
                says
            };
            cases.push(case(
                format!("{cmd} with a data dir that is {what}"),
                all,
                1,
                says,
            ));
        }
    }
    for (what, dir, says) in [
        ("a file", f.p("file"), "not a directory"),
        ("foreign files", f.p("foreign"), "not sled's"),
        ("under a file", f.p("file/data"), "file"),
    ] {
        cases.push(case(
            format!("register with a data dir that is {what}"),
            f.with(
                &dir,
                &[&"register", &"--user", &"carol", &"localhost", &"pw"],
            ),
            1,
            says,
        ));
    }
    cases
}

/// The same commands while another process holds the store.
fn locked_cases(f: &Fixture) -> Vec<Case> {
    let zip = f.p("locked.zip");
    let copy = f.p("locked-copy");
    let mut cases = Vec::new();
    for args in [
        f.cmd(&[&"stats"]),
        f.cmd(&[&"verify"]),
        f.cmd(&[&"compact"]),
        f.cmd(&[&"backup", &copy]),
        f.cmd(&[&"retrieve_personal_data", &"alice", &"localhost", &zip]),
        f.cmd(&[&"export-xep0227", &"alice", &"localhost", &zip]),
        f.cmd(&[&"unregister", &"alice", &"localhost"]),
        f.cmd(&[&"unregister", &"--purge", &"alice", &"localhost"]),
        f.cmd(&[&"mam", &"query", &"alice", &"localhost"]),
        f.cmd(&[&"import", &f.p("text.xml")]),
        f.cmd(&[&"register", &"--user", &"carol", &"localhost", &"pw"]),
        f.cmd(&[&"register", &"localhost", &"pw"]),
    ] {
        let name = format!(
            "{} while locked",
            args[2..]
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        cases.push(case(name, args, 1, "is locked by another process"));
    }
    cases
}

/// Directories without permission: run as `nobody` when root (root ignores modes), else as
/// the owner with the modes removed.
fn permission_cases(f: &Fixture, nobody_data: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let denied = "Permission denied";
    let locked = f.p("locked");
    for (cmd, args) in [
        (
            "retrieve into an unwritable directory",
            f.with(
                nobody_data,
                &[&"retrieve_personal_data", &"alice", &"localhost", &locked],
            ),
        ),
        (
            "export-xep0227 into an unwritable directory",
            f.with(
                nobody_data,
                &[&"export-xep0227", &"alice", &"localhost", &locked],
            ),
        ),
        (
            "backup into an unwritable directory",
            f.with(nobody_data, &[&"backup", &locked.join("copy")]),
        ),
        (
            "import an unreadable file",
            f.with(nobody_data, &[&"import", &f.p("secret.xml")]),
        ),
        (
            "compact a store in an unwritable directory",
            f.with(locked.join("store"), &[&"compact"]),
        ),
        (
            "register in an unwritable directory",
            f.with(
                locked.join("new"),
                &[&"register", &"--user", &"carol", &"localhost", &"pw"],
            ),
        ),
    ] {
        let mut c = case(cmd, args, 1, denied);
        c.nobody = true;
        cases.push(c);
    }
    let closed = f.p("closed");
    for args in [
        vec![os("stats")],
        vec![os("verify")],
        vec![os("compact")],
        vec![os("backup"), os(f.p("closed-copy"))],
        vec![
            os("retrieve_personal_data"),
            os("alice"),
            os("localhost"),
            os(f.p("closed.zip")),
        ],
        vec![
            os("export-xep0227"),
            os("alice"),
            os("localhost"),
            os(f.p("closed.xml")),
        ],
        vec![os("unregister"), os("alice"), os("localhost")],
        vec![os("mam"), os("query"), os("alice"), os("localhost")],
        vec![os("import"), os(f.p("text.xml"))],
        vec![
            os("register"),
            os("--user"),
            os("carol"),
            os("localhost"),
            os("pw"),
        ],
    ] {
        let name = format!(
            "{} on a data dir without permission",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let mut all = vec![os("--data-dir"), os(&closed)];
        all.extend(args);
        // As root, `closed` is root's and the case runs as nobody: refused as another
        // user's data directory before any permission is tried (issue 13, item 5).
        let expected = if running_as_root() {
            "root (uid 0)"
        } else {
            denied
        };
        let mut c = case(name, all, 1, expected);
        c.nobody = true;
        cases.push(c);
    }
    cases
}

/// Runs one case and checks the contract; returns a failure description, if any.
fn check(f: &Fixture, c: &Case, retry_locked: bool) -> Option<String> {
    let before = tree(&f.root);
    let r = run(&c.args, c.nobody, retry_locked);
    let after = tree(&f.root);
    let mut wrong = Vec::new();
    if r.code != c.code {
        wrong.push(format!("exit {} (want {})", r.code, c.code));
    }
    if r.stderr.contains("panicked") || r.stderr.contains("backtrace") {
        wrong.push("panicked".into());
    }
    if r.code == 1 && (r.stderr.lines().count() != 1 || !r.stderr.starts_with("jidstore: ")) {
        wrong.push("stderr is not one `jidstore:` line".into());
    }
    if r.code == 2 && (!r.stderr.starts_with("error: ") || r.stderr.lines().count() > 6) {
        wrong.push("stderr is not clap's short usage error".into());
    }
    if !c.says.is_empty() && !r.stderr.contains(&c.says) {
        wrong.push(format!("stderr does not say {:?}", c.says));
    }
    if !r.stdout.is_empty() {
        wrong.push("stdout not empty".into());
    }
    if before != after {
        let added: Vec<_> = after
            .iter()
            .filter(|e| before.get(e.0) != Some(e.1))
            .collect();
        let gone: Vec<_> = before
            .iter()
            .filter(|e| after.get(e.0) != Some(e.1))
            .collect();
        wrong.push(format!("files changed: now {added:?}, was {gone:?}"));
    }
    if wrong.is_empty() {
        None
    } else {
        Some(format!(
            "{}: {}\n    stderr: {:?}",
            c.name,
            wrong.join("; "),
            r.stderr
        ))
    }
}

#[test]
fn bad_input_matrix() {
    let f = Fixture::new();
    let users = [("alice", "localhost"), ("bob", "localhost")];
    let before_exports = exports(&f.data, &users);
    let before = counts(&f.data, false);
    let root = running_as_root();

    // A copy `nobody` owns (as root), a store inside an unwritable directory, an unreadable
    // import file and a data directory `nobody` (or, not as root, anyone) cannot open.
    let nobody_data = f.p("nobody-data");
    let r = run(&f.cmd(&[&"backup", &nobody_data]), false, true);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let locked = f.p("locked");
    std::fs::create_dir(&locked).unwrap();
    let r = run(&f.cmd(&[&"backup", &locked.join("store")]), false, true);
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::write(f.p("secret.xml"), b"<server-data xmlns='urn:xmpp:pie:0'/>").unwrap();
    let r = run(&f.cmd(&[&"backup", &f.p("closed")]), false, true);
    assert_eq!(r.code, 0, "{}", r.stderr);
    if root {
        chown_tree(&nobody_data, 65534);
        chown_tree(&locked.join("store"), 65534);
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(f.p("secret.xml"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        // `closed` stays root's, 0700: exactly how jidstore creates a store.
    } else {
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        std::fs::set_permissions(f.p("secret.xml"), std::fs::Permissions::from_mode(0o000))
            .unwrap();
        std::fs::set_permissions(f.p("closed"), std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let nobody_before = counts(&nobody_data, true);

    let mut failures = Vec::new();
    let mut tried: BTreeMap<String, usize> = BTreeMap::new();
    let mut tally = |c: &Case| {
        let cmd = c
            .args
            .iter()
            .skip(2)
            .find(|a| !a.to_string_lossy().starts_with("--"))
            .map_or("?".into(), |a| a.to_string_lossy().into_owned());
        *tried.entry(cmd).or_default() += 1;
    };
    let groups = [
        ("JIDs", jid_cases(&f)),
        ("paths", path_cases(&f)),
        ("data dirs", data_dir_cases(&f)),
        ("permissions", permission_cases(&f, &nobody_data)),
    ];
    for (_, cases) in &groups {
        for c in cases {
            tally(c);
            failures.extend(check(&f, c, true));
        }
        assert_eq!(counts(&f.data, false), before, "store changed");
    }
    {
        let held = Config::new(&f.data)
            .lock_timeout(std::time::Duration::from_secs(5))
            .open()
            .unwrap();
        for c in locked_cases(&f) {
            tally(&c);
            failures.extend(check(&f, &c, false));
        }
        drop(held);
    }
    assert_eq!(counts(&f.data, false), before, "store changed");
    assert_eq!(
        counts(&nobody_data, true),
        nobody_before,
        "nobody's store changed"
    );
    assert_eq!(
        exports(&f.data, &users),
        before_exports,
        "an export changed"
    );
    assert_eq!(
        std::fs::read(f.p("victim")).unwrap(),
        b"must never be overwritten\n"
    );
    let total: usize = tried.values().sum();
    println!("bad inputs tried: {total} ({tried:?})");
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    if !root {
        // Give the tempdir cleanup its permissions back.
        std::fs::set_permissions(f.p("closed"), std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

fn chown_tree(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(uid)).unwrap();
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), uid);
        }
    }
}

/// Decided: symlinks in the directory part of an output path are followed (as by every
/// Unix tool); an output file that is a symlink is never followed. Without `--force` it is
/// refused (in the matrix); with `--force` the link itself is replaced by the new file and
/// its target is untouched.
#[test]
fn output_symlinks_are_replaced_never_followed() {
    let f = Fixture::new();
    std::fs::create_dir(f.p("real")).unwrap();
    std::os::unix::fs::symlink(f.p("real"), f.p("dirlink")).unwrap();
    let r = run(
        &f.cmd(&[
            &"retrieve_personal_data",
            &"alice",
            &"localhost",
            &f.p("dirlink"),
        ]),
        false,
        true,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(f.p("real/alice.zip").is_file());
    for (cmd, link) in [
        ("retrieve_personal_data", "link.zip"),
        ("export-xep0227", "link.xml"),
    ] {
        let r = run(
            &f.cmd(&[&cmd, &"alice", &"localhost", &f.p(link), &"--force"]),
            false,
            true,
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let meta = std::fs::symlink_metadata(f.p(link)).unwrap();
        assert!(meta.is_file(), "{link} is still a symlink");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::read(f.p("victim")).unwrap(),
            b"must never be overwritten\n"
        );
    }
}

/// `compact` (and so `unregister --purge`) through a symlinked data directory compacts the
/// directory the link points to and keeps the link: before the fix it renamed the link and
/// left the real directory, erased bytes and all, in place.
#[test]
fn purge_through_a_symlinked_data_dir_erases_the_bytes() {
    let f = Fixture::new();
    let marker = "zq9purgedperson";
    let link = f.p("datalink");
    let r = run(
        &f.with(
            &link,
            &[&"register", &"--user", &marker, &"localhost", &"pw"],
        ),
        false,
        true,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let found = |dir: &Path| {
        fn walk(p: &Path, needle: &[u8]) -> bool {
            if p.is_dir() {
                std::fs::read_dir(p)
                    .unwrap()
                    .any(|e| walk(&e.unwrap().path(), needle))
            } else {
                let b = std::fs::read(p).unwrap();
                b.windows(needle.len()).any(|w| w == needle)
            }
        }
        walk(dir, marker.as_bytes())
    };
    assert!(found(&f.data), "the marker is not on disk before erasure");
    let r = run(
        &f.with(&link, &[&"unregister", &"--purge", &marker, &"localhost"]),
        false,
        true,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(!found(&f.data), "erased bytes left in the data directory");
    let leftovers: Vec<_> = std::fs::read_dir(&f.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".old-") || n.contains(".compact-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(counts(&link, false), counts(&f.data, false));
}
