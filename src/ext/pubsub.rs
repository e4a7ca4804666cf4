//! Publish-subscribe (XEP-0060) with PEP (XEP-0163) and push (XEP-0357) nodes.

use crate::error::Result;
use crate::ext::{Emit, Extension, RemovalPlan, Table};
use crate::jid::BareJid;
use crate::keys::Keyspace;
use crate::store::Store;

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[
    Table {
        file: "pubsub_nodes.csv",
        header: &["node_id", "access_model", "service_jid", "type"],
    },
    Table {
        file: "pubsub_items.csv",
        header: &[
            "node_id",
            "item_id",
            "publisher_jid",
            "payload",
            "service_jid",
            "published_at",
        ],
    },
    Table {
        file: "pubsub_subscriptions.csv",
        header: &["service_jid", "node_id", "subscriber_jid", "state"],
    },
    Table {
        file: "pubsub_affiliations.csv",
        header: &["service_jid", "node_id", "jid", "affiliation"],
    },
];

impl Extension for Class {
    fn name(&self) -> &'static str {
        "pubsub"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[
            Keyspace::PubsubNodes,
            Keyspace::PubsubNodesByOwner,
            Keyspace::PubsubItems,
            Keyspace::PubsubItemsByPublisher,
            Keyspace::PubsubSubs,
            Keyspace::PubsubSubsBySubscriber,
            Keyspace::PubsubAffs,
            Keyspace::PubsubAffsByJid,
        ]
    }
    fn tables(&self) -> &'static [Table] {
        TABLES
    }
    fn rows(
        &self,
        _store: &Store,
        _subject: &BareJid,
        _table: usize,
        _emit: Emit<'_>,
    ) -> Result<()> {
        Ok(())
    }
    fn plan_removal(
        &self,
        _store: &Store,
        _subject: &BareJid,
        _plan: &mut RemovalPlan,
    ) -> Result<()> {
        Ok(())
    }
}
