//! The receipt an erasure returns: what was removed per class, what was kept and why.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::ext::{self, Consequence, Kept, RemovalPlan, Swept};
use crate::jid::BareJid;
use crate::store::Tombstone;

/// What [`super::remove`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Receipt {
    /// The erased JID.
    pub subject: BareJid,
    /// The subject's rows removed per table (CSV file stem), i.e. the rows its export no
    /// longer holds; every table is listed, zeros included.
    pub removed: BTreeMap<&'static str, u64>,
    /// Other users' rows removed because they depended on the subject's data (their
    /// subscriptions to, affiliations with and items on its PEP and push nodes), and why.
    pub consequences: Vec<Consequence>,
    /// Rows kept, and why.
    pub kept: Vec<Kept>,
    /// Time from the start of the erasure to its durable commit point.
    pub commit_time: Duration,
    /// Time spent deleting the erased records after the commit (the sweep).
    pub sweep_time: Duration,
    /// Set when the erasure committed but deleting the records afterwards failed (e.g. a
    /// full disk): the subject is erased for every read, and the deletion resumes when the
    /// store is next opened.
    pub sweep_error: Option<String>,
    /// A receipt of [`super::dry_run()`]: what the erasure would do; nothing was written.
    pub dry_run: bool,
    /// With [`super::EraseOptions::redact_kept`]: the kept rows moved to the subject's
    /// pseudonym (or, dry run, that would be), per table. They are then no longer in
    /// [`Receipt::kept`]. Rows are empty when [`Receipt::sweep_error`] is set: the
    /// pseudonymisation then resumes when the store is next opened.
    pub pseudonymised: Option<super::Pseudonymised>,
    pub(crate) pending_sweeps: Vec<u64>,
    pub(crate) pending_ranges: Vec<Tombstone>,
    pub(crate) pending_redaction: Option<super::Pseudonym>,
}

/// Data other users hold that names the subject; always true, so always said.
pub const OTHERS_NOTE: &str =
    "copies held by other users (their rosters, inboxes and 1-1 archives) belong to them and stay";

impl Receipt {
    pub(crate) fn new(subject: BareJid, plan: RemovalPlan, commit_time: Duration) -> Receipt {
        let mut removed: BTreeMap<&'static str, u64> =
            ext::tables().map(|t| (ext::stem(t.file), 0)).collect();
        for (class, n) in plan.removed {
            *removed.entry(class).or_default() += n;
        }
        Receipt {
            subject,
            removed,
            consequences: Vec::new(),
            kept: plan.kept,
            commit_time,
            sweep_time: Duration::ZERO,
            sweep_error: None,
            dry_run: false,
            pseudonymised: None,
            pending_sweeps: plan.sweeps,
            pending_ranges: Vec::new(),
            pending_redaction: None,
        }
    }

    /// Once pseudonymised, the kept rows counted under the JID are none: drops those entries
    /// (the receipt says the rows were pseudonymised instead).
    pub(crate) fn drop_pseudonymised_kept(&mut self) {
        if self.sweep_error.is_some() {
            return;
        }
        if let Some(p) = &self.pseudonymised {
            self.kept
                .retain(|k| !(p.rows.contains_key(k.class) && k.rows.is_none_or(|n| n == 0)));
        }
    }

    /// A dry run's [`Receipt::drop_pseudonymised_kept`]: the kept rows that would be
    /// pseudonymised are all those of the pseudonymised tables.
    pub(crate) fn drop_pseudonymised_kept_dry(&mut self) {
        if let Some(p) = &self.pseudonymised {
            let moved = |k: &Kept| {
                p.rows.contains_key(k.class)
                    && k.rows.is_none_or(|n| p.rows.get(k.class) == Some(&n))
            };
            self.kept.retain(|k| !moved(k));
        }
    }

    /// Adds what a sweep deleted.
    pub(crate) fn add_swept(&mut self, swept: Swept) {
        for (class, n) in swept.removed {
            *self.removed.entry(class).or_default() += n;
        }
        for ((class, reason, counted_as_subjects), n) in swept.others {
            match self
                .consequences
                .iter_mut()
                .find(|c| c.class == class && c.reason == reason)
            {
                Some(c) => c.rows += n,
                None => self.consequences.push(Consequence {
                    class,
                    rows: n,
                    reason,
                    counted_as_subjects,
                }),
            }
        }
    }

    /// Total rows removed: the subject's, and other users' removed as a consequence.
    pub fn total_removed(&self) -> u64 {
        let others: u64 = self
            .consequences
            .iter()
            .filter(|c| !c.counted_as_subjects)
            .map(|c| c.rows)
            .sum();
        self.removed.values().sum::<u64>() + others
    }
}

impl fmt::Display for Receipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dry_run {
            writeln!(
                f,
                "Dry run, nothing written: erasing {} would give",
                self.subject
            )?;
        } else if self.total_removed() == 0 && self.pseudonymised.is_some() {
            // Erased before: only the kept rows were left, now pseudonymised.
            writeln!(
                f,
                "Nothing left to erase for {}; the rows kept about it were pseudonymised",
                self.subject
            )?;
        } else {
            writeln!(f, "Erased {}", self.subject)?;
        }
        writeln!(f, "Removed:")?;
        // In export order, so the receipt reads like the zip's file list.
        for table in ext::tables() {
            let class = ext::stem(table.file);
            let n = self.removed.get(class).copied().unwrap_or(0);
            writeln!(f, "  {class:<26} {n}")?;
        }
        if !self.consequences.is_empty() {
            writeln!(f, "Removed as a consequence (rows of other users):")?;
            for c in &self.consequences {
                let also = if c.counted_as_subjects {
                    "; also counted above, as they were in the subject's export"
                } else {
                    ""
                };
                writeln!(f, "  {:<26} {} ({}{also})", c.class, c.rows, c.reason)?;
            }
        }
        writeln!(f, "Kept:")?;
        for k in &self.kept {
            match k.rows {
                Some(n) => writeln!(f, "  {:<26} {n} ({})", k.class, k.reason)?,
                None => writeln!(f, "  {:<26} ({})", k.class, k.reason)?,
            }
        }
        writeln!(f, "  {OTHERS_NOTE}")?;
        if let Some(p) = &self.pseudonymised {
            let done = if self.dry_run { "would be" } else { "were" };
            match &p.pseudonym {
                Some(name) => writeln!(
                    f,
                    "Pseudonymised (kept rows {done} moved from the subject's JID and nick to \
                     {name}, nick {}, in every index):",
                    name.nick()
                )?,
                None => writeln!(
                    f,
                    "Pseudonymised (kept rows {done} moved from the subject's JID and nick to \
                     a pseudonym keyed by this store, in every index):"
                )?,
            }
            for (class, n) in &p.rows {
                writeln!(f, "  {class:<26} {n}")?;
            }
        }
        if self.dry_run {
            return write!(f, "Nothing was written (dry run)");
        }
        if let Some(e) = &self.sweep_error {
            return write!(
                f,
                "Committed in {:.1} ms; deleting the erased records failed ({e}): it resumes \
                 when the store is next opened",
                self.commit_time.as_secs_f64() * 1e3
            );
        }
        write!(
            f,
            "Committed in {:.1} ms, records deleted in {:.1} ms",
            self.commit_time.as_secs_f64() * 1e3,
            self.sweep_time.as_secs_f64() * 1e3
        )
    }
}
