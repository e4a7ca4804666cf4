//! Model-based property test, after sled's `prop_tree_matches_btreemap`: random operation
//! sequences (with reopens and erasures) over users whose JIDs share prefixes and differ in
//! case, run against the store and an in-memory model.
//!
//! After every sequence and every reopen: the typed APIs show exactly what the model holds,
//! `verify` is clean (records and indexes match both ways), every export has the row counts
//! the model predicts and is byte-identical when taken twice with a fixed timestamp. After
//! every erasure: the subject's export holds only what DESIGN.md keeps, and every other
//! user's export is byte-identical to before, except users the model says are touched
//! (they subscribed or published on the subject's PEP and push nodes, which go).
//!
//! The users are `jidstore::testing::LOOKALIKES` and the stanzas and vCards carry
//! `testing::TRICKY_PIECES`, the strategies the `proptest` feature exports; a second property
//! runs `testing::check_gdpr` on generated whole deployments (`testing::deployment`).
//!
//! Both properties also run on the in-memory engine and on PostgreSQL (a fresh database per
//! case on the throwaway cluster of `tests/pg`; `JIDSTORE_SKIP_PG=1` skips those).
//!
//! `PROPTEST_CASES` sets the number of cases (default 256 in release, about 5 s; 64 in debug
//! builds; the deployment property runs a quarter as many, the PostgreSQL properties an
//! eighth).
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "a failed expectation is a failed test"
)]

#[path = "util.rs"]
mod util;

#[cfg(feature = "postgres")]
#[path = "pg/mod.rs"]
mod pg;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;

use jidstore::ext::mam::{Direction, MucMessage, PmMessage};
use jidstore::ext::offline::OfflineMessage;
use jidstore::ext::privacy::{PrivacyAction, PrivacyItem};
use jidstore::ext::pubsub::{Affiliation, Node, NodeType, SubState};
use jidstore::ext::roster::{Ask, RosterItem, Subscription};
use jidstore::gdpr::{self, ExportOptions};
use jidstore::testing::{self, LOOKALIKES, TRICKY_PIECES};
use jidstore::{BareJid, Error, Jid, Store, Timestamp};
use proptest::prelude::*;
use tempfile::TempDir;

/// Share prefixes (`a@h` / `a@h.org` / `ab@h` / `a@hh`) and differ in case (`A@h.org`).
const USERS: [&str; 5] = LOOKALIKES;
const N: usize = USERS.len();
/// Service index of the shared pubsub service; lower indexes are the users' PEP services.
const PUBSUB: usize = N;
const ROOM: &str = "r@muc.h";
/// Tables erasure keeps (DESIGN.md section 2): every other table is empty afterwards.
const KEPT: [&str; 4] = testing::KEPT_FILES;

fn jid(u: usize) -> BareJid {
    BareJid::parse(USERS[u]).unwrap()
}

fn service(s: usize) -> BareJid {
    if s == PUBSUB {
        BareJid::parse("pubsub.h").unwrap()
    } else {
        jid(s)
    }
}

fn at() -> Timestamp {
    Timestamp::from_secs(1_700_000_000)
}

/// Distinct per `v`, with CSV- and XML-hostile text in it.
fn tricky(v: u8) -> String {
    format!(
        "{}{v}",
        TRICKY_PIECES[usize::from(v) * 7 % TRICKY_PIECES.len()]
    )
}

fn stanza(v: u8) -> String {
    testing::message_stanza("x@h/r", "y@h", &tricky(v))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Pep,
    Push,
    Flat,
}

impl Kind {
    fn node_type(self) -> NodeType {
        match self {
            Kind::Pep => NodeType::Pep,
            Kind::Push => NodeType::Push,
            Kind::Flat => NodeType::Flat,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    RosterSet(usize, usize, u8),
    RosterRemove(usize, usize),
    VcardSet(usize, u8),
    VcardRemove(usize),
    PrivateSet(usize, u8, u8),
    OfflineStore(usize, usize, u8),
    OfflinePop(usize),
    InboxMessage(usize, usize, u8, bool),
    InboxReset(usize, usize),
    MamAppend(usize, usize, u8),
    MucAppend(usize, u8),
    CreateNode(usize, Kind, u8),
    /// Publisher, node (see [`Run::node`]), item, payload.
    Publish(usize, u8, u8, u8),
    /// Subscriber, node.
    Subscribe(usize, u8),
    DeleteNode(u8),
    LastSet(usize, u8),
    PrivacySet(usize, u8, u8),
    Block(usize, usize),
    Reopen,
    RemoveUser(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let u = || 0..N;
    let v = || 0..3u8;
    let n = || 0..3u8;
    // Mostly an existing node: random (service, node) pairs would rarely name one.
    let target = || 0..8u8;
    let kind = prop_oneof![Just(Kind::Pep), Just(Kind::Push), Just(Kind::Flat)];
    prop_oneof![
        4 => u().prop_map(Op::Create),
        2 => (u(), u(), v()).prop_map(|(a, b, c)| Op::RosterSet(a, b, c)),
        1 => (u(), u()).prop_map(|(a, b)| Op::RosterRemove(a, b)),
        2 => (u(), v()).prop_map(|(a, b)| Op::VcardSet(a, b)),
        1 => u().prop_map(Op::VcardRemove),
        2 => (u(), v(), v()).prop_map(|(a, b, c)| Op::PrivateSet(a, b, c)),
        2 => (u(), u(), v()).prop_map(|(a, b, c)| Op::OfflineStore(a, b, c)),
        1 => u().prop_map(Op::OfflinePop),
        2 => (u(), u(), v(), any::<bool>()).prop_map(|(a, b, c, d)| Op::InboxMessage(a, b, c, d)),
        1 => (u(), u()).prop_map(|(a, b)| Op::InboxReset(a, b)),
        2 => (u(), u(), v()).prop_map(|(a, b, c)| Op::MamAppend(a, b, c)),
        2 => (u(), v()).prop_map(|(a, b)| Op::MucAppend(a, b)),
        3 => (u(), kind, n()).prop_map(|(a, b, c)| Op::CreateNode(a, b, c)),
        4 => (u(), target(), v(), v()).prop_map(|(a, b, c, d)| Op::Publish(a, b, c, d)),
        3 => (u(), target()).prop_map(|(a, b)| Op::Subscribe(a, b)),
        1 => target().prop_map(Op::DeleteNode),
        1 => (u(), v()).prop_map(|(a, b)| Op::LastSet(a, b)),
        1 => (u(), v(), 0..3u8).prop_map(|(a, b, c)| Op::PrivacySet(a, b, c)),
        1 => (u(), u()).prop_map(|(a, b)| Op::Block(a, b)),
        1 => Just(Op::Reopen),
        2 => u().prop_map(Op::RemoveUser),
    ]
}

/// How an operation ended, as far as the model can tell.
#[derive(Debug, PartialEq, Eq)]
enum Out {
    Ok,
    NoAccount,
    NotFound,
    Exists,
    Invalid,
}

fn out<T>(r: &jidstore::Result<T>) -> Out {
    match r {
        Ok(_) => Out::Ok,
        Err(Error::NoAccount(_)) => Out::NoAccount,
        Err(Error::NotFound(_)) => Out::NotFound,
        Err(Error::AccountExists(_)) => Out::Exists,
        Err(Error::InvalidInput(_)) => Out::Invalid,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// What each user should have. Users, contacts and services are indexes.
#[derive(Default, Debug)]
struct Model {
    accounts: BTreeSet<usize>,
    roster: BTreeMap<usize, BTreeMap<usize, u8>>,
    vcard: BTreeMap<usize, u8>,
    private: BTreeMap<usize, BTreeMap<u8, u8>>,
    offline: BTreeMap<usize, Vec<(usize, u8)>>,
    inbox: BTreeMap<usize, BTreeMap<usize, (u8, u64)>>,
    mam: BTreeMap<usize, Vec<(usize, u8)>>,
    muc: Vec<(usize, u8)>,
    /// (service, node) -> (owner, kind).
    nodes: BTreeMap<(usize, u8), (usize, Kind)>,
    /// (service, node, item) -> (publisher, payload).
    items: BTreeMap<(usize, u8, u8), (usize, u8)>,
    /// (service, node, subscriber).
    subs: BTreeSet<(usize, u8, usize)>,
    last: BTreeMap<usize, u8>,
    privacy: BTreeMap<usize, BTreeMap<u8, u8>>,
    blocked: BTreeMap<usize, BTreeSet<usize>>,
}

impl Model {
    fn has(&self, u: usize) -> Out {
        if self.accounts.contains(&u) {
            Out::Ok
        } else {
            Out::NoAccount
        }
    }

    /// Whether `gdpr::remove(u)` finds anything to remove or keep.
    fn holds_anything(&self, u: usize) -> bool {
        self.accounts.contains(&u)
            || self.subs.iter().any(|s| s.2 == u)
            || self.muc.iter().any(|m| m.0 == u)
            || self.items.values().any(|i| i.0 == u)
            || self.nodes.values().any(|n| n.0 == u)
    }

    /// Removes a node with its items and subscriptions; returns who published or
    /// subscribed there.
    fn delete_node(&mut self, key: (usize, u8)) -> BTreeSet<usize> {
        let mut touched = BTreeSet::new();
        self.nodes.remove(&key);
        self.items.retain(|k, v| {
            let keep = (k.0, k.1) != key;
            if !keep {
                touched.insert(v.0);
            }
            keep
        });
        self.subs.retain(|s| {
            let keep = (s.0, s.1) != key;
            if !keep {
                touched.insert(s.2);
            }
            keep
        });
        touched
    }

    /// Erases `u` as DESIGN.md says; returns the other users whose exports change.
    fn remove_user(&mut self, u: usize) -> BTreeSet<usize> {
        self.accounts.remove(&u);
        self.roster.remove(&u);
        self.vcard.remove(&u);
        self.private.remove(&u);
        self.offline.remove(&u);
        self.inbox.remove(&u);
        self.mam.remove(&u);
        self.last.remove(&u);
        self.privacy.remove(&u);
        self.blocked.remove(&u);
        let gone: Vec<_> = self
            .nodes
            .iter()
            .filter(|(_, (owner, kind))| *owner == u && *kind != Kind::Flat)
            .map(|(k, _)| *k)
            .collect();
        let mut touched = BTreeSet::new();
        for key in gone {
            touched.extend(self.delete_node(key));
        }
        self.subs.retain(|s| s.2 != u);
        touched.remove(&u);
        touched
    }

    /// Rows per export file that `u`'s export should hold.
    fn export_rows(&self, u: usize) -> BTreeMap<&'static str, u64> {
        let len = |n: usize| n as u64;
        let personal_items = self
            .items
            .iter()
            .filter(|((s, n, _), (publisher, _))| {
                *publisher == u
                    || self
                        .nodes
                        .get(&(*s, *n))
                        .is_some_and(|(o, k)| *o == u && *k != Kind::Flat)
            })
            .count();
        let owned = self.nodes.values().filter(|n| n.0 == u).count();
        BTreeMap::from([
            ("accounts.csv", u64::from(self.accounts.contains(&u))),
            (
                "roster.csv",
                len(self.roster.get(&u).map_or(0, BTreeMap::len)),
            ),
            ("vcard.csv", u64::from(self.vcard.contains_key(&u))),
            (
                "private.csv",
                len(self.private.get(&u).map_or(0, BTreeMap::len)),
            ),
            ("offline.csv", len(self.offline.get(&u).map_or(0, Vec::len))),
            (
                "inbox.csv",
                len(self.inbox.get(&u).map_or(0, BTreeMap::len)),
            ),
            ("mam_pm.csv", len(self.mam.get(&u).map_or(0, Vec::len))),
            (
                "mam_muc.csv",
                len(self.muc.iter().filter(|m| m.0 == u).count()),
            ),
            ("pubsub_nodes.csv", len(owned)),
            ("pubsub_items.csv", len(personal_items)),
            (
                "pubsub_subscriptions.csv",
                len(self.subs.iter().filter(|s| s.2 == u).count()),
            ),
            ("pubsub_affiliations.csv", len(owned)),
            ("last.csv", u64::from(self.last.contains_key(&u))),
            (
                "privacy.csv",
                self.privacy
                    .get(&u)
                    .map_or(0, |l| l.values().map(|n| u64::from(*n).max(1)).sum()),
            ),
            (
                "blocklist.csv",
                len(self.blocked.get(&u).map_or(0, BTreeSet::len)),
            ),
            ("generic_kv.csv", 0),
            ("generic_archive.csv", 0),
        ])
    }
}

/// The zip bytes and per-file rows of `u`'s export; `None` when the store holds nothing.
fn export(store: &Store, u: usize) -> Option<(Vec<u8>, BTreeMap<&'static str, u64>)> {
    let mut sink = Cursor::new(Vec::new());
    let options = ExportOptions::default().timestamp(at());
    match gdpr::retrieve(store, &jid(u), &mut sink, &options) {
        Ok(summary) => {
            let rows = summary.files.iter().map(|f| (f.name, f.rows)).collect();
            Some((sink.into_inner(), rows))
        }
        Err(Error::NoPersonalData(_)) => None,
        Err(e) => panic!("export of {} failed: {e}", USERS[u]),
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Compares everything the typed APIs show with the model, runs `verify`, and checks every
/// export's row counts and determinism.
#[expect(clippy::too_many_lines, reason = "one comparison per data class")]
fn check(store: &Store, m: &Model) {
    let report = jidstore::verify(store).unwrap();
    assert!(report.is_clean(), "{report}");
    for (u, name) in USERS.iter().enumerate() {
        let j = jid(u);
        assert_eq!(
            store.accounts().exists(&j).unwrap(),
            m.accounts.contains(&u),
            "{name}"
        );
        let roster: Vec<_> = store
            .roster()
            .list(&j)
            .unwrap()
            .into_iter()
            .map(|i| (i.jid.as_str().to_owned(), i.name))
            .collect();
        let want: Vec<_> = m
            .roster
            .get(&u)
            .into_iter()
            .flatten()
            .map(|(c, n)| (jid(*c).as_str().to_owned(), Some(format!("n{n}"))))
            .collect();
        assert_eq!(sorted(roster), sorted(want), "roster of {name}");
        assert_eq!(
            store.vcard().get(&j).unwrap(),
            m.vcard.get(&u).map(|v| vcard(*v)),
            "vcard of {name}"
        );
        let want: Vec<_> = m
            .private
            .get(&u)
            .into_iter()
            .flatten()
            .map(|(ns, v)| (format!("ns{ns}"), private_xml(*ns, *v)))
            .collect();
        assert_eq!(store.private().list(&j).unwrap(), want, "private of {name}");
        let offline: Vec<_> = store
            .offline()
            .list(&j)
            .unwrap()
            .into_iter()
            .map(|o| (o.from.as_str().to_owned(), o.stanza))
            .collect();
        let want: Vec<_> = m
            .offline
            .get(&u)
            .into_iter()
            .flatten()
            .map(|(f, v)| (jid(*f).as_str().to_owned(), stanza(*v)))
            .collect();
        assert_eq!(offline, want, "offline of {name}");
        let inbox: Vec<_> = store
            .inbox()
            .list(&j)
            .unwrap()
            .into_iter()
            .map(|e| (e.remote.as_str().to_owned(), e.content, e.unread))
            .collect();
        let want: Vec<_> = m
            .inbox
            .get(&u)
            .into_iter()
            .flatten()
            .map(|(r, (v, unread))| (jid(*r).as_str().to_owned(), stanza(*v), *unread))
            .collect();
        assert_eq!(sorted(inbox), sorted(want), "inbox of {name}");
        let mam: Vec<_> = store
            .mam()
            .list(&j)
            .unwrap()
            .into_iter()
            .map(|a| (a.to.as_str().to_owned(), a.stanza))
            .collect();
        let want: Vec<_> = m
            .mam
            .get(&u)
            .into_iter()
            .flatten()
            .map(|(p, v)| (jid(*p).as_str().to_owned(), stanza(*v)))
            .collect();
        assert_eq!(mam, want, "mam of {name}");
        assert_eq!(
            store.last().get(&j).unwrap().map(|l| l.seconds),
            m.last.get(&u).map(|v| i64::from(*v)),
            "last of {name}"
        );
        let lists: Vec<_> = store
            .privacy()
            .list_names(&j)
            .unwrap()
            .into_iter()
            .map(|l| {
                let n = store.privacy().get_list(&j, &l).unwrap().unwrap().len();
                (l, n)
            })
            .collect();
        let want: Vec<_> = m
            .privacy
            .get(&u)
            .into_iter()
            .flatten()
            .map(|(l, n)| (format!("list{l}"), usize::from(*n)))
            .collect();
        assert_eq!(lists, want, "privacy of {name}");
        let blocked: Vec<_> = store
            .blocklist()
            .list(&j)
            .unwrap()
            .into_iter()
            .map(|b| b.as_str().to_owned())
            .collect();
        let want: Vec<_> = m
            .blocked
            .get(&u)
            .into_iter()
            .flatten()
            .map(|b| jid(*b).as_str().to_owned())
            .collect();
        assert_eq!(sorted(blocked), sorted(want), "blocklist of {name}");

        let first = export(store, u);
        let second = export(store, u);
        assert_eq!(
            first.as_ref().map(|e| &e.0),
            second.as_ref().map(|e| &e.0),
            "two exports of {name} with a fixed timestamp differ"
        );
        let want = m.export_rows(u);
        match first {
            Some((_, rows)) => assert_eq!(rows, want, "export rows of {name}"),
            None => assert!(
                want.values().all(|n| *n == 0),
                "no export for {name}, want {want:?}"
            ),
        }
    }

    let muc: Vec<_> = store
        .muc()
        .list(&BareJid::parse(ROOM).unwrap())
        .unwrap()
        .into_iter()
        .map(|mm| (mm.sender.as_str().to_owned(), mm.stanza))
        .collect();
    let want: Vec<_> = m
        .muc
        .iter()
        .map(|(s, v)| (jid(*s).as_str().to_owned(), stanza(*v)))
        .collect();
    assert_eq!(muc, want, "room archive");

    for s in 0..=PUBSUB {
        let svc = service(s);
        let nodes: Vec<_> = store
            .pubsub()
            .nodes(&svc)
            .unwrap()
            .into_iter()
            .map(|n| (n.node, n.owner.as_str().to_owned(), n.kind))
            .collect();
        let want: Vec<_> = m
            .nodes
            .iter()
            .filter(|((sv, _), _)| *sv == s)
            .map(|((_, n), (o, k))| (format!("n{n}"), jid(*o).as_str().to_owned(), k.node_type()))
            .collect();
        assert_eq!(nodes, want, "nodes of {svc}");
        for (&(_, n), &(owner, _)) in m.nodes.range((s, 0)..=(s, u8::MAX)) {
            let node = format!("n{n}");
            let items: Vec<_> = store
                .pubsub()
                .items(&svc, &node)
                .unwrap()
                .into_iter()
                .map(|i| (i.id, i.publisher.as_str().to_owned(), i.payload))
                .collect();
            let want: Vec<_> = m
                .items
                .range((s, n, 0)..=(s, n, u8::MAX))
                .map(|(&(_, _, i), &(p, v))| {
                    (format!("i{i}"), jid(p).as_str().to_owned(), payload(v))
                })
                .collect();
            assert_eq!(items, want, "items of {svc} {node}");
            let subs: Vec<_> = store
                .pubsub()
                .subscriptions(&svc, &node)
                .unwrap()
                .into_iter()
                .map(|x| x.subscriber.as_str().to_owned())
                .collect();
            let want: Vec<_> = m
                .subs
                .iter()
                .filter(|x| x.0 == s && x.1 == n)
                .map(|x| jid(x.2).as_str().to_owned())
                .collect();
            assert_eq!(sorted(subs), sorted(want), "subscriptions of {svc} {node}");
            assert_eq!(
                store.pubsub().affiliations(&svc, &node).unwrap(),
                vec![(jid(owner), Affiliation::Owner)],
                "affiliations of {svc} {node}"
            );
        }
    }
}

fn vcard(v: u8) -> String {
    format!(
        "<vCard xmlns='vcard-temp'><FN>{}</FN></vCard>",
        testing::xml_escape(&tricky(v))
    )
}

fn private_xml(ns: u8, v: u8) -> String {
    format!("<q xmlns='ns{ns}'>{v}</q>")
}

fn payload(v: u8) -> String {
    format!("<p>{v}</p>")
}

fn full(u: usize) -> Jid {
    Jid::parse(USERS[u]).unwrap()
}

/// Which engine a run's store is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Engine {
    /// sled, in a temporary directory.
    Sled,
    /// The in-memory engine: a reopen is not possible, so `Reopen` only checks.
    Memory,
    /// PostgreSQL, a fresh database on the test cluster: `Reopen` connects again.
    #[cfg(feature = "postgres")]
    Postgres,
}

/// A store (in a temporary directory, in memory or in PostgreSQL), the model, and the ops
/// applied so far.
struct Run {
    dir: TempDir,
    store: Option<Store>,
    m: Model,
    engine: Engine,
    /// The database URL of a [`Engine::Postgres`] run.
    url: String,
}

impl Run {
    /// The node an op targets: 0 names a node that never exists, any other value one of
    /// the existing nodes (or that missing one when there are none).
    fn node(m: &Model, target: u8) -> (usize, u8) {
        let nodes: Vec<_> = m.nodes.keys().copied().collect();
        if target == 0 || nodes.is_empty() {
            return (PUBSUB, 9);
        }
        nodes[usize::from(target) % nodes.len()]
    }

    fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    /// Applies one op to the store and the model and checks they agree on its outcome.
    #[expect(clippy::too_many_lines, reason = "one arm per operation")]
    fn apply(&mut self, op: &Op) {
        let st = self.store.clone().unwrap();
        let model = &mut self.m;
        match *op {
            Op::Create(u) => {
                let want = if model.accounts.insert(u) {
                    Out::Ok
                } else {
                    Out::Exists
                };
                assert_eq!(out(&st.accounts().create(&jid(u), "pw")), want);
            }
            Op::RosterSet(u, c, n) => {
                let item = RosterItem {
                    jid: jid(c),
                    name: Some(format!("n{n}")),
                    subscription: Subscription::Both,
                    ask: Ask::None,
                    groups: vec![],
                    askmessage: None,
                };
                let want = model.has(u);
                if want == Out::Ok {
                    model.roster.entry(u).or_default().insert(c, n);
                }
                assert_eq!(out(&st.roster().set(&jid(u), &item)), want);
            }
            Op::RosterRemove(u, c) => {
                let had = model
                    .roster
                    .get_mut(&u)
                    .and_then(|r| r.remove(&c))
                    .is_some();
                assert_eq!(st.roster().remove(&jid(u), &jid(c)).unwrap(), had);
            }
            Op::VcardSet(u, v) => {
                let want = model.has(u);
                if want == Out::Ok {
                    model.vcard.insert(u, v);
                }
                assert_eq!(out(&st.vcard().set(&jid(u), &vcard(v))), want);
            }
            Op::VcardRemove(u) => {
                let had = model.vcard.remove(&u).is_some();
                assert_eq!(st.vcard().remove(&jid(u)).unwrap(), had);
            }
            Op::PrivateSet(u, ns, v) => {
                let want = model.has(u);
                if want == Out::Ok {
                    model.private.entry(u).or_default().insert(ns, v);
                }
                let r = st
                    .private()
                    .set(&jid(u), &format!("ns{ns}"), &private_xml(ns, v));
                assert_eq!(out(&r), want);
            }
            Op::OfflineStore(u, from, v) => {
                let want = model.has(u);
                if want == Out::Ok {
                    model.offline.entry(u).or_default().push((from, v));
                }
                let msg = OfflineMessage {
                    from: full(from),
                    to: full(u),
                    timestamp: at(),
                    expires: None,
                    stanza: stanza(v),
                };
                assert_eq!(out(&st.offline().store(&jid(u), &msg)), want);
            }
            Op::OfflinePop(u) => {
                let popped: Vec<_> = st
                    .offline()
                    .pop_all(&jid(u), at())
                    .unwrap()
                    .into_iter()
                    .map(|o| (o.from.as_str().to_owned(), o.stanza))
                    .collect();
                let want: Vec<_> = model
                    .offline
                    .remove(&u)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(f, v)| (jid(f).as_str().to_owned(), stanza(v)))
                    .collect();
                assert_eq!(popped, want);
            }
            Op::InboxMessage(u, r, v, incoming) => {
                let want = model.has(u);
                if want == Out::Ok {
                    let entry = model.inbox.entry(u).or_default().entry(r).or_insert((v, 0));
                    entry.0 = v;
                    entry.1 = if incoming { entry.1 + 1 } else { 0 };
                }
                let res = st
                    .inbox()
                    .on_message(&jid(u), &jid(r), &stanza(v), None, at(), incoming);
                assert_eq!(out(&res), want);
            }
            Op::InboxReset(u, r) => {
                let res = st.inbox().reset_unread(&jid(u), &jid(r));
                if model.has(u) == Out::Ok {
                    let e = model.inbox.get_mut(&u).and_then(|i| i.get_mut(&r));
                    assert_eq!(res.unwrap(), e.is_some());
                    if let Some(e) = e {
                        e.1 = 0;
                    }
                } else {
                    assert_eq!(out(&res), Out::NoAccount);
                }
            }
            Op::MamAppend(u, peer, v) => {
                let want = model.has(u);
                if want == Out::Ok {
                    model.mam.entry(u).or_default().push((peer, v));
                }
                let msg = PmMessage {
                    id: None,
                    timestamp: at(),
                    from: full(u),
                    to: full(peer),
                    direction: Direction::Outgoing,
                    origin_id: None,
                    stanza: stanza(v),
                };
                assert_eq!(out(&st.mam().append(&jid(u), &msg)), want);
            }
            Op::MucAppend(u, v) => {
                model.muc.push((u, v));
                let msg = MucMessage {
                    id: None,
                    timestamp: at(),
                    sender: jid(u),
                    nick: format!("nick{u}"),
                    stanza: stanza(v),
                };
                st.muc()
                    .append(&BareJid::parse(ROOM).unwrap(), &msg)
                    .unwrap();
            }
            Op::CreateNode(u, kind, n) => {
                let s = if kind == Kind::Pep { u } else { PUBSUB };
                let want = if model.has(u) == Out::NoAccount {
                    Out::NoAccount
                } else if let std::collections::btree_map::Entry::Vacant(e) =
                    model.nodes.entry((s, n))
                {
                    e.insert((u, kind));
                    Out::Ok
                } else {
                    Out::Invalid
                };
                let node = Node {
                    service: service(s),
                    node: format!("n{n}"),
                    owner: jid(u),
                    kind: kind.node_type(),
                    access_model: "open".into(),
                    config: vec![],
                    created_at: at(),
                };
                assert_eq!(out(&st.pubsub().create_node(&node)), want);
            }
            Op::Publish(u, target, item, v) => {
                let (s, n) = Run::node(model, target);
                let want = if model.nodes.contains_key(&(s, n)) {
                    model.items.insert((s, n, item), (u, v));
                    Out::Ok
                } else {
                    Out::NotFound
                };
                let res = st.pubsub().publish(
                    &service(s),
                    &format!("n{n}"),
                    &format!("i{item}"),
                    &jid(u),
                    &payload(v),
                    at(),
                );
                assert_eq!(out(&res), want);
            }
            Op::Subscribe(u, target) => {
                let (s, n) = Run::node(model, target);
                let want = if model.nodes.contains_key(&(s, n)) {
                    model.subs.insert((s, n, u));
                    Out::Ok
                } else {
                    Out::NotFound
                };
                let res = st.pubsub().subscribe(
                    &service(s),
                    &format!("n{n}"),
                    &jid(u),
                    SubState::Subscribed,
                );
                assert_eq!(out(&res), want);
            }
            Op::DeleteNode(target) => {
                let (s, n) = Run::node(model, target);
                let had = model.nodes.contains_key(&(s, n));
                model.delete_node((s, n));
                assert_eq!(
                    st.pubsub()
                        .delete_node(&service(s), &format!("n{n}"))
                        .unwrap(),
                    had
                );
            }
            Op::LastSet(u, v) => {
                let want = model.has(u);
                if want == Out::Ok {
                    model.last.insert(u, v);
                }
                assert_eq!(out(&st.last().set(&jid(u), i64::from(v), "away")), want);
            }
            Op::PrivacySet(u, l, n) => {
                let want = model.has(u);
                if want == Out::Ok {
                    model.privacy.entry(u).or_default().insert(l, n);
                }
                let items: Vec<_> = (0..u32::from(n))
                    .map(|order| PrivacyItem {
                        order,
                        kind: None,
                        value: None,
                        action: PrivacyAction::Deny,
                        message: true,
                        iq: false,
                        presence_in: false,
                        presence_out: false,
                    })
                    .collect();
                let res = st.privacy().set_list(&jid(u), &format!("list{l}"), &items);
                assert_eq!(out(&res), want);
            }
            Op::Block(u, c) => {
                let want = model.has(u);
                if want == Out::Ok {
                    model.blocked.entry(u).or_default().insert(c);
                }
                assert_eq!(out(&st.blocklist().block(&jid(u), &[full(c)])), want);
            }
            Op::Reopen if self.engine == Engine::Memory => check(self.store(), &self.m),
            Op::Reopen => {
                drop(st);
                let store = self.store.take().unwrap();
                self.store = Some(match self.engine {
                    #[cfg(feature = "postgres")]
                    Engine::Postgres => {
                        drop(store);
                        open_database(&self.url)
                    }
                    _ => util::reopen(&self.dir, store),
                });
                check(self.store(), &self.m);
            }
            Op::RemoveUser(u) => self.remove_user(u),
        }
    }

    fn remove_user(&mut self, u: usize) {
        let store = self.store.clone().unwrap();
        let before: Vec<_> = (0..N).map(|v| export(&store, v).map(|e| e.0)).collect();
        let want_ok = self.m.holds_anything(u);
        let res = gdpr::remove(&store, &jid(u));
        match (&res, want_ok) {
            (Ok(_), true) | (Err(Error::NoPersonalData(_)), false) => {}
            _ => panic!("remove {}: {res:?}, model expects ok={want_ok}", USERS[u]),
        }
        let touched = self.m.remove_user(u);
        check(&store, &self.m);
        if let Some((_, rows)) = export(&store, u) {
            for (file, n) in rows {
                assert!(
                    n == 0 || KEPT.contains(&file),
                    "{} still has {n} rows in {file} after erasure",
                    USERS[u]
                );
            }
        }
        for v in (0..N).filter(|v| *v != u && !touched.contains(v)) {
            assert!(
                export(&store, v).map(|e| e.0) == before[v],
                "export of {} changed when {} was erased",
                USERS[v],
                USERS[u]
            );
        }
    }
}

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        // Unoptimised builds derive SCRAM verifiers (PBKDF2, 10k rounds) some 30x slower:
        // a quarter of the cases keeps `cargo test` in minutes; CI runs the release build.
        .unwrap_or(if cfg!(debug_assertions) { 64 } else { 256 });
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn store_matches_model(
        created in proptest::collection::btree_set(0..N, 0..N),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        model_run(Engine::Sled, created, &ops);
    }

    /// The same model against the in-memory engine ([`jidstore::Config::in_memory`]).
    #[test]
    fn memory_store_matches_model(
        created in proptest::collection::btree_set(0..N, 0..N),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        model_run(Engine::Memory, created, &ops);
    }
}

/// A store on the PostgreSQL database at `url` (created or reopened).
#[cfg(feature = "postgres")]
fn open_database(url: &str) -> Store {
    jidstore::Config::database(url)
        .scram_iterations(16)
        .open()
        .expect("open the store on PostgreSQL")
}

#[cfg(feature = "postgres")]
proptest! {
    // An eighth of the cases: each one creates a database and its tables.
    #![proptest_config(ProptestConfig::with_cases((config().cases / 8).max(1)))]

    /// The same model on PostgreSQL ([`jidstore::Config::database`]), a fresh database per
    /// case; `Reopen` drops the store and connects again.
    #[test]
    fn postgres_store_matches_model(
        created in proptest::collection::btree_set(0..N, 0..N),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        model_run(Engine::Postgres, created, &ops);
    }

    /// Whole generated deployments on PostgreSQL, with a reopen before the check.
    #[test]
    fn postgres_deployments_keep_gdpr_invariants(
        (d, subject) in testing::deployment_and_subject(),
    ) {
        let Some(url) = pg::database() else { return Ok(()) };
        let store = open_database(&url);
        d.apply(&store).unwrap();
        drop(store);
        let store = open_database(&url);
        let check = testing::check_gdpr(&store, &d, &subject);
        prop_assert!(check.is_ok(), "{}", check.unwrap_err());
        let check = check.unwrap();
        prop_assert_eq!(check.before["accounts.csv"], 1);
        prop_assert_eq!(check.after.get("accounts.csv").copied().unwrap_or(0), 0);
    }
}

fn model_run(engine: Engine, created: BTreeSet<usize>, ops: &[Op]) {
    let (dir, store) = util::store();
    let mut url = String::new();
    let store = match engine {
        Engine::Sled => store,
        Engine::Memory => jidstore::Config::in_memory().open().unwrap(),
        #[cfg(feature = "postgres")]
        Engine::Postgres => {
            // JIDSTORE_SKIP_PG=1: nothing to run against.
            let Some(u) = pg::database() else { return };
            url = u;
            open_database(&url)
        }
    };
    let mut run = Run {
        dir,
        store: Some(store),
        m: Model::default(),
        engine,
        url,
    };
    // Most sequences start with some accounts, so writes mostly land.
    for u in created {
        run.apply(&Op::Create(u));
    }
    for op in ops {
        run.apply(op);
    }
    check(run.store(), &run.m);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases((config().cases / 4).max(1)))]

    /// Whole generated deployments: apply, reopen, then `testing::check_gdpr` (exports
    /// match the deployment; after erasure only kept classes remain for the subject, others
    /// unchanged except documented cross-user effects; `verify` clean throughout).
    #[test]
    fn deployments_keep_gdpr_invariants((d, subject) in testing::deployment_and_subject()) {
        let (dir, store) = util::store();
        d.apply(&store).unwrap();
        let store = util::reopen(&dir, store);
        let check = testing::check_gdpr(&store, &d, &subject);
        prop_assert!(check.is_ok(), "{}", check.unwrap_err());
        let check = check.unwrap();
        prop_assert_eq!(check.before["accounts.csv"], 1);
        prop_assert_eq!(check.after.get("accounts.csv").copied().unwrap_or(0), 0);
    }

    /// The same on the in-memory engine (no reopen: nothing outlives the handle).
    #[test]
    fn memory_deployments_keep_gdpr_invariants((d, subject) in testing::deployment_and_subject()) {
        let store = jidstore::Config::in_memory().open().unwrap();
        d.apply(&store).unwrap();
        let check = testing::check_gdpr(&store, &d, &subject);
        prop_assert!(check.is_ok(), "{}", check.unwrap_err());
        let check = check.unwrap();
        prop_assert_eq!(check.before["accounts.csv"], 1);
        prop_assert_eq!(check.after.get("accounts.csv").copied().unwrap_or(0), 0);
    }
}
