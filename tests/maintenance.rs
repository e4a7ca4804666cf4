//! Maintenance: erased data stays in sled's files until `compact`, which removes it and
//! keeps everyone else's data; `backup` is a consistent copy of a live store; both refuse
//! bad paths with one line and write nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use jidstore::ext::mam::{Direction, PmMessage};
use jidstore::ext::roster::{Ask, RosterItem, Subscription};
use jidstore::gdpr::ExportOptions;
use jidstore::{BareJid, Config, Store, Timestamp, maintenance};

use crate::util::*;

const MARKER: &str = "PURGE-MARKER-7f3a9c";
const ERASED: &str = "zzqerasedzzq@localhost";
const OTHERS: [&str; 3] = ["bob@localhost", "carol@localhost", "dave@localhost"];

fn msg(from: &str, to: &str, body: &str, secs: i64, direction: Direction) -> PmMessage {
    PmMessage {
        id: None,
        timestamp: Timestamp::from_secs(secs),
        from: full(from),
        to: full(to),
        direction,
        origin_id: None,
        stanza: format!("<message><body>{body}</body></message>"),
    }
}

fn roster_item(jid: &BareJid, name: &str) -> RosterItem {
    RosterItem {
        jid: jid.clone(),
        name: Some(name.to_owned()),
        subscription: Subscription::Both,
        ask: Ask::None,
        groups: vec!["friends".into()],
        askmessage: None,
    }
}

/// The erased user (marker in archive, vCard, roster name) and three others whose data
/// never names the erased user. Returns the others' JIDs.
fn populate(store: &Store) -> Vec<BareJid> {
    let erased = user(store, ERASED);
    let others: Vec<BareJid> = OTHERS.iter().map(|j| user(store, j)).collect();
    let bob = &others[0];
    for i in 0..200 {
        store
            .mam()
            .append(
                &erased,
                &msg(
                    ERASED,
                    "bob@localhost",
                    &format!("{MARKER} secret {i}"),
                    1_000 + i,
                    Direction::Outgoing,
                ),
            )
            .unwrap();
    }
    store
        .vcard()
        .set(
            &erased,
            &format!("<vCard xmlns='vcard-temp'><FN>{MARKER}</FN></vCard>"),
        )
        .unwrap();
    store
        .roster()
        .set(&erased, &roster_item(bob, MARKER))
        .unwrap();
    for (n, o) in others.iter().enumerate() {
        let peer = &others[(n + 1) % others.len()];
        for i in 0..100 {
            store
                .mam()
                .append(
                    o,
                    &msg(
                        o.as_str(),
                        peer.as_str(),
                        &format!("hello {i}"),
                        2_000 + i,
                        Direction::Outgoing,
                    ),
                )
                .unwrap();
        }
        store.roster().set(o, &roster_item(peer, "Friend")).unwrap();
        store
            .vcard()
            .set(o, "<vCard xmlns='vcard-temp'><FN>Other</FN></vCard>")
            .unwrap();
    }
    others
}

fn export(store: &Store, who: &BareJid) -> Vec<u8> {
    let mut sink = std::io::Cursor::new(Vec::new());
    jidstore::gdpr::retrieve(
        store,
        who,
        &mut sink,
        &ExportOptions::default().timestamp(Timestamp::from_secs(1_700_000_000)),
    )
    .unwrap();
    sink.into_inner()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Files under `dir` whose raw bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|f| {
            std::fs::read(f)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        })
        .collect()
}

fn size_of(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum()
}

/// Siblings of `data` left by compaction (`data.compact-*`, `data.old-*`).
fn leftovers(data: &Path) -> Vec<String> {
    std::fs::read_dir(data.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("data."))
        .collect()
}

fn open_path(path: &Path) -> Store {
    Config::new(path)
        .scram_iterations(16)
        .must_exist(true)
        .lock_timeout(std::time::Duration::from_secs(5))
        .open()
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

#[test]
fn compact_removes_erased_bytes_and_keeps_everything_else() {
    let (dir, store) = store();
    let data = dir.path().join("data");
    let others = populate(&store);
    store.flush().unwrap();
    let before: Vec<Vec<u8>> = others.iter().map(|o| export(&store, o)).collect();
    let bob_archive = store.mam().list(&others[0]).unwrap();

    jidstore::gdpr::remove(&store, &bare(ERASED)).unwrap();
    store.flush().unwrap();
    drop(store);

    // The problem: erasure alone leaves the bytes in sled's files.
    let marker_files = files_containing(&data, MARKER);
    let name_files = files_containing(&data, "zzqerasedzzq");
    assert!(
        !marker_files.is_empty(),
        "marker not found in the files before compact"
    );
    assert!(
        !name_files.is_empty(),
        "localpart not found in the files before compact"
    );

    let size_before = size_of(&data);
    let summary = maintenance::compact(&data).unwrap();
    let size_after = size_of(&data);
    println!(
        "compact: {summary}; files before {size_before} bytes, after {size_after} bytes \
         (marker was in {} file(s) before)",
        marker_files.len()
    );
    assert_eq!(summary.size_before, size_before);
    assert_eq!(summary.size_after, size_after);
    assert!(size_after < size_before, "{size_before} -> {size_after}");
    assert!(leftovers(&data).is_empty(), "{:?}", leftovers(&data));

    assert_eq!(files_containing(&data, MARKER), Vec::<PathBuf>::new());
    assert_eq!(
        files_containing(&data, "zzqerasedzzq"),
        Vec::<PathBuf>::new()
    );

    let store = open_path(&data);
    let report = jidstore::verify(&store).unwrap();
    assert!(report.is_clean(), "{report}");
    let after: Vec<Vec<u8>> = others.iter().map(|o| export(&store, o)).collect();
    assert!(before == after, "other users' exports changed");
    assert!(!store.accounts().exists(&bare(ERASED)).unwrap());

    // Ids continue after the copy: a new account gets an archive of its own, and a new
    // message sorts after the existing ones.
    let newcomer = user(&store, "newcomer@localhost");
    assert!(store.mam().list(&newcomer).unwrap().is_empty());
    let bob = &others[0];
    store
        .mam()
        .append(
            bob,
            &msg(
                "bob@localhost",
                "carol@localhost",
                "after",
                9_000,
                Direction::Outgoing,
            ),
        )
        .unwrap();
    let archive = store.mam().list(bob).unwrap();
    assert_eq!(archive.len(), bob_archive.len() + 1);
    assert_eq!(archive[..bob_archive.len()], bob_archive[..]);
    assert!(archive.last().unwrap().stanza.contains("after"));
    assert!(jidstore::verify(&store).unwrap().is_clean());
}

#[test]
fn unregister_purge_through_the_binary() {
    let (dir, store) = store();
    let data = dir.path().join("data");
    let others = populate(&store);
    let before: Vec<Vec<u8>> = others.iter().map(|o| export(&store, o)).collect();
    store.flush().unwrap();
    drop(store);

    let r = jidstore_settled(
        &data,
        &["unregister", "--purge", "zzqerasedzzq", "localhost"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("successfully unregistered"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("compacted:"), "{}", r.stdout);
    assert_eq!(files_containing(&data, MARKER), Vec::<PathBuf>::new());
    assert_eq!(
        files_containing(&data, "zzqerasedzzq"),
        Vec::<PathBuf>::new()
    );
    assert!(leftovers(&data).is_empty(), "{:?}", leftovers(&data));

    let r = jidstore(&data, &["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let store = open_path(&data);
    let after: Vec<Vec<u8>> = others.iter().map(|o| export(&store, o)).collect();
    assert!(before == after, "other users' exports changed");
}

#[test]
fn backup_of_a_store_being_written_is_consistent() {
    let (dir, store) = store();
    let writers: Vec<BareJid> = (0..4)
        .map(|i| user(&store, &format!("w{i}@localhost")))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let done: Vec<Arc<AtomicU64>> = writers.iter().map(|_| Arc::default()).collect();
    let handles: Vec<_> = writers
        .iter()
        .zip(&done)
        .map(|(w, count)| {
            let (store, w, count, stop) = (store.clone(), w.clone(), count.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    store
                        .mam()
                        .append(
                            &w,
                            &msg(
                                w.as_str(),
                                "peer@localhost",
                                &format!("m{i}"),
                                1_000 + i64::try_from(i).unwrap(),
                                Direction::Outgoing,
                            ),
                        )
                        .unwrap();
                    let contact = bare(&format!("c{i}@localhost"));
                    store.roster().set(&w, &roster_item(&contact, "C")).unwrap();
                    i += 1;
                    count.store(i, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Let every writer get going, then copy while they keep writing.
    while done.iter().any(|c| c.load(Ordering::SeqCst) < 200) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let completed: Vec<u64> = done.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    let dest = dir.path().join("backup");
    let summary = maintenance::copy_into(&store, &dest).unwrap();
    let during: Vec<u64> = done.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    std::thread::sleep(std::time::Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    println!("backup: {summary}; writes before {completed:?}, at end of copy {during:?}");
    assert!(summary.total_entries() > 0);

    let copy = open_path(&dest);
    let report = jidstore::verify(&copy).unwrap();
    assert!(report.is_clean(), "{report}");
    for (w, &n) in writers.iter().zip(&completed) {
        let archive = copy.mam().list(w).unwrap();
        let n = usize::try_from(n).unwrap();
        assert!(archive.len() >= n, "{w}: {} < {n}", archive.len());
        // The copy holds a prefix of what was written, in order.
        for (i, m) in archive.iter().enumerate() {
            assert!(m.stanza.contains(&format!("<body>m{i}</body>")), "{w} {i}");
        }
        assert!(copy.roster().list(w).unwrap().len() >= n);
    }
    // The live store kept going and is itself clean.
    assert!(jidstore::verify(&store).unwrap().is_clean());
}

#[test]
fn backup_through_the_binary_and_refusals() {
    let (dir, store) = store();
    populate(&store);
    store.flush().unwrap();
    drop(store);
    let data = dir.path().join("data");

    let dest = dir.path().join("copy");
    let r = jidstore_settled(&data, &["backup", dest.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("backup written to"), "{}", r.stdout);
    let r = jidstore(&dest, &["verify"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);

    // An existing destination (a store, an empty directory, a file) is refused untouched.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"keep me").unwrap();
    let copy_size = size_of(&dest);
    for existing in [&dest, &empty, &file] {
        let r = jidstore(&data, &["backup", existing.to_str().unwrap()]);
        assert_eq!(r.code, 1, "{}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains("already exists"), "{}", r.stderr);
        assert!(r.stdout.is_empty());
    }
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    assert_eq!(size_of(&dest), copy_size);
}

#[test]
fn compact_and_backup_refuse_a_missing_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let dest = dir.path().join("dest");
    for args in [vec!["compact"], vec!["backup", dest.to_str().unwrap()]] {
        let r = jidstore(&missing, &args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stdout);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(r.stderr.contains(missing.to_str().unwrap()), "{}", r.stderr);
        assert!(r.stderr.contains("No such file"), "{}", r.stderr);
        assert!(r.stdout.is_empty());
    }
    let r = jidstore(&missing, &["unregister", "--purge", "a", "localhost"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    // Nothing was written.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    assert!(matches!(
        maintenance::compact(&missing),
        Err(jidstore::Error::Path { .. })
    ));
}

#[test]
fn interrupted_compact_is_reported_not_replaced_by_an_empty_store() {
    let (dir, store) = store();
    populate(&store);
    store.flush().unwrap();
    drop(store);
    let data = dir.path().join("data");
    // A crash between compact's two renames leaves the store only at data.old-*.
    let old = dir.path().join("data.old-0123456789abcdef");
    std::fs::rename(&data, &old).unwrap();
    for create in [false, true] {
        let err = Config::new(&data)
            .must_exist(!create)
            .open()
            .unwrap_err()
            .to_string();
        assert!(err.contains("data.old-0123456789abcdef"), "{err}");
        assert!(err.contains("compact"), "{err}");
    }
    let r = jidstore(&data, &["compact"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("interrupted"), "{}", r.stderr);
    assert!(!data.exists());
    std::fs::rename(&old, &data).unwrap();
    assert!(jidstore::verify(&open_path(&data)).unwrap().is_clean());
}

#[test]
fn compact_refuses_a_store_that_does_not_verify_and_leaves_it_unchanged() {
    use jidstore::__internal::keys::{self, Keyspace};
    let (dir, store) = store();
    populate(&store);
    let bob = bare("bob@localhost");
    let key = keys::owner(&bob);
    let mut bad = store
        .raw_tree(Keyspace::Vcard)
        .get(&key)
        .unwrap()
        .unwrap()
        .to_vec();
    bad.pop();
    store.raw_tree(Keyspace::Vcard).insert(&key, bad).unwrap();
    store.flush().unwrap();
    drop(store);
    let data = dir.path().join("data");
    let r = jidstore_settled(&data, &["compact"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("failed verification"), "{}", r.stderr);
    assert!(leftovers(&data).is_empty(), "{:?}", leftovers(&data));
    // Still the old store, damage and erased-nothing included.
    let r = jidstore(&data, &["verify"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("vcard"), "{}", r.stdout);
}

#[test]
fn backup_inside_the_data_dir_is_refused() {
    let (dir, store) = store();
    populate(&store);
    let inside = dir.path().join("data").join("copy");
    let err = maintenance::copy_into(&store, &inside).unwrap_err();
    assert!(matches!(err, jidstore::Error::InvalidInput(_)), "{err}");
    assert!(!inside.exists());
}

/// `compact` repacks archives that a live server wrote one message at a time into blocks:
/// far fewer sled entries, the same export bytes, the same answers to every query form,
/// a clean `verify`, and appends (live and bulk) carry on after it.
#[test]
fn compact_repacks_live_archives_into_blocks() {
    use jidstore::ext::mam::{PageFrom, Query};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alice = bare("alice@localhost");
    let peers = ["bob@localhost/a", "carol@localhost/b", "bob@localhost/c"];
    let queries = |store: &Store| {
        let mut pages = Vec::new();
        for with in [None, Some("bob@localhost"), Some("bob@localhost/c")] {
            for page in [PageFrom::First, PageFrom::Before(None)] {
                let q = Query {
                    with: with.map(|w| jidstore::Jid::parse(w).unwrap()),
                    start: Some(Timestamp::from_secs(1_040)),
                    max: Some(25),
                    page,
                    count: true,
                    ..Query::default()
                };
                pages.push(store.mam().query(&alice, &q).unwrap());
            }
        }
        pages
    };
    let (export_before, pages_before, entries_before) = {
        let store = open_path_create(&data);
        user(&store, "alice@localhost");
        user(&store, "bob@localhost");
        for i in 0..300usize {
            let mut m = msg(
                peers[i % 3],
                "alice@localhost/home",
                &format!("live {i}"),
                1_000 + i64::try_from(i).unwrap() / 3,
                Direction::Incoming,
            );
            if i % 11 == 0 {
                m.id = Some(format!("imported-{i}"));
            }
            store.mam().append(&alice, &m).unwrap();
        }
        let third = store.mam().list(&alice).unwrap()[3].id.clone();
        assert!(store.mam().remove(&alice, &third).unwrap());
        let entries = mam_pm_entries(&store);
        (export(&store, &alice), queries(&store), entries)
    };
    assert_eq!(
        entries_before,
        2 * 299,
        "one record and one with entry per live message"
    );
    maintenance::compact(&data).unwrap();
    let store = open_path(&data);
    let entries_after = mam_pm_entries(&store);
    assert!(
        entries_after * 5 < entries_before,
        "repacked into blocks: {entries_before} -> {entries_after} entries"
    );
    assert_eq!(export(&store, &alice), export_before);
    assert_eq!(queries(&store), pages_before);
    assert_eq!(
        store
            .mam()
            .get(&alice, "imported-11")
            .unwrap()
            .map(|m| m.stanza),
        Some("<message><body>live 11</body></message>".to_owned())
    );
    let report = jidstore::verify(&store).unwrap();
    assert!(report.problems.is_empty(), "{report}");
    // Appends carry on: an imported id already held is refused, new ones are archived.
    let mut again = msg(
        peers[0],
        "alice@localhost",
        "after",
        5_000,
        Direction::Incoming,
    );
    again.id = Some("imported-22".into());
    assert!(store.mam().append(&alice, &again).is_err());
    again.id = None;
    let id = store.mam().append(&alice, &again).unwrap();
    store
        .mam()
        .append_bulk(&alice, [again.clone(), again])
        .unwrap();
    let list = store.mam().list(&alice).unwrap();
    assert_eq!(list.len(), 299 + 3);
    assert_eq!(list[299].id, id);
    assert!(jidstore::verify(&store).unwrap().problems.is_empty());
}

fn mam_pm_entries(store: &Store) -> u64 {
    let stats = jidstore::stats(store).unwrap();
    stats
        .keyspaces
        .iter()
        .find(|(name, _)| *name == "mam_pm")
        .map(|(_, ks)| ks.entries)
        .unwrap()
}

fn open_path_create(path: &Path) -> Store {
    Config::new(path).scram_iterations(16).open().unwrap()
}
