//! The real binary: register, `retrieve_personal_data`, unregister, exit codes, file safety.

use std::os::unix::fs::PermissionsExt;

use crate::util::*;

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    (dir, data)
}

#[test]
fn anonymised_register_is_random_and_timeless() {
    let (_dir, data) = setup();
    let a = jidstore(&data, &["register", "localhost", "pw"]);
    let b = jidstore(&data, &["register", "localhost", "pw"]);
    assert_eq!(a.code, 0, "{}", a.stderr);
    let name = |r: &Run| {
        let line = r.stdout.trim();
        assert!(
            line.starts_with("User ") && line.ends_with(" successfully registered"),
            "{line}"
        );
        line["User ".len()..line.len() - " successfully registered".len()].to_owned()
    };
    let (na, nb) = (name(&a), name(&b));
    assert_ne!(na, nb);
    for n in [&na, &nb] {
        let (user, domain) = n.split_once('@').unwrap();
        assert_eq!(domain, "localhost");
        assert_eq!(user.len(), 32);
        assert!(user.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!user.contains('-'));
    }
}

#[test]
fn named_register_refuses_duplicates() {
    let (_dir, data) = setup();
    let r = jidstore(&data, &["register", "--user", "Alice", "localhost", "pw"]);
    assert_eq!(
        r.stdout.trim(),
        "User alice@localhost successfully registered"
    );
    let r = jidstore(&data, &["register", "--user", "alice", "LOCALHOST", "pw"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("alice@localhost already exists"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1);
}

#[test]
fn usage_errors_exit_2_and_bad_jids_exit_1() {
    let (_dir, data) = setup();
    assert_eq!(jidstore(&data, &["register"]).code, 2);
    assert_eq!(jidstore(&data, &["no-such-command"]).code, 2);
    let r = jidstore(&data, &["register", "--user", "a b", "localhost", "pw"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("invalid JID"), "{}", r.stderr);
}

#[test]
fn retrieve_writes_private_zip_and_refuses_overwrite() {
    let (dir, data) = setup();
    assert_eq!(
        jidstore(&data, &["register", "--user", "alice", "localhost", "pw"]).code,
        0
    );
    let out = dir.path().join("alice.zip");
    let r = retrieve_to(&data, "alice", &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let files = unzip(&out);
    let (header, rows) = csv_rows(&files["accounts.csv"]);
    assert_eq!(header, ["jid", "created_at", "mechanisms"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0][0], "alice@localhost");
    assert_eq!(rows[0][2], "SCRAM-SHA-1 SCRAM-SHA-256 SCRAM-SHA-512");
    let manifest: serde_json::Value = serde_json::from_str(&files["manifest.json"]).unwrap();
    assert_eq!(manifest["subject"], "alice@localhost");
    // Every file listed with a CRC that matches its bytes.
    for f in manifest["files"].as_array().unwrap() {
        let name = f["name"].as_str().unwrap();
        assert_eq!(
            f["crc32"].as_u64().unwrap(),
            u64::from(crc32fast::hash(files[name].as_bytes())),
            "{name}"
        );
    }
    // G10: existing file refused without --force, untouched.
    std::fs::write(&out, b"keep me").unwrap();
    let r = jidstore(
        &data,
        &[
            "retrieve-personal-data",
            "alice",
            "localhost",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let r = jidstore(
        &data,
        &[
            "retrieve-personal-data",
            "--force",
            "alice",
            "localhost",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(unzip(&out).contains_key("manifest.json"));
    // No temporary files left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names.iter().all(|n| !n.to_string_lossy().ends_with(".tmp")),
        "{names:?}"
    );
}

#[test]
fn retrieve_path_errors() {
    let (dir, data) = setup();
    assert_eq!(
        jidstore(&data, &["register", "--user", "alice", "localhost", "pw"]).code,
        0
    );
    // G3: nothing held.
    let out = dir.path().join("nobody.zip");
    let r = retrieve_to(&data, "nobody", &out);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("no personal data held for nobody@localhost"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
    // G4: empty path.
    let r = jidstore(&data, &["retrieve_personal_data", "alice", "localhost", ""]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    // G7: missing parent directory, named in the error, not created.
    let missing = dir.path().join("missing/sub/alice.zip");
    let r = retrieve_to(&data, "alice", &missing);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("missing/sub"), "{}", r.stderr);
    assert!(!dir.path().join("missing").exists());
    // G8: an existing directory gets <username>.zip.
    let outdir = dir.path().join("exports");
    std::fs::create_dir(&outdir).unwrap();
    let r = export_to(
        &data,
        "retrieve_personal_data",
        "ALICE",
        "LocalHost",
        &outdir,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(outdir.join("alice.zip").exists());
    // A path through a file.
    let file = dir.path().join("afile");
    std::fs::write(&file, b"x").unwrap();
    let r = jidstore(
        &data,
        &[
            "retrieve_personal_data",
            "alice",
            "localhost",
            file.join("x.zip").to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("afile"), "{}", r.stderr);
}

#[test]
fn unregister_prints_receipt_and_unknown_user_fails() {
    let (_dir, data) = setup();
    assert_eq!(
        jidstore(&data, &["register", "--user", "alice", "localhost", "pw"]).code,
        0
    );
    let r = jidstore(&data, &["unregister", "alice", "localhost"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("User alice@localhost successfully unregistered")
    );
    assert!(
        r.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["accounts", "1"]),
        "{}",
        r.stdout
    );
    // A1: nothing held.
    let r = jidstore(&data, &["unregister", "alice", "localhost"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not exist"), "{}", r.stderr);
}

#[test]
fn missing_or_foreign_data_dir_is_refused_without_creating_it() {
    let (dir, data) = setup();
    let r = jidstore(&data, &["unregister", "alice", "localhost"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(data.to_str().unwrap()), "{}", r.stderr);
    assert!(!data.exists());
    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"mine").unwrap();
    let r = jidstore(&foreign, &["register", "localhost", "pw"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("is not a jidstore data directory"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1);
}

#[test]
fn locked_data_dir_is_reported() {
    let (_dir, data) = setup();
    assert_eq!(jidstore(&data, &["register", "localhost", "pw"]).code, 0);
    // This test process holds the store open; the child must be told it is locked.
    let held = jidstore::Store::open(&data).unwrap();
    let r = jidstore(&data, &["register", "localhost", "pw"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("is locked by another process"),
        "{}",
        r.stderr
    );
    drop(held);
}

fn chmod_tree(p: &std::path::Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chmod_tree(&e.unwrap().path(), mode);
        }
    }
}

/// G6: a directory without write permission. Root ignores permissions, so as root the
/// binary runs as `nobody` through setpriv (util-linux).
#[test]
fn retrieve_into_unwritable_directory_names_the_path() {
    let (dir, data) = setup();
    assert_eq!(
        jidstore(&data, &["register", "--user", "alice", "localhost", "pw"]).code,
        0
    );
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let target = locked.join("alice.zip");
    let args = [
        "retrieve_personal_data",
        "alice",
        "localhost",
        target.to_str().unwrap(),
    ];
    let r = if running_as_root() {
        chmod_tree(dir.path(), 0o777);
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_jidstore"))
            .arg("--data-dir")
            .arg(&data)
            // The store is root's: what is tested here is the output directory.
            .arg("--allow-foreign-owner")
            .args(args)
            .output()
            .expect("setpriv (util-linux) is needed to drop root for this test");
        Run::from(out)
    } else {
        jidstore(&data, &args)
    };
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    assert!(r.stderr.contains(locked.to_str().unwrap()), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
}

fn json(r: &Run) -> serde_json::Value {
    assert_eq!(
        r.stdout.lines().count(),
        1,
        "one JSON document: {}",
        r.stdout
    );
    serde_json::from_str(&r.stdout).unwrap()
}

#[test]
fn json_output_is_one_document_with_stable_fields() {
    let (dir, data) = setup();
    let r = jidstore(
        &data,
        &["--json", "register", "--user", "alice", "localhost", "pw"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(json(&r)["jid"], "alice@localhost");
    let r = jidstore(&data, &["register", "--json", "localhost", "pw"]);
    assert!(json(&r)["jid"].as_str().unwrap().ends_with("@localhost"));

    let v = json(&jidstore(&data, &["--json", "stats"]));
    assert_eq!(v["accounts"]["localhost"], 2);
    let accounts = v["keyspaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyspace"] == "accounts")
        .unwrap();
    assert_eq!(accounts["entries"], 2);
    assert!(v["size_on_disk"].as_u64().unwrap() > 0);

    let v = json(&jidstore(&data, &["--json", "verify"]));
    assert_eq!(v["clean"], true);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);

    let out = dir.path().join("alice.zip");
    let v = json(&jidstore(
        &data,
        &[
            "--json",
            "retrieve_personal_data",
            "alice",
            "localhost",
            out.to_str().unwrap(),
        ],
    ));
    assert_eq!(v["subject"], "alice@localhost");
    assert_eq!(v["path"], out.to_str().unwrap());
    assert_eq!(v["total_rows"], 1);
    let files = v["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f["name"] == "accounts.csv" && f["rows"] == 1)
    );

    let v = json(&jidstore(
        &data,
        &["--json", "mam", "query", "alice", "localhost"],
    ));
    assert_eq!(v["messages"].as_array().unwrap().len(), 0);
    assert_eq!(v["complete"], true);

    let v = json(&jidstore(
        &data,
        &["--json", "unregister", "alice", "localhost"],
    ));
    assert_eq!(v["subject"], "alice@localhost");
    assert_eq!(v["removed"]["accounts"], 1);
    assert_eq!(v["total_removed"], 1);
    assert!(v["purged"].is_null());

    // Errors stay text on stderr, stdout empty, same exit code.
    let r = jidstore(&data, &["--json", "unregister", "alice", "localhost"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, "jidstore: user alice@localhost does not exist\n");
}

#[test]
fn completions_and_man_page_name_every_subcommand() {
    let (_dir, data) = setup();
    let subcommands = [
        "register",
        "retrieve_personal_data",
        "unregister",
        "compact",
        "backup",
        "import",
        "export-xep0227",
        "stats",
        "verify",
        "mam",
        "completions",
    ];
    for shell in ["bash", "zsh", "fish"] {
        let r = jidstore(&data, &["completions", shell]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        for sub in subcommands {
            assert!(r.stdout.contains(sub), "{shell} lacks {sub}");
        }
    }
    let r = jidstore(&data, &["man"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with(".ie") || r.stdout.starts_with(".TH"),
        "{}",
        &r.stdout[..80]
    );
    // roff escapes '-' as '\-'.
    let page = r.stdout.replace("\\-", "-");
    for sub in subcommands {
        assert!(page.contains(sub), "man page lacks {sub}");
    }
    assert!(page.contains("--data-dir") && page.contains("--json"));
    // Subcommand options, nested ones included.
    assert!(page.contains("JIDSTORE MAM QUERY") && page.contains("--flip-page"));
    assert!(page.contains("--skip-missing-includes"));
    assert_eq!(jidstore(&data, &["completions", "no-such-shell"]).code, 2);
    // Neither needs nor creates a store.
    assert!(!data.exists());
}
