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
//! A client ([`forward`], used by the CLI when opening the directory fails with
//! [`Error::Locked`]) sends its arguments, working directory, what the command reads from
//! stdin and the output format; the server runs the command on its own store with
//! [`crate::command::run`] and returns stdout, stderr and the exit code, so a command prints
//! the same either way. Commands that need the directory to themselves (`compact`,
//! `unregister --purge`, `demo`) are refused with one line and exit 1.
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

pub use server::AdminHandle;

use crate::command::Context;
use crate::error::{Error, Result};
use crate::store::Store;

/// The socket's file name inside the data directory.
pub const SOCKET_NAME: &str = "admin.sock";

/// Serves the admin socket for `store` until the returned handle is dropped. A stale
/// socket file (its process gone) is replaced; a live one is an error.
pub fn serve(store: &Store) -> Result<AdminHandle> {
    server::start(store)
}

/// What a forwarded command printed, and its exit code.
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
/// when no server listens there (no socket, or a stale one).
pub fn forward(data_dir: &Path, argv: &[OsString], ctx: &Context) -> Result<Option<Forwarded>> {
    let path = data_dir.join(SOCKET_NAME);
    let failed = |source: io::Error| Error::Path {
        action: "use the admin socket",
        path: path.clone(),
        source,
    };
    let mut stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(failed(e)),
    };
    let request = proto::Request {
        version: proto::VERSION,
        argv: argv.iter().map(|a| proto::os_b64(a)).collect(),
        cwd: proto::os_b64(ctx.cwd.as_os_str()),
        stdin: proto::b64(&ctx.stdin),
        json: ctx.json,
    };
    proto::write_frame(&mut stream, &request).map_err(failed)?;
    let response: proto::Response = proto::read_frame(&mut stream, proto::MAX_RESPONSE)
        .map_err(failed)?
        .ok_or_else(|| {
            failed(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the server closed the connection without answering (not the server's user?)",
            ))
        })?;
    Ok(Some(Forwarded {
        code: response.code,
        stdout: proto::unb64(&response.stdout).map_err(failed)?,
        stderr: proto::unb64(&response.stderr).map_err(failed)?,
    }))
}
