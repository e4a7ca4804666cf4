//! The `jidstore` command-line tool.

mod cli;
mod demo;
mod mam;

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use jidstore::gdpr::{self, ExportOptions};
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
    if create && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| jidstore::Error::Path {
            action: "create data directory",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    Ok(Config::new(&path).must_exist(!create).open()?)
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
        } => {
            let password = read_password(password)?;
            let store = open(args.data_dir, true)?;
            let jid = match user {
                Some(name) => {
                    let jid = BareJid::from_parts(&name, &domain)?;
                    store.accounts().create(&jid, &password)?;
                    jid
                }
                None => store.accounts().create_random(&domain, &password)?,
            };
            store.flush()?;
            writeln!(out, "User {jid} successfully registered")?;
        }
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
        Command::Unregister { username, domain } => {
            let subject = BareJid::from_parts(&username, &domain)?;
            let store = open(args.data_dir, false)?;
            let receipt = gdpr::remove(&store, &subject)?;
            writeln!(out, "User {subject} successfully unregistered")?;
            writeln!(out, "{receipt}")?;
        }
        Command::Demo => demo::run(args.data_dir, &mut out)?,
        Command::Mam { command } => mam::run(args.data_dir, command, &mut out)?,
        Command::Stats => {
            let store = open(args.data_dir, false)?;
            let stats = jidstore::stats(&store)?;
            write!(out, "{stats}")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
