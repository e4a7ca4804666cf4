//! `jidstore forensic-export --from <copy>`: the source is never written, good copies export
//! what a normal retrieve exports, and torn, truncated or bit-flipped copies give a clean
//! export or one line (exit 1), never a panic and never a leftover file.
//!
//! `JIDSTORE_FORENSIC_COPIES` (default 8) sets how many copies are taken mid-write.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jidstore::ext::mam::{Direction, MucMessage, PmMessage};
use jidstore::{Config, Store, Timestamp};

use crate::util::*;

/// Every file under `dir` with its bytes (directories listed with no bytes).
fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if p.is_dir() {
                out.insert(rel, None);
                todo.push(p);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// Copies a directory file by file, in 64 KiB chunks (so a concurrent writer tears it).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            let mut src = std::fs::File::open(e.path()).unwrap();
            let mut dst = std::fs::File::create(&target).unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = src.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                dst.write_all(&buf[..n]).unwrap();
                std::thread::yield_now();
            }
        }
    }
}

fn populate(store: &Store, messages: usize) {
    let alice = user(store, "alice@localhost");
    let bob = user(store, "bob@localhost");
    store
        .vcard()
        .set(&alice, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
        .unwrap();
    store
        .private()
        .set(
            &alice,
            "storage:bookmarks",
            "<storage xmlns='storage:bookmarks'/>",
        )
        .unwrap();
    for i in 0..messages {
        let m = PmMessage {
            id: None,
            timestamp: Timestamp::from_secs(1_700_000_000 + i64::try_from(i).unwrap()),
            from: full("alice@localhost/r"),
            to: full("bob@localhost/r"),
            direction: Direction::Outgoing,
            origin_id: None,
            stanza: format!(
                "<message><body>message number {i} of a forensic test</body></message>"
            ),
        };
        store.mam().append(&alice, &m).unwrap();
        if i % 10 == 0 {
            store.mam().append(&bob, &m).unwrap();
        }
    }
    store
        .muc()
        .append(
            &bare("room@muc.localhost"),
            &MucMessage::new(
                Timestamp::from_secs(1_700_000_000),
                alice.clone(),
                "alice",
                "<message type='groupchat'><body>hi</body></message>",
            ),
        )
        .unwrap();
    store.flush().unwrap();
}

/// alice's ordinary export (`retrieve_personal_data`) of the store at `data`, in
/// `dir/normal.zip`.
fn normal_export(data: &Path, dir: &Path) -> PathBuf {
    let normal = dir.join("normal.zip");
    let r = retrieve_to(data, "alice", &normal);
    assert_eq!(r.code, 0, "{}", r.stderr);
    normal
}

/// A flushed, closed store with `messages` archived for alice, in `<tmp>/data`.
fn idle_store(messages: usize) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Config::new(&data).scram_iterations(16).open().unwrap();
    populate(&store, messages);
    drop(store);
    // sled's threads release the directory a moment after the last handle.
    drop(
        Config::new(&data)
            .lock_timeout(Duration::from_secs(5))
            .open()
            .unwrap(),
    );
    (dir, data)
}

/// Runs `forensic-export --from <from> alice localhost <out>` with a `--data-dir` that does
/// not exist (it is not used, and must not be created).
fn forensic(from: &Path, out: &Path, extra: &[&str]) -> Run {
    let unused = out.with_extension("unused-data-dir");
    let mut args = vec![
        "forensic-export",
        "--from",
        from.to_str().unwrap(),
        "alice",
        "localhost",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = jidstore(&unused, &args);
    assert!(!unused.exists(), "--data-dir was created");
    run
}

/// The CSV files of an export, keyed by name (the manifest left out).
fn csvs(zip: &Path) -> BTreeMap<String, String> {
    let mut files = unzip(zip);
    files.remove("manifest.json");
    // The readable page holds the export time, like the manifest.
    files.remove("index.html");
    files
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Exported(u64),
    Unusable,
    NoData,
}

/// Checks one forensic-export run on `source` writing `out`: a self-consistent export (CRC
/// and rows of every CSV as the manifest says, the source's files and hashes as recorded),
/// or one line on stderr with exit 1 and no file; never a panic, never a leftover.
fn check(run: &Run, source: &Path, out: &Path) -> Outcome {
    // Rust's panic output ("thread '...' panicked at ...") must never show; the one-line
    // error README documents for a torn copy may say that sled panicked while opening it
    // (caught: "the copy at ... is unusable: sled panicked while opening it (...)").
    assert!(
        !run.stderr.contains("panicked at") && !run.stderr.contains("RUST_BACKTRACE"),
        "panic text: {}",
        run.stderr
    );
    let dir = out.parent().unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    match run.code {
        0 => {
            let files = unzip(out);
            let m: serde_json::Value = serde_json::from_str(&files["manifest.json"]).unwrap();
            assert_eq!(m["forensic"], true);
            assert_eq!(m["source"]["unchanged"], true);
            let mut rows = 0;
            for f in m["files"].as_array().unwrap() {
                let name = f["name"].as_str().unwrap();
                let text = &files[name];
                assert_eq!(f["crc32"], u64::from(crc32fast::hash(text.as_bytes())));
                let (_, r) = csv_rows(text);
                assert_eq!(f["rows"], r.len() as u64, "{name}");
                rows += r.len() as u64;
            }
            let recorded = m["source"]["files"].as_array().unwrap();
            let on_disk: Vec<_> = tree(source)
                .into_iter()
                .filter_map(|(p, b)| b.map(|b| (p, b)))
                .collect();
            assert_eq!(recorded.len(), on_disk.len());
            for (f, (p, bytes)) in recorded.iter().zip(&on_disk) {
                assert_eq!(f["path"], p.to_str().unwrap());
                assert_eq!(f["bytes"], bytes.len() as u64);
                assert_eq!(f["sha256"].as_str().unwrap().len(), 64);
            }
            Outcome::Exported(rows)
        }
        1 => {
            assert!(!out.exists(), "an export was left after a failure");
            assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
            let copy = format!("jidstore: the copy at {} is unusable: ", source.display());
            if run.stderr.starts_with(&copy) {
                Outcome::Unusable
            } else {
                assert_eq!(
                    run.stderr.trim(),
                    "jidstore: no personal data held for alice@localhost"
                );
                Outcome::NoData
            }
        }
        c => panic!("exit {c}: {}", run.stderr),
    }
}

#[test]
fn idle_copy_exports_what_retrieve_exports_and_is_not_written() {
    let (dir, data) = idle_store(300);
    let copy = dir.path().join("copy");
    let st = Command::new("cp").arg("-r").arg(&data).arg(&copy).status();
    assert!(st.unwrap().success());
    let before = tree(&copy);
    let out = dir.path().join("forensic.zip");
    let run = forensic(&copy, &out, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("unchanged"), "{}", run.stdout);
    assert_eq!(check(&run, &copy, &out), Outcome::Exported(300 + 4));
    assert_eq!(tree(&copy), before, "the source changed");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&out).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    // The manifest's hashes are the source's.
    let m: serde_json::Value = serde_json::from_str(&unzip(&out)["manifest.json"]).unwrap();
    assert_eq!(
        m["source"]["path"],
        std::fs::canonicalize(&copy).unwrap().to_str().unwrap()
    );
    assert_eq!(m["subject"], "alice@localhost");
    assert_eq!(m["format"], "jidstore-gdpr-export");
    let db = m["source"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "db")
        .unwrap();
    let db_bytes = std::fs::read(copy.join("db")).unwrap();
    assert_eq!(db["bytes"], db_bytes.len() as u64);
    let normal = normal_export(&data, dir.path());
    assert_eq!(csvs(&out), csvs(&normal));
    assert!(!unzip(&normal)["manifest.json"].contains("forensic"));
}

#[test]
fn refusals_are_one_line_and_leave_nothing() {
    let (dir, data) = idle_store(3);
    let out = dir.path().join("a.zip");
    // Existing output: refused without --force, replaced with it.
    std::fs::write(&out, b"keep me").unwrap();
    let r = forensic(&data, &out, &[]);
    assert_eq!((r.code, r.stderr.lines().count()), (1, 1));
    assert!(
        r.stderr.contains("already exists (use --force"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let r = forensic(&data, &out, &["--force", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(doc["subject"], "alice@localhost");
    assert_eq!(doc["unchanged"], true);
    assert_eq!(doc["total_rows"], 3 + 4);
    assert_eq!(
        doc["source_files"],
        unzip(&out)["manifest.json"].matches("sha256").count()
    );
    // A subject without data.
    let unused = dir.path().join("unused");
    let nobody = dir.path().join("nobody.zip");
    let r = jidstore(
        &unused,
        &[
            "forensic-export",
            "--from",
            data.to_str().unwrap(),
            "carol",
            "localhost",
            nobody.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        "jidstore: no personal data held for carol@localhost"
    );
    assert!(!nobody.exists());
    // Missing source, a file as source, a symlink or a FIFO inside the source.
    let b = dir.path().join("b.zip");
    let r = forensic(&dir.path().join("missing"), &b, &[]);
    assert_eq!((r.code, r.stderr.lines().count()), (1, 1));
    assert!(
        r.stderr.contains("cannot examine source") && r.stderr.contains("No such file"),
        "{}",
        r.stderr
    );
    let r = forensic(&out, &b, &[]);
    assert!(
        r.code == 1 && r.stderr.contains("not a directory"),
        "{}",
        r.stderr
    );
    let odd = dir.path().join("odd");
    copy_dir(&data, &odd);
    std::os::unix::fs::symlink("/etc/passwd", odd.join("link")).unwrap();
    let r = forensic(&odd, &b, &[]);
    assert!(
        r.code == 1 && r.stderr.contains("it is a symbolic link"),
        "{}",
        r.stderr
    );
    std::fs::remove_file(odd.join("link")).unwrap();
    assert!(
        Command::new("mkfifo")
            .arg(odd.join("fifo"))
            .status()
            .unwrap()
            .success()
    );
    let r = forensic(&odd, &b, &[]);
    assert!(
        r.code == 1 && r.stderr.contains("special file"),
        "{}",
        r.stderr
    );
    // Output or working directory inside the source.
    let r = forensic(&data, &data.join("x.zip"), &[]);
    assert!(
        r.code == 1 && r.stderr.contains("inside the source"),
        "{}",
        r.stderr
    );
    let r = forensic(&data, &b, &["--work-dir", data.to_str().unwrap()]);
    assert!(
        r.code == 1 && r.stderr.contains("inside the source"),
        "{}",
        r.stderr
    );
    // An explicit working directory is used and left empty.
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let before = tree(&data);
    let r = forensic(&data, &b, &["--work-dir", work.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(tree(&work).is_empty());
    assert_eq!(tree(&data), before);
    assert!(!b.with_extension("unused-data-dir").exists());
}

/// A way to damage a copied data dir.
type Damage = Box<dyn Fn(&Path)>;

#[test]
fn truncated_and_deleted_files_never_panic() {
    let (dir, data) = idle_store(1000);
    let len = std::fs::metadata(data.join("db")).unwrap().len();
    let mut cases: Vec<(String, Damage)> = Vec::new();
    for off in [0, 1, 100, 4096, len / 4, len / 2, len * 3 / 4, len - 1] {
        cases.push((
            format!("db truncated at {off}"),
            Box::new(move |p: &Path| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(p.join("db"))
                    .unwrap()
                    .set_len(off)
                    .unwrap();
            }),
        ));
    }
    cases.push((
        "conf deleted".into(),
        Box::new(|p: &Path| std::fs::remove_file(p.join("conf")).unwrap()),
    ));
    cases.push((
        "db deleted".into(),
        Box::new(|p: &Path| std::fs::remove_file(p.join("db")).unwrap()),
    ));
    cases.push((
        "conf truncated at 10".into(),
        Box::new(|p: &Path| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p.join("conf"))
                .unwrap()
                .set_len(10)
                .unwrap();
        }),
    ));
    let mut seen = BTreeMap::new();
    let mut earlier = 0;
    for (i, (name, damage)) in cases.iter().enumerate() {
        let copy = dir.path().join(format!("t{i}"));
        copy_dir(&data, &copy);
        damage(&copy);
        let before = tree(&copy);
        let out = dir.path().join(format!("out{i}/a.zip"));
        std::fs::create_dir(out.parent().unwrap()).unwrap();
        let run = forensic(&copy, &out, &[]);
        let outcome = check(&run, &copy, &out);
        assert_eq!(tree(&copy), before, "{name}: the source changed");
        eprintln!("{name}: {outcome:?} {}", run.stderr.trim());
        if run.stderr.contains("holds an earlier state") {
            // Named as the examiner's copy, not the private working copy.
            assert!(
                run.stderr.contains(&copy.display().to_string())
                    && !run.stderr.contains(".jidstore-forensic"),
                "{name}: {}",
                run.stderr
            );
            earlier += 1;
        }
        *seen
            .entry(format!("{outcome:?}").chars().take(8).collect::<String>())
            .or_insert(0) += 1;
    }
    // The damage is real: some cases must be refused.
    assert!(seen.get("Unusable").copied().unwrap_or(0) > 0, "{seen:?}");
    // This store was reopened (sled wrote a snapshot), so truncations are refused as
    // damage; a never-reopened store's are refused as an earlier state (tests/corruption.rs).
    eprintln!("refused as an earlier state: {earlier}");
}

#[test]
fn bit_flipped_copies_never_panic() {
    let (dir, data) = idle_store(1000);
    let pristine = tree(&data);
    let mut counts = BTreeMap::new();
    for seed in 0u64..30 {
        let copy = dir.path().join(format!("f{seed}"));
        copy_dir(&data, &copy);
        let file = if seed % 10 == 9 { "conf" } else { "db" };
        let mut bytes = std::fs::read(copy.join(file)).unwrap();
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for _ in 0..20 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = usize::try_from(x % bytes.len() as u64).unwrap();
            bytes[at] ^= 1 << (x >> 61);
        }
        std::fs::write(copy.join(file), &bytes).unwrap();
        let before = tree(&copy);
        let out = dir.path().join(format!("out{seed}/a.zip"));
        std::fs::create_dir(out.parent().unwrap()).unwrap();
        let run = forensic(&copy, &out, &[]);
        let outcome = check(&run, &copy, &out);
        assert_eq!(tree(&copy), before, "seed {seed}: the source changed");
        let key = match outcome {
            Outcome::Exported(_) => "exported",
            Outcome::Unusable => "unusable",
            Outcome::NoData => "no data",
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    eprintln!("bit flips, 30 seeds: {counts:?}");
    assert_eq!(tree(&data), pristine);
    assert!(
        counts.get("unusable").copied().unwrap_or(0) > 0,
        "{counts:?}"
    );
}

const WRITER_ENV: &str = "JIDSTORE_FORENSIC_WRITER";
const READY: &str = "forensic-writer-ready";

/// The writer process, killed (SIGKILL) when dropped, so a failing test leaves none behind.
struct Writer(Child);

impl Writer {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Helper process for the tests below (run by them, not a test): writes into the store at
/// `$JIDSTORE_FORENSIC_WRITER` for up to 60 s, printing [`READY`] after its first flush.
#[test]
#[ignore = "helper process, started by the mid-write and kill tests"]
fn writer_child() {
    let Some(dir) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let store = Config::new(PathBuf::from(dir))
        .scram_iterations(16)
        .open()
        .unwrap();
    populate(&store, 100);
    // libtest prints "test name ... " before this on the same line.
    println!("\n{READY}");
    std::io::stdout().flush().unwrap();
    let alice = bare("alice@localhost");
    // Bounded, in case the test that started it dies without killing it.
    let stop = std::time::Instant::now() + Duration::from_mins(1);
    for i in 0u64.. {
        if std::time::Instant::now() > stop {
            break;
        }
        let m = PmMessage {
            id: None,
            timestamp: Timestamp::from_secs(1_800_000_000 + i.cast_signed()),
            from: full("alice@localhost/r"),
            to: full("bob@localhost/r"),
            direction: Direction::Outgoing,
            origin_id: None,
            stanza: format!(
                "<message><body>live message {i} written while copied</body></message>"
            ),
        };
        store.mam().append(&alice, &m).unwrap();
        if i % 50 == 0 {
            let card = format!("<vCard xmlns='vcard-temp'><FN>Alice {i}</FN></vCard>");
            store.vcard().set(&alice, &card).unwrap();
            store.flush().unwrap();
        }
    }
}

fn start_writer(dir: &Path) -> Writer {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "forensic::writer_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut writer = Writer(child);
    let ready = BufReader::new(stdout)
        .lines()
        .any(|l| l.is_ok_and(|l| l.trim() == READY));
    if !ready {
        writer.kill();
        panic!("writer did not start");
    }
    writer
}

#[test]
fn store_after_sigkill_exports_what_retrieve_exports() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut writer = start_writer(&data);
    std::thread::sleep(Duration::from_millis(300));
    writer.kill();
    let before = tree(&data);
    let out = dir.path().join("forensic.zip");
    let run = forensic(&data, &out, &[]);
    assert!(
        matches!(check(&run, &data, &out), Outcome::Exported(n) if n > 100),
        "{}",
        run.stderr
    );
    assert_eq!(tree(&data), before, "the source changed");
    let normal = normal_export(&data, dir.path());
    assert_eq!(csvs(&out), csvs(&normal));
}

#[test]
fn copies_taken_mid_write_export_or_are_refused() {
    let copies: usize = std::env::var("JIDSTORE_FORENSIC_COPIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut writer = start_writer(&data);
    // A live source changes under the export: refused, nothing written.
    let live_out = dir.path().join("live/a.zip");
    std::fs::create_dir(live_out.parent().unwrap()).unwrap();
    let live = forensic(&data, &live_out, &[]);
    let mut sources = Vec::new();
    for i in 0..copies {
        std::thread::sleep(Duration::from_millis(50));
        let copy = dir.path().join(format!("copy{i}"));
        copy_dir(&data, &copy);
        sources.push(copy);
    }
    writer.kill();
    assert_eq!(live.code, 1, "{}", live.stdout);
    assert!(!live_out.exists());
    assert!(
        live.stderr.contains("changed during the forensic export")
            || live.stderr.contains("is unusable"),
        "{}",
        live.stderr
    );
    let mut counts = BTreeMap::new();
    for (i, copy) in sources.iter().enumerate() {
        let before = tree(copy);
        let out = dir.path().join(format!("out{i}/a.zip"));
        std::fs::create_dir(out.parent().unwrap()).unwrap();
        let run = forensic(copy, &out, &[]);
        let outcome = check(&run, copy, &out);
        assert_eq!(tree(copy), before, "copy {i} changed");
        eprintln!("mid-write copy {i}: {outcome:?} {}", run.stderr.trim());
        let key = match outcome {
            Outcome::Exported(_) => "exported",
            Outcome::Unusable => "unusable",
            Outcome::NoData => "no data",
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    eprintln!(
        "{copies} mid-write copies: {counts:?}; live source: {}",
        live.stderr.trim()
    );
}

#[test]
fn admin_socket_in_a_copy_is_skipped_other_special_files_are_not() {
    let (dir, data) = idle_store(20);
    let copy = dir.path().join("copy");
    copy_dir(&data, &copy);
    // What `cp -a` of a live data dir brings along: the admin socket (no data in it).
    let _listener = std::os::unix::net::UnixListener::bind(copy.join("admin.sock")).unwrap();
    let out = dir.path().join("f.zip");
    let run = forensic(&copy, &out, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let m: serde_json::Value = serde_json::from_str(&unzip(&out)["manifest.json"]).unwrap();
    let rows: u64 = m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows, 20 + 4);
    let listed: Vec<&str> = m["source"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(!listed.contains(&"admin.sock"), "{listed:?}");
    assert!(copy.join("admin.sock").exists());
    // A socket under another name is still refused.
    let _other = std::os::unix::net::UnixListener::bind(copy.join("other.sock")).unwrap();
    let out2 = dir.path().join("g.zip");
    let run = forensic(&copy, &out2, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("special file"), "{}", run.stderr);
    assert!(!out2.exists());
}
