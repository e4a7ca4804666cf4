//! MAM queries (XEP-0313 filters, XEP-0059 paging) over one archive, through its indexes.
//!
//! Every filter narrows a seq interval or picks an index: `after-id`/`before-id` and the RSM
//! `after`/`before` are seq bounds, `start`/`end` become seq bounds by binary search over the
//! records (archive time, kept in each record, never decreases in seq order: O(log n) range
//! lookups of one record each), `with` picks a seq-suffixed index range, and
//! `ids` is a set of seqs. A page is then at most `max + 1` entries read from one end of one
//! key range, so no query form scans the archive. Only `count` reads the whole result set
//! (keys only), and only when asked for.

use std::collections::BTreeMap;

use super::records;
use super::{Archive, WithSource, record, resolve, with_item};
use crate::codec;
use crate::error::{Error, Result};
use crate::jid::Jid;
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::time::Timestamp;

/// Page size when a query gives no `max`.
pub const DEFAULT_MAX: usize = 50;

/// Where a page starts (XEP-0059).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PageFrom {
    /// The oldest matching messages.
    #[default]
    First,
    /// The messages right after this id (RSM `<after/>`).
    After(String),
    /// The messages right before this id; `None` (an empty `<before/>`) is the last page.
    Before(Option<String>),
}

/// A MAM query. Every filter is optional; all given filters must hold.
///
/// `start` and `end` (inclusive) compare against the **archive time**: the message's
/// timestamp, or the archive time of the message archived before it if that is later. With
/// clocks that never go back the two are equal; with clock skew, a message stamped earlier
/// than one archived before it is found at the earlier message's time, and results keep
/// archive order either way.
///
/// ```
/// use jidstore::ext::mam::{PageFrom, Query};
/// let q = Query {
///     with: Some(jidstore::Jid::parse("bob@example.org")?),
///     max: Some(20),
///     page: PageFrom::Before(None),
///     ..Query::default()
/// };
/// # let _ = q;
/// # Ok::<(), jidstore::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    /// 1-1: the other party; a bare JID matches every resource, a full JID matches exactly.
    /// Rooms: see [`crate::ext::mam::MucArchive::query`].
    pub with: Option<Jid>,
    /// Archive time at or after this.
    pub start: Option<Timestamp>,
    /// Archive time at or before this.
    pub end: Option<Timestamp>,
    /// Only messages archived after this id (exclusive).
    pub after_id: Option<String>,
    /// Only messages archived before this id (exclusive).
    pub before_id: Option<String>,
    /// Only these messages (in archive order, whatever the order given).
    pub ids: Option<Vec<String>>,
    /// Page size; [`DEFAULT_MAX`] when `None`.
    pub max: Option<usize>,
    /// Where the page starts.
    pub page: PageFrom,
    /// Return the page newest first (XEP-0313 `flip-page`).
    pub flip_page: bool,
    /// Count the whole result set (reads every matching key; off for cheap pages).
    pub count: bool,
}

/// One page of results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<M> {
    /// Oldest to newest, or newest to oldest with `flip_page`.
    pub messages: Vec<M>,
    /// Id of the first message as returned (RSM `<first/>`).
    pub first: Option<String>,
    /// Id of the last message as returned (RSM `<last/>`).
    pub last: Option<String>,
    /// No more results in the paging direction: after this page going forward, before it
    /// when paging with `before`.
    pub complete: bool,
    /// Size of the whole result set, when the query asked for it.
    pub count: Option<u64>,
}

/// One end of an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveEnd {
    /// The message id.
    pub id: String,
    /// Its timestamp.
    pub timestamp: Timestamp,
}

/// XEP-0313 archive metadata.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The oldest message, if any.
    pub first: Option<ArchiveEnd>,
    /// The newest message, if any.
    pub last: Option<ArchiveEnd>,
}

/// An inclusive seq interval, possibly empty.
#[derive(Clone, Copy)]
struct Seqs {
    lo: u64,
    hi: u64,
    empty: bool,
}

impl Seqs {
    fn all() -> Self {
        Seqs {
            lo: 0,
            hi: u64::MAX,
            empty: false,
        }
    }
    fn above(mut self, s: u64) -> Self {
        match s.checked_add(1) {
            Some(n) => self.lo = self.lo.max(n),
            None => self.empty = true,
        }
        self.fix()
    }
    fn below(mut self, s: u64) -> Self {
        match s.checked_sub(1) {
            Some(n) => self.hi = self.hi.min(n),
            None => self.empty = true,
        }
        self.fix()
    }
    fn fix(mut self) -> Self {
        self.empty |= self.lo > self.hi;
        self
    }
}

/// The messages a query can return, before paging.
enum Source<S> {
    Nothing,
    Records,
    Index {
        keyspace: Keyspace,
        prefix: Vec<u8>,
        exact: Option<String>,
    },
    Ids(BTreeMap<u64, S>),
}

fn seq_of<A: Archive>(store: &Store, a: &A, id: &str) -> Result<u64> {
    resolve(store, a, id)?
        .map(|(seq, _, _)| seq)
        .ok_or_else(|| Error::NotFound(format!("message id '{id}'")))
}

/// The smallest seq inside `seqs` whose record's archive time satisfies `past` (which must
/// be monotone: false, then true, in seq order), by binary search over the seq space. Each
/// probe is one range lookup of the first record at or after a seq, so it costs O(log of
/// the seq span) lookups whatever the archive size, and reads no index.
fn first_seq_where<A: Archive>(
    store: &Store,
    a: &A,
    seqs: Seqs,
    past: impl Fn(i64) -> bool,
) -> Result<Option<u64>> {
    let prefix = a.records_prefix();
    // The first record at or after `from`, up to `hi`: (seq, archive time).
    let probe = |from: u64, hi: u64| -> Result<Option<(u64, i64)>> {
        edge(store, A::RECORDS, &prefix, (from, hi), false, |e, i, _| {
            let (seq, s) = e.decode::<A::Stored>(i)?;
            Ok((seq, A::archive_time(&s)))
        })
    };
    if seqs.empty {
        return Ok(None);
    }
    let (mut lo, mut hi) = (seqs.lo, seqs.hi);
    let mut found = None;
    // Invariant: every record below `lo` fails `past`; `found` (if any) passes and every
    // record above `hi` is at or after it.
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        match probe(mid, hi)? {
            Some((s, t)) if past(t) => {
                found = Some(s);
                match mid.checked_sub(1) {
                    Some(m) => hi = m,
                    None => break,
                }
            }
            Some((s, _)) => match s.checked_add(1) {
                Some(n) => lo = n,
                None => break,
            },
            None => match mid.checked_sub(1) {
                Some(m) => hi = m,
                None => break,
            },
        }
    }
    Ok(found)
}

/// `f` of the first value with a seq in `range` under `prefix`, from the low end or (with
/// `backward`) the high end.
fn edge<R>(
    store: &Store,
    ks: Keyspace,
    prefix: &[u8],
    range: (u64, u64),
    backward: bool,
    f: impl Fn(&codec::Entries<'_>, usize, u64) -> Result<R>,
) -> Result<Option<R>> {
    let mut found = None;
    records::visit(store, ks, prefix, range, backward, |e, i, seq| {
        found = Some(f(e, i, seq)?);
        Ok(false)
    })?;
    Ok(found)
}

/// Narrows `seqs` to archive times in `[start, end]`, by binary search over the records.
fn time_bounds<A: Archive>(store: &Store, a: &A, q: &Query, mut seqs: Seqs) -> Result<Seqs> {
    if q.start.is_none() && q.end.is_none() {
        return Ok(seqs);
    }
    // Start the search from the seqs the archive really holds (two lookups), not from the
    // whole u64 space: a few probes less.
    let prefix = a.records_prefix();
    let end = |backward| {
        edge(
            store,
            A::RECORDS,
            &prefix,
            (seqs.lo, seqs.hi),
            backward,
            |_, _, seq| Ok(seq),
        )
    };
    let (Some(first), Some(last)) = (end(false)?, end(true)?) else {
        seqs.empty = true;
        return Ok(seqs);
    };
    seqs.lo = first;
    seqs.hi = last;
    if let Some(start) = q.start {
        let start = start.as_micros();
        match first_seq_where(store, a, seqs, |t| t >= start)? {
            Some(s) => seqs.lo = s,
            None => seqs.empty = true,
        }
    }
    if let Some(end) = q.end {
        let end = end.as_micros();
        if let Some(s) = first_seq_where(store, a, seqs.fix(), |t| t > end)? {
            seqs = seqs.below(s);
        }
    }
    Ok(seqs.fix())
}

/// Resolves every id field (unknown ids fail here, before any early return) and builds the
/// seq interval and the source of the result set. Returns also the paging interval.
fn plan<A: Archive>(
    store: &Store,
    a: &A,
    q: &Query,
) -> Result<(Source<A::Stored>, Seqs, Seqs, bool)> {
    let mut seqs = Seqs::all();
    if let Some(id) = &q.after_id {
        seqs = seqs.above(seq_of(store, a, id)?);
    }
    if let Some(id) = &q.before_id {
        seqs = seqs.below(seq_of(store, a, id)?);
    }
    let picked = match &q.ids {
        Some(ids) => {
            let mut m = BTreeMap::new();
            for id in ids {
                let (seq, _, s) = resolve(store, a, id)?
                    .ok_or_else(|| Error::NotFound(format!("message id '{id}'")))?;
                m.insert(seq, s);
            }
            Some(m)
        }
        None => None,
    };
    let rsm = match &q.page {
        PageFrom::After(id) | PageFrom::Before(Some(id)) => Some(seq_of(store, a, id)?),
        PageFrom::First | PageFrom::Before(None) => None,
    };
    let seqs = time_bounds(store, a, q, seqs)?;
    let backward = matches!(q.page, PageFrom::Before(_));
    let paging = match (rsm, backward) {
        (None, _) => seqs,
        (Some(s), false) => seqs.above(s),
        (Some(s), true) => seqs.below(s),
    };
    let source = match (picked, &q.with) {
        (Some(mut m), with) => {
            if let Some(w) = with {
                m.retain(|_, s| a.matches_with(s, w));
            }
            Source::Ids(m)
        }
        (None, None) => Source::Records,
        (None, Some(w)) => match a.with_source(w) {
            WithSource::All => Source::Records,
            WithSource::Nothing => Source::Nothing,
            WithSource::Index {
                keyspace,
                prefix,
                exact,
            } => Source::Index {
                keyspace,
                prefix,
                exact,
            },
        },
    };
    Ok((source, seqs, paging, backward))
}

/// Whether value `i` of a `with` entry of `mam_pm` names exactly `exact` (no filter when
/// `None`).
fn exact_match(e: &codec::Entries<'_>, i: usize, exact: Option<&String>) -> Result<bool> {
    match exact {
        None => Ok(true),
        Some(j) => Ok(with_item(e, i)?.1 == j.as_str()),
    }
}

/// Up to `take` messages of the result set inside `seqs`, from the low end or the high end.
fn collect<A: Archive>(
    store: &Store,
    a: &A,
    source: &Source<A::Stored>,
    seqs: Seqs,
    backward: bool,
    take: usize,
) -> Result<Vec<(u64, A::Stored)>>
where
    A::Stored: Clone,
{
    let mut out = Vec::new();
    if seqs.empty || take == 0 {
        return Ok(out);
    }
    match source {
        Source::Nothing => {}
        Source::Ids(m) => {
            let it = m.range(seqs.lo..=seqs.hi).map(|(s, v)| (*s, v.clone()));
            out = if backward {
                it.rev().take(take).collect()
            } else {
                it.take(take).collect()
            };
        }
        Source::Records => {
            let range = (seqs.lo, seqs.hi);
            records::visit(
                store,
                A::RECORDS,
                &a.records_prefix(),
                range,
                backward,
                |e, i, _| {
                    out.push(e.decode::<A::Stored>(i)?);
                    Ok(out.len() < take)
                },
            )?;
        }
        Source::Index {
            keyspace,
            prefix,
            exact,
        } => {
            let range = (seqs.lo, seqs.hi);
            if *keyspace == Keyspace::MamPm {
                // A 1-1 `with` entry names the record entry: the records of up to as many
                // entries as the page still lacks are read together (one batched read).
                let records_prefix = a.records_prefix();
                let mut pending: Vec<(Vec<u8>, u64)> = Vec::new();
                records::visit(store, *keyspace, prefix, range, backward, |e, i, seq| {
                    if !exact_match(e, i, exact.as_ref())? {
                        return Ok(true);
                    }
                    let (_, _, block) = with_item(e, i)?;
                    pending.push((keys::prefix_seq(&records_prefix, block), seq));
                    if pending.len() == take - out.len() {
                        resolve_pending::<A>(store, &mut pending, &mut out)?;
                    }
                    Ok(out.len() < take)
                })?;
                resolve_pending::<A>(store, &mut pending, &mut out)?;
            } else {
                records::visit(store, *keyspace, prefix, range, backward, |e, i, seq| {
                    if !exact_match(e, i, exact.as_ref())? {
                        return Ok(true);
                    }
                    // No record: an index entry left by an import cut short; skip it.
                    if let Some(s) = record::<A>(store, a, seq)? {
                        out.push((seq, s));
                    }
                    Ok(out.len() < take)
                })?;
            }
        }
    }
    Ok(out)
}

/// Reads the records `pending` names (record entry key, seq) and appends those found to
/// `out` in the same order; an index entry with no record (left by an import cut short) is
/// skipped. Empties `pending`.
fn resolve_pending<A: Archive>(
    store: &Store,
    pending: &mut Vec<(Vec<u8>, u64)>,
    out: &mut Vec<(u64, A::Stored)>,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let found = records::find_many_at::<A::Stored>(store, A::RECORDS, pending)?;
    for ((_, seq), s) in pending.drain(..).zip(found) {
        if let Some(s) = s {
            out.push((seq, s));
        }
    }
    Ok(())
}

/// Size of the result set inside `seqs` (keys only).
fn count<A: Archive>(store: &Store, a: &A, source: &Source<A::Stored>, seqs: Seqs) -> Result<u64> {
    if seqs.empty {
        return Ok(0);
    }
    let mut n = 0u64;
    match source {
        Source::Nothing => {}
        Source::Ids(m) => n = m.range(seqs.lo..=seqs.hi).count() as u64,
        Source::Records => {
            let range = (seqs.lo, seqs.hi);
            records::visit(
                store,
                A::RECORDS,
                &a.records_prefix(),
                range,
                false,
                |_, _, _| {
                    n += 1;
                    Ok(true)
                },
            )?;
        }
        Source::Index {
            keyspace,
            prefix,
            exact,
        } => {
            let range = (seqs.lo, seqs.hi);
            records::visit(store, *keyspace, prefix, range, false, |e, i, _| {
                if exact_match(e, i, exact.as_ref())? {
                    n += 1;
                }
                Ok(true)
            })?;
        }
    }
    Ok(n)
}

/// Runs `q` over archive `a`, turning each record into a message with `to_message`.
pub(super) fn run<A: Archive, M>(
    store: &Store,
    a: &A,
    q: &Query,
    to_message: impl Fn(u64, A::Stored) -> M,
) -> Result<Page<M>>
where
    A::Stored: Clone,
{
    let (source, seqs, paging, backward) = plan(store, a, q)?;
    let max = q.max.unwrap_or(DEFAULT_MAX);
    let mut items = collect(store, a, &source, paging, backward, max.saturating_add(1))?;
    let complete = items.len() <= max;
    items.truncate(max);
    if backward != q.flip_page {
        items.reverse();
    }
    let id = |(seq, s): &(u64, A::Stored)| A::stored_id(s).public(*seq);
    let first = items.first().map(id);
    let last = items.last().map(id);
    let count = if q.count {
        Some(count(store, a, &source, seqs)?)
    } else {
        None
    };
    Ok(Page {
        messages: items
            .into_iter()
            .map(|(seq, s)| to_message(seq, s))
            .collect(),
        first,
        last,
        complete,
        count,
    })
}

/// The first and last record of archive `a`.
pub(super) fn metadata<A: Archive>(store: &Store, a: &A) -> Result<Metadata> {
    let prefix = a.records_prefix();
    let end = |backward| {
        edge(
            store,
            A::RECORDS,
            &prefix,
            (0, u64::MAX),
            backward,
            |e, i, _| {
                let (seq, s) = e.decode::<A::Stored>(i)?;
                Ok(ArchiveEnd {
                    id: A::stored_id(&s).public(seq),
                    timestamp: A::timestamp(&s),
                })
            },
        )
    };
    Ok(Metadata {
        first: end(false)?,
        last: end(true)?,
    })
}
