//! `jidstore mam query`: one page of an archive on stdout.

use std::fmt::Write as _;
use std::io::Write;

use serde_json::{Value, json};

use super::{Env, MamCommand, MamQuery};
use crate::ext::mam::{Page, PageFrom, Query};
use crate::{BareJid, Jid};

/// Converts the low args into a library [`Query`].
fn query(a: &MamQuery) -> anyhow::Result<Query> {
    let page = match (&a.after, &a.before) {
        (Some(id), _) => PageFrom::After(id.clone()),
        (None, Some(id)) if id.is_empty() => PageFrom::Before(None),
        (None, Some(id)) => PageFrom::Before(Some(id.clone())),
        (None, None) => PageFrom::First,
    };
    Ok(Query {
        with: a.with.as_deref().map(Jid::parse).transpose()?,
        start: a.start,
        end: a.end,
        after_id: a.after_id.clone(),
        before_id: a.before_id.clone(),
        ids: a.ids.clone(),
        max: a.max,
        page,
        flip_page: a.flip_page,
        count: true,
    })
}

/// Tabs and newlines in a stanza would break the one-line-per-message output.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r', '\t'], " ")
}

fn footer<M>(text: &mut String, page: &Page<M>) -> std::fmt::Result {
    writeln!(
        text,
        "first={} last={} complete={} count={}",
        page.first.as_deref().unwrap_or("-"),
        page.last.as_deref().unwrap_or("-"),
        page.complete,
        page.count.map_or_else(|| "-".to_owned(), |c| c.to_string())
    )
}

fn page_json<M>(page: &Page<M>, messages: &[Value]) -> Value {
    json!({
        "messages": messages,
        "first": page.first,
        "last": page.last,
        "complete": page.complete,
        "count": page.count,
    })
}

/// `jidstore mam query`: one page, one tab-separated line per message, then the footer.
pub(super) fn run(env: &Env<'_>, command: MamCommand, out: &mut dyn Write) -> anyhow::Result<u8> {
    match command {
        MamCommand::Query(a) => run_query(env, &a, out),
        MamCommand::Delete(d) => super::retention::delete(env, &d, out),
    }
}

fn run_query(env: &Env<'_>, a: &MamQuery, out: &mut dyn Write) -> anyhow::Result<u8> {
    let q = query(a)?;
    // Every argument is checked before the store is opened.
    let room = a.room.as_deref().map(BareJid::parse).transpose()?;
    let owner = match (&a.username, &a.domain) {
        (Some(user), Some(domain)) => Some(BareJid::from_parts(user, domain)?),
        _ => None,
    };
    let store = env.open(false)?;
    let mut text = String::new();
    let doc = if let Some(room) = &room {
        let page = store.muc().query(room, &q)?;
        let mut messages = Vec::new();
        for m in &page.messages {
            writeln!(
                text,
                "{}\t{}\t{}\t{}\t{}",
                m.id,
                m.timestamp,
                m.sender,
                m.nick,
                one_line(&m.stanza)
            )?;
            messages.push(json!({
                "id": m.id,
                "timestamp": m.timestamp.to_string(),
                "sender": m.sender.to_string(),
                "nick": m.nick,
                "stanza": m.stanza,
            }));
        }
        footer(&mut text, &page)?;
        page_json(&page, &messages)
    } else {
        let Some(owner) = owner else {
            anyhow::bail!("a username and a domain, or --room, are required");
        };
        let page = store.mam().query(&owner, &q)?;
        let mut messages = Vec::new();
        for m in &page.messages {
            writeln!(
                text,
                "{}\t{}\t{}\t{}\t{}",
                m.id,
                m.timestamp,
                m.from,
                m.to,
                one_line(&m.stanza)
            )?;
            messages.push(json!({
                "id": m.id,
                "timestamp": m.timestamp.to_string(),
                "from": m.from.to_string(),
                "to": m.to.to_string(),
                "stanza": m.stanza,
            }));
        }
        footer(&mut text, &page)?;
        page_json(&page, &messages)
    };
    env.emit(out, &doc, &text)?;
    Ok(0)
}
