//! Import in two streaming passes over the input, so memory does not grow with an archive.
//!
//! **Check** reads the whole document (includes resolved as they are met), checks that it
//! is well-formed and parses every user: the children other than `<archive>` into memory,
//! one at a time, and each archived message alone, checked and dropped. Problems are
//! reported in document order; nothing is written. A user that passes is recorded with the
//! byte offset, line and namespace declarations of its `<user>` start tag.
//!
//! **Write** (not in a dry run) reopens each accepted user at that offset: it parses the
//! user again without its archives (their offsets noted), writes the account and the other
//! classes, then streams each archive again into [`crate::ext::mam::Mam::append_bulk`] in
//! chunks. The second parse must agree with the first (same user, no new refusal, same
//! number of archived messages); otherwise the input changed under the import and the user
//! is refused. A failed write erases what was written for that user with
//! [`crate::gdpr::remove`].
//!
//! Two passes rather than one because the rules need them: malformed XML or a missing
//! include anywhere stops the import before anything is written, and a bad timestamp in the
//! last archived message refuses the whole user, so nothing may be written before the end of
//! the input has been read. An include that is a child of `<user>` is followed in both
//! passes (its archive is reopened in the included file); deeper ones are user data.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dom::Element;
use super::stream::{At, Ev, Mark, Source, XmlStream};
use super::user::{Credentials, Ctx, UserData, UserParser};
use super::{ImportOptions, ImportReport, NS_MAM_ARCHIVE, Problem};
use crate::error::{Error, Result};
use crate::ext::mam::{BULK_CHUNK, PmMessage};
use crate::ext::pubsub::{Node, NodeType};
use crate::jid::BareJid;
use crate::store::Store;
use crate::time::Timestamp;

const NS_XINCLUDE: &str = "http://www.w3.org/2001/XInclude";
/// Include chains deeper than this are refused (cycles are caught before that).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Imports a XEP-0227 file (`server-data` or `host` root) into `store`.
///
/// Malformed XML, in the file or in any included file, and (unless
/// [`ImportOptions::skip_missing_includes`]) a missing `xi:include` target are errors
/// before anything is written. Otherwise every user is imported or refused on its own;
/// refusals (an existing account, a bad timestamp under [`super::BadTimestamps::Reject`],
/// an invalid name, a failed write) are in [`ImportReport::failed`]. The input is streamed
/// twice (check, then write); memory holds one user without its archive, plus a 16-byte
/// fingerprint per archived message id of the user being read (to skip repeated ids).
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
/// run. A failed flush stops the reports (the caller's own [`Store::flush`] then fails with
/// the error, after it has shown the report's problems).
pub fn import_file_with_progress(
    store: &Store,
    path: &Path,
    options: &ImportOptions,
    durable: &mut dyn FnMut(&str),
) -> Result<ImportReport> {
    let mut progress = Progress {
        store,
        pending: 0,
        last_flush: Instant::now(),
        failed: false,
        durable,
    };
    let report = run(
        Some(store),
        &Source::Files,
        path,
        options,
        Some(&mut progress),
    )?;
    Ok(report)
}

/// Users written but not yet flushed, and whom to tell once they are.
struct Progress<'a> {
    store: &'a Store,
    /// How many of the report's `imported` users (from the end) are not yet flushed.
    pending: usize,
    last_flush: Instant,
    /// A flush failed: nothing more is reported as durable.
    failed: bool,
    durable: &'a mut dyn FnMut(&str),
}

impl Progress<'_> {
    /// A user was written: flush if the interval has passed.
    fn written(&mut self, report: &ImportReport) {
        self.pending += 1;
        if self.last_flush.elapsed() >= PROGRESS_FLUSH_INTERVAL {
            self.flush(report);
        }
    }

    fn flush(&mut self, report: &ImportReport) {
        if self.pending == 0 || self.failed {
            return;
        }
        if self.store.flush().is_err() {
            self.failed = true;
            return;
        }
        self.last_flush = Instant::now();
        let from = report.imported.len().saturating_sub(self.pending);
        for user in report.imported.iter().skip(from) {
            (self.durable)(user);
        }
        self.pending = 0;
    }
}

/// Parses and checks a XEP-0227 document from bytes without a store or file system
/// (includes are reported missing): what [`import_file`] would import, as a dry run.
/// Never panics on any input (fuzzed).
pub fn validate_bytes(bytes: &[u8], options: &ImportOptions) -> Result<ImportReport> {
    let options = options.clone().dry_run(true).skip_missing_includes(true);
    run(
        None,
        &Source::Bytes(bytes),
        Path::new("<input>"),
        &options,
        None,
    )
}

/// The input file cannot be opened: one plain line, `cannot open FILE: No such file or
/// directory`, without std's "(os error N)".
pub(crate) fn open_error(path: &Path, e: &std::io::Error) -> Error {
    let text = e.to_string();
    let reason = text
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_owned();
    Error::Path {
        action: "open",
        path: path.to_path_buf(),
        source: std::io::Error::new(e.kind(), reason),
    }
}

#[expect(
    clippy::needless_pass_by_value,
    reason = "used as map_err(xml) on Result<_, Problem>"
)]
fn xml(p: Problem) -> Error {
    Error::InvalidInput(p.to_string())
}

/// A user the check pass accepted, to be written by the second pass.
struct Checked {
    mark: Mark,
    domain: String,
    jid: BareJid,
    counts: BTreeMap<&'static str, u64>,
}

/// Where an element sits: what its children may be.
#[derive(Clone, Copy)]
enum Level<'d> {
    /// Children of `server-data`: hosts.
    ServerData,
    /// Children of a `host`: users of that domain (`None`: a host without a jid).
    Host(Option<&'d str>),
}

struct Check<'a> {
    store: Option<&'a Store>,
    source: &'a Source<'a>,
    options: &'a ImportOptions,
    now: Timestamp,
    report: ImportReport,
    missing: Vec<Problem>,
    chain: Vec<PathBuf>,
    /// Users accepted so far, to refuse a second copy of one.
    seen: HashSet<String>,
    accepted: Vec<Checked>,
}

fn run(
    store: Option<&Store>,
    source: &Source<'_>,
    path: &Path,
    options: &ImportOptions,
    mut progress: Option<&mut Progress<'_>>,
) -> Result<ImportReport> {
    let mut check = Check {
        store,
        source,
        options,
        now: Timestamp::now(),
        report: ImportReport::default(),
        missing: Vec::new(),
        chain: Vec::new(),
        seen: HashSet::new(),
        accepted: Vec::new(),
    };
    {
        // The check pass reads every element once: a count that moves through a big
        // archive, as the total is not known before the end.
        let _progress = crate::progress::Phase::start("import (check)", "elements", None);
        check.document(path, None, None)?;
    }
    let Check {
        mut report,
        missing,
        accepted,
        now,
        ..
    } = check;
    report.missing_includes = missing.len();
    if !missing.is_empty() && !options.skip_missing_includes {
        let list: Vec<String> = missing.iter().map(Problem::to_string).collect();
        return Err(Error::InvalidInput(format!(
            "{} XInclude target(s) missing, nothing imported: {}",
            list.len(),
            list.join("; ")
        )));
    }
    let mut problems = missing;
    problems.append(&mut report.problems);
    report.problems = problems;
    report.dry_run = options.dry_run;
    // The write pass counts records written (an archive message by message), total known.
    let records: u64 = accepted.iter().flat_map(|c| c.counts.values()).sum();
    let _progress = (!options.dry_run && store.is_some())
        .then(|| crate::progress::Phase::start("import", "records", Some(records)));
    for c in accepted {
        if let (Some(store), false) = (store, options.dry_run)
            && let Err((e, written)) = write_checked(store, source, &c, options, now)
        {
            let why = match e {
                Error::AccountExists(_) => "an account with that name exists already".into(),
                e if !written => format!("write failed ({e}); nothing was written"),
                // Undoing its own partial write, not a person's erasure: not in the ledger.
                e => match crate::gdpr::remove_as(store, &c.jid, crate::gdpr::Ledger::Skip) {
                    Ok(_) => format!("write failed ({e}); what was written was erased"),
                    Err(Error::NoAccount(_)) => format!("write failed ({e}); nothing was written"),
                    Err(e2) => format!(
                        "write failed ({e}); erasing the partial import also failed ({e2}): run `jidstore unregister`"
                    ),
                },
            };
            let name = c.jid.to_string();
            report.problems.push(Problem {
                file: c.mark.file.to_path_buf(),
                line: c.mark.line,
                message: format!("user {name} refused: {why}"),
            });
            report.failed.push((name, why));
            continue;
        }
        for (class, n) in c.counts {
            if n > 0 {
                *report.items.entry(class).or_default() += n;
            }
        }
        report.imported.push(c.jid.to_string());
        if let (Some(p), false) = (progress.as_deref_mut(), options.dry_run) {
            p.written(&report);
        }
    }
    // The last users are flushed and reported while the phase is still open, so their
    // lines always come before the phase's final count (a renderer prints them above its
    // progress line), however long the writes took.
    if let Some(p) = progress {
        p.flush(&report);
    }
    Ok(report)
}

impl Check<'_> {
    /// Reads one file: the input (`at` = `None`) or an include target, whose root takes
    /// the place of the `xi:include` element at `level`.
    fn document(
        &mut self,
        path: &Path,
        at: Option<&Element>,
        level: Option<Level<'_>>,
    ) -> Result<()> {
        let located = |m: String| match at {
            Some(el) => el.problem(m),
            None => Problem {
                file: path.to_path_buf(),
                line: 0,
                message: m,
            },
        };
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if self.chain.contains(&canonical) {
            return Err(xml(located(format!(
                "XInclude cycle: {} includes itself",
                path.display()
            ))));
        }
        if self.chain.len() >= MAX_INCLUDE_DEPTH {
            return Err(xml(located("XInclude chain is too deep".into())));
        }
        let file: Arc<Path> = Arc::from(path);
        let mut s = XmlStream::open(self.source, &file).map_err(|e| match at {
            Some(_) => xml(located(format!("cannot read {}: {e}", path.display()))),
            // The input itself: one plain line, without std's "(os error N)".
            None => open_error(path, &e),
        })?;
        let (root, at, open) = loop {
            match s.next().map_err(xml)? {
                Ev::Start(el, at) => break (el, at, true),
                Ev::Empty(el, at) => break (el, at, false),
                Ev::Text(t) if t.trim().is_empty() => {}
                Ev::Text(_) | Ev::End => {
                    return Err(xml(s.bad(1, "text outside the root element")));
                }
                Ev::Eof => return Err(xml(s.bad(1, "no root element"))),
            }
        };
        self.chain.push(canonical);
        match level {
            Some(level) => self.element(&mut s, root, at, open, level)?,
            None if root.is_pie("server-data") => {
                self.container(&mut s, open, Level::ServerData)?;
            }
            None if root.is_pie("host") => self.host(&mut s, &root, open)?,
            None => {
                return Err(Error::InvalidInput(format!(
                    "{}: root element {{{}}}{} is not a XEP-0227 server-data or host",
                    path.display(),
                    root.ns,
                    root.name
                )));
            }
        }
        self.chain.pop();
        s.expect_eof().map_err(xml)
    }

    /// Reads the children of a `server-data` or `host` whose start tag was just read.
    fn container(&mut self, s: &mut XmlStream<'_>, open: bool, level: Level<'_>) -> Result<()> {
        if !open {
            return Ok(());
        }
        loop {
            match s.next().map_err(xml)? {
                Ev::Start(c, at) => self.element(s, c, at, true, level)?,
                Ev::Empty(c, at) => self.element(s, c, at, false, level)?,
                Ev::Text(_) => {}
                Ev::End => return Ok(()),
                Ev::Eof => return Err(xml(s.bad_here("unclosed element"))),
            }
        }
    }

    fn host(&mut self, s: &mut XmlStream<'_>, el: &Element, open: bool) -> Result<()> {
        let domain = el.attr("jid").filter(|d| !d.is_empty()).map(str::to_owned);
        if domain.is_none() {
            self.report
                .problems
                .push(el.problem("host without a jid attribute skipped"));
        }
        self.container(s, open, Level::Host(domain.as_deref()))
    }

    /// One child of a `server-data` or `host` (start tag read; `open` unless it was an
    /// empty element).
    fn element(
        &mut self,
        s: &mut XmlStream<'_>,
        mut el: Element,
        at: At,
        open: bool,
        level: Level<'_>,
    ) -> Result<()> {
        if el.ns == NS_XINCLUDE && el.name == "include" {
            if open {
                s.finish_element(&mut el).map_err(xml)?;
            }
            return self.include(&el, level);
        }
        match level {
            Level::ServerData if el.is_pie("host") => self.host(s, &el, open),
            Level::Host(Some(domain)) if el.is_pie("user") => self.user(s, &el, at, open, domain),
            Level::Host(None) => {
                // A host without a jid: read (well-formedness) and skip, already reported.
                skip_user_or_element(s, &el, open)
            }
            _ => {
                skip_user_or_element(s, &el, open)?;
                self.report
                    .problems
                    .push(el.problem(format!("unknown element {} skipped", el.name)));
                Ok(())
            }
        }
    }

    fn include(&mut self, c: &Element, level: Level<'_>) -> Result<()> {
        let Some(href) = c.attr("href").filter(|h| !h.is_empty()) else {
            return Err(xml(c.problem("xi:include without href")));
        };
        if c.attr("parse").is_some_and(|p| p != "xml") {
            return Err(xml(c.problem(
                "xi:include with parse other than 'xml' is not supported",
            )));
        }
        let target = include_target(self.source, c, href).map_err(|why| xml(c.problem(why)))?;
        if !self.source.fs_access() || !target.is_file() {
            self.missing.push(c.problem(format!(
                "XInclude target '{href}' ({}) does not exist",
                target.display()
            )));
            return Ok(());
        }
        self.document(&target, Some(c), Some(level))
    }

    /// Checks one user; accepted users are recorded for the write pass.
    fn user(
        &mut self,
        s: &mut XmlStream<'_>,
        el: &Element,
        at: At,
        open: bool,
        domain: &str,
    ) -> Result<()> {
        let mark = s.mark(at, open);
        let mut ctx = Ctx {
            problems: &mut self.report.problems,
            fatal: None,
            policy: self.options.bad_timestamps,
            now: self.now,
            progress: true,
        };
        let mut parser = UserParser::start(el, domain, &mut ctx);
        if open {
            read_user(
                self.source,
                s,
                parser.as_mut(),
                &mut ctx,
                &mut |s, _, p, ctx| {
                    stream_archive(s, &mut |r| {
                        ctx.count_element();
                        if let Some(p) = p.as_deref_mut() {
                            p.archived(&r, ctx);
                        }
                        Ok(())
                    })
                },
            )?;
        }
        let parsed = parser.map(|p| (p.archived, p.finish(el, &mut ctx)));
        let fatal = ctx.fatal.take();
        let name = parsed.as_ref().map_or_else(
            || format!("{}@{domain}", el.attr("name").unwrap_or("?")),
            |(_, u)| u.jid.to_string(),
        );
        let (Some((archived, u)), None) = (parsed, fatal.clone()) else {
            self.report.failed.push((name, fatal.unwrap_or_default()));
            return Ok(());
        };
        let exists = if self.seen.contains(&name) {
            Ok(true)
        } else {
            self.store
                .map_or(Ok(false), |store| store.accounts().exists(&u.jid))
        };
        let why = match exists {
            Ok(false) => None,
            Ok(true) => Some("an account with that name exists already".to_owned()),
            Err(e) => Some(e.to_string()),
        };
        // An erased user stays erased unless the operator says otherwise.
        let erased = match (self.store, self.options.import_erased, &why) {
            (Some(store), false, None) => crate::gdpr::ledger::erased_at(store, &u.jid),
            _ => Ok(None),
        };
        let why = match erased {
            Ok(Some(at)) => {
                self.report.problems.push(el.problem(format!(
                    "user {name} skipped: erased here on {}, so its erasure is re-applied \
                     (--import-erased imports it anyway)",
                    at.to_rfc3339()
                )));
                self.report.erased.push(name);
                return Ok(());
            }
            Ok(None) => why,
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = why {
            self.report
                .problems
                .push(el.problem(format!("user {name} refused: {why}")));
            self.report.failed.push((name, why));
            return Ok(());
        }
        self.seen.insert(name);
        let mut counts = counts(&u);
        counts.insert("mam_pm", archived);
        self.accepted.push(Checked {
            mark,
            domain: domain.to_owned(),
            jid: u.jid,
            counts,
        });
        Ok(())
    }
}

/// Reads (and drops) an element whose start tag was just read, streaming a `<user>`'s
/// archive rather than building it in memory.
fn skip_user_or_element(s: &mut XmlStream<'_>, el: &Element, open: bool) -> Result<()> {
    if !open {
        return Ok(());
    }
    if el.is_pie("user") {
        let mut sink = Vec::new();
        let mut ctx = Ctx {
            problems: &mut sink,
            fatal: None,
            policy: super::BadTimestamps::Skip,
            now: Timestamp::from_secs(0),
            progress: false,
        };
        return read_user(&Source::Files, s, None, &mut ctx, &mut |s, _, _, _| {
            stream_archive(s, &mut |_| Ok(()))
        });
    }
    let mut el = el.clone();
    s.finish_element(&mut el).map_err(xml)
}

/// What to do with an `<archive>` child of a user (its start tag read, its mark given).
type OnArchive<'f> = dyn FnMut(&mut XmlStream<'_>, &Mark, &mut Option<&mut UserParser>, &mut Ctx<'_>) -> Result<()>
    + 'f;

fn is_include(el: &Element) -> bool {
    el.ns == NS_XINCLUDE && el.name == "include"
}

/// Reads the children of a `<user>` (start tag read) up to its end: archives go to
/// `on_archive`, every other child is parsed whole and given to the parser. An
/// `xi:include` child is replaced by the root of its target (see [`user_include`]); without
/// a parser (a user being skipped) includes are not read.
fn read_user(
    source: &Source<'_>,
    s: &mut XmlStream<'_>,
    mut parser: Option<&mut UserParser>,
    ctx: &mut Ctx<'_>,
    on_archive: &mut OnArchive<'_>,
) -> Result<()> {
    loop {
        match s.next().map_err(xml)? {
            Ev::Start(mut c, at) => {
                if c.ns == NS_MAM_ARCHIVE && c.name == "archive" {
                    let mark = s.mark(at, true);
                    on_archive(s, &mark, &mut parser, ctx)?;
                } else {
                    s.finish_element(&mut c).map_err(xml)?;
                    ctx.count_element();
                    child_or_include(source, &c, &mut parser, ctx, on_archive)?;
                }
            }
            Ev::Empty(c, _) => {
                if !(c.ns == NS_MAM_ARCHIVE && c.name == "archive") {
                    ctx.count_element();
                    child_or_include(source, &c, &mut parser, ctx, on_archive)?;
                }
            }
            Ev::Text(_) => {}
            Ev::End => return Ok(()),
            Ev::Eof => return Err(xml(s.bad_here("unclosed element"))),
        }
    }
}

fn child_or_include(
    source: &Source<'_>,
    c: &Element,
    parser: &mut Option<&mut UserParser>,
    ctx: &mut Ctx<'_>,
    on_archive: &mut OnArchive<'_>,
) -> Result<()> {
    match parser.as_deref_mut() {
        Some(_) if is_include(c) => user_include(source, c, parser, ctx, on_archive),
        Some(p) => {
            p.child(c, ctx);
            Ok(())
        }
        None => Ok(()),
    }
}

/// Where an `xi:include` points, if it may be followed: a relative href (no URI scheme,
/// not absolute) whose target, symlinks resolved, lies inside the including file's
/// directory. `Err` says why not.
fn include_target(
    source: &Source<'_>,
    c: &Element,
    href: &str,
) -> std::result::Result<PathBuf, String> {
    if href.contains(':') || Path::new(href).is_absolute() || href.contains('\0') {
        return Err(format!(
            "XInclude href '{href}' refused: only a relative path inside the including file's directory is followed"
        ));
    }
    let base = c.file.parent().unwrap_or(Path::new("."));
    let target = base.join(href);
    // A missing target cannot be canonicalised; the caller reports it missing. Without
    // file system access (bytes validated alone) every target is missing.
    if !source.fs_access() {
        return Ok(target);
    }
    if let (Ok(t), Ok(b)) = (target.canonicalize(), base.canonicalize())
        && !t.starts_with(&b)
    {
        return Err(format!(
            "XInclude href '{href}' refused: it leads outside the including file's directory ({})",
            b.display()
        ));
    }
    Ok(target)
}

/// An `xi:include` that is a child of `<user>`: XEP-0227 requires importers to follow it
/// (deeper ones are user data and are kept as they are). The target's root element takes
/// its place: an archive goes to `on_archive`, anything else to the parser. A refused,
/// missing or unsupported include refuses the user (reported): what it holds would
/// otherwise be lost. Includes inside the target are not followed, so there is no loop.
fn user_include(
    source: &Source<'_>,
    c: &Element,
    parser: &mut Option<&mut UserParser>,
    ctx: &mut Ctx<'_>,
    on_archive: &mut OnArchive<'_>,
) -> Result<()> {
    let Some(href) = c.attr("href").filter(|h| !h.is_empty()) else {
        ctx.refuse(c, "xi:include without href; user refused");
        return Ok(());
    };
    if c.attr("parse").is_some_and(|p| p != "xml") || c.attr("xpointer").is_some() {
        ctx.refuse(
            c,
            format!("xi:include of '{href}' with parse or xpointer is not supported; user refused"),
        );
        return Ok(());
    }
    let target = match include_target(source, c, href) {
        Ok(t) => t,
        Err(why) => {
            ctx.refuse(c, format!("{why}; user refused"));
            return Ok(());
        }
    };
    if !source.fs_access() || !target.is_file() {
        ctx.refuse(
            c,
            format!(
                "XInclude target '{href}' ({}) does not exist; user refused",
                target.display()
            ),
        );
        return Ok(());
    }
    let same = |a: &Path, b: &Path| a.canonicalize().ok() == b.canonicalize().ok();
    if same(&target, &c.file) {
        ctx.refuse(
            c,
            format!("XInclude '{href}' includes its own file; user refused"),
        );
        return Ok(());
    }
    let file: Arc<Path> = Arc::from(target.as_path());
    let mut s = XmlStream::open(source, &file)
        .map_err(|e| xml(c.problem(format!("cannot read {}: {e}", target.display()))))?;
    loop {
        match s.next().map_err(xml)? {
            Ev::Start(mut el, at) => {
                if el.ns == NS_MAM_ARCHIVE && el.name == "archive" {
                    let mark = s.mark(at, true);
                    on_archive(&mut s, &mark, parser, ctx)?;
                } else {
                    s.finish_element(&mut el).map_err(xml)?;
                    if let Some(p) = parser.as_deref_mut() {
                        p.child(&el, ctx);
                    }
                }
                break;
            }
            Ev::Empty(el, _) => {
                if let (Some(p), false) = (
                    parser.as_deref_mut(),
                    el.ns == NS_MAM_ARCHIVE && el.name == "archive",
                ) {
                    p.child(&el, ctx);
                }
                break;
            }
            Ev::Text(t) if t.trim().is_empty() => {}
            Ev::Text(_) | Ev::End => return Err(xml(s.bad(1, "text outside the root element"))),
            Ev::Eof => return Err(xml(s.bad(1, "no root element"))),
        }
    }
    s.expect_eof().map_err(xml)
}

/// Reads the children of an `<archive>` (start tag read) one at a time.
fn stream_archive(
    s: &mut XmlStream<'_>,
    each: &mut dyn FnMut(Element) -> Result<()>,
) -> Result<()> {
    loop {
        match s.next().map_err(xml)? {
            Ev::Start(mut r, _) => {
                s.finish_element(&mut r).map_err(xml)?;
                each(r)?;
            }
            Ev::Empty(r, _) => each(r)?,
            Ev::Text(_) => {}
            Ev::End => return Ok(()),
            Ev::Eof => return Err(xml(s.bad_here("unclosed element"))),
        }
    }
}

fn changed(jid: &BareJid) -> Error {
    Error::InvalidInput(format!(
        "the input changed while {jid} was imported (a second read differs from the first)"
    ))
}

/// The write pass for one user; the flag tells whether anything was written.
fn write_checked(
    store: &Store,
    source: &Source<'_>,
    c: &Checked,
    options: &ImportOptions,
    now: Timestamp,
) -> std::result::Result<(), (Error, bool)> {
    let before = |e: Error| (e, false);
    let mut s = XmlStream::open_at(source, &c.mark).map_err(|e| before(e.into()))?;
    let (el, open) = match s.next().map_err(|p| before(xml(p)))? {
        Ev::Start(el, _) => (el, true),
        Ev::Empty(el, _) => (el, false),
        Ev::End | Ev::Text(_) | Ev::Eof => return Err(before(changed(&c.jid))),
    };
    let mut sink = Vec::new();
    let mut ctx = Ctx {
        problems: &mut sink,
        fatal: None,
        policy: options.bad_timestamps,
        now,
        progress: false,
    };
    let Some(mut parser) = UserParser::start(&el, &c.domain, &mut ctx) else {
        return Err(before(changed(&c.jid)));
    };
    let mut archives: Vec<Mark> = Vec::new();
    if open {
        read_user(
            source,
            &mut s,
            Some(&mut parser),
            &mut ctx,
            &mut |s, mark, _, _| {
                archives.push(mark.clone());
                s.skip_element().map_err(xml)
            },
        )
        .map_err(before)?;
    }
    let u = parser.finish(&el, &mut ctx);
    if ctx.fatal.is_some() || u.jid != c.jid {
        return Err(before(changed(&c.jid)));
    }
    write_user(store, &u, now).map_err(|e| {
        let written = !matches!(e, Error::AccountExists(_));
        (e, written)
    })?;
    crate::progress::advance(
        c.counts
            .iter()
            .filter(|(k, _)| **k != "mam_pm")
            .map(|(_, n)| n)
            .sum(),
    );
    let written = |e: Error| (e, true);
    let chunk_size = if options.archive_chunk == 0 {
        BULK_CHUNK
    } else {
        options.archive_chunk
    };
    // A fresh parser: the archive pass repeats the first pass's id and timestamp decisions.
    let mut ids =
        UserParser::start(&el, &c.domain, &mut ctx).ok_or_else(|| written(changed(&c.jid)))?;
    let mut chunk: Vec<PmMessage> = Vec::with_capacity(chunk_size.min(BULK_CHUNK));
    for mark in &archives {
        let mut s = XmlStream::open_at(source, mark).map_err(|e| written(e.into()))?;
        if !matches!(s.next().map_err(|p| written(xml(p)))?, Ev::Start(..)) {
            return Err(written(changed(&c.jid)));
        }
        stream_archive(&mut s, &mut |r| {
            if let Some(m) = ids.archived(&r, &mut ctx) {
                chunk.push(m);
            }
            if ctx.fatal.is_some() {
                return Err(changed(&c.jid));
            }
            if chunk.len() >= chunk_size {
                let n = chunk.len() as u64;
                store.mam().append_bulk(&c.jid, chunk.drain(..))?;
                crate::progress::advance(n);
            }
            Ok(())
        })
        .map_err(written)?;
    }
    if !chunk.is_empty() {
        let n = chunk.len() as u64;
        store
            .mam()
            .append_bulk(&c.jid, chunk.drain(..))
            .map_err(written)?;
        crate::progress::advance(n);
    }
    if Some(&ids.archived) != c.counts.get("mam_pm") {
        return Err(written(changed(&c.jid)));
    }
    Ok(())
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
        (
            "pubsub_affiliations",
            n(u.pep.values().map(|p| p.affiliations.len()).sum()),
        ),
        (
            "pubsub_subscriptions",
            n(u.pep.values().map(|p| p.subscriptions.len()).sum()),
        ),
    ])
}

/// Writes one parsed user except its archive. The account goes first: every other class
/// requires it.
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
        for (other, a) in &n.affiliations {
            store
                .pubsub()
                .set_affiliation(jid, &n.node, other, Some(*a))?;
        }
        for (other, state) in &n.subscriptions {
            store.pubsub().subscribe(jid, &n.node, other, *state)?;
        }
    }
    Ok(())
}
