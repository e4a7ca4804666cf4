//! Many threads writing every class for many users while others export (`gdpr::retrieve`)
//! and erase (`gdpr::remove`, then register the name again) users at random.
//!
//! Every payload carries a tag `tag-u<user>-e<epoch>-w<write id>`: the epoch is the number of
//! erasures of that user completed when the write started. A write whose epoch changed
//! while it ran is "ambiguous" (it may have landed in the re-registered account) and is
//! recorded; any other row tagged with an epoch older than the user's epoch when an export
//! started is data that survived its erasure. Also checked: each export's manifest row
//! counts equal its CSV rows; users nobody writes for export byte-identical zips each time,
//! as does alice of the sample deployment (`jidstore::__internal::sample`, every class)
//! around the race; `verify` is clean at the end; every thread ends before a deadline (a deadlock fails the
//! test instead of hanging CI).
//!
//! `JIDSTORE_CONCURRENCY_SCALE` (default 1) multiplies the writes and erasures.
#![allow(clippy::too_many_lines, reason = "each test reads as one scenario")]

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use jidstore::__internal::sample;
use jidstore::ext::mam::{Direction, PmMessage};
use jidstore::ext::offline::OfflineMessage;
use jidstore::ext::privacy::{PrivacyAction, PrivacyItem};
use jidstore::ext::pubsub::{Node, NodeType};
use jidstore::ext::roster::{Ask, RosterItem, Subscription};
use jidstore::gdpr::{self, ExportOptions};
use jidstore::{BareJid, Error, Store, Timestamp};

use crate::util::*;

/// Users that writers, exporters and the eraser pick from.
const ACTIVE: u64 = 16;
/// Users written once before the race and never again: their exports must not change.
const FROZEN: u64 = 4;
const WRITERS: u64 = 8;
const PEP: &str = "urn:xmpp:tags";
/// A thread still running this long after it was asked to stop is deadlocked.
const DEADLINE: Duration = Duration::from_mins(2);

fn scale() -> u64 {
    std::env::var("JIDSTORE_CONCURRENCY_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn jid(u: u64) -> BareJid {
    bare(&format!("u{u}@localhost"))
}

fn at() -> Timestamp {
    Timestamp::from_secs(1_700_000_000)
}

fn pep(u: u64) -> Node {
    Node {
        service: jid(u),
        node: PEP.into(),
        owner: jid(u),
        kind: NodeType::Pep,
        access_model: "open".into(),
        config: vec![],
        created_at: at(),
    }
}

/// State shared by every thread.
struct Shared {
    store: Store,
    epochs: Vec<AtomicU64>,
    next_write: AtomicU64,
    /// Writes under way (added before the write starts).
    in_flight: Mutex<HashSet<u64>>,
    /// Writes whose user's epoch changed while they ran.
    ambiguous: Mutex<HashSet<u64>>,
    stop: AtomicBool,
    exports: AtomicU64,
    rows_checked: AtomicU64,
}

/// One write of class `class` for user `u`, its payload tagged.
fn write(store: &Store, class: u64, u: u64, tag: &str, w: u64) -> jidstore::Result<()> {
    let who = jid(u);
    match class {
        0 => store.vcard().set(
            &who,
            &format!("<vCard xmlns='vcard-temp'><FN>{tag}</FN></vCard>"),
        ),
        1 => store
            .roster()
            .set(
                &who,
                &RosterItem {
                    jid: bare(&format!("c{}@localhost", w % 5)),
                    name: Some(tag.to_owned()),
                    subscription: Subscription::Both,
                    ask: Ask::None,
                    groups: vec![],
                    askmessage: None,
                },
            )
            .map(drop),
        2 => store.private().set(
            &who,
            &format!("ns{}", w % 3),
            &format!("<q xmlns='x'>{tag}</q>"),
        ),
        3 => store.offline().store(
            &who,
            &OfflineMessage {
                from: full("bob@localhost/p"),
                to: full(who.as_ref()),
                timestamp: at(),
                expires: None,
                stanza: format!("<message><body>{tag}</body></message>"),
            },
        ),
        4 => store.inbox().on_message(
            &who,
            &bare(&format!("r{}@localhost", w % 4)),
            &format!("<message><body>{tag}</body></message>"),
            None,
            at(),
            true,
        ),
        5 => store
            .mam()
            .append(
                &who,
                &PmMessage::new(
                    at(),
                    full(&format!("{who}/r")),
                    full("bob@localhost"),
                    Direction::Outgoing,
                    format!("<message><body>{tag}</body></message>"),
                ),
            )
            .map(drop),
        6 => store.last().set(&who, 5, tag),
        7 => store
            .blocklist()
            .block(&who, &[full(&format!("{tag}@block"))]),
        8 => store.privacy().set_list(
            &who,
            tag,
            &[PrivacyItem {
                message: true,
                ..PrivacyItem::new(1, PrivacyAction::Deny)
            }],
        ),
        _ => store.pubsub().publish(
            &who,
            PEP,
            &format!("i{}", w % 3),
            &who,
            &format!("<x xmlns='t'>{tag}</x>"),
            at(),
        ),
    }
}

fn writer(sh: &Shared, seed: u64, writes: u64) -> u64 {
    let mut rng = Rng(seed);
    let mut done = 0;
    for _ in 0..writes {
        if sh.stop.load(Ordering::Relaxed) {
            break;
        }
        let u = rng.below(ACTIVE);
        let class = rng.below(10);
        let w = sh.next_write.fetch_add(1, Ordering::Relaxed);
        sh.in_flight.lock().unwrap().insert(w);
        let e1 = sh.epochs[usize::try_from(u).unwrap()].load(Ordering::SeqCst);
        let tag = format!("tag-u{u}-e{e1}-w{w}");
        let res = write(&sh.store, class, u, &tag, w);
        let e2 = sh.epochs[usize::try_from(u).unwrap()].load(Ordering::SeqCst);
        if e1 != e2 {
            sh.ambiguous.lock().unwrap().insert(w);
        }
        sh.in_flight.lock().unwrap().remove(&w);
        match res {
            Ok(()) => done += 1,
            // Erased and not registered again yet (or its PEP node not created again).
            Err(Error::NoAccount(_) | Error::NotFound(_)) => {}
            Err(e) => panic!("write {class} for u{u} failed: {e}"),
        }
    }
    done
}

/// Every `tag-u<u>-e<e>-w<w>` in `text`.
fn tags(text: &str) -> Vec<(u64, u64, u64)> {
    let mut out = Vec::new();
    for part in text.split("tag-u").skip(1) {
        let nums: Vec<u64> = part
            .split(['-', 'e', 'w'])
            .filter(|s| !s.is_empty())
            .take(3)
            .map(|s| {
                s.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
                    .parse()
                    .unwrap_or(u64::MAX)
            })
            .collect();
        if let [u, e, w] = nums[..] {
            out.push((u, e, w));
        }
    }
    out
}

/// Exports `u`; checks the manifest against the CSVs and that no row predates an erasure
/// that completed before the export started. Returns the zip (None: nothing held).
fn export_and_check(sh: &Shared, u: u64) -> Option<Vec<u8>> {
    let epoch = sh.epochs[usize::try_from(u).unwrap()].load(Ordering::SeqCst);
    let mut sink = std::io::Cursor::new(Vec::new());
    let opts = ExportOptions::default().timestamp(at());
    let summary = match gdpr::retrieve(&sh.store, &jid(u), &mut sink, &opts) {
        Ok(s) => s,
        Err(Error::NoPersonalData(_)) => return None,
        Err(e) => panic!("export of u{u} failed: {e}"),
    };
    sh.exports.fetch_add(1, Ordering::Relaxed);
    let bytes = sink.into_inner();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.clone())).unwrap();
    for f in &summary.files {
        let mut text = String::new();
        zip.by_name(f.name)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let (_, rows) = csv_rows(&text);
        assert_eq!(
            rows.len() as u64,
            f.rows,
            "u{u}: manifest says {} rows in {}, the CSV has {}",
            f.rows,
            f.name,
            rows.len()
        );
        assert_eq!(text.len() as u64, f.bytes, "u{u}: {} size", f.name);
        for (tu, te, tw) in tags(&text) {
            assert_eq!(tu, u, "u{u}'s export holds a row of u{tu}: {}", f.name);
            sh.rows_checked.fetch_add(1, Ordering::Relaxed);
            if te < epoch {
                let allowed = sh.ambiguous.lock().unwrap().contains(&tw)
                    || sh.in_flight.lock().unwrap().contains(&tw);
                assert!(
                    allowed,
                    "resurrected: u{u}'s {} holds write {tw} of epoch {te}, erased before \
                     this export started (epoch {epoch})",
                    f.name
                );
            }
        }
    }
    Some(bytes)
}

fn register(store: &Store, u: u64) {
    store.accounts().create(&jid(u), "pw").unwrap();
    store.pubsub().create_node(&pep(u)).unwrap();
}

#[test]
fn writers_exporters_and_erasers_race() {
    let (_dir, store) = store();
    // Bystanders with every class: the race must not touch them.
    let bystander = sample::populate(&store, at()).unwrap().alice;
    let export_bystander = |store: &Store| {
        let mut sink = std::io::Cursor::new(Vec::new());
        let opts = ExportOptions::default().timestamp(at());
        gdpr::retrieve(store, &bystander, &mut sink, &opts).unwrap();
        sink.into_inner()
    };
    let bystander_before = export_bystander(&store);
    for u in 0..ACTIVE + FROZEN {
        register(&store, u);
    }
    let scale = scale();
    let writes = 1500 * scale;
    let rounds = 25 * scale;
    let sh = Arc::new(Shared {
        store: store.clone(),
        epochs: (0..ACTIVE + FROZEN).map(|_| AtomicU64::new(0)).collect(),
        next_write: AtomicU64::new(0),
        in_flight: Mutex::new(HashSet::new()),
        ambiguous: Mutex::new(HashSet::new()),
        stop: AtomicBool::new(false),
        exports: AtomicU64::new(0),
        rows_checked: AtomicU64::new(0),
    });
    // The frozen users get every class once, then are left alone.
    for u in ACTIVE..ACTIVE + FROZEN {
        for class in 0..10 {
            let w = sh.next_write.fetch_add(1, Ordering::Relaxed);
            write(&store, class, u, &format!("tag-u{u}-e0-w{w}"), w).unwrap();
        }
    }
    let frozen: Vec<Vec<u8>> = (ACTIVE..ACTIVE + FROZEN)
        .map(|u| export_and_check(&sh, u).expect("frozen user has data"))
        .collect();

    let started = Instant::now();
    let (tx, rx) = mpsc::channel::<(String, u64)>();
    let writers_left = Arc::new(AtomicU64::new(WRITERS));
    for t in 0..WRITERS {
        let (sh, tx, left) = (sh.clone(), tx.clone(), writers_left.clone());
        thread::spawn(move || {
            let n = writer(&sh, 0x1234_5678 + t * 7919, writes);
            left.fetch_sub(1, Ordering::SeqCst);
            let _ = tx.send((format!("writer {t}"), n));
        });
    }
    for t in 0..2u64 {
        let (sh, tx) = (sh.clone(), tx.clone());
        let frozen = frozen.clone();
        thread::spawn(move || {
            let mut rng = Rng(0xabcd + t);
            let mut n = 0;
            while !sh.stop.load(Ordering::Relaxed) {
                let u = rng.below(ACTIVE);
                export_and_check(&sh, u);
                let f = rng.below(FROZEN);
                let again = export_and_check(&sh, ACTIVE + f).expect("frozen user has data");
                assert!(
                    again == frozen[usize::try_from(f).unwrap()],
                    "u{}: two exports with no write in between differ",
                    ACTIVE + f
                );
                n += 1;
            }
            let _ = tx.send((format!("exporter {t}"), n));
        });
    }
    {
        let (sh, tx, left) = (sh.clone(), tx.clone(), writers_left.clone());
        thread::spawn(move || {
            let mut rng = Rng(0x5151);
            let mut removed = 0u64;
            while removed < rounds || left.load(Ordering::SeqCst) > 0 {
                let u = rng.below(ACTIVE);
                let receipt = gdpr::remove(&sh.store, &jid(u)).expect("remove");
                assert!(receipt.total_removed() > 0);
                sh.epochs[usize::try_from(u).unwrap()].fetch_add(1, Ordering::SeqCst);
                // Right after the erasure: nothing from before it may be exported.
                export_and_check(&sh, u);
                register(&sh.store, u);
                removed += 1;
                thread::sleep(Duration::from_millis(2));
            }
            sh.stop.store(true, Ordering::SeqCst);
            let _ = tx.send(("eraser".to_owned(), removed));
        });
    }
    drop(tx);
    let mut done = BTreeMap::new();
    let deadline = Instant::now() + DEADLINE;
    for _ in 0..WRITERS + 3 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((name, n)) => {
                done.insert(name, n);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("deadlock: threads still running after {DEADLINE:?}; finished: {done:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("a thread panicked (see above); finished: {done:?}")
            }
        }
    }
    let elapsed = started.elapsed();

    for u in 0..ACTIVE + FROZEN {
        export_and_check(&sh, u);
    }
    assert!(
        export_bystander(&store) == bystander_before,
        "the sample's alice changed during the race"
    );
    let report = jidstore::verify(&store).unwrap();
    assert!(report.is_clean(), "{report}");
    let writes_ok: u64 = done
        .iter()
        .filter(|(k, _)| k.starts_with("writer"))
        .map(|(_, n)| n)
        .sum();
    assert!(writes_ok > 0 && done["eraser"] >= rounds, "{done:?}");
    eprintln!(
        "concurrency: {writes_ok} writes acknowledged, {} erasures, {} exports, {} tagged rows \
         checked, {} ambiguous writes, {} entries verified, in {elapsed:?}",
        done["eraser"],
        sh.exports.load(Ordering::Relaxed),
        sh.rows_checked.load(Ordering::Relaxed),
        sh.ambiguous.lock().unwrap().len(),
        report.entries
    );
}
