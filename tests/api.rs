//! The public API as a server author meets it: the input types' constructors fill the
//! optional fields with their defaults, and what they build stores and reads back.

use jidstore::Timestamp;
use jidstore::ext::mam::{Direction, MucMessage, PmMessage};
use jidstore::ext::offline::OfflineMessage;
use jidstore::ext::privacy::{PrivacyAction, PrivacyItem};
use jidstore::ext::pubsub::{Node, NodeType};
use jidstore::ext::roster::{Ask, RosterItem, Subscription};

use crate::util::*;

#[test]
fn constructors_fill_defaults_and_round_trip() -> TestResult {
    let (_dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let bob = bare("bob@localhost");
    let at = Timestamp::from_secs(1_700_000_000);

    let item = RosterItem::new(bob.clone());
    assert_eq!((item.name.as_deref(), item.groups.len()), (None, 0));
    assert_eq!(
        (item.subscription, item.ask),
        (Subscription::None, Ask::None)
    );
    let named = RosterItem {
        name: Some("Bob".into()),
        ..RosterItem::new(bob.clone())
    };
    store.roster().set(&alice, &named)?;
    assert_eq!(store.roster().get(&alice, &bob)?, Some(named));

    let pm = PmMessage::new(
        at,
        full("alice@localhost/phone"),
        full("bob@localhost/desk"),
        Direction::Outgoing,
        "<message><body>hi</body></message>",
    );
    assert_eq!((pm.id.as_deref(), pm.origin_id.as_deref()), (None, None));
    let id = store.mam().append(&alice, &pm)?;
    let got = store
        .mam()
        .get(&alice, &id)?
        .ok_or("archived message missing")?;
    assert_eq!(
        (got.timestamp, got.stanza.as_str()),
        (at, pm.stanza.as_str())
    );

    let room = bare("room@muc.localhost");
    let muc = MucMessage::new(
        at,
        alice.clone(),
        "al",
        "<message><body>all</body></message>",
    );
    let id = store.muc().append(&room, &muc)?;
    let got = store.muc().get(&room, &id)?.ok_or("room message missing")?;
    assert_eq!((got.nick.as_str(), got.sender), ("al", alice.clone()));

    let off = OfflineMessage::new(
        full("bob@localhost/desk"),
        full("alice@localhost"),
        at,
        "<message><body>later</body></message>",
    );
    assert_eq!(off.expires, None);
    store.offline().store(&alice, &off)?;
    assert_eq!(store.offline().list(&alice)?, vec![off]);

    let deny = PrivacyItem::new(1, PrivacyAction::Deny);
    assert!(deny.kind.is_none() && deny.value.is_none());
    assert!(!(deny.message || deny.iq || deny.presence_in || deny.presence_out));
    store
        .privacy()
        .set_list(&alice, "quiet", std::slice::from_ref(&deny))?;
    assert_eq!(store.privacy().get_list(&alice, "quiet")?, Some(vec![deny]));

    let pep = Node::new(
        alice.clone(),
        "urn:xmpp:avatar:data",
        alice.clone(),
        NodeType::Pep,
        at,
    );
    let flat = Node::new(
        bare("pubsub.localhost"),
        "news",
        alice.clone(),
        NodeType::Flat,
        at,
    );
    assert_eq!(
        (pep.access_model.as_str(), flat.access_model.as_str()),
        ("presence", "open")
    );
    assert!(pep.config.is_empty());
    store.pubsub().create_node(&pep)?;
    assert_eq!(store.pubsub().get_node(&alice, &pep.node)?, Some(pep));
    Ok(())
}
