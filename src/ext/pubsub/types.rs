//! The public pubsub types: nodes, items, subscriptions, affiliations and their states.

use crate::jid::BareJid;
use crate::time::Timestamp;

/// The kind of a node; it decides what erasing its owner does to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeType {
    /// A personal eventing node (XEP-0163): erased with its owner.
    Pep,
    /// A push node (XEP-0357): erased with its owner.
    Push,
    /// A plain pubsub node: survives its owner's erasure.
    Flat,
}

impl NodeType {
    /// `pep`, `push` or `flat`, as in the export.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Pep => "pep",
            NodeType::Push => "push",
            NodeType::Flat => "flat",
        }
    }
}

/// A pubsub node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The pubsub service (the owner's bare JID for PEP).
    pub service: BareJid,
    /// The node id.
    pub node: String,
    /// Who created it.
    pub owner: BareJid,
    /// PEP, push or flat.
    pub kind: NodeType,
    /// The access model, e.g. `open` or `presence`.
    pub access_model: String,
    /// Other configuration fields, as (var, value).
    pub config: Vec<(String, String)>,
    /// When it was created.
    pub created_at: Timestamp,
}

impl Node {
    /// A node with no configuration fields and the default access model of its kind
    /// (XEP-0163: `presence` for a PEP node; XEP-0060: `open` otherwise); set the other
    /// fields directly (`Node { access_model: "whitelist".into(), ..Node::new(..) }`).
    pub fn new(
        service: BareJid,
        node: impl Into<String>,
        owner: BareJid,
        kind: NodeType,
        created_at: Timestamp,
    ) -> Node {
        let access_model = if kind == NodeType::Pep {
            "presence"
        } else {
            "open"
        };
        Node {
            service,
            node: node.into(),
            owner,
            kind,
            access_model: access_model.to_owned(),
            config: Vec::new(),
            created_at,
        }
    }
}

/// A published item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The pubsub service.
    pub service: BareJid,
    /// The node id.
    pub node: String,
    /// The item id.
    pub id: String,
    /// Who published it (may be remote).
    pub publisher: BareJid,
    /// The payload XML.
    pub payload: String,
    /// When it was (last) published.
    pub published_at: Timestamp,
}

/// The state of a subscription.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubState {
    /// Active.
    Subscribed,
    /// Awaiting the owner's approval.
    Pending,
    /// Awaiting required configuration.
    Unconfigured,
}

impl SubState {
    /// `subscribed`, `pending` or `unconfigured`, as in the export.
    pub fn as_str(self) -> &'static str {
        match self {
            SubState::Subscribed => "subscribed",
            SubState::Pending => "pending",
            SubState::Unconfigured => "unconfigured",
        }
    }
}

/// A subscription to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The pubsub service.
    pub service: BareJid,
    /// The node id.
    pub node: String,
    /// Who subscribed (may be remote).
    pub subscriber: BareJid,
    /// Its state.
    pub state: SubState,
}

/// An affiliation with a node (XEP-0060 section 4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Affiliation {
    /// Owns the node.
    Owner,
    /// May publish and retract.
    Publisher,
    /// May publish only.
    PublishOnly,
    /// May subscribe and retrieve.
    Member,
    /// Banned.
    Outcast,
}

impl Affiliation {
    /// The XEP-0060 name, e.g. `publish-only`.
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Owner => "owner",
            Affiliation::Publisher => "publisher",
            Affiliation::PublishOnly => "publish-only",
            Affiliation::Member => "member",
            Affiliation::Outcast => "outcast",
        }
    }
}
