//! Property-test strategies and a GDPR invariant checker, for the test suites of servers
//! that embed jidstore (cargo feature `proptest`).
//!
//! These are the strategies jidstore's own property tests use:
//!
//! - JIDs: [`bare_jid`] (valid input text in random case: prefix-sharing look-alikes such as
//!   `a@h` / `a@h.org` / `ab@h` / `a@hh`, IDN domains, generated names), [`hostile_jid`]
//!   (text [`BareJid::parse`] must refuse), [`lookalike_users`].
//! - Data: [`tricky_text`] (quotes, commas, CR/LF, non-ASCII, `=`-leading cells),
//!   [`stanza`] / [`message_stanza`], [`roster`], [`archive_clock`], [`pm_archive`],
//!   [`muc_archive`].
//! - Whole deployments: [`deployment`] generates several users with every data class
//!   (accounts, rosters, vCards, private XML, offline messages, inboxes, 1-1 and group-chat
//!   archives, PEP / push / flat pubsub nodes with items and subscriptions, last activity,
//!   privacy lists, blocklists) and the cross-user links between them.
//!
//! [`check_gdpr`] then runs retrieve and unregister on a [`Deployment`] applied to a store
//! and checks every promise of the GDPR layer; it returns a [`Violation`] naming the first
//! one broken. See the README section "Property-test strategies for server authors" for an
//! example to paste into a server's tests.

mod check;
pub mod model;

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::select;

use crate::ext::mam::{Direction, MucMessage, PmMessage};
use crate::ext::offline::OfflineMessage;
use crate::ext::privacy::{PrivacyAction, PrivacyItem};
use crate::ext::pubsub::{Node, NodeType, SubState};
use crate::ext::roster::{Ask, RosterItem, Subscription};
use crate::jid::{BareJid, Jid};
use crate::store::Store;
use crate::time::Timestamp;

pub use check::{GdprCheck, KEPT_FILES, Phase, Violation, check_gdpr, check_gdpr_with};

/// Distinct users whose JIDs share prefixes (`a@h` / `a@h.org` / `ab@h` / `a@hh`) or differ
/// only in case from what is typed (`A@h.org` is `a@h.org`): no one may see another's data.
pub const LOOKALIKES: [&str; 5] = ["a@h", "A@h.org", "ab@h", "a@hh", "b@h"];

/// Users on internationalised domains (and with non-ASCII localparts), as typed.
pub const IDN_JIDS: [&str; 3] = [
    "m\u{fc}ller@b\u{fc}cher.example",
    "\u{3b1}\u{3b2}@\u{3b5}\u{3bb}.example",
    "\u{5c71}\u{7530}@\u{4f8b}\u{3048}.jp",
];

/// JIDs the store never holds an account for: remote contacts, publishers, room occupants.
pub const OUTSIDERS: [&str; 2] = ["peer@remote.example", "a@h.remote"];

/// Group-chat rooms.
pub const ROOMS: [&str; 2] = ["r@muc.h", "lounge@conference.h.org"];

/// The shared pubsub service that holds push and flat nodes.
pub const PUBSUB_SERVICE: &str = "pubsub.h";

/// Text that must be refused by [`BareJid::parse`].
pub const HOSTILE_JIDS: [&str; 22] = [
    "",
    "@",
    "@h",
    "a@",
    "a@@h",
    "a@h@h",
    "a@h/res",
    "a@h/",
    "a\u{0}@h",
    "a@h\u{0}",
    "a b@h",
    "a\"b@h",
    "a&b@h",
    "a'b@h",
    "a:b@h",
    "a<b@h",
    "a>b@h",
    "a\u{7}b@h",
    "/res",
    "a\u{0}",
    "\u{0}@h",
    "a@h/\u{0}",
];

/// Pieces [`tricky_text`] is made of: every character class that has broken a CSV or XML
/// writer somewhere.
pub const TRICKY_PIECES: [&str; 22] = [
    "\"",
    "'",
    ",",
    "\r\n",
    "\n",
    "\r",
    "\t",
    "=SUM(A1:A9)",
    "=1+2",
    "+cmd",
    "-1",
    "@x",
    " ",
    "a",
    "\u{e9}",
    "\u{4e2d}\u{6587}",
    "\u{1f600}",
    "<",
    ">",
    "&",
    "]]>",
    "\u{202e}",
];

/// Escapes text for XML character data and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Randomly upper- or lower-cases each character of `s` (the store must normalise).
pub fn case_variant(s: &'static str) -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<bool>(), s.chars().count()).prop_map(move |upper| {
        s.chars()
            .zip(upper)
            .map(|(c, up)| {
                if up {
                    c.to_uppercase().collect::<String>()
                } else {
                    c.to_lowercase().collect::<String>()
                }
            })
            .collect()
    })
}

/// Valid bare-JID text as a user might type it: a look-alike, an IDN JID or a generated
/// name, in random case. Parses with [`BareJid::parse`].
pub fn bare_jid_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(&LOOKALIKES[..]).prop_flat_map(case_variant),
        1 => select(&IDN_JIDS[..]).prop_flat_map(case_variant),
        2 => "[a-zA-Z0-9._-]{1,10}@[a-zA-Z]{1,8}(\\.[a-z]{2,4})?",
    ]
}

/// A valid, normalised bare JID (see [`bare_jid_text`]).
pub fn bare_jid() -> impl Strategy<Value = BareJid> {
    bare_jid_text().prop_filter_map("valid bare JID", |s| BareJid::parse(&s).ok())
}

/// Text that [`BareJid::parse`] must refuse: the fixed [`HOSTILE_JIDS`], and valid
/// localparts with a forbidden character (NUL, space, a quote, `&`, `:`, `<`, `>`, `@`,
/// `/`, a control character) inserted, or longer than the 1023 bytes a part may have.
pub fn hostile_jid() -> impl Strategy<Value = String> {
    let forbidden = select(
        &[
            '\u{0}', ' ', '"', '&', '\'', ':', '<', '>', '@', '/', '\u{7}',
        ][..],
    );
    prop_oneof![
        2 => select(&HOSTILE_JIDS[..]).prop_map(str::to_owned),
        3 => ("[a-z]{1,6}", forbidden, "[a-z]{0,6}", "[a-z]{1,6}")
            .prop_map(|(a, c, b, d)| format!("{a}{c}{b}@{d}")),
        1 => (1024..1100usize).prop_map(|n| format!("{}@h", "a".repeat(n))),
        1 => (1024..1100usize).prop_map(|n| format!("a@{}", "h".repeat(n))),
    ]
}

/// Up to 6 of [`TRICKY_PIECES`] joined, sometimes starting with `=` (a spreadsheet formula).
pub fn tricky_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        proptest::collection::vec(select(&TRICKY_PIECES[..]), 0..6),
    )
        .prop_map(|(formula, pieces)| {
            let mut s = if formula {
                "=".to_owned()
            } else {
                String::new()
            };
            s.extend(pieces);
            s
        })
}

/// A well-formed chat message stanza with `text` as its body.
pub fn message_stanza(from: &str, to: &str, text: &str) -> String {
    format!(
        "<message from='{}' to='{}' type='chat'><body>{}</body></message>",
        xml_escape(from),
        xml_escape(to),
        xml_escape(text)
    )
}

/// Well-formed message stanzas between `from` and `to` with [`tricky_text`] bodies.
pub fn stanza(from: &BareJid, to: &BareJid) -> impl Strategy<Value = String> + use<> {
    let (from, to) = (from.to_string(), to.to_string());
    tricky_text().prop_map(move |t| message_stanza(&from, &to, &t))
}

/// A roster over `contacts`: at most one item per contact, with tricky names and groups.
pub fn roster(contacts: Vec<BareJid>) -> impl Strategy<Value = Vec<RosterItem>> {
    let item = (
        select(contacts),
        proptest::option::of(tricky_text()),
        select(
            &[
                Subscription::None,
                Subscription::To,
                Subscription::From,
                Subscription::Both,
            ][..],
        ),
        select(&[Ask::None, Ask::Out][..]),
        proptest::collection::btree_set(select(&["Friends", "=Work", "caf\u{e9}"][..]), 0..3),
    )
        .prop_map(|(jid, name, subscription, ask, groups)| RosterItem {
            jid,
            name,
            subscription,
            ask,
            groups: groups.into_iter().map(str::to_owned).collect(),
            askmessage: None,
        });
    proptest::collection::vec(item, 0..4).prop_map(|items| {
        let by_contact: BTreeMap<BareJid, RosterItem> =
            items.into_iter().map(|i| (i.jid.clone(), i)).collect();
        by_contact.into_values().collect()
    })
}

/// `len` message timestamps from a clock that stands still (equal timestamps) and jumps
/// back (out-of-order clocks) as often as it moves on.
pub fn archive_clock(len: usize) -> impl Strategy<Value = Vec<Timestamp>> {
    proptest::collection::vec(
        prop_oneof![2 => Just(0i64), 1 => 1..120i64, 1 => -120..0i64],
        len,
    )
    .prop_map(|steps| {
        let mut t = 1_700_000_000i64;
        steps
            .into_iter()
            .map(|s| {
                t += s;
                Timestamp::from_secs(t)
            })
            .collect()
    })
}

/// A 1-1 archive of `owner` with `peers` (non-empty): both directions, tricky bodies,
/// equal and backwards timestamps, some imported ids (`imp-N`, unique).
pub fn pm_archive(owner: BareJid, peers: Vec<BareJid>) -> impl Strategy<Value = Vec<PmMessage>> {
    (0..6usize).prop_flat_map(move |len| {
        let owner = owner.clone();
        (
            archive_clock(len),
            proptest::collection::vec(
                (
                    select(peers.clone()),
                    any::<bool>(),
                    any::<bool>(),
                    tricky_text(),
                ),
                len,
            ),
        )
            .prop_map(move |(times, msgs)| {
                times
                    .into_iter()
                    .zip(msgs)
                    .enumerate()
                    .filter_map(|(n, (timestamp, (peer, incoming, imported, text)))| {
                        let me = Jid::parse(&format!("{owner}/home")).ok()?;
                        let them = Jid::parse(&format!("{peer}/r")).ok()?;
                        let (from, to, direction) = if incoming {
                            (them, me, Direction::Incoming)
                        } else {
                            (me, them, Direction::Outgoing)
                        };
                        Some(PmMessage {
                            id: imported.then(|| format!("imp-{n}")),
                            timestamp,
                            stanza: message_stanza(from.as_str(), to.as_str(), &text),
                            from,
                            to,
                            direction,
                            origin_id: None,
                        })
                    })
                    .collect()
            })
    })
}

/// Group-chat messages in `room` sent by `senders` (non-empty), with nicknames derived
/// from the sender, tricky bodies and equal and backwards timestamps.
pub fn muc_archive(room: BareJid, senders: Vec<BareJid>) -> impl Strategy<Value = Vec<MucMessage>> {
    (0..6usize).prop_flat_map(move |len| {
        let room = room.clone();
        (
            archive_clock(len),
            proptest::collection::vec((select(senders.clone()), tricky_text()), len),
        )
            .prop_map(move |(times, msgs)| {
                times
                    .into_iter()
                    .zip(msgs)
                    .map(|(timestamp, (sender, text))| {
                        let nick = format!("={}", sender.node().unwrap_or("n"));
                        let body = xml_escape(&text);
                        MucMessage {
                            id: None,
                            timestamp,
                            stanza: format!(
                                "<message from='{}/{}' type='groupchat'><body>{body}</body></message>",
                                xml_escape(room.as_str()),
                                xml_escape(&nick)
                            ),
                            sender,
                            nick,
                        }
                    })
                    .collect()
            })
    })
}

/// 1 to 5 distinct users from [`LOOKALIKES`] and [`IDN_JIDS`] (as typed in random case,
/// normalised), always including at least one prefix-sharing pair when there are two.
pub fn lookalike_users() -> impl Strategy<Value = Vec<BareJid>> {
    let pool: Vec<&'static str> = LOOKALIKES.iter().chain(IDN_JIDS.iter()).copied().collect();
    proptest::sample::subsequence(pool, 1..=5)
        .prop_flat_map(|picked| picked.into_iter().map(case_variant).collect::<Vec<_>>())
        .prop_map(|typed| {
            let mut users: Vec<BareJid> = typed
                .iter()
                .filter_map(|t| BareJid::parse(t).ok())
                .collect();
            users.sort();
            users.dedup();
            users
        })
        .prop_filter("at least one user", |u| !u.is_empty())
}

/// Everything generated for one user (who has an account).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct User {
    /// The user.
    pub jid: BareJid,
    /// Roster items, one per contact.
    pub roster: Vec<RosterItem>,
    /// The vCard.
    pub vcard: Option<String>,
    /// Private XML as (namespace, XML), one per namespace.
    pub private: Vec<(String, String)>,
    /// Offline messages.
    pub offline: Vec<OfflineMessage>,
    /// Inbox conversations: remote, last message, incoming; one per remote.
    pub inbox: Vec<(BareJid, String, bool)>,
    /// The 1-1 archive.
    pub archive: Vec<PmMessage>,
    /// Last activity: seconds, status.
    pub last: Option<(i64, String)>,
    /// Privacy lists: name, items (at least one).
    pub privacy: Vec<(String, Vec<PrivacyItem>)>,
    /// Blocked JIDs, distinct.
    pub blocked: Vec<Jid>,
}

/// A pubsub node with what was published and subscribed on it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PubsubNode {
    /// The node (its owner gets the owner affiliation).
    pub node: Node,
    /// Items: id, publisher, payload XML; ids distinct.
    pub items: Vec<(String, BareJid, String)>,
    /// Subscribers, distinct.
    pub subscribers: Vec<BareJid>,
}

/// A group-chat room's archive.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Room {
    /// The room.
    pub jid: BareJid,
    /// Its messages, in archive order.
    pub messages: Vec<MucMessage>,
}

/// A whole generated deployment: users with every data class, rooms and pubsub nodes that
/// link them (and [`OUTSIDERS`]). [`Deployment::apply`] writes it to an empty store;
/// [`Deployment::expected_rows`] says what each JID's export holds.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Deployment {
    /// Users, distinct, each with an account.
    pub users: Vec<User>,
    /// Group-chat rooms.
    pub rooms: Vec<Room>,
    /// Pubsub nodes (PEP nodes on their owner's JID, push and flat on [`PUBSUB_SERVICE`]).
    pub nodes: Vec<PubsubNode>,
}

fn parse_all(list: &[&str]) -> Vec<BareJid> {
    list.iter().filter_map(|s| BareJid::parse(s).ok()).collect()
}

fn xml_of(tag: &str, ns: &str, text: &str) -> String {
    format!("<{tag} xmlns='{ns}'>{}</{tag}>", xml_escape(text))
}

fn user_data(jid: BareJid, everyone: Vec<BareJid>) -> impl Strategy<Value = User> {
    let at = Timestamp::from_secs(1_700_000_000);
    let me = jid.clone();
    let offline = proptest::collection::vec(
        (select(everyone.clone()), stanza(&jid, &jid), 0..3i64),
        0..3,
    )
    .prop_map(move |msgs| {
        msgs.into_iter()
            .filter_map(|(from, stanza, skew)| {
                Some(OfflineMessage {
                    from: Jid::parse(&format!("{from}/r")).ok()?,
                    to: Jid::parse(me.as_str()).ok()?,
                    timestamp: Timestamp::from_secs(at.as_secs() - skew),
                    expires: None,
                    stanza,
                })
            })
            .collect::<Vec<_>>()
    });
    let inbox = proptest::collection::btree_map(
        select(everyone.clone()),
        (tricky_text(), any::<bool>()),
        0..3,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(r, (t, incoming))| (r, message_stanza("x@h", "y@h", &t), incoming))
            .collect::<Vec<_>>()
    });
    let privacy_item = (any::<bool>(), any::<bool>()).prop_map(|(allow, message)| PrivacyItem {
        order: 0,
        kind: None,
        value: None,
        action: if allow {
            PrivacyAction::Allow
        } else {
            PrivacyAction::Deny
        },
        message,
        iq: !message,
        presence_in: false,
        presence_out: false,
    });
    let privacy = proptest::collection::btree_map(
        select(&["public", "=list", "caf\u{e9}, \"x\""][..]),
        proptest::collection::vec(privacy_item, 1..3),
        0..3,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(name, mut items)| {
                for (order, item) in (0u32..).zip(items.iter_mut()) {
                    item.order = order;
                }
                (name.to_owned(), items)
            })
            .collect::<Vec<_>>()
    });
    let blocked = proptest::collection::btree_set(select(everyone.clone()), 0..3).prop_map(|s| {
        s.into_iter()
            .filter_map(|j| Jid::parse(j.as_str()).ok())
            .collect::<Vec<_>>()
    });
    (
        roster(everyone.clone()),
        proptest::option::of(tricky_text().prop_map(|t| xml_of("vCard", "vcard-temp", &t))),
        proptest::collection::btree_map(
            select(&["urn:a", "urn:b", "storage:bookmarks"][..]),
            tricky_text(),
            0..3,
        ),
        offline,
        inbox,
        pm_archive(jid.clone(), everyone),
        proptest::option::of((0..100_000i64, tricky_text())),
        privacy,
        blocked,
    )
        .prop_map(
            move |(roster, vcard, private, offline, inbox, archive, last, privacy, blocked)| User {
                jid: jid.clone(),
                roster,
                vcard,
                private: private
                    .into_iter()
                    .map(|(ns, t)| (ns.to_owned(), xml_of("q", ns, &t)))
                    .collect(),
                offline,
                inbox,
                archive,
                last,
                privacy,
                blocked,
            },
        )
}

fn nodes(users: Vec<BareJid>, everyone: Vec<BareJid>) -> impl Strategy<Value = Vec<PubsubNode>> {
    let kind = select(&[NodeType::Pep, NodeType::Push, NodeType::Flat][..]);
    let item = (0..4u8, select(everyone.clone()), tricky_text());
    let node = (
        select(users),
        kind,
        0..3u8,
        proptest::collection::vec(item, 0..4),
        proptest::collection::btree_set(select(everyone), 0..3),
    );
    proptest::collection::vec(node, 0..5).prop_map(|generated| {
        let mut by_key: BTreeMap<(BareJid, String), PubsubNode> = BTreeMap::new();
        for (owner, kind, n, items, subscribers) in generated {
            let service = if kind == NodeType::Pep {
                owner.clone()
            } else {
                match BareJid::parse(PUBSUB_SERVICE) {
                    Ok(s) => s,
                    Err(_) => continue,
                }
            };
            let name = format!("n{n}");
            let items: BTreeMap<String, (BareJid, String)> = items
                .into_iter()
                .map(|(i, p, t)| (format!("i{i}"), (p, xml_of("entry", "urn:x", &t))))
                .collect();
            by_key
                .entry((service.clone(), name.clone()))
                .or_insert_with(|| PubsubNode {
                    node: Node {
                        service,
                        node: name,
                        owner,
                        kind,
                        access_model: "open".into(),
                        config: vec![],
                        created_at: Timestamp::from_secs(1_700_000_000),
                    },
                    items: items.into_iter().map(|(i, (p, x))| (i, p, x)).collect(),
                    subscribers: subscribers.into_iter().collect(),
                });
        }
        by_key.into_values().collect()
    })
}

/// A whole deployment: 1 to 5 [`lookalike_users`] with every data class, group chats in
/// [`ROOMS`], and PEP, push and flat nodes on which users and [`OUTSIDERS`] publish and
/// subscribe. Rosters, inboxes, archives, blocklists, rooms and nodes name other users and
/// outsiders, so erasing one user tests what happens to what others hold.
pub fn deployment() -> impl Strategy<Value = Deployment> {
    lookalike_users().prop_flat_map(|users| {
        let mut everyone = users.clone();
        everyone.extend(parse_all(&OUTSIDERS));
        let per_user: Vec<_> = users
            .iter()
            .map(|u| user_data(u.clone(), everyone.clone()))
            .collect();
        let rooms: Vec<_> = parse_all(&ROOMS)
            .into_iter()
            .map(|room| {
                muc_archive(room.clone(), everyone.clone()).prop_map(move |messages| Room {
                    jid: room.clone(),
                    messages,
                })
            })
            .collect();
        (per_user, rooms, nodes(users, everyone)).prop_map(|(users, rooms, nodes)| Deployment {
            users,
            rooms,
            nodes,
        })
    })
}

/// A [`deployment`] and one of its users, to erase.
pub fn deployment_and_subject() -> impl Strategy<Value = (Deployment, BareJid)> {
    deployment().prop_flat_map(|d| {
        let users: Vec<BareJid> = d.users.iter().map(|u| u.jid.clone()).collect();
        (Just(d), select(users))
    })
}

impl Deployment {
    /// Writes everything to `store` through the typed APIs. The store should be empty
    /// (the expectations assume it holds nothing else about these JIDs).
    pub fn apply(&self, store: &Store) -> crate::Result<()> {
        for u in &self.users {
            let j = &u.jid;
            store.accounts().create(j, "password")?;
            for item in &u.roster {
                store.roster().set(j, item)?;
            }
            if let Some(v) = &u.vcard {
                store.vcard().set(j, v)?;
            }
            for (ns, xml) in &u.private {
                store.private().set(j, ns, xml)?;
            }
            for m in &u.offline {
                store.offline().store(j, m)?;
            }
            for (remote, content, incoming) in &u.inbox {
                store.inbox().on_message(
                    j,
                    remote,
                    content,
                    None,
                    Timestamp::from_secs(1_700_000_000),
                    *incoming,
                )?;
            }
            for m in &u.archive {
                store.mam().append(j, m)?;
            }
            if let Some((seconds, status)) = &u.last {
                store.last().set(j, *seconds, status)?;
            }
            for (name, items) in &u.privacy {
                store.privacy().set_list(j, name, items)?;
            }
            if !u.blocked.is_empty() {
                store.blocklist().block(j, &u.blocked)?;
            }
        }
        for room in &self.rooms {
            for m in &room.messages {
                store.muc().append(&room.jid, m)?;
            }
        }
        for n in &self.nodes {
            store.pubsub().create_node(&n.node)?;
            for (id, publisher, payload) in &n.items {
                store.pubsub().publish(
                    &n.node.service,
                    &n.node.node,
                    id,
                    publisher,
                    payload,
                    n.node.created_at,
                )?;
            }
            for s in &n.subscribers {
                store
                    .pubsub()
                    .subscribe(&n.node.service, &n.node.node, s, SubState::Subscribed)?;
            }
        }
        Ok(())
    }

    /// Every JID the deployment holds data about: users, room senders, node owners,
    /// publishers and subscribers.
    pub fn jids(&self) -> Vec<BareJid> {
        let mut all: Vec<BareJid> = self.users.iter().map(|u| u.jid.clone()).collect();
        for r in &self.rooms {
            all.extend(r.messages.iter().map(|m| m.sender.clone()));
        }
        for n in &self.nodes {
            all.push(n.node.owner.clone());
            all.extend(n.items.iter().map(|i| i.1.clone()));
            all.extend(n.subscribers.iter().cloned());
        }
        all.sort();
        all.dedup();
        all
    }

    /// Rows per export file that `jid`'s GDPR export holds (file name, e.g. `roster.csv`).
    pub fn expected_rows(&self, jid: &BareJid) -> BTreeMap<&'static str, u64> {
        let n = |x: usize| x as u64;
        let user = self.users.iter().find(|u| &u.jid == jid);
        let of = |f: fn(&User) -> usize| n(user.map_or(0, f));
        let personal_node = |p: &PubsubNode| &p.node.owner == jid && p.node.kind != NodeType::Flat;
        let items = self
            .nodes
            .iter()
            .map(|p| {
                if personal_node(p) {
                    p.items.len()
                } else {
                    p.items.iter().filter(|i| &i.1 == jid).count()
                }
            })
            .sum();
        let owned = self.nodes.iter().filter(|p| &p.node.owner == jid).count();
        BTreeMap::from([
            ("accounts.csv", n(usize::from(user.is_some()))),
            ("roster.csv", of(|u| u.roster.len())),
            ("vcard.csv", of(|u| usize::from(u.vcard.is_some()))),
            ("private.csv", of(|u| u.private.len())),
            ("offline.csv", of(|u| u.offline.len())),
            ("inbox.csv", of(|u| u.inbox.len())),
            ("mam_pm.csv", of(|u| u.archive.len())),
            (
                "mam_muc.csv",
                n(self
                    .rooms
                    .iter()
                    .map(|r| r.messages.iter().filter(|m| &m.sender == jid).count())
                    .sum()),
            ),
            ("pubsub_nodes.csv", n(owned)),
            ("pubsub_items.csv", n(items)),
            (
                "pubsub_subscriptions.csv",
                n(self
                    .nodes
                    .iter()
                    .filter(|p| p.subscribers.contains(jid))
                    .count()),
            ),
            ("pubsub_affiliations.csv", n(owned)),
            ("last.csv", of(|u| usize::from(u.last.is_some()))),
            (
                "privacy.csv",
                of(|u| u.privacy.iter().map(|l| l.1.len().max(1)).sum()),
            ),
            ("blocklist.csv", of(|u| u.blocked.len())),
            ("generic_kv.csv", 0),
            ("generic_archive.csv", 0),
        ])
    }

    /// The deployment as it should be after `subject` is erased (DESIGN.md section 2): the
    /// subject's user data goes, and so do their PEP and push nodes with every item and
    /// subscription on them, and their subscriptions elsewhere; group-chat messages, flat
    /// nodes and items published on others' nodes stay.
    #[must_use]
    pub fn erased(&self, subject: &BareJid) -> Deployment {
        let mut d = self.clone();
        d.users.retain(|u| &u.jid != subject);
        d.nodes
            .retain(|p| &p.node.owner != subject || p.node.kind == NodeType::Flat);
        for p in &mut d.nodes {
            p.subscribers.retain(|s| s != subject);
        }
        d
    }

    /// JIDs other than `subject` whose exports change when `subject` is erased: those who
    /// published or subscribed on the subject's PEP and push nodes.
    pub fn touched_by_erasure(&self, subject: &BareJid) -> Vec<BareJid> {
        let mut out: Vec<BareJid> = self
            .nodes
            .iter()
            .filter(|p| &p.node.owner == subject && p.node.kind != NodeType::Flat)
            .flat_map(|p| {
                p.items
                    .iter()
                    .map(|i| i.1.clone())
                    .chain(p.subscribers.iter().cloned())
            })
            .filter(|j| j != subject)
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::indexing_slicing,
        reason = "a failed expectation is a failed test"
    )]
    use super::*;

    proptest! {
        #[test]
        fn hostile_jids_are_refused(s in hostile_jid()) {
            prop_assert!(BareJid::parse(&s).is_err(), "accepted {s:?}");
        }

        #[test]
        fn valid_jids_parse_and_normalise(s in bare_jid_text()) {
            let j = BareJid::parse(&s);
            prop_assert!(j.is_ok(), "refused {s:?}: {j:?}");
            let j = j.unwrap();
            prop_assert_eq!(BareJid::parse(j.as_str()).unwrap(), j.clone());
        }

        #[test]
        fn case_variants_are_one_user(s in select(&LOOKALIKES[..]).prop_flat_map(case_variant)) {
            let typed = BareJid::parse(&s).unwrap();
            prop_assert_eq!(typed.as_str(), s.to_lowercase());
        }

        #[test]
        fn stanzas_are_well_formed(text in tricky_text()) {
            let s = message_stanza("a@h/r", "b@h", &text);
            prop_assert!(crate::xml::check_element("message", &s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn idn_users_are_distinct_from_each_other() {
        let users = parse_all(&IDN_JIDS);
        assert_eq!(users.len(), IDN_JIDS.len());
        let upper = BareJid::parse(&IDN_JIDS[0].to_uppercase()).unwrap();
        assert_eq!(upper, users[0]);
    }
}
