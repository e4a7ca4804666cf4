//! The reference model of the store, shared by jidstore's property test
//! (`tests/prop_model.rs`, operations from [`op`]) and its model fuzz target
//! (`fuzz/fuzz_targets/model.rs`, operations from [`Op::from_bytes`]).
//!
//! [`run`] applies a sequence of [`Op`]s to a store and to an in-memory [`Model`] (ordered
//! maps of small indexes) and compares them:
//!
//! - after every operation, its outcome (done, no account, not found, exists, refused) is
//!   the one the model predicts;
//! - after every [`Op::Reopen`] and at the end, every typed read of every user equals the
//!   model (1-1 archives also through paged, `with` and by-id queries), `verify` is clean,
//!   every export has the rows the model predicts and is byte-identical when taken twice;
//! - after every erasure, the subject's export holds rows only in [`KEPT_FILES`], the
//!   group-chat messages it sent are still there, and every other user's export is
//!   byte-identical to before except for the users the model says are touched (they
//!   published or subscribed on the subject's PEP and push nodes, which go).
//!
//! The users are [`LOOKALIKES`] (prefix-sharing JIDs, one typed in upper case); stanzas and
//! vCards carry [`TRICKY_PIECES`]. User indexes in an [`Op`] are below [`USERS`]`.len()`.

mod check;
mod state;
mod step;

use std::collections::BTreeSet;
use std::fmt;

use proptest::prelude::*;

use super::{KEPT_FILES, LOOKALIKES, TRICKY_PIECES};
use crate::error::Error;
use crate::ext::pubsub::NodeType;
use crate::jid::{BareJid, Jid};
use crate::store::Store;
use crate::time::Timestamp;

pub use state::Model;

/// The model's users: they share prefixes (`a@h` / `a@h.org` / `ab@h` / `a@hh`) and one is
/// typed in upper case (`A@h.org`).
pub const USERS: [&str; 5] = LOOKALIKES;
/// How many users there are.
const N: usize = USERS.len();
/// The service index of the shared pubsub service; lower indexes are the users' PEP
/// services.
const PUBSUB: usize = N;
/// The group-chat room of [`Op::MucAppend`].
const ROOM: &str = "r@muc.h";
/// The most messages one [`Op::MamBulk`] appends.
const MAX_BULK: usize = 64;

/// The kind of a pubsub node the model creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A user's PEP node (on the owner's own service): erased with its owner.
    Pep,
    /// A push node on the shared service: erased with its owner.
    Push,
    /// A flat node on the shared service: kept when its owner is erased.
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

/// One operation on the store. Users and contacts are indexes into [`USERS`]; `u8` values
/// pick distinct contents (stanzas, names, namespaces, node and item names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Creates an account.
    Create(usize),
    /// Sets a roster item: owner, contact, name.
    RosterSet(usize, usize, u8),
    /// Removes a roster item: owner, contact.
    RosterRemove(usize, usize),
    /// Sets a vCard.
    VcardSet(usize, u8),
    /// Removes a vCard.
    VcardRemove(usize),
    /// Sets private XML: owner, namespace, content.
    PrivateSet(usize, u8, u8),
    /// Stores an offline message: owner, sender, stanza.
    OfflineStore(usize, usize, u8),
    /// Pops every offline message.
    OfflinePop(usize),
    /// An inbox conversation update: owner, remote, stanza, incoming.
    InboxMessage(usize, usize, u8, bool),
    /// Resets a conversation's unread count: owner, remote.
    InboxReset(usize, usize),
    /// Appends to the 1-1 archive: owner, peer, stanza.
    MamAppend(usize, usize, u8),
    /// Appends messages with imported ids `x<byte>` in one call: a duplicate (inside the
    /// call or with the archive) refuses the whole call.
    MamBulk(usize, Vec<u8>),
    /// Removes the archive's message at this position (modulo its length).
    MamRemove(usize, u8),
    /// Appends to the group-chat room: sender, stanza.
    MucAppend(usize, u8),
    /// Creates a node: owner, kind, node name.
    CreateNode(usize, Kind, u8),
    /// Publisher, node (0: a node that never exists, else one of the existing ones),
    /// item, payload.
    Publish(usize, u8, u8, u8),
    /// Subscriber, node (as for [`Op::Publish`]).
    Subscribe(usize, u8),
    /// Deletes a node (as for [`Op::Publish`]).
    DeleteNode(u8),
    /// Sets last activity.
    LastSet(usize, u8),
    /// Sets a privacy list: owner, list name, item count.
    PrivacySet(usize, u8, u8),
    /// Blocks a contact.
    Block(usize, usize),
    /// Unblocks a contact.
    Unblock(usize, usize),
    /// Closes the store and opens it again (the caller's `reopen`), then checks everything.
    Reopen,
    /// Erases a user (`gdpr::remove`).
    RemoveUser(usize),
}

impl Op {
    /// Decodes one operation from five bytes (the fuzz target's input): the first picks the
    /// operation, the others its arguments, reduced to the model's small domains.
    #[expect(
        clippy::many_single_char_names,
        reason = "five bytes and two reductions"
    )]
    pub fn from_bytes(b: [u8; 5]) -> Op {
        let [k, a, c, d, e] = b;
        let u = |x: u8| usize::from(x) % N;
        let v = |x: u8| x % 4;
        let kind = match c % 3 {
            0 => Kind::Pep,
            1 => Kind::Push,
            _ => Kind::Flat,
        };
        match k % 24 {
            0 | 1 => Op::Create(u(a)),
            2 => Op::RosterSet(u(a), u(c), v(d)),
            3 => Op::RosterRemove(u(a), u(c)),
            4 => Op::VcardSet(u(a), v(c)),
            5 => Op::VcardRemove(u(a)),
            6 => Op::PrivateSet(u(a), c % 3, v(d)),
            7 => Op::OfflineStore(u(a), u(c), v(d)),
            8 => Op::OfflinePop(u(a)),
            9 => Op::InboxMessage(u(a), u(c), v(d), e % 2 == 0),
            10 => Op::InboxReset(u(a), u(c)),
            11 => Op::MamAppend(u(a), u(c), v(d)),
            12 => Op::MamBulk(
                u(a),
                [c, d, e]
                    .into_iter()
                    .take(usize::from(a >> 4) % 4)
                    .collect(),
            ),
            13 => Op::MamRemove(u(a), c),
            14 => Op::MucAppend(u(a), v(c)),
            15 => Op::CreateNode(u(a), kind, d % 3),
            16 => Op::Publish(u(a), c % 8, d % 3, v(e)),
            17 => Op::Subscribe(u(a), c % 8),
            18 => Op::DeleteNode(a % 8),
            19 => Op::LastSet(u(a), v(c)),
            20 => Op::PrivacySet(u(a), c % 3, d % 3),
            21 => Op::Block(u(a), u(c)),
            22 => Op::Unblock(u(a), u(c)),
            _ if a % 2 == 0 => Op::Reopen,
            _ => Op::RemoveUser(u(a)),
        }
    }
}

/// Random operations for the property test, weighted towards writes that land.
pub fn op() -> impl Strategy<Value = Op> {
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
        1 => (u(), proptest::collection::vec(0..6u8, 0..4)).prop_map(|(a, b)| Op::MamBulk(a, b)),
        1 => (u(), any::<u8>()).prop_map(|(a, b)| Op::MamRemove(a, b)),
        2 => (u(), v()).prop_map(|(a, b)| Op::MucAppend(a, b)),
        3 => (u(), kind, n()).prop_map(|(a, b, c)| Op::CreateNode(a, b, c)),
        4 => (u(), target(), v(), v()).prop_map(|(a, b, c, d)| Op::Publish(a, b, c, d)),
        3 => (u(), target()).prop_map(|(a, b)| Op::Subscribe(a, b)),
        1 => target().prop_map(Op::DeleteNode),
        1 => (u(), v()).prop_map(|(a, b)| Op::LastSet(a, b)),
        1 => (u(), v(), 0..3u8).prop_map(|(a, b, c)| Op::PrivacySet(a, b, c)),
        1 => (u(), u()).prop_map(|(a, b)| Op::Block(a, b)),
        1 => (u(), u()).prop_map(|(a, b)| Op::Unblock(a, b)),
        1 => Just(Op::Reopen),
        2 => u().prop_map(Op::RemoveUser),
    ]
}

/// Where the store and the model first disagreed (or an operation failed that the model
/// says cannot), as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Divergence(String);

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Divergence {}

impl From<Error> for Divergence {
    fn from(e: Error) -> Self {
        Divergence(format!("unexpected store error: {e}"))
    }
}

/// Returns a [`Divergence`] with the message unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Divergence(format!($($msg)+)));
        }
    };
}

/// Returns a [`Divergence`] naming both values unless the store's equals the model's.
macro_rules! ensure_eq {
    ($store:expr, $model:expr, $($msg:tt)+) => {{
        let (store, model) = (&$store, &$model);
        if store != model {
            return Err(Divergence(format!(
                "{}: store {store:?}, model {model:?}",
                format_args!($($msg)+)
            )));
        }
    }};
}
use {ensure, ensure_eq};

/// Runs the accounts `created`, then `ops`, on `store` and a fresh [`Model`], then checks
/// everything. `reopen` takes the store at each [`Op::Reopen`] and returns it reopened
/// (from disk, a new connection, or the same handle for the in-memory engine).
pub fn run(
    store: Store,
    created: &BTreeSet<usize>,
    ops: &[Op],
    mut reopen: impl FnMut(Store) -> Store,
) -> Result<(), Divergence> {
    let mut store = store;
    let mut model = Model::default();
    // Most sequences start with some accounts, so writes mostly land.
    for &u in created {
        step::apply(&store, &mut model, &Op::Create(u))?;
    }
    for op in ops {
        if *op == Op::Reopen {
            store = reopen(store);
            check::check(&store, &model)?;
        } else {
            step::apply(&store, &mut model, op)?;
        }
    }
    check::check(&store, &model)
}

/// The typed text of user `u`.
fn name(u: usize) -> &'static str {
    USERS.get(u % N).copied().unwrap_or_default()
}

/// User `u`'s JID.
#[expect(clippy::expect_used, reason = "USERS are fixed, valid JIDs")]
fn jid(u: usize) -> BareJid {
    BareJid::parse(name(u)).expect("a fixed JID")
}

/// User `u`'s JID as a [`Jid`] (messages' `from` and `to`, blocklist entries).
#[expect(clippy::expect_used, reason = "USERS are fixed, valid JIDs")]
fn full(u: usize) -> Jid {
    Jid::parse(name(u)).expect("a fixed JID")
}

/// Service `s`: a user's PEP service, or the shared one at [`PUBSUB`].
fn service(s: usize) -> BareJid {
    if s == PUBSUB {
        BareJid::parse(super::PUBSUB_SERVICE).unwrap_or_else(|_| jid(0))
    } else {
        jid(s)
    }
}

#[expect(clippy::expect_used, reason = "a fixed JID")]
fn room() -> BareJid {
    BareJid::parse(ROOM).expect("a fixed JID")
}

fn at() -> Timestamp {
    Timestamp::from_secs(1_700_000_000)
}

/// Distinct per `v`, with CSV- and XML-hostile text in it.
fn tricky(v: u8) -> String {
    let piece = TRICKY_PIECES
        .get(usize::from(v) * 7 % TRICKY_PIECES.len())
        .copied()
        .unwrap_or_default();
    format!("{piece}{v}")
}

fn stanza(v: u8) -> String {
    super::message_stanza("x@h/r", "y@h", &tricky(v))
}

fn vcard(v: u8) -> String {
    format!(
        "<vCard xmlns='vcard-temp'><FN>{}</FN></vCard>",
        super::xml_escape(&tricky(v))
    )
}

fn private_xml(ns: u8, v: u8) -> String {
    format!("<q xmlns='ns{ns}'>{v}</q>")
}

fn payload(v: u8) -> String {
    format!("<p>{v}</p>")
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}
