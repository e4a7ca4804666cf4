//! Damaged data directories: bit flips at pseudo-random offsets of sled's `db` file,
//! truncations of it, and damage to `conf`, `snap.*` and `blobs/`, on a store holding every
//! data class (once as a never-reopened store, once after a reopen wrote a snapshot). `open`,
//! `verify`, `stats` and `retrieve_personal_data` through the real binary, and open, verify
//! and retrieve through the library, must never panic or hang, and every error must be one
//! line naming the damage. `JIDSTORE_CORRUPTION_SEEDS` (default 50) sets the number of bit
//! flips per store variant.
#![allow(clippy::too_many_lines, reason = "each test reads as one scenario")]

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use jidstore::gdpr::{self, ExportOptions};
use jidstore::{Config, Timestamp};

use crate::bounded::{self, assert_no_panic, copy_dir, files_under};
use crate::util::*;

/// Error lines that name the damage (or its consequence) well enough to act on.
const NAMED: [&str; 8] = [
    "holds an earlier state than its last recorded flush",
    "a file of the store is missing",
    "corrupt record in keyspace",
    "is not a jidstore data directory",
    "sled found damaged data",
    "problem(s) found in",
    "cannot open data directory",
    "store format version",
];

struct Base {
    _dir: tempfile::TempDir,
    data: PathBuf,
    entries: u64,
    alice_rows: u64,
}

/// A store with every keyspace populated, a value large enough for sled to keep it in
/// `blobs/`, and a few more users; `reopen` opens it once more (sled then writes `snap.*`).
fn base(reopen: bool) -> Base {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = fill(&data);
    let store = Config::new(&data)
        .scram_iterations(16)
        .lock_timeout(std::time::Duration::from_secs(5))
        .open()
        .unwrap();
    let entries = jidstore::verify(&store).unwrap().entries;
    let mut sink = std::io::Cursor::new(Vec::new());
    let alice_rows = gdpr::retrieve(&store, &alice, &mut sink, &ExportOptions::default())
        .unwrap()
        .total_rows();
    drop(store);
    if !reopen {
        // Rebuild without the second open: the same writes, never reopened.
        let dir2 = tempfile::tempdir().unwrap();
        let data2 = dir2.path().join("data");
        fill(&data2);
        return Base {
            _dir: dir2,
            data: data2,
            entries,
            alice_rows,
        };
    }
    Base {
        _dir: dir,
        data,
        entries,
        alice_rows,
    }
}

/// Writes the store of [`base`] into `data` (every keyspace, a big value, five more users)
/// and closes it; returns alice.
fn fill(data: &Path) -> jidstore::BareJid {
    let store = Config::new(data).scram_iterations(16).open().unwrap();
    let (alice, _bob) = crate::verify::populate(&store);
    let big = format!("<big xmlns='big'>{}</big>", "x".repeat(300_000));
    store.private().set(&alice, "big", &big).unwrap();
    for u in 0..5 {
        let j = user(&store, &format!("user{u}@localhost"));
        store
            .vcard()
            .set(
                &j,
                &format!("<vCard xmlns='vcard-temp'><FN>{u}</FN></vCard>"),
            )
            .unwrap();
    }
    store.flush().unwrap();
    drop(store);
    alice
}

/// Length of the file up to its last non-zero byte (sled's `db` is mostly a sparse tail).
fn used_len(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |p| p as u64 + 1)
}

fn flip(path: &Path, offset: u64, bit: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[usize::try_from(offset).unwrap()] ^= 1 << bit;
    std::fs::write(path, bytes).unwrap();
}

fn truncate(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// One damage applied to a fresh copy of the data directory.
type Damage = Box<dyn Fn(&Path)>;

fn snap_file(data: &Path) -> Option<PathBuf> {
    std::fs::read_dir(data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("snap."))
        })
}

fn blob_file(data: &Path) -> Option<PathBuf> {
    std::fs::read_dir(data.join("blobs"))
        .ok()?
        .map(|e| e.unwrap().path())
        .next()
}

fn cases(base: &Base, seeds: u64) -> Vec<(String, Damage)> {
    let db_len = used_len(&base.data.join("db"));
    let mut rng = Rng(0x5eed_0000 + seeds + u64::from(snap_file(&base.data).is_some()));
    let mut out: Vec<(String, Damage)> = Vec::new();
    for seed in 0..seeds {
        let offset = rng.below(db_len);
        let bit = u8::try_from(rng.below(8)).unwrap();
        out.push((
            format!("db flip seed {seed} (offset {offset} bit {bit})"),
            Box::new(move |d: &Path| flip(&d.join("db"), offset, bit)),
        ));
    }
    for len in [
        0,
        1,
        19,
        20,
        100,
        db_len / 4,
        db_len / 2,
        db_len * 3 / 4,
        db_len - 1,
    ] {
        out.push((
            format!("db truncated to {len} of {db_len}"),
            Box::new(move |d: &Path| truncate(&d.join("db"), len)),
        ));
    }
    for (name, len) in [("conf truncated to 0", 0), ("conf truncated to 10", 10)] {
        out.push((
            name.to_owned(),
            Box::new(move |d: &Path| truncate(&d.join("conf"), len)),
        ));
    }
    for off in [0u64, 8, 30, 61] {
        out.push((
            format!("conf flip at {off}"),
            Box::new(move |d: &Path| flip(&d.join("conf"), off, 2)),
        ));
    }
    out.push((
        "conf deleted".into(),
        Box::new(|d: &Path| std::fs::remove_file(d.join("conf")).unwrap()),
    ));
    if let Some(snap) = snap_file(&base.data) {
        let name = snap.file_name().unwrap().to_owned();
        let len = std::fs::metadata(&snap).unwrap().len();
        for off in [0, len / 3, len / 2, len - 1] {
            let n = name.clone();
            out.push((
                format!("snapshot flip at {off} of {len}"),
                Box::new(move |d: &Path| flip(&d.join(&n), off, 4)),
            ));
        }
        for cut in [0, len / 2, len - 1] {
            let n = name.clone();
            out.push((
                format!("snapshot truncated to {cut} of {len}"),
                Box::new(move |d: &Path| truncate(&d.join(&n), cut)),
            ));
        }
    }
    if let Some(blob) = blob_file(&base.data) {
        let name = blob.file_name().unwrap().to_owned();
        let len = std::fs::metadata(&blob).unwrap().len();
        for off in [0, 4, 100, len / 2, len - 1] {
            let n = name.clone();
            out.push((
                format!("blob flip at {off} of {len}"),
                Box::new(move |d: &Path| flip(&d.join("blobs").join(&n), off, 0)),
            ));
        }
        for cut in [0, 3, len / 2] {
            let n = name.clone();
            out.push((
                format!("blob truncated to {cut} of {len}"),
                Box::new(move |d: &Path| truncate(&d.join("blobs").join(&n), cut)),
            ));
        }
        let n = name.clone();
        out.push((
            "blob deleted".into(),
            Box::new(move |d: &Path| std::fs::remove_file(d.join("blobs").join(&n)).unwrap()),
        ));
    }
    out
}

/// Checks one command's run on a damaged copy; returns its outcome class.
fn judge(run: &Run, what: &str) -> &'static str {
    assert_no_panic(run, what);
    if run.code == 0 {
        return "ok";
    }
    assert_eq!(run.code, 1, "{what}: exit code; stderr: {}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: not one line: {}", run.stderr);
    let line = lines[0];
    assert!(line.starts_with("jidstore: "), "{what}: {line}");
    if line.contains("no personal data held for alice@localhost") {
        return "export: no data (lost)";
    }
    assert!(
        NAMED.iter().any(|n| line.contains(n)),
        "{what}: error does not name the damage: {line}"
    );
    if line.contains("holds an earlier state") {
        "earlier state refused"
    } else if line.contains("is not a jidstore data directory") {
        "not a store"
    } else if line.contains("problem(s) found") {
        "verify problems"
    } else {
        "error naming damage"
    }
}

/// Runs every case against `base`; returns counts per outcome.
fn run_cases(base: &Base, label: &str, seeds: u64) -> BTreeMap<String, u32> {
    let mut outcomes = BTreeMap::<String, u32>::new();
    let work = tempfile::tempdir().unwrap();
    for (name, damage) in cases(base, seeds) {
        let what = format!("{label}: {name}");
        let mut seen = Vec::new();
        for cmd in ["verify", "stats", "retrieve"] {
            let copy = work.path().join(format!("copy-{cmd}"));
            copy_dir(&base.data, &copy);
            damage(&copy);
            let out_dir = work.path().join("out");
            std::fs::create_dir_all(&out_dir).unwrap();
            let run = match cmd {
                "retrieve" => bounded::jidstore(
                    &copy,
                    &[
                        "retrieve_personal_data",
                        "alice",
                        "localhost",
                        out_dir.to_str().unwrap(),
                    ],
                ),
                other => bounded::jidstore(&copy, &[other]),
            };
            let class = judge(&run, &format!("{what}: {cmd}"));
            let left = files_under(&out_dir);
            if cmd == "retrieve" && run.code == 0 {
                assert_eq!(left, vec!["alice.zip".to_owned()], "{what}");
                let files = unzip(&out_dir.join("alice.zip"));
                assert!(files.contains_key("manifest.json"), "{what}");
            } else {
                assert!(left.is_empty(), "{what}: {cmd} left {left:?}");
            }
            let class = if cmd == "verify" && run.code == 0 {
                // sled may treat damage as the torn end of its log and drop what follows:
                // the store opens clean with fewer entries.
                let entries: u64 = run
                    .stdout
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{what}: verify output {}", run.stdout));
                if entries < base.entries {
                    // sled drops what follows damage in its log; the flush witness turns
                    // that into an "earlier state" error. Only a deleted blob file of a
                    // never-reopened store still loses its one entry silently (sled skips a
                    // log entry whose blob is gone; README, Guarantees).
                    assert_eq!(
                        name, "blob deleted",
                        "{what}: opened clean with {entries} of {} entries",
                        base.entries
                    );
                    "ok, entries lost"
                } else {
                    "ok"
                }
            } else {
                class
            };
            seen.push(class);
            std::fs::remove_dir_all(&out_dir).unwrap();
            std::fs::remove_dir_all(&copy).unwrap();
        }
        library(base, &*damage, &what, work.path());
        let key = format!(
            "verify: {} / stats: {} / retrieve: {}",
            seen[0], seen[1], seen[2]
        );
        *outcomes.entry(key).or_default() += 1;
    }
    outcomes
}

/// The same damage through the library, in process: open, verify and retrieve must return
/// (any result), never panic.
fn library(base: &Base, damage: &dyn Fn(&Path), what: &str, work: &Path) {
    let copy = work.join("copy-lib");
    copy_dir(&base.data, &copy);
    damage(&copy);
    let res = catch_unwind(AssertUnwindSafe(|| {
        let Ok(store) = Config::new(&copy).must_exist(true).open() else {
            return;
        };
        let _ = jidstore::verify(&store);
        let mut sink = std::io::Cursor::new(Vec::new());
        let opts = ExportOptions::default().timestamp(Timestamp::from_secs(0));
        if let Ok(s) = gdpr::retrieve(&store, &bare("alice@localhost"), &mut sink, &opts) {
            assert!(s.total_rows() <= base.alice_rows + 1, "{what}");
        }
    }));
    assert!(res.is_ok(), "{what}: the library panicked");
    std::fs::remove_dir_all(&copy).unwrap();
}

fn seeds() -> u64 {
    std::env::var("JIDSTORE_CORRUPTION_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
}

#[test]
fn damaged_never_reopened_store_never_panics() {
    let base = base(false);
    let outcomes = run_cases(&base, "fresh store", seeds());
    eprintln!("corruption (store never reopened, no snapshot): {outcomes:#?}");
    assert!(outcomes.values().sum::<u32>() > 50);
}

#[test]
fn damaged_reopened_store_never_panics() {
    let base = base(true);
    assert!(
        snap_file(&base.data).is_some(),
        "no snapshot after a reopen"
    );
    let outcomes = run_cases(&base, "reopened store", seeds());
    eprintln!("corruption (store reopened, with snapshot): {outcomes:#?}");
    assert!(outcomes.values().sum::<u32>() > 50);
}

/// sled writes a snapshot to `snap.<lsn>.generating` and renames it when complete; a process
/// killed in between leaves the partial file, which sled 0.34's recovery takes as the newest
/// snapshot and refuses as damaged. jidstore removes such files before sled opens (found by
/// the unregister crash test, 1 kill in 600).
#[test]
fn partial_snapshot_left_by_a_kill_is_ignored() {
    let base = base(true);
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join("data");
    copy_dir(&base.data, &copy);
    let partial = copy.join("snap.FFFFFFFFFFFFFFF0.generating");
    std::fs::write(&partial, vec![0x42u8; 5000]).unwrap();
    let run = bounded::jidstore(&copy, &["verify"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("verified {} entries", base.entries)),
        "{}",
        run.stdout
    );
    assert!(!partial.exists(), "the partial snapshot is still there");
    // Anything else named like a snapshot is sled's business, and stays.
    let other = copy.join("snap.notours.generating");
    std::fs::write(&other, b"x").unwrap();
    let store = Config::new(&copy).must_exist(true).open();
    assert!(other.exists());
    drop(store);
}
