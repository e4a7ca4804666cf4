//! `jidstore migrate --to <url|dir>`: the store copied into the other engine
//! ([`crate::migrate`]).

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::Env;
use crate::migrate::{self, MigrateSummary};

/// `jidstore migrate --to <to>`: a database URL, else a directory (relative to the cwd).
pub(super) fn run(env: &Env<'_>, to: &str, out: &mut dyn Write) -> anyhow::Result<u8> {
    let source = env.open(false)?;
    let summary = if migrate::is_database_url(to) {
        migrate::into_database(&source, to)?
    } else {
        let dest = env.output_path(Path::new(to))?;
        migrate::into_dir(&source, &dest)?
    };
    env.emit(out, &summary_json(&summary), &format!("{summary}\n"))?;
    Ok(0)
}

fn summary_json(s: &MigrateSummary) -> serde_json::Value {
    let keyspaces: Vec<_> = s
        .copy
        .keyspaces
        .iter()
        .map(|k| json!({ "keyspace": k.keyspace, "entries": k.entries, "bytes": k.bytes }))
        .collect();
    json!({
        "target": s.target,
        "entries": s.copy.total_entries(),
        "bytes": s.copy.total_bytes(),
        "keyspaces": keyspaces,
        "checked": s.checked,
        "restarted": s.restarted,
        "phases": {
            "copy_seconds": s.phases.copy,
            "compare_seconds": s.phases.compare,
            "verify_seconds": s.phases.verify,
        },
    })
}
