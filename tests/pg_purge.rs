//! Physical erasure on PostgreSQL, read in the cluster's own files: after `unregister
//! --purge` (plain VACUUM) and `compact` (VACUUM FULL), where the erased subject's message
//! text still is, and is not, in the table's heap files.

use std::path::{Path, PathBuf};

use jidstore::ext::mam::{Direction, PmMessage};
use jidstore::{Config, Timestamp};

use crate::pg;
use crate::postgres::jidstore_db;
use crate::util::{bare, full};

/// Superuser statements on the test database (CHECKPOINT, the catalog).
fn admin(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

/// The files of `table` (main fork, every 1 GB segment) after a CHECKPOINT, so that what
/// the server changed in memory is in them.
fn heap_files(url: &str, table: &str) -> Vec<PathBuf> {
    let mut c = admin(url);
    c.batch_execute("CHECKPOINT").unwrap();
    let rel: String = c
        .query_one("SELECT pg_relation_filepath($1::text::regclass)", &[&table])
        .unwrap()
        .get(0);
    let main = pg::shared().unwrap().data().join(rel);
    let dir = main.parent().unwrap().to_path_buf();
    let name = main.file_name().unwrap().to_str().unwrap().to_owned();
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n == name
                || n.strip_prefix(&format!("{name}."))
                    .is_some_and(|s| s.parse::<u32>().is_ok())
        })
        .collect()
}

/// Tuples of `table`, live or dead, whose data contains `needle` (read from the pages with
/// `pageinspect`): what a VACUUM must leave none of.
fn tuples_holding(url: &str, table: &str, needle: &[u8]) -> i64 {
    let mut c = admin(url);
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        .unwrap();
    c.query_one(
        "SELECT count(*) FROM generate_series(0, \
         (pg_relation_size($1::text::regclass) / current_setting('block_size')::int) - 1) AS b, \
         heap_page_items(get_raw_page($1::text, b::int)) AS t \
         WHERE t.t_data IS NOT NULL AND position($2::bytea IN t.t_data) > 0",
        &[&table, &needle],
    )
    .unwrap()
    .get(0)
}

/// How many times `needle` occurs in `files`.
fn occurrences(files: &[PathBuf], needle: &[u8]) -> usize {
    files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).unwrap();
            bytes.windows(needle.len()).filter(|w| *w == needle).count()
        })
        .sum()
}

/// Every file of the test database's directory (`base/<oid>`), after a CHECKPOINT.
fn database_files(url: &str) -> Vec<PathBuf> {
    let mut c = admin(url);
    c.batch_execute("CHECKPOINT").unwrap();
    let oid: postgres::types::Oid = c
        .query_one(
            "SELECT oid FROM pg_database WHERE datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);
    let dir = pg::shared()
        .unwrap()
        .data()
        .join("base")
        .join(oid.to_string());
    files_under(&dir)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect()
}

fn message(from: &str, to: &str, secs: i64, body: &str) -> PmMessage {
    PmMessage {
        id: None,
        timestamp: Timestamp::from_secs(secs),
        from: full(from),
        to: full(to),
        direction: Direction::Outgoing,
        origin_id: None,
        stanza: format!("<message type='chat'><body>{body}</body></message>"),
    }
}

#[test]
fn purge_and_compact_vacuum_erased_rows_out_of_the_heap_files() {
    let Some(url) = pg::database() else { return };
    let (alice, bob) = (bare("alice@localhost"), bare("bob@localhost"));
    {
        let store = Config::database(&url).scram_iterations(16).open().unwrap();
        for u in [&alice, &bob] {
            store.accounts().create(u, "pw").unwrap();
        }
        for i in 0..300 {
            let secs = 1_700_000_000 + i;
            let a = message(
                "alice@localhost/a",
                "carol@remote.example",
                secs,
                "alice-canary-7f3e",
            );
            let b = message(
                "bob@localhost/b",
                "carol@remote.example",
                secs,
                "bob-canary-7f3e",
            );
            store.mam().append(&alice, &a).unwrap();
            store.mam().append(&bob, &b).unwrap();
        }
    }
    let table = "jidstore_mam_pm";
    let (alice_text, bob_text) = (&b"alice-canary-7f3e"[..], &b"bob-canary-7f3e"[..]);
    let before = occurrences(&heap_files(&url, table), alice_text);
    assert!(before >= 300, "{before}");
    assert!(tuples_holding(&url, table, alice_text) > 0);

    let r = jidstore_db(
        &url,
        false,
        &["unregister", "--purge", "alice", "localhost"],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("vacuumed"), "{}", r.stdout);
    assert!(
        r.stdout.contains("(VACUUM: dead rows removed in place)"),
        "{}",
        r.stdout
    );
    let after_purge = occurrences(&heap_files(&url, table), alice_text);
    let bob_after_purge = occurrences(&heap_files(&url, table), bob_text);
    eprintln!(
        "alice's text in the heap files: {before} before, {after_purge} after unregister \
         --purge (bob's: {bob_after_purge}, 300 live)"
    );
    // What plain VACUUM guarantees: no tuple, live or dead, holds alice's text any more. It
    // does not guarantee the bytes are gone: the space of a removed tuple is marked free in
    // its page, not overwritten, until a later write reuses it (measured: some remain).
    assert_eq!(tuples_holding(&url, table, alice_text), 0);
    assert!(tuples_holding(&url, table, bob_text) >= 1);

    let r = jidstore_db(&url, false, &["--json", "compact"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["vacuum"], "full", "{doc}");
    eprintln!("compact: {doc}");
    // VACUUM FULL wrote new files: nothing of alice's text in any file of the database.
    assert_eq!(occurrences(&database_files(&url), alice_text), 0);
    assert_eq!(occurrences(&heap_files(&url, table), bob_text), 300);
    assert_eq!(jidstore_db(&url, false, &["verify"]).code, 0);
}
