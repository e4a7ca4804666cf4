//! `register`, `retrieve_personal_data`, `unregister`: the `mongooseimctl` GDPR commands.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use serde_json::json;

use super::Env;
use crate::gdpr::audit::{Action, Outcome};
use crate::gdpr::{self, CsvEscaping, ExportOptions};
use crate::{BareJid, Store};

/// The password argument; `-` takes the first line of the caller's stdin.
pub(super) fn password(env: &Env<'_>, arg: &str) -> anyhow::Result<String> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let text = std::str::from_utf8(&env.ctx.stdin).context("cannot read password from stdin")?;
    let line = text.split('\n').next().unwrap_or_default();
    Ok(line.trim_end_matches('\r').to_owned())
}

/// `jidstore register`: a chosen or random username.
/// `hold_erased_days`: refuse a chosen name erased less than this many days ago (`None`:
/// `--force`).
pub(super) fn register(
    env: &Env<'_>,
    (user, domain): (Option<&str>, &str),
    password_arg: &str,
    hold_erased_days: Option<u32>,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let password = password(env, password_arg)?;
    // Checked before the store is opened: bad input creates no data directory.
    let chosen = if let Some(name) = &user {
        Some(BareJid::from_parts(name, domain)?)
    } else {
        BareJid::domain_only(domain)?;
        None
    };
    let store = env.open(true)?;
    let jid = match chosen {
        Some(jid) => {
            refuse_recently_erased(&store, &jid, hold_erased_days)?;
            store.accounts().create(&jid, &password)?;
            jid
        }
        None => store.accounts().create_random(domain, &password)?,
    };
    store.flush()?;
    env.emit(
        out,
        &json!({ "jid": jid.to_string() }),
        &format!("User {jid} successfully registered\n"),
    )?;
    Ok(0)
}

/// Refuses `jid` when the erasure ledger holds an erasure of it less than `days` ago.
fn refuse_recently_erased(store: &Store, jid: &BareJid, days: Option<u32>) -> anyhow::Result<()> {
    let Some(days) = days.filter(|d| *d > 0) else {
        return Ok(());
    };
    if let Some(at) = crate::gdpr::ledger::erased_at(store, jid)? {
        let held_until = at
            .as_micros()
            .saturating_add(i64::from(days) * 86_400_000_000);
        if crate::Timestamp::now().as_micros() < held_until {
            anyhow::bail!(
                "{jid} was erased on {}; a name is held for {days} days after its erasure \
                 (--force registers it anyway, --hold-erased-days changes the period)",
                at.to_rfc3339()
            );
        }
    }
    Ok(())
}

/// `jidstore retrieve_personal_data`: the zip, and a one-line summary. `flags` is
/// (`--force`, `--spreadsheet-safe`).
pub(super) fn retrieve(
    env: &Env<'_>,
    username: &str,
    domain: &str,
    path: &Path,
    (force, spreadsheet_safe, page): (bool, bool, bool),
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<u8> {
    let escaping = if spreadsheet_safe {
        CsvEscaping::SpreadsheetSafe
    } else {
        CsvEscaping::None
    };
    let subject = BareJid::from_parts(username, domain)?;
    let path = env.output_path(path)?;
    let store = env.open(false)?;
    let (written, summary) = gdpr::retrieve_to_path(
        &store,
        &subject,
        &path,
        &ExportOptions::default()
            .force(force)
            .csv_escaping(escaping)
            .page(page),
    )?;
    let counts = [("rows", summary.total_rows())];
    audit(
        &store,
        Action::Retrieve,
        Some(&subject),
        &counts,
        Outcome::Ok,
        err,
    )?;
    let text = format!(
        "Personal data of {subject} written to {} ({} rows in {} files)\n",
        written.display(),
        summary.total_rows(),
        summary.files.len()
    );
    let doc = json!({
        "subject": subject.to_string(),
        "path": super::path_json(&written),
        "total_rows": summary.total_rows(),
        "exported_at": summary.exported_at,
        "csv_escaping": summary.csv_escaping,
        "files": summary.files,
    });
    env.emit(out, &doc, &text)?;
    Ok(0)
}

/// Exit code of `unregister` when the store holds data about the subject but erasure
/// removes none of it (no account, only kept rows: e.g. a second `unregister`), so a script
/// can tell that nothing was erased. Nothing held at all is an error (exit 1).
pub const NOTHING_ERASED: u8 = 3;

/// What the receipt adds about the erased bytes: they stay in sled's files until a
/// compaction, in PostgreSQL's tables (as dead rows) until a vacuum.
pub(super) fn bytes_note(env: &Env<'_>, purged: bool) -> &'static str {
    let database = matches!(env.target, super::Target::Database(_));
    if database {
        return if purged {
            "The tables were vacuumed (--purge): the erased rows are gone from them; their \
             bytes remain in the WAL, standbys and backups for a while (README, \"Physical \
             erasure on PostgreSQL\")."
        } else {
            "The erased rows stay in the tables' files as dead rows until a VACUUM removes them \
             (autovacuum, `jidstore compact`, or erase with `unregister --purge`)."
        };
    }
    if purged {
        "The store was compacted (--purge): the erased bytes have left the data directory's files."
    } else {
        "The erased bytes stay in the data directory's files until `jidstore compact` rewrites \
         the store (or erase with `unregister --purge`)."
    }
}

/// Appends an audit log entry ([`gdpr::audit`]). Failing to write it does not change the
/// command's outcome (what it did is done either way); it is said on `err`.
pub(super) fn audit(
    store: &crate::Store,
    action: Action,
    subject: Option<&BareJid>,
    counts: &[(&str, u64)],
    outcome: Outcome,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    match gdpr::audit::record(store, action, subject, counts, outcome) {
        Ok(()) => Ok(()),
        Err(e) => audit_failed(action, &e, err),
    }
}

/// Says on `err` that the audit entry of an action that was done could not be written.
fn audit_failed(action: Action, e: &crate::Error, err: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        err,
        "jidstore: the audit log entry of this {} was not written: {}",
        action.as_str(),
        super::error_line(&e.to_string())
    )
}

/// Erases `subject` (or, for a dry run, plans and counts it), flushed, and records it in
/// the audit log (not a dry run, not an error); a full disk is reported as a commit that may not have
/// been made. `flags` is (`--dry-run`, `--redact-kept`).
pub(super) fn erase(
    store: &crate::Store,
    subject: &BareJid,
    (dry_run, redact_kept): (bool, bool),
    err: &mut dyn Write,
) -> anyhow::Result<gdpr::Receipt> {
    let options = gdpr::EraseOptions::default().redact_kept(redact_kept);
    if dry_run {
        return Ok(gdpr::dry_run_with(store, subject, &options)?);
    }
    // An error here wrote nothing (the contract for errors), so it adds no entry either.
    let r = erase_now(store, subject, &options)?;
    if let Err(e) = gdpr::audit::record_erasure(store, subject, &r) {
        audit_failed(Action::Erase, &e, err)?;
    }
    Ok(r)
}

fn erase_now(
    store: &crate::Store,
    subject: &BareJid,
    options: &gdpr::EraseOptions,
) -> anyhow::Result<gdpr::Receipt> {
    let not_committed = |e: crate::Error| match e {
        crate::Error::StorageFull { .. } => anyhow::anyhow!(
            "no space left on device for data directory {}: the erasure of {subject} may \
             not have been committed; free space, then run `unregister` again (if it says \
             the user does not exist, the erasure was committed)",
            store.path().display()
        ),
        other => other.into(),
    };
    let receipt = gdpr::remove_with(store, subject, options).map_err(not_committed)?;
    if receipt.sweep_error.is_none() {
        store.flush()?;
    }
    Ok(receipt)
}

/// `jidstore unregister [--purge] [--dry-run] [--redact-kept]`: erase; with `--purge` then
/// compact (the store handle is dropped first, as compaction renames the data directory).
/// Exit 0 when something was (or, dry run, would be) erased or pseudonymised,
/// [`NOTHING_ERASED`] when only kept data is held about the subject and stays under its
/// JID. `flags` is (`--purge`, `--dry-run`, `--redact-kept`).
pub(super) fn unregister(
    env: &Env<'_>,
    username: &str,
    domain: &str,
    (purge, dry_run, redact_kept): (bool, bool, bool),
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<u8> {
    let subject = BareJid::from_parts(username, domain)?;
    let store = env.open(false)?;
    let receipt = erase(&store, &subject, (dry_run, redact_kept), err).map_err(|e| {
        match e.downcast_ref::<crate::Error>() {
            // MongooseIM's wording for `unregister` (acceptance case A1).
            Some(crate::Error::NoPersonalData(jid)) => anyhow::anyhow!("user {jid} does not exist"),
            _ => e,
        }
    })?;
    drop(store);
    let account = receipt.removed.get("accounts").copied().unwrap_or(0) > 0;
    let erased = receipt.total_removed() > 0;
    let redacted = receipt
        .pseudonymised
        .as_ref()
        .is_some_and(|p| p.total() > 0);
    if !env.ctx.json {
        if dry_run && !erased {
            write!(out, "Dry run, nothing written: ")?;
        }
        if account {
            let done = if dry_run {
                "would be unregistered"
            } else {
                "successfully unregistered"
            };
            writeln!(out, "User {subject} {done}")?;
        } else if erased {
            let done = if dry_run { "would be" } else { "was" };
            writeln!(
                out,
                "{subject} has no account; the personal data held about it that erasure \
                 removes {done} erased"
            )?;
        }
        if erased {
            writeln!(out, "{receipt}")?;
        } else if redacted {
            // Already unregistered: the receipt's first line says only the kept rows moved.
            writeln!(out, "{receipt}")?;
        } else {
            nothing_erased(out, &receipt)?;
        }
        out.flush()?;
    }
    if let Some(e) = &receipt.sweep_error {
        if env.ctx.json {
            let doc = with_field(receipt_json(&receipt), "sweep_error", json!(e));
            env.emit(out, &doc, "")?;
        }
        writeln!(
            err,
            "jidstore: {subject} is erased (committed), but deleting its records failed \
             ({e}); the deletion resumes when the store is next opened"
        )?;
        return Ok(1);
    }
    // Also when nothing was erased now: the bytes of an earlier erasure may still be there.
    let compacted = if purge {
        let summary = super::maint::purge_audited(env, err)?;
        if !env.ctx.json {
            writeln!(out, "{summary}")?;
        }
        Some(summary)
    } else {
        None
    };
    if !env.ctx.json && !dry_run && (erased || purge) {
        writeln!(out, "{}", bytes_note(env, purge))?;
    }
    if env.ctx.json {
        let purged = json!(compacted.as_ref().map(super::maint::compact_json));
        env.emit(
            out,
            &with_field(receipt_json(&receipt), "purged", purged),
            "",
        )?;
    }
    Ok(if erased || redacted {
        0
    } else {
        NOTHING_ERASED
    })
}

/// `doc` (an object) with `key` set to `value`.
pub(super) fn with_field(
    mut doc: serde_json::Value,
    key: &str,
    value: serde_json::Value,
) -> serde_json::Value {
    if let Some(map) = doc.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
    doc
}

/// The receipt as `unregister --json` prints it (a dry run's is the same but for
/// `dry_run`); with `--redact-kept`, a `pseudonymised` object (pseudonym, nick, rows per
/// table, total; the pseudonym is null in a dry run on a store without its key yet).
pub(super) fn receipt_json(receipt: &gdpr::Receipt) -> serde_json::Value {
    let kept: Vec<_> = receipt
        .kept
        .iter()
        .map(|k| json!({ "class": k.class, "rows": k.rows, "reason": k.reason }))
        .collect();
    let doc = json!({
        "subject": receipt.subject.to_string(),
        "dry_run": receipt.dry_run,
        "account": receipt.removed.get("accounts").copied().unwrap_or(0) > 0,
        "erased": receipt.total_removed() > 0,
        "removed": receipt.removed,
        "removed_as_consequence": consequences_json(receipt),
        "total_removed": receipt.total_removed(),
        "kept": kept,
    });
    // Only with `--redact-kept`: without it the document is as it always was.
    match &receipt.pseudonymised {
        Some(p) => with_field(
            doc,
            "pseudonymised",
            json!({
                "pseudonym": p.pseudonym.as_ref().map(|n| n.jid().to_string()),
                "nick": p.pseudonym.as_ref().map(|n| n.nick().to_owned()),
                "rows": p.rows,
                "total": p.total(),
            }),
        ),
        None => doc,
    }
}

/// What `unregister` prints when there was no account and nothing erasure removes, only
/// rows it keeps (the receipt's "Erased" would not be true).
fn nothing_erased(out: &mut dyn Write, receipt: &gdpr::Receipt) -> std::io::Result<()> {
    writeln!(
        out,
        "Nothing erased for {}: there is no account and no data that erasure removes \
         (already unregistered?)",
        receipt.subject
    )?;
    writeln!(out, "Still held, and kept on purpose:")?;
    for k in &receipt.kept {
        match k.rows {
            Some(n) => writeln!(out, "  {:<26} {n} ({})", k.class, k.reason)?,
            None => writeln!(out, "  {:<26} ({})", k.class, k.reason)?,
        }
    }
    Ok(())
}

/// Other users' rows an erasure removed with the subject's data, and why.
fn consequences_json(receipt: &gdpr::Receipt) -> serde_json::Value {
    receipt
        .consequences
        .iter()
        .map(|c| {
            json!({
                "class": c.class,
                "rows": c.rows,
                "reason": c.reason,
                "counted_in_removed": c.counted_as_subjects,
            })
        })
        .collect()
}
