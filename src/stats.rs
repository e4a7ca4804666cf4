//! Store statistics: entries and bytes per keyspace, accounts per domain.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::Result;
use crate::keys::Keyspace;
use crate::store::Store;

/// Entries and bytes (keys plus values) of one keyspace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyspaceStats {
    /// Number of entries.
    pub entries: u64,
    /// Sum of key and value lengths.
    pub bytes: u64,
}

/// What [`stats`] reports.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Stats {
    /// Accounts per domain.
    pub accounts: BTreeMap<String, u64>,
    /// Per keyspace, in [`Keyspace::ALL`] order.
    pub keyspaces: Vec<(&'static str, KeyspaceStats)>,
    /// Bytes sled occupies on disk.
    pub size_on_disk: u64,
}

/// Counts every keyspace. A full scan: meant for operators, not hot paths.
pub fn stats(store: &Store) -> Result<Stats> {
    let mut keyspaces = Vec::new();
    for ks in Keyspace::ALL {
        let mut s = KeyspaceStats::default();
        for entry in store.tree(*ks) {
            let (k, v) = entry?;
            s.entries += 1;
            s.bytes += (k.len() + v.len()) as u64;
        }
        keyspaces.push((ks.name(), s));
    }
    let mut accounts = BTreeMap::new();
    for domain in store.accounts().domains()? {
        *accounts.entry(domain).or_default() += 1;
    }
    Ok(Stats {
        accounts,
        keyspaces,
        size_on_disk: store.size_on_disk()?,
    })
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "accounts:")?;
        if self.accounts.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for (domain, n) in &self.accounts {
            writeln!(f, "  {domain:<30} {n}")?;
        }
        writeln!(f, "{:<28} {:>10} {:>14}", "keyspace", "entries", "bytes")?;
        for (name, s) in &self.keyspaces {
            writeln!(f, "{name:<28} {:>10} {:>14}", s.entries, s.bytes)?;
        }
        writeln!(f, "size on disk: {} bytes", self.size_on_disk)
    }
}
