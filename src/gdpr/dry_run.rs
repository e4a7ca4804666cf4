//! A dry run of an erasure: the receipt [`super::remove`] would give, with nothing written.

use std::time::Duration;

use super::{EraseOptions, Receipt};
use crate::error::{Error, Result};
use crate::ext::{EXTENSIONS, RemovalPlan, Swept};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;

/// What erasing `subject` would remove and keep, as the receipt [`super::remove`] would
/// return it (its counts, consequences and kept rows; [`Receipt::dry_run`] set, no
/// timings), without writing anything: the plan is made as an erasure makes it, then the
/// ranges and the archive the sweep would delete are read and counted the way the sweep
/// counts them.
///
/// Fails with [`Error::NoPersonalData`] when the store holds nothing about `subject`, as
/// [`super::remove`] does. The counts are those of the moment: writes for the subject that
/// land before the real erasure change them.
pub fn dry_run(store: &Store, subject: &BareJid) -> Result<Receipt> {
    dry_run_with(store, subject, &EraseOptions::default())
}

/// [`dry_run`] of [`super::remove_with`]: with [`EraseOptions::redact_kept`], the receipt's
/// [`Receipt::pseudonymised`] counts the kept rows that would be moved to the pseudonym
/// (named when the store already has its key; nothing is written to make one).
pub fn dry_run_with(store: &Store, subject: &BareJid, options: &EraseOptions) -> Result<Receipt> {
    let mut plan = RemovalPlan::default();
    {
        // Planned as the erasure plans: no writer for the subject in between.
        let _guard = store.eraser()?;
        for ext in EXTENSIONS {
            ext.plan_removal(store, subject, &mut plan)?;
        }
    }
    let nothing = plan.removes.is_empty() && plan.sweeps.is_empty() && plan.ranges.is_empty();
    if nothing && plan.kept.is_empty() && !super::holds_kept(store, subject)? {
        return Err(Error::NoPersonalData(subject.to_string()));
    }
    let ranges = plan.ranges.clone();
    let mut receipt = Receipt::new(subject.clone(), plan, Duration::ZERO);
    receipt.dry_run = true;
    for archive in std::mem::take(&mut receipt.pending_sweeps) {
        let (table, n) = crate::ext::sweep_archive(store, archive, true)?;
        *receipt.removed.entry(table).or_default() += n;
    }
    for (ks, prefix) in &ranges {
        let class = crate::ext::owner_of(*ks)
            .ok_or_else(|| keys::corrupt(*ks, prefix, "a range planned in a system keyspace"))?;
        let mut swept = Swept::default();
        crate::ext::for_each_entry(store, *ks, prefix, |key, value| {
            class.swept(*ks, key, value, subject, &mut swept)?;
            swept.also.clear();
            Ok(true)
        })?;
        receipt.add_swept(swept);
    }
    let gone = |ks: Keyspace, key: &[u8]| {
        store.hidden(ks, key) || ranges.iter().any(|(r, p)| *r == ks && key.starts_with(p))
    };
    // As in the erasure: a failed count leaves that row count unknown.
    for ext in EXTENSIONS {
        let _ = ext.count_kept(store, subject, &gone, &mut receipt.kept);
    }
    if options.redact_kept {
        receipt.pseudonymised = Some(super::Pseudonymised {
            pseudonym: super::redact::pseudonym(store, subject, false)?,
            rows: super::redact::count(store, subject, &gone)?,
        });
        receipt.drop_pseudonymised_kept_dry();
    }
    Ok(receipt)
}
