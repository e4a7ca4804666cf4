//! `unregister --from-file`: many subjects, each its own atomic erasure, and a summary.
//!
//! Resumable by construction: every erasure is committed and flushed before the next one
//! starts, and a subject already erased is not a failure (the store holds nothing about it,
//! or only data erasure keeps), so running the same file again after an interruption
//! reports the subjects done before and erases the rest.

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context as _;
use serde_json::json;

use super::Env;
use super::gdpr::{bytes_note, erase, receipt_json, with_field};
use crate::{BareJid, Error};

/// How one subject of the file ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Data was (dry run: would be) erased.
    Erased,
    /// Only data erasure keeps is held (e.g. erased by an earlier run).
    NothingErased,
    /// Nothing at all is held (erased by an earlier run, or never held).
    NotHeld,
    /// The erasure failed (or committed but its sweep failed): counted in the exit code.
    Failed,
}

impl Outcome {
    /// The text line for a subject that ended so, `rows` removed.
    fn line(self, subject: &BareJid, rows: u64, dry_run: bool) -> String {
        match (self, dry_run) {
            (Outcome::Erased, false) => format!("erased {subject} ({rows} rows)"),
            (Outcome::Erased, true) => format!("would erase {subject} ({rows} rows)"),
            (Outcome::NothingErased, _) => format!(
                "nothing to erase for {subject}: only data erasure keeps is held \
                 (already unregistered?)"
            ),
            (Outcome::NotHeld, _) => {
                format!("nothing held about {subject} (already unregistered?)")
            }
            (Outcome::Failed, _) => format!("FAILED {subject}"),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Erased => "erased",
            Outcome::NothingErased => "nothing-erased",
            Outcome::NotHeld => "not-held",
            Outcome::Failed => "failed",
        }
    }
}

/// The subjects of `file`: one bare JID with a username per line; blank lines and lines
/// starting with `#` are skipped, and a `#` comment may follow the JID after a space. Every
/// malformed line is reported (`FILE:LINE: reason`) and nothing is erased.
fn subjects(file: &Path, err: &mut dyn Write) -> anyhow::Result<Vec<(usize, BareJid)>> {
    let reader = std::fs::File::open(file)
        .map(std::io::BufReader::new)
        .with_context(|| format!("cannot open {}", file.display()))?;
    let (mut subjects, mut bad) = (Vec::new(), 0usize);
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.with_context(|| format!("cannot read {}:{n}", file.display()))?;
        let mut words = line.split_whitespace();
        let Some(first) = words.next().filter(|w| !w.starts_with('#')) else {
            continue;
        };
        let parsed = match words.next() {
            Some(w) if !w.starts_with('#') => Err(Error::InvalidInput(
                "one JID per line (a comment after it starts with #)".into(),
            )),
            _ => BareJid::parse(first).and_then(|jid| match jid.node() {
                Some(_) => Ok(jid),
                None => Err(Error::InvalidJid {
                    input: first.to_owned(),
                    reason: "a subject needs a username".into(),
                }),
            }),
        };
        match parsed {
            Ok(jid) => subjects.push((n, jid)),
            Err(e) => {
                bad += 1;
                let msg = format!("{}:{n}: {e}", file.display());
                writeln!(err, "jidstore: {}", super::error_line(&msg))?;
            }
        }
    }
    if bad > 0 {
        anyhow::bail!(
            "{bad} malformed line(s) in {}; nothing erased",
            file.display()
        );
    }
    Ok(subjects)
}

/// `jidstore unregister --from-file FILE [--dry-run] [--purge] [--redact-kept]`: one line
/// per subject (with `--redact-kept`, also how many kept rows were pseudonymised), then
/// a summary. Exit 0 when no subject failed (subjects already erased or never held are
/// reported, not failed, so a second run after an interruption succeeds), 1 when any failed
/// or the file has a malformed line (then nothing is erased).
pub(super) fn unregister(
    env: &Env<'_>,
    file: &Path,
    (purge, dry_run, redact_kept): (bool, bool, bool),
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<u8> {
    let file = env.ctx.resolve(file);
    let subjects = subjects(&file, err)?;
    let mut counts = [0u64; 4];
    let mut results = Vec::new();
    {
        let store = env.open(false)?;
        for (line, subject) in &subjects {
            let erasing = erase(&store, subject, (dry_run, redact_kept), err);
            let (outcome, receipt, error) = match erasing {
                Ok(r) if r.sweep_error.is_some() => {
                    let e = format!(
                        "erased (committed), but deleting its records failed ({}); the \
                         deletion resumes when the store is next opened",
                        r.sweep_error.as_deref().unwrap_or_default()
                    );
                    (Outcome::Failed, Some(r), Some(e))
                }
                Ok(r) if r.total_removed() > 0 => (Outcome::Erased, Some(r), None),
                Ok(r) => (Outcome::NothingErased, Some(r), None),
                Err(e) => match e.downcast_ref::<Error>() {
                    Some(Error::NoPersonalData(_)) => (Outcome::NotHeld, None, None),
                    _ => (Outcome::Failed, None, Some(super::one_line(&e))),
                },
            };
            if let Some(slot) = counts.get_mut(outcome as usize) {
                *slot += 1;
            }
            if let Some(e) = &error {
                let msg = format!("{}:{line}: {subject}: {e}", file.display());
                writeln!(err, "jidstore: {}", super::error_line(&msg))?;
            }
            if env.ctx.json {
                let doc = json!({
                    "line": line,
                    "subject": subject.to_string(),
                    "outcome": outcome.as_str(),
                    "error": error,
                });
                results.push(match &receipt {
                    Some(r) => with_field(doc, "receipt", receipt_json(r)),
                    None => doc,
                });
            } else {
                let rows = receipt
                    .as_ref()
                    .map_or(0, crate::gdpr::Receipt::total_removed);
                let mut line = outcome.line(subject, rows, dry_run);
                if let Some(p) = receipt.as_ref().and_then(|r| r.pseudonymised.as_ref()) {
                    let done = if dry_run { "would be" } else { "were" };
                    let _ = write!(line, "; {} kept rows {done} pseudonymised", p.total());
                }
                writeln!(out, "{line}")?;
            }
        }
    }
    let [erased, nothing, not_held, failed] = counts;
    let compacted = if purge && !dry_run {
        Some(super::maint::purge_audited(env, err)?)
    } else {
        None
    };
    if env.ctx.json {
        let doc = json!({
            "file": super::path_json(&file),
            "dry_run": dry_run,
            "subjects": results,
            "erased": erased,
            "nothing_erased": nothing,
            "not_held": not_held,
            "failed": failed,
            "purged": compacted.as_ref().map(super::maint::compact_json),
        });
        env.emit(out, &doc, "")?;
    } else {
        let verb = if dry_run {
            "Dry run, nothing written: would erase"
        } else {
            "Erased"
        };
        writeln!(
            out,
            "{verb} {erased} of {} subject(s); {nothing} held only data erasure keeps, \
             {not_held} nothing at all, {failed} failed",
            subjects.len()
        )?;
        if let Some(summary) = &compacted {
            writeln!(out, "{summary}")?;
        }
        if !dry_run && (erased > 0 || purge) {
            writeln!(out, "{}", bytes_note(env, purge))?;
        }
    }
    Ok(u8::from(failed > 0))
}
