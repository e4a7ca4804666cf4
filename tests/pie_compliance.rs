//! XEP-0227 files as other servers write them (issue 13, items 13-18): PEP affiliations and
//! subscriptions, includes under `<user>`, data the importer cannot keep, ejabberd's
//! `scram:` passwords, Openfire's Java dates, and `import`/`init` on a fresh data directory.
//! Run through the binary; the store is opened afterwards to check what was written.

use std::path::{Path, PathBuf};

use jidstore::ext::pubsub::{Affiliation, SubState};
use jidstore::ext::scram::Mechanism;
use jidstore::{Config, Store};

use crate::util::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, text).unwrap();
    p
}

/// A data directory with a store, created by `register` (so these tests do not depend on
/// `import` creating one, item 18, which is tested on its own).
fn fresh_data(dir: &Path, name: &str) -> PathBuf {
    let data = dir.join(name);
    let r = jidstore(
        &data,
        &["register", "--user", "setup", "setup.invalid", "pw"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    data
}

/// Opens a data directory the binary wrote (after it exited).
fn open_data(data: &Path) -> Store {
    Config::new(data).must_exist(true).open().unwrap()
}

fn doc(user: &str) -> String {
    format!(
        "<server-data xmlns='urn:xmpp:pie:0' xmlns:xi='http://www.w3.org/2001/XInclude'>\
         <host jid='example.org'>{user}</host></server-data>"
    )
}

const PEP: &str = "<user name='romeo' password='pw'>\
    <pubsub xmlns='http://jabber.org/protocol/pubsub#owner'>\
      <configure node='urn:xmpp:bookmarks:1'><x xmlns='jabber:x:data' type='submit'>\
        <field var='pubsub#access_model'><value>whitelist</value></field></x></configure>\
      <affiliations node='urn:xmpp:bookmarks:1'>\
        <affiliation jid='romeo@example.org' affiliation='owner'/>\
        <affiliation jid='benvolio@example.org' affiliation='member'/>\
        <affiliation jid='tybalt@example.com' affiliation='outcast'/>\
      </affiliations>\
      <subscriptions node='urn:xmpp:bookmarks:1'>\
        <subscription jid='benvolio@example.org/phone' subscription='subscribed'/>\
        <subscription jid='mercutio@example.org' subscribed='subscribed'/>\
        <subscription jid='nurse@example.org' subscription='pending'/>\
      </subscriptions>\
    </pubsub>\
    <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:bookmarks:1'>\
      <item id='a'><conference xmlns='urn:xmpp:bookmarks:1' name='A'/></item></items></pubsub>\
  </user>";

// See: issue 13, item 13.
#[test]
fn pep_affiliations_and_subscriptions_import_export_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "pep.xml", &doc(PEP));
    let data = fresh_data(dir.path(), "data");
    let r = jidstore(&data, &["import", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("unknown element"), "{}", r.stderr);
    assert!(r.stdout.contains("pubsub_affiliations: 2"), "{}", r.stdout);
    assert!(r.stdout.contains("pubsub_subscriptions: 3"), "{}", r.stdout);
    let out = dir.path().join("romeo.xml");
    {
        let store = open_data(&data);
        let romeo = bare("romeo@example.org");
        let node = "urn:xmpp:bookmarks:1";
        let affs = store.pubsub().affiliations(&romeo, node).unwrap();
        assert_eq!(
            affs,
            [
                (bare("benvolio@example.org"), Affiliation::Member),
                (bare("romeo@example.org"), Affiliation::Owner),
                (bare("tybalt@example.com"), Affiliation::Outcast),
            ]
        );
        let subs: Vec<_> = store
            .pubsub()
            .subscriptions(&romeo, node)
            .unwrap()
            .into_iter()
            .map(|s| (s.subscriber.to_string(), s.state))
            .collect();
        assert_eq!(
            subs,
            [
                ("benvolio@example.org".to_owned(), SubState::Subscribed),
                ("mercutio@example.org".to_owned(), SubState::Subscribed),
                ("nurse@example.org".to_owned(), SubState::Pending),
            ]
        );
    }
    let r = export_to(&data, "export-xep0227", "romeo", "example.org", &out);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let first = std::fs::read_to_string(&out).unwrap();
    assert!(
        first.contains("<affiliation jid=\"benvolio@example.org\" affiliation=\"member\"/>"),
        "{first}"
    );
    assert!(
        first.contains("<subscription jid=\"nurse@example.org\" subscription=\"pending\"/>"),
        "{first}"
    );
    // Import the export elsewhere and export again: the same document.
    let data2 = fresh_data(dir.path(), "data2");
    let r = jidstore(&data2, &["import", out.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let out2 = dir.path().join("again.xml");
    let r = export_to(&data2, "export-xep0227", "romeo", "example.org", &out2);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&out2).unwrap(), first);
}

const ARCHIVE: &str = "<archive xmlns='urn:xmpp:pie:0#mam'>\
    <result xmlns='urn:xmpp:mam:2' id='m1'><forwarded xmlns='urn:xmpp:forward:0'>\
      <delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/>\
      <message xmlns='jabber:client' from='romeo@example.net/o' to='juliet@example.org/b' type='chat'><body>one</body></message>\
    </forwarded></result>\
    <result xmlns='urn:xmpp:mam:2' id='m2'><forwarded xmlns='urn:xmpp:forward:0'>\
      <delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:09:32Z'/>\
      <message xmlns='jabber:client' from='juliet@example.org/b' to='romeo@example.net/o' type='chat'><body>two</body></message>\
    </forwarded></result></archive>";

// See: issue 13, item 14 (Tigase puts every archive in an include under <user>).
#[test]
fn xinclude_child_of_user_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "archives/juliet.xml", ARCHIVE);
    write(
        dir.path(),
        "juliet-vcard.xml",
        "<vCard xmlns='vcard-temp'><FN>Juliet</FN></vCard>",
    );
    // A deeper include is user data: kept inside the private XML, not followed.
    let user = "<user name='juliet' password='pw'>\
        <xi:include href='archives/juliet.xml'/>\
        <xi:include href='juliet-vcard.xml'/>\
        <query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>\
          <xi:include href='juliet-vcard.xml'/></prefs></query></user>";
    let file = write(dir.path(), "main.xml", &doc(user));
    let data = fresh_data(dir.path(), "data");
    let r = jidstore(&data, &["import", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("mam_pm: 2"), "{}", r.stdout);
    let store = open_data(&data);
    let juliet = bare("juliet@example.org");
    assert_eq!(store.mam().count(&juliet).unwrap(), 2);
    assert!(
        store
            .vcard()
            .get(&juliet)
            .unwrap()
            .unwrap()
            .contains("Juliet")
    );
    let private = store.private().list(&juliet).unwrap();
    assert_eq!(private.len(), 1);
    assert!(private[0].1.contains("XInclude"), "{private:?}");
}

// See: issue 13, item 14: refused includes are reported and refuse only their user.
#[test]
fn xinclude_under_user_outside_the_directory_or_missing_refuses_that_user() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("export");
    let outside = write(dir.path(), "outside.xml", ARCHIVE);
    std::fs::create_dir_all(&base).unwrap();
    std::os::unix::fs::symlink(&outside, base.join("link.xml")).unwrap();
    let users = format!(
        "<user name='a' password='pw'><xi:include href='../outside.xml'/></user>\
         <user name='b' password='pw'><xi:include href='{}'/></user>\
         <user name='c' password='pw'><xi:include href='link.xml'/></user>\
         <user name='d' password='pw'><xi:include href='gone.xml'/></user>\
         <user name='e' password='pw'><xi:include href='main.xml'/></user>\
         <user name='ok' password='pw'/>",
        outside.display()
    );
    let file = write(&base, "main.xml", &doc(&users));
    let data = fresh_data(dir.path(), "data");
    let r = jidstore(&data, &["import", file.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.starts_with("users imported: 1, failed: 5"),
        "{}",
        r.stdout
    );
    for want in [
        "href '../outside.xml' refused: it leads outside the including file's directory",
        &format!(
            "href '{}' refused: only a relative path inside the including file's directory is followed",
            outside.display()
        ),
        "href 'link.xml' refused: it leads outside",
        "XInclude target 'gone.xml'",
        "XInclude 'main.xml' includes its own file; user refused",
    ] {
        assert!(r.stderr.contains(want), "{want}\n{}", r.stderr);
    }
    let store = open_data(&data);
    for u in ["a", "b", "c", "d", "e"] {
        let j = bare(&format!("{u}@example.org"));
        assert!(!store.accounts().exists(&j).unwrap(), "{u}");
    }
    assert!(store.accounts().exists(&bare("ok@example.org")).unwrap());
}

// See: issue 13, item 15.
#[test]
fn data_the_importer_cannot_keep_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let user = "<user name='juliet' password='pw'>\
        <presence xmlns='jabber:client' type='subscribe' id='xk3h1v69' from='romeo@montague.net'>\
          <nick xmlns='http://jabber.org/protocol/nick'>Romeo</nick></presence>\
        <query xmlns='jabber:iq:privacy'><active name='l'/><list name='l'>\
          <item action='allow' order='1'/></list></query>\
        <archive xmlns='urn:xmpp:pie:0#mam'>\
          <result xmlns='urn:xmpp:mam:2' id='x1'><forwarded xmlns='urn:xmpp:forward:0'>\
            <delay xmlns='urn:xmpp:delay' stamp='2010-07-10T23:08:25Z'/>\
            <message xmlns='jabber:client' from='romeo@montague.net/o' to='tybalt@capulet.com' type='chat'><body>x</body></message>\
          </forwarded></result></archive></user>";
    let file = write(dir.path(), "f.xml", &doc(user));
    let data = fresh_data(dir.path(), "data");
    let r = jidstore(&data, &["import", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for want in [
        "subscription request from romeo@montague.net: its id is not kept",
        "subscription request from romeo@montague.net: its <nick/> (XEP-0172) is not kept",
        "active privacy list: session state, not kept",
        "f.xml:1: 1 archived message(s) involve neither juliet@example.org nor its domain (the first, here, between romeo@montague.net and tybalt@capulet.com); kept as incoming",
    ] {
        assert!(r.stderr.contains(want), "{want}\n{}", r.stderr);
    }
    assert!(r.stdout.contains("problems reported: 4"), "{}", r.stdout);
}

// See: issue 13, item 16. The value is RFC 5802's example (password "pencil", salt
// QSXCR+Q6sek8bf92, 4096 iterations) in ejabberd_piefxis's export form, computed with
// Python's hashlib/hmac.
#[test]
fn ejabberd_scram_password_is_stored_as_scram_verifiers() {
    let dir = tempfile::tempdir().unwrap();
    let pw =
        "scram:6dlGYMOdZcOPutkcNY8U2g7vK9Y=,D+CSWLOshSulAsxiupA+qs2/fTE=,QSXCR+Q6sek8bf92,4096";
    let user = format!(
        "<user name='user' password='{pw}'/><user name='odd' password='scram:not,base64'/>"
    );
    let file = write(dir.path(), "ej.xml", &doc(&user));
    let data = fresh_data(dir.path(), "data");
    let r = jidstore(&data, &["import", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "user@example.org: password in ejabberd's 'scram:' export form read as SCRAM-SHA-1 credentials"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("odd@example.org: password starts with 'scram:' but is not ejabberd's"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("6dlG"), "credentials never echoed");
    let store = open_data(&data);
    let u = bare("user@example.org");
    assert!(store.accounts().check_password(&u, "pencil").unwrap());
    assert!(!store.accounts().check_password(&u, pw).unwrap());
    let v = store
        .accounts()
        .verifier(&u, Mechanism::Sha1)
        .unwrap()
        .unwrap();
    assert!(v.matches("pencil"));
    assert_eq!(v.iterations, 4096);
    assert!(
        store
            .accounts()
            .verifier(&u, Mechanism::Sha256)
            .unwrap()
            .is_none()
    );
}

// See: issue 13, item 17.
#[test]
fn openfire_samples_import_with_their_real_times() {
    let Some(samples) = crate::pie::samples() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = fresh_data(dir.path(), "data");
    let single = samples.join("openfire-single/test-xepp227-import.xml");
    let r = jidstore(&data, &["import", single.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "test-xepp227-import.xml:9: offline message delay: Java date 'Thu Jan 21 14:17:35 CET 2016' converted to 2016-01-21T13:17:35.000000Z (read as UTC+01:00)"
        ),
        "{}",
        r.stderr
    );
    let xinc = samples.join("openfire-xinclude/test-import.xml");
    let r = jidstore(
        &data,
        &["import", "--skip-missing-includes", xinc.to_str().unwrap()],
    );
    assert_eq!(r.code, 1, "5 includes are missing: {}", r.stderr);
    assert!(r.stdout.starts_with("users imported: 3"), "{}", r.stdout);
    let store = open_data(&data);
    let anno = bare("anno@openfire.xmpp.test");
    let offline = store.offline().list(&anno).unwrap();
    assert_eq!(offline.len(), 8);
    // Line 22: 'Wed Sep 14 18:11:51 CEST 2016'.
    assert_eq!(
        offline[0].timestamp.to_rfc3339(),
        "2016-09-14T16:11:51.000000Z"
    );
    // The stanza's stamp is rewritten to the converted time.
    assert!(
        offline[0]
            .stanza
            .contains("stamp='2016-09-14T16:11:51.000000Z'"),
        "{}",
        offline[0].stanza
    );
    assert!(
        offline
            .iter()
            .all(|m| m.timestamp.as_secs() < 1_500_000_000)
    );
    assert!(store.accounts().exists(&bare("ju00122@sub")).unwrap());
}

// See: issue 13, item 17: an unknown zone is reported and handled as before.
#[test]
fn java_date_with_unknown_zone_is_reported_and_refused_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let user = "<user name='a' password='pw'><offline-messages>\
        <message xmlns='jabber:client' from='b@example.org' to='a@example.org'><body>x</body>\
        <delay xmlns='urn:xmpp:delay' stamp='Thu Jan 21 14:17:35 XYZT 2016'/></message>\
        </offline-messages></user>";
    let file = write(dir.path(), "f.xml", &doc(user));
    let data = fresh_data(dir.path(), "data");
    let r = jidstore(&data, &["import", file.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains(
            "timestamp 'Thu Jan 21 14:17:35 XYZT 2016' is not XEP-0082 (as a Java date, its zone 'XYZT' is unknown); user refused"
        ),
        "{}",
        r.stderr
    );
    let r = jidstore(
        &data,
        &["import", "--bad-timestamps", "skip", file.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("offline"), "{}", r.stdout);
}

// See: issue 13, item 18.
#[test]
fn import_creates_the_store_and_init_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "f.xml",
        &doc("<user name='alice' password='secret'/>"),
    );
    // A missing data dir: created, no throwaway account needed.
    let data = dir.path().join("new/data");
    let r = jidstore(&data, &["import", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    {
        let store = open_data(&data);
        assert_eq!(store.accounts().list("example.org").unwrap().len(), 1);
    }
    // An empty data dir: the same.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = jidstore(&empty, &["import", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // A dry run writes nothing, not even a store.
    let dry = dir.path().join("dry");
    let r = jidstore(&dry, &["import", "--dry-run", file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!dry.exists());
    assert!(
        r.stdout.starts_with(
            "dry run, nothing written: users that would be imported: 1, would fail: 0"
        ),
        "{}",
        r.stdout
    );
    // init: creates, then says it exists, exit 0 both times.
    let fresh = dir.path().join("fresh");
    let r = jidstore(&fresh, &["init"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.starts_with("created an empty store in "),
        "{}",
        r.stdout
    );
    let r = jidstore(&fresh, &["--json", "init"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["created"], false);
    let r = jidstore(&fresh, &["stats"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Not a store: refused, nothing written.
    let other = dir.path().join("other");
    write(&other, "notes.txt", "mine");
    let r = jidstore(&other, &["init"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not sled's"), "{}", r.stderr);
}

// See: issue 13, smaller items: a missing input file is one plain line and creates nothing.
#[test]
fn missing_import_file_is_one_line_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let missing = dir.path().join("nope.xml");
    let r = jidstore(&data, &["import", missing.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        format!(
            "jidstore: cannot open {}: No such file or directory\n",
            missing.display()
        )
    );
    assert!(!data.exists());
}
