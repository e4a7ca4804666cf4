//! The GDPR invariant checker: retrieve, unregister, retrieve again, compare.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Cursor;

use super::Deployment;
use crate::error::Error;
use crate::gdpr::{self, ExportOptions, Receipt};
use crate::jid::BareJid;
use crate::store::Store;
use crate::time::Timestamp;

/// Export files erasure keeps rows in (DESIGN.md section 2): group-chat messages the subject
/// sent, flat nodes, items published on others' nodes, the flat nodes' affiliations. Every
/// other file of the subject's export is empty after erasure.
pub const KEPT_FILES: [&str; 4] = [
    "mam_muc.csv",
    "pubsub_nodes.csv",
    "pubsub_items.csv",
    "pubsub_affiliations.csv",
];

/// When a check ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// On the deployment as applied, before erasure.
    Before,
    /// After the subject's erasure.
    After,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Before => "before erasure",
            Phase::After => "after erasure",
        })
    }
}

/// The first GDPR promise [`check_gdpr`] found broken.
#[derive(Debug)]
#[non_exhaustive]
pub enum Violation {
    /// An export's file does not hold the rows the deployment says it should.
    Rows {
        /// When.
        phase: Phase,
        /// Whose export.
        jid: BareJid,
        /// The file.
        file: &'static str,
        /// Rows the deployment predicts.
        expected: u64,
        /// Rows the export holds.
        found: u64,
    },
    /// After erasure, the subject's export still holds rows of a removed class.
    LeftBehind {
        /// The subject.
        subject: BareJid,
        /// The file (not one of [`KEPT_FILES`]).
        file: &'static str,
        /// Rows still there.
        rows: u64,
    },
    /// Another JID's export changed although erasing the subject should not touch it.
    OtherChanged {
        /// The subject erased.
        subject: BareJid,
        /// Whose export changed.
        jid: BareJid,
    },
    /// `verify` found problems.
    Verify {
        /// When.
        phase: Phase,
        /// The report.
        report: String,
    },
    /// A store operation failed.
    Store {
        /// What was being done.
        doing: &'static str,
        /// The error.
        error: Error,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Rows {
                phase,
                jid,
                file,
                expected,
                found,
            } => write!(
                f,
                "{phase}: export of {jid} has {found} rows in {file}, expected {expected}"
            ),
            Violation::LeftBehind {
                subject,
                file,
                rows,
            } => write!(
                f,
                "after erasure of {subject}: {rows} rows left in {file}, a removed class"
            ),
            Violation::OtherChanged { subject, jid } => {
                write!(f, "export of {jid} changed when {subject} was erased")
            }
            Violation::Verify { phase, report } => write!(f, "{phase}: verify: {report}"),
            Violation::Store { doing, error } => write!(f, "{doing}: {error}"),
        }
    }
}

impl std::error::Error for Violation {}

/// What [`check_gdpr`] saw when every promise held.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GdprCheck {
    /// The erased JID.
    pub subject: BareJid,
    /// The subject's export rows per file before erasure.
    pub before: BTreeMap<&'static str, u64>,
    /// The subject's export rows per file after erasure (only [`KEPT_FILES`] non-zero).
    pub after: BTreeMap<&'static str, u64>,
    /// The erasure's receipt.
    pub receipt: Receipt,
    /// Other JIDs whose exports were compared.
    pub others: usize,
}

type Export = (Option<Vec<u8>>, BTreeMap<&'static str, u64>);

/// The zip bytes (`None` when the store holds nothing) and rows per file of `jid`'s export
/// (every file listed, zeros included).
fn export(store: &Store, jid: &BareJid) -> Result<Export, Violation> {
    let mut sink = Cursor::new(Vec::new());
    let options = ExportOptions::default().timestamp(Timestamp::from_secs(1_700_000_000));
    match gdpr::retrieve(store, jid, &mut sink, &options) {
        Ok(summary) => {
            let rows = summary.files.iter().map(|f| (f.name, f.rows)).collect();
            Ok((Some(sink.into_inner()), rows))
        }
        Err(Error::NoPersonalData(_)) => {
            Ok((None, crate::ext::tables().map(|t| (t.file, 0)).collect()))
        }
        Err(error) => Err(Violation::Store {
            doing: "retrieve_personal_data",
            error,
        }),
    }
}

fn compare(
    phase: Phase,
    jid: &BareJid,
    expected: &BTreeMap<&'static str, u64>,
    found: &BTreeMap<&'static str, u64>,
) -> Result<(), Violation> {
    for (file, want) in expected {
        let got = found.get(file).copied().unwrap_or(0);
        if got != *want {
            return Err(Violation::Rows {
                phase,
                jid: jid.clone(),
                file,
                expected: *want,
                found: got,
            });
        }
    }
    Ok(())
}

fn verify(store: &Store, phase: Phase) -> Result<(), Violation> {
    let report = crate::verify(store).map_err(|error| Violation::Store {
        doing: "verify",
        error,
    })?;
    if report.is_clean() {
        Ok(())
    } else {
        Err(Violation::Verify {
            phase,
            report: report.to_string(),
        })
    }
}

/// Runs retrieve, then unregister (`gdpr::remove`), on `deployment` (already applied with
/// [`Deployment::apply`] to `store`, which held nothing else) for `subject`, and checks:
///
/// 1. `verify` is clean, and every JID's export holds the rows the deployment predicts;
/// 2. erasure succeeds and `verify` is still clean;
/// 3. the subject's export holds rows only in [`KEPT_FILES`], as many as predicted;
/// 4. every other JID's export holds what [`Deployment::erased`] predicts, and is
///    byte-identical to before unless it is [`Deployment::touched_by_erasure`] (it
///    published or subscribed on the subject's PEP and push nodes).
///
/// Exports are taken with a fixed timestamp, so unchanged data gives identical zips.
pub fn check_gdpr(
    store: &Store,
    deployment: &Deployment,
    subject: &BareJid,
) -> Result<GdprCheck, Violation> {
    check_gdpr_with(store, deployment, subject, gdpr::remove)
}

/// [`check_gdpr`] with the erasure supplied, e.g. a server's own unregister path that ends
/// in `gdpr::remove` (or, in a test of the checker, a deliberately faulty one).
pub fn check_gdpr_with<F>(
    store: &Store,
    deployment: &Deployment,
    subject: &BareJid,
    erase: F,
) -> Result<GdprCheck, Violation>
where
    F: FnOnce(&Store, &BareJid) -> crate::Result<Receipt>,
{
    verify(store, Phase::Before)?;
    let mut jids = deployment.jids();
    if !jids.contains(subject) {
        jids.push(subject.clone());
    }
    let mut before = BTreeMap::new();
    for j in &jids {
        let (bytes, rows) = export(store, j)?;
        compare(Phase::Before, j, &deployment.expected_rows(j), &rows)?;
        before.insert(j.clone(), (bytes, rows));
    }
    let receipt = erase(store, subject).map_err(|error| Violation::Store {
        doing: "unregister",
        error,
    })?;
    verify(store, Phase::After)?;

    let (_, after) = export(store, subject)?;
    for (file, rows) in &after {
        if *rows > 0 && !KEPT_FILES.contains(file) {
            return Err(Violation::LeftBehind {
                subject: subject.clone(),
                file,
                rows: *rows,
            });
        }
    }
    let erased = deployment.erased(subject);
    compare(
        Phase::After,
        subject,
        &erased.expected_rows(subject),
        &after,
    )?;

    let touched = deployment.touched_by_erasure(subject);
    let mut others = 0;
    for (j, (bytes, _)) in before.iter().filter(|(j, _)| *j != subject) {
        let (now_bytes, now_rows) = export(store, j)?;
        compare(Phase::After, j, &erased.expected_rows(j), &now_rows)?;
        if !touched.contains(j) && now_bytes != *bytes {
            return Err(Violation::OtherChanged {
                subject: subject.clone(),
                jid: j.clone(),
            });
        }
        others += 1;
    }
    let before = before
        .remove(subject)
        .map(|(_, rows)| rows)
        .unwrap_or_default();
    Ok(GdprCheck {
        subject: subject.clone(),
        before,
        after,
        receipt,
        others,
    })
}
