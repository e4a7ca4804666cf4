//! `forensic-export`: one user's export from a copied data directory (never written to).

use std::io::Write;
use std::path::Path;

use serde_json::json;

use super::Env;
use crate::BareJid;
use crate::forensic::{self, ForensicOptions};
use crate::output;

/// `jidstore forensic-export --from DIR <username> <domain> <path>`. The data directory
/// (`--data-dir`) is not opened.
pub(super) fn export(
    env: &Env<'_>,
    from: &Path,
    (username, domain): (&str, &str),
    path: &Path,
    force: bool,
    work_dir: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let subject = BareJid::from_parts(username, domain)?;
    let source = env.ctx.resolve(from);
    let path = env.output_path(path)?;
    // The data directory is not opened, but nothing is written into it either.
    let data = env.data_dir();
    let name = format!("{}.zip", subject.node().unwrap_or(subject.as_str()));
    output::refuse_inside_store(data, &output::resolve(&path, &name)?, "the export file")?;
    let mut options = ForensicOptions::default().force(force);
    if let Some(dir) = work_dir {
        let dir = env.ctx.resolve(dir);
        output::refuse_inside_store(data, &dir, "the working directory")?;
        options = options.work_dir(dir);
    }
    let summary = forensic::export(&source, &subject, &path, &options)?;
    let m = &summary.manifest;
    let text = format!(
        "Personal data of {subject} exported from the copy {} to {} ({} rows in {} files; \
         {} source files, {} bytes, SHA-256 recorded and unchanged after the export)\n",
        m.source.path.display(),
        summary.path.display(),
        m.export.total_rows(),
        m.export.files.len(),
        m.source.files.len(),
        m.source.total_bytes,
    );
    let doc = json!({
        "subject": subject.to_string(),
        "path": summary.path,
        "source": m.source.path,
        "source_files": m.source.files.len(),
        "source_bytes": m.source.total_bytes,
        "hashed_at": m.source.hashed_at,
        "unchanged": m.source.unchanged,
        "verified_entries": m.verified_entries,
        "total_rows": m.export.total_rows(),
        "exported_at": m.export.exported_at,
        "files": m.export.files,
    });
    env.emit(out, &doc, &text)?;
    Ok(0)
}
