//! MongooseIM's GDPR cases (`/work/shared/acceptance/mongooseim-gdpr-cases.md`), end to end:
//! data is written through the library the way a server would, the store is closed, and the
//! real `jidstore` binary exports (`retrieve_personal_data`) and erases (`unregister`). One test
//! per case, named after its id, so this file is the complete index of the cases; a few more
//! (receipt vs export, CSV round trip, determinism) follow at the end.
//!
//! Every case runs twice: on sled (the tests at the top level) and with the store on a
//! PostgreSQL database (`on_postgres::<case>`, at the end): the case code is shared, only
//! the harness ([`Env`]) differs, taking the engine from the thread the case runs on. Left
//! out on PostgreSQL: G6 (the output directory's permissions, checked by running the binary
//! as `nobody` on a sled directory; no storage in it) and the XML checker's own test.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::util::{Run, bare, csv_rows, full, jidstore, unzip};
use jidstore::__internal::sample::{self, Sample};
use jidstore::ext::inbox::InboxEntry;
use jidstore::ext::mam::{Direction, MucMessage, PmMessage};
use jidstore::ext::offline::OfflineMessage;
use jidstore::ext::privacy::{PrivacyAction, PrivacyItem, PrivacyType};
use jidstore::ext::pubsub::{Affiliation, Node, NodeType, SubState};
use jidstore::ext::roster::{Ask, RosterItem, Subscription};
use jidstore::{BareJid, Config, Store, Timestamp};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Harness: a store at <tmp>/data, closed before the binary runs.

/// Every file of an export with DESIGN.md's header (`pubsub_affiliations.csv` is not in
/// DESIGN.md's table; its header is the one README.md documents).
const HEADERS: &[(&str, &[&str])] = &[
    ("accounts.csv", &["jid", "created_at", "mechanisms"]),
    (
        "roster.csv",
        &[
            "jid",
            "name",
            "subscription",
            "ask",
            "groups",
            "askmessage",
            "xs",
            "groups_json",
        ],
    ),
    ("vcard.csv", &["jid", "vcard"]),
    ("private.csv", &["ns", "xml"]),
    (
        "offline.csv",
        &["timestamp", "from", "to", "packet", "expires"],
    ),
    (
        "inbox.csv",
        &[
            "jid",
            "content",
            "unread_count",
            "timestamp",
            "box",
            "muted_until",
        ],
    ),
    (
        "mam_pm.csv",
        &["id", "from", "message", "timestamp", "to", "direction"],
    ),
    (
        "mam_muc.csv",
        &["id", "message", "room", "timestamp", "nick"],
    ),
    (
        "pubsub_nodes.csv",
        &["node_id", "access_model", "service_jid", "type"],
    ),
    (
        "pubsub_items.csv",
        &[
            "node_id",
            "item_id",
            "publisher_jid",
            "payload",
            "service_jid",
            "published_at",
        ],
    ),
    (
        "pubsub_subscriptions.csv",
        &["service_jid", "node_id", "subscriber_jid", "state"],
    ),
    (
        "pubsub_affiliations.csv",
        &["service_jid", "node_id", "jid", "affiliation"],
    ),
    ("last.csv", &["jid", "timestamp", "status"]),
    (
        "privacy.csv",
        &[
            "list",
            "is_default",
            "order",
            "type",
            "value",
            "action",
            "match",
        ],
    ),
    ("blocklist.csv", &["jid"]),
    ("generic_kv.csv", &["store", "value"]),
    (
        "generic_archive.csv",
        &["store", "id", "timestamp", "with", "value"],
    ),
];

/// Columns that hold XML text.
const XML_COLUMNS: &[&str] = &["vcard", "xml", "packet", "content", "message", "payload"];

const MUC: &str = "muc.localhost";
const PS: &str = "pubsub.localhost";

thread_local! {
    /// The PostgreSQL database the case on this thread runs on (set by [`on_postgres`]);
    /// `None`: a sled directory.
    static DATABASE: RefCell<Option<String>> = const { RefCell::new(None) };
}

struct Env {
    /// Outputs (exports), and the sled data directory `data`.
    dir: TempDir,
    /// The store's PostgreSQL database instead of `data`.
    database: Option<String>,
}

impl Env {
    /// A fresh data directory (or the case's fresh database), nothing in it yet.
    fn empty() -> Env {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
            database: DATABASE.with(|d| d.borrow().clone()),
        }
    }

    /// A fresh data directory (or database) and a store open on it.
    fn new() -> (Env, Store) {
        let env = Env::empty();
        let store = env.open();
        (env, store)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Opens the store, retrying while a just-closed handle (or the binary) still holds the
    /// directory lock.
    fn open(&self) -> Store {
        if let Some(url) = &self.database {
            return Config::database(url)
                .scram_iterations(16)
                .open()
                .expect("open store on PostgreSQL");
        }
        Config::new(self.data())
            .scram_iterations(16)
            .lock_timeout(std::time::Duration::from_secs(5))
            .open()
            .expect("open store")
    }

    /// Runs the binary, retrying while the data directory is still locked by a store this
    /// test just dropped.
    fn run(&self, args: &[&str]) -> Run {
        #[cfg(feature = "postgres")]
        if let Some(url) = &self.database {
            return crate::postgres::jidstore_db(url, false, args);
        }
        for _ in 0..100 {
            let r = jidstore(&self.data(), args);
            if r.code == 1 && r.stderr.contains("is locked by another process") {
                std::thread::sleep(std::time::Duration::from_millis(50));
                continue;
            }
            return r;
        }
        jidstore(&self.data(), args)
    }

    /// A fresh output path for one export.
    fn out_path(&self) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        self.dir.path().join(format!("export-{n}.zip"))
    }

    /// Exports `user@domain` through the binary; `None` when it reports that nothing is held
    /// (and then no file was created).
    fn try_export(&self, user: &str, domain: &str) -> Option<Export> {
        let out = self.out_path();
        let r = self.run(&[
            "retrieve_personal_data",
            user,
            domain,
            out.to_str().expect("utf-8 path"),
        ]);
        if r.code == 1 && r.stderr.contains("no personal data held") {
            assert!(!out.exists(), "failed export left {}", out.display());
            return None;
        }
        assert_eq!(r.code, 0, "export of {user}@{domain}: {}", r.stderr);
        Some(Export::read(&out))
    }

    /// Exports a JID (`alice@localhost`) that must have data.
    fn export(&self, jid: &str) -> Export {
        let (u, d) = jid.split_once('@').expect("user@domain");
        self.try_export(u, d)
            .unwrap_or_else(|| panic!("no personal data held for {jid}"))
    }

    /// Unregisters through the binary and parses the printed receipt.
    fn unregister(&self, jid: &str) -> ReceiptText {
        let (u, d) = jid.split_once('@').expect("user@domain");
        let r = self.run(&["unregister", u, d]);
        assert_eq!(r.code, 0, "unregister {jid}: {}", r.stderr);
        assert!(
            r.stdout
                .contains(&format!("User {jid} successfully unregistered")),
            "{}",
            r.stdout
        );
        ReceiptText::parse(&r.stdout)
    }
}

/// Closes the store so that the binary can take the directory lock.
fn close(store: Store) {
    store.flush().expect("flush");
    drop(store);
}

/// One parsed export: every CSV (header checked) and the manifest.
struct Export {
    files: BTreeMap<String, Vec<Vec<String>>>,
    raw: BTreeMap<String, String>,
}

impl Export {
    /// The manifest's `exported_at`.
    fn exported_at(&self) -> String {
        let m: serde_json::Value = serde_json::from_str(&self.raw["manifest.json"]).unwrap();
        m["exported_at"].as_str().unwrap().to_owned()
    }

    fn read(path: &Path) -> Export {
        let raw = unzip(path);
        let mut names: BTreeSet<&str> = raw.keys().map(String::as_str).collect();
        assert!(names.remove("manifest.json"), "manifest.json missing");
        assert!(names.remove("index.html"), "index.html missing");
        let expected: BTreeSet<&str> = HEADERS.iter().map(|(f, _)| *f).collect();
        assert_eq!(names, expected, "the export's files");
        let mut files = BTreeMap::new();
        for (file, header) in HEADERS {
            let (h, rows) = csv_rows(&raw[*file]);
            assert_eq!(h, *header, "header of {file}");
            for row in &rows {
                for (col, cell) in h.iter().zip(row) {
                    if XML_COLUMNS.contains(&col.as_str()) {
                        assert_well_formed(cell);
                    }
                }
            }
            files.insert((*file).to_owned(), rows);
        }
        Export { files, raw }
    }

    /// Data rows of `file`.
    fn rows(&self, file: &str) -> &[Vec<String>] {
        &self.files[file]
    }

    /// Values of column `col` of `file`, sorted.
    fn col(&self, file: &str, col: &str) -> Vec<String> {
        let i = column(file, col);
        let mut v: Vec<String> = self.rows(file).iter().map(|r| r[i].clone()).collect();
        v.sort();
        v
    }

    /// Values of several columns joined by a space, sorted.
    fn cols(&self, file: &str, cols: &[&str]) -> Vec<String> {
        let idx: Vec<usize> = cols.iter().map(|c| column(file, c)).collect();
        let mut v: Vec<String> = self
            .rows(file)
            .iter()
            .map(|r| {
                idx.iter()
                    .map(|i| r[*i].as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        v.sort();
        v
    }

    /// The one row of `file`.
    fn only(&self, file: &str) -> Row<'_> {
        let rows = self.rows(file);
        assert_eq!(rows.len(), 1, "{file}: {rows:?}");
        Row {
            file: file.to_owned(),
            cells: &rows[0],
        }
    }

    /// Rows of `file` as `Row`s.
    fn all(&self, file: &str) -> Vec<Row<'_>> {
        self.rows(file)
            .iter()
            .map(|cells| Row {
                file: file.to_owned(),
                cells,
            })
            .collect()
    }

    /// Files with rows, other than those named.
    fn nonempty_except(&self, allowed: &[&str]) -> Vec<&str> {
        self.files
            .iter()
            .filter(|(f, rows)| !rows.is_empty() && !allowed.contains(&f.as_str()))
            .map(|(f, _)| f.as_str())
            .collect()
    }
}

/// One row, addressed by column name.
struct Row<'a> {
    file: String,
    cells: &'a [String],
}

impl Row<'_> {
    fn get(&self, col: &str) -> &str {
        &self.cells[column(&self.file, col)]
    }
}

fn column(file: &str, col: &str) -> usize {
    let header = HEADERS
        .iter()
        .find(|(f, _)| *f == file)
        .unwrap_or_else(|| panic!("unknown file {file}"))
        .1;
    header
        .iter()
        .position(|c| *c == col)
        .unwrap_or_else(|| panic!("{file} has no column {col}"))
}

/// Fails unless `xml` is one well-formed element: every start tag closed in order, attributes
/// unique and their values valid, every entity reference predefined or a valid character
/// reference, nothing but whitespace outside the root.
fn assert_well_formed(xml: &str) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<String> = Vec::new();
    let mut roots = 0;
    let check_attrs = |e: &quick_xml::events::BytesStart<'_>| {
        for a in e.attributes() {
            let a = a.unwrap_or_else(|err| panic!("bad attribute in {xml:?}: {err}"));
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .unwrap_or_else(|err| panic!("bad attribute value in {xml:?}: {err}"));
        }
    };
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                check_attrs(&e);
                if stack.is_empty() {
                    roots += 1;
                }
                stack.push(e.name().as_ref().to_owned());
            }
            Ok(Event::End(e)) => {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(e.name().as_ref()),
                    "mismatched end tag in {xml:?}"
                );
            }
            Ok(Event::Empty(e)) => {
                check_attrs(&e);
                if stack.is_empty() {
                    roots += 1;
                }
            }
            Ok(Event::Text(t)) => {
                assert!(
                    !stack.is_empty()
                        || AsRef::<[u8]>::as_ref(&*t)
                            .iter()
                            .all(u8::is_ascii_whitespace),
                    "text outside the root in {xml:?}"
                );
            }
            Ok(Event::GeneralRef(r)) => {
                assert!(!stack.is_empty(), "reference outside the root in {xml:?}");
                let c = r
                    .resolve_char_ref()
                    .unwrap_or_else(|err| panic!("bad character reference in {xml:?}: {err}"));
                if c.is_none() {
                    assert!(
                        ["amp", "lt", "gt", "quot", "apos"].contains(&&*r),
                        "undefined entity &{}; in {xml:?}",
                        &*r
                    );
                }
            }
            Ok(Event::Eof) => break,
            Ok(Event::DocType(_)) => panic!("DOCTYPE in {xml:?}"),
            Ok(_) => {}
            Err(e) => panic!("not well-formed: {xml:?}: {e}"),
        }
    }
    assert!(stack.is_empty(), "unclosed element in {xml:?}");
    assert_eq!(roots, 1, "root elements in {xml:?}");
}

/// The receipt `unregister` prints.
struct ReceiptText {
    removed: BTreeMap<String, u64>,
    kept: BTreeMap<String, Option<u64>>,
}

impl ReceiptText {
    fn parse(stdout: &str) -> ReceiptText {
        let stems: Vec<&str> = HEADERS
            .iter()
            .map(|(f, _)| f.strip_suffix(".csv").expect("csv"))
            .collect();
        let mut removed = BTreeMap::new();
        let mut kept = BTreeMap::new();
        let mut section = "";
        for line in stdout.lines() {
            match line {
                "Removed:" | "Kept:" => {
                    section = line;
                    continue;
                }
                _ if !line.starts_with("  ") => {
                    section = "";
                    continue;
                }
                _ => {}
            }
            let mut words = line.split_whitespace();
            let Some(class) = words.next() else { continue };
            match section {
                "Removed:" => {
                    assert!(stems.contains(&class), "unknown table {class} in {line:?}");
                    let n = words.next().and_then(|n| n.parse().ok());
                    assert!(words.next().is_none(), "{line:?}");
                    removed.insert(class.to_owned(), n.expect("count"));
                }
                "Kept:" if stems.contains(&class) => {
                    let n = words.next().and_then(|n| n.parse().ok());
                    kept.insert(class.to_owned(), n);
                }
                _ => {}
            }
        }
        assert_eq!(
            removed.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            stems.into_iter().collect(),
            "every table listed under Removed:\n{stdout}"
        );
        ReceiptText { removed, kept }
    }
}

// ---------------------------------------------------------------------------------------------
// Writes a server would make.

fn account(store: &Store, jid: &str) -> BareJid {
    let j = bare(jid);
    store.accounts().create(&j, "password").expect("account");
    j
}

fn at(secs: i64) -> Timestamp {
    Timestamp::from_secs(1_700_000_000 + secs)
}

fn chat_stanza(from: &str, to: &str, body: &str) -> String {
    format!(
        "<message xmlns='jabber:client' type='chat' from='{from}' to='{to}'><body>{body}</body></message>"
    )
}

/// A 1-1 chat message between two local users: both archives and both inboxes.
fn chat(store: &Store, from: &str, to: &str, body: &str, secs: i64) {
    let (f, t) = (full(from), full(to));
    let (fb, tb) = (f.to_bare(), t.to_bare());
    let stanza = chat_stanza(from, to, body);
    for (owner, direction) in [(&fb, Direction::Outgoing), (&tb, Direction::Incoming)] {
        store
            .mam()
            .append(
                owner,
                &PmMessage {
                    id: None,
                    timestamp: at(secs),
                    from: f.clone(),
                    to: t.clone(),
                    direction,
                    origin_id: None,
                    stanza: stanza.clone(),
                },
            )
            .expect("archive");
    }
    store
        .inbox()
        .on_message(&fb, &tb, &stanza, None, at(secs), false)
        .expect("sender inbox");
    store
        .inbox()
        .on_message(&tb, &fb, &stanza, None, at(secs), true)
        .expect("recipient inbox");
}

/// A group-chat message: the room archive, and the inbox of every participant.
fn groupchat(store: &Store, room: &str, sender: &str, nick: &str, members: &[&str], body: &str) {
    let room = bare(room);
    let stanza = format!(
        "<message xmlns='jabber:client' type='groupchat' from='{room}/{nick}'><body>{body}</body></message>"
    );
    store
        .muc()
        .append(
            &room,
            &MucMessage {
                id: None,
                timestamp: at(10),
                sender: bare(sender),
                nick: nick.to_owned(),
                stanza: stanza.clone(),
            },
        )
        .expect("room archive");
    for m in members {
        store
            .inbox()
            .on_message(&bare(m), &room, &stanza, None, at(10), *m != sender)
            .expect("inbox");
    }
}

fn contact(jid: &str, subscription: Subscription) -> RosterItem {
    RosterItem {
        jid: bare(jid),
        name: None,
        subscription,
        ask: Ask::None,
        groups: vec![],
        askmessage: None,
    }
}

/// alice and bob in each other's roster, subscription both.
fn mutual_contacts(store: &Store, a: &BareJid, b: &BareJid) {
    store
        .roster()
        .set(a, &contact(b.as_str(), Subscription::Both))
        .expect("roster");
    store
        .roster()
        .set(b, &contact(a.as_str(), Subscription::Both))
        .expect("roster");
}

fn offline(store: &Store, owner: &BareJid, from: &str, body: &str, secs: i64) {
    store
        .offline()
        .store(
            owner,
            &OfflineMessage {
                from: full(from),
                to: full(owner.as_str()),
                timestamp: at(secs),
                expires: None,
                stanza: chat_stanza(from, owner.as_str(), body),
            },
        )
        .expect("offline");
}

fn node(service: &str, id: &str, owner: &BareJid, kind: NodeType, access: &str) -> Node {
    Node {
        service: bare(service),
        node: id.to_owned(),
        owner: owner.clone(),
        kind,
        access_model: access.to_owned(),
        config: vec![],
        created_at: at(1),
    }
}

fn create(store: &Store, service: &str, id: &str, owner: &BareJid, kind: NodeType) {
    let access = if kind == NodeType::Pep {
        "presence"
    } else {
        "open"
    };
    store
        .pubsub()
        .create_node(&node(service, id, owner, kind, access))
        .expect("create node");
}

fn entry_payload(item: &str) -> String {
    format!("<entry xmlns='http://www.w3.org/2005/Atom'><title>{item}</title></entry>")
}

fn publish(store: &Store, service: &str, node: &str, item: &str, by: &BareJid) {
    store
        .pubsub()
        .publish(&bare(service), node, item, by, &entry_payload(item), at(2))
        .expect("publish");
}

fn subscribe(store: &Store, service: &str, node: &str, who: &BareJid) {
    store
        .pubsub()
        .subscribe(&bare(service), node, who, SubState::Subscribed)
        .expect("subscribe");
}

fn publish_only(store: &Store, service: &str, node: &str, who: &BareJid) {
    store
        .pubsub()
        .set_affiliation(&bare(service), node, who, Some(Affiliation::PublishOnly))
        .expect("affiliation");
}

fn strs(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

fn is_rfc3339_utc(s: &str) -> bool {
    s.ends_with('Z') && Timestamp::parse_rfc3339(s).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Retrieval

#[test]
fn r1_vcard_exported() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    store
        .vcard()
        .set(
            &alice,
            "<vCard xmlns='vcard-temp'><FN>Alice</FN><N><FAMILY>Ecila</FAMILY></N></vCard>",
        )
        .unwrap();
    close(store);
    let e = env.export("alice@localhost");
    let row = e.only("vcard.csv");
    assert_eq!(row.get("jid"), "alice@localhost");
    assert!(row.get("vcard").contains("Alice"));
    assert!(row.get("vcard").contains("Ecila"));
}

#[test]
fn r2_roster_exported() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let bob = account(&store, "bob@localhost");
    mutual_contacts(&store, &alice, &bob);
    close(store);
    let e = env.export("alice@localhost");
    let row = e.only("roster.csv");
    assert_eq!(row.get("jid"), "bob@localhost");
    assert_eq!(row.get("subscription"), "both");
}

#[test]
fn r3_offline_messages_exported() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    account(&store, "bob@localhost");
    account(&store, "kate@localhost");
    offline(&store, &alice, "bob@localhost/res1", "1Hey!", 1);
    offline(&store, &alice, "bob@localhost/res1", "2Here is Johnny!", 2);
    offline(
        &store,
        &alice,
        "kate@localhost/res1",
        "3Where is Johnny ?",
        3,
    );
    close(store);
    let e = env.export("alice@localhost");
    let rows = e.all("offline.csv");
    assert_eq!(rows.len(), 3);
    let mut got: Vec<(String, String)> = Vec::new();
    for r in &rows {
        assert_eq!(r.get("to"), "alice@localhost");
        assert!(is_rfc3339_utc(r.get("timestamp")), "{}", r.get("timestamp"));
        let body = ["1Hey!", "2Here is Johnny!", "3Where is Johnny ?"]
            .into_iter()
            .find(|b| r.get("packet").contains(&format!("<body>{b}</body>")))
            .expect("a known body");
        got.push((r.get("from").to_owned(), body.to_owned()));
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("bob@localhost/res1", "1Hey!"),
            ("bob@localhost/res1", "2Here is Johnny!"),
            ("kate@localhost/res1", "3Where is Johnny ?"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
}

#[test]
fn r4_inbox_exported_for_both() {
    let (env, store) = Env::new();
    account(&store, "alice@localhost");
    account(&store, "bob@localhost");
    chat(
        &store,
        "bob@localhost/r",
        "alice@localhost/r",
        "With spam?",
        1,
    );
    close(store);
    let a = env.export("alice@localhost");
    let row = a.only("inbox.csv");
    assert_eq!(row.get("jid"), "bob@localhost");
    assert!(row.get("content").contains("With spam?"));
    assert_eq!(row.get("unread_count"), "1");
    assert!(is_rfc3339_utc(row.get("timestamp")));
    let b = env.export("bob@localhost");
    let row = b.only("inbox.csv");
    assert_eq!(row.get("jid"), "alice@localhost");
    assert_eq!(row.get("unread_count"), "0");
}

#[test]
fn r5_inbox_keeps_last_message_and_counts_unread() {
    let (env, store) = Env::new();
    account(&store, "alice@localhost");
    account(&store, "bob@localhost");
    for i in 1..=4 {
        chat(
            &store,
            "bob@localhost/r",
            "alice@localhost/r",
            &format!("Message {i}"),
            i,
        );
    }
    close(store);
    let a = env.export("alice@localhost");
    let row = a.only("inbox.csv");
    assert_eq!(row.get("jid"), "bob@localhost");
    assert!(row.get("content").contains("<body>Message 4</body>"));
    for i in 1..=3 {
        assert!(!row.get("content").contains(&format!("Message {i}")));
    }
    assert_eq!(row.get("unread_count"), "4");
}

#[test]
fn r6_groupchat_inbox() {
    let (env, store) = Env::new();
    account(&store, "alice@localhost");
    account(&store, "bob@localhost");
    let room = format!("room@{MUC}");
    groupchat(
        &store,
        &room,
        "bob@localhost",
        "bob",
        &["alice@localhost", "bob@localhost"],
        "Hi Room!",
    );
    close(store);
    for (who, unread) in [("alice@localhost", "1"), ("bob@localhost", "0")] {
        let e = env.export(who);
        let row = e.only("inbox.csv");
        assert_eq!(row.get("jid"), room);
        assert!(row.get("content").contains("Hi Room!"));
        assert_eq!(row.get("unread_count"), unread, "{who}");
    }
}

#[test]
fn r9_private_xml_exported() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let text = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA==";
    store
        .private()
        .set(
            &alice,
            "alice:gdpr:ns",
            &format!("<fingerprint xmlns='alice:gdpr:ns'>{text}</fingerprint>"),
        )
        .unwrap();
    close(store);
    let e = env.export("alice@localhost");
    let row = e.only("private.csv");
    assert_eq!(row.get("ns"), "alice:gdpr:ns");
    assert!(row.get("xml").contains("alice:gdpr:ns"));
    assert!(row.get("xml").contains(text));
}

#[test]
fn r10_private_xml_only_own() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let bob = account(&store, "bob@localhost");
    store
        .private()
        .set(&alice, "alice:ns", "<a xmlns='alice:ns'>mine</a>")
        .unwrap();
    store
        .private()
        .set(&bob, "bob:ns", "<b xmlns='bob:ns'>his</b>")
        .unwrap();
    close(store);
    let e = env.export("alice@localhost");
    assert_eq!(e.col("private.csv", "ns"), ["alice:ns"]);
    assert!(!e.raw["private.csv"].contains("his"));
}

#[test]
fn r11_private_xml_many_namespaces() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    for i in 1..=5 {
        store
            .private()
            .set(&alice, &format!("ns{i}"), &format!("<q xmlns='ns{i}'/>"))
            .unwrap();
    }
    close(store);
    let e = env.export("alice@localhost");
    assert_eq!(
        e.col("private.csv", "ns"),
        strs(&["ns1", "ns2", "ns3", "ns4", "ns5"])
    );
}

fn r12_setup(store: &Store) {
    account(store, "alice@localhost");
    account(store, "bob@localhost");
    chat(store, "alice@localhost/a", "bob@localhost/b", "msg1", 1);
    chat(store, "bob@localhost/b", "alice@localhost/a", "msg2", 2);
    chat(store, "alice@localhost/a", "bob@localhost/b", "msg3", 3);
}

/// `from` of each message of `mam_pm.csv`, by body.
fn pm_senders(e: &Export) -> Vec<String> {
    let mut v: Vec<String> = e
        .all("mam_pm.csv")
        .iter()
        .map(|r| {
            let body = ["msg1", "msg2", "msg3"]
                .into_iter()
                .find(|b| r.get("message").contains(&format!("<body>{b}</body>")))
                .expect("known body");
            format!("{body} {}", r.get("from"))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn r12_one_to_one_archive_both_users() {
    let (env, store) = Env::new();
    r12_setup(&store);
    close(store);
    let expected = strs(&[
        "msg1 alice@localhost/a",
        "msg2 bob@localhost/b",
        "msg3 alice@localhost/a",
    ]);
    for who in ["alice@localhost", "bob@localhost"] {
        let e = env.export(who);
        assert_eq!(pm_senders(&e), expected, "{who}");
        for r in e.all("mam_pm.csv") {
            assert!(is_rfc3339_utc(r.get("timestamp")));
        }
    }
}

#[test]
fn r13_groupchat_archive_by_sender() {
    let (env, store) = Env::new();
    for u in ["alice", "bob", "kate"] {
        account(&store, &format!("{u}@localhost"));
    }
    let room = format!("room@{MUC}");
    let members = ["alice@localhost", "bob@localhost", "kate@localhost"];
    groupchat(&store, &room, "alice@localhost", "alice", &members, "A1");
    groupchat(&store, &room, "alice@localhost", "alice", &members, "A2");
    groupchat(&store, &room, "bob@localhost", "bob", &members, "B1");
    close(store);
    let a = env.export("alice@localhost");
    let bodies: Vec<bool> = a
        .all("mam_muc.csv")
        .iter()
        .map(|r| {
            assert_eq!(r.get("room"), room);
            assert_eq!(r.get("nick"), "alice");
            r.get("message").contains("<body>A1</body>")
                || r.get("message").contains("<body>A2</body>")
        })
        .collect();
    assert_eq!(bodies, [true, true]);
    let b = env.export("bob@localhost");
    assert!(b.only("mam_muc.csv").get("message").contains("B1"));
    let k = env.export("kate@localhost");
    assert!(k.rows("mam_muc.csv").is_empty());
    for e in [&a, &b, &k] {
        assert!(e.rows("mam_pm.csv").is_empty());
    }
}

#[test]
fn r14_private_message_through_room() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let bob = account(&store, "bob@localhost");
    let stanza = "<message xmlns='jabber:client' type='chat'><body>psst</body><x xmlns='http://jabber.org/protocol/muc#user'/></message>";
    let pm = |from: &str, to: &str, direction| PmMessage {
        id: None,
        timestamp: at(5),
        from: full(from),
        to: full(to),
        direction,
        origin_id: None,
        stanza: stanza.to_owned(),
    };
    store
        .mam()
        .append(
            &alice,
            &pm(
                "alice@localhost/res",
                &format!("room@{MUC}/bobnick"),
                Direction::Outgoing,
            ),
        )
        .unwrap();
    store
        .mam()
        .append(
            &bob,
            &pm(
                &format!("room@{MUC}/alicenick"),
                "bob@localhost/res",
                Direction::Incoming,
            ),
        )
        .unwrap();
    close(store);
    let a = env.export("alice@localhost");
    assert_eq!(a.only("mam_pm.csv").get("from"), "alice@localhost/res");
    let b = env.export("bob@localhost");
    assert_eq!(
        b.only("mam_pm.csv").get("from"),
        format!("room@{MUC}/alicenick")
    );
    assert!(a.rows("mam_muc.csv").is_empty());
    assert!(b.rows("mam_muc.csv").is_empty());
}

fn r19_setup(store: &Store) -> (BareJid, BareJid) {
    let alice = account(store, "alice@localhost");
    let bob = account(store, "bob@localhost");
    store
        .pubsub()
        .create_node(&node(
            "alice@localhost",
            "urn:gdpr:alice",
            &alice,
            NodeType::Pep,
            "presence",
        ))
        .unwrap();
    publish(store, "alice@localhost", "urn:gdpr:alice", "Item1", &alice);
    store
        .pubsub()
        .create_node(&node(
            "bob@localhost",
            "urn:gdpr:bob",
            &bob,
            NodeType::Pep,
            "open",
        ))
        .unwrap();
    subscribe(store, "bob@localhost", "urn:gdpr:bob", &alice);
    (alice, bob)
}

#[test]
fn r19_pep_node_item_subscription() {
    let (env, store) = Env::new();
    r19_setup(&store);
    close(store);
    let a = env.export("alice@localhost");
    let item = a.only("pubsub_items.csv");
    assert_eq!(item.get("node_id"), "urn:gdpr:alice");
    assert_eq!(item.get("item_id"), "Item1");
    assert_eq!(item.get("publisher_jid"), "alice@localhost");
    assert_eq!(item.get("payload"), entry_payload("Item1"));
    assert_eq!(item.get("service_jid"), "alice@localhost");
    let n = a.only("pubsub_nodes.csv");
    assert_eq!(n.get("node_id"), "urn:gdpr:alice");
    assert_eq!(n.get("access_model"), "presence");
    assert_eq!(n.get("type"), "pep");
    let s = a.only("pubsub_subscriptions.csv");
    assert_eq!(s.get("service_jid"), "bob@localhost");
    assert_eq!(s.get("node_id"), "urn:gdpr:bob");
    assert_eq!(s.get("subscriber_jid"), "alice@localhost");
}

#[test]
fn r20_items_on_several_nodes() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    create(&store, PS, "Node1", &alice, NodeType::Flat);
    create(&store, PS, "Node2", &alice, NodeType::Flat);
    for i in ["Item1", "Item2", "Item3"] {
        publish(&store, PS, "Node1", i, &alice);
    }
    publish(&store, PS, "Node2", "OtherItem", &alice);
    close(store);
    let a = env.export("alice@localhost");
    assert_eq!(
        a.cols("pubsub_items.csv", &["node_id", "item_id"]),
        strs(&[
            "Node1 Item1",
            "Node1 Item2",
            "Node1 Item3",
            "Node2 OtherItem"
        ])
    );
    for r in a.all("pubsub_items.csv") {
        assert_eq!(r.get("payload"), entry_payload(r.get("item_id")));
        assert_eq!(r.get("service_jid"), PS);
    }
}

#[test]
fn r21_items_attributed_by_publisher() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let bob = account(&store, "bob@localhost");
    create(&store, PS, "Node1", &alice, NodeType::Flat);
    store
        .pubsub()
        .set_affiliation(&bare(PS), "Node1", &bob, Some(Affiliation::Publisher))
        .unwrap();
    publish(&store, PS, "Node1", "Item1", &alice);
    publish(&store, PS, "Node1", "Item2", &bob);
    close(store);
    let a = env.export("alice@localhost");
    assert_eq!(a.col("pubsub_items.csv", "item_id"), ["Item1"]);
    let b = env.export("bob@localhost");
    assert_eq!(b.col("pubsub_items.csv", "item_id"), ["Item2"]);
    assert_eq!(
        b.col("pubsub_items.csv", "publisher_jid"),
        ["bob@localhost"]
    );
}

#[test]
fn r22_subscription_exported() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let bob = account(&store, "bob@localhost");
    create(&store, PS, "Node1", &alice, NodeType::Flat);
    subscribe(&store, PS, "Node1", &bob);
    close(store);
    let b = env.export("bob@localhost");
    let s = b.only("pubsub_subscriptions.csv");
    assert_eq!(s.get("service_jid"), PS);
    assert_eq!(s.get("node_id"), "Node1");
    assert_eq!(s.get("subscriber_jid"), "bob@localhost");
}

#[test]
fn r23_node_types() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let bob = account(&store, "bob@localhost");
    create(&store, PS, "Node1", &alice, NodeType::Flat);
    create(&store, PS, "Node2", &alice, NodeType::Flat);
    create(&store, "alice@localhost", "myns", &alice, NodeType::Pep);
    create(&store, PS, "Node3", &bob, NodeType::Push);
    close(store);
    let a = env.export("alice@localhost");
    assert_eq!(
        a.cols("pubsub_nodes.csv", &["node_id", "type"]),
        strs(&["Node1 flat", "Node2 flat", "myns pep"])
    );
    let b = env.export("bob@localhost");
    assert_eq!(
        b.cols("pubsub_nodes.csv", &["node_id", "type"]),
        ["Node3 push"]
    );
}

fn r24_setup(store: &Store) {
    let alice = account(store, "alice@localhost");
    let bob = account(store, "bob@localhost");
    create(store, PS, "Node1", &alice, NodeType::Flat);
    create(store, PS, "Node2", &alice, NodeType::Flat);
    create(store, PS, "Node3", &bob, NodeType::Flat);
    publish_only(store, PS, "Node1", &bob);
    subscribe(store, PS, "Node2", &bob);
    publish(store, PS, "Node1", "Item1", &alice);
    publish(store, PS, "Node2", "Item2", &alice);
    publish(store, PS, "Node1", "Item3", &bob);
}

#[test]
fn r24_mixed_nodes_items_subscriptions() {
    let (env, store) = Env::new();
    r24_setup(&store);
    close(store);
    let b = env.export("bob@localhost");
    assert_eq!(b.col("pubsub_subscriptions.csv", "node_id"), ["Node2"]);
    assert_eq!(b.col("pubsub_nodes.csv", "node_id"), ["Node3"]);
    assert_eq!(
        b.cols("pubsub_items.csv", &["node_id", "item_id"]),
        ["Node1 Item3"]
    );
    let a = env.export("alice@localhost");
    assert_eq!(
        a.col("pubsub_nodes.csv", "node_id"),
        strs(&["Node1", "Node2"])
    );
    assert_eq!(
        a.col("pubsub_items.csv", "item_id"),
        strs(&["Item1", "Item2"])
    );
}

#[test]
fn g2_non_canonical_case() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    store
        .vcard()
        .set(&alice, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
        .unwrap();
    close(store);
    let canonical = env.try_export("alice", "localhost").expect("export");
    let odd = env.try_export("ALICE", "LocalHost").expect("export");
    for (file, _) in HEADERS {
        assert_eq!(canonical.raw[*file], odd.raw[*file], "{file}");
    }
    assert_eq!(odd.only("vcard.csv").get("jid"), "alice@localhost");
}

#[test]
fn g3_no_data_is_an_error() {
    let (env, store) = Env::new();
    account(&store, "alice@localhost");
    close(store);
    let out = env.out_path();
    let r = env.run(&[
        "retrieve_personal_data",
        "nobody",
        "localhost",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("no personal data held for nobody@localhost"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
}

#[test]
fn g4_empty_path() {
    let (env, store) = Env::new();
    account(&store, "alice@localhost");
    close(store);
    let before: Vec<_> = std::fs::read_dir(env.dir.path()).unwrap().collect();
    let r = env.run(&["retrieve_personal_data", "alice", "localhost", ""]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let after: Vec<_> = std::fs::read_dir(env.dir.path()).unwrap().collect();
    assert_eq!(before.len(), after.len());
}

/// Makes a tree readable and writable by everyone (for the G6 run as `nobody`).
fn open_up(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            open_up(&e.unwrap().path());
        }
    }
}

/// G6. Root ignores directory permissions, so as root the binary runs as `nobody` through
/// setpriv (util-linux), as `cli::retrieve_into_unwritable_directory_names_the_path` does.
#[test]
fn g6_unwritable_directory() {
    use std::os::unix::fs::PermissionsExt;
    let (env, store) = Env::new();
    account(&store, "alice@localhost");
    close(store);
    let locked = env.dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let probe = env.dir.path().join("probe");
    std::fs::write(&probe, b"x").unwrap();
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o400)).unwrap();
    let root = std::fs::OpenOptions::new().write(true).open(&probe).is_ok();
    std::fs::remove_file(&probe).unwrap();
    let target = locked.join("alice.zip");
    let args = [
        "retrieve_personal_data",
        "alice",
        "localhost",
        target.to_str().unwrap(),
    ];
    let r = if root {
        open_up(env.dir.path());
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        let as_nobody = || {
            let out = std::process::Command::new("setpriv")
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_jidstore"))
                .arg("--data-dir")
                .arg(env.data())
                // The store is root's: what is tested here is the output directory.
                .arg("--allow-foreign-owner")
                .args(args)
                .env_remove("JIDSTORE_DATA_DIR")
                .output()
                .expect("setpriv (util-linux) is needed to drop root for this test");
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        };
        // Retry while the store this test just closed still holds the lock.
        let mut r = as_nobody();
        for _ in 0..100 {
            if !r.stderr.contains("is locked by another process") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            r = as_nobody();
        }
        r
    } else {
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        env.run(&args)
    };
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
    assert!(r.stderr.contains(locked.to_str().unwrap()), "{}", r.stderr);
    assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
}

#[test]
fn g7_missing_parent_directory() {
    let (env, store) = Env::new();
    account(&store, "alice@localhost");
    close(store);
    let missing = env.dir.path().join("missing/sub/alice.zip");
    let r = env.run(&[
        "retrieve_personal_data",
        "alice",
        "localhost",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("missing/sub"), "{}", r.stderr);
    assert!(!env.dir.path().join("missing").exists());
}

#[test]
fn g8_existing_directory_gets_username_zip() {
    let (env, store) = Env::new();
    account(&store, "alice@localhost");
    close(store);
    let outdir = env.dir.path().join("exports");
    std::fs::create_dir(&outdir).unwrap();
    let r = env.run(&[
        "retrieve_personal_data",
        "alice",
        "localhost",
        outdir.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let e = Export::read(&outdir.join("alice.zip"));
    assert_eq!(e.only("accounts.csv").get("jid"), "alice@localhost");
}

#[test]
fn g10_existing_file_refused_without_force() {
    let (env, store) = Env::new();
    account(&store, "alice@localhost");
    close(store);
    let out = env.out_path();
    std::fs::write(&out, b"keep me").unwrap();
    let p = out.to_str().unwrap();
    let r = env.run(&["retrieve_personal_data", "alice", "localhost", p]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    let r = env.run(&["retrieve_personal_data", "--force", "alice", "localhost", p]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    Export::read(&out);
}

// ---------------------------------------------------------------------------------------------
// Removal

#[test]
fn d1_vcard_removed() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    store
        .vcard()
        .set(&alice, "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>")
        .unwrap();
    close(store);
    assert_eq!(env.export("alice@localhost").rows("vcard.csv").len(), 1);
    let receipt = env.unregister("alice@localhost");
    assert_eq!(receipt.removed["vcard"], 1);
    assert!(env.try_export("alice", "localhost").is_none());
    let store = env.open();
    assert!(store.vcard().get(&alice).unwrap().is_none());
    assert!(!store.accounts().exists(&alice).unwrap());
}

#[test]
fn d2_roster_removed_other_rosters_stay() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let bob = account(&store, "bob@localhost");
    mutual_contacts(&store, &alice, &bob);
    close(store);
    env.unregister("alice@localhost");
    assert!(env.try_export("alice", "localhost").is_none());
    let b = env.export("bob@localhost");
    assert_eq!(b.col("roster.csv", "jid"), ["alice@localhost"]);
    let store = env.open();
    assert!(store.roster().list(&alice).unwrap().is_empty());
}

#[test]
fn d3_offline_removed() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    for i in 1..=3 {
        offline(&store, &alice, "bob@localhost/res1", &format!("m{i}"), i);
    }
    close(store);
    assert_eq!(env.export("alice@localhost").rows("offline.csv").len(), 3);
    assert_eq!(env.unregister("alice@localhost").removed["offline"], 3);
    assert!(env.try_export("alice", "localhost").is_none());
    let store = env.open();
    assert_eq!(store.offline().count(&alice).unwrap(), 0);
}

#[test]
fn d4_private_xml_removed() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let xml = "<item xmlns='alice:private_remove:ns'>Something to declare</item>";
    store
        .private()
        .set(&alice, "alice:private_remove:ns", xml)
        .unwrap();
    close(store);
    let before = env.export("alice@localhost");
    let row = before.only("private.csv");
    assert_eq!(row.get("ns"), "alice:private_remove:ns");
    assert_eq!(row.get("xml"), xml);
    env.unregister("alice@localhost");
    assert!(env.try_export("alice", "localhost").is_none());
    let store = env.open();
    assert!(store.private().list(&alice).unwrap().is_empty());
}

#[test]
fn d5_private_namespaces_removed() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    for i in 1..=3 {
        store
            .private()
            .set(&alice, &format!("ns{i}"), &format!("<q xmlns='ns{i}'/>"))
            .unwrap();
    }
    close(store);
    assert_eq!(env.unregister("alice@localhost").removed["private"], 3);
    assert!(env.try_export("alice", "localhost").is_none());
    let store = env.open();
    assert!(store.private().list(&alice).unwrap().is_empty());
}

#[test]
fn d6_other_users_private_xml_stays() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let bob = account(&store, "bob@localhost");
    store
        .private()
        .set(&alice, "a:ns", "<a xmlns='a:ns'/>")
        .unwrap();
    store
        .private()
        .set(&bob, "b:ns", "<b xmlns='b:ns'>bob's</b>")
        .unwrap();
    close(store);
    env.unregister("alice@localhost");
    let b = env.export("bob@localhost");
    let row = b.only("private.csv");
    assert_eq!(row.get("ns"), "b:ns");
    assert_eq!(row.get("xml"), "<b xmlns='b:ns'>bob's</b>");
}

#[test]
fn d7_inbox_removed_peer_inbox_stays() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    account(&store, "bob@localhost");
    chat(
        &store,
        "bob@localhost/r",
        "alice@localhost/r",
        "With spam?",
        1,
    );
    close(store);
    env.unregister("alice@localhost");
    let b = env.export("bob@localhost");
    let row = b.only("inbox.csv");
    assert_eq!(row.get("jid"), "alice@localhost");
    assert!(row.get("content").contains("With spam?"));
    assert_eq!(row.get("unread_count"), "0");
    let store = env.open();
    let entries: Vec<InboxEntry> = store.inbox().list(&alice).unwrap();
    assert!(entries.is_empty());
}

#[test]
fn d9_groupchat_inbox_removed_peer_stays() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    account(&store, "bob@localhost");
    let room = format!("room@{MUC}");
    groupchat(
        &store,
        &room,
        "bob@localhost",
        "bob",
        &["alice@localhost", "bob@localhost"],
        "Hi Room!",
    );
    close(store);
    env.unregister("alice@localhost");
    let b = env.export("bob@localhost");
    assert_eq!(b.col("inbox.csv", "jid"), [room]);
    let store = env.open();
    assert!(store.inbox().list(&alice).unwrap().is_empty());
}

#[test]
fn d10_archive_removed_peer_archive_stays() {
    let (env, store) = Env::new();
    r12_setup(&store);
    close(store);
    let receipt = env.unregister("alice@localhost");
    assert_eq!(receipt.removed["mam_pm"], 3);
    assert!(env.try_export("alice", "localhost").is_none());
    let b = env.export("bob@localhost");
    assert_eq!(
        pm_senders(&b),
        strs(&[
            "msg1 alice@localhost/a",
            "msg2 bob@localhost/b",
            "msg3 alice@localhost/a",
        ])
    );
    let store = env.open();
    assert_eq!(store.mam().count(&bare("alice@localhost")).unwrap(), 0);
}

#[test]
fn d11_pep_node_item_subscription_removed() {
    let (env, store) = Env::new();
    r19_setup(&store);
    close(store);
    env.unregister("alice@localhost");
    assert!(env.try_export("alice", "localhost").is_none());
    let store = env.open();
    let p = store.pubsub();
    assert!(
        p.get_node(&bare("alice@localhost"), "urn:gdpr:alice")
            .unwrap()
            .is_none()
    );
    assert!(
        p.items(&bare("alice@localhost"), "urn:gdpr:alice")
            .unwrap()
            .is_empty()
    );
    assert!(
        p.subscriptions(&bare("bob@localhost"), "urn:gdpr:bob")
            .unwrap()
            .is_empty()
    );
    let n = p
        .get_node(&bare("bob@localhost"), "urn:gdpr:bob")
        .unwrap()
        .expect("bob's node untouched");
    assert_eq!(n.owner, bare("bob@localhost"));
    close(store);
    let b = env.export("bob@localhost");
    assert_eq!(
        b.cols("pubsub_nodes.csv", &["node_id", "type"]),
        ["urn:gdpr:bob pep"]
    );
}

#[test]
fn d12_subscriber_removed() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let bob = account(&store, "bob@localhost");
    create(&store, PS, "Node1", &alice, NodeType::Flat);
    subscribe(&store, PS, "Node1", &bob);
    close(store);
    assert_eq!(
        env.export("bob@localhost")
            .rows("pubsub_subscriptions.csv")
            .len(),
        1
    );
    let receipt = env.unregister("bob@localhost");
    assert_eq!(receipt.removed["pubsub_subscriptions"], 1);
    assert!(env.try_export("bob", "localhost").is_none());
    let a = env.export("alice@localhost");
    assert_eq!(a.col("pubsub_nodes.csv", "node_id"), ["Node1"]);
    let store = env.open();
    assert!(
        store
            .pubsub()
            .subscriptions(&bare(PS), "Node1")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn d13_publish_only_user_removed() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let bob = account(&store, "bob@localhost");
    create(&store, PS, "Node1", &alice, NodeType::Flat);
    publish_only(&store, PS, "Node1", &bob);
    close(store);
    env.unregister("bob@localhost");
    assert!(env.try_export("bob", "localhost").is_none());
    let a = env.export("alice@localhost");
    assert_eq!(a.col("pubsub_nodes.csv", "node_id"), ["Node1"]);
    assert_eq!(
        a.cols("pubsub_affiliations.csv", &["node_id", "affiliation"]),
        ["Node1 owner"]
    );
}

#[test]
fn d14_flat_node_survives_owner() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    create(&store, PS, "Node1", &alice, NodeType::Flat);
    close(store);
    let receipt = env.unregister("alice@localhost");
    assert_eq!(receipt.removed["pubsub_nodes"], 0);
    assert_eq!(receipt.kept.get("pubsub_nodes"), Some(&Some(1)));
    let a = env.export("alice@localhost");
    let n = a.only("pubsub_nodes.csv");
    assert_eq!(n.get("node_id"), "Node1");
    assert_eq!(n.get("type"), "flat");
    assert!(a.rows("accounts.csv").is_empty());
    let store = env.open();
    let node = store
        .pubsub()
        .get_node(&bare(PS), "Node1")
        .unwrap()
        .unwrap();
    assert_eq!(node.owner, alice);
}

#[test]
fn d15_push_node_removed_with_items() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let bob = account(&store, "bob@localhost");
    create(&store, PS, "push1", &alice, NodeType::Push);
    publish(&store, PS, "push1", "notification", &bob);
    close(store);
    let before = env.export("alice@localhost");
    assert_eq!(before.col("pubsub_items.csv", "item_id"), ["notification"]);
    let receipt = env.unregister("alice@localhost");
    assert_eq!(receipt.removed["pubsub_nodes"], 1);
    assert_eq!(receipt.removed["pubsub_items"], 1);
    assert!(env.try_export("alice", "localhost").is_none());
    let b = env.export("bob@localhost");
    assert!(b.rows("pubsub_items.csv").is_empty());
    let store = env.open();
    assert!(
        store
            .pubsub()
            .get_node(&bare(PS), "push1")
            .unwrap()
            .is_none()
    );
    assert!(store.pubsub().items(&bare(PS), "push1").unwrap().is_empty());
}

#[test]
fn d16_pep_node_removed() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    create(&store, "alice@localhost", "myns", &alice, NodeType::Pep);
    close(store);
    env.unregister("alice@localhost");
    assert!(env.try_export("alice", "localhost").is_none());
    let store = env.open();
    assert!(store.pubsub().get_node(&alice, "myns").unwrap().is_none());
}

#[test]
fn d17_mixed_pubsub_removal() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let bob = account(&store, "bob@localhost");
    create(&store, PS, "Node1", &alice, NodeType::Flat);
    create(&store, PS, "Node2", &alice, NodeType::Flat);
    create(&store, "alice@localhost", "myns", &alice, NodeType::Pep);
    create(&store, PS, "Node3", &bob, NodeType::Flat);
    create(&store, PS, "Node4", &bob, NodeType::Push);
    publish_only(&store, PS, "Node1", &bob);
    subscribe(&store, PS, "Node2", &bob);
    subscribe(&store, PS, "Node3", &alice);
    publish(&store, PS, "Node1", "itemA1", &alice);
    publish(&store, PS, "Node2", "itemA2", &alice);
    publish(&store, PS, "Node1", "itemB1", &bob);
    publish(&store, PS, "Node3", "itemB3", &bob);
    close(store);
    let bob_before = env.export("bob@localhost");
    env.unregister("alice@localhost");
    let a = env.export("alice@localhost");
    assert_eq!(
        a.cols("pubsub_items.csv", &["node_id", "item_id"]),
        strs(&["Node1 itemA1", "Node2 itemA2"])
    );
    assert_eq!(
        a.col("pubsub_nodes.csv", "node_id"),
        strs(&["Node1", "Node2"])
    );
    assert!(a.rows("pubsub_subscriptions.csv").is_empty());
    let b = env.export("bob@localhost");
    assert_eq!(
        b.cols("pubsub_items.csv", &["node_id", "item_id"]),
        strs(&["Node1 itemB1", "Node3 itemB3"])
    );
    assert_eq!(
        b.col("pubsub_nodes.csv", "node_id"),
        strs(&["Node3", "Node4"])
    );
    assert_eq!(b.col("pubsub_subscriptions.csv", "node_id"), ["Node2"]);
    for (file, _) in HEADERS {
        if *file != "accounts.csv" {
            assert_eq!(bob_before.raw[*file], b.raw[*file], "bob's {file} changed");
        }
    }
}

#[test]
fn a1_unregister_unknown_user() {
    let (env, store) = Env::new();
    account(&store, "alice@localhost");
    close(store);
    let r = env.run(&["unregister", "nobody", "localhost"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not exist"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1);
    env.export("alice@localhost");
}

#[test]
fn a2_reregistered_name_starts_empty() {
    // The account is created by the binary, as an operator would.
    let env = Env::empty();
    let r = env.run(&["register", "--user", "alice", "localhost", "pw"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let store = env.open();
    let alice = bare("alice@localhost");
    account(&store, "bob@localhost");
    let bob = bare("bob@localhost");
    mutual_contacts(&store, &alice, &bob);
    store
        .vcard()
        .set(&alice, "<vCard xmlns='vcard-temp'><FN>Old</FN></vCard>")
        .unwrap();
    store
        .private()
        .set(&alice, "old:ns", "<q xmlns='old:ns'/>")
        .unwrap();
    offline(&store, &alice, "bob@localhost/r", "old offline", 1);
    chat(
        &store,
        "bob@localhost/r",
        "alice@localhost/r",
        "old chat",
        2,
    );
    create(&store, "alice@localhost", "myns", &alice, NodeType::Pep);
    publish(&store, "alice@localhost", "myns", "old-item", &alice);
    create(&store, "bob@localhost", "bobns", &bob, NodeType::Pep);
    subscribe(&store, "bob@localhost", "bobns", &alice);
    store.last().set(&alice, 10, "old status").unwrap();
    generic(&store, &alice, "old");
    store
        .blocklist()
        .block(&alice, &[full("spam@example.com")])
        .unwrap();
    store
        .privacy()
        .set_list(
            &alice,
            "old-list",
            &[PrivacyItem {
                order: 1,
                kind: None,
                value: None,
                action: PrivacyAction::Deny,
                message: true,
                iq: false,
                presence_in: false,
                presence_out: false,
            }],
        )
        .unwrap();
    close(store);
    let before = env.export("alice@localhost");
    // Every class but group chat (which erasure keeps) holds something of hers.
    assert_eq!(
        before.nonempty_except(&[]),
        HEADERS
            .iter()
            .map(|(f, _)| *f)
            .filter(|f| *f != "mam_muc.csv")
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
        "every class set up"
    );
    env.unregister("alice@localhost");
    // Beyond MongooseIM: the erasure ledger holds the name for 30 days (issue 17); the
    // operator who means it forces the registration.
    let r = env.run(&["register", "--user", "alice", "localhost", "pw2"]);
    assert_eq!(r.code, 1, "an erased name registered again at once");
    let r = env.run(&["register", "--force", "--user", "alice", "localhost", "pw2"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = env.export("alice@localhost");
    assert_eq!(after.only("accounts.csv").get("jid"), "alice@localhost");
    assert_eq!(
        after.nonempty_except(&["accounts.csv"]),
        Vec::<&str>::new(),
        "old data reappeared"
    );
    let store = env.open();
    assert_eq!(store.mam().count(&alice).unwrap(), 0);
}

#[test]
fn a3_anonymised_register_is_random_and_timeless() {
    let env = Env::empty();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let mut names = Vec::new();
    for _ in 0..2 {
        let r = env.run(&["register", "localhost", "pw"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let line = r.stdout.trim();
        let jid = line
            .strip_prefix("User ")
            .and_then(|l| l.strip_suffix(" successfully registered"))
            .unwrap_or_else(|| panic!("{line}"));
        let (user, domain) = jid.split_once('@').unwrap();
        assert_eq!(domain, "localhost");
        names.push(user.to_owned());
    }
    assert_ne!(names[0], names[1]);
    let secs = now.as_secs();
    let time_marks = [
        format!("{}", secs / 1_000_000),
        format!("{}", secs % 1_000_000),
        format!("{secs}"),
        format!("{secs:x}"),
    ];
    for n in &names {
        // A UUIDv4 in simple form: 32 hex digits, version 4, RFC 4122 variant.
        assert_eq!(n.len(), 32, "{n}");
        assert!(n.bytes().all(|b| b.is_ascii_hexdigit()), "{n}");
        assert_eq!(&n[12..13], "4", "{n}");
        assert!("89ab".contains(&n[16..17]), "{n}");
        assert!(!n.contains('-'));
        for m in &time_marks {
            assert!(m.len() < 4 || !n.contains(m.as_str()), "{n} holds {m}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Beyond MongooseIM

/// A key-value record and an archive item in the generic class (what a Prosody driver writes).
fn generic(store: &Store, owner: &BareJid, text: &str) {
    let g = store.generic();
    g.set(owner, "pep", Some(&format!("{{ {text} }}"))).unwrap();
    g.append(
        owner,
        "archive",
        None,
        Timestamp::from_secs(1),
        Some("bob@localhost"),
        &format!("<message><body>{text}</body></message>"),
    )
    .unwrap();
}

/// The sample deployment `jidstore demo` builds (`jidstore::__internal::sample`): alice
/// with data in every class, and bob, kate, remote carol and dave, a room and pubsub nodes
/// around her.
fn everything(store: &Store) -> Sample {
    sample::populate(store, at(0)).unwrap()
}

#[test]
fn beyond_receipt_counts_equal_export_rows() {
    let (env, store) = Env::new();
    everything(&store);
    close(store);
    let before = env.export("alice@localhost");
    assert_eq!(
        before.nonempty_except(&[]).len(),
        HEADERS.len(),
        "every table has rows"
    );
    let receipt = env.unregister("alice@localhost");
    let after = env.export("alice@localhost");
    for (file, _) in HEADERS {
        let stem = file.strip_suffix(".csv").unwrap();
        let was = before.rows(file).len() as u64;
        let removed = receipt.removed[stem];
        let still = after.rows(file).len() as u64;
        match receipt.kept.get(stem) {
            None => {
                assert_eq!(removed, was, "{stem}: removed vs exported before");
                assert_eq!(still, 0, "{stem}: rows left though none kept");
            }
            Some(kept) => {
                let kept = kept.unwrap_or_else(|| panic!("{stem}: kept without a count"));
                assert_eq!(removed + kept, was, "{stem}: removed + kept vs before");
                assert_eq!(still, kept, "{stem}: kept vs exported after");
            }
        }
    }
    // What is kept here: group chat, alice's flat node with its items, her item on bob's
    // node, and her owner affiliation of the flat node.
    let kept: BTreeSet<&str> = receipt.kept.keys().map(String::as_str).collect();
    assert_eq!(
        kept,
        BTreeSet::from([
            "mam_muc",
            "pubsub_nodes",
            "pubsub_items",
            "pubsub_affiliations"
        ])
    );
}

#[test]
fn beyond_groupchat_messages_kept_and_named() {
    let (env, store) = Env::new();
    let sample = everything(&store);
    close(store);
    let before = env.export("alice@localhost");
    assert_eq!(before.rows("mam_muc.csv").len(), 2);
    let r = env.run(&["unregister", "alice", "localhost"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let receipt = ReceiptText::parse(&r.stdout);
    assert_eq!(receipt.kept.get("mam_muc"), Some(&Some(2)));
    assert_eq!(receipt.removed["mam_muc"], 0);
    let kept_line = r
        .stdout
        .lines()
        .skip_while(|l| *l != "Kept:")
        .find(|l| l.split_whitespace().next() == Some("mam_muc"))
        .expect("mam_muc named under Kept:");
    assert!(kept_line.contains("group-chat"), "{kept_line}");
    let after = env.export("alice@localhost");
    assert_eq!(before.raw["mam_muc.csv"], after.raw["mam_muc.csv"]);
    let store = env.open();
    assert_eq!(
        store
            .muc()
            .by_sender(&bare("alice@localhost"))
            .unwrap()
            .len(),
        2
    );
    // The room keeps every message: alice's 2, bob's and dave's.
    assert_eq!(store.muc().count(&sample.room).unwrap(), 4);
}

/// Text with everything a CSV writer or reader can get wrong.
const NASTY: &str =
    " lead, \"quoted\", comma\r\nCRLF\nLF\rCR Zo\u{eb} \u{65e5}\u{672c} \u{1f600} trail ";

/// The same, as XML character data and attribute values (escaped where XML needs it).
const NASTY_XML_TEXT: &str = " lead, &quot;quoted&quot;, comma\r\nCRLF\nLF\rCR Zo\u{eb} \u{65e5}\u{672c} \u{1f600} &amp; &lt;b&gt; &#x1F600; &apos; trail ";

fn nasty_element(name: &str, ns: &str) -> String {
    format!(
        "<{name} xmlns='{ns}' a=\"x &amp; y &lt; &quot;z&quot;\" b='it&apos;s, \"q\"'><t>{NASTY_XML_TEXT}</t><e c='Zo\u{eb} \u{65e5}\u{672c} \u{1f600}'/></{name}>"
    )
}

#[test]
#[expect(
    clippy::too_many_lines,
    reason = "one store per class, then one assertion per stored cell: splitting hides the pairing"
)]
fn csv_round_trip_is_exact() {
    let (env, store) = Env::new();
    let alice = account(&store, "alice@localhost");
    let bob = account(&store, "bob@localhost");
    let groups = vec![NASTY.to_owned(), "plain".to_owned()];
    store
        .roster()
        .set(
            &alice,
            &RosterItem {
                jid: bob.clone(),
                name: Some(NASTY.to_owned()),
                subscription: Subscription::Both,
                ask: Ask::None,
                groups: groups.clone(),
                askmessage: Some(NASTY.to_owned()),
            },
        )
        .unwrap();
    let vcard = nasty_element("vCard", "vcard-temp");
    store.vcard().set(&alice, &vcard).unwrap();
    let private = nasty_element("storage", "storage:bookmarks");
    let private_ns = "storage:bookmarks, \"odd\" Zo\u{eb} \u{1f600}";
    store.private().set(&alice, private_ns, &private).unwrap();
    let offline_stanza = nasty_element("message", "jabber:client");
    store
        .offline()
        .store(
            &alice,
            &OfflineMessage {
                from: full("bob@localhost/Zo\u{eb} \u{65e5}\u{672c}, \"r\""),
                to: full("alice@localhost"),
                timestamp: Timestamp::from_micros(1_700_000_000_123_456),
                expires: Some(Timestamp::from_micros(1_800_000_000_000_001)),
                stanza: offline_stanza.clone(),
            },
        )
        .unwrap();
    let inbox_content = nasty_element("message", "jabber:client");
    store
        .inbox()
        .on_message(&alice, &bob, &inbox_content, Some("id, \"1\""), at(1), true)
        .unwrap();
    let mam_stanza = format!("  {}  ", nasty_element("message", "jabber:client"));
    store
        .mam()
        .append(
            &alice,
            &PmMessage {
                id: None,
                timestamp: at(2),
                from: full("bob@localhost/Zo\u{eb} \u{65e5}\u{672c} r"),
                to: full("alice@localhost/r"),
                direction: Direction::Incoming,
                origin_id: None,
                stanza: mam_stanza.clone(),
            },
        )
        .unwrap();
    let room = bare(&format!("room@{MUC}"));
    let muc_stanza = nasty_element("message", "jabber:client");
    store
        .muc()
        .append(
            &room,
            &MucMessage {
                id: None,
                timestamp: at(3),
                sender: alice.clone(),
                nick: NASTY.to_owned(),
                stanza: muc_stanza.clone(),
            },
        )
        .unwrap();
    let payload = nasty_element("entry", "http://www.w3.org/2005/Atom");
    create(&store, "alice@localhost", "urn:x", &alice, NodeType::Pep);
    store
        .pubsub()
        .publish(
            &alice,
            "urn:x",
            "item, \"1\" \u{1f600}",
            &alice,
            &payload,
            at(4),
        )
        .unwrap();
    store.last().set(&alice, 7, NASTY).unwrap();
    store
        .privacy()
        .set_list(
            &alice,
            NASTY,
            &[PrivacyItem {
                order: 3,
                kind: Some(PrivacyType::Group),
                value: Some(NASTY.to_owned()),
                action: PrivacyAction::Allow,
                message: false,
                iq: true,
                presence_in: false,
                presence_out: false,
            }],
        )
        .unwrap();
    close(store);

    let export = env.export("alice@localhost");
    let roster = export.only("roster.csv");
    assert_eq!(roster.get("name"), NASTY);
    assert_eq!(roster.get("groups"), groups.join(", "));
    assert_eq!(roster.get("askmessage"), NASTY);
    assert_eq!(export.only("vcard.csv").get("vcard"), vcard);
    let private_row = export.only("private.csv");
    assert_eq!(private_row.get("ns"), private_ns);
    assert_eq!(private_row.get("xml"), private);
    let off = export.only("offline.csv");
    assert_eq!(off.get("packet"), offline_stanza);
    assert_eq!(
        off.get("from"),
        "bob@localhost/Zo\u{eb} \u{65e5}\u{672c}, \"r\""
    );
    assert_eq!(off.get("timestamp"), "2023-11-14T22:13:20.123456Z");
    assert_eq!(off.get("expires"), "2027-01-15T08:00:00.000001Z");
    assert_eq!(export.only("inbox.csv").get("content"), inbox_content);
    let pm = export.only("mam_pm.csv");
    assert_eq!(pm.get("message"), mam_stanza);
    assert_eq!(pm.get("from"), "bob@localhost/Zo\u{eb} \u{65e5}\u{672c} r");
    let mm = export.only("mam_muc.csv");
    assert_eq!(mm.get("message"), muc_stanza);
    assert_eq!(mm.get("nick"), NASTY);
    let item = export.only("pubsub_items.csv");
    assert_eq!(item.get("payload"), payload);
    assert_eq!(item.get("item_id"), "item, \"1\" \u{1f600}");
    assert_eq!(export.only("last.csv").get("status"), NASTY);
    let pr = export.only("privacy.csv");
    assert_eq!(pr.get("list"), NASTY);
    assert_eq!(pr.get("value"), NASTY);
    assert_eq!(pr.get("type"), "group");
    assert_eq!(pr.get("match"), "iq");
    // Line ends of the files themselves are `\n`; CRs appear only inside quoted cells.
    for (file, _) in HEADERS {
        let text = &export.raw[*file];
        assert!(text.ends_with('\n'), "{file}");
        let (header, _) = csv_rows(text);
        assert!(
            text.starts_with(&format!("{}\n", header.join(","))),
            "{file}"
        );
    }
}

#[test]
fn export_is_deterministic() {
    let (env, store) = Env::new();
    everything(&store);
    close(store);
    let a = env.export("alice@localhost");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let b = env.export("alice@localhost");
    assert_eq!(
        a.raw.keys().collect::<Vec<_>>(),
        b.raw.keys().collect::<Vec<_>>()
    );
    for (name, text) in &a.raw {
        if name != "manifest.json" && name != "index.html" {
            assert_eq!(text, &b.raw[name], "{name} differs between exports");
        }
    }
    // The page differs in its export time only.
    let page_b = b.raw["index.html"].replace(&b.exported_at(), &a.exported_at());
    assert_eq!(
        a.raw["index.html"], page_b,
        "index.html differs beyond the export time"
    );
    let ma: serde_json::Value = serde_json::from_str(&a.raw["manifest.json"]).unwrap();
    let mut mb: serde_json::Value = serde_json::from_str(&b.raw["manifest.json"]).unwrap();
    assert_ne!(ma["exported_at"], mb["exported_at"]);
    mb["exported_at"] = ma["exported_at"].clone();
    assert_eq!(ma, mb, "manifests differ beyond exported_at");
    for (export, manifest) in [(&a, &ma), (&b, &mb)] {
        assert_eq!(manifest["subject"], "alice@localhost");
        let files = manifest["files"].as_array().unwrap();
        let listed: BTreeSet<&str> = files.iter().map(|f| f["name"].as_str().unwrap()).collect();
        let expected: BTreeSet<&str> = HEADERS.iter().map(|(f, _)| *f).collect();
        assert_eq!(listed, expected);
        for f in files {
            let name = f["name"].as_str().unwrap();
            let text = &export.raw[name];
            assert_eq!(
                f["rows"].as_u64().unwrap(),
                export.rows(name).len() as u64,
                "{name} rows"
            );
            assert_eq!(
                f["crc32"].as_u64().unwrap(),
                u64::from(crc32fast::hash(text.as_bytes())),
                "{name} crc32"
            );
            assert_eq!(
                f["bytes"].as_u64().unwrap(),
                text.len() as u64,
                "{name} bytes"
            );
        }
    }
}

/// The XML check used on every XML cell above rejects what it must.
#[test]
fn xml_cell_check_rejects_malformed_xml() {
    assert_well_formed(&nasty_element("vCard", "vcard-temp"));
    for bad in [
        "<a><b></a>",
        "<a>",
        "<a/><b/>",
        "text<a/>",
        "<a>&bogus;</a>",
        "<a x='&bogus;'/>",
        "<a x='1' x='2'/>",
        "<a>&#0;</a>",
    ] {
        let caught = std::panic::catch_unwind(|| assert_well_formed(bad));
        assert!(caught.is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The same cases with the store on PostgreSQL.

/// Runs `case` with [`Env`] on a fresh database of the test cluster (`tests/pg`); skipped
/// with `JIDSTORE_SKIP_PG=1`.
#[cfg(feature = "postgres")]
fn on_postgres(case: fn()) {
    let Some(url) = crate::pg::database() else {
        return;
    };
    DATABASE.with(|d| *d.borrow_mut() = Some(url.clone()));
    case();
    // The case did use the database: the store's tables are there.
    let mut c = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let tables: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE starts_with(tablename, 'jidstore_')",
            &[],
        )
        .expect("list the tables")
        .get(0);
    assert!(tables > 10, "the case ran without its database");
}

/// Every case above but G6 and the XML checker's own test (see the module docs), on
/// PostgreSQL: `cargo test --test integration acceptance::on_postgres`.
#[cfg(feature = "postgres")]
mod on_postgres {
    macro_rules! on_postgres {
        ($($case:ident),* $(,)?) => {
            $(
                #[test]
                fn $case() {
                    super::on_postgres(super::$case);
                }
            )*
        };
    }

    on_postgres!(
        r1_vcard_exported,
        r2_roster_exported,
        r3_offline_messages_exported,
        r4_inbox_exported_for_both,
        r5_inbox_keeps_last_message_and_counts_unread,
        r6_groupchat_inbox,
        r9_private_xml_exported,
        r10_private_xml_only_own,
        r11_private_xml_many_namespaces,
        r12_one_to_one_archive_both_users,
        r13_groupchat_archive_by_sender,
        r14_private_message_through_room,
        r19_pep_node_item_subscription,
        r20_items_on_several_nodes,
        r21_items_attributed_by_publisher,
        r22_subscription_exported,
        r23_node_types,
        r24_mixed_nodes_items_subscriptions,
        g2_non_canonical_case,
        g3_no_data_is_an_error,
        g4_empty_path,
        g7_missing_parent_directory,
        g8_existing_directory_gets_username_zip,
        g10_existing_file_refused_without_force,
        d1_vcard_removed,
        d2_roster_removed_other_rosters_stay,
        d3_offline_removed,
        d4_private_xml_removed,
        d5_private_namespaces_removed,
        d6_other_users_private_xml_stays,
        d7_inbox_removed_peer_inbox_stays,
        d9_groupchat_inbox_removed_peer_stays,
        d10_archive_removed_peer_archive_stays,
        d11_pep_node_item_subscription_removed,
        d12_subscriber_removed,
        d13_publish_only_user_removed,
        d14_flat_node_survives_owner,
        d15_push_node_removed_with_items,
        d16_pep_node_removed,
        d17_mixed_pubsub_removal,
        a1_unregister_unknown_user,
        a2_reregistered_name_starts_empty,
        a3_anonymised_register_is_random_and_timeless,
        beyond_receipt_counts_equal_export_rows,
        beyond_groupchat_messages_kept_and_named,
        csv_round_trip_is_exact,
        export_is_deterministic,
    );
}
