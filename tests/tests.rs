//! One integration-test binary (as ripgrep does): links once, shares helpers in `util`.

mod util;

mod accounts;
mod blocklist;
mod cli;
mod inbox;
mod last;
mod mam;
mod offline;
mod privacy;
mod private;
mod pubsub;
mod roster;
mod vcard;
