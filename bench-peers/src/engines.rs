//! The five engines behind one interface. Every engine gets the same messages, the same
//! chunks, the same page shapes, the same export pipeline (rows CSV-encoded on a reader
//! thread, deflated at level 1 on the caller's) and the same two-phase erasure (a durable
//! commit record, then a sweep in 1,000-row steps and a sync).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::time::Duration;

use jidstore::ext::mam::{Direction, PageFrom, PmMessage, Query};
use jidstore::gdpr::{self, ExportOptions};
use jidstore::{BareJid, Config, Jid, Store, Timestamp};
use rocksdb::{
    BlockBasedOptions, ColumnFamilyDescriptor, DB, Options, ReadOptions, SliceTransform,
    WriteBatch, WriteOptions,
};
use rusqlite::{Connection, TransactionBehavior, params};

use crate::data::{Gen, USERS, user_bare, user_name};

const PAGE: usize = crate::PAGE;
const SYNC_EVERY: Duration = Duration::from_millis(500);
/// CSV bytes per chunk handed from the reader thread to the deflater (as jidstore's export).
const CHUNK: usize = 256 * 1024;

/// A page request (XEP-0313 forms).
pub enum Q {
    First,
    Last,
    After(String),
    With(String),
    Range(i64, i64),
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ejabberd,
    Prosody,
    Tuned,
}

pub enum Factory {
    Jid(Store),
    Sql(Kind, PathBuf),
    Rocks(DB),
}

/// One connection / handle; one per thread.
pub trait Db {
    fn bulk(&mut self, user: u32, msgs: &[Gen]);
    fn append(&mut self, m: &Gen);
    /// Makes everything written so far durable.
    fn sync(&mut self);
    fn page(&mut self, user: u32, q: &Q) -> usize;
    fn id_at(&mut self, user: u32, ts: i64) -> String;
    /// The commit point: durable when it returns; the subject is queued for the sweep.
    fn erase_commit(&mut self, user: u32);
    /// Completes every queued erasure; returns rows removed (RocksDB: `u64::MAX`, as
    /// `DeleteRange` does not count).
    fn erase_complete(&mut self, user: u32) -> u64;
}

impl Factory {
    pub fn open(engine: &str, dir: &Path, create: bool) -> Factory {
        let path = dir.join(engine);
        match engine {
            "jidstore" => Factory::Jid(
                Config::new(&path)
                    .scram_iterations(1)
                    .open()
                    .expect("open jidstore"),
            ),
            "ejabberd" | "prosody" | "sqlite" => {
                let kind = match engine {
                    "ejabberd" => Kind::Ejabberd,
                    "prosody" => Kind::Prosody,
                    _ => Kind::Tuned,
                };
                std::fs::create_dir_all(&path).expect("mkdir");
                let f = Factory::Sql(kind, path.join("archive.sqlite"));
                drop(f.sql_conn(create));
                f
            }
            "rocksdb" => Factory::Rocks(rocks_open(&path)),
            other => panic!("unknown engine {other}"),
        }
    }

    fn sql_conn(&self, create: bool) -> SqlDb {
        let Factory::Sql(kind, path) = self else {
            unreachable!()
        };
        let c = Connection::open(path).expect("sqlite open");
        c.busy_timeout(Duration::from_secs(30)).expect("busy");
        match kind {
            Kind::Ejabberd => {
                // ejabberd sets no pragmas of its own; WAL with synchronous=NORMAL is ours,
                // so that every SQLite baseline has the same durability.
                c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
                    .expect("pragma");
                if create {
                    c.execute_batch(EJABBERD_SCHEMA).expect("schema");
                }
            }
            Kind::Prosody => {
                if create {
                    c.execute_batch(PROSODY_SCHEMA).expect("schema");
                }
                // mod_storage_sql, sqlite_tune = "normal", in its order (after the tables).
                c.execute_batch(
                    "PRAGMA journal_mode=WAL; PRAGMA auto_vacuum=FULL; PRAGMA synchronous=NORMAL;",
                )
                .expect("pragma");
            }
            Kind::Tuned => {
                if create {
                    c.execute_batch("PRAGMA page_size=8192;").expect("pragma");
                }
                c.execute_batch(
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536; \
                     PRAGMA mmap_size=268435456; PRAGMA temp_store=MEMORY;",
                )
                .expect("pragma");
                if create {
                    c.execute_batch(TUNED_SCHEMA).expect("schema");
                }
            }
        }
        c.execute_batch("CREATE TABLE IF NOT EXISTS erasure_queue (username TEXT PRIMARY KEY);")
            .expect("queue");
        SqlDb { kind: *kind, c }
    }

    /// Accounts (jidstore), user ids (tuned SQLite) and archive ids (RocksDB) for every user;
    /// outside the timers.
    pub fn prepare_users(&self) {
        match self {
            Factory::Jid(s) => {
                for u in 0..USERS {
                    let j = BareJid::parse(&user_bare(u)).expect("jid");
                    s.accounts().create(&j, "pw").expect("account");
                }
                s.flush().expect("flush");
            }
            Factory::Sql(Kind::Tuned, _) => {
                let mut c = self.sql_conn(false);
                let tx = c.c.transaction().expect("tx");
                for u in 0..USERS {
                    tx.execute(
                        "INSERT INTO users (id, name) VALUES (?1, ?2)",
                        params![u, user_bare(u)],
                    )
                    .expect("user");
                }
                tx.commit().expect("commit");
            }
            Factory::Sql(..) => {}
            Factory::Rocks(db) => {
                let meta = db.cf_handle("meta").expect("cf");
                let mut b = WriteBatch::default();
                for u in 0..USERS {
                    b.put_cf(meta, acct_key(u), (u64::from(u) + 1).to_be_bytes());
                }
                let mut wo = WriteOptions::default();
                wo.set_sync(true);
                db.write_opt(b, &wo).expect("write");
            }
        }
    }

    pub fn connect(&self) -> Box<dyn Db + '_> {
        match self {
            Factory::Jid(s) => Box::new(JidDb { s: s.clone() }),
            Factory::Sql(..) => Box::new(self.sql_conn(false)),
            Factory::Rocks(db) => Box::new(RocksDb { db }),
        }
    }

    /// The shared durability window: every 500 ms until `stop`. sled flushes on its own
    /// (`flush_every_ms` 500, jidstore's default); SQLite runs a PASSIVE checkpoint (which
    /// syncs the WAL); RocksDB syncs its WAL (`FlushWAL(sync)`).
    pub fn background_sync(&self, stop: &AtomicBool) {
        let tick = |f: &mut dyn FnMut()| {
            // Short sleeps so a phase does not wait up to 500 ms for the syncer to end.
            let mut k = 0u32;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(SYNC_EVERY / 10);
                k += 1;
                if k % 10 == 0 {
                    f();
                }
            }
        };
        match self {
            Factory::Jid(_) => {}
            Factory::Sql(..) => {
                let s = self.sql_conn(false);
                tick(&mut || s.checkpoint("PASSIVE"));
            }
            Factory::Rocks(db) => tick(&mut || db.flush_wal(true).expect("flush wal")),
        }
    }

    /// Exports `user`'s archive to a zip at `path`; returns the rows written.
    pub fn export(&self, user: u32, path: &Path) -> u64 {
        match self {
            Factory::Jid(s) => {
                let j = BareJid::parse(&user_bare(user)).expect("jid");
                // CSVs only, the same output every peer writes (index.html is extra work).
                let csv_only = ExportOptions::default().page(false);
                let (_, summary) = gdpr::retrieve_to_path(s, &j, path, &csv_only).expect("export");
                summary.files.iter().map(|f| f.rows).max().unwrap_or(0)
            }
            Factory::Sql(..) => pipeline(path, |w| {
                let c = self.sql_conn(false);
                c.export_rows(user, w)
            }),
            Factory::Rocks(db) => pipeline(path, |w| RocksDb { db }.export_rows(user, w)),
        }
    }
}

// ------------------------------------------------------------------ export pipeline

struct ChanWriter {
    buf: Vec<u8>,
    tx: SyncSender<Vec<u8>>,
}

impl Write for ChanWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK + 4096));
            self.tx.send(full).map_err(std::io::Error::other)?;
        }
        Ok(())
    }
}

/// Rows from `produce` (on a reader thread, CSV-encoded) into `mam_pm.csv` of a zip at
/// `path`, deflated at level 1 on this thread; as jidstore's own export.
fn pipeline(path: &Path, produce: impl FnOnce(&mut csv::Writer<ChanWriter>) -> u64 + Send) -> u64 {
    let (tx, rx) = sync_channel::<Vec<u8>>(4);
    let file = std::fs::File::create(path).expect("zip file");
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(true);
    zip.start_file("mam_pm.csv", opts).expect("start");
    let rows = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut w = csv::Writer::from_writer(ChanWriter {
                buf: Vec::with_capacity(CHUNK + 4096),
                tx,
            });
            w.write_record(["id", "from", "message", "timestamp", "to", "direction"])
                .expect("csv");
            let n = produce(&mut w);
            w.flush().expect("flush");
            n
        });
        for chunk in rx {
            zip.write_all(&chunk).expect("deflate");
        }
        reader.join().expect("reader")
    });
    let mut f = zip.finish().expect("finish").into_inner().expect("buf");
    f.flush().expect("flush");
    f.sync_all().expect("sync");
    rows
}

fn csv_row(
    w: &mut csv::Writer<ChanWriter>,
    id: i64,
    from: &str,
    xml: &str,
    ts: i64,
    to: &str,
    incoming: bool,
) {
    let id = format!("{id:032x}");
    let t = Timestamp::from_micros(ts).to_rfc3339();
    let dir = if incoming { "incoming" } else { "outgoing" };
    w.write_record([id.as_str(), from, xml, t.as_str(), to, dir])
        .expect("csv");
}

/// `from='...'` / `to='...'` of a stored stanza (ejabberd and Prosody keep no columns for
/// them).
fn attr<'a>(xml: &'a str, name: &str) -> &'a str {
    let head = xml.split('>').next().unwrap_or("");
    let pat = format!(" {name}='");
    head.find(&pat)
        .and_then(|i| {
            let rest = &head[i + pat.len()..];
            rest.find('\'').map(|j| &rest[..j])
        })
        .unwrap_or("")
}

// ------------------------------------------------------------------ jidstore

struct JidDb {
    s: Store,
}

fn pm(m: &Gen) -> (BareJid, PmMessage) {
    let me = Jid::parse(&format!("{}/desktop", user_bare(m.user))).expect("jid");
    let peer = Jid::parse(&m.peer_full).expect("jid");
    let (from, to) = if m.incoming { (peer, me) } else { (me, peer) };
    (
        BareJid::parse(&user_bare(m.user)).expect("jid"),
        PmMessage {
            id: None,
            timestamp: Timestamp::from_micros(m.ts),
            from,
            to,
            direction: if m.incoming {
                Direction::Incoming
            } else {
                Direction::Outgoing
            },
            origin_id: Some(m.sid.clone()),
            stanza: m.stanza.clone(),
        },
    )
}

impl Db for JidDb {
    fn bulk(&mut self, user: u32, msgs: &[Gen]) {
        let j = BareJid::parse(&user_bare(user)).expect("jid");
        let n = self
            .s
            .mam()
            .append_bulk(&j, msgs.iter().map(|m| pm(m).1))
            .expect("bulk");
        assert_eq!(n, msgs.len() as u64);
    }
    fn append(&mut self, m: &Gen) {
        let (j, p) = pm(m);
        self.s.mam().append(&j, &p).expect("append");
    }
    fn sync(&mut self) {
        self.s.flush().expect("flush");
    }
    fn page(&mut self, user: u32, q: &Q) -> usize {
        let j = BareJid::parse(&user_bare(user)).expect("jid");
        let base = Query {
            max: Some(PAGE),
            ..Query::default()
        };
        let query = match q {
            Q::First => base,
            Q::Last => Query {
                page: PageFrom::Before(None),
                ..base
            },
            Q::After(id) => Query {
                page: PageFrom::After(id.clone()),
                ..base
            },
            Q::With(p) => Query {
                with: Some(Jid::parse(p).expect("jid")),
                page: PageFrom::Before(None),
                ..base
            },
            Q::Range(a, b) => Query {
                start: Some(Timestamp::from_micros(*a)),
                end: Some(Timestamp::from_micros(*b)),
                ..base
            },
        };
        // An erased user has no account: no rows.
        self.s
            .mam()
            .query(&j, &query)
            .map_or(0, |p| p.messages.len())
    }
    fn id_at(&mut self, user: u32, ts: i64) -> String {
        let j = BareJid::parse(&user_bare(user)).expect("jid");
        let q = Query {
            start: Some(Timestamp::from_micros(ts)),
            max: Some(1),
            ..Query::default()
        };
        self.s
            .mam()
            .query(&j, &q)
            .expect("query")
            .first
            .expect("a message")
    }
    fn erase_commit(&mut self, user: u32) {
        let j = BareJid::parse(&user_bare(user)).expect("jid");
        gdpr::commit(&self.s, &j).expect("commit");
    }
    fn erase_complete(&mut self, _user: u32) -> u64 {
        gdpr::finish_sweeps(&self.s).expect("sweep")
    }
}

// ------------------------------------------------------------------ SQLite

/// ejabberd's `archive` table and its indexes, verbatim from ejabberd's `sql/lite.sql`
/// (2002-2025 text; the upgrade notes name the same (username, peer) and
/// (username, bare_peer) indexes).
const EJABBERD_SCHEMA: &str = "
CREATE TABLE archive (
    username text NOT NULL,
    timestamp BIGINT UNSIGNED NOT NULL,
    peer text NOT NULL,
    bare_peer text NOT NULL,
    xml text NOT NULL,
    txt text,
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind text,
    nick text,
    origin_id text,
    created_at timestamp NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX i_username_timestamp ON archive(username, timestamp);
CREATE INDEX i_archive_username_peer ON archive (username, peer);
CREATE INDEX i_archive_username_bare_peer ON archive (username, bare_peer);
CREATE INDEX i_timestamp ON archive(timestamp);
CREATE INDEX i_archive_username_origin_id ON archive (username, origin_id);
";

/// Prosody's `prosodyarchive` as mod_storage_sql creates it on SQLite (its `Table`/`Index`
/// definitions: `sort_id` INTEGER PRIMARY KEY AUTOINCREMENT, the unique
/// `prosodyarchive_index` and the `with_when`, `when` and `sort` indexes).
const PROSODY_SCHEMA: &str = r#"
CREATE TABLE "prosodyarchive" (
    "sort_id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "host" TEXT NOT NULL,
    "user" TEXT NOT NULL,
    "store" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "when" INTEGER NOT NULL,
    "with" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "value" MEDIUMTEXT NOT NULL
);
CREATE UNIQUE INDEX "prosodyarchive_index" ON "prosodyarchive" ("host", "user", "store", "key");
CREATE INDEX "prosodyarchive_with_when" ON "prosodyarchive" ("host", "user", "store", "with", "when");
CREATE INDEX "prosodyarchive_when" ON "prosodyarchive" ("host", "user", "store", "when");
CREATE INDEX "prosodyarchive_sort" ON "prosodyarchive" ("host", "user", "store", "sort_id");
"#;

/// The best SQLite layout we could write for this workload.
const TUNED_SCHEMA: &str = "
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE archive (
    user_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    bare_peer TEXT NOT NULL,
    resource TEXT NOT NULL,
    incoming INTEGER NOT NULL,
    xml TEXT NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
CREATE INDEX archive_with ON archive (user_id, bare_peer, seq);
";

const EJ_INSERT: &str = "INSERT INTO archive (username, timestamp, peer, bare_peer, xml, txt, kind, nick, origin_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'chat', '', ?7)";
const PR_INSERT: &str = r#"INSERT INTO "prosodyarchive" ("host", "user", "store", "key", "when", "with", "type", "value") VALUES ('example.org', ?1, 'archive', ?2, ?3, ?4, 'xml', ?5)"#;
const TU_INSERT: &str = "INSERT INTO archive (user_id, seq, bare_peer, resource, incoming, xml) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

struct SqlDb {
    kind: Kind,
    c: Connection,
}

fn resource(full: &str) -> &str {
    full.split_once('/').map_or("", |(_, r)| r)
}

impl SqlDb {
    fn checkpoint(&self, mode: &str) {
        self.c
            .query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()))
            .expect("checkpoint");
    }

    fn user_id(c: &Connection, user: u32) -> i64 {
        c.prepare_cached("SELECT id FROM users WHERE name = ?1")
            .expect("prep")
            .query_row([user_bare(user)], |r| r.get(0))
            .expect("user id")
    }

    fn insert(kind: Kind, c: &Connection, m: &Gen, uid: i64) {
        match kind {
            Kind::Ejabberd => c.prepare_cached(EJ_INSERT).expect("prep").execute(params![
                user_name(m.user),
                m.ts,
                m.peer_full,
                m.peer_bare,
                m.stanza,
                m.body,
                m.sid
            ]),
            Kind::Prosody => c.prepare_cached(PR_INSERT).expect("prep").execute(params![
                user_name(m.user),
                m.key,
                m.ts / 1_000_000,
                m.peer_bare,
                m.stanza
            ]),
            Kind::Tuned => c.prepare_cached(TU_INSERT).expect("prep").execute(params![
                uid,
                m.ts,
                m.peer_bare,
                resource(&m.peer_full),
                m.incoming,
                m.stanza
            ]),
        }
        .expect("insert");
    }

    fn export_rows(&self, user: u32, w: &mut csv::Writer<ChanWriter>) -> u64 {
        let mut n = 0;
        let me = format!("{}/desktop", user_bare(user));
        match self.kind {
            Kind::Ejabberd => {
                let mut st = self
                    .c
                    .prepare(
                        "SELECT timestamp, xml FROM archive WHERE username = ?1 ORDER BY timestamp",
                    )
                    .expect("prep");
                let mut rows = st.query([user_name(user)]).expect("query");
                while let Some(r) = rows.next().expect("row") {
                    let ts: i64 = r.get(0).expect("ts");
                    let xml = r.get_ref(1).expect("xml").as_str().expect("text");
                    let (from, to) = (attr(xml, "from"), attr(xml, "to"));
                    csv_row(w, ts, from, xml, ts, to, to == me);
                    n += 1;
                }
            }
            Kind::Prosody => {
                let mut st = self
                    .c
                    .prepare(r#"SELECT "sort_id", "when", "value" FROM "prosodyarchive" WHERE "host" = 'example.org' AND "user" = ?1 AND "store" = 'archive' ORDER BY "sort_id""#)
                    .expect("prep");
                let mut rows = st.query([user_name(user)]).expect("query");
                while let Some(r) = rows.next().expect("row") {
                    let id: i64 = r.get(0).expect("id");
                    let when: i64 = r.get(1).expect("when");
                    let xml = r.get_ref(2).expect("xml").as_str().expect("text");
                    let (from, to) = (attr(xml, "from"), attr(xml, "to"));
                    csv_row(w, id, from, xml, when * 1_000_000, to, to == me);
                    n += 1;
                }
            }
            Kind::Tuned => {
                let uid = Self::user_id(&self.c, user);
                let mut st = self
                    .c
                    .prepare("SELECT seq, bare_peer, resource, incoming, xml FROM archive WHERE user_id = ?1 ORDER BY seq")
                    .expect("prep");
                let mut rows = st.query([uid]).expect("query");
                let mut peer = String::new();
                while let Some(r) = rows.next().expect("row") {
                    let seq: i64 = r.get(0).expect("seq");
                    peer.clear();
                    peer.push_str(r.get_ref(1).expect("p").as_str().expect("text"));
                    peer.push('/');
                    peer.push_str(r.get_ref(2).expect("r").as_str().expect("text"));
                    let incoming: bool = r.get(3).expect("dir");
                    let xml = r.get_ref(4).expect("xml").as_str().expect("text");
                    let (from, to) = if incoming {
                        (peer.as_str(), me.as_str())
                    } else {
                        (me.as_str(), peer.as_str())
                    };
                    csv_row(w, seq, from, xml, seq, to, incoming);
                    n += 1;
                }
            }
        }
        n
    }

    fn rows(&self, sql: &str, p: impl rusqlite::Params) -> usize {
        let mut st = self.c.prepare_cached(sql).expect("prep");
        let mut rows = st.query(p).expect("query");
        let mut v: Vec<(i64, String)> = Vec::with_capacity(PAGE + 1);
        while let Some(r) = rows.next().expect("row") {
            v.push((r.get(0).expect("id"), r.get(1).expect("xml")));
        }
        v.truncate(PAGE);
        v.len()
    }
}

impl Db for SqlDb {
    fn bulk(&mut self, user: u32, msgs: &[Gen]) {
        let kind = self.kind;
        let tx = self
            .c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("tx");
        let uid = if kind == Kind::Tuned {
            Self::user_id(&tx, user)
        } else {
            0
        };
        for m in msgs {
            Self::insert(kind, &tx, m, uid);
        }
        tx.commit().expect("commit");
    }
    fn append(&mut self, m: &Gen) {
        let kind = self.kind;
        let tx = self
            .c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("tx");
        let uid = if kind == Kind::Tuned {
            Self::user_id(&tx, m.user)
        } else {
            0
        };
        Self::insert(kind, &tx, m, uid);
        tx.commit().expect("commit");
    }
    fn sync(&mut self) {
        self.checkpoint("TRUNCATE");
    }
    fn page(&mut self, user: u32, q: &Q) -> usize {
        let limit = PAGE as i64 + 1;
        match self.kind {
            Kind::Ejabberd => {
                // The shape of mod_mam_sql's queries: the timestamp is the id.
                let u = user_name(user);
                let sel =
                    "SELECT timestamp, xml, peer, kind, nick FROM archive WHERE username = ?1";
                match q {
                    Q::First => self.rows(&format!("{sel} ORDER BY timestamp ASC LIMIT ?2"), params![u, limit]),
                    Q::Last => self.rows(&format!("{sel} ORDER BY timestamp DESC LIMIT ?2"), params![u, limit]),
                    Q::After(id) => self.rows(
                        &format!("{sel} AND timestamp > ?2 ORDER BY timestamp ASC LIMIT ?3"),
                        params![u, id.parse::<i64>().expect("id"), limit],
                    ),
                    Q::With(p) => self.rows(
                        &format!("{sel} AND bare_peer = ?2 ORDER BY timestamp DESC LIMIT ?3"),
                        params![u, p, limit],
                    ),
                    Q::Range(a, b) => self.rows(
                        &format!("{sel} AND timestamp >= ?2 AND timestamp <= ?3 ORDER BY timestamp ASC LIMIT ?4"),
                        params![u, a, b, limit],
                    ),
                }
            }
            Kind::Prosody => {
                // The shape of mod_storage_sql's archive `find`.
                let u = user_name(user);
                let sel = r#"SELECT "sort_id", "value", "key", "type", "when", "with" FROM "prosodyarchive" WHERE "host" = 'example.org' AND "user" = ?1 AND "store" = 'archive'"#;
                match q {
                    Q::First => self.rows(&format!(r#"{sel} ORDER BY "sort_id" ASC LIMIT ?2"#), params![u, limit]),
                    Q::Last => self.rows(&format!(r#"{sel} ORDER BY "sort_id" DESC LIMIT ?2"#), params![u, limit]),
                    Q::After(key) => self.rows(
                        &format!(
                            r#"{sel} AND "sort_id" > COALESCE((SELECT "sort_id" FROM "prosodyarchive" WHERE "key" = ?2 AND "host" = 'example.org' AND "user" = ?1 AND "store" = 'archive' LIMIT 1), 0) ORDER BY "sort_id" ASC LIMIT ?3"#
                        ),
                        params![u, key, limit],
                    ),
                    Q::With(p) => self.rows(
                        &format!(r#"{sel} AND "with" = ?2 ORDER BY "sort_id" DESC LIMIT ?3"#),
                        params![u, p, limit],
                    ),
                    Q::Range(a, b) => self.rows(
                        &format!(r#"{sel} AND "when" >= ?2 AND "when" <= ?3 ORDER BY "sort_id" ASC LIMIT ?4"#),
                        params![u, a / 1_000_000, b / 1_000_000, limit],
                    ),
                }
            }
            Kind::Tuned => {
                let uid = Self::user_id(&self.c, user);
                let sel = "SELECT seq, xml, bare_peer, resource, incoming FROM archive WHERE user_id = ?1";
                match q {
                    Q::First => self.rows(&format!("{sel} ORDER BY seq ASC LIMIT ?2"), params![uid, limit]),
                    Q::Last => self.rows(&format!("{sel} ORDER BY seq DESC LIMIT ?2"), params![uid, limit]),
                    Q::After(id) => self.rows(
                        &format!("{sel} AND seq > ?2 ORDER BY seq ASC LIMIT ?3"),
                        params![uid, id.parse::<i64>().expect("id"), limit],
                    ),
                    // Without ANALYZE the planner may walk the primary key instead.
                    Q::With(p) => self.rows(
                        "SELECT seq, xml, bare_peer, resource, incoming FROM archive INDEXED BY archive_with \
                         WHERE user_id = ?1 AND bare_peer = ?2 ORDER BY seq DESC LIMIT ?3",
                        params![uid, p, limit],
                    ),
                    Q::Range(a, b) => self.rows(
                        &format!("{sel} AND seq >= ?2 AND seq <= ?3 ORDER BY seq ASC LIMIT ?4"),
                        params![uid, a, b, limit],
                    ),
                }
            }
        }
    }
    fn id_at(&mut self, user: u32, ts: i64) -> String {
        match self.kind {
            Kind::Ejabberd => self
                .c
                .query_row(
                    "SELECT timestamp FROM archive WHERE username = ?1 AND timestamp >= ?2 ORDER BY timestamp LIMIT 1",
                    params![user_name(user), ts],
                    |r| r.get::<_, i64>(0),
                )
                .expect("id")
                .to_string(),
            Kind::Prosody => self
                .c
                .query_row(
                    r#"SELECT "key" FROM "prosodyarchive" WHERE "host" = 'example.org' AND "user" = ?1 AND "store" = 'archive' AND "when" >= ?2 ORDER BY "sort_id" LIMIT 1"#,
                    params![user_name(user), ts / 1_000_000],
                    |r| r.get::<_, String>(0),
                )
                .expect("id"),
            Kind::Tuned => {
                let uid = Self::user_id(&self.c, user);
                self.c
                    .query_row(
                        "SELECT seq FROM archive WHERE user_id = ?1 AND seq >= ?2 ORDER BY seq LIMIT 1",
                        params![uid, ts],
                        |r| r.get::<_, i64>(0),
                    )
                    .expect("id")
                    .to_string()
            }
        }
    }
    fn erase_commit(&mut self, user: u32) {
        // Durable at return: this one commit runs with synchronous=FULL (WAL synced).
        self.c
            .execute_batch("PRAGMA synchronous=FULL;")
            .expect("pragma");
        let tx = self
            .c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("tx");
        tx.execute(
            "INSERT OR IGNORE INTO erasure_queue (username) VALUES (?1)",
            [user_bare(user)],
        )
        .expect("queue");
        tx.commit().expect("commit");
        self.c
            .execute_batch("PRAGMA synchronous=NORMAL;")
            .expect("pragma");
    }
    fn erase_complete(&mut self, user: u32) -> u64 {
        let mut total = 0u64;
        let del = match self.kind {
            Kind::Ejabberd => {
                "DELETE FROM archive WHERE id IN (SELECT id FROM archive WHERE username = ?1 LIMIT 1000)"
            }
            Kind::Prosody => {
                r#"DELETE FROM "prosodyarchive" WHERE "sort_id" IN (SELECT "sort_id" FROM "prosodyarchive" WHERE "host" = 'example.org' AND "user" = ?1 AND "store" = 'archive' LIMIT 1000)"#
            }
            Kind::Tuned => {
                "DELETE FROM archive WHERE user_id = ?1 AND seq IN (SELECT seq FROM archive WHERE user_id = ?1 LIMIT 1000)"
            }
        };
        let key: rusqlite::types::Value = if self.kind == Kind::Tuned {
            Self::user_id(&self.c, user).into()
        } else {
            user_name(user).into()
        };
        loop {
            let tx = self
                .c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .expect("tx");
            let k = tx.execute(del, [&key]).expect("delete") as u64;
            tx.commit().expect("commit");
            total += k;
            if k == 0 {
                break;
            }
        }
        self.c
            .execute(
                "DELETE FROM erasure_queue WHERE username = ?1",
                [user_bare(user)],
            )
            .expect("dequeue");
        total
    }
}

// ------------------------------------------------------------------ RocksDB

fn rocks_open(path: &Path) -> DB {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    let prefixed = || {
        let mut o = Options::default();
        o.set_prefix_extractor(SliceTransform::create_fixed_prefix(8));
        let mut b = BlockBasedOptions::default();
        b.set_bloom_filter(10.0, false);
        o.set_block_based_table_factory(&b);
        o
    };
    let cfs = vec![
        ColumnFamilyDescriptor::new("records", prefixed()),
        ColumnFamilyDescriptor::new("with", prefixed()),
        ColumnFamilyDescriptor::new("meta", Options::default()),
    ];
    DB::open_cf_descriptors(&opts, path, cfs).expect("open rocksdb")
}

fn acct_key(u: u32) -> Vec<u8> {
    let mut k = b"a".to_vec();
    k.extend_from_slice(user_bare(u).as_bytes());
    k
}

fn tomb_key(u: u32) -> Vec<u8> {
    let mut k = b"t".to_vec();
    k.extend_from_slice(user_bare(u).as_bytes());
    k
}

struct RocksDb<'a> {
    db: &'a DB,
}

fn rec_key(arch: &[u8; 8], ts: i64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(arch);
    k[8..].copy_from_slice(&(ts as u64).to_be_bytes());
    k
}

fn with_key(arch: &[u8; 8], peer: &str, ts: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(8 + peer.len() + 9);
    k.extend_from_slice(arch);
    k.extend_from_slice(peer.as_bytes());
    k.push(0);
    k.extend_from_slice(&(ts as u64).to_be_bytes());
    k
}

fn next_prefix(arch: &[u8; 8]) -> [u8; 8] {
    (u64::from_be_bytes(*arch) + 1).to_be_bytes()
}

fn rec_value(m: &Gen) -> Vec<u8> {
    let mut v = Vec::with_capacity(2 + m.peer_full.len() + m.stanza.len());
    v.push(u8::from(m.incoming));
    v.push(m.peer_full.len() as u8);
    v.extend_from_slice(m.peer_full.as_bytes());
    v.extend_from_slice(m.stanza.as_bytes());
    v
}

/// (incoming, full peer, stanza) of a stored record.
fn rec_decode(v: &[u8]) -> (bool, &str, &str) {
    let incoming = v.first() == Some(&1);
    let len = usize::from(*v.get(1).unwrap_or(&0));
    let peer = std::str::from_utf8(v.get(2..2 + len).unwrap_or(&[])).unwrap_or("");
    let xml = std::str::from_utf8(v.get(2 + len..).unwrap_or(&[])).unwrap_or("");
    (incoming, peer, xml)
}

impl RocksDb<'_> {
    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(name).expect("cf")
    }
    /// The archive id, read from the account as jidstore does on every append.
    fn arch(&self, user: u32) -> Option<[u8; 8]> {
        self.db
            .get_pinned_cf(self.cf("meta"), acct_key(user))
            .expect("get")
            .and_then(|v| v.as_ref().try_into().ok())
    }
    fn put(&self, b: &mut WriteBatch, arch: &[u8; 8], m: &Gen) {
        b.put_cf(self.cf("records"), rec_key(arch, m.ts), rec_value(m));
        b.put_cf(self.cf("with"), with_key(arch, &m.peer_bare, m.ts), []);
    }
    fn write(&self, b: WriteBatch, sync: bool) {
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(b, &wo).expect("write");
    }
    fn bounded(lo: Vec<u8>, hi: Vec<u8>) -> ReadOptions {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(lo);
        ro.set_iterate_upper_bound(hi);
        ro.set_prefix_same_as_start(true);
        ro
    }
    fn export_rows(&self, user: u32, w: &mut csv::Writer<ChanWriter>) -> u64 {
        let Some(arch) = self.arch(user) else {
            return 0;
        };
        let me = format!("{}/desktop", user_bare(user));
        let mut it = self.db.raw_iterator_cf_opt(
            self.cf("records"),
            Self::bounded(arch.to_vec(), next_prefix(&arch).to_vec()),
        );
        it.seek(arch);
        let mut n = 0;
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            let ts = i64::from_be_bytes(k[8..16].try_into().expect("key"));
            let (incoming, peer, xml) = rec_decode(v);
            let (from, to) = if incoming {
                (peer, me.as_str())
            } else {
                (me.as_str(), peer)
            };
            csv_row(w, ts, from, xml, ts, to, incoming);
            n += 1;
            it.next();
        }
        n
    }
}

impl Db for RocksDb<'_> {
    fn bulk(&mut self, user: u32, msgs: &[Gen]) {
        let arch = self.arch(user).expect("account");
        let mut b = WriteBatch::default();
        for m in msgs {
            self.put(&mut b, &arch, m);
        }
        self.write(b, false);
    }
    fn append(&mut self, m: &Gen) {
        let arch = self.arch(m.user).expect("account");
        let mut b = WriteBatch::default();
        self.put(&mut b, &arch, m);
        self.write(b, false);
    }
    fn sync(&mut self) {
        self.db.flush_wal(true).expect("flush wal");
    }
    fn page(&mut self, user: u32, q: &Q) -> usize {
        let Some(arch) = self.arch(user) else {
            return 0;
        };
        let mut out: Vec<(i64, String)> = Vec::with_capacity(PAGE);
        let recs = self.cf("records");
        let take = |out: &mut Vec<(i64, String)>, k: &[u8], v: &[u8]| {
            let ts = i64::from_be_bytes(k[8..16].try_into().expect("key"));
            out.push((ts, rec_decode(v).2.to_owned()));
        };
        if let Q::With(p) = q {
            let lo = with_key(&arch, p, 0);
            let hi = with_key(&arch, p, -1);
            let mut it = self
                .db
                .raw_iterator_cf_opt(self.cf("with"), Self::bounded(lo, hi.clone()));
            it.seek_for_prev(&hi);
            let mut keys = Vec::with_capacity(PAGE);
            while it.valid() && keys.len() < PAGE {
                let k = it.key().expect("key");
                let ts = i64::from_be_bytes(k[k.len() - 8..].try_into().expect("ts"));
                keys.push(rec_key(&arch, ts));
                it.prev();
            }
            for (k, v) in keys
                .iter()
                .zip(self.db.batched_multi_get_cf(recs, &keys, false))
            {
                let v = v.expect("get").expect("record");
                take(&mut out, k, &v);
            }
            return out.len();
        }
        let mut it = self.db.raw_iterator_cf_opt(
            recs,
            Self::bounded(arch.to_vec(), next_prefix(&arch).to_vec()),
        );
        let (forward, end) = match q {
            Q::First => {
                it.seek(arch);
                (true, i64::MAX)
            }
            Q::Last => {
                it.seek_for_prev(rec_key(&arch, -1));
                (false, i64::MAX)
            }
            Q::After(id) => {
                it.seek(rec_key(&arch, id.parse::<i64>().expect("id") + 1));
                (true, i64::MAX)
            }
            Q::Range(a, b) => {
                it.seek(rec_key(&arch, *a));
                (true, *b)
            }
            Q::With(_) => unreachable!(),
        };
        while it.valid() && out.len() < PAGE {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if i64::from_be_bytes(k[8..16].try_into().expect("key")) > end {
                break;
            }
            take(&mut out, k, v);
            if forward {
                it.next();
            } else {
                it.prev();
            }
        }
        out.len()
    }
    fn id_at(&mut self, user: u32, ts: i64) -> String {
        let arch = self.arch(user).expect("account");
        let mut it = self.db.raw_iterator_cf_opt(
            self.cf("records"),
            Self::bounded(arch.to_vec(), next_prefix(&arch).to_vec()),
        );
        it.seek(rec_key(&arch, ts));
        let k = it.key().expect("a message");
        i64::from_be_bytes(k[8..16].try_into().expect("key")).to_string()
    }
    fn erase_commit(&mut self, user: u32) {
        // One synced batch: the account goes, the tombstone (the sweep queue) comes.
        let arch = self.arch(user).expect("account");
        let mut b = WriteBatch::default();
        b.delete_cf(self.cf("meta"), acct_key(user));
        b.put_cf(self.cf("meta"), tomb_key(user), arch);
        self.write(b, true);
    }
    fn erase_complete(&mut self, user: u32) -> u64 {
        let meta = self.cf("meta");
        let Some(arch) = self
            .db
            .get_cf(meta, tomb_key(user))
            .expect("get")
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
        else {
            return 0;
        };
        let mut b = WriteBatch::default();
        let hi = next_prefix(&arch);
        b.delete_range_cf(self.cf("records"), &arch[..], &hi[..]);
        b.delete_range_cf(self.cf("with"), &arch[..], &hi[..]);
        b.delete_cf(meta, tomb_key(user));
        self.write(b, true);
        u64::MAX
    }
}
