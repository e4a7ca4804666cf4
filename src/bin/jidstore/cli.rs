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
    /// Check every entry: keys parse, values decode, indexes and records match both ways.
    /// Exits 1 and lists the damaged keys when a problem is found.
    Verify,
}
