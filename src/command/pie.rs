//! `import` and `export-xep0227`: XEP-0227 (PIE) files.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::{BadTimestampsArg, Env};
use crate::BareJid;
use crate::gdpr::audit::{Action, Outcome};
use crate::pie::{BadTimestamps, ImportOptions};

/// `jidstore import`: problems on stderr, the summary on stdout, exit 1 unless complete.
pub(super) fn import(
    env: &Env<'_>,
    file: &Path,
    bad: BadTimestampsArg,
    (skip_missing_includes, import_erased): (bool, bool),
    dry_run: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<u8> {
    let path = env.ctx.resolve(file);
    // Checked before a store is created for it: a mistyped file name creates nothing.
    if let Err(e) = std::fs::File::open(&path) {
        return Err(crate::pie::open_error(&path, &e).into());
    }
    let bad = match bad {
        BadTimestampsArg::Reject => BadTimestamps::Reject,
        BadTimestampsArg::Now => BadTimestamps::Now,
        BadTimestampsArg::Skip => BadTimestamps::Skip,
    };
    let options = ImportOptions::default()
        .bad_timestamps(bad)
        .skip_missing_includes(skip_missing_includes)
        .import_erased(import_erased)
        .dry_run(dry_run);
    // A missing or empty data directory gets a new store, as `register` does, but only once
    // the input has passed the checks that stop an import (malformed XML, a missing
    // include): bad input creates nothing. Without a store there are no accounts to clash
    // with, so a dry run against an empty temporary store says what would happen; a dry run
    // creates nothing either way.
    let store = if env.no_store_yet() {
        let scratch = crate::Store::temporary()?;
        if dry_run {
            scratch
        } else {
            crate::pie::import_file(&scratch, &path, &options.clone().dry_run(true))?;
            drop(scratch);
            env.open(true)?
        }
    } else {
        env.open(false)?
    };
    // One line per user once it is durable: after a crash, the users named here are whole.
    let mut progress_error = None;
    let report = crate::pie::import_file_with_progress(&store, &path, &options, &mut |user| {
        // Through the progress renderer when one draws (so the line does not land in
        // the middle of the progress line), else straight to stderr.
        let line = format!("jidstore: imported {user} (durable)");
        if progress_error.is_none()
            && !crate::progress::note(&line)
            && let Err(e) = writeln!(err, "{line}")
        {
            progress_error = Some(e);
        }
    })?;
    if let Some(e) = progress_error {
        return Err(e.into());
    }
    let flushed = store.flush();
    for p in &report.problems {
        writeln!(err, "jidstore: {}", super::error_line(&p.to_string()))?;
    }
    // A failed flush (a full disk) is the command's error: the problems above say which
    // user it hit; no summary is printed, as nothing is known to be durable.
    flushed?;
    if !dry_run {
        let counts = [
            ("imported", report.imported.len() as u64),
            ("failed", report.failed.len() as u64),
            ("records", report.items.values().sum()),
        ];
        let outcome = if report.is_complete() {
            Outcome::Ok
        } else {
            Outcome::Failed
        };
        super::gdpr::audit(&store, Action::Import, None, &counts, outcome, err)?;
    }
    let text = format!("{report}\n");
    let failed: Vec<_> = report
        .failed
        .iter()
        .map(|(user, reason)| json!({ "user": user, "reason": reason }))
        .collect();
    let problems: Vec<_> = report
        .problems
        .iter()
        .map(|p| json!({ "file": p.file, "line": p.line, "message": p.message }))
        .collect();
    let doc = json!({
        "dry_run": dry_run,
        "complete": report.is_complete(),
        "imported": report.imported,
        "failed": failed,
        "erased": report.erased,
        "items": report.items,
        "problems": problems,
        "missing_includes": report.missing_includes,
    });
    env.emit(out, &doc, &text)?;
    Ok(u8::from(!report.is_complete()))
}

/// `jidstore export-xep0227`.
pub(super) fn export(
    env: &Env<'_>,
    username: &str,
    domain: &str,
    path: &Path,
    force: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let user = BareJid::from_parts(username, domain)?;
    let path = env.output_path(path)?;
    let store = env.open(false)?;
    let (written, counts) = crate::pie::export_to_path(&store, &user, &path, force)?;
    let list: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let text = format!(
        "XEP-0227 export of {user} written to {} ({})\n",
        written.display(),
        list.join(", ")
    );
    let doc =
        json!({ "user": user.to_string(), "path": super::path_json(&written), "counts": counts });
    env.emit(out, &doc, &text)?;
    Ok(0)
}
