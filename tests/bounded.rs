//! Helpers for fault tests: the real binary run with a deadline, checks that a failure is a
//! clean one (one line, exit 1, no panic), and a small tmpfs the test mounts itself.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::Run;

/// How long one child process may run before the test kills it and fails.
pub const CHILD_TIMEOUT: Duration = Duration::from_mins(1);

/// Runs `jidstore --data-dir <data> <args>` and kills it after [`CHILD_TIMEOUT`] (then the
/// test fails: a hang is a bug).
pub fn jidstore(data: &Path, args: &[&str]) -> Run {
    let mut all: Vec<std::ffi::OsString> = vec!["--data-dir".into(), data.into()];
    all.extend(args.iter().map(std::ffi::OsString::from));
    run_bounded(Command::new(env!("CARGO_BIN_EXE_jidstore")).args(&all))
}

/// Runs a prepared command with [`CHILD_TIMEOUT`]; panics (failing the test) on a hang.
pub fn run_bounded(cmd: &mut Command) -> Run {
    let mut child = cmd
        .env_remove("JIDSTORE_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn jidstore");
    // Drain both pipes in threads so a chatty child cannot block on a full pipe.
    let mut so = child.stdout.take().expect("stdout");
    let mut se = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = so.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = se.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "jidstore {:?} did not finish within {CHILD_TIMEOUT:?} (hang)",
                cmd.get_args().collect::<Vec<_>>()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = out_t.join().expect("stdout thread");
    let stderr = err_t.join().expect("stderr thread");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Fails unless the run did not panic (exit 101 or "panicked" on stderr) and was not killed.
pub fn assert_no_panic(run: &Run, what: &str) {
    assert!(
        run.code != 101 && !run.stderr.contains("panicked") && run.code >= 0,
        "{what}: exit {} with a panic or signal:\n{}",
        run.code,
        run.stderr
    );
}

/// Fails unless the run failed cleanly: exit 1, every stderr line a `jidstore: ` line, and
/// no panic.
pub fn assert_clean_failure(run: &Run, what: &str) {
    assert_no_panic(run, what);
    assert_eq!(run.code, 1, "{what}: exit code\nstderr: {}", run.stderr);
    assert!(!run.stderr.trim().is_empty(), "{what}: no error message");
    for line in run.stderr.lines() {
        assert!(
            line.starts_with("jidstore: "),
            "{what}: stderr line is not a jidstore error: {line:?}\n{}",
            run.stderr
        );
    }
}

/// A tmpfs of a given size mounted on a fresh temporary directory; unmounted on drop.
pub struct Tmpfs {
    dir: Option<TempDir>,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB, or says why it cannot (not root, no mount namespace...).
    pub fn mount(mib: u64) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs { dir: Some(dir) })
    }

    /// Mounts a tmpfs, or prints a clear SKIP line and returns `None` (set
    /// `JIDSTORE_REQUIRE_TMPFS=1` to make that a failure, as CI running as root can).
    pub fn mount_or_skip(mib: u64, test: &str) -> Option<Tmpfs> {
        match Tmpfs::mount(mib) {
            Ok(t) => Some(t),
            Err(why) => {
                assert!(
                    std::env::var_os("JIDSTORE_REQUIRE_TMPFS").is_none(),
                    "{test}: cannot mount tmpfs: {why}"
                );
                eprintln!("SKIP {test}: skipped: cannot mount tmpfs: {why}");
                None
            }
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("mounted").path()
    }

    /// Grows (or shrinks, if the data fits) the filesystem to `mib` MiB.
    pub fn resize(&self, mib: u64) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(self.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "remount: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Fills the filesystem with a ballast file, leaving about `free` bytes; returns its path.
    pub fn fill(&self, free: u64) -> PathBuf {
        let path = self.path().join("ballast");
        let mut f = std::fs::File::create(&path).expect("create ballast");
        let chunk = vec![0x5au8; 64 * 1024];
        let mut len = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n as u64,
            }
        }
        // Smaller writes fill the last partial chunk.
        loop {
            match f.write(&chunk[..4096]) {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n as u64,
            }
        }
        f.set_len(len.saturating_sub(free)).expect("shrink ballast");
        f.sync_all().expect("sync ballast");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            let ok = Command::new("umount")
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                // Something still holds it (a failed test's child): detach it lazily.
                let _ = Command::new("umount").arg("-l").arg(dir.path()).status();
            }
            drop(dir);
        }
    }
}

/// Waits until no process (or sled thread of this one) holds the store in `data`: sled's
/// I/O threads keep the `db` file, and its lock, for a moment after the last handle drops,
/// and may still delete an old snapshot, changing the free space. Panics after 20 s.
pub fn wait_until_released(data: &Path) {
    let db = std::fs::File::open(data.join("db")).expect("open db file");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match db.try_lock() {
            Ok(()) => {
                db.unlock().expect("unlock db file");
                return;
            }
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{} stays locked: {e}", data.display()),
        }
    }
}

/// Files (recursively, relative names) under `dir`.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let e = e.expect("entry");
            let p = e.path();
            if e.file_type().expect("type").is_dir() {
                stack.push(p);
            } else {
                out.push(
                    p.strip_prefix(dir)
                        .expect("under dir")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy dir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy file");
        }
    }
}
