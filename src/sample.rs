//! A little of every data class: the deployment `jidstore demo` builds, and the one the
//! tests that need "some of everything" (acceptance beyond MongooseIM, verify, bad input,
//! at rest, concurrency, the toolbox) populate too, so the demo shows what the tests check.
//!
//! Users alice, bob and kate on `localhost`, one anonymously registered user, and two
//! remote people: `carol@remote.example`, a contact of alice who follows her flat node (and
//! holds nothing else here), and `dave@remote.example`, a participant of the group chat.
//!
//! Alice has data in every class: roster (bob mutual, kate pending, carol one-way), vCard,
//! two private XML namespaces, 1-1 archive and inbox with bob, two offline messages,
//! group-chat messages (and the room in her inbox), a PEP node with an item that bob
//! subscribes to, a push node bob published to, a flat node with her item and bob's that
//! she and carol subscribe to, an item she published on bob's node (kept after her erasure:
//! the node is bob's), last activity, a default privacy list with a fall-through item, a
//! blocklist of two, and a generic key-value record and archive item (what a Prosody driver
//! writes). Kate has offline messages from bob.
//!
//! Every time is `start` plus a few minutes, so a fixed `start` gives the same store every
//! run. Not API: reached through `jidstore::__internal::sample`, and may change in any
//! release.

use crate::error::Result;
use crate::ext::mam::{Direction, MucMessage, PmMessage};
use crate::ext::offline::OfflineMessage;
use crate::ext::privacy::{PrivacyAction, PrivacyItem, PrivacyType};
use crate::ext::pubsub::{Affiliation, Node, NodeType, SubState};
use crate::ext::roster::{Ask, RosterItem, Subscription};
use crate::jid::{BareJid, Jid};
use crate::store::Store;
use crate::time::Timestamp;

/// The people of the sample deployment.
#[derive(Debug, Clone)]
pub struct Sample {
    /// `alice@localhost`: data in every class.
    pub alice: BareJid,
    /// `bob@localhost`: alice's contact, chat partner, subscriber and publisher.
    pub bob: BareJid,
    /// `kate@localhost`: a pending contact of alice, with offline messages.
    pub kate: BareJid,
    /// `carol@remote.example`: alice's remote contact (subscription `to`), subscribed to her
    /// flat node `news`; that subscription is all jidstore holds about carol.
    pub carol: BareJid,
    /// `room@muc.localhost`: the group chat (alice 2 messages, bob 1, `dave@remote.example` 1).
    pub room: BareJid,
    /// `pubsub.localhost`: the service of alice's flat node `news` (her item and bob's, she
    /// subscribes) and of bob's node `bob-blog` (alice, publish-only, has an item there).
    pub pubsub: BareJid,
}

/// A chat stanza.
fn msg(from: &Jid, to: &Jid, id: &str, body: &str) -> String {
    format!(
        "<message xmlns='jabber:client' from='{from}' to='{to}' id='{id}' type='chat'><body>{body}</body></message>"
    )
}

/// `start` plus `minutes`.
fn after(start: Timestamp, minutes: i64) -> Timestamp {
    Timestamp::from_micros(start.as_micros() + minutes * 60_000_000)
}

/// Sets `owner`'s default privacy list `work` (alice's in the sample): deny messages from one
/// JID, then a fall-through item (no type, no value) that allows everything else.
pub fn work_privacy_list(store: &Store, owner: &BareJid) -> Result<()> {
    store.privacy().set_list(
        owner,
        "work",
        &[
            PrivacyItem {
                order: 1,
                kind: Some(PrivacyType::Jid),
                value: Some("spam@bad.example".into()),
                action: PrivacyAction::Deny,
                message: true,
                iq: false,
                presence_in: true,
                presence_out: false,
            },
            PrivacyItem::new(2, PrivacyAction::Allow),
        ],
    )?;
    store.privacy().set_default(owner, Some("work"))
}

/// Writes the sample deployment into `store` (empty, or at least without these users).
#[expect(
    clippy::too_many_lines,
    reason = "one linear script of a deployment's events"
)]
pub fn populate(store: &Store, start: Timestamp) -> Result<Sample> {
    let bare = BareJid::parse;
    let (alice, bob, kate, carol) = (
        bare("alice@localhost")?,
        bare("bob@localhost")?,
        bare("kate@localhost")?,
        bare("carol@remote.example")?,
    );
    for u in [&alice, &bob, &kate] {
        store.accounts().create(u, "demo-password")?;
    }
    store
        .accounts()
        .create_random("localhost", "demo-password")?;

    // Rosters: alice and bob are mutual contacts; alice asked kate, who has not answered;
    // alice sees carol's presence, carol does not see hers.
    let item = |jid: &BareJid, name: &str, sub, ask| RosterItem {
        jid: jid.clone(),
        name: Some(name.to_owned()),
        subscription: sub,
        ask,
        groups: vec!["Friends".into(), "Work, mostly".into()],
        askmessage: None,
    };
    for (owner, contact, name, sub, ask) in [
        (&alice, &bob, "Bob", Subscription::Both, Ask::None),
        (&bob, &alice, "Alice", Subscription::Both, Ask::None),
        (&alice, &kate, "Kate", Subscription::None, Ask::Out),
        (&kate, &alice, "alice", Subscription::None, Ask::In),
        (&alice, &carol, "Carol", Subscription::To, Ask::None),
    ] {
        store.roster().set(owner, &item(contact, name, sub, ask))?;
    }

    store.vcard().set(
        &alice,
        "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><N><FAMILY>Liddell</FAMILY><GIVEN>Alice</GIVEN></N><EMAIL><USERID>alice@example.org</USERID></EMAIL></vCard>",
    )?;
    store
        .vcard()
        .set(&bob, "<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>")?;
    store.private().set(
        &alice,
        "storage:bookmarks",
        "<storage xmlns='storage:bookmarks'><conference jid='room@muc.localhost' autojoin='true'><nick>alice</nick></conference></storage>",
    )?;
    store.private().set(
        &alice,
        "storage:rosternotes",
        "<storage xmlns='storage:rosternotes'><note jid='kate@localhost'>Met at the conference</note></storage>",
    )?;

    // 1-1 chat between alice and bob: both archives and both inboxes.
    let (a_res, b_res) = (
        Jid::parse("alice@localhost/phone")?,
        Jid::parse("bob@localhost/laptop")?,
    );
    let lines = [
        (true, "Hi Bob, lunch today?"),
        (false, "Sure, \"usual place\", 12:30"),
        (true, "Great, see you there"),
        (
            false,
            "Bringing the report, with commas, quotes \" and\nnewlines",
        ),
    ];
    for (i, (from_alice, body)) in (0i64..).zip(lines) {
        let at = after(start, i);
        let (from, to) = if from_alice {
            (&a_res, &b_res)
        } else {
            (&b_res, &a_res)
        };
        let stanza = msg(from, to, &format!("m{i}"), &body.replace('"', "&quot;"));
        for (owner, outgoing) in [(&alice, from_alice), (&bob, !from_alice)] {
            store.mam().append(
                owner,
                &PmMessage {
                    id: None,
                    timestamp: at,
                    from: from.clone(),
                    to: to.clone(),
                    direction: if outgoing {
                        Direction::Outgoing
                    } else {
                        Direction::Incoming
                    },
                    origin_id: Some(format!("m{i}")),
                    stanza: stanza.clone(),
                },
            )?;
            let remote = if *owner == alice { &bob } else { &alice };
            store.inbox().on_message(
                owner,
                remote,
                &stanza,
                Some(&format!("m{i}")),
                at,
                !outgoing,
            )?;
        }
    }

    // Offline messages waiting for kate, and two for alice.
    for (i, (owner, body)) in (0i64..).zip([
        (&kate, "Are you there?"),
        (&kate, "Call me back"),
        (&alice, "Left the report on your desk"),
        (&alice, "Page 3 has the numbers"),
    ]) {
        let from = Jid::parse("bob@localhost/laptop")?;
        let to = Jid::from(owner.clone());
        store.offline().store(
            owner,
            &OfflineMessage {
                stanza: msg(&from, &to, &format!("o{i}"), body),
                from,
                to,
                timestamp: after(start, 10 + i),
                expires: None,
            },
        )?;
    }

    // Group chat: alice, bob and dave (remote); the room in the local members' inboxes.
    let room = bare("room@muc.localhost")?;
    let dave = bare("dave@remote.example")?;
    for (i, (sender, nick, body)) in (0i64..).zip([
        (&alice, "alice", "Morning all"),
        (&bob, "bob", "Hi Room!"),
        (&dave, "dave", "Hello from afar"),
        (&alice, "alice", "Standup in 5"),
    ]) {
        let from = Jid::parse(&format!("{room}/{nick}"))?;
        let at = after(start, 20 + i);
        let stanza = format!(
            "<message xmlns='jabber:client' from='{from}' type='groupchat'><body>{body}</body></message>"
        );
        store.muc().append(
            &room,
            &MucMessage {
                id: None,
                timestamp: at,
                sender: sender.clone(),
                nick: nick.to_owned(),
                stanza: stanza.clone(),
            },
        )?;
        for member in [&alice, &bob] {
            store
                .inbox()
                .on_message(member, &room, &stanza, None, at, member != sender)?;
        }
    }

    // Pubsub: alice's PEP avatar node, her push node, her flat node that bob publishes to,
    // and bob's node where alice may only publish.
    let node = |service: &BareJid, name: &str, owner: &BareJid, kind, access: &str| Node {
        service: service.clone(),
        node: name.to_owned(),
        owner: owner.clone(),
        kind,
        access_model: access.to_owned(),
        config: vec![("pubsub#max_items".into(), "10".into())],
        created_at: after(start, 30),
    };
    let pep = "urn:xmpp:avatar:metadata";
    let push_service = bare("push.localhost")?;
    let pubsub_service = bare("pubsub.localhost")?;
    store
        .pubsub()
        .create_node(&node(&alice, pep, &alice, NodeType::Pep, "presence"))?;
    store.pubsub().create_node(&node(
        &push_service,
        "alice-phone",
        &alice,
        NodeType::Push,
        "whitelist",
    ))?;
    store.pubsub().create_node(&node(
        &pubsub_service,
        "news",
        &alice,
        NodeType::Flat,
        "open",
    ))?;
    store.pubsub().create_node(&node(
        &pubsub_service,
        "bob-blog",
        &bob,
        NodeType::Flat,
        "open",
    ))?;
    store.pubsub().set_affiliation(
        &pubsub_service,
        "bob-blog",
        &alice,
        Some(Affiliation::PublishOnly),
    )?;
    store.pubsub().publish(
        &alice,
        pep,
        "avatar1",
        &alice,
        "<metadata xmlns='urn:xmpp:avatar:metadata'><info id='avatar1' bytes='1024' type='image/png'/></metadata>",
        after(start, 31),
    )?;
    store.pubsub().publish(
        &push_service,
        "alice-phone",
        "n1",
        &bob,
        "<notification xmlns='urn:xmpp:push:0'><x xmlns='jabber:x:data'/></notification>",
        after(start, 32),
    )?;
    store.pubsub().publish(
        &pubsub_service,
        "news",
        "release-1",
        &bob,
        "<entry xmlns='http://www.w3.org/2005/Atom'><title>jidstore 0.1</title></entry>",
        after(start, 33),
    )?;
    store.pubsub().publish(
        &pubsub_service,
        "news",
        "release-2",
        &alice,
        "<entry xmlns='http://www.w3.org/2005/Atom'><title>jidstore 0.2</title></entry>",
        after(start, 34),
    )?;
    store.pubsub().publish(
        &pubsub_service,
        "bob-blog",
        "guest-post",
        &alice,
        "<entry xmlns='http://www.w3.org/2005/Atom'><title>A guest post by Alice</title></entry>",
        after(start, 35),
    )?;
    store
        .pubsub()
        .subscribe(&alice, pep, &bob, SubState::Subscribed)?;
    store
        .pubsub()
        .subscribe(&pubsub_service, "news", &alice, SubState::Subscribed)?;
    store
        .pubsub()
        .subscribe(&pubsub_service, "news", &carol, SubState::Subscribed)?;
    store
        .pubsub()
        .subscribe(&pubsub_service, "bob-blog", &alice, SubState::Subscribed)?;

    // What a Prosody driver writes: a key-value record and an archive item.
    store.generic().set(
        &alice,
        "pep",
        Some("{ [\"urn:xmpp:avatar:metadata\"] = true }"),
    )?;
    store.generic().append(
        &alice,
        "archive",
        None,
        after(start, 40),
        Some("bob@localhost"),
        "<message xmlns='jabber:client'><body>From the Prosody archive</body></message>",
    )?;

    store
        .last()
        .set(&alice, after(start, 50).as_secs(), "Gone to lunch")?;
    work_privacy_list(store, &alice)?;
    store.blocklist().block(
        &alice,
        &[
            Jid::parse("troll@bad.example")?,
            Jid::parse("spam@bad.example")?,
        ],
    )?;
    Ok(Sample {
        alice,
        bob,
        kate,
        carol,
        room,
        pubsub: pubsub_service,
    })
}
