//! `jidstore mam query`: one page of an archive on stdout.

use std::fmt::Write as _;
use std::io::Write;

use serde_json::{Value, json};

use super::{Env, MamArchive, MamCommand, MamQuery};
use crate::ext::mam::{ArchivedMessage, ArchivedMucMessage, Page, PageFrom, Query};
use crate::{BareJid, Jid, Timestamp};

/// Whose archive a `mam` subcommand works on.
pub(super) enum Archive {
    User(BareJid),
    Room(BareJid),
}

/// Converts the low args into the [`Archive`] they name.
pub(super) fn archive(a: &MamArchive) -> anyhow::Result<Archive> {
    Ok(match (&a.room, &a.username, &a.domain) {
        (Some(room), _, _) => Archive::Room(BareJid::parse(room)?),
        (None, Some(user), Some(domain)) => Archive::User(BareJid::from_parts(user, domain)?),
        _ => anyhow::bail!("name a user (<username> <domain>) or a room (--room)"),
    })
}

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
    // Every argument is checked before the store is opened.
    let q = query(a)?;
    let target = archive(&a.archive)?;
    let store = env.open(false)?;
    let mut text = String::new();
    let doc = match &target {
        Archive::Room(room) => render(&mut text, &store.muc().query(room, &q)?)?,
        Archive::User(owner) => render(&mut text, &store.mam().query(owner, &q)?)?,
    };
    env.emit(out, &doc, &text)?;
    Ok(0)
}

/// One message of a page as printed: id, timestamp, the two parties as (name, value) and
/// the stanza.
struct Row<'m>(&'m str, Timestamp, [(&'static str, String); 2], &'m str);

/// A message of either archive, as a page prints it.
trait Printed {
    fn row(&self) -> Row<'_>;
}

/// A room's message: the sender and the nick.
impl Printed for ArchivedMucMessage {
    fn row(&self) -> Row<'_> {
        let parties = [
            ("sender", self.sender.to_string()),
            ("nick", self.nick.clone()),
        ];
        Row(&self.id, self.timestamp, parties, &self.stanza)
    }
}

/// A user's message: from and to.
impl Printed for ArchivedMessage {
    fn row(&self) -> Row<'_> {
        let parties = [("from", self.from.to_string()), ("to", self.to.to_string())];
        Row(&self.id, self.timestamp, parties, &self.stanza)
    }
}

/// A page as text (one tab-separated line per message: id, timestamp, both parties,
/// stanza; then the footer) and as JSON (the same fields by name, the stanza as stored).
fn render<M: Printed>(text: &mut String, page: &Page<M>) -> anyhow::Result<Value> {
    let mut messages = Vec::new();
    for m in &page.messages {
        let Row(id, timestamp, [(k1, v1), (k2, v2)], stanza) = m.row();
        writeln!(text, "{id}\t{timestamp}\t{v1}\t{v2}\t{}", one_line(stanza))?;
        let mut doc = serde_json::Map::new();
        doc.insert("id".into(), id.into());
        doc.insert("timestamp".into(), timestamp.to_string().into());
        doc.insert(k1.into(), v1.into());
        doc.insert(k2.into(), v2.into());
        doc.insert("stanza".into(), stanza.into());
        messages.push(Value::Object(doc));
    }
    footer(text, page)?;
    Ok(page_json(page, &messages))
}
