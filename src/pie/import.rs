//! Import: load the document, parse each user into memory, write it all-or-nothing.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::dom::{self, Document, Element};
use super::user::{Credentials, Ctx, UserData, parse_user};
use super::{ImportOptions, ImportReport, Problem};
use crate::error::{Error, Result};
use crate::ext::pubsub::{Node, NodeType};
use crate::store::Store;
use crate::time::Timestamp;

/// Imports a XEP-0227 file (`server-data` or `host` root) into `store`.
///
/// Malformed XML, in the file or in any included file, and (unless
/// [`ImportOptions::skip_missing_includes`]) a missing `xi:include` target are errors
/// before anything is written. Otherwise every user is imported or refused on its own;
/// refusals (an existing account, a bad timestamp under [`super::BadTimestamps::Reject`],
/// an invalid name, a failed write) are in [`ImportReport::failed`].
pub fn import_file(store: &Store, path: &Path, options: &ImportOptions) -> Result<ImportReport> {
    import_file_with_progress(store, path, options, &mut |_| {})
}

/// How long imported users may wait for the flush that makes them durable (and reported to
/// [`import_file_with_progress`]'s callback): one flush per this interval, not per user.
pub const PROGRESS_FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// [`import_file`], calling `durable` with each imported user's bare JID, in document order,
/// once everything written for that user is durable (flushed to disk). Users are flushed at
/// most [`PROGRESS_FLUSH_INTERVAL`] after they are written, and all of them before this
/// returns. A user reported here survives a crash whole; one written but not yet reported
/// may be partly imported after a crash (see the module documentation). Not called in a dry
/// run.
pub fn import_file_with_progress(
    store: &Store,
    path: &Path,
    options: &ImportOptions,
    durable: &mut dyn FnMut(&str),
) -> Result<ImportReport> {
    let doc = dom::load(path).map_err(|p| Error::InvalidInput(p.to_string()))?;
    let mut progress = Progress {
        store,
        pending: 0,
        last_flush: Instant::now(),
        durable,
    };
    let report = run(Some(store), doc, options, Some(&mut progress))?;
    progress.flush(&report)?;
    Ok(report)
}

/// Users written but not yet flushed, and whom to tell once they are.
struct Progress<'a> {
    store: &'a Store,
    /// How many of the report's `imported` users (from the end) are not yet flushed.
    pending: usize,
    last_flush: Instant,
    durable: &'a mut dyn FnMut(&str),
}

impl Progress<'_> {
    /// A user was written: flush if the interval has passed.
    fn written(&mut self, report: &ImportReport) -> Result<()> {
        self.pending += 1;
        if self.last_flush.elapsed() >= PROGRESS_FLUSH_INTERVAL {
            self.flush(report)?;
        }
        Ok(())
    }

    fn flush(&mut self, report: &ImportReport) -> Result<()> {
        if self.pending == 0 {
            return Ok(());
        }
        self.store.flush()?;
        self.last_flush = Instant::now();
        let from = report.imported.len().saturating_sub(self.pending);
        for user in report.imported.iter().skip(from) {
            (self.durable)(user);
        }
        self.pending = 0;
        Ok(())
    }
}

/// Parses and checks a XEP-0227 document from bytes without a store or file system
/// (includes are reported missing): what [`import_file`] would import, as a dry run.
/// Never panics on any input (fuzzed).
pub fn validate_bytes(bytes: &[u8], options: &ImportOptions) -> Result<ImportReport> {
    let doc = dom::from_bytes(bytes, Path::new("<input>"))
        .map_err(|p| Error::InvalidInput(p.to_string()))?;
    let options = options.clone().dry_run(true).skip_missing_includes(true);
    run(None, doc, &options, None)
}

fn run(
    store: Option<&Store>,
    doc: Document,
    options: &ImportOptions,
    mut progress: Option<&mut Progress<'_>>,
) -> Result<ImportReport> {
    let mut report = ImportReport {
        missing_includes: doc.missing.len(),
        ..ImportReport::default()
    };
    if !doc.missing.is_empty() && !options.skip_missing_includes {
        let list: Vec<String> = doc.missing.iter().map(Problem::to_string).collect();
        return Err(Error::InvalidInput(format!(
            "{} XInclude target(s) missing, nothing imported: {}",
            list.len(),
            list.join("; ")
        )));
    }
    report.problems.extend(doc.missing);
    let root = doc.root;
    let hosts: Vec<&Element> = if root.is_pie("server-data") {
        let mut hosts = Vec::new();
        for c in root.elements() {
            if c.is_pie("host") {
                hosts.push(c);
            } else {
                report
                    .problems
                    .push(c.problem(format!("unknown element {} skipped", c.name)));
            }
        }
        hosts
    } else if root.is_pie("host") {
        vec![&root]
    } else {
        return Err(Error::InvalidInput(format!(
            "{}: root element {{{}}}{} is not a XEP-0227 server-data or host",
            root.problem("").file.display(),
            root.ns,
            root.name
        )));
    };
    let now = Timestamp::now();
    for host in hosts {
        let Some(domain) = host.attr("jid").filter(|d| !d.is_empty()) else {
            report
                .problems
                .push(host.problem("host without a jid attribute skipped"));
            continue;
        };
        for user in host.elements() {
            if !user.is_pie("user") {
                report
                    .problems
                    .push(user.problem(format!("unknown element {} skipped", user.name)));
                continue;
            }
            let before = report.imported.len();
            import_user(store, user, domain, now, options, &mut report);
            if report.imported.len() > before
                && !options.dry_run
                && let Some(p) = progress.as_deref_mut()
            {
                p.written(&report)?;
            }
        }
    }
    Ok(report)
}

fn import_user(
    store: Option<&Store>,
    user: &Element,
    domain: &str,
    now: Timestamp,
    options: &ImportOptions,
    report: &mut ImportReport,
) {
    let mut ctx = Ctx {
        problems: &mut report.problems,
        fatal: None,
        policy: options.bad_timestamps,
        now,
    };
    let parsed = parse_user(user, domain, &mut ctx);
    let fatal = ctx.fatal.take();
    let name = parsed.as_ref().map_or_else(
        || format!("{}@{domain}", user.attr("name").unwrap_or("?")),
        |u| u.jid.to_string(),
    );
    let (Some(u), None) = (parsed, fatal.clone()) else {
        report.failed.push((name, fatal.unwrap_or_default()));
        return;
    };
    let fail = |report: &mut ImportReport, why: String| {
        report
            .problems
            .push(user.problem(format!("user {name} refused: {why}")));
        report.failed.push((name.clone(), why));
    };
    let counts = counts(&u);
    if let Some(store) = store {
        match store.accounts().exists(&u.jid) {
            Ok(true) => return fail(report, "an account with that name exists already".into()),
            Ok(false) => {}
            Err(e) => return fail(report, e.to_string()),
        }
    }
    if let (Some(store), false) = (store, options.dry_run)
        && let Err(e) = write_user(store, &u, now)
    {
        {
            let why = match e {
                Error::AccountExists(_) => "an account with that name exists already".into(),
                e => match crate::gdpr::remove(store, &u.jid) {
                    Ok(_) => format!("write failed ({e}); what was written was erased"),
                    Err(e2) => format!(
                        "write failed ({e}); erasing the partial import also failed ({e2}): run `jidstore unregister`"
                    ),
                },
            };
            return fail(report, why);
        }
    }
    for (class, n) in counts {
        if n > 0 {
            *report.items.entry(class).or_default() += n;
        }
    }
    report.imported.push(u.jid.to_string());
}

fn counts(u: &UserData) -> BTreeMap<&'static str, u64> {
    let n = |x: usize| x as u64;
    BTreeMap::from([
        ("accounts", 1),
        ("roster", n(u.roster.len())),
        ("vcard", u64::from(u.vcard.is_some())),
        ("private", n(u.private.len())),
        ("offline", n(u.offline.len())),
        ("privacy_lists", n(u.privacy.len())),
        ("pubsub_nodes", n(u.pep.len())),
        (
            "pubsub_items",
            n(u.pep.values().map(|p| p.items.len()).sum()),
        ),
        ("mam_pm", n(u.mam.len())),
    ])
}

/// Writes one parsed user. The account goes first: every other class requires it.
fn write_user(store: &Store, u: &UserData, now: Timestamp) -> Result<()> {
    let jid = &u.jid;
    match &u.credentials {
        Credentials::Password(pw) => store.accounts().create(jid, pw)?,
        Credentials::Scram(v) => store
            .accounts()
            .create_with_verifiers(jid, v.clone(), now)?,
        Credentials::None => store
            .accounts()
            .create_with_verifiers(jid, Vec::new(), now)?,
    }
    for item in u.roster.values() {
        store.roster().set(jid, item)?;
    }
    if let Some(ver) = u.roster_ver {
        store.roster().set_version(jid, ver)?;
    }
    if let Some(v) = &u.vcard {
        store.vcard().set(jid, v)?;
    }
    for (ns, xml) in &u.private {
        store.private().set(jid, ns, xml)?;
    }
    for m in &u.offline {
        store.offline().store(jid, m)?;
    }
    for (name, items) in &u.privacy {
        store.privacy().set_list(jid, name, items)?;
    }
    if let Some(d) = &u.privacy_default {
        store.privacy().set_default(jid, Some(d))?;
    }
    for n in u.pep.values() {
        store.pubsub().create_node(&Node {
            service: jid.clone(),
            node: n.node.clone(),
            owner: jid.clone(),
            kind: NodeType::Pep,
            access_model: n.access_model.clone(),
            config: n.config.clone(),
            created_at: now,
        })?;
        for (id, publisher, payload) in &n.items {
            store
                .pubsub()
                .publish(jid, &n.node, id, publisher, payload, now)?;
        }
    }
    for m in &u.mam {
        store.mam().append(jid, m)?;
    }
    Ok(())
}
