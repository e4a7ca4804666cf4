//! Fills a data dir with one user whose 1-1 archive holds N messages of ~300 bytes, plus a
//! few other users, for measuring export and unregister at scale:
//!
//! ```sh
//! cargo run --release --example fill -- /tmp/big 1000000
//! /usr/bin/time -v target/release/jidstore --data-dir /tmp/big retrieve_personal_data alice localhost /tmp/alice.zip
//! /usr/bin/time -v target/release/jidstore --data-dir /tmp/big unregister alice localhost
//! cargo run --release --example fill -- /tmp/big 1000000 bulk   # Mam::append_bulk instead
//! ```

use std::time::Instant;

use jidstore::ext::mam::{Direction, PmMessage};
use jidstore::{BareJid, Config, Jid, Timestamp};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: fill <data-dir> <messages>")?;
    let n: u64 = args
        .next()
        .ok_or("usage: fill <data-dir> <messages>")?
        .parse()?;
    let bulk = args.next().as_deref() == Some("bulk");
    let store = Config::new(&dir).open()?;
    let alice = BareJid::parse("alice@localhost")?;
    store.accounts().create(&alice, "pw")?;
    for u in ["bob", "kate", "mike"] {
        let j = BareJid::from_parts(u, "localhost")?;
        store.accounts().create(&j, "pw")?;
    }
    let (a, b) = (
        Jid::parse("alice@localhost/phone")?,
        Jid::parse("bob@localhost/laptop")?,
    );
    let body = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco.";
    let message = |i: u64| PmMessage {
        id: None,
        timestamp: Timestamp::from_secs(1_600_000_000 + i64::try_from(i).unwrap_or(i64::MAX)),
        from: a.clone(),
        to: b.clone(),
        direction: Direction::Outgoing,
        origin_id: None,
        stanza: format!(
            "<message xmlns='jabber:client' from='{a}' to='{b}' id='{i:016x}' type='chat'><body>{body}</body></message>"
        ),
    };
    let started = Instant::now();
    if bulk {
        store.mam().append_bulk(&alice, (0..n).map(message))?;
    } else {
        for i in 0..n {
            store.mam().append(&alice, &message(i))?;
        }
    }
    store.flush()?;
    let secs = started.elapsed().as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "a rate for humans")]
    let rate = n as f64 / secs;
    println!(
        "appended {n} messages in {secs:.2} s ({rate:.0} msg/s), {} bytes on disk",
        store.size_on_disk()?
    );
    Ok(())
}
