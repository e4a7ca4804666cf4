//! What the binary tells its user: `unregister`'s outcome and exit code, time and roster group
//! columns of the export, `demo`'s paths, usage errors for bad times, help, the man page.

use std::path::{Path, PathBuf};

use jidstore::ext::mam::MucMessage;
use jidstore::ext::pubsub::{Node, NodeType, SubState};
use jidstore::{Config, Timestamp};

use crate::util::*;

/// A store in `dir/data` written by `fill`, closed again.
fn with_store(dir: &Path, fill: impl FnOnce(&jidstore::Store)) -> PathBuf {
    let data = dir.join("data");
    let store = Config::new(&data).scram_iterations(16).open().unwrap();
    fill(&store);
    store.flush().unwrap();
    drop(store);
    data
}

/// alice with an account and a group-chat message (kept by erasure); carol, a remote user
/// without an account, subscribed to alice's flat node (removed by erasure).
fn alice_and_carol(store: &jidstore::Store) {
    let alice = user(store, "alice@localhost");
    let room = bare("room@muc.localhost");
    store
        .muc()
        .append(
            &room,
            &MucMessage::new(
                Timestamp::from_secs(1_700_000_000),
                alice.clone(),
                "alice",
                "<message type='groupchat'><body>hi</body></message>",
            ),
        )
        .unwrap();
    let service = bare("pubsub.localhost");
    store
        .pubsub()
        .create_node(&Node {
            service: service.clone(),
            node: "news".into(),
            owner: alice,
            kind: NodeType::Flat,
            access_model: "open".into(),
            config: Vec::new(),
            created_at: Timestamp::from_secs(1_700_000_000),
        })
        .unwrap();
    store
        .pubsub()
        .subscribe(
            &service,
            "news",
            &bare("carol@remote.example"),
            SubState::Subscribed,
        )
        .unwrap();
}

#[test]
fn unregister_says_what_happened_and_exits_3_when_nothing_was_erased() {
    let dir = tempfile::tempdir().unwrap();
    let data = with_store(dir.path(), alice_and_carol);

    // An account: erased, and the receipt says the bytes stay until compact.
    let r = jidstore(&data, &["unregister", "alice", "localhost"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("User alice@localhost successfully unregistered\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("erased bytes stay in the data directory's files until `jidstore compact`"),
        "{}",
        r.stdout
    );

    // Again: nothing erased, what is kept is named, exit 3.
    let r = jidstore(&data, &["unregister", "alice", "localhost"]);
    assert_eq!(r.code, 3, "{}{}", r.stdout, r.stderr);
    assert_eq!(r.stderr, "");
    assert!(!r.stdout.contains("successfully"), "{}", r.stdout);
    assert!(
        r.stdout.starts_with(
            "Nothing erased for alice@localhost: there is no account and no data that erasure removes"
        ),
        "{}",
        r.stdout
    );
    let kept = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("mam_muc"))
        .unwrap_or_else(|| panic!("mam_muc not named as kept: {}", r.stdout));
    assert_eq!(kept.split_whitespace().nth(1), Some("1"), "{kept}");
    assert!(!r.stdout.contains("erased bytes"), "{}", r.stdout);
    let v: serde_json::Value = serde_json::from_str(
        &jidstore(&data, &["--json", "unregister", "alice", "localhost"]).stdout,
    )
    .unwrap();
    assert_eq!(
        (&v["account"], &v["erased"], &v["total_removed"]),
        (&false.into(), &false.into(), &0.into())
    );

    // No account, but data erasure removes: erased, and said so.
    let r = jidstore(&data, &["unregister", "carol", "remote.example"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("carol@remote.example has no account;"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("successfully"), "{}", r.stdout);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pubsub_subscriptions", "1"]),
        "{}",
        r.stdout
    );

    // Nothing held at all: still the error of acceptance case A1.
    let r = jidstore(&data, &["unregister", "carol", "remote.example"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not exist"), "{}", r.stderr);
}

#[test]
fn unregister_purge_says_the_bytes_left_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = with_store(dir.path(), |s| {
        user(s, "alice@localhost");
    });
    let r = jidstore(&data, &["unregister", "--purge", "alice", "localhost"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.trim_end().ends_with(
            "The store was compacted (--purge): the erased bytes have left the data directory's files."
        ),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("stay in"), "{}", r.stdout);
}

/// Names of the time columns of an export.
const TIME_COLUMNS: [&str; 5] = [
    "timestamp",
    "created_at",
    "published_at",
    "expires",
    "muted_until",
];

/// The demo's export of alice holds a row in every class it keeps a time for: every time
/// column is RFC 3339 UTC, and no column holds raw epoch seconds.
#[test]
fn every_time_column_of_an_export_is_rfc3339() {
    let dir = tempfile::tempdir().unwrap();
    let data = with_store(dir.path(), |s| {
        let alice = user(s, "alice@localhost");
        s.last().set(&alice, 1_700_000_000, "away").unwrap();
    });
    let zip = dir.path().join("alice.zip");
    let r = retrieve_to(&data, "alice", &zip);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let files = unzip(&zip);
    let (header, rows) = csv_rows(&files["last.csv"]);
    assert_eq!(header, ["jid", "timestamp", "status"]);
    assert_eq!(
        rows,
        [["alice@localhost", "2023-11-14T22:13:20.000000Z", "away"]]
    );

    let demo = dir.path().join("demo");
    let r = jidstore(&demo, &["demo"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut checked = 0;
    for (name, text) in unzip(&demo.join("alice.zip")) {
        if name == "index.html" {
            continue;
        }
        if name == "manifest.json" {
            continue;
        }
        let (header, rows) = csv_rows(&text);
        assert!(!header.iter().any(|h| h == "seconds"), "{name}: {header:?}");
        for row in &rows {
            for (col, cell) in header.iter().zip(row) {
                if TIME_COLUMNS.contains(&col.as_str()) && !cell.is_empty() {
                    assert!(cell.ends_with('Z'), "{name}.{col}: {cell}");
                    Timestamp::parse_rfc3339(cell)
                        .unwrap_or_else(|e| panic!("{name}.{col}: {cell}: {e}"));
                    checked += 1;
                }
            }
        }
    }
    // accounts, inbox, 1-1 and group-chat archives, pubsub items, last.
    assert!(checked >= 6, "{checked}");
}

/// Roster groups whose names hold a comma, a quote, a newline or non-ASCII text come back
/// exactly from `groups_json`; MongooseIM's `groups` column stays as it was.
#[test]
fn roster_groups_round_trip_through_groups_json() {
    use jidstore::ext::roster::{Ask, RosterItem, Subscription};
    let groups: Vec<String> = [
        "Friends",
        "Work, mostly",
        "say \"hi\"",
        "two\nlines",
        "[not json]",
        "Zo\u{eb} \u{65e5}\u{672c}",
    ]
    .map(str::to_owned)
    .to_vec();
    let dir = tempfile::tempdir().unwrap();
    let data = with_store(dir.path(), |s| {
        let alice = user(s, "alice@localhost");
        for (contact, groups) in [
            ("bob@localhost", groups.clone()),
            ("kate@localhost", vec![]),
        ] {
            s.roster()
                .set(
                    &alice,
                    &RosterItem {
                        jid: bare(contact),
                        name: None,
                        subscription: Subscription::Both,
                        ask: Ask::None,
                        groups,
                        askmessage: None,
                    },
                )
                .unwrap();
        }
    });
    let zip = dir.path().join("alice.zip");
    let r = retrieve_to(&data, "alice", &zip);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (header, rows) = csv_rows(&unzip(&zip)["roster.csv"]);
    assert_eq!(
        header,
        [
            "jid",
            "name",
            "subscription",
            "ask",
            "groups",
            "askmessage",
            "xs",
            "groups_json"
        ]
    );
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (bob, kate) = (&rows[0], &rows[1]);
    assert_eq!(bob[col("groups")], groups.join(", "));
    let back: Vec<String> = serde_json::from_str(&bob[col("groups_json")]).unwrap();
    assert_eq!(back, groups);
    assert_eq!(kate[col("groups")], "");
    assert_eq!(kate[col("groups_json")], "[]");
}

/// A malformed time is a usage error (exit 2) naming the argument, checked before any store
/// is opened; a good one still works.
#[test]
fn bad_mam_times_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    for (flag, value) in [
        ("--start", "yesterday"),
        ("--end", "2026-12-04T18:00:00"),
        ("--start", "2026-13-01T00:00:00Z"),
        ("--end", ""),
    ] {
        let r = jidstore(
            &missing,
            &["mam", "query", "alice", "localhost", flag, value],
        );
        assert_eq!(r.code, 2, "{flag} {value:?}: {}", r.stderr);
        let first = r.stderr.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!(
                "error: invalid value '{value}' for '{flag} <TIME>': not an RFC 3339 date-time \
                 with a time zone, e.g. 2026-12-04T18:00:00Z or 2026-12-04T19:00:00+01:00"
            ),
            "{}",
            r.stderr
        );
        assert!(!missing.exists());
    }
    let data = with_store(dir.path(), |s| {
        user(s, "alice@localhost");
    });
    let r = jidstore(
        &data,
        &[
            "mam",
            "query",
            "alice",
            "localhost",
            "--start",
            "2026-12-04T19:00:00+01:00",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "first=- last=- complete=true count=0\n");
}

/// `demo --data-dir DIR` says that the store is `DIR/data`, which then works as a data dir;
/// without `--data-dir` it ignores `$JIDSTORE_DATA_DIR` (an operator's store) and uses a new
/// directory under `$TMPDIR`.
#[test]
fn demo_says_where_the_store_is_and_ignores_jidstore_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let r = jidstore(&demo, &["demo"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let store = demo.join("data");
    assert!(
        r.stdout
            .contains(&format!("store (data directory): {}\n", store.display())),
        "{}",
        r.stdout
    );
    let v: serde_json::Value =
        serde_json::from_str(&jidstore(&store, &["--json", "stats"]).stdout).unwrap();
    assert_eq!(v["accounts"]["localhost"], 3, "four accounts, alice erased");

    // An operator's store named by the environment is left alone.
    let operator = with_store(dir.path(), |s| {
        user(s, "op@localhost");
    });
    let before = std::fs::read_dir(&operator).unwrap().count();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jidstore"))
        .arg("demo")
        .env("JIDSTORE_DATA_DIR", &operator)
        .env("TMPDIR", &tmp)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with(&format!(
        "Demo deployment in {}/jidstore-demo-",
        tmp.display()
    )));
    assert!(!stdout.contains(operator.to_str().unwrap()), "{stdout}");
    assert_eq!(std::fs::read_dir(&operator).unwrap().count(), before);
    // Other commands still take the store from the environment.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_jidstore"))
        .args(["--json", "stats"])
        .env("JIDSTORE_DATA_DIR", &operator)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["accounts"]["localhost"], 1);
}

/// `--help` of every command shows what the user needs, never notes about the code.
#[test]
fn help_holds_no_implementation_notes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let commands: &[&[&str]] = &[
        &[],
        &["register"],
        &["retrieve_personal_data"],
        &["unregister"],
        &["compact"],
        &["backup"],
        &["import"],
        &["export-xep0227"],
        &["forensic-export"],
        &["demo"],
        &["stats"],
        &["verify"],
        &["mam"],
        &["mam", "query"],
        &["completions"],
        &["man"],
    ];
    for command in commands {
        for flag in ["-h", "--help"] {
            let mut args = command.to_vec();
            args.push(flag);
            let r = jidstore(&data, &args);
            assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
            for note in ["Taken as raw text", "exit 1.)", "clap", "sled's files"] {
                assert!(
                    !r.stdout.contains(note),
                    "{args:?} shows {note:?}:\n{}",
                    r.stdout
                );
            }
        }
    }
    let r = jidstore(&data, &["retrieve_personal_data", "--help"]);
    assert!(r.stdout.contains("$JIDSTORE_DATA_DIR"), "{}", r.stdout);
    assert!(!data.exists());
}

/// The man page points to no page that does not exist, and has EXIT STATUS and ENVIRONMENT
/// sections naming every exit code and every variable the command reads (found in the source).
#[test]
fn man_page_has_exit_status_and_environment_and_no_missing_pages() {
    let dir = tempfile::tempdir().unwrap();
    let r = jidstore(&dir.path().join("data"), &["man"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let page = r.stdout.replace("\\-", "-");
    assert!(
        !page.contains("jidstore-register"),
        "per-command pages do not exist"
    );
    let refs: Vec<&str> = page.lines().filter(|l| l.contains("(1)")).collect();
    assert!(refs.is_empty(), "{refs:?}");
    let section = |title: &str| {
        let start = page
            .find(&format!(".SH \"{title}\"\n"))
            .unwrap_or_else(|| panic!("no {title} section"));
        let rest = &page[start + 5..];
        rest[..rest.find(".SH ").unwrap_or(rest.len())].to_owned()
    };
    let exit = section("EXIT STATUS");
    for code in ["0", "1", "2", "3"] {
        assert!(exit.contains(&format!(".TP\n\\fB{code}\\fR\n")), "{exit}");
    }
    let environment = section("ENVIRONMENT");
    let mut names = vec!["TMPDIR".to_owned()];
    let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (_, rest) in text
                    .match_indices("env::var")
                    .map(|(i, _)| text.split_at(i))
                {
                    // `env::var("X")` or `env::var_os("X")`, not a mention in prose.
                    let Some(open) = rest.get(..14).and_then(|head| head.find("(\"")) else {
                        continue;
                    };
                    let name: String = rest[open + 2..].chars().take_while(|c| *c != '"').collect();
                    names.push(name);
                }
                // Names read through a constant (`const TIMEOUT_ENV: &str = "JIDSTORE_...";`).
                for (i, _) in text.match_indices("\"JIDSTORE_") {
                    let name: String = text[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                        .collect();
                    names.push(name);
                }
            }
        }
    }
    assert!(names.iter().any(|n| n == "JIDSTORE_MIN_FREE"), "{names:?}");
    for name in names {
        assert!(
            environment.contains(&name),
            "{name} not in ENVIRONMENT:\n{environment}"
        );
    }
}
