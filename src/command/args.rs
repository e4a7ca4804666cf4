//! Command-line arguments ("low args"): parsing only checks what the user typed; the command
//! modules turn them into typed library inputs. Shared by the `jidstore` binary and the admin
//! socket, which parses the argv a client forwards.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::Timestamp;

/// jidstore: the data an XMPP server keeps about its users, with GDPR retrieval and erasure.
#[derive(Parser, Debug)]
#[command(name = "jidstore", version, about, long_about = None)]
pub struct Args {
    /// The data directory [default: $JIDSTORE_DATA_DIR, else $XDG_DATA_HOME/jidstore, else
    /// ~/.local/share/jidstore]. For demo: a new or empty directory, which gets the store in
    /// DIR/data and the exports beside it [default: a new directory under $TMPDIR].
    #[expect(
        clippy::doc_markdown,
        reason = "clap shows this text as help, backticks would leak"
    )]
    // $JIDSTORE_DATA_DIR is read by `command::data_dir`, not by clap: demo must not take
    // an operator's store for its scratch directory.
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// A PostgreSQL database instead of a data directory: postgres://user:password@host:port/db.
    /// There, compact runs VACUUM (FULL) and unregister --purge a plain VACUUM; demo,
    /// forensic-export and serve-admin do not work on one yet.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "JIDSTORE_DATABASE_URL",
        hide_env_values = true
    )]
    pub database: Option<String>,

    /// Print one JSON document on stdout instead of text (errors stay on stderr).
    #[arg(long, global = true)]
    pub json: bool,

    /// Open a data directory owned by another user (refused by default); files created in
    /// it are given to its owner.
    #[arg(long, global = true)]
    pub allow_foreign_owner: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; GDPR ones mirror `mongooseimctl`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an empty store in the data directory. On an existing store it changes nothing,
    /// says so and exits 0.
    Init,
    /// Create an account. Without --user the username is random (anonymised registration).
    Register {
        /// Choose the username instead of a random one.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// The XMPP domain.
        domain: String,
        /// The password (stored only as SCRAM verifiers). `-` reads one line from stdin.
        password: String,
        /// A name erased less than this many days ago is refused (the erasure ledger
        /// remembers it by keyed hash); 0 never refuses.
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        hold_erased_days: u32,
        /// Register the name even if it was erased recently.
        #[arg(long)]
        force: bool,
    },
    /// List accounts, one JID per line in JID order, streamed (never all held in memory).
    Users {
        /// Only accounts on this domain.
        #[arg(long, value_name = "D")]
        domain: Option<String>,
        /// Only usernames starting with this (normalised as a username is).
        #[arg(long, value_name = "P")]
        prefix: Option<String>,
    },
    /// Show what is held about a JID, per table, and what erasure would remove and keep
    /// (group-chat messages, items on other users' nodes), without writing anything. Works
    /// with or without an account.
    Inspect {
        /// The username (localpart).
        username: String,
        /// The domain.
        domain: String,
    },
    /// Set an account's password (stored only as SCRAM-SHA-1/256/512 verifiers), e.g. for
    /// an imported user without credentials.
    Passwd {
        /// The username (localpart).
        username: String,
        /// The domain.
        domain: String,
        /// The new password. `-` reads one line from stdin.
        password: String,
    },
    /// Print the audit log: one line per retrieval, erasure, import and compaction (time,
    /// action, outcome, subject as a keyed hash, counts), oldest first. It holds no JID.
    Audit {
        /// Only entries recorded at or after this time (RFC 3339, e.g. 2026-12-04T18:00:00Z).
        #[arg(long, value_name = "TIME", value_parser = time_arg)]
        since: Option<Timestamp>,
        /// Only entries about this bare JID (matched by its keyed hash).
        #[arg(long, value_name = "JID")]
        jid: Option<String>,
    },
    /// Apply a retention policy (a JSON file: limits per domain and per JID on 1-1 archives,
    /// room archives and offline messages, by age in days or by count) and print what was
    /// removed per domain. Oldest messages first, in bounded chunks; safe to interrupt and
    /// run again.
    Expire {
        /// The policy file (see the README, "Retention").
        #[arg(long, value_name = "FILE")]
        policy: PathBuf,
        /// Count what would be removed; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write everything held about a JID into a zip of CSV files.
    #[command(name = "retrieve_personal_data", alias = "retrieve-personal-data")]
    RetrievePersonalData {
        /// The username (localpart).
        username: String,
        /// The domain.
        domain: String,
        /// The zip file to create, or an existing directory to create `<username>.zip` in.
        // Taken as raw text so that an empty path is reported as such, exit 1.
        path: std::ffi::OsString,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
        /// Prefix cells starting with = + - @ tab or CR with ' so a spreadsheet shows them
        /// as text, not formulas (the manifest says so). Default: cells exactly as stored.
        #[arg(long)]
        spreadsheet_safe: bool,
        /// Leave out index.html (the readable page): CSV files and manifest only.
        #[arg(long)]
        no_page: bool,
    },
    /// Erase an account and all personal data that erasure removes; prints a receipt. Exit 3
    /// when nothing was erased (no account, only data that erasure keeps, and no
    /// --redact-kept).
    Unregister {
        /// Then compact the store, so the erased bytes also leave the data directory's files.
        #[arg(long, conflicts_with = "dry_run")]
        purge: bool,
        /// Print the receipt the erasure would give (same exit code), and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Pseudonymise what erasure keeps (an upheld objection to it): the subject's
        /// group-chat messages and the items it published on nodes that stay move from its
        /// JID and nick to a stable pseudonym (erased-HASH@erased.invalid), in every index.
        #[arg(long)]
        redact_kept: bool,
        /// Erase every JID listed in FILE (one per line; blank lines and lines starting with
        /// # skipped), each in its own atomic erasure, then print a summary. Exit 1 if any
        /// failed. Run it again after an interruption: subjects already erased are reported
        /// and skipped.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["username", "domain"])]
        from_file: Option<PathBuf>,
        /// The username (localpart).
        #[arg(required_unless_present = "from_file")]
        username: Option<String>,
        /// The domain.
        #[arg(required_unless_present = "from_file")]
        domain: Option<String>,
    },
    /// Rewrite the store into a fresh copy holding only live data (erased data stays in the
    /// data directory's files until then), verify it and swap it in. No other process may use
    /// the store.
    Compact,
    /// Replace the store with a backup (a directory `backup` wrote; read, never written),
    /// re-applying every erasure made since the backup was taken. No other process may use
    /// the store.
    Restore {
        /// The backup directory.
        backup: PathBuf,
    },
    /// Write a consistent copy of the store to a new directory (refused if it exists).
    Backup {
        /// The directory to create.
        dest: PathBuf,
    },
    /// Copy the store into the other engine: from a data directory into an empty PostgreSQL
    /// database, or from a database into a new data directory; then check both sides hold
    /// the same entries and verify the copy. The source is only read; stop servers first.
    Migrate {
        /// Where to: postgres://user:password@host:port/db (empty, or an interrupted
        /// migration, which starts over), or a new directory.
        #[arg(long, value_name = "URL|DIR")]
        to: String,
    },
    /// Import a XEP-0227 (PIE) file; each user all-or-nothing. Exit 1 if any user failed.
    /// A missing or empty data directory gets a new store.
    Import {
        /// The XML file (`server-data` or `host` root; includes resolve relative to it).
        file: PathBuf,
        /// Timestamps that are not XEP-0082: refuse that user, use the import time, or drop
        /// the message.
        #[arg(long, value_enum, default_value = "reject")]
        bad_timestamps: BadTimestampsArg,
        /// Import what is there when include targets are missing (they are reported and
        /// the exit code is 1). Without it a missing target stops the import before any
        /// write.
        #[arg(long)]
        skip_missing_includes: bool,
        /// Import users this store erased (its erasure ledger remembers them by keyed hash).
        /// Without it they are skipped and reported, so their erasure is re-applied.
        #[arg(long)]
        import_erased: bool,
        /// Check and report everything, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write one user's data as a XEP-0227 v1.1 document (SCRAM credentials, never a password).
    #[command(name = "export-xep0227")]
    ExportXep0227 {
        /// The username (localpart).
        username: String,
        /// The domain.
        domain: String,
        /// The XML file to create, or an existing directory to create `<username>.xml` in.
        path: std::ffi::OsString,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Export one user from a copied data directory (--from) without writing a byte into it:
    /// hashes every file, works on a private copy, refuses a torn or damaged copy with one
    /// line. --data-dir is not used.
    #[command(name = "forensic-export")]
    ForensicExport {
        /// The copied data directory to examine (never written to).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The username (localpart).
        username: String,
        /// The domain.
        domain: String,
        /// The zip file to create, or an existing directory to create `<username>.zip` in.
        path: std::ffi::OsString,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
        /// Create the private working copy under this directory [default: the zip's
        /// directory]; it needs room for a copy of the source and may not be inside it.
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
    },
    /// Build a small deployment in a new directory (the store in DIR/data), export one user,
    /// unregister them, and say where everything is. Ignores $JIDSTORE_DATA_DIR.
    #[expect(
        clippy::doc_markdown,
        reason = "clap shows this text as help, backticks would leak"
    )]
    Demo,
    /// Row counts per table and size on disk.
    Stats,
    /// Check every entry: keys parse, values decode, indexes and records match both ways.
    /// Exits 1 and lists the damaged keys when a problem is found.
    Verify,
    /// Message archives (XEP-0313).
    Mam {
        /// What to do with the archive.
        #[command(subcommand)]
        command: MamCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `jidstore man > jidstore.1`.
    Man,
    /// Open the store, serve the admin socket and wait until stdin closes: the reference
    /// embedding example, and what the two-process tests run.
    #[command(name = "serve-admin", hide = true)]
    ServeAdmin,
}

impl Command {
    /// Whether the command reads a line from stdin (`register DOMAIN -`, `passwd U D -`).
    pub fn reads_stdin(&self) -> bool {
        matches!(
            self,
            Command::Register { password, .. } | Command::Passwd { password, .. } if password == "-"
        )
    }
}

/// `--bad-timestamps` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum BadTimestampsArg {
    /// Refuse the user holding it (nothing written for that user).
    Reject,
    /// Use the import time.
    Now,
    /// Drop the message holding it.
    Skip,
}

/// `jidstore mam ...`
#[derive(Subcommand, Debug)]
pub enum MamCommand {
    /// One page of a user's (or with --room, a room's) archive: one line per message
    /// (id, timestamp, from, to or nick, stanza, tab-separated), then a footer.
    Query(Box<MamQuery>),
    /// Delete archived messages on request, oldest first in bounded chunks: one message
    /// (--id), those archived before a time (--before) or all (--all) of a user's archive,
    /// or of a room's with --room. The account or room stays.
    Delete(MamDelete),
}

/// The archive a `mam` subcommand works on: a user's (`<username> <domain>`) or, with
/// `--room`, a room's. Parsing makes the two exclusive and one of them required.
#[derive(clap::Args, Debug)]
pub struct MamArchive {
    /// The username (localpart); not with --room.
    #[arg(required_unless_present = "room", conflicts_with = "room")]
    pub username: Option<String>,
    /// The domain; not with --room.
    #[arg(required_unless_present = "room", conflicts_with = "room")]
    pub domain: Option<String>,
    /// Query this room's archive instead of a user's.
    #[arg(long, value_name = "ROOM_JID")]
    pub room: Option<String>,
}

/// Arguments of `jidstore mam delete`.
#[derive(clap::Args, Debug)]
#[command(mut_arg("room", |a| a.help("Delete from this room's archive instead of a user's")))]
pub struct MamDelete {
    /// Whose archive.
    #[command(flatten)]
    pub archive: MamArchive,
    /// The archive id of the one message to delete.
    #[arg(long, value_name = "ID", conflicts_with_all = ["before", "all"])]
    pub id: Option<String>,
    /// The messages archived before this time (RFC 3339, e.g. 2026-12-04T18:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = time_arg, conflicts_with = "all")]
    pub before: Option<Timestamp>,
    /// The whole archive.
    #[arg(long, required_unless_present_any = ["id", "before"])]
    pub all: bool,
    /// Count what would be deleted; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `jidstore mam query`.
#[derive(clap::Args, Debug)]
pub struct MamQuery {
    /// Whose archive.
    #[command(flatten)]
    pub archive: MamArchive,
    /// Only messages with this JID (bare: any resource; full: exactly).
    #[arg(long, value_name = "JID")]
    pub with: Option<String>,
    /// Archive time at or after this (RFC 3339, e.g. 2026-12-04T18:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub start: Option<Timestamp>,
    /// Archive time at or before this (RFC 3339, e.g. 2026-12-04T18:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = time_arg)]
    pub end: Option<Timestamp>,
    /// Only messages after this id.
    #[arg(long, value_name = "ID")]
    pub after_id: Option<String>,
    /// Only messages before this id.
    #[arg(long, value_name = "ID")]
    pub before_id: Option<String>,
    /// Only these ids.
    #[arg(long, value_name = "ID,..", value_delimiter = ',')]
    pub ids: Option<Vec<String>>,
    /// Page size.
    #[arg(long, value_name = "N")]
    pub max: Option<usize>,
    /// The page after this id.
    #[arg(long, value_name = "ID", conflicts_with = "before")]
    pub after: Option<String>,
    /// The page before this id; with no id, the last page.
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "")]
    pub before: Option<String>,
    /// Newest first within the page.
    #[arg(long)]
    pub flip_page: bool,
}

/// A time argument: RFC 3339 with an offset, checked while parsing so that a bad one is a
/// usage error (exit 2) with one clear line.
fn time_arg(text: &str) -> Result<Timestamp, String> {
    Timestamp::parse_rfc3339(text).map_err(|_| {
        "not an RFC 3339 date-time with a time zone, e.g. 2026-12-04T18:00:00Z or \
         2026-12-04T19:00:00+01:00"
            .to_owned()
    })
}
