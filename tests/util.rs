//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "not every test module uses every helper")]

use jidstore::{BareJid, Config, Jid, Store};
use tempfile::TempDir;

/// Test result alias: tests use `?` on jidstore and I/O errors alike.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A fresh store in a temporary directory (kept alive by the returned `TempDir`).
/// SCRAM iterations are low so tests stay fast.
pub fn store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    (dir, store)
}

/// Opens (or reopens) the store inside `dir`.
pub fn open(dir: &TempDir) -> Store {
    Config::new(dir.path().join("data"))
        .scram_iterations(16)
        .open()
        .expect("open store")
}

/// Drops the store and opens it again from disk.
///
/// sled's background threads can hold the directory lock for a moment after the last handle
/// is dropped (seen under parallel test load), so a `Locked` open is retried for up to 5 s.
pub fn reopen(dir: &TempDir, store: Store) -> Store {
    store.flush().expect("flush");
    drop(store);
    Config::new(dir.path().join("data"))
        .scram_iterations(16)
        .lock_timeout(std::time::Duration::from_secs(5))
        .open()
        .expect("reopen store")
}

/// Parses a bare JID.
pub fn bare(s: &str) -> BareJid {
    BareJid::parse(s).expect("valid bare JID")
}

/// Parses a bare or full JID.
pub fn full(s: &str) -> Jid {
    Jid::parse(s).expect("valid JID")
}

/// Creates an account and returns its JID.
pub fn user(store: &Store, s: &str) -> BareJid {
    let j = bare(s);
    store
        .accounts()
        .create(&j, "password")
        .expect("create account");
    j
}

/// A fresh store with the accounts `alice@localhost` and `bob@localhost`.
pub fn alice_and_bob() -> (TempDir, Store, BareJid, BareJid) {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let bob = user(&store, "bob@localhost");
    (dir, store, alice, bob)
}

/// Fails unless `r` is [`jidstore::Error::NoAccount`] (a write for an owner without one).
#[track_caller]
#[expect(
    clippy::needless_pass_by_value,
    reason = "takes a call's result as written: assert_no_account(store.x().set(...))"
)]
pub fn assert_no_account<T: std::fmt::Debug>(r: jidstore::Result<T>) {
    assert!(
        matches!(r, Err(jidstore::Error::NoAccount(_))),
        "expected NoAccount, got {r:?}"
    );
}

/// Fails unless `text` contains `needle`; the message shows the whole text.
#[track_caller]
pub fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "{needle:?} not in:\n{text}");
}

/// Fails if `text` contains `needle`; the message shows the whole text.
#[track_caller]
pub fn assert_lacks(text: &str, needle: &str) {
    assert!(!text.contains(needle), "{needle:?} in:\n{text}");
}

/// Output of one run of the real `jidstore` binary.
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Whether the tests run with an effective user id of 0 (root).
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Runs the `jidstore` binary with `--data-dir <data>` and the given arguments.
pub fn jidstore(data: &std::path::Path, args: &[&str]) -> Run {
    jidstore_through(
        std::process::Command::new(env!("CARGO_BIN_EXE_jidstore")),
        data,
        args,
    )
}

/// Runs `cmd` (the `jidstore` binary, or a wrapper that runs it with what follows) with
/// `--data-dir <data>` and the given arguments, no `$JIDSTORE_DATA_DIR` and an empty stdin.
pub fn jidstore_through(
    mut cmd: std::process::Command,
    data: &std::path::Path,
    args: &[&str],
) -> Run {
    let out = cmd
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("JIDSTORE_DATA_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run jidstore");
    Run::from(out)
}

impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs the binary like [`jidstore`], retrying for up to 5 s while a store this test just
/// closed still holds the directory lock (sled's threads let go a moment after the last
/// handle is dropped).
pub fn jidstore_settled(data: &std::path::Path, args: &[&str]) -> Run {
    let mut r = jidstore(data, args);
    for _ in 0..100 {
        if !r.stderr.contains("is locked by another process") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        r = jidstore(data, args);
    }
    r
}

/// Runs `<cmd> <user> <host> <out>` (an export: `retrieve_personal_data`,
/// `export-xep0227`) on the store at `data`.
pub fn export_to(
    data: &std::path::Path,
    cmd: &str,
    user: &str,
    host: &str,
    out: &std::path::Path,
) -> Run {
    let out = out.to_str().expect("UTF-8 path");
    jidstore(data, &[cmd, user, host, out])
}

/// Runs `retrieve_personal_data <user> localhost <out>` on the store at `data`.
pub fn retrieve_to(data: &std::path::Path, user: &str, out: &std::path::Path) -> Run {
    export_to(data, "retrieve_personal_data", user, "localhost", out)
}

/// Reads every file of a zip export into (name, contents).
pub fn unzip(path: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).expect("open zip")).expect("zip");
    let mut out = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).expect("entry");
        let mut s = String::new();
        f.read_to_string(&mut s).expect("utf-8 entry");
        let name = f.name().expect("entry name").into_owned();
        out.insert(name, s);
    }
    out
}

/// Unpacks a zip of a data directory (`data/...`, e.g. a fixture) into `into`.
pub fn unpack(zip: &std::path::Path, into: &std::path::Path) {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(zip).expect("open zip")).expect("zip");
    zip.extract(into).expect("unpack zip");
}

/// Parses one CSV file strictly (RFC 4180) into header and rows.
pub fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let header = r
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = r
        .records()
        .map(|rec| rec.expect("record").iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// The data rows (header excluded) of one CSV file in `subject`'s GDPR export.
pub fn export_rows(store: &Store, subject: &BareJid, file: &str) -> Vec<Vec<String>> {
    let mut sink = std::io::Cursor::new(Vec::new());
    jidstore::gdpr::retrieve(
        store,
        subject,
        &mut sink,
        &jidstore::gdpr::ExportOptions::default(),
    )
    .expect("export");
    let mut zip = zip::ZipArchive::new(sink).expect("read zip");
    let csv_file = zip.by_name(file).expect("file in zip");
    csv::Reader::from_reader(csv_file)
        .records()
        .map(|r| r.expect("CSV record").iter().map(str::to_owned).collect())
        .collect()
}

/// Deterministic pseudo-random numbers (xorshift64*): a fixed seed gives the same run.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Distinct JIDs that share prefixes: none may see another's data.
pub const LOOKALIKES: [&str; 4] = ["a@h", "a@h.org", "ab@h", "a@hh"];

/// Creates an account for each of [`LOOKALIKES`].
pub fn lookalike_users(store: &Store) -> Vec<BareJid> {
    LOOKALIKES.iter().map(|j| user(store, j)).collect()
}

/// A fresh store with an account for each of [`LOOKALIKES`].
pub fn lookalike_store() -> (TempDir, Store, Vec<BareJid>) {
    let (dir, store) = store();
    let owners = lookalike_users(&store);
    (dir, store, owners)
}
