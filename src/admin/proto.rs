//! The admin socket's wire format: one request, one response, each a frame of a 4-byte
//! big-endian length and a JSON body. Byte strings (argv, cwd, stdin, output) travel as
//! base64 so that non-UTF-8 paths survive.
//!
//! A client that sets [`Request::heartbeat_ms`] gets empty frames (length 0) before the
//! response: one as soon as the server accepts the request, then one every `heartbeat_ms`
//! while the command runs. The client's read timeout thus bounds the time between bytes, not
//! the length of a command, and a connection that ends after the first empty frame tells the
//! client that the server took the command (it may have run) rather than refused it.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

/// Protocol version; a server refuses requests of another version.
pub(crate) const VERSION: u32 = 1;

/// The largest request a server reads (argv and stdin are small).
pub(crate) const MAX_REQUEST: u32 = 16 << 20;

/// The largest response a client reads.
pub(crate) const MAX_RESPONSE: u32 = u32::MAX;

/// A command forwarded by a client.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    /// [`VERSION`].
    pub version: u32,
    /// The client's arguments after the program name, base64.
    pub argv: Vec<String>,
    /// The client's working directory, base64.
    pub cwd: String,
    /// What the command reads from stdin, base64.
    pub stdin: String,
    /// `--json`.
    pub json: bool,
    /// Send empty frames this often while the command runs (absent: none, as version 1
    /// clients before heartbeats expect).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_ms: Option<u64>,
}

/// What the command printed and its exit code.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Response {
    /// The exit code.
    pub code: u8,
    /// Standard output, base64.
    pub stdout: String,
    /// Standard error, base64.
    pub stderr: String,
}

/// Encodes bytes for a frame.
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes bytes from a frame.
pub(crate) fn unb64(text: &str) -> io::Result<Vec<u8>> {
    STANDARD
        .decode(text)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// An OS string for a frame.
pub(crate) fn os_b64(s: &std::ffi::OsStr) -> String {
    b64(s.as_bytes())
}

/// An OS string from a frame.
pub(crate) fn os_unb64(text: &str) -> io::Result<OsString> {
    Ok(OsString::from_vec(unb64(text)?))
}

/// Writes one frame.
pub(crate) fn write_frame<T: Serialize>(w: &mut impl Write, value: &T) -> io::Result<()> {
    let body = serde_json::to_vec(value)?;
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "admin frame too large"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(&body)?;
    w.flush()
}

/// Writes an empty frame (a heartbeat).
pub(crate) fn write_heartbeat(w: &mut impl Write) -> io::Result<()> {
    w.write_all(&0u32.to_be_bytes())?;
    w.flush()
}

/// What [`read_reply`] read.
#[derive(Debug)]
pub(crate) enum Reply<T> {
    /// The peer closed the connection before a frame began.
    Closed,
    /// An empty frame.
    Heartbeat,
    /// A frame.
    Frame(T),
}

/// Reads one frame of at most `max` bytes, or an empty frame (a heartbeat).
pub(crate) fn read_reply<T: for<'de> Deserialize<'de>>(
    r: &mut impl Read,
    max: u32,
) -> io::Result<Reply<T>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Reply::Closed),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len);
    if len == 0 {
        return Ok(Reply::Heartbeat);
    }
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("admin frame of {len} bytes is over the limit of {max}"),
        ));
    }
    let mut body = Vec::new();
    r.take(u64::from(len)).read_to_end(&mut body)?;
    if body.len() != len as usize {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "admin frame cut short",
        ));
    }
    Ok(Reply::Frame(serde_json::from_slice(&body)?))
}

/// Reads one frame of at most `max` bytes; `Ok(None)` if the peer closed before sending one.
/// An empty frame is an error here.
pub(crate) fn read_frame<T: for<'de> Deserialize<'de>>(
    r: &mut impl Read,
    max: u32,
) -> io::Result<Option<T>> {
    match read_reply(r, max)? {
        Reply::Closed => Ok(None),
        Reply::Heartbeat => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "empty admin frame",
        )),
        Reply::Frame(v) => Ok(Some(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_frames_are_errors() {
        let req = Request {
            version: VERSION,
            argv: vec![os_b64(std::ffi::OsStr::from_bytes(b"caf\xe9"))],
            cwd: os_b64(std::ffi::OsStr::new("/tmp")),
            stdin: b64(b"pw\n"),
            json: true,
            heartbeat_ms: None,
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &req).unwrap();
        let back: Request = read_frame(&mut buf.as_slice(), MAX_REQUEST)
            .unwrap()
            .unwrap();
        assert_eq!(os_unb64(&back.argv[0]).unwrap().as_bytes(), b"caf\xe9");
        assert_eq!(unb64(&back.stdin).unwrap(), b"pw\n");
        // Nothing sent: no request.
        assert!(
            read_frame::<Request>(&mut &b""[..], MAX_REQUEST)
                .unwrap()
                .is_none()
        );
        // Over the limit, cut short, not JSON, bad base64: errors, never panics.
        let big = (MAX_REQUEST + 1).to_be_bytes();
        assert!(read_frame::<Request>(&mut &big[..], MAX_REQUEST).is_err());
        assert!(read_frame::<Request>(&mut &buf[..buf.len() - 1], MAX_REQUEST).is_err());
        let junk = [0, 0, 0, 2, b'{', b'x'];
        assert!(read_frame::<Request>(&mut &junk[..], MAX_REQUEST).is_err());
        assert!(unb64("!!").is_err());
    }
}
