//! Storage limitation (GDPR Art. 5(1)(e)): retention policies and [`expire`], which applies
//! them.
//!
//! A [`Retention`] policy has a default [`Rule`], rules per domain and rules per bare JID
//! (an account, or a room for the group-chat limits). Each limit of a rule is resolved on
//! its own, the most specific first: the JID's rule, then its domain's, then the default;
//! `"never"` at a more specific level lifts a limit set above it. Written as JSON
//! ([`Retention::from_json`]):
//!
//! ```json
//! {
//!   "default": { "archive_days": 365, "offline_days": 30 },
//!   "domains": { "conference.example.org": { "room_days": 90 } },
//!   "jids": { "alice@example.org": { "archive_days": "never", "archive_max": 10000 } }
//! }
//! ```
//!
//! Limits: `archive_days` / `archive_max` (a 1-1 archive: messages archived more than N days
//! ago / all but the newest N), `room_days` / `room_max` (a room's archive), `offline_days`
//! (offline messages that arrived more than N days ago). Unknown names are refused, so a typo
//! cannot silently keep data for ever.
//!
//! [`expire`] deletes in bounded chunks (see [`crate::ext::mam::Trim`]): a crash leaves each
//! archive with a shorter prefix removed, never a hole, and running it again finishes.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::{self, Deserializer};

use crate::error::{Error, Result};
use crate::ext::mam::Trim;
use crate::jid::BareJid;
use crate::store::Store;
use crate::time::Timestamp;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// One limit of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// No limit (also lifts a limit a less specific rule sets).
    Never,
    /// At most this many days, or messages.
    At(u64),
}

/// The limits that apply to one JID or domain; `None` leaves a limit to the less specific
/// rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Rule {
    /// 1-1 archive: remove messages archived more than this many days ago.
    #[serde(default, deserialize_with = "days")]
    pub archive_days: Option<Limit>,
    /// 1-1 archive: keep at most the newest this many messages.
    #[serde(default, deserialize_with = "count")]
    pub archive_max: Option<Limit>,
    /// Room archive: remove messages archived more than this many days ago.
    #[serde(default, deserialize_with = "days")]
    pub room_days: Option<Limit>,
    /// Room archive: keep at most the newest this many messages.
    #[serde(default, deserialize_with = "count")]
    pub room_max: Option<Limit>,
    /// Offline messages: remove those that arrived more than this many days ago.
    #[serde(default, deserialize_with = "days")]
    pub offline_days: Option<Limit>,
}

impl Rule {
    /// Each limit of `self`, else of `other`.
    fn or(self, other: Rule) -> Rule {
        Rule {
            archive_days: self.archive_days.or(other.archive_days),
            archive_max: self.archive_max.or(other.archive_max),
            room_days: self.room_days.or(other.room_days),
            room_max: self.room_max.or(other.room_max),
            offline_days: self.offline_days.or(other.offline_days),
        }
    }
}

/// A retention policy: a default rule, rules per domain and per bare JID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Applies to every JID without a more specific limit.
    pub default: Rule,
    /// Rules per domain (normalised).
    pub domains: BTreeMap<String, Rule>,
    /// Rules per bare JID (normalised): accounts, and rooms for the room limits.
    pub jids: BTreeMap<String, Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    default: Rule,
    #[serde(default)]
    domains: BTreeMap<String, Rule>,
    #[serde(default)]
    jids: BTreeMap<String, Rule>,
}

impl Retention {
    /// Reads a policy from its JSON form (module docs). Domains and JIDs are normalised;
    /// an invalid one, an unknown name or a day count of 0 is an [`Error::InvalidInput`]
    /// naming where.
    pub fn from_json(text: &str) -> Result<Retention> {
        let file: File = serde_json::from_str(text)
            .map_err(|e| Error::InvalidInput(format!("retention policy: {e}")))?;
        let mut policy = Retention {
            default: file.default,
            ..Retention::default()
        };
        for (domain, rule) in file.domains {
            let d = BareJid::domain_only(&domain).map_err(|e| {
                Error::InvalidInput(format!("retention policy: domain {domain:?}: {e}"))
            })?;
            policy.domains.insert(d.domain().to_owned(), rule);
        }
        for (jid, rule) in file.jids {
            let j = BareJid::parse(&jid)
                .map_err(|e| Error::InvalidInput(format!("retention policy: JID {jid:?}: {e}")))?;
            policy.jids.insert(j.as_str().to_owned(), rule);
        }
        Ok(policy)
    }

    /// The limits that apply to `jid`, each from the most specific rule that sets it.
    pub fn rule_for(&self, jid: &BareJid) -> Rule {
        let own = self.jids.get(jid.as_str()).copied().unwrap_or_default();
        let domain = self.domains.get(jid.domain()).copied().unwrap_or_default();
        own.or(domain).or(self.default)
    }
}

fn days<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Limit>, D::Error> {
    match limit(d)? {
        Limit::At(0) => Err(de::Error::custom(
            "a number of days must be at least 1 (or \"never\")",
        )),
        l => Ok(Some(l)),
    }
}

fn count<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Limit>, D::Error> {
    limit(d).map(Some)
}

fn limit<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Limit, D::Error> {
    struct V;
    impl de::Visitor<'_> for V {
        type Value = Limit;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a whole number or \"never\"")
        }
        fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<Limit, E> {
            Ok(Limit::At(n))
        }
        fn visit_str<E: de::Error>(self, w: &str) -> std::result::Result<Limit, E> {
            if w == "never" {
                Ok(Limit::Never)
            } else {
                Err(E::invalid_value(de::Unexpected::Str(w), &self))
            }
        }
    }
    d.deserialize_any(V)
}

/// What [`expire`] removed (or, in a dry run, would remove).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExpiryReport {
    /// Nothing was written.
    pub dry_run: bool,
    /// The time the limits were measured from.
    pub now: Timestamp,
    /// Accounts whose limits were applied (every account).
    pub accounts: u64,
    /// Rooms whose limits were applied (every room with an archive).
    pub rooms: u64,
    /// Counts per domain.
    pub domains: BTreeMap<String, ExpiryCounts>,
}

/// Messages removed for one domain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExpiryCounts {
    /// From 1-1 archives.
    pub archive_messages: u64,
    /// From room archives.
    pub room_messages: u64,
    /// Offline messages.
    pub offline_messages: u64,
}

impl ExpiryReport {
    /// Totals over every domain.
    pub fn total(&self) -> ExpiryCounts {
        let mut t = ExpiryCounts::default();
        for c in self.domains.values() {
            t.archive_messages += c.archive_messages;
            t.room_messages += c.room_messages;
            t.offline_messages += c.offline_messages;
        }
        t
    }
}

/// The trim a days limit and a count limit make, measured from `now`.
fn trim_of(days: Option<Limit>, max: Option<Limit>, now: Timestamp) -> Trim {
    let mut trim = Trim::default();
    if let Some(Limit::At(d)) = days {
        let age = i64::try_from(d)
            .unwrap_or(i64::MAX)
            .saturating_mul(MICROS_PER_DAY);
        trim.before = Some(Timestamp::from_micros(now.as_micros().saturating_sub(age)));
    }
    if let Some(Limit::At(n)) = max {
        trim.keep_newest = Some(n);
    }
    trim
}

/// Applies `policy` at `now` to every account's 1-1 archive and offline messages and to
/// every room's archive, oldest messages first, in bounded chunks; with `dry_run`, counts
/// what would go and writes nothing. Flushes before returning, so what the report counts as
/// removed is durable. For a server to run periodically, or `jidstore expire`.
pub fn expire(
    store: &Store,
    policy: &Retention,
    now: Timestamp,
    dry_run: bool,
) -> Result<ExpiryReport> {
    let mut report = ExpiryReport {
        dry_run,
        now,
        accounts: 0,
        rooms: 0,
        domains: BTreeMap::new(),
    };
    // Streamed (flat memory over any number of accounts): a trim writes neither the
    // accounts nor the room list it walks.
    for jid in store.accounts().users(None, None)? {
        let jid = &jid?;
        let rule = policy.rule_for(jid);
        let trim = trim_of(rule.archive_days, rule.archive_max, now);
        let mam = store.mam();
        let archived = if dry_run {
            mam.count_trim(jid, &trim)?
        } else {
            mam.trim(jid, &trim)?
        };
        let offline = match trim_of(rule.offline_days, None, now).before {
            Some(before) if dry_run => store.offline().count_before(jid, before)?,
            Some(before) => store.offline().remove_before(jid, before)?,
            None => 0,
        };
        let c = report.domains.entry(jid.domain().to_owned()).or_default();
        c.archive_messages += archived;
        c.offline_messages += offline;
        report.accounts += 1;
    }
    for room in store.muc().rooms() {
        let room = &room?;
        let rule = policy.rule_for(room);
        let trim = trim_of(rule.room_days, rule.room_max, now);
        let removed = if dry_run {
            store.muc().count_trim(room, &trim)?
        } else {
            store.muc().trim(room, &trim)?
        };
        let c = report.domains.entry(room.domain().to_owned()).or_default();
        c.room_messages += removed;
        report.rooms += 1;
    }
    if !dry_run {
        store.flush()?;
    }
    Ok(report)
}
