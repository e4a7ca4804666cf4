//! The listening side: the socket file, the accept loop, the peer check and one command per
//! connection.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use clap::Parser;

use super::proto::{self, Request, Response};
use crate::command::{self, Args, Context, Outcome, Target};
use crate::error::{Error, Result};
use crate::paths::ADMIN_TMP_PREFIX;
use crate::store::Store;

/// How long a connected client may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client may stall reading its response before the server gives up on it.
const RESPONSE_TIMEOUT: Duration = Duration::from_mins(1);

/// The running admin endpoint returned by [`super::serve`]. Dropping it stops accepting
/// connections and removes the socket file (commands already running finish on their own).
#[derive(Debug)]
pub struct AdminHandle {
    path: PathBuf,
    inode: (u64, u64),
    stop: Arc<AtomicBool>,
    listener: Arc<UnixListener>,
    thread: Option<JoinHandle<()>>,
}

impl AdminHandle {
    /// The socket's path (`admin.sock` in the data directory).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocked accept: shutting the listener down does on Linux, a connection
        // does everywhere.
        let _ = rustix::net::shutdown(&*self.listener, rustix::net::Shutdown::Both);
        let _ = UnixStream::connect(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Only our own socket: never one a later server put in its place.
        if fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.inode) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Creates the socket owner-only and atomically: bound inside a fresh 0700 directory, set to
/// 0600, then renamed into place, so it is never reachable by others with a wider mode.
fn bind_private(dir: &Path, path: &Path) -> Result<UnixListener> {
    match UnixStream::connect(path) {
        Ok(_) => {
            return Err(Error::InvalidInput(format!(
                "an admin socket is already being served at {}",
                path.display()
            )));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        // Nobody listening: a stale socket left by a process that died.
        Err(_) => {
            fs::remove_file(path).map_err(Error::on_path("remove stale admin socket", path))?;
        }
    }
    // Short: a socket path has to fit in about 100 bytes.
    let tmp_dir = dir.join(format!("{ADMIN_TMP_PREFIX}{:08x}", rand::random::<u32>()));
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp_dir)
        .map_err(Error::on_path("create admin socket directory", &tmp_dir))?;
    let tmp = tmp_dir.join(super::SOCKET_NAME);
    let bound = UnixListener::bind(&tmp)
        .map_err(Error::on_path("bind admin socket", &tmp))
        .and_then(|l| {
            fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
                .map_err(Error::on_path("set the mode of admin socket", &tmp))?;
            fs::rename(&tmp, path).map_err(Error::on_path("create admin socket", path))?;
            Ok(l)
        });
    let _ = fs::remove_file(&tmp);
    let _ = fs::remove_dir(&tmp_dir);
    bound
}

/// Starts the endpoint for `store`. See [`super::serve`].
pub(super) fn start(store: &Store) -> Result<AdminHandle> {
    let dir = store.path();
    let path = dir.join(super::SOCKET_NAME);
    let listener = Arc::new(bind_private(dir, &path)?);
    let meta = fs::metadata(&path).map_err(Error::on_path("read admin socket", &path))?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (listener, stop, store) = (Arc::clone(&listener), Arc::clone(&stop), store.clone());
        std::thread::Builder::new()
            .name("jidstore-admin".into())
            .spawn(move || accept_loop(&listener, &stop, &store))
            .map_err(Error::Io)?
    };
    Ok(AdminHandle {
        path,
        inode: (meta.dev(), meta.ino()),
        stop,
        listener,
        thread: Some(thread),
    })
}

fn accept_loop(listener: &UnixListener, stop: &AtomicBool, store: &Store) {
    loop {
        let conn = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match conn {
            Ok((stream, _)) => {
                let store = store.clone();
                // One thread per connection: a slow command does not hold up the others.
                let spawned = std::thread::Builder::new()
                    .name("jidstore-admin-conn".into())
                    .spawn(move || serve_connection(&store, stream));
                if spawned.is_err() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            // Out of descriptors and the like: back off instead of spinning.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Whether the peer may run commands: the server's own user, or root.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn peer_allowed(stream: &UnixStream) -> bool {
    let me = rustix::process::geteuid();
    rustix::net::sockopt::socket_peercred(stream)
        .is_ok_and(|cred| cred.uid == me || cred.uid.is_root())
}

/// Without `SO_PEERCRED` no peer can be checked, so none is accepted.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn peer_allowed(_stream: &UnixStream) -> bool {
    false
}

/// One connection: check the peer, read the request, run it, send the response. A refused
/// peer is disconnected without an answer.
fn serve_connection(store: &Store, mut stream: UnixStream) {
    if !peer_allowed(&stream) {
        return;
    }
    if stream.set_read_timeout(Some(REQUEST_TIMEOUT)).is_err()
        || stream.set_write_timeout(Some(RESPONSE_TIMEOUT)).is_err()
    {
        return;
    }
    let Ok(Some(request)) = proto::read_frame::<Request>(&mut stream, proto::MAX_REQUEST) else {
        return;
    };
    let response = match request.heartbeat_ms {
        None => execute(store, &request),
        Some(ms) => {
            // Tells the client the command was taken; a client already gone gets nothing run.
            if proto::write_heartbeat(&mut stream).is_err() {
                return;
            }
            let every = Duration::from_millis(ms.clamp(10, 60_000));
            let Some(response) = run_with_heartbeats(store, &request, &mut stream, every) else {
                return;
            };
            response
        }
    };
    let _ = proto::write_frame(&mut stream, &response);
}

/// Runs the request in a thread of its own while this one sends a heartbeat `every` so
/// often; `None` if the command panicked.
fn run_with_heartbeats(
    store: &Store,
    request: &Request,
    stream: &mut UnixStream,
    every: Duration,
) -> Option<Response> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(move || {
            let _ = tx.send(execute(store, request));
        });
        let mut beating = true;
        loop {
            match rx.recv_timeout(every) {
                Ok(response) => return Some(response),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    // A client gone: the command still runs to its end, unheard.
                    beating = beating && proto::write_heartbeat(stream).is_ok();
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
    })
}

/// Parses and runs a request against the server's store.
fn execute(store: &Store, request: &Request) -> Response {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = match decode(request) {
        Err(message) => {
            err.extend_from_slice(format!("jidstore: {message}\n").as_bytes());
            1
        }
        Ok((argv, ctx)) => {
            let argv = std::iter::once(OsString::from("jidstore")).chain(argv);
            match Args::try_parse_from(argv) {
                // The client parsed the same arguments; this is for a client of another
                // version, and for --help.
                Err(e) => {
                    let text = e.render().to_string();
                    let code = u8::try_from(e.exit_code()).unwrap_or(2);
                    if e.use_stderr() {
                        err.extend_from_slice(text.as_bytes());
                    } else {
                        out.extend_from_slice(text.as_bytes());
                    }
                    code
                }
                Ok(parsed) => {
                    let ctx = Context {
                        json: ctx.json || parsed.json,
                        ..ctx
                    };
                    match command::run(
                        Target::Store(store),
                        parsed.command,
                        &ctx,
                        &mut out,
                        &mut err,
                    ) {
                        Outcome::Exit(code) => code,
                        Outcome::Locked(_) => 1,
                    }
                }
            }
        }
    };
    Response {
        code,
        stdout: proto::b64(&out),
        stderr: proto::b64(&err),
    }
}

fn decode(request: &Request) -> std::result::Result<(Vec<OsString>, Context), String> {
    if request.version != proto::VERSION {
        return Err(format!(
            "admin protocol version {} is not supported (this server speaks {})",
            request.version,
            proto::VERSION
        ));
    }
    let bad = |e: io::Error| format!("malformed admin request: {e}");
    let argv = request
        .argv
        .iter()
        .map(|a| proto::os_unb64(a))
        .collect::<io::Result<Vec<_>>>()
        .map_err(bad)?;
    let cwd = PathBuf::from(proto::os_unb64(&request.cwd).map_err(bad)?);
    if !cwd.is_absolute() {
        return Err("the client's working directory is unknown".into());
    }
    let stdin = proto::unb64(&request.stdin).map_err(bad)?;
    Ok((
        argv,
        Context {
            cwd,
            stdin,
            json: request.json,
            allow_foreign_owner: false,
        },
    ))
}
