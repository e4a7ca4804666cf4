//! The public message types of the archives: what callers append and read back.

use crate::jid::{BareJid, Jid};
use crate::time::Timestamp;

/// Whether a 1-1 message was received or sent by the archive's owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received by the owner.
    Incoming,
    /// Sent by the owner.
    Outgoing,
}

impl Direction {
    /// `incoming` or `outgoing`, as in the export.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Incoming => "incoming",
            Direction::Outgoing => "outgoing",
        }
    }
}

/// A 1-1 message to archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmMessage {
    /// An imported id to keep; `None` lets the store assign one.
    pub id: Option<String>,
    /// When the message was sent.
    pub timestamp: Timestamp,
    /// Sender (full JID when known).
    pub from: Jid,
    /// Recipient.
    pub to: Jid,
    /// Seen from the archive's owner.
    pub direction: Direction,
    /// XEP-0359 origin id, when the sender gave one.
    pub origin_id: Option<String>,
    /// The stanza XML.
    pub stanza: String,
}

impl PmMessage {
    /// A message with no client-chosen archive id (the store assigns one) and no origin id.
    pub fn new(
        timestamp: Timestamp,
        from: Jid,
        to: Jid,
        direction: Direction,
        stanza: impl Into<String>,
    ) -> PmMessage {
        PmMessage {
            id: None,
            timestamp,
            from,
            to,
            direction,
            origin_id: None,
            stanza: stanza.into(),
        }
    }
}

/// A 1-1 message read back from an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedMessage {
    /// The archive id (XEP-0359 stanza-id).
    pub id: String,
    /// When the message was sent.
    pub timestamp: Timestamp,
    /// Sender.
    pub from: Jid,
    /// Recipient.
    pub to: Jid,
    /// Seen from the archive's owner.
    pub direction: Direction,
    /// XEP-0359 origin id.
    pub origin_id: Option<String>,
    /// The stanza XML.
    pub stanza: String,
}

/// A group-chat message to archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MucMessage {
    /// An imported id to keep; `None` lets the store assign one.
    pub id: Option<String>,
    /// When the message was sent.
    pub timestamp: Timestamp,
    /// The sender's real bare JID.
    pub sender: BareJid,
    /// The sender's nick in the room.
    pub nick: String,
    /// The stanza XML.
    pub stanza: String,
}

impl MucMessage {
    /// A room message with no client-chosen archive id (the store assigns one).
    pub fn new(
        timestamp: Timestamp,
        sender: BareJid,
        nick: impl Into<String>,
        stanza: impl Into<String>,
    ) -> MucMessage {
        MucMessage {
            id: None,
            timestamp,
            sender,
            nick: nick.into(),
            stanza: stanza.into(),
        }
    }
}

/// A group-chat message read back from a room archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivedMucMessage {
    /// The archive id.
    pub id: String,
    /// The room.
    pub room: BareJid,
    /// When the message was sent.
    pub timestamp: Timestamp,
    /// The sender's real bare JID.
    pub sender: BareJid,
    /// The sender's nick in the room.
    pub nick: String,
    /// The stanza XML.
    pub stanza: String,
}
