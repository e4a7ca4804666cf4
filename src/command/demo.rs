//! `jidstore demo`: a small, realistic deployment in a fresh data dir; exports one user's
//! data, unregisters them, and shows what was removed and what was kept.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::ext::inbox::InboxEntry;
use crate::ext::mam::{Direction, MucMessage, PmMessage};
use crate::ext::offline::OfflineMessage;
use crate::ext::privacy::{PrivacyAction, PrivacyItem, PrivacyType};
use crate::ext::pubsub::{Node, NodeType, SubState};
use crate::ext::roster::{Ask, RosterItem, Subscription};
use crate::gdpr::{self, ExportOptions};
use crate::{BareJid, Config, Jid, Store, Timestamp};
use anyhow::{Context, bail};

/// Where `demo` builds its deployment when no `--data-dir` is given: a new directory under
/// the system temp directory.
pub(crate) fn default_dir() -> PathBuf {
    std::env::temp_dir().join(format!("jidstore-demo-{:08x}", rand::random::<u32>()))
}

fn fresh_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "demo needs a new or empty directory (it puts its store in DIR/data and its exports \
             beside it), and {} is not empty",
            dir.display()
        );
    }
    Ok(dir.to_path_buf())
}

fn msg(from: &Jid, to: &Jid, id: &str, body: &str) -> String {
    format!(
        "<message xmlns='jabber:client' from='{from}' to='{to}' id='{id}' type='chat'><body>{body}</body></message>"
    )
}

/// Builds the deployment, exports alice, unregisters her, exports what is kept.
pub(super) fn run(env: &super::Env<'_>, sink: &mut dyn Write) -> anyhow::Result<u8> {
    let dir = fresh_dir(env.data_dir())?;
    let mut text = Vec::new();
    let out = &mut text;
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create demo dir {}", dir.display()))?;
    let store = Config::new(dir.join("data")).open()?;
    writeln!(
        out,
        "Demo deployment in {}\n  store (data directory): {}\n  exports: beside it, in {0}",
        dir.display(),
        dir.join("data").display()
    )?;
    writeln!(
        out,
        "Users: alice, bob and kate on localhost, one with a random name (anonymised \
         registration), and carol@remote.example, a remote participant of the group chat."
    )?;
    populate(&store)?;
    store.flush()?;
    write!(out, "\n{}", crate::stats(&store)?)?;

    let alice = BareJid::parse("alice@localhost")?;
    let export = dir.join("alice.zip");
    let (path, summary) =
        gdpr::retrieve_to_path(&store, &alice, &export, &ExportOptions::default())?;
    writeln!(out, "\nExported {alice} to {}:", path.display())?;
    for f in &summary.files {
        writeln!(out, "  {:<28} {:>3} rows", f.name, f.rows)?;
    }

    let receipt = gdpr::remove(&store, &alice)?;
    writeln!(out, "\nUnregistered {alice}.\n{receipt}")?;
    writeln!(out, "{}", super::gdpr::bytes_note(false))?;

    let after = dir.join("alice-after-erasure.zip");
    let (path, summary) =
        gdpr::retrieve_to_path(&store, &alice, &after, &ExportOptions::default())?;
    writeln!(
        out,
        "\nWhat is still held about {alice} (kept on purpose), in {}:",
        path.display()
    )?;
    for f in summary.files.iter().filter(|f| f.rows > 0) {
        writeln!(out, "  {:<28} {:>3} rows", f.name, f.rows)?;
    }
    hint(out, &dir)?;
    let doc = serde_json::json!({
        "dir": super::path_json(&dir),
        "data_dir": super::path_json(&dir.join("data")),
        "export": super::path_json(&export),
        "after_erasure": super::path_json(&after),
        "removed": receipt.total_removed(),
    });
    env.emit(sink, &doc, &String::from_utf8_lossy(&text))?;
    Ok(0)
}

fn hint(out: &mut dyn Write, dir: &Path) -> anyhow::Result<()> {
    let data = dir.join("data");
    writeln!(out, "\nTry:")?;
    writeln!(
        out,
        "  jidstore --data-dir {} retrieve_personal_data bob localhost {}",
        data.display(),
        dir.display()
    )?;
    writeln!(out, "  jidstore --data-dir {} stats", data.display())?;
    Ok(())
}

#[expect(
    clippy::too_many_lines,
    reason = "one linear script of a deployment's events"
)]
fn populate(store: &Store) -> anyhow::Result<()> {
    let bare = BareJid::parse;
    let (alice, bob, kate) = (
        bare("alice@localhost")?,
        bare("bob@localhost")?,
        bare("kate@localhost")?,
    );
    for u in [&alice, &bob, &kate] {
        store.accounts().create(u, "demo-password")?;
    }
    let anon = store
        .accounts()
        .create_random("localhost", "demo-password")?;
    let _ = anon;

    // Rosters: alice and bob are mutual contacts; alice asked kate, who has not answered.
    let item = |jid: &BareJid, name: &str, sub, ask| RosterItem {
        jid: jid.clone(),
        name: Some(name.to_owned()),
        subscription: sub,
        ask,
        groups: vec!["Friends".into(), "Work, mostly".into()],
        askmessage: None,
    };
    store
        .roster()
        .set(&alice, &item(&bob, "Bob", Subscription::Both, Ask::None))?;
    store
        .roster()
        .set(&bob, &item(&alice, "Alice", Subscription::Both, Ask::None))?;
    store
        .roster()
        .set(&alice, &item(&kate, "Kate", Subscription::None, Ask::Out))?;
    store
        .roster()
        .set(&kate, &item(&alice, "alice", Subscription::None, Ask::In))?;

    store.vcard().set(
        &alice,
        "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><N><FAMILY>Liddell</FAMILY><GIVEN>Alice</GIVEN></N><EMAIL><USERID>alice@example.org</USERID></EMAIL></vCard>",
    )?;
    store
        .vcard()
        .set(&bob, "<vCard xmlns='vcard-temp'><FN>Bob</FN></vCard>")?;
    store.private().set(
        &alice,
        "storage:bookmarks",
        "<storage xmlns='storage:bookmarks'><conference jid='room@muc.localhost' autojoin='true'><nick>alice</nick></conference></storage>",
    )?;

    // 1-1 chat between alice and bob: both archives and both inboxes.
    let start_us = Timestamp::now().as_micros() - 3_600_000_000;
    let (a_res, b_res) = (
        Jid::parse("alice@localhost/phone")?,
        Jid::parse("bob@localhost/laptop")?,
    );
    let lines = [
        (true, "Hi Bob, lunch today?"),
        (false, "Sure, \"usual place\", 12:30"),
        (true, "Great, see you there"),
        (
            false,
            "Bringing the report, with commas, quotes \" and\nnewlines",
        ),
    ];
    for (i, (from_alice, body)) in lines.iter().enumerate() {
        let at = Timestamp::from_micros(start_us + i64::try_from(i)? * 60_000_000);
        let (from, to) = if *from_alice {
            (&a_res, &b_res)
        } else {
            (&b_res, &a_res)
        };
        let stanza = msg(from, to, &format!("m{i}"), &body.replace('"', "&quot;"));
        for (owner, outgoing) in [(&alice, *from_alice), (&bob, !*from_alice)] {
            store.mam().append(
                owner,
                &PmMessage {
                    id: None,
                    timestamp: at,
                    from: from.clone(),
                    to: to.clone(),
                    direction: if outgoing {
                        Direction::Outgoing
                    } else {
                        Direction::Incoming
                    },
                    origin_id: Some(format!("m{i}")),
                    stanza: stanza.clone(),
                },
            )?;
            let remote = if *owner == alice { &bob } else { &alice };
            store.inbox().on_message(
                owner,
                remote,
                &stanza,
                Some(&format!("m{i}")),
                at,
                !outgoing,
            )?;
        }
    }
    let _: Option<InboxEntry> = store.inbox().get(&alice, &bob)?;

    // Offline messages waiting for kate.
    for (i, body) in ["Are you there?", "Call me back"].iter().enumerate() {
        let from = Jid::parse("bob@localhost/laptop")?;
        let to = Jid::from(kate.clone());
        store.offline().store(
            &kate,
            &OfflineMessage {
                stanza: msg(&from, &to, &format!("o{i}"), body),
                from,
                to,
                timestamp: Timestamp::now(),
                expires: None,
            },
        )?;
    }

    // Group chat: alice, bob and a remote participant.
    let room = bare("room@muc.localhost")?;
    let remote = bare("carol@remote.example")?;
    for (sender, nick, body) in [
        (&alice, "alice", "Morning all"),
        (&bob, "bob", "Hi Room!"),
        (&remote, "carol", "Hello from afar"),
        (&alice, "alice", "Standup in 5"),
    ] {
        let from = Jid::parse(&format!("{room}/{nick}"))?;
        store.muc().append(
            &room,
            &MucMessage {
                id: None,
                timestamp: Timestamp::now(),
                sender: sender.clone(),
                nick: nick.to_owned(),
                stanza: format!(
                    "<message xmlns='jabber:client' from='{from}' type='groupchat'><body>{body}</body></message>"
                ),
            },
        )?;
    }

    // Pubsub: alice's PEP avatar node, her push node, her flat node that bob publishes to.
    let node = |service: &BareJid, name: &str, kind, access: &str| Node {
        service: service.clone(),
        node: name.to_owned(),
        owner: alice.clone(),
        kind,
        access_model: access.to_owned(),
        config: vec![("pubsub#max_items".into(), "10".into())],
        created_at: Timestamp::now(),
    };
    let pep = "urn:xmpp:avatar:metadata";
    let push_service = bare("push.localhost")?;
    let pubsub_service = bare("pubsub.localhost")?;
    store
        .pubsub()
        .create_node(&node(&alice, pep, NodeType::Pep, "presence"))?;
    store.pubsub().create_node(&node(
        &push_service,
        "alice-phone",
        NodeType::Push,
        "whitelist",
    ))?;
    store
        .pubsub()
        .create_node(&node(&pubsub_service, "news", NodeType::Flat, "open"))?;
    store.pubsub().publish(
        &alice,
        pep,
        "avatar1",
        &alice,
        "<metadata xmlns='urn:xmpp:avatar:metadata'><info id='avatar1' bytes='1024' type='image/png'/></metadata>",
        Timestamp::now(),
    )?;
    store.pubsub().publish(
        &push_service,
        "alice-phone",
        "n1",
        &bob,
        "<notification xmlns='urn:xmpp:push:0'><x xmlns='jabber:x:data'/></notification>",
        Timestamp::now(),
    )?;
    store.pubsub().publish(
        &pubsub_service,
        "news",
        "release-1",
        &bob,
        "<entry xmlns='http://www.w3.org/2005/Atom'><title>jidstore 0.1</title></entry>",
        Timestamp::now(),
    )?;
    store
        .pubsub()
        .subscribe(&alice, pep, &bob, SubState::Subscribed)?;
    store
        .pubsub()
        .subscribe(&pubsub_service, "news", &alice, SubState::Subscribed)?;

    store
        .last()
        .set(&alice, Timestamp::now().as_secs() - 600, "Gone to lunch")?;
    store.privacy().set_list(
        &alice,
        "work",
        &[PrivacyItem {
            order: 1,
            kind: Some(PrivacyType::Jid),
            value: Some("spam@bad.example".into()),
            action: PrivacyAction::Deny,
            message: true,
            iq: false,
            presence_in: false,
            presence_out: false,
        }],
    )?;
    store.privacy().set_default(&alice, Some("work"))?;
    store
        .blocklist()
        .block(&alice, &[Jid::parse("troll@bad.example")?])?;
    Ok(())
}
