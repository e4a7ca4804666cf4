//! The `jidstore` command-line tool: parses the arguments and runs the command with
//! `jidstore::__internal::command::run`. When another process (a server embedding the store) holds the
//! data directory, the command goes to that process's admin socket instead
//! ([`jidstore::admin`]), with the same output and exit code.

use std::ffi::OsString;
use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use jidstore::__internal::command::{self, Args, Command, Context, Outcome, Target};
use jidstore::progress::{self, Progress};

fn main() -> ExitCode {
    let args = Args::parse();
    let mut ctx = Context {
        // Unknown cwd: relative paths still work here, and the admin socket refuses it.
        cwd: std::env::current_dir().unwrap_or_else(|_| ".".into()),
        stdin: Vec::new(),
        json: args.json,
        allow_foreign_owner: args.allow_foreign_owner,
    };
    if args.command.reads_stdin() {
        match read_line() {
            Ok(line) => ctx.stdin = line,
            Err(e) => return fail(&format!("cannot read password from stdin: {e}")),
        }
    }
    let dir = command::data_dir(args.data_dir.as_deref(), &args.command, &ctx);
    // SIGINT, SIGTERM, SIGHUP: remove the temporary files this command (or, in serve-admin,
    // a forwarded command) created, then exit.
    if let Err(e) = jidstore::cleanup::install() {
        return fail(&format!("cannot install signal handlers: {e}"));
    }
    // --database (or $JIDSTORE_DATABASE_URL): the store is in PostgreSQL. Nothing holds it
    // the way a process holds a sled directory, so there is no lock to wait out or forward.
    if let Some(url) = args.database.as_deref().filter(|u| !u.is_empty()) {
        if args.data_dir.is_some() {
            return fail(
                "--data-dir and --database (or $JIDSTORE_DATABASE_URL) name two stores; give one",
            );
        }
        return match run(Target::Database(url), args.command, &ctx, args.json) {
            Outcome::Exit(code) => ExitCode::from(code),
            Outcome::Locked(path) => fail(&jidstore::Error::Locked(path).to_string()),
        };
    }
    if let Command::ServeAdmin = args.command {
        return serve_admin(&dir);
    }
    // A process that has just let go of the directory (a server stopping, a command that has
    // just finished) holds sled's lock a few milliseconds longer while its threads end: wait
    // that out, briefly, before calling the directory locked.
    let deadline = Instant::now() + LOCK_GRACE;
    let mut command = Some(args.command);
    loop {
        // The command is consumed by a run; a retry after `Locked` parses it again.
        let cmd = command.take().unwrap_or_else(|| Args::parse().command);
        match run(Target::Dir(&dir), cmd, &ctx, args.json) {
            Outcome::Exit(code) => return ExitCode::from(code),
            Outcome::Locked(path) => {
                if let Some(code) = forward(&path, &ctx) {
                    return code;
                }
                if Instant::now() >= deadline {
                    return fail(&jidstore::Error::Locked(path).to_string());
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
    }
}

/// Runs `cmd` in this process, output on stdout and stderr. Progress lines go to this
/// process's stderr only: never with `--json` (see [`show_progress`]), and never for a
/// forwarded command (the server runs it without a renderer, so forwarded output stays
/// byte-identical to a direct run's without progress).
fn run(target: Target<'_>, cmd: Command, ctx: &Context, json: bool) -> Outcome {
    let run = || {
        command::run(
            target,
            cmd,
            ctx,
            &mut io::stdout().lock(),
            &mut io::stderr().lock(),
        )
    };
    if show_progress(json) {
        let term: Rc<dyn Progress> = Rc::new(progress::Terminal::new(io::stderr()));
        progress::with(term, run)
    } else {
        run()
    }
}

/// How long a locked data directory without an admin socket is retried before the command
/// fails with "locked by another process".
const LOCK_GRACE: Duration = Duration::from_millis(1500);

/// Whether to draw progress: `JIDSTORE_PROGRESS=always` or `never`, else only when stderr
/// is a terminal; never with `--json`.
fn show_progress(json: bool) -> bool {
    if json {
        return false;
    }
    match std::env::var("JIDSTORE_PROGRESS").as_deref() {
        Ok("always") => true,
        Ok("never") => false,
        _ => io::stderr().is_terminal(),
    }
}

/// One line of stdin, the line end kept off (what `register DOMAIN -` reads).
fn read_line() -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    io::stdin().lock().read_until(b'\n', &mut line)?;
    Ok(line)
}

fn fail(message: &str) -> ExitCode {
    eprintln!("jidstore: {}", command::error_line(message));
    ExitCode::from(1)
}

/// The directory is locked: run the command in the process that holds it, if it serves the
/// admin socket, and print what it printed. `None`: no admin socket answers.
fn forward(dir: &Path, ctx: &Context) -> Option<ExitCode> {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    match jidstore::admin::forward(dir, &argv, ctx) {
        Ok(Some(reply)) => {
            // A closed stdout (`| head`) is not an error, as for a direct run.
            let _ = io::stdout().write_all(&reply.stdout);
            let _ = io::stdout().flush();
            let _ = io::stderr().write_all(&reply.stderr);
            Some(ExitCode::from(reply.code))
        }
        Ok(None) => None,
        Err(e) => Some(fail(&e.to_string())),
    }
}

/// `jidstore serve-admin`: the reference embedding. Opens the store, serves the admin socket,
/// prints one line when ready, and stops (removing the socket) when stdin closes.
fn serve_admin(dir: &Path) -> ExitCode {
    // A server restarting at once may find its previous process's lock still held.
    let config = jidstore::Config::new(dir)
        .must_exist(true)
        .lock_timeout(std::time::Duration::from_secs(5));
    let config = match command::min_free_from_env() {
        Ok(None) => config,
        Ok(Some(bytes)) => config.min_free(bytes),
        Err(e) => return fail(&e.to_string()),
    };
    let store = match config.open() {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let admin = match jidstore::admin::serve(&store) {
        Ok(a) => a,
        Err(e) => return fail(&e.to_string()),
    };
    println!("serving {}", admin.path().display());
    let _ = io::stdout().flush();
    let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
    drop(admin);
    if let Err(e) = store.flush() {
        return fail(&e.to_string());
    }
    ExitCode::SUCCESS
}
