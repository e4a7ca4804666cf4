//! Model target: arbitrary operation sequences over users whose JIDs share prefixes (and one
//! that differs only in case), across accounts, roster, vCard, private XML, offline messages,
//! the 1-1 archive (single and bulk appends, removals by id), group chat, last activity and
//! the blocklist, with reopens and GDPR erasure, run against a store in a temporary directory
//! and an in-memory model.
//!
//! After every operation the operation's outcome matches the model's; after every reopen and
//! at the end every typed read equals the model and `verify` is clean; after an erasure
//! nothing of the subject is readable (only the group-chat messages it sent, which are kept).
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jidstore::ext::mam::{Direction, MucMessage, PageFrom, PmMessage, Query};
use jidstore::ext::offline::OfflineMessage;
use jidstore::ext::roster::{Ask, RosterItem, Subscription};
use jidstore::{BareJid, Config, Error, Jid, Store, Timestamp, gdpr};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// Share prefixes (`a@h` / `a@h.org` / `ab@h` / `a@hh`); `A@h.org` is `a@h.org` normalised,
/// so index 1 and 5 are the same person.
const USERS: [&str; 6] = ["a@h", "a@h.org", "ab@h", "a@hh", "b@h", "A@h.org"];
/// Distinct people: index 5 is index 1.
const PEOPLE: usize = 5;
const ROOM: &str = "r@muc.h";
/// Most operations per input: keeps one execution short.
const MAX_OPS: usize = 48;

/// A user index (taken modulo the number of JIDs).
#[derive(Arbitrary, Debug, Clone, Copy)]
struct U(u8);

impl U {
    fn person(self) -> usize {
        let i = usize::from(self.0) % USERS.len();
        if i == PEOPLE { 1 } else { i }
    }
    fn jid(self) -> BareJid {
        BareJid::parse(USERS[usize::from(self.0) % USERS.len()]).expect("fixed JID")
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Create(U),
    RosterSet(U, U, u8),
    RosterRemove(U, U),
    VcardSet(U, u8),
    VcardRemove(U),
    PrivateSet(U, u8, u8),
    OfflineStore(U, U, u8),
    OfflinePop(U),
    MamAppend(U, U, u8),
    /// Messages with imported ids `x<byte>`: a duplicate refuses the whole call.
    MamBulk(U, Vec<u8>),
    /// Removes the archive's message at this position (modulo its length).
    MamRemove(U, u8),
    MucAppend(U, u8),
    LastSet(U, u8),
    Block(U, U),
    Unblock(U, U),
    Reopen,
    Remove(U),
}

fn person_jid(p: usize) -> BareJid {
    BareJid::parse(USERS[p]).expect("fixed JID")
}

fn full(p: usize) -> Jid {
    Jid::parse(&format!("{}/r", USERS[p])).expect("fixed JID")
}

fn at() -> Timestamp {
    Timestamp::from_secs(1_700_000_000)
}

fn stanza(v: u8) -> String {
    format!("<message xmlns='jabber:client'><body>{v}</body></message>")
}

fn vcard(v: u8) -> String {
    format!("<vCard xmlns='vcard-temp'><FN>{v}</FN></vCard>")
}

fn private_xml(ns: u8, v: u8) -> String {
    format!("<q xmlns='ns{ns}'>{v}</q>")
}

fn pm(owner: usize, peer: usize, id: Option<String>, v: u8) -> PmMessage {
    PmMessage {
        id,
        timestamp: at(),
        from: full(owner),
        to: full(peer),
        direction: Direction::Outgoing,
        origin_id: None,
        stanza: stanza(v),
    }
}

/// One archived message as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Msg {
    id: String,
    peer: usize,
    v: u8,
}

#[derive(Default, Debug)]
struct Model {
    accounts: BTreeSet<usize>,
    roster: BTreeMap<usize, BTreeMap<usize, u8>>,
    vcard: BTreeMap<usize, u8>,
    private: BTreeMap<usize, BTreeMap<u8, u8>>,
    offline: BTreeMap<usize, Vec<(usize, u8)>>,
    mam: BTreeMap<usize, Vec<Msg>>,
    /// (sender, value) in archive order.
    muc: Vec<(usize, u8)>,
    last: BTreeMap<usize, u8>,
    blocked: BTreeMap<usize, BTreeSet<usize>>,
}

impl Model {
    fn has(&self, p: usize) -> bool {
        self.accounts.contains(&p)
    }

    fn remove(&mut self, p: usize) {
        self.accounts.remove(&p);
        self.roster.remove(&p);
        self.vcard.remove(&p);
        self.private.remove(&p);
        self.offline.remove(&p);
        self.mam.remove(&p);
        self.last.remove(&p);
        self.blocked.remove(&p);
    }
}

/// Asserts the outcome of a write that needs an account.
fn expect_account<T: std::fmt::Debug>(has: bool, r: &jidstore::Result<T>) {
    match (has, r) {
        (true, Ok(_)) | (false, Err(Error::NoAccount(_))) => {}
        _ => panic!("model says account exists = {has}, store returned {r:?}"),
    }
}

/// Every typed read of every person equals the model, MAM queries agree with the archive
/// listing, and `verify` is clean.
fn check(store: &Store, m: &Model) {
    let report = jidstore::verify(store).expect("verify runs");
    assert!(report.is_clean(), "{report}");
    for p in 0..PEOPLE {
        check_person(store, m, p);
    }
    let muc: Vec<_> = store
        .muc()
        .list(&BareJid::parse(ROOM).expect("room"))
        .expect("room list")
        .into_iter()
        .map(|x| (x.sender.to_string(), x.stanza))
        .collect();
    let want: Vec<_> = m
        .muc
        .iter()
        .map(|(s, v)| (USERS[*s].to_owned(), stanza(*v)))
        .collect();
    assert_eq!(muc, want, "room archive");
}

fn check_person(store: &Store, m: &Model, p: usize) {
    let j = person_jid(p);
    let name = USERS[p];
    assert_eq!(store.accounts().exists(&j).expect("exists"), m.has(p), "{name}");
    let mut roster: Vec<_> = store
        .roster()
        .list(&j)
        .expect("roster")
        .into_iter()
        .map(|i| (i.jid.to_string(), i.name))
        .collect();
    roster.sort();
    let mut want: Vec<_> = m
        .roster
        .get(&p)
        .into_iter()
        .flatten()
        .map(|(c, n)| (USERS[*c].to_owned(), Some(format!("n{n}"))))
        .collect();
    want.sort();
    assert_eq!(roster, want, "roster of {name}");
    assert_eq!(
        store.vcard().get(&j).expect("vcard"),
        m.vcard.get(&p).map(|v| vcard(*v)),
        "vcard of {name}"
    );
    let want: Vec<_> = m
        .private
        .get(&p)
        .into_iter()
        .flatten()
        .map(|(ns, v)| (format!("ns{ns}"), private_xml(*ns, *v)))
        .collect();
    assert_eq!(store.private().list(&j).expect("private"), want, "private of {name}");
    let offline: Vec<_> = store
        .offline()
        .list(&j)
        .expect("offline")
        .into_iter()
        .map(|o| (o.from.to_string(), o.stanza))
        .collect();
    let want: Vec<_> = m
        .offline
        .get(&p)
        .into_iter()
        .flatten()
        .map(|(f, v)| (full(*f).to_string(), stanza(*v)))
        .collect();
    assert_eq!(offline, want, "offline of {name}");
    let archive: Vec<_> = store
        .mam()
        .list(&j)
        .expect("mam list")
        .into_iter()
        .map(|a| (a.id, a.to.to_string(), a.stanza))
        .collect();
    let want: Vec<_> = m
        .mam
        .get(&p)
        .into_iter()
        .flatten()
        .map(|x| (x.id.clone(), full(x.peer).to_string(), stanza(x.v)))
        .collect();
    assert_eq!(archive, want, "archive of {name}");
    assert_eq!(
        store.mam().count(&j).expect("mam count"),
        want.len() as u64,
        "archive count of {name}"
    );
    if m.has(p) {
        check_queries(store, &j, &want);
    }
    assert_eq!(
        store.last().get(&j).expect("last").map(|l| l.seconds),
        m.last.get(&p).map(|v| i64::from(*v)),
        "last of {name}"
    );
    let mut blocked: Vec<_> = store
        .blocklist()
        .list(&j)
        .expect("blocklist")
        .into_iter()
        .map(|b| b.to_string())
        .collect();
    blocked.sort();
    let mut want: Vec<_> = m
        .blocked
        .get(&p)
        .into_iter()
        .flatten()
        .map(|c| full(*c).to_string())
        .collect();
    want.sort();
    assert_eq!(blocked, want, "blocklist of {name}");
}

/// Paged queries (forward in pages of 3, the last page, `with` each peer) agree with the
/// listing `want` of (id, to, stanza).
fn check_queries(store: &Store, j: &BareJid, want: &[(String, String, String)]) {
    let mut paged = Vec::new();
    let mut page = PageFrom::First;
    loop {
        let q = Query {
            max: Some(3),
            page: page.clone(),
            count: true,
            ..Query::default()
        };
        let got = store.mam().query(j, &q).expect("query");
        assert_eq!(got.count, Some(want.len() as u64), "query count of {j}");
        paged.extend(got.messages.iter().map(|m| m.id.clone()));
        match (got.complete, got.last) {
            (false, Some(last)) => page = PageFrom::After(last),
            _ => break,
        }
    }
    let ids: Vec<_> = want.iter().map(|w| w.0.clone()).collect();
    assert_eq!(paged, ids, "paged query of {j}");
    let last = store
        .mam()
        .query(
            j,
            &Query {
                max: Some(2),
                page: PageFrom::Before(None),
                ..Query::default()
            },
        )
        .expect("last page");
    let tail: Vec<_> = ids.iter().skip(ids.len().saturating_sub(2)).cloned().collect();
    let got: Vec<_> = last.messages.into_iter().map(|m| m.id).collect();
    assert_eq!(got, tail, "last page of {j}");
    for peer in 0..PEOPLE {
        let q = Query {
            with: Some(Jid::parse(USERS[peer]).expect("jid")),
            max: Some(1000),
            ..Query::default()
        };
        let got: Vec<_> = store
            .mam()
            .query(j, &q)
            .expect("with query")
            .messages
            .into_iter()
            .map(|m| m.id)
            .collect();
        let to = full(peer).to_string();
        let want: Vec<_> = want
            .iter()
            .filter(|w| w.1 == to)
            .map(|w| w.0.clone())
            .collect();
        assert_eq!(got, want, "with={} query of {j}", USERS[peer]);
    }
    for (id, _, stanza) in want {
        let got = store.mam().get(j, id).expect("get").map(|m| m.stanza);
        assert_eq!(got.as_ref(), Some(stanza), "get {id} of {j}");
    }
}

fn open(path: &Path) -> Store {
    Config::new(path)
        .cache_capacity(1 << 20)
        .flush_every_ms(None)
        .scram_iterations(4096)
        .lock_timeout(Duration::from_secs(10))
        .open()
        .expect("open store")
}

/// A fresh directory per execution, on tmpfs when there is one.
fn fresh_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "jidstore-fuzz-model-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

#[allow(clippy::too_many_lines, reason = "one arm per operation")]
fn apply(store: &Store, m: &mut Model, op: &Op) {
    match *op {
        Op::Create(u) => {
            let p = u.person();
            let r = store.accounts().create(&u.jid(), "pw");
            if m.accounts.insert(p) {
                r.expect("create");
            } else {
                assert!(matches!(r, Err(Error::AccountExists(_))), "{r:?}");
            }
        }
        Op::RosterSet(u, c, n) => {
            let item = RosterItem {
                jid: c.jid(),
                name: Some(format!("n{n}")),
                subscription: Subscription::Both,
                ask: Ask::None,
                groups: vec![],
                askmessage: None,
            };
            let has = m.has(u.person());
            if has {
                m.roster.entry(u.person()).or_default().insert(c.person(), n);
            }
            expect_account(has, &store.roster().set(&u.jid(), &item));
        }
        Op::RosterRemove(u, c) => {
            let had = m
                .roster
                .get_mut(&u.person())
                .and_then(|r| r.remove(&c.person()))
                .is_some();
            assert_eq!(store.roster().remove(&u.jid(), &c.jid()).expect("roster remove"), had);
        }
        Op::VcardSet(u, v) => {
            let has = m.has(u.person());
            if has {
                m.vcard.insert(u.person(), v);
            }
            expect_account(has, &store.vcard().set(&u.jid(), &vcard(v)));
        }
        Op::VcardRemove(u) => {
            let had = m.vcard.remove(&u.person()).is_some();
            assert_eq!(store.vcard().remove(&u.jid()).expect("vcard remove"), had);
        }
        Op::PrivateSet(u, ns, v) => {
            let ns = ns % 3;
            let has = m.has(u.person());
            if has {
                m.private.entry(u.person()).or_default().insert(ns, v);
            }
            let r = store
                .private()
                .set(&u.jid(), &format!("ns{ns}"), &private_xml(ns, v));
            expect_account(has, &r);
        }
        Op::OfflineStore(u, from, v) => {
            let has = m.has(u.person());
            if has {
                m.offline.entry(u.person()).or_default().push((from.person(), v));
            }
            let msg = OfflineMessage {
                from: full(from.person()),
                to: full(u.person()),
                timestamp: at(),
                expires: None,
                stanza: stanza(v),
            };
            expect_account(has, &store.offline().store(&u.jid(), &msg));
        }
        Op::OfflinePop(u) => {
            let popped: Vec<_> = store
                .offline()
                .pop_all(&u.jid(), at())
                .expect("pop")
                .into_iter()
                .map(|o| o.stanza)
                .collect();
            let want: Vec<_> = m
                .offline
                .remove(&u.person())
                .unwrap_or_default()
                .into_iter()
                .map(|(_, v)| stanza(v))
                .collect();
            assert_eq!(popped, want);
        }
        Op::MamAppend(u, peer, v) => {
            let has = m.has(u.person());
            let r = store
                .mam()
                .append(&u.jid(), &pm(u.person(), peer.person(), None, v));
            expect_account(has, &r);
            if let Ok(id) = r {
                m.mam.entry(u.person()).or_default().push(Msg {
                    id,
                    peer: peer.person(),
                    v,
                });
            }
        }
        Op::MamBulk(u, ref bytes) => {
            let p = u.person();
            let msgs: Vec<Msg> = bytes
                .iter()
                .take(64)
                .map(|b| Msg {
                    id: format!("x{b}"),
                    peer: usize::from(*b) % PEOPLE,
                    v: *b,
                })
                .collect();
            let batch: Vec<PmMessage> = msgs
                .iter()
                .map(|x| pm(p, x.peer, Some(x.id.clone()), x.v))
                .collect();
            let r = store.mam().append_bulk(&u.jid(), batch);
            let existing: BTreeSet<&str> = m
                .mam
                .get(&p)
                .into_iter()
                .flatten()
                .map(|x| x.id.as_str())
                .collect();
            let mut seen = BTreeSet::new();
            // A duplicate inside the call is refused before the account is looked up.
            let repeated = msgs.iter().any(|x| !seen.insert(x.id.as_str()));
            let duplicate = repeated || msgs.iter().any(|x| existing.contains(x.id.as_str()));
            if msgs.is_empty() {
                assert_eq!(r.expect("empty bulk"), 0);
            } else if repeated {
                assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
            } else if !m.has(p) {
                assert!(matches!(r, Err(Error::NoAccount(_))), "{r:?}");
            } else if duplicate {
                assert!(matches!(r, Err(Error::InvalidInput(_))), "{r:?}");
            } else {
                assert_eq!(r.expect("bulk"), msgs.len() as u64);
                m.mam.entry(p).or_default().extend(msgs);
            }
        }
        Op::MamRemove(u, i) => {
            let p = u.person();
            let list = m.mam.get_mut(&p);
            match list.filter(|l| !l.is_empty()) {
                Some(list) => {
                    let x = list.remove(usize::from(i) % list.len());
                    assert!(store.mam().remove(&u.jid(), &x.id).expect("mam remove"));
                    assert!(!store.mam().remove(&u.jid(), &x.id).expect("mam remove again"));
                }
                None => {
                    let r = store.mam().remove(&u.jid(), "x0");
                    assert!(matches!(r, Ok(false)), "{r:?}");
                }
            }
        }
        Op::MucAppend(u, v) => {
            m.muc.push((u.person(), v));
            let msg = MucMessage {
                id: None,
                timestamp: at(),
                sender: u.jid(),
                nick: format!("nick{}", u.person()),
                stanza: stanza(v),
            };
            store
                .muc()
                .append(&BareJid::parse(ROOM).expect("room"), &msg)
                .expect("muc append");
        }
        Op::LastSet(u, v) => {
            let has = m.has(u.person());
            if has {
                m.last.insert(u.person(), v);
            }
            expect_account(has, &store.last().set(&u.jid(), i64::from(v), "away"));
        }
        Op::Block(u, c) => {
            let has = m.has(u.person());
            if has {
                m.blocked.entry(u.person()).or_default().insert(c.person());
            }
            expect_account(has, &store.blocklist().block(&u.jid(), &[full(c.person())]));
        }
        Op::Unblock(u, c) => {
            let has = m.has(u.person());
            if has && let Some(b) = m.blocked.get_mut(&u.person()) {
                b.remove(&c.person());
            }
            let r = store.blocklist().unblock(&u.jid(), &[full(c.person())]);
            if has {
                r.expect("unblock");
            }
        }
        Op::Reopen => unreachable!("handled by the caller"),
        Op::Remove(u) => {
            let p = u.person();
            let holds = m.has(p) || m.muc.iter().any(|x| x.0 == p);
            let r = gdpr::remove(store, &u.jid());
            match (&r, holds) {
                (Ok(_), true) | (Err(Error::NoPersonalData(_)), false) => {}
                _ => panic!("remove {}: {r:?}, model holds anything = {holds}", USERS[p]),
            }
            m.remove(p);
            check_person(store, m, p);
            let sent = m.muc.iter().filter(|x| x.0 == p).count();
            assert_eq!(
                store.muc().by_sender(&u.jid()).expect("by sender").len(),
                sent,
                "kept group-chat messages of {}",
                USERS[p]
            );
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let path = fresh_dir();
    let mut store = open(&path);
    let mut m = Model::default();
    for op in ops.iter().take(MAX_OPS) {
        if let Op::Reopen = op {
            store.flush().expect("flush");
            drop(store);
            store = open(&path);
            check(&store, &m);
        } else {
            apply(&store, &mut m, op);
        }
    }
    check(&store, &m);
    drop(store);
    let _ = std::fs::remove_dir_all(&path);
});
