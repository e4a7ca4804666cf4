//! The admin endpoint: lets the `jidstore` command work on a store that a running server
//! embeds (sled allows one process per data directory).
//!
//! The server calls [`serve`] once after opening its store. That creates a Unix domain
//! socket `admin.sock` in the data directory, owner-only (0600; bound in a private directory
//! and renamed into place, so it never exists with a wider mode), and answers each
//! connection in a thread of its own. There is no network listener. Each connection's peer
//! credentials (`SO_PEERCRED`) are checked: only the server's own user and root are served;
//! anyone else is disconnected without an answer.
//!
//! A client (`forward`, used by the CLI when opening the directory fails with
//! [`Error::Locked`]) sends its arguments, working directory, what the command reads from
//! stdin and the output format; the server runs the command on its own store with
//! the CLI's own code and returns stdout, stderr and the exit code, so a command prints
//! the same either way. Commands that need the directory to themselves (`compact`,
//! `unregister --purge`, `demo`) are refused with one line and exit 1.
//!
//! The client never waits forever: every read and write on the socket waits at most
//! [`idle_timeout`] for the next byte (`JIDSTORE_ADMIN_TIMEOUT`, default 30 s). A long
//! command is not cut by it: the server sends a heartbeat as soon as it takes the command
//! and then a few times per timeout while it runs. A server that stops answering is reported
//! as such, and one that took the command and then went away as having possibly run it.
//!
//! ```no_run
//! # fn main() -> jidstore::Result<()> {
//! let store = jidstore::Store::open("/var/lib/myserver/jidstore")?;
//! let _admin = jidstore::admin::serve(&store)?; // keep it as long as the store is open
//! # Ok(()) }
//! ```

mod proto;
mod server;

use std::ffi::OsString;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

pub use server::AdminHandle;

use crate::command::Context;
use crate::error::{Error, Result};
use crate::store::Store;

/// The socket's file name inside the data directory.
pub use crate::paths::ADMIN_SOCKET as SOCKET_NAME;

/// How long [`forward`] waits for the next byte by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable that sets [`idle_timeout`]: seconds, decimals allowed (`0.5`).
pub const TIMEOUT_ENV: &str = "JIDSTORE_ADMIN_TIMEOUT";

/// How long [`forward`] waits for the next byte from the server: [`TIMEOUT_ENV`], else
/// [`DEFAULT_TIMEOUT`]. At least 10 ms.
pub fn idle_timeout() -> Result<Duration> {
    let Some(raw) = std::env::var_os(TIMEOUT_ENV) else {
        return Ok(DEFAULT_TIMEOUT);
    };
    let bad = || {
        Error::InvalidInput(format!(
            "{TIMEOUT_ENV} must be a number of seconds of at least 0.01 (e.g. 30 or 0.5), not {:?}",
            raw.to_string_lossy()
        ))
    };
    let secs: f64 = raw
        .to_str()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(bad)?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| *d >= Duration::from_millis(10))
        .ok_or_else(bad)
}

/// Serves the admin socket for `store` until the returned handle is dropped. A stale
/// socket file (its process gone) is replaced; a live one is an error.
pub fn serve(store: &Store) -> Result<AdminHandle> {
    server::start(store)
}

/// What a forwarded command printed, and its exit code.
#[doc(hidden)] // the CLI's client side; not covered by semver
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarded {
    /// The exit code.
    pub code: u8,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// Sends a command to the server holding `data_dir`: `argv` is the command line after the
/// program name (global flags may stay in it: the server uses its own store). `Ok(None)`
/// when no server listens there (no socket, or a stale one). Each read and write waits at
/// most [`idle_timeout`] for the next byte; the server's heartbeats keep a long command alive.
#[doc(hidden)] // the CLI's client side; not covered by semver
pub fn forward(data_dir: &Path, argv: &[OsString], ctx: &Context) -> Result<Option<Forwarded>> {
    let idle = idle_timeout()?;
    let path = data_dir.join(SOCKET_NAME);
    let failed = |source: io::Error| Error::Path {
        action: "use the admin socket",
        path: path.clone(),
        source,
    };
    let mut stream = match connect(&path, idle) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(failed(stalled(e, idle, false))),
    };
    stream
        .set_read_timeout(Some(idle))
        .and_then(|()| stream.set_write_timeout(Some(idle)))
        .map_err(failed)?;
    let request = proto::Request {
        version: proto::VERSION,
        argv: argv.iter().map(|a| proto::os_b64(a)).collect(),
        cwd: proto::os_b64(ctx.cwd.as_os_str()),
        stdin: proto::b64(&ctx.stdin),
        json: ctx.json,
        // A few heartbeats per timeout, so that one late heartbeat is not a timeout.
        heartbeat_ms: Some(
            u64::try_from((idle / 4).as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        ),
    };
    proto::write_frame(&mut stream, &request).map_err(|e| failed(stalled(e, idle, false)))?;
    let mut taken = false;
    let response: proto::Response = loop {
        match proto::read_reply(&mut stream, proto::MAX_RESPONSE) {
            Ok(proto::Reply::Frame(r)) => break r,
            Ok(proto::Reply::Heartbeat) => taken = true,
            Ok(proto::Reply::Closed) if taken => {
                return Err(failed(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the server took the command and closed the connection before answering \
                     (it stopped or crashed); the command may have run: check before running it again",
                )));
            }
            Ok(proto::Reply::Closed) => {
                return Err(failed(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the server closed the connection without taking the command (not the server's user?)",
                )));
            }
            Err(e) => return Err(failed(stalled(e, idle, taken))),
        }
    };
    Ok(Some(Forwarded {
        code: response.code,
        stdout: proto::unb64(&response.stdout).map_err(failed)?,
        stderr: proto::unb64(&response.stderr).map_err(failed)?,
    }))
}

/// Connects, waiting at most `idle`: a server that stopped accepting (`SIGSTOP`) lets its
/// backlog fill, and a blocking connect would then wait forever.
fn connect(path: &Path, idle: Duration) -> io::Result<UnixStream> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let addr = SocketAddrUnix::new(path)?;
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    let deadline = std::time::Instant::now() + idle;
    loop {
        match rustix::net::connect(&fd, &addr) {
            Ok(()) => break,
            // A full backlog: a Unix socket connect does not stay in progress, so retry.
            Err(rustix::io::Errno::AGAIN) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e.into()),
        }
    }
    rustix::io::ioctl_fionbio(&fd, false)?;
    Ok(UnixStream::from(fd))
}

/// A socket timeout as a sentence (other errors pass through).
fn stalled(e: io::Error, idle: Duration, taken: bool) -> io::Error {
    if !matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    ) {
        return e;
    }
    let what = if taken {
        "the server took the command, then sent nothing"
    } else {
        "the server did not answer"
    };
    let after = if taken {
        "; the command may have run: check before running it again"
    } else {
        ""
    };
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!(
            "{what} for {} s (stopped or hung?; {TIMEOUT_ENV} sets the wait){after}",
            idle.as_secs_f64()
        ),
    )
}
