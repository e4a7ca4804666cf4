//! Command-line arguments ("low args"): parsing only checks what the user typed; `main`
//! turns them into typed library inputs.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// jidstore: the data an XMPP server keeps about its users, with GDPR retrieval and erasure.
#[derive(Parser, Debug)]
#[command(name = "jidstore", version, about, long_about = None)]
pub struct Args {
    /// The data directory [default: $XDG_DATA_HOME/jidstore or ~/.local/share/jidstore].
    #[expect(
        clippy::doc_markdown,
        reason = "clap shows this text as help, backticks would leak"
    )]
    #[arg(long, global = true, env = "JIDSTORE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands; GDPR ones mirror `mongooseimctl`.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create an account. Without --user the username is random (anonymised registration).
    Register {
        /// Choose the username instead of a random one.
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// The XMPP domain.
        domain: String,
        /// The password (stored only as SCRAM verifiers). `-` reads one line from stdin.
        password: String,
    },
    /// Write everything held about a JID into a zip of CSV files.
    #[command(name = "retrieve_personal_data", alias = "retrieve-personal-data")]
    RetrievePersonalData {
        /// The username (localpart).
        username: String,
        /// The domain.
        domain: String,
        /// The zip file to create, or an existing directory to create `<username>.zip` in.
        /// (Taken as raw text so that an empty path is reported as such, exit 1.)
        path: std::ffi::OsString,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Erase an account and all personal data that erasure removes; prints a receipt.
    Unregister {
        /// The username (localpart).
        username: String,
        /// The domain.
        domain: String,
    },
    /// Build a small deployment in a fresh data dir, export one user, unregister them.
    Demo,
    /// Row counts per table and size on disk.
    Stats,
    /// Message archives (XEP-0313).
    Mam {
        /// What to do with the archive.
        #[command(subcommand)]
        command: MamCommand,
    },
}

/// `jidstore mam ...`
#[derive(Subcommand, Debug)]
pub enum MamCommand {
    /// One page of a user's (or with --room, a room's) archive: one line per message
    /// (id, timestamp, from, to or nick, stanza, tab-separated), then a footer.
    Query(Box<MamQuery>),
}

/// Arguments of `jidstore mam query`.
#[derive(clap::Args, Debug)]
pub struct MamQuery {
    /// The username (localpart); not with --room.
    #[arg(required_unless_present = "room", conflicts_with = "room")]
    pub username: Option<String>,
    /// The domain; not with --room.
    #[arg(required_unless_present = "room", conflicts_with = "room")]
    pub domain: Option<String>,
    /// Query this room's archive instead of a user's.
    #[arg(long, value_name = "ROOM_JID")]
    pub room: Option<String>,
    /// Only messages with this JID (bare: any resource; full: exactly).
    #[arg(long, value_name = "JID")]
    pub with: Option<String>,
    /// Archive time at or after this (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub start: Option<String>,
    /// Archive time at or before this (RFC 3339).
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,
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
