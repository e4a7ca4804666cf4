//! Progress lines: none when stderr is piped (the default), none with `--json`, and with
//! `JIDSTORE_PROGRESS=always` a final count matching what the command reports.

use std::path::Path;

use jidstore::ext::mam::{Direction, PmMessage};
use jidstore::{Config, Timestamp};

use crate::util::{bare, full};

/// Runs the binary with `JIDSTORE_PROGRESS` set to `progress` (or unset).
fn run(data: &Path, progress: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jidstore"));
    cmd.arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("JIDSTORE_DATA_DIR")
        .env_remove("JIDSTORE_PROGRESS")
        .stdin(std::process::Stdio::null());
    if let Some(p) = progress {
        cmd.env("JIDSTORE_PROGRESS", p);
    }
    let out = cmd.output().expect("run jidstore");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8"),
        String::from_utf8(out.stderr).expect("utf-8"),
    )
}

/// A store with one user and a 1-1 archive of `n` messages.
fn fill(dir: &Path, n: u32) -> std::path::PathBuf {
    let data = dir.join("data");
    let store = Config::new(&data).scram_iterations(16).open().unwrap();
    let alice = bare("alice@localhost");
    store.accounts().create(&alice, "pw").unwrap();
    store
        .mam()
        .append_bulk(
            &alice,
            (0..n).map(|i| {
                PmMessage::new(
                    Timestamp::from_secs(1_700_000_000 + i64::from(i)),
                    full("alice@localhost/a"),
                    full("bob@localhost"),
                    Direction::Outgoing,
                    format!("<message><body>secret text {i}</body></message>"),
                )
            }),
        )
        .unwrap();
    store.flush().unwrap();
    drop(store);
    data
}

/// Runs `cmd alice localhost <out>` (an export) with `JIDSTORE_PROGRESS` set to `progress`.
fn alice_to(data: &Path, progress: Option<&str>, cmd: &str, out: &Path) -> (i32, String, String) {
    run(
        data,
        progress,
        &[cmd, "alice", "localhost", out.to_str().unwrap()],
    )
}

/// Imports `xml` with forced progress into a new store `dir/fresh` (one other user).
fn import_fresh(dir: &Path, xml: &Path) -> (i32, String, String) {
    let fresh = dir.join("fresh");
    let (code, _, err) = run(
        &fresh,
        None,
        &["register", "--user", "x", "localhost", "pw"],
    );
    assert_eq!(code, 0, "{err}");
    run(&fresh, Some("always"), &["import", xml.to_str().unwrap()])
}

fn last_line(stderr: &str) -> &str {
    stderr
        .rsplit('\r')
        .next()
        .unwrap_or("")
        .trim_end_matches('\n')
}

fn no_personal_data(stderr: &str) {
    assert!(!stderr.contains("alice"), "{stderr:?}");
    assert!(!stderr.contains("localhost"), "{stderr:?}");
    assert!(!stderr.contains("secret"), "{stderr:?}");
}

#[test]
fn piped_and_json_runs_print_no_progress() {
    let dir = tempfile::tempdir().unwrap();
    let data = fill(dir.path(), 50);
    let (code, _, err) = run(&data, None, &["verify"]);
    assert_eq!((code, err.as_str()), (0, ""));
    let (code, _, err) = run(&data, Some("always"), &["--json", "verify"]);
    assert_eq!((code, err.as_str()), (0, ""));
    let zip = dir.path().join("a.zip");
    let (code, _, err) = alice_to(&data, Some("never"), "retrieve_personal_data", &zip);
    assert_eq!((code, err.as_str()), (0, ""));
}

#[test]
fn forced_progress_reports_the_final_counts() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2_500;
    let data = fill(dir.path(), n);

    // verify counts every entry it reads: the total its JSON report gives.
    let (_, out, _) = run(&data, None, &["--json", "verify"]);
    let entries = serde_json::from_str::<serde_json::Value>(&out).unwrap()["entries"]
        .as_u64()
        .unwrap();
    let (code, _, err) = run(&data, Some("always"), &["verify"]);
    assert_eq!(code, 0);
    assert_eq!(last_line(&err), format!("verify: {entries} entries"));
    assert!(err.ends_with('\n'), "{err:?}");

    // export counts rows: one account and n archived messages.
    let zip = dir.path().join("a.zip");
    let (code, _, err) = alice_to(&data, Some("always"), "retrieve_personal_data", &zip);
    assert_eq!(code, 0, "{err}");
    assert_eq!(last_line(&err), format!("export: {} rows", n + 1));
    no_personal_data(&err);

    // XEP-0227 export counts archived messages.
    let xml = dir.path().join("a.xml");
    let (code, _, err) = alice_to(&data, Some("always"), "export-xep0227", &xml);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        last_line(&err),
        format!("export-xep0227: {n} archived messages")
    );

    // unregister sweeps the archive: records and their `with` entries (two keys a message).
    let (code, _, err) = run(&data, Some("always"), &["unregister", "alice", "localhost"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(last_line(&err), format!("erasure sweep: {} entries", 2 * n));
    no_personal_data(&err);

    // compact copies, then verifies the copy.
    let (code, _, err) = run(&data, Some("always"), &["compact"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("copy: "), "{err:?}");
    assert!(last_line(&err).starts_with("verify: "), "{err:?}");

    // import counts users, total known.
    let (code, _, err) = import_fresh(dir.path(), &xml);
    assert_eq!(code, 0, "{err}");
    // The check pass counts elements read; the write pass counts records written (the
    // account and n archived messages), total known. The importer's report of the durable
    // user comes above the progress line, which ends with the final count.
    assert!(err.contains("import (check): "), "{err:?}");
    let bar = format!("import: {0} of {0} records (100%)", n + 1);
    assert_eq!(last_line(&err), bar, "{err:?}");
    let durable = "jidstore: imported alice@localhost (durable)\n";
    assert_eq!(err.matches(durable).count(), 1, "{err:?}");
    assert!(
        err.find(durable) < err.rfind(&format!("\r{bar}\n")),
        "{err:?}"
    );
}

/// The importer's "durable" lines and its progress line are printed in one order, whether a
/// user is flushed during the phase (a slow import) or at its end (a fast one, as here): the
/// durable lines above, the final count last.
#[test]
fn import_reports_durable_users_above_the_final_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = fill(dir.path(), 0);
    let xml = dir.path().join("a.xml");
    let (code, _, err) = alice_to(&data, None, "export-xep0227", &xml);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = import_fresh(dir.path(), &xml);
    assert_eq!(code, 0, "{err}");
    // One account and no archived message: one record.
    let bar = "import: 1 of 1 records (100%)";
    let durable = "jidstore: imported alice@localhost (durable)\n";
    assert!(err.ends_with(&format!("\r{bar}\n")), "{err:?}");
    assert_eq!(err.matches(durable).count(), 1, "{err:?}");
    assert!(err.find(durable) < err.rfind(bar), "{err:?}");
}
