//! The `jidstore` command-line tool.

mod cli;
mod demo;
mod mam;

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use jidstore::gdpr::{self, ExportOptions};
use jidstore::maintenance;
use jidstore::{BareJid, Config, Store};

use cli::{Args, Command};

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            // One line: jidstore's errors already name the JID or path involved.
            eprintln!("jidstore: {}", one_line(&err));
            ExitCode::from(1)
        }
    }
}

fn one_line(err: &anyhow::Error) -> String {
    if let Some(e) = err.downcast_ref::<jidstore::Error>() {
        return e.to_string();
    }
    format!("{err:#}")
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The default data directory: `$XDG_DATA_HOME/jidstore`, else `~/.local/share/jidstore`,
/// else `./jidstore-data`.
fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("jidstore");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/jidstore");
    }
    PathBuf::from("jidstore-data")
}

pub(crate) fn open(data_dir: Option<PathBuf>, create: bool) -> anyhow::Result<Store> {
    let path = data_dir.unwrap_or_else(default_data_dir);
    open_path(&path, create)
}

fn open_path(path: &Path, create: bool) -> anyhow::Result<Store> {
    if create && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| jidstore::Error::Path {
            action: "create data directory",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    Ok(Config::new(path).must_exist(!create).open()?)
}

fn read_password(arg: String) -> anyhow::Result<String> {
    if arg != "-" {
        return Ok(arg);
    }
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    match args.command {
        Command::Register {
            user,
            domain,
            password,
        } => register(args.data_dir, user, &domain, password, &mut out)?,
        Command::RetrievePersonalData {
            username,
            domain,
            path,
            force,
        } => {
            let subject = BareJid::from_parts(&username, &domain)?;
            let store = open(args.data_dir, false)?;
            let (written, summary) = gdpr::retrieve_to_path(
                &store,
                &subject,
                &PathBuf::from(path),
                &ExportOptions::default().force(force),
            )?;
            writeln!(
                out,
                "Personal data of {subject} written to {} ({} rows in {} files)",
                written.display(),
                summary.total_rows(),
                summary.files.len()
            )?;
        }
        Command::Unregister {
            purge,
            username,
            domain,
        } => unregister(args.data_dir, &username, &domain, purge, &mut out)?,
        Command::Compact => {
            let path = args.data_dir.unwrap_or_else(default_data_dir);
            let summary = maintenance::compact(&path)?;
            writeln!(out, "{summary}")?;
        }
        Command::Backup { dest } => {
            let store = open(args.data_dir, false)?;
            let summary = maintenance::copy_into(&store, &dest)?;
            writeln!(out, "backup written to {}: {summary}", dest.display())?;
        }
        Command::Import {
            file,
            bad_timestamps,
            skip_missing_includes,
            dry_run,
        } => {
            let store = open(args.data_dir, false)?;
            return import(
                &store,
                &file,
                bad_timestamps,
                skip_missing_includes,
                dry_run,
            );
        }
        Command::ExportXep0227 {
            username,
            domain,
            path,
            force,
        } => {
            let user = BareJid::from_parts(&username, &domain)?;
            let store = open(args.data_dir, false)?;
            let (written, counts) =
                jidstore::pie::export_to_path(&store, &user, &PathBuf::from(path), force)?;
            let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
            writeln!(
                out,
                "XEP-0227 export of {user} written to {} ({})",
                written.display(),
                counts.join(", ")
            )?;
        }
        Command::Demo => demo::run(args.data_dir, &mut out)?,
        Command::Mam { command } => mam::run(args.data_dir, command, &mut out)?,
        Command::Stats => {
            let store = open(args.data_dir, false)?;
            let stats = jidstore::stats(&store)?;
            write!(out, "{stats}")?;
        }
        Command::Verify => return verify(args.data_dir, &mut out),
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `jidstore unregister [--purge]`: erase; with `--purge` then compact (the store handle is
/// dropped first, as compaction renames the data directory).
fn unregister(
    data_dir: Option<PathBuf>,
    username: &str,
    domain: &str,
    purge: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let subject = BareJid::from_parts(username, domain)?;
    let path = data_dir.unwrap_or_else(default_data_dir);
    {
        let store = open_path(&path, false)?;
        let receipt = gdpr::remove(&store, &subject)?;
        store.flush()?;
        writeln!(out, "User {subject} successfully unregistered")?;
        writeln!(out, "{receipt}")?;
        out.flush()?;
    }
    if purge {
        let summary = maintenance::compact(&path)?;
        writeln!(out, "{summary}")?;
    }
    Ok(())
}

/// `jidstore register`: a chosen or random username.
fn register(
    data_dir: Option<PathBuf>,
    user: Option<String>,
    domain: &str,
    password: String,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let password = read_password(password)?;
    let store = open(data_dir, true)?;
    let jid = match user {
        Some(name) => {
            let jid = BareJid::from_parts(&name, domain)?;
            store.accounts().create(&jid, &password)?;
            jid
        }
        None => store.accounts().create_random(domain, &password)?,
    };
    store.flush()?;
    writeln!(out, "User {jid} successfully registered")?;
    Ok(())
}

/// `jidstore verify`: the report on stdout; exit 1 with a count on stderr when not clean.
fn verify(data_dir: Option<PathBuf>, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let store = open(data_dir, false)?;
    let report = jidstore::verify(&store)?;
    write!(out, "{report}")?;
    out.flush()?;
    if report.is_clean() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "jidstore: {} problem(s) found in {}",
        report.problems.len(),
        store.path().display()
    );
    Ok(ExitCode::from(1))
}

/// `jidstore import`: problems on stderr, the summary on stdout, exit 1 unless complete.
fn import(
    store: &Store,
    file: &std::path::Path,
    bad: cli::BadTimestampsArg,
    skip_missing_includes: bool,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    use jidstore::pie::{BadTimestamps, ImportOptions};
    let bad = match bad {
        cli::BadTimestampsArg::Reject => BadTimestamps::Reject,
        cli::BadTimestampsArg::Now => BadTimestamps::Now,
        cli::BadTimestampsArg::Skip => BadTimestamps::Skip,
    };
    let options = ImportOptions::default()
        .bad_timestamps(bad)
        .skip_missing_includes(skip_missing_includes)
        .dry_run(dry_run);
    let report = jidstore::pie::import_file(store, file, &options)?;
    store.flush()?;
    let mut err = io::stderr().lock();
    for p in &report.problems {
        writeln!(err, "jidstore: {p}")?;
    }
    let mut out = io::stdout().lock();
    if dry_run {
        writeln!(out, "dry run: nothing written")?;
    }
    writeln!(out, "{report}")?;
    out.flush()?;
    Ok(if report.is_complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
