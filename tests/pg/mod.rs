//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary directory, `pg_ctl
//! start` on 127.0.0.1 with a free port and the Unix socket in that directory, fsync
//! settings left at their defaults. One cluster per test binary, started on first use; each
//! test gets a fresh database ([`database`]).
//!
//! PostgreSQL refuses to run as root: as root, the directory is given to the `postgres`
//! system user (Debian's package creates it) and the binaries run through `runuser -u
//! postgres --`; otherwise they run as the current user.
//!
//! No PostgreSQL binaries: as root on Debian they are installed with apt (Debian's
//! `postgresql`, once per test binary); otherwise the test fails with a message saying so,
//! unless `JIDSTORE_SKIP_PG=1`: then [`database`] returns `None` and the caller skips.
//!
//! Stopping: a [`Cluster`] stops its server and removes its directory when dropped. The
//! shared one lives in a static, which Rust never drops, so a watchdog shell started with
//! it does the same once the test process has exited (however it exits).

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test helper: each binary uses part of it, and setup failures fail the test"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where Debian puts the server binaries (the newest version wins); `PATH` is tried last.
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("JIDSTORE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
}

/// A running cluster.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

impl Cluster {
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `program` from the server's binaries, as the user that owns the cluster.
    fn command(bin: &Path, as_postgres: bool, program: &str) -> Command {
        let exe = bin.join(program);
        if as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// Creates and starts a cluster; `Err` says why not.
    pub fn start(bin: PathBuf) -> Result<Cluster, String> {
        Cluster::start_with(bin, "")
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A temporary directory the cluster's user owns, and a free loopback port.
    fn place(as_postgres: bool) -> Result<(tempfile::TempDir, u16), String> {
        // As root, under /tmp: a $TMPDIR under /root would be out of the postgres user's
        // reach. Short either way: the socket path must fit in 107 bytes.
        let base = if as_postgres {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("jidstore-pg")
            .tempdir_in(base)
            .map_err(|e| format!("temporary directory: {e}"))?;
        if as_postgres {
            let st = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !st.success() {
                return Err(
                    "chown of the cluster directory to postgres failed (is there a postgres user?)"
                        .into(),
                );
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("free port: {e}"))?
            .port();
        Ok((dir, port))
    }

    /// `pg_ctl start` on the cluster's data directory, with `extra` server options.
    fn pg_start(&self, extra: &str) -> Result<(), String> {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200 {extra}",
            self.port,
            self.dir.path().display()
        );
        let out = Cluster::command(&self.bin, self.as_postgres, "pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .args(["-o", &opts, "start"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl start: {e}"))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            return Err(format!(
                "pg_ctl start failed: {}{log}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// A streaming standby of this cluster: `pg_basebackup -R` into a new directory, with
    /// `application_name` `name` (what `synchronous_standby_names` lists), started on its
    /// own loopback port with `extra` server options.
    pub fn standby(&self, name: &str, extra: &str) -> Result<Cluster, String> {
        let (dir, port) = Cluster::place(self.as_postgres)?;
        let standby = Cluster {
            dir,
            bin: self.bin.clone(),
            port,
            as_postgres: self.as_postgres,
        };
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres application_name={name}",
            self.port
        );
        let out = Cluster::command(&self.bin, self.as_postgres, "pg_basebackup")
            .args(["-d", &conninfo, "-R", "-X", "stream", "-c", "fast", "-D"])
            .arg(standby.data())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("pg_basebackup: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "pg_basebackup failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        // -R wrote primary_conninfo; the last setting in the file wins, so this one (with
        // the application name) is what the standby uses.
        let auto = standby.data().join("postgresql.auto.conf");
        let mut conf = std::fs::read_to_string(&auto).map_err(|e| format!("{e}"))?;
        for part in ["primary_conninfo = '", &conninfo, "'\n"] {
            conf.push_str(part);
        }
        std::fs::write(&auto, conf).map_err(|e| format!("{e}"))?;
        standby.pg_start(extra)?;
        Ok(standby)
    }

    /// `pg_ctl promote`, waiting until the server accepts writes.
    pub fn promote(&self) -> Result<(), String> {
        let out = Cluster::command(&self.bin, self.as_postgres, "pg_ctl")
            .args(["-w", "-t", "60", "-D"])
            .arg(self.data())
            .arg("promote")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("pg_ctl promote: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl promote failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// The postmaster's process id (first line of `postmaster.pid`).
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// `kill -9` of the whole server, as a machine that dies: the postmaster first, then
    /// every process it started (backends, WAL senders, writer), by id. Returns once the
    /// postmaster is gone (no process or a zombie).
    pub fn kill_9(&self) {
        let Some(pm) = self.postmaster_pid() else {
            return;
        };
        let children: Vec<u32> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let child: u32 = e.file_name().to_str()?.parse().ok()?;
                let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
                // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
                let parent: u32 = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .nth(1)?
                    .parse()
                    .ok()?;
                (parent == pm).then_some(child)
            })
            .collect();
        for pid in std::iter::once(pm).chain(children) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid.cast_signed()) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pm}/stat")).ok();
            let gone = state
                .as_deref()
                .and_then(|s| s.rsplit_once(')'))
                .is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'));
            assert!(
                gone || std::time::Instant::now() < deadline,
                "the killed postmaster {pm} is still running after 30 s"
            );
            if gone {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    /// Creates and starts a cluster with `extra` server options; `Err` says why not.
    pub fn start_with(bin: PathBuf, extra: &str) -> Result<Cluster, String> {
        let as_postgres = is_root();
        let (dir, port) = Cluster::place(as_postgres)?;
        let cluster = Cluster {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = cluster.data();
        let out = Cluster::command(&cluster.bin, as_postgres, "initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-instructions",
                "-D",
            ])
            .arg(&data)
            .output()
            .map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        cluster.pg_start(extra)?;
        Ok(cluster)
    }

    /// The URL of `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database; returns its URL.
    pub fn create_database(&self) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connect to the test cluster");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        self.url(&name)
    }

    /// Stops the server and removes its directory once process `pid` has exited.
    pub fn watch(&self, pid: u32) {
        let pg_ctl = self.bin.join("pg_ctl");
        let user = if self.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; \
             {user}'{}' -D '{}' -m immediate stop; rm -rf '{}'",
            pg_ctl.display(),
            self.data().display(),
            self.dir.path().display()
        );
        let _ = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Cluster::command(&self.bin, self.as_postgres, "pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "stop"])
            .stdin(Stdio::null())
            .output();
    }
}

/// On a fresh Debian machine, as root: installs Debian's `postgresql` package with apt (so
/// `cargo test` alone sets up what its tests need, as the README promises), keeping the
/// package's own cluster from starting (a `policy-rc.d` that refuses, removed again if
/// created here). Whether apt succeeded; not root or no apt: false, nothing done.
fn install_with_apt() -> bool {
    let apt = Path::new("/usr/bin/apt-get");
    if !is_root() || !apt.exists() || skipped() {
        return false;
    }
    eprintln!(
        "PostgreSQL server binaries not found: installing Debian's postgresql with apt-get \
         for the PostgreSQL tests (JIDSTORE_SKIP_PG=1 skips them instead)"
    );
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let created = !policy.exists()
        && std::fs::write(policy, "#!/bin/sh\nexit 101\n").is_ok()
        && Command::new("chmod")
            .args(["755"])
            .arg(policy)
            .status()
            .is_ok_and(|s| s.success());
    let quiet = |c: &mut Command| {
        c.env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let ok = quiet(Command::new(apt).args(["update", "-qq"]))
        && quiet(Command::new(apt).args(["install", "-y", "-qq", "postgresql"]));
    if created {
        let _ = std::fs::remove_file(policy);
    }
    ok
}

/// The directory of the server binaries (installed with apt if needed), or why there is none.
pub fn binaries() -> Result<PathBuf, String> {
    bin_dir()
        .or_else(|| install_with_apt().then(bin_dir).flatten())
        .ok_or_else(|| {
            "PostgreSQL server binaries (initdb, pg_ctl) not found in \
             /usr/lib/postgresql/*/bin or PATH: install them (Debian: apt-get install \
             postgresql) or set JIDSTORE_SKIP_PG=1 to skip the PostgreSQL tests"
                .to_owned()
        })
}

/// The binary's shared cluster (started on first use), or why there is none.
pub fn shared() -> Result<&'static Cluster, String> {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    CLUSTER
        .get_or_init(|| {
            let c = Cluster::start(binaries()?)?;
            c.watch(std::process::id());
            Ok(c)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Whether `JIDSTORE_SKIP_PG=1` asks to skip the PostgreSQL tests.
pub fn skipped() -> bool {
    std::env::var_os("JIDSTORE_SKIP_PG").is_some_and(|v| v == "1")
}

/// The URL of a fresh database on the shared cluster. `None` only when `JIDSTORE_SKIP_PG=1`
/// (the caller skips); any other failure to get one panics, failing the test.
pub fn database() -> Option<String> {
    if skipped() {
        return None;
    }
    match shared() {
        Ok(c) => Some(c.create_database()),
        Err(why) => panic!("{why}"),
    }
}
