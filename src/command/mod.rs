//! Command execution, shared by the `jidstore` binary and the admin socket
//! ([`crate::admin`]): one [`run`] takes parsed [`Args`]' command, a [`Target`] (a data
//! directory to open, or the store an embedding server holds), the caller's [`Context`] (cwd,
//! stdin, output format) and two writers, and returns the exit code. Nothing here touches the
//! process state (no `chdir`, no reading the real stdin, no `exit`), so a server can run
//! commands for a client.
//!
//! Output contract: data on `out`, one line `jidstore: <message>` per error on `err`; exit 0
//! on success, 1 on an operational error (usage errors, exit 2, are clap's and never reach
//! here). With [`Context::json`] every command writes one JSON document on `out` instead of
//! text; errors stay on `err` as text.

mod args;
mod batch;
mod demo;
mod docs;
mod forensic;
mod gdpr;
mod init;
mod maint;
mod mam;
mod migrate;
mod pie;
mod retention;
mod toolbox;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use args::{Args, BadTimestampsArg, Command, MamArchive, MamCommand, MamDelete, MamQuery};

use crate::{Config, Error, Store};

/// What the caller brings besides the arguments: where relative paths start, what it would
/// have read from stdin, and the output format.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The caller's working directory: relative paths in arguments resolve against it.
    pub cwd: PathBuf,
    /// The caller's stdin as far as the command reads it (one line for `register DOMAIN -`).
    pub stdin: Vec<u8>,
    /// One JSON document on stdout instead of text.
    pub json: bool,
    /// `--allow-foreign-owner`: open a data directory owned by another user
    /// ([`Config::allow_foreign_owner`]).
    pub allow_foreign_owner: bool,
}

impl Context {
    /// `path` as the caller means it: relative paths are taken from [`Context::cwd`]. An
    /// empty path stays empty (commands report it).
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.as_os_str().is_empty() || path.is_absolute() {
            path.to_path_buf()
        } else {
            self.cwd.join(path)
        }
    }
}

/// Where a command finds its store.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// Open the data directory at this path (absolute, or relative to the process cwd).
    Dir(&'a Path),
    /// Use this open store (the admin socket: the embedding server holds it). Commands that
    /// need the directory to themselves (`compact`, `unregister --purge`, `demo`) refuse.
    Store(&'a Store),
    /// Open the store in this PostgreSQL database (`postgres://...`, [`Config::database`]).
    /// Commands that work on a data directory (`demo`, `forensic-export`, `serve-admin`)
    /// refuse; `compact` and `unregister --purge` vacuum the tables ([`crate::vacuum`]).
    Database(&'a str),
}

/// How [`run`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command ran (or failed and said so on `err`); the process exit code.
    Exit(u8),
    /// With [`Target::Dir`]: the directory is locked by another process and nothing was
    /// written to `out` or `err`. The caller may forward the command to that process's admin
    /// socket ([`crate::admin::forward`]), or report [`Error::Locked`].
    Locked(PathBuf),
}

/// Runs one command. See the module documentation for the output contract.
pub fn run(
    target: Target<'_>,
    command: Command,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Outcome {
    let mut out = Counting { inner: out, n: 0 };
    let mut err = Counting { inner: err, n: 0 };
    let result = dispatch(target, command, ctx, &mut out, &mut err);
    let code = match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            if let (Target::Dir(_), Some(Error::Locked(path))) = (target, e.downcast_ref::<Error>())
                && out.n == 0
                && err.n == 0
            {
                return Outcome::Locked(path.clone());
            }
            // One line: jidstore's errors already name the JID or path involved.
            let line = match (target, e.downcast_ref::<Error>()) {
                (Target::Dir(dir), Some(Error::StorageFull { path: None })) => Error::StorageFull {
                    path: Some(dir.to_path_buf()),
                }
                .to_string(),
                _ => one_line(&e),
            };
            let _ = writeln!(err, "jidstore: {}", error_line(&line));
            1
        }
    };
    let _ = out.flush();
    let _ = err.flush();
    Outcome::Exit(code)
}

#[expect(
    clippy::too_many_lines,
    reason = "one arm per command: a flat table reads best"
)]
fn dispatch(
    target: Target<'_>,
    command: Command,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> anyhow::Result<u8> {
    match target {
        Target::Store(_) => refuse_in_server(&command)?,
        Target::Dir(dir) => refuse_foreign_compact(dir, &command)?,
        Target::Database(_) => refuse_on_database(&command)?,
    }
    let env = Env { target, ctx };
    match command {
        Command::Register {
            user,
            domain,
            password,
            hold_erased_days,
            force,
        } => gdpr::register(
            &env,
            (user.as_deref(), &domain),
            &password,
            (!force).then_some(hold_erased_days),
            out,
        ),
        Command::Users { domain, prefix } => {
            toolbox::users(&env, domain.as_deref(), prefix.as_deref(), out)
        }
        Command::Inspect { username, domain } => toolbox::inspect(&env, &username, &domain, out),
        Command::Audit { since, jid } => toolbox::audit(&env, since, jid.as_deref(), out),
        Command::Expire { policy, dry_run } => retention::expire(&env, &policy, dry_run, out),
        Command::Passwd {
            username,
            domain,
            password,
        } => toolbox::passwd(&env, &username, &domain, &password, out),
        Command::RetrievePersonalData {
            username,
            domain,
            path,
            force,
            spreadsheet_safe,
            no_page,
        } => gdpr::retrieve(
            &env,
            &username,
            &domain,
            Path::new(&path),
            (force, spreadsheet_safe, !no_page),
            out,
            err,
        ),
        Command::Unregister {
            purge,
            dry_run,
            redact_kept,
            from_file,
            username,
            domain,
        } => match (from_file, username, domain) {
            (Some(file), _, _) => {
                batch::unregister(&env, &file, (purge, dry_run, redact_kept), out, err)
            }
            (None, Some(username), Some(domain)) => gdpr::unregister(
                &env,
                &username,
                &domain,
                (purge, dry_run, redact_kept),
                out,
                err,
            ),
            _ => anyhow::bail!("unregister needs <username> <domain>, or --from-file FILE"),
        },
        Command::Init => init::run(&env, out),
        Command::Compact => maint::compact(&env, out, err),
        Command::Restore { backup } => maint::restore(&env, &backup, out),
        Command::Backup { dest } => maint::backup(&env, &dest, out),
        Command::Stats => maint::stats(&env, out),
        Command::Migrate { to } => migrate::run(&env, &to, out),
        Command::Verify => maint::verify(&env, out, err),
        Command::Import {
            file,
            bad_timestamps,
            skip_missing_includes,
            import_erased,
            dry_run,
        } => pie::import(
            &env,
            &file,
            bad_timestamps,
            (skip_missing_includes, import_erased),
            dry_run,
            out,
            err,
        ),
        Command::ExportXep0227 {
            username,
            domain,
            path,
            force,
        } => pie::export(&env, &username, &domain, Path::new(&path), force, out),
        Command::ForensicExport {
            from,
            username,
            domain,
            path,
            force,
            work_dir,
        } => forensic::export(
            &env,
            &from,
            (&username, &domain),
            Path::new(&path),
            force,
            work_dir.as_deref(),
            out,
        ),
        Command::Mam { command } => mam::run(&env, command, out),
        Command::Demo => demo::run(&env, out),
        Command::Completions { shell } => docs::completions(shell, out),
        Command::Man => docs::man(out),
        Command::ServeAdmin => {
            anyhow::bail!("serve-admin runs only as its own process (`jidstore serve-admin`)")
        }
    }
}

/// Commands that need the data directory to themselves, refused through the admin socket.
fn refuse_in_server(command: &Command) -> anyhow::Result<()> {
    let name = match command {
        Command::Compact => "compact",
        Command::Restore { .. } => "restore",
        Command::Unregister { purge: true, .. } => "unregister --purge",
        Command::Demo => "demo",
        Command::ServeAdmin => "serve-admin",
        Command::Migrate { .. } => "migrate",
        _ => return Ok(()),
    };
    anyhow::bail!(
        "{name} cannot run while a server holds the store (it needs the data directory to itself); stop the server and run it again"
    )
}

/// Commands that work on a data directory, refused on PostgreSQL for now.
fn refuse_on_database(command: &Command) -> anyhow::Result<()> {
    let (name, why) = match command {
        Command::Restore { .. } => ("restore", "it replaces a sled data directory"),
        Command::Demo => ("demo", "it makes its own data directory"),
        Command::ForensicExport { .. } => (
            "forensic-export",
            "it reads a copied sled data directory, not a database",
        ),
        Command::ServeAdmin => ("serve-admin", "its socket lives in a data directory"),
        _ => return Ok(()),
    };
    anyhow::bail!("{name} does not work on a PostgreSQL store yet ({why})")
}

/// `compact` writes a new store and swaps it in, as this user: on a directory owned by
/// another user it must run as that user, flag or not.
fn refuse_foreign_compact(dir: &Path, command: &Command) -> anyhow::Result<()> {
    let name = match command {
        Command::Compact => "compact",
        Command::Restore { .. } => "restore",
        Command::Unregister { purge: true, .. } => "unregister --purge",
        _ => return Ok(()),
    };
    if let Err(Error::ForeignOwner { owner, .. }) = crate::owner::check(dir, false) {
        anyhow::bail!(
            "{name} must run as the owner of the data directory {}, {owner} \
             (it writes a new store and swaps it in), --allow-foreign-owner or not",
            dir.display()
        );
    }
    Ok(())
}

/// What every command gets besides its arguments.
pub(crate) struct Env<'a> {
    target: Target<'a>,
    ctx: &'a Context,
}

impl Env<'_> {
    /// The store: the server's, or the data directory opened (created only if `create`).
    fn open(&self, create: bool) -> crate::Result<Store> {
        match self.target {
            Target::Store(store) => Ok(store.clone()),
            Target::Dir(path) => open_path(path, create, self.ctx.allow_foreign_owner),
            Target::Database(url) => Config::database(url).must_exist(!create).open(),
        }
    }

    /// Whether the data directory is missing or empty, so that opening it would create a
    /// store (never for [`Target::Store`]).
    fn no_store_yet(&self) -> bool {
        match self.target {
            Target::Store(_) => false,
            Target::Database(url) => matches!(
                Config::database(url).must_exist(true).open(),
                Err(Error::NotAStore { .. })
            ),
            Target::Dir(path) => match std::fs::read_dir(path) {
                Ok(mut entries) => entries.next().is_none(),
                Err(e) => e.kind() == io::ErrorKind::NotFound,
            },
        }
    }

    /// The data directory (only [`Target::Dir`] commands use it without opening; on
    /// PostgreSQL, the commands that would are refused first).
    fn data_dir(&self) -> &Path {
        match self.target {
            Target::Store(store) => store.path(),
            Target::Dir(path) => path,
            Target::Database(_) => Path::new(""),
        }
    }

    /// An output path argument (an export file or a backup directory) as the caller means
    /// it. `-` is refused rather than taken as a file name: exports are zip files and
    /// directories, which are not written to stdout.
    fn output_path(&self, path: &Path) -> anyhow::Result<PathBuf> {
        if path.as_os_str() == "-" {
            anyhow::bail!(
                "output path `-`: jidstore does not write to stdout (an export is a zip or \
                 XML file written in place, a backup a directory); give a file name \
                 (`./-` for a file named -)"
            );
        }
        Ok(self.ctx.resolve(path))
    }

    /// Writes `json` (one line) or `text`, as the caller asked.
    fn emit(&self, out: &mut dyn Write, json: &serde_json::Value, text: &str) -> io::Result<()> {
        if self.ctx.json {
            serde_json::to_writer(&mut *out, json)?;
            out.write_all(b"\n")
        } else {
            out.write_all(text.as_bytes())
        }
    }
}

/// Opens a data directory (creating it and its parent only for `create`).
pub(crate) fn open_path(path: &Path, create: bool, allow_foreign: bool) -> crate::Result<Store> {
    if create && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| Error::Path {
            action: "create data directory",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    dir_config(path, create, allow_foreign)?.open()
}

/// How commands open the data directory at `path`: created only if `create`, with the
/// free-space reserve of `JIDSTORE_MIN_FREE` when set.
pub(crate) fn dir_config(path: &Path, create: bool, allow_foreign: bool) -> crate::Result<Config> {
    let mut config = Config::new(path)
        .must_exist(!create)
        .allow_foreign_owner(allow_foreign);
    if let Some(bytes) = min_free_from_env()? {
        config = config.min_free(bytes);
    }
    Ok(config)
}

/// `JIDSTORE_MIN_FREE`: the free-space reserve ([`Config::min_free`]) as bytes, or with a
/// `K`, `M` or `G` suffix (powers of 1024); `0` turns it off. Unset: the default.
pub fn min_free_from_env() -> crate::Result<Option<u64>> {
    let Some(raw) = std::env::var_os("JIDSTORE_MIN_FREE") else {
        return Ok(None);
    };
    let bad = || {
        Error::InvalidInput(format!(
            "JIDSTORE_MIN_FREE must be a number of bytes, optionally with K, M or G (e.g. 64M), \
             not {:?}",
            raw.to_string_lossy()
        ))
    };
    let text = raw.to_str().ok_or_else(bad)?.trim();
    let (digits, shift) = match text.char_indices().last() {
        Some((i, 'K' | 'k')) => (&text[..i], 10),
        Some((i, 'M' | 'm')) => (&text[..i], 20),
        Some((i, 'G' | 'g')) => (&text[..i], 30),
        _ => (text, 0),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift).map(Some).ok_or_else(bad)
}

/// The error as one line (jidstore's own errors carry their context already).
fn one_line(err: &anyhow::Error) -> String {
    if let Some(e) = err.downcast_ref::<Error>() {
        return e.to_string();
    }
    format!("{err:#}")
}

/// `message` made safe for one line of a terminal: control characters (a newline or an
/// escape sequence in a typed argument, a path or an imported file) are shown escaped, as
/// Rust's `escape_default` writes them, so an error is always exactly one line.
pub fn error_line(message: &str) -> String {
    let mut line = String::with_capacity(message.len());
    for c in message.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}

/// A path as a JSON string (lossy: a path that is not UTF-8 gets U+FFFD, never a panic).
pub(crate) fn path_json(path: &Path) -> serde_json::Value {
    serde_json::Value::String(path.to_string_lossy().into_owned())
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Counts bytes written, so that [`run`] knows whether a `Locked` error came before any
/// output.
struct Counting<'a> {
    inner: &'a mut dyn Write,
    n: usize,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The data directory a command uses: `--data-dir` resolved against the caller's cwd; else,
/// for `demo`, a new directory under the system temp directory (`$JIDSTORE_DATA_DIR` names
/// an operator's store, which demo must not fill); else `$JIDSTORE_DATA_DIR` when set and not
/// empty; else [`default_data_dir`].
pub fn data_dir(given: Option<&Path>, command: &Command, ctx: &Context) -> PathBuf {
    match (given, command) {
        (Some(dir), _) => ctx.resolve(dir),
        (None, Command::Demo) => demo::default_dir(),
        (None, _) => match std::env::var_os("JIDSTORE_DATA_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => ctx.resolve(Path::new(&dir)),
            None => ctx.resolve(&default_data_dir()),
        },
    }
}

/// The default data directory: `$XDG_DATA_HOME/jidstore`, else `~/.local/share/jidstore`,
/// else `./jidstore-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("jidstore");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/jidstore");
    }
    PathBuf::from("jidstore-data")
}
