//! `jidstore demo`: a small, realistic deployment in a fresh data dir; exports one user's
//! data, unregisters them, and shows what was removed and what was kept.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::gdpr::{self, ExportOptions};
use crate::{Config, Timestamp};
use anyhow::{Context, bail};

/// Where `demo` builds its deployment when no `--data-dir` is given: a new directory under
/// the system temp directory.
pub(crate) fn default_dir() -> PathBuf {
    std::env::temp_dir().join(format!("jidstore-demo-{:08x}", rand::random::<u32>()))
}

fn fresh_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "demo needs a new or empty directory (it puts its store in DIR/data and its exports \
             beside it), and {} is not empty",
            dir.display()
        );
    }
    Ok(dir.to_path_buf())
}

/// Builds the deployment, exports alice, unregisters her, exports what is kept.
pub(super) fn run(env: &super::Env<'_>, sink: &mut dyn Write) -> anyhow::Result<u8> {
    let dir = fresh_dir(env.data_dir())?;
    let mut text = Vec::new();
    let out = &mut text;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create demo dir {}", dir.display()))?;
    let store = Config::new(dir.join("data")).open()?;
    writeln!(
        out,
        "Demo deployment in {}\n  store (data directory): {}\n  exports: beside it, in {0}",
        dir.display(),
        dir.join("data").display()
    )?;
    writeln!(
        out,
        "Users: alice, bob and kate on localhost, one with a random name (anonymised \
         registration); carol@remote.example, alice's remote contact who follows her news \
         node, and dave@remote.example in the group chat."
    )?;
    // The deployment the tests populate too (`crate::sample`), starting an hour ago.
    let start = Timestamp::from_micros(Timestamp::now().as_micros() - 3_600_000_000);
    let alice = crate::sample::populate(&store, start)?.alice;
    store.flush()?;
    write!(out, "\n{}", crate::stats(&store)?)?;

    let export = dir.join("alice.zip");
    let (path, summary) =
        gdpr::retrieve_to_path(&store, &alice, &export, &ExportOptions::default())?;
    writeln!(out, "\nExported {alice} to {}:", path.display())?;
    for f in &summary.files {
        writeln!(out, "  {:<28} {:>3} rows", f.name, f.rows)?;
    }

    let receipt = gdpr::remove(&store, &alice)?;
    writeln!(out, "\nUnregistered {alice}.\n{receipt}")?;
    writeln!(out, "{}", super::gdpr::bytes_note(env, false))?;

    let after = dir.join("alice-after-erasure.zip");
    let (path, summary) =
        gdpr::retrieve_to_path(&store, &alice, &after, &ExportOptions::default())?;
    writeln!(
        out,
        "\nWhat is still held about {alice} (kept on purpose), in {}:",
        path.display()
    )?;
    for f in summary.files.iter().filter(|f| f.rows > 0) {
        writeln!(out, "  {:<28} {:>3} rows", f.name, f.rows)?;
    }
    hint(out, &dir)?;
    let doc = serde_json::json!({
        "dir": super::path_json(&dir),
        "data_dir": super::path_json(&dir.join("data")),
        "export": super::path_json(&export),
        "after_erasure": super::path_json(&after),
        "removed": receipt.total_removed(),
    });
    env.emit(sink, &doc, &String::from_utf8_lossy(&text))?;
    Ok(0)
}

fn hint(out: &mut dyn Write, dir: &Path) -> anyhow::Result<()> {
    let data = dir.join("data");
    writeln!(out, "\nTry:")?;
    writeln!(
        out,
        "  jidstore --data-dir {} retrieve_personal_data bob localhost {}",
        data.display(),
        dir.display()
    )?;
    writeln!(out, "  jidstore --data-dir {} stats", data.display())?;
    Ok(())
}
