//! A full disk: ingest (many writes, bulk archive appends, `import`), export
//! (`retrieve_personal_data`, `export-xep0227`) and `unregister` against a small tmpfs the
//! test mounts (skipped with a SKIP line where it cannot mount; `JIDSTORE_REQUIRE_TMPFS=1`
//! makes that a failure). Every failure must be one clear line (no space, the path), exit 1
//! and no panic, leave no partial export, and after space is freed the store must open,
//! verify clean and hold every write acknowledged before the failure.
#![allow(clippy::too_many_lines, reason = "each test reads as one scenario")]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use jidstore::ext::mam::{Direction, PmMessage};
use jidstore::ext::offline::OfflineMessage;
use jidstore::ext::roster::{Ask, RosterItem, Subscription};
use jidstore::gdpr::{self, ExportOptions};
use jidstore::{BareJid, Config, Error, Jid, Store, Timestamp};

use crate::bounded::{self, Tmpfs, assert_clean_failure, assert_no_panic, files_under};
use crate::util::*;

/// Incompressible text (so exports and stores grow as fast as the data does).
/// The tests here fill filesystems and time child processes against them: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn noise(seed: u64, len: usize) -> String {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(x % 36) as usize])
        })
        .collect()
}

fn msg(i: u64) -> PmMessage {
    PmMessage::new(
        Timestamp::from_secs(1_700_000_000 + i64::try_from(i).unwrap()),
        Jid::parse("u@localhost/r").unwrap(),
        Jid::parse("bob@localhost/r").unwrap(),
        Direction::Outgoing,
        format!("<message><body>{i} {}</body></message>", noise(i, 300)),
    )
}

fn open_at(data: &Path) -> jidstore::Result<Store> {
    Config::new(data)
        .scram_iterations(16)
        .lock_timeout(Duration::from_secs(5))
        .open()
}

/// What an ingest got acknowledged (`Ok`) before the disk filled.
#[derive(Debug, Default, Clone)]
struct Acked {
    /// Every vCard acknowledged per user, in order.
    vcard: BTreeMap<String, Vec<String>>,
    roster: BTreeMap<String, Vec<String>>,
    private: BTreeMap<(String, String), String>,
    offline: BTreeMap<String, u64>,
    mam: BTreeMap<String, u64>,
    /// The failing write: (class, user, how many records it could have added).
    failed: Option<(&'static str, String, u64)>,
    /// The error of the failing write, and of a write and a flush after it.
    errors: Vec<String>,
    storage_full: bool,
    writes: u64,
    /// Bulk appends refused for lack of room before single writes were.
    bulk_refusals: u64,
}

const USERS: u64 = 10;

fn jid(u: u64) -> BareJid {
    bare(&format!("u{u}@localhost"))
}

/// Writes every class for [`USERS`] users round-robin, with a bulk archive append now and
/// then, until a write fails.
fn ingest(data: &Path) -> Acked {
    let store = open_at(data).expect("open");
    let mut acked = Acked::default();
    for u in 0..USERS {
        store.accounts().create(&jid(u), "pw").expect("create");
    }
    let mut i = 0u64;
    let mut bulk_refused = false;
    let failure = loop {
        let u = i % USERS;
        let who = jid(u);
        let key = who.to_string();
        let res = match (i / USERS) % 6 {
            0 => {
                let v = format!("<vCard xmlns='vcard-temp'><FN>{i}</FN></vCard>");
                store.vcard().set(&who, &v).map(|()| {
                    acked.vcard.entry(key.clone()).or_default().push(v);
                })
            }
            1 => {
                let contact = format!("c{i}@localhost");
                let item = RosterItem {
                    jid: bare(&contact),
                    name: Some(noise(i, 40)),
                    subscription: Subscription::Both,
                    ask: Ask::None,
                    groups: vec!["g".into()],
                    askmessage: None,
                };
                store.roster().set(&who, &item).map(|_| {
                    acked.roster.entry(key.clone()).or_default().push(contact);
                })
            }
            2 => {
                let ns = format!("ns{}", i % 3);
                let xml = format!("<q xmlns='{ns}'>{}</q>", noise(i, 100));
                store.private().set(&who, &ns, &xml).map(|()| {
                    acked.private.insert((key.clone(), ns), xml);
                })
            }
            3 => {
                let m = OfflineMessage {
                    from: full("bob@localhost/p"),
                    to: full(&key),
                    timestamp: Timestamp::from_secs(1_700_000_000),
                    expires: None,
                    stanza: format!("<message><body>{}</body></message>", noise(i, 200)),
                };
                store.offline().store(&who, &m).map(|()| {
                    *acked.offline.entry(key.clone()).or_default() += 1;
                })
            }
            4 if i % 50 == 4 && !bulk_refused => store
                .mam()
                .append_bulk(&who, (0..2000).map(|k| msg(i * 10_000 + k)))
                .map(|n| {
                    *acked.mam.entry(key.clone()).or_default() += n;
                }),
            _ => store.mam().append(&who, &msg(i)).map(|_| {
                *acked.mam.entry(key.clone()).or_default() += 1;
            }),
        };
        match res {
            Ok(()) => {
                acked.writes += 1;
                // Flushes now and then, as a server does: they must keep succeeding.
                if acked.writes % 200 == 0
                    && let Err(e) = store.flush()
                {
                    acked.failed = Some(("flush", String::new(), 0));
                    break e;
                }
            }
            Err(e) => {
                let class = ["vcard", "roster", "private", "offline", "mam", "mam"]
                    [usize::try_from((i / USERS) % 6).unwrap()];
                let n = if (i / USERS) % 6 == 4 && i % 50 == 4 && !bulk_refused {
                    2000
                } else {
                    1
                };
                // A bulk chunk asks for room for itself on top of the reserve, so it is
                // refused first; single writes go on until the reserve itself is reached.
                if n > 1 && matches!(e, Error::LowSpace { .. }) {
                    bulk_refused = true;
                    acked.bulk_refusals += 1;
                    i += 1;
                    continue;
                }
                acked.failed = Some((class, key, n));
                break e;
            }
        }
        i += 1;
        assert!(i < 2_000_000, "the 16 MiB filesystem never filled");
    };
    acked.storage_full = failure.is_storage_full();
    acked.errors.push(failure.to_string());
    // The store stays usable for reads and refuses further writes with the same error.
    let again = store
        .vcard()
        .set(&jid(0), "<vCard xmlns='vcard-temp'/>")
        .expect_err("a write after the disk filled succeeded");
    acked.errors.push(again.to_string());
    acked.errors.push(
        store
            .flush()
            .map_or_else(|e| e.to_string(), |()| "flush ok".into()),
    );
    drop(store);
    acked
}

#[test]
fn library_ingest_until_full_keeps_acknowledged_writes() {
    let _serial = serial();
    let Some(fs) = Tmpfs::mount_or_skip(16, "disk_full::library_ingest_until_full") else {
        return;
    };
    let data = fs.path().join("data");
    let (tx, rx) = mpsc::channel();
    let d = data.clone();
    std::thread::spawn(move || {
        let _ = tx.send(ingest(&d));
    });
    let acked = rx
        .recv_timeout(Duration::from_mins(4))
        .expect("ingest panicked, or hung after the disk filled");
    eprintln!(
        "disk_full: {} writes acknowledged, then: {:?}",
        acked.writes, acked.errors
    );
    assert!(
        acked.writes > 300,
        "only {} writes: {:?}",
        acked.writes,
        acked.errors
    );
    // The free-space reserve (4 MiB on this 16 MiB filesystem) refuses the write before
    // sled runs out of space: nothing of it is written and sled's own writes still succeed.
    assert!(acked.storage_full, "not reported as a full disk: {acked:?}");
    for e in &acked.errors[..2] {
        assert!(e.starts_with("no space left on device"), "{e}");
        assert!(
            e.contains("nothing was written"),
            "not the reserve: {e} ({:?}, after {} writes)",
            acked.failed,
            acked.writes
        );
        assert!(e.contains(&data.display().to_string()), "{e}");
        assert!(!e.contains('\n'), "{e}");
    }
    assert_eq!(
        acked.errors[2], "flush ok",
        "sled ran out of space: {acked:?}"
    );

    // Still full: the store opens, verifies clean and holds every acknowledged write.
    let store = open_at(&data).unwrap_or_else(|e| {
        let df = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("df -k {0}; ls -la {0}", data.display()))
            .output()
            .unwrap();
        panic!(
            "reopen on a full disk: {e}\n{}",
            String::from_utf8_lossy(&df.stdout)
        )
    });
    let report = jidstore::verify(&store).unwrap();
    assert!(report.is_clean(), "{report}");
    for u in 0..USERS {
        let who = jid(u);
        let key = who.to_string();
        if let Some(v) = acked.vcard.get(&key) {
            assert_eq!(store.vcard().get(&who).unwrap().as_ref(), v.last(), "{key}");
        }
        let mut roster: Vec<String> = store
            .roster()
            .list(&who)
            .unwrap()
            .into_iter()
            .map(|r| r.jid.to_string())
            .collect();
        roster.sort();
        let mut want = acked.roster.get(&key).cloned().unwrap_or_default();
        want.sort();
        assert_eq!(roster, want, "{key}: roster");
        for ((k, ns), xml) in &acked.private {
            if *k == key {
                let got = store.private().get(&who, ns).unwrap();
                assert_eq!(got.as_deref(), Some(xml.as_str()), "{key}: private {ns}");
            }
        }
        assert_eq!(
            store.offline().count(&who).unwrap(),
            acked.offline.get(&key).copied().unwrap_or(0),
            "{key}: offline"
        );
        assert_eq!(
            store.mam().count(&who).unwrap(),
            acked.mam.get(&key).copied().unwrap_or(0),
            "{key}: archive"
        );
    }
    // Removing is never refused for lack of space: an erasure on the full disk completes.
    let erased = jidstore::gdpr::remove(&store, &jid(0)).expect("erasure on a full disk");
    assert!(erased.sweep_error.is_none(), "{:?}", erased.sweep_error);
    assert!(!store.accounts().exists(&jid(0)).unwrap());
    assert_eq!(store.mam().count(&jid(0)).unwrap_or(0), 0);
    let err = store
        .vcard()
        .set(&jid(1), "<vCard xmlns='vcard-temp'/>")
        .expect_err("a write below the reserve succeeded");
    assert!(err.is_storage_full(), "{err}");
    drop(store);
    let run = bounded::jidstore(&data, &["verify"]);
    assert_no_panic(&run, "verify on a full disk");
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);

    // Space freed: writes are accepted again.
    fs.resize(64);
    let store = open_at(&data).expect("open after freeing space");
    store
        .vcard()
        .set(&jid(1), "<vCard xmlns='vcard-temp'><FN>again</FN></vCard>")
        .expect("write after freeing space");
    eprintln!(
        "disk_full: {} writes acknowledged before the reserve was reached, all present after \
         reopening on the full disk; erasure there completed",
        acked.writes
    );
}

/// A XEP-0227 document with `users` users, each with `messages` archived messages.
fn pie_document(users: u64, messages: u64) -> String {
    let (_dir, store) = store();
    let mut parts = Vec::new();
    for u in 0..users {
        let who = jid(u);
        store.accounts().create(&who, "pw").unwrap();
        store
            .vcard()
            .set(&who, "<vCard xmlns='vcard-temp'><FN>x</FN></vCard>")
            .unwrap();
        store
            .mam()
            .append_bulk(&who, (0..messages).map(|k| msg(u * 100_000 + k)))
            .unwrap();
        let mut doc = Vec::new();
        jidstore::pie::export(&store, &who, &mut doc).unwrap();
        parts.push(String::from_utf8(doc).unwrap());
    }
    let first = &parts[0];
    let head = &first[..first.find("<user ").unwrap()];
    let tail = &first[first.rfind("</user>").unwrap() + "</user>".len()..];
    let mut out = head.to_owned();
    for p in &parts {
        out.push_str(&p[p.find("<user ").unwrap()..p.rfind("</user>").unwrap() + 7]);
        out.push('\n');
    }
    out.push_str(tail);
    out
}

#[test]
fn cli_import_until_full() {
    let _serial = serial();
    let Some(fs) = Tmpfs::mount_or_skip(8, "disk_full::cli_import_until_full") else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let file = src.path().join("users.xml");
    std::fs::write(&file, pie_document(8, 4000)).unwrap();
    let data = fs.path().join("data");
    let run = bounded::jidstore(&data, &["register", "--user", "admin", "localhost", "pw"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = bounded::jidstore(&data, &["import", file.to_str().unwrap()]);
    eprintln!(
        "disk_full: import on a full disk: exit {}\n{}",
        run.code, run.stderr
    );
    assert_clean_failure(&run, "import on a full disk");
    assert!(
        run.stderr.contains("no space left on device"),
        "{}",
        run.stderr
    );

    fs.resize(128);
    let store = open_at(&data).expect("open after freeing space");
    let report = jidstore::verify(&store).unwrap();
    assert!(report.is_clean(), "{report}");
    // Each user is wholly imported, absent, or (the one the disk filled on) named in the
    // error as to be unregistered.
    let mut complete = 0;
    for u in 0..8 {
        let who = jid(u);
        if store.accounts().exists(&who).unwrap() {
            let n = store.mam().count(&who).unwrap();
            if n == 4000 {
                complete += 1;
            } else {
                assert!(
                    run.stderr.contains(&who.to_string()),
                    "{who} partly imported ({n} messages) without a word:\n{}",
                    run.stderr
                );
            }
        }
    }
    eprintln!("disk_full: import: {complete} of 8 users complete before the disk filled");
    assert!(store.accounts().exists(&bare("admin@localhost")).unwrap());
    // An import undoing its own partial write erases nobody: no ledger entry, so the next
    // import of the file is not refused for it.
    for u in 0..8 {
        assert_eq!(
            jidstore::gdpr::ledger::erased_at(&store, &jid(u)).unwrap(),
            None,
            "{} in the erasure ledger after a failed import",
            jid(u)
        );
    }
}

/// A user with every class and an archive big enough not to fit in `mib` MiB as a zip.
fn roomy_store_with_big_user(messages: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = open_at(&data).unwrap();
    crate::verify::populate(&store);
    let alice = bare("alice@localhost");
    store
        .mam()
        .append_bulk(&alice, (0..messages).map(msg))
        .unwrap();
    store.flush().unwrap();
    drop(store);
    (dir, data)
}

#[test]
fn cli_export_to_a_full_filesystem_leaves_nothing() {
    let _serial = serial();
    let Some(fs) = Tmpfs::mount_or_skip(2, "disk_full::cli_export_to_a_full_filesystem") else {
        return;
    };
    let (_dir, data) = roomy_store_with_big_user(12_000);
    let mut cases = 0;
    for free in [0u64, 4096, 300_000, 1_500_000] {
        let ballast = fs.fill(free);
        for (cmd, name) in [
            ("retrieve_personal_data", "alice.zip"),
            ("export-xep0227", "alice.xml"),
        ] {
            let target = fs.path().join(name);
            let run = bounded::jidstore(
                &data,
                &[cmd, "alice", "localhost", target.to_str().unwrap()],
            );
            let what = format!("{cmd} with {free} bytes free");
            assert_clean_failure(&run, &what);
            assert_eq!(run.stderr.lines().count(), 1, "{what}: {}", run.stderr);
            assert!(
                run.stderr.contains("No space left on device"),
                "{what}: {}",
                run.stderr
            );
            assert!(
                run.stderr.contains(&fs.path().display().to_string()),
                "{what}: error does not name the path: {}",
                run.stderr
            );
            assert_eq!(
                files_under(fs.path()),
                vec!["ballast".to_owned()],
                "{what}: a partial export was left behind"
            );
            cases += 1;
        }
        std::fs::remove_file(ballast).unwrap();
    }
    // With the space back, the same exports work and are complete.
    fs.resize(64);
    let target = fs.path().join("alice.zip");
    let run = bounded::jidstore(
        &data,
        &[
            "retrieve_personal_data",
            "alice",
            "localhost",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let files = unzip(&target);
    let (_, rows) = csv_rows(&files["mam_pm.csv"]);
    // The bulk messages and verify::populate's 5 (the sample's 4 and an imported one).
    assert_eq!(rows.len(), 12_005);
    eprintln!("disk_full: {cases} exports onto a full filesystem failed cleanly");
}

#[test]
fn cli_unregister_on_a_full_disk_is_all_or_nothing() {
    let _serial = serial();
    // Room for the copy however large sled's files happen to be; the ballast sets the level.
    let Some(fs) = Tmpfs::mount_or_skip(48, "disk_full::cli_unregister_on_a_full_disk") else {
        return;
    };
    let (_dir, roomy) = roomy_store_with_big_user(3000);
    let alice = bare("alice@localhost");
    let before = {
        let store = open_at(&roomy).unwrap();
        let mut sink = std::io::Cursor::new(Vec::new());
        let opts = ExportOptions::default().timestamp(Timestamp::from_secs(0));
        gdpr::retrieve(&store, &alice, &mut sink, &opts).unwrap();
        sink.into_inner()
    };
    let mut outcomes = BTreeMap::<String, u32>::new();
    for free in [0u64, 2048, 65_536, 1_048_576, 3_145_728, 6_291_456] {
        let data = fs.path().join("data");
        bounded::copy_dir(&roomy, &data);
        // A clean open on roomy disk first, as a server would have done. It also writes
        // until sled's file grows: sled reuses free segments inside its file (a store grown
        // by ingest may hold megabytes of them, depending on when its cleaner ran), and an
        // erasure that fits in them never asks the filesystem for space, so the disk would
        // not fill in some runs.
        {
            let store = open_at(&data).unwrap();
            let filler = user(&store, "filler@localhost");
            let db = data.join("db");
            let start = std::fs::metadata(&db).unwrap().len();
            let mut i = 0;
            while std::fs::metadata(&db).unwrap().len() <= start + (1 << 20) {
                store
                    .mam()
                    .append_bulk(&filler, (0..500).map(|k| msg(1_000_000 + i * 500 + k)))
                    .unwrap();
                store.flush().unwrap();
                i += 1;
                assert!(i < 400, "sled's file never grew");
            }
        }
        // sled's threads finish after the handle drops (and may still delete an old
        // snapshot, freeing space): wait for them, so the ballast leaves exactly `free`.
        bounded::wait_until_released(&data);
        let ballast = fs.fill(free);
        let run = bounded::jidstore(&data, &["unregister", "alice", "localhost"]);
        let what = format!("unregister with {free} bytes free");
        assert_no_panic(&run, &what);
        if run.code != 0 {
            assert_clean_failure(&run, &what);
            assert!(
                run.stderr.contains("no space left on device"),
                "{what}: {}",
                run.stderr
            );
        }
        std::fs::remove_file(ballast).unwrap();
        let store = open_at(&data).expect("open after freeing space");
        let report = jidstore::verify(&store).unwrap();
        assert!(report.is_clean(), "{what}: {report}");
        let present = store.accounts().exists(&alice).unwrap();
        let opts = ExportOptions::default().timestamp(Timestamp::from_secs(0));
        let mut sink = std::io::Cursor::new(Vec::new());
        let export = gdpr::retrieve(&store, &alice, &mut sink, &opts);
        let committed = run.code == 0 || run.stderr.contains("is erased (committed)");
        if run.code != 0 && !committed {
            // Either the erasure's commit failed, or the store could not even be opened
            // (sled writes while it opens); either way alice must be intact, checked below.
            assert!(
                run.stderr.contains("may not have been committed")
                    || run
                        .stderr
                        .contains("no space left on device for data directory"),
                "{what}: {}",
                run.stderr
            );
        }
        if present {
            assert!(!committed, "{what}: reported erased, but alice is present");
            export.unwrap();
            assert_eq!(
                sink.into_inner(),
                before,
                "{what}: alice present but changed"
            );
        } else {
            // Gone: only what erasure keeps remains: group-chat messages, items on flat
            // and other users' nodes, and alice's flat node with her owner affiliation.
            let summary = export.unwrap();
            for f in &summary.files {
                let kept = [
                    "mam_muc.csv",
                    "pubsub_items.csv",
                    "pubsub_nodes.csv",
                    "pubsub_affiliations.csv",
                ]
                .contains(&f.name);
                assert!(
                    kept || f.rows == 0,
                    "{what}: {} has {} rows",
                    f.name,
                    f.rows
                );
            }
        }
        let outcome = match (run.code, committed, present) {
            (0, _, _) => "erased",
            (_, true, _) => "erased, archive sweep failed (resumed on open)",
            (_, false, true) if run.stderr.contains("may not have been committed") => {
                "not committed, intact"
            }
            (_, false, true) => "store not opened, intact",
            (_, false, false) => "commit flush failed, erased",
        }
        .to_owned();
        eprintln!("disk_full: {what}: {outcome}: {}", run.stderr.trim());
        *outcomes.entry(outcome).or_default() += 1;
        drop(store);
        std::fs::remove_dir_all(&data).unwrap();
    }
    eprintln!("disk_full: unregister outcomes {outcomes:?}");
    assert!(
        outcomes.keys().any(|k| k != "erased"),
        "the disk never filled: {outcomes:?}"
    );
}
