//! XEP-0227 import of archives larger than one write chunk: ids and order kept, a bad stamp
//! in a later chunk refuses the whole user, skip/now, repeated ids across chunks and
//! archives, users reopened under prefixed namespaces and from included files, round trip.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jidstore::pie::{self, BadTimestamps, ImportOptions};
use jidstore::{Store, Timestamp};

use crate::util::*;

/// Messages per `append_bulk` call in these tests (the default is 10,000).
const CHUNK: usize = 1000;

fn id(i: usize) -> String {
    format!("a-{i:06}")
}

/// A result element; `stamp` overrides the good stamp (message `i` is `i` seconds after
/// 2020-09-13T12:26:40Z).
fn result(out: &mut String, i: usize, id: &str, stamp: Option<&str>) {
    let good = Timestamp::from_secs(1_600_000_000 + i64::try_from(i).unwrap()).to_rfc3339();
    let stamp = stamp.unwrap_or(&good);
    let (from, to) = if i.is_multiple_of(2) {
        ("alice@example.org/phone", "bob@example.net/pc")
    } else {
        ("bob@example.net/pc", "alice@example.org/phone")
    };
    writeln!(
        out,
        "<result xmlns='urn:xmpp:mam:2' id='{id}'>\n<forwarded xmlns='urn:xmpp:forward:0'>\n<delay xmlns='urn:xmpp:delay' stamp='{stamp}'/>\n<message xmlns='jabber:client' from='{from}' to='{to}' type='chat'><body>message {i} &amp; more</body></message>\n</forwarded>\n</result>"
    )
    .unwrap();
}

/// An archive of `n` results (ids `a-000000`...), with `bad` (1-based) given a bad stamp.
fn archive(n: usize, bad: Option<usize>) -> String {
    let mut s = String::from("<archive xmlns='urn:xmpp:pie:0#mam'>\n");
    for i in 0..n {
        let stamp = (bad == Some(i + 1)).then_some("yesterday");
        result(&mut s, i, &id(i), stamp);
    }
    s.push_str("</archive>\n");
    s
}

/// alice (archive first, roster after it), then bob: the archive must not need the rest.
fn doc(archive: &str) -> String {
    format!(
        "<?xml version='1.0'?>\n<server-data xmlns='urn:xmpp:pie:0'>\n<host jid='example.org'>\n<user name='alice' password='pw'>\n{archive}<query xmlns='jabber:iq:roster'><item jid='bob@example.net' subscription='both'/></query>\n</user>\n<user name='bob' password='pw'/>\n</host>\n</server-data>\n"
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    f
}

fn opts() -> ImportOptions {
    ImportOptions::default().archive_chunk(CHUNK)
}

fn ids(store: &Store, user: &str) -> Vec<String> {
    store
        .mam()
        .iter(&bare(user))
        .unwrap()
        .map(|m| m.unwrap().id)
        .collect()
}

fn export_string(store: &Store, user: &str) -> String {
    let mut out = Vec::new();
    pie::export(store, &bare(user), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The line of message `i`'s delay element in `doc(archive(..))`: 5 lines of preamble,
/// 6 lines per result, the delay on the third.
fn delay_line(i: usize) -> u32 {
    u32::try_from(5 + 6 * i + 3).unwrap()
}

#[test]
fn archive_of_several_default_chunks_keeps_ids_and_order() {
    let dir = tempfile::tempdir().unwrap();
    let n = 25_000;
    let f = write(dir.path(), "big.xml", &doc(&archive(n, None)));
    let (_d, store) = store();
    let r = pie::import_file(&store, &f, &ImportOptions::default()).unwrap();
    assert!(r.is_complete() && r.problems.is_empty(), "{r}");
    assert_eq!(r.imported, ["alice@example.org", "bob@example.org"]);
    assert_eq!(r.items["mam_pm"], 25_000);
    let got = ids(&store, "alice@example.org");
    let want: Vec<String> = (0..n).map(id).collect();
    assert_eq!(got, want);
    let m = store
        .mam()
        .get(&bare("alice@example.org"), &id(20_001))
        .unwrap()
        .unwrap();
    assert_eq!(m.timestamp, Timestamp::from_secs(1_600_020_001));
    assert!(
        m.stanza.contains("message 20001 &amp; more"),
        "{}",
        m.stanza
    );
    // The roster after the archive was written too.
    assert_eq!(
        store
            .roster()
            .list(&bare("alice@example.org"))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn bad_stamp_in_a_later_chunk_refuses_the_whole_user_under_reject() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "bad.xml", &doc(&archive(2_500, Some(2_001))));
    let (_d, store) = store();
    let r = pie::import_file(&store, &f, &opts()).unwrap();
    assert_eq!(r.imported, ["bob@example.org"]);
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].0, "alice@example.org");
    let want = format!(
        "bad.xml:{}: archived message: timestamp 'yesterday' is not XEP-0082",
        delay_line(2_000)
    );
    assert!(r.failed[0].1.contains(&want), "{:?} lacks {want}", r.failed);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert_eq!(r.problems[0].line, delay_line(2_000));
    assert!(!store.accounts().exists(&bare("alice@example.org")).unwrap());
    assert!(ids(&store, "alice@example.org").is_empty());
    assert!(
        store
            .roster()
            .list(&bare("alice@example.org"))
            .unwrap()
            .is_empty()
    );
    assert!(store.accounts().exists(&bare("bob@example.org")).unwrap());

    // skip: every message but 2,001 (1-based), in order.
    let (_d, store) = crate::util::store();
    let r = pie::import_file(&store, &f, &opts().bad_timestamps(BadTimestamps::Skip)).unwrap();
    assert!(r.is_complete(), "{r}");
    assert_eq!(r.items["mam_pm"], 2_499);
    let want: Vec<String> = (0..2_500).filter(|i| *i != 2_000).map(id).collect();
    assert_eq!(ids(&store, "alice@example.org"), want);

    // now: all 2,500, the bad one at the import time.
    let (_d, store) = crate::util::store();
    let before = Timestamp::now();
    let r = pie::import_file(&store, &f, &opts().bad_timestamps(BadTimestamps::Now)).unwrap();
    assert!(r.is_complete(), "{r}");
    assert_eq!(ids(&store, "alice@example.org").len(), 2_500);
    let m = store
        .mam()
        .get(&bare("alice@example.org"), &id(2_000))
        .unwrap()
        .unwrap();
    assert!(m.timestamp >= before);
}

#[test]
fn dry_run_of_a_multi_chunk_archive_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "big.xml", &doc(&archive(2_500, None)));
    let (_d, store) = store();
    let r = pie::import_file(&store, &f, &opts().dry_run(true)).unwrap();
    assert_eq!(r.items["mam_pm"], 2_500);
    assert_eq!(r.imported.len(), 2);
    assert!(!store.accounts().exists(&bare("alice@example.org")).unwrap());
}

#[test]
fn repeated_ids_across_chunks_and_archives_are_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = archive(2_500, None);
    // A second archive element repeating message 10's id, then a new one.
    a.push_str("<archive xmlns='urn:xmpp:pie:0#mam'>\n");
    result(&mut a, 2_500, &id(10), None);
    result(&mut a, 2_501, "fresh", None);
    a.push_str("</archive>\n");
    // Inside the first archive: message 2,200 repeats message 5's id.
    let a = a.replacen(
        &format!("id='{}'", id(2_200)),
        &format!("id='{}'", id(5)),
        1,
    );
    let f = write(dir.path(), "dup.xml", &doc(&a));
    let (_d, store) = store();
    let r = pie::import_file(&store, &f, &opts()).unwrap();
    assert!(r.is_complete(), "{r}");
    let reps: Vec<_> = r
        .problems
        .iter()
        .filter(|p| p.message.contains("repeated; later copy skipped"))
        .collect();
    assert_eq!(reps.len(), 2, "{:?}", r.problems);
    assert!(reps[0].message.contains(&id(5)) && reps[1].message.contains(&id(10)));
    let got = ids(&store, "alice@example.org");
    assert_eq!(got.len(), 2_500);
    assert_eq!(got.last().map(String::as_str), Some("fresh"));
    assert!(!got.contains(&id(2_200)));
    assert_eq!(got[5], id(5));
    // The kept copy of a-000005 is the first one.
    let m = store
        .mam()
        .get(&bare("alice@example.org"), &id(5))
        .unwrap()
        .unwrap();
    assert!(m.stanza.contains("message 5 "), "{}", m.stanza);
}

#[test]
fn prefixed_namespaces_and_included_users_are_reopened_for_the_write() {
    let dir = tempfile::tempdir().unwrap();
    // The user is in an included file; the main file uses a prefix for PIE.
    let user = format!(
        "<user xmlns='urn:xmpp:pie:0' name='carol' password='pw'>\n{}</user>\n",
        archive(1_500, None)
    );
    write(dir.path(), "carol.xml", &user);
    let main = format!(
        "<p:server-data xmlns:p='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>\n<p:host jid='example.org'>\n<xi:include href='carol.xml'/>\n<p:user name='dave' password='pw'>\n{}</p:user>\n</p:host>\n</p:server-data>\n",
        archive(1_200, None)
    );
    let f = write(dir.path(), "main.xml", &main);
    let (_d, store) = store();
    let r = pie::import_file(&store, &f, &opts()).unwrap();
    // The generated archives are alice's and bob's messages: one report a user.
    assert!(
        r.is_complete() && r.problems.len() == 2,
        "{r} {:?}",
        r.problems
    );
    assert!(
        r.problems[0].message.starts_with(
            "1500 archived message(s) involve neither carol@example.org nor its domain"
        ),
        "{:?}",
        r.problems
    );
    assert_eq!(r.imported, ["carol@example.org", "dave@example.org"]);
    assert_eq!(ids(&store, "carol@example.org").len(), 1_500);
    assert_eq!(ids(&store, "dave@example.org").len(), 1_200);
    assert!(
        store
            .accounts()
            .check_password(&bare("dave@example.org"), "pw")
            .unwrap()
    );
}

#[test]
fn round_trip_of_a_multi_chunk_archive_is_identical() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "big.xml", &doc(&archive(2_500, None)));
    let (_d, s1) = store();
    assert!(pie::import_file(&s1, &f, &opts()).unwrap().is_complete());
    let first = export_string(&s1, "alice@example.org");
    assert_eq!(first.matches("<result ").count(), 2_500);
    let f2 = write(dir.path(), "alice.xml", &first);
    let (_d2, s2) = store();
    let r = pie::import_file(&s2, &f2, &opts()).unwrap();
    assert!(r.is_complete() && r.problems.is_empty(), "{r}");
    assert_eq!(first, export_string(&s2, "alice@example.org"));
}
