//! `compact`, `backup`, `stats`, `verify`: whole-store commands.

use std::io::Write;
use std::path::Path;

use serde_json::{Value, json};

use super::Env;
use crate::maintenance::{self, CompactSummary, CopySummary};
use crate::vacuum::{self, VacuumSummary};

fn copy_json(copy: &CopySummary) -> Value {
    let keyspaces: Vec<_> = copy
        .keyspaces
        .iter()
        .map(|k| json!({ "keyspace": k.keyspace, "entries": k.entries, "bytes": k.bytes }))
        .collect();
    json!({
        "entries": copy.total_entries(),
        "bytes": copy.total_bytes(),
        "keyspaces": keyspaces,
    })
}

/// What `compact` (or `unregister --purge`) did: a sled store copied into a fresh data
/// directory, or the tables of a PostgreSQL store vacuumed.
pub(super) enum Reclaimed {
    /// sled: the data directory rewritten.
    Compacted(CompactSummary),
    /// PostgreSQL: `VACUUM` (purge) or `VACUUM (FULL)` (compact).
    Vacuumed(VacuumSummary),
}

impl std::fmt::Display for Reclaimed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reclaimed::Compacted(s) => s.fmt(f),
            Reclaimed::Vacuumed(s) => s.fmt(f),
        }
    }
}

/// The JSON form of a compaction or vacuum (also `unregister --purge`'s `purged`).
pub(super) fn compact_json(summary: &Reclaimed) -> Value {
    match summary {
        Reclaimed::Compacted(s) => json!({
            "size_before": s.size_before,
            "size_after": s.size_after,
            "copied": copy_json(&s.copy),
        }),
        Reclaimed::Vacuumed(s) => json!({
            "size_before": s.size_before,
            "size_after": s.size_after,
            "vacuum": if s.full { "full" } else { "plain" },
            "tables": s.tables,
        }),
    }
}

/// `jidstore compact`.
pub(super) fn compact(
    env: &Env<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<u8> {
    let summary = compact_audited(env, err)?;
    env.emit(out, &compact_json(&summary), &format!("{summary}\n"))?;
    Ok(0)
}

/// `compact`: the data directory compacted, or on PostgreSQL every table rewritten
/// (`VACUUM (FULL)`); then recorded in the store's audit log.
pub(super) fn compact_audited(env: &Env<'_>, err: &mut dyn Write) -> anyhow::Result<Reclaimed> {
    reclaim(env, true, err)
}

/// `unregister --purge`'s second step: the data directory compacted, or on PostgreSQL a plain
/// `VACUUM` of the tables (no lock that blocks readers or writers; see [`crate::vacuum`]);
/// then recorded in the store's audit log.
pub(super) fn purge_audited(env: &Env<'_>, err: &mut dyn Write) -> anyhow::Result<Reclaimed> {
    reclaim(env, false, err)
}

fn reclaim(env: &Env<'_>, full: bool, err: &mut dyn Write) -> anyhow::Result<Reclaimed> {
    let (summary, counts) = if let super::Target::Database(_) = env.target {
        let store = env.open(false)?;
        let s = vacuum::vacuum(&store, full)?;
        let counts = [
            ("size_before", s.size_before),
            ("size_after", s.size_after),
            ("tables", s.tables as u64),
        ];
        (Reclaimed::Vacuumed(s), counts)
    } else {
        let s = maintenance::compact_with(super::dir_config(env.data_dir(), false, false)?)?;
        let counts = [
            ("size_before", s.size_before),
            ("size_after", s.size_after),
            ("entries", s.copy.total_entries()),
        ];
        (Reclaimed::Compacted(s), counts)
    };
    let store = env.open(false)?;
    super::gdpr::audit(
        &store,
        crate::gdpr::audit::Action::Compact,
        None,
        &counts,
        crate::gdpr::audit::Outcome::Ok,
        err,
    )?;
    Ok(summary)
}

/// `jidstore restore <backup>`.
pub(super) fn restore(env: &Env<'_>, backup: &Path, out: &mut dyn Write) -> anyhow::Result<u8> {
    let backup = env.ctx.resolve(backup);
    let s = maintenance::restore(env.data_dir(), &backup)?;
    env.emit(
        out,
        &json!({
            "backup": backup,
            "entries": s.entries,
            "erasures_since_backup": s.erasures_since_backup,
            "reapplied": s.reapplied,
        }),
        &format!(
            "Restored {} entries from {}; {} erasure(s) recorded since the backup, {} account(s) in it erased again\n",
            s.entries,
            backup.display(),
            s.erasures_since_backup,
            s.reapplied
        ),
    )?;
    Ok(0)
}

/// `jidstore backup <dest>`.
pub(super) fn backup(env: &Env<'_>, dest: &Path, out: &mut dyn Write) -> anyhow::Result<u8> {
    let dest = env.output_path(dest)?;
    let store = env.open(false)?;
    let summary = maintenance::copy_into(&store, &dest)?;
    let mut doc = copy_json(&summary);
    if let Some(map) = doc.as_object_mut() {
        map.insert("dest".into(), super::path_json(&dest));
    }
    let text = format!("backup written to {}: {summary}\n", dest.display());
    env.emit(out, &doc, &text)?;
    Ok(0)
}

/// `jidstore stats`.
pub(super) fn stats(env: &Env<'_>, out: &mut dyn Write) -> anyhow::Result<u8> {
    let store = env.open(false)?;
    let stats = crate::stats(&store)?;
    let keyspaces: Vec<_> = stats
        .keyspaces
        .iter()
        .map(|(name, s)| json!({ "keyspace": name, "entries": s.entries, "bytes": s.bytes }))
        .collect();
    let doc = json!({
        "accounts": stats.accounts,
        "keyspaces": keyspaces,
        "size_on_disk": stats.size_on_disk,
    });
    env.emit(out, &doc, &stats.to_string())?;
    Ok(0)
}

/// `jidstore verify`: the report on stdout; exit 1 with a count on stderr when not clean.
pub(super) fn verify(
    env: &Env<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<u8> {
    let store = env.open(false)?;
    let report = crate::verify(&store)?;
    let keyspaces: Vec<_> = report
        .keyspaces
        .iter()
        .map(|(name, n)| json!({ "keyspace": name, "entries": n }))
        .collect();
    let problems: Vec<_> = report
        .problems
        .iter()
        .map(|p| json!({ "keyspace": p.keyspace, "key": p.key, "what": p.what }))
        .collect();
    let doc = json!({
        "clean": report.is_clean(),
        "entries": report.entries,
        "keyspaces": keyspaces,
        "problems": problems,
    });
    env.emit(out, &doc, &report.to_string())?;
    out.flush()?;
    if report.is_clean() {
        return Ok(0);
    }
    writeln!(
        err,
        "jidstore: {} problem(s) found in {}",
        report.problems.len(),
        store.path().display()
    )?;
    Ok(1)
}
