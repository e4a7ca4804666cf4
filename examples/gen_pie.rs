//! Writes a realistic XEP-0227 (PIE v1.1) file: one user `alice@example.org` with a roster,
//! a vCard, private XML, offline messages and a MAM archive (`urn:xmpp:pie:0#mam`) of N
//! messages (~300-byte stanzas, result ids, delay stamps one second apart), plus two small
//! users. Streamed: memory does not depend on N.
//!
//! ```sh
//! cargo run --release --example gen_pie -- /tmp/pie-1m.xml 1000000
//! target/release/jidstore --data-dir /tmp/d register --user admin localhost pw
//! /usr/bin/time -f "%e s %M KB" target/release/jidstore --data-dir /tmp/d import /tmp/pie-1m.xml
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};

use jidstore::Timestamp;

const BODY: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua &amp; ut enim ad minim veniam.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: gen_pie <out.xml> <messages>";
    let out = args.next().ok_or(usage)?;
    let n: u64 = args.next().ok_or(usage)?.parse()?;
    let mut w = BufWriter::with_capacity(1 << 20, File::create(&out)?);
    writeln!(w, "<?xml version='1.0' encoding='UTF-8'?>")?;
    writeln!(w, "<server-data xmlns='urn:xmpp:pie:0'>")?;
    writeln!(w, "  <host jid='example.org'>")?;
    writeln!(w, "    <user name='alice' password='secret'>")?;
    writeln!(w, "      <query xmlns='jabber:iq:roster' ver='7'>")?;
    for p in 0..20 {
        writeln!(
            w,
            "        <item jid='peer{p}@example.net' name='Peer {p}' subscription='both'><group>Friends</group></item>"
        )?;
    }
    writeln!(w, "      </query>")?;
    writeln!(
        w,
        "      <presence xmlns='jabber:client' type='subscribe' from='stranger@example.com'><status>Hi</status></presence>"
    )?;
    writeln!(
        w,
        "      <vCard xmlns='vcard-temp'><FN>Alice Example</FN><NICKNAME>alice</NICKNAME></vCard>"
    )?;
    writeln!(
        w,
        "      <query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'><conference jid='room@muc.example.org' autojoin='true'/></storage></query>"
    )?;
    writeln!(w, "      <offline-messages>")?;
    for i in 0..5 {
        writeln!(
            w,
            "        <message xmlns='jabber:client' from='peer{i}@example.net/phone' to='alice@example.org' type='chat'><body>offline {i}</body><delay xmlns='urn:xmpp:delay' from='example.org' stamp='2020-01-01T00:00:0{i}Z'/></message>"
        )?;
    }
    writeln!(w, "      </offline-messages>")?;
    writeln!(w, "      <archive xmlns='urn:xmpp:pie:0#mam'>")?;
    for i in 0..n {
        let peer = i % 20;
        let stamp = Timestamp::from_secs(1_600_000_000 + i64::try_from(i)?).to_rfc3339();
        let (from, to) = if i.is_multiple_of(2) {
            (
                "alice@example.org/phone".to_owned(),
                format!("peer{peer}@example.net/laptop"),
            )
        } else {
            (
                format!("peer{peer}@example.net/laptop"),
                "alice@example.org/phone".to_owned(),
            )
        };
        writeln!(
            w,
            "        <result xmlns='urn:xmpp:mam:2' id='{i:08x}-{:08x}'>\n          <forwarded xmlns='urn:xmpp:forward:0'>\n            <delay xmlns='urn:xmpp:delay' stamp='{stamp}'/>\n            <message xmlns='jabber:client' from='{from}' to='{to}' type='chat' id='m{i}'>\n              <body>{BODY}</body>\n              <origin-id xmlns='urn:xmpp:sid:0' id='m{i}'/>\n            </message>\n          </forwarded>\n        </result>",
            i.wrapping_mul(0x9e37_79b9) & 0xffff_ffff
        )?;
    }
    writeln!(w, "      </archive>")?;
    writeln!(w, "    </user>")?;
    for u in ["bob", "carol"] {
        writeln!(
            w,
            "    <user name='{u}' password='pw'><vCard xmlns='vcard-temp'><FN>{u}</FN></vCard></user>"
        )?;
    }
    writeln!(w, "  </host>")?;
    writeln!(w, "</server-data>")?;
    w.into_inner()?.sync_all()?;
    Ok(())
}
