//! Process safety (issue 13): signals clean up what a command created, a data directory
//! owned by another user is refused, the admin client never hangs, and a caught panic stays
//! one line on stderr.

use std::path::Path;

use crate::util::jidstore;

/// Unpacks a zip of a data directory (`data/...`) into `into`.
fn unpack(zip: &Path, into: &Path) {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(zip).unwrap()).unwrap();
    zip.extract(into).unwrap();
}

// See issue 13, item 8: sled's panic message printed before the one-line error.
#[test]
fn a_panic_caught_on_a_damaged_store_prints_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // A store killed during an import, its `db` then cut just past the first segment:
    // sled 0.34 panics ("tried to serialize Uninitialized") while recovering it.
    unpack(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/damaged/sled-panics-on-open.zip"
        )),
        dir.path(),
    );
    let data = dir.path().join("data");
    for cmd in ["stats", "verify"] {
        let run = jidstore(&data, &[cmd]);
        assert_eq!(run.code, 1, "{cmd}: {}", run.stderr);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{cmd}: stderr is not one line:\n{}", run.stderr);
        assert!(
            lines[0].starts_with("jidstore: ") && lines[0].contains("sled panicked"),
            "{cmd}: {}",
            lines[0]
        );
    }
}
