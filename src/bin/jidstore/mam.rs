//! `jidstore mam query`: one page of an archive on stdout.

use std::io::Write;
use std::path::PathBuf;

use jidstore::ext::mam::{Page, PageFrom, Query};
use jidstore::{BareJid, Jid, Timestamp};

use crate::cli::{MamCommand, MamQuery};

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
        start: a
            .start
            .as_deref()
            .map(Timestamp::parse_rfc3339)
            .transpose()?,
        end: a.end.as_deref().map(Timestamp::parse_rfc3339).transpose()?,
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

fn footer<M>(out: &mut impl Write, page: &Page<M>) -> std::io::Result<()> {
    writeln!(
        out,
        "first={} last={} complete={} count={}",
        page.first.as_deref().unwrap_or("-"),
        page.last.as_deref().unwrap_or("-"),
        page.complete,
        page.count.map_or_else(|| "-".to_owned(), |c| c.to_string())
    )
}

pub(crate) fn run(
    data_dir: Option<PathBuf>,
    command: MamCommand,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let MamCommand::Query(a) = command;
    let q = query(&a)?;
    let store = crate::open(data_dir, false)?;
    if let Some(room) = &a.room {
        let room = BareJid::parse(room)?;
        let page = store.muc().query(&room, &q)?;
        for m in &page.messages {
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                m.id,
                m.timestamp,
                m.sender,
                m.nick,
                one_line(&m.stanza)
            )?;
        }
        footer(out, &page)?;
    } else {
        let (Some(user), Some(domain)) = (&a.username, &a.domain) else {
            anyhow::bail!("a username and a domain, or --room, are required");
        };
        let owner = BareJid::from_parts(user, domain)?;
        let page = store.mam().query(&owner, &q)?;
        for m in &page.messages {
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                m.id,
                m.timestamp,
                m.from,
                m.to,
                one_line(&m.stanza)
            )?;
        }
        footer(out, &page)?;
    }
    Ok(())
}
