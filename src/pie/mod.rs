//! XEP-0227 (Portable Import/Export Format, v1.1): import of whole server exports and
//! export of one user, so operators can migrate from ejabberd, Prosody, Openfire or Tigase
//! and users can take their data away.
//!
//! Import reads `urn:xmpp:pie:0` and the pre-1.0 namespace, resolves `XInclude` at the
//! `server-data` and `host` levels and as direct children of `<user>` (relative paths inside
//! the including file's directory only), and imports each user
//! all-or-nothing. The input is streamed twice: a first pass checks everything (each user
//! parsed child by child, archived messages one at a time, so memory does not grow with an
//! archive) and writes nothing; a second pass reads each accepted user again and writes it,
//! the archive in chunks through [`crate::ext::mam::Mam::append_bulk`]. If a write fails
//! midway, what was written for that user is erased with [`crate::gdpr::remove`].
//! A crash (power loss, SIGKILL) during a user's writes can leave that user partially
//! imported: a re-run refuses the existing account, so erase it with `jidstore unregister`
//! and import again.
//!
//! ```
//! use jidstore::{BareJid, Config, pie};
//! let dir = tempfile::tempdir()?;
//! let store = Config::new(dir.path().join("data")).scram_iterations(4096).open()?;
//! let file = dir.path().join("export.xml");
//! std::fs::write(&file, "<server-data xmlns='urn:xmpp:pie:0'><host jid='example.org'>\
//!     <user name='alice' password='secret'/></host></server-data>")?;
//! let report = pie::import_file(&store, &file, &pie::ImportOptions::default())?;
//! assert_eq!(report.imported.len(), 1);
//! let alice = BareJid::parse("alice@example.org")?;
//! assert!(store.accounts().check_password(&alice, "secret")?);
//! let mut xml = Vec::new();
//! pie::export(&store, &alice, &mut xml)?;
//! assert!(String::from_utf8(xml)?.contains("<scram-credentials"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

mod dom;
mod export;
mod import;
mod stream;
mod user;

pub use export::{export, export_to_path};
#[cfg(feature = "cli")]
pub(crate) use import::open_error;
pub use import::{PROGRESS_FLUSH_INTERVAL, import_file, import_file_with_progress, validate_bytes};

/// The XEP-0227 namespace.
pub const NS_PIE: &str = "urn:xmpp:pie:0";
/// The namespace of XEP-0227 before version 1.0, still written by some servers.
pub const NS_PIE_OLD: &str = "http://www.xmpp.org/extensions/xep-0227.html#ns";
const NS_SCRAM: &str = "urn:xmpp:pie:0#scram";
const NS_MAM_ARCHIVE: &str = "urn:xmpp:pie:0#mam";
const NS_ROSTER: &str = "jabber:iq:roster";
const NS_PRIVATE: &str = "jabber:iq:private";
const NS_PRIVACY: &str = "jabber:iq:privacy";
const NS_VCARD: &str = "vcard-temp";
const NS_CLIENT: &str = "jabber:client";
const NS_DELAY: &str = "urn:xmpp:delay";
const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const NS_PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
const NS_DATA: &str = "jabber:x:data";
const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_SID: &str = "urn:xmpp:sid:0";
const NS_NICK: &str = "http://jabber.org/protocol/nick";

/// What to do with a timestamp that is not XEP-0082 (e.g. Openfire's `Thu Jan 21 14:17:35
/// CET 2016`) or a MAM result without one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BadTimestamps {
    /// Refuse the user that holds it (reported; nothing written for that user). The
    /// default: nothing is altered unless the operator asks, and `dry_run` shows every case.
    #[default]
    Reject,
    /// Use the import time; an offline message's `<delay/>` stamp is rewritten to match.
    Now,
    /// Drop the message that holds it.
    Skip,
}

/// How an import runs.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Handling of timestamps that are not XEP-0082.
    pub bad_timestamps: BadTimestamps,
    /// Import what can be found when `xi:include` targets are missing (each is reported and
    /// the import still counts as failed). Without it a missing target is an error before
    /// anything is written.
    pub skip_missing_includes: bool,
    /// Parse and check everything, report, write nothing.
    pub dry_run: bool,
    /// Archived messages per `append_bulk` call (0: `mam::BULK_CHUNK`); for tests.
    #[doc(hidden)]
    pub archive_chunk: usize,
    /// Import users that the store's erasure ledger ([`crate::gdpr::ledger`]) says were
    /// erased here. Without it they are skipped and listed in [`ImportReport::erased`]: the
    /// erasure is re-applied, as a restore of an old backup would otherwise undo it.
    pub import_erased: bool,
}

impl ImportOptions {
    /// Sets [`ImportOptions::bad_timestamps`].
    #[must_use]
    pub fn bad_timestamps(mut self, b: BadTimestamps) -> Self {
        self.bad_timestamps = b;
        self
    }
    /// Sets [`ImportOptions::skip_missing_includes`].
    #[must_use]
    pub fn skip_missing_includes(mut self, yes: bool) -> Self {
        self.skip_missing_includes = yes;
        self
    }
    /// Sets [`ImportOptions::import_erased`].
    #[must_use]
    pub fn import_erased(mut self, yes: bool) -> Self {
        self.import_erased = yes;
        self
    }
    /// Sets [`ImportOptions::dry_run`].
    #[must_use]
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }
    /// Sets the archive chunk size (tests exercise several chunks with small archives).
    #[doc(hidden)]
    #[must_use]
    pub fn archive_chunk(mut self, n: usize) -> Self {
        self.archive_chunk = n;
        self
    }
}

/// Something in the input that was not imported as written: where, and what was done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file (the including file's relative path joined with the href for includes).
    pub file: PathBuf,
    /// 1-based line of the element (0 when the file itself is the problem).
    pub line: u32,
    /// What was wrong and what was done about it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
    }
}

/// What an import did.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    /// Users written (or, in a dry run, that would be written), as bare JIDs.
    pub imported: Vec<String>,
    /// Users refused, with the reason (also in `problems`).
    pub failed: Vec<(String, String)>,
    /// Users skipped because this store erased them (also in `problems`); not a failure.
    pub erased: Vec<String>,
    /// Records written (in a dry run: that would be written) per class (CSV stem: `roster`,
    /// `offline`, `pubsub_items`...).
    pub items: BTreeMap<&'static str, u64>,
    /// Everything reported, in document order.
    pub problems: Vec<Problem>,
    /// `xi:include` targets that were missing (also in `problems`).
    pub missing_includes: usize,
    /// A dry run: `imported` and `items` are what would be written; nothing was.
    pub dry_run: bool,
}

impl ImportReport {
    /// Whether every user in the input was imported and no include was missing.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty() && self.missing_includes == 0
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.dry_run {
            write!(
                f,
                "dry run, nothing written: users that would be imported: {}, would fail: {}, problems reported: {}",
                self.imported.len(),
                self.failed.len(),
                self.problems.len()
            )?;
        } else {
            write!(
                f,
                "users imported: {}, failed: {}, problems reported: {}",
                self.imported.len(),
                self.failed.len(),
                self.problems.len()
            )?;
        }
        if self.missing_includes > 0 {
            write!(f, " (missing includes: {})", self.missing_includes)?;
        }
        for (class, n) in &self.items {
            write!(f, "\n  {class}: {n}")?;
        }
        for (user, why) in &self.failed {
            write!(f, "\n  failed {user}: {why}")?;
        }
        for user in &self.erased {
            write!(
                f,
                "\n  skipped {user}: erased here (--import-erased imports it)"
            )?;
        }
        Ok(())
    }
}
