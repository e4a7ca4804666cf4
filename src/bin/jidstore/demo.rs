//! `jidstore demo` (placeholder until every extension lands).

use std::io::Write;
use std::path::PathBuf;

pub fn run(_data_dir: Option<PathBuf>, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "demo: not yet available")?;
    Ok(())
}
