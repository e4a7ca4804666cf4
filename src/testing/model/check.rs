//! Everything the store shows, compared with the model.

use std::collections::BTreeMap;
use std::io::Cursor;

use super::state::Model;
use super::{
    Divergence, N, PUBSUB, at, ensure, ensure_eq, full, jid, name, payload, private_xml, room,
    service, sorted, stanza, vcard,
};
use crate::error::Error;
use crate::ext::mam::{PageFrom, Query};
use crate::ext::pubsub::Affiliation;
use crate::gdpr::{self, ExportOptions};
use crate::jid::{BareJid, Jid};
use crate::store::Store;

/// What the model holds for user `u` in one of its per-user maps (nothing when absent).
fn held<C>(map: &BTreeMap<usize, C>, u: usize) -> impl Iterator<Item = <&C as IntoIterator>::Item>
where
    for<'c> &'c C: IntoIterator,
{
    map.get(&u).into_iter().flatten()
}

/// The zip bytes and per-file rows of `u`'s export; `None` when the store holds nothing.
pub(super) type Export = Option<(Vec<u8>, BTreeMap<&'static str, u64>)>;

/// `u`'s export with a fixed timestamp.
pub(super) fn export(store: &Store, u: usize) -> Result<Export, Divergence> {
    let mut sink = Cursor::new(Vec::new());
    let options = ExportOptions::default().timestamp(at());
    match gdpr::retrieve(store, &jid(u), &mut sink, &options) {
        Ok(summary) => {
            let rows = summary.files.iter().map(|f| (f.name, f.rows)).collect();
            Ok(Some((sink.into_inner(), rows)))
        }
        Err(Error::NoPersonalData(_)) => Ok(None),
        Err(e) => Err(Divergence(format!("export of {} failed: {e}", name(u)))),
    }
}

/// `verify` is clean, every user's data and export equal the model, and so do the room
/// archive and every node.
pub(super) fn check(store: &Store, m: &Model) -> Result<(), Divergence> {
    let report = crate::verify::verify(store)?;
    ensure!(report.is_clean(), "verify: {report}");
    for u in 0..N {
        check_user(store, m, u)?;
        check_archive(store, m, u)?;
        check_export(store, m, u)?;
    }
    let muc: Vec<_> = store
        .muc()
        .list(&room())?
        .into_iter()
        .map(|x| (x.sender.to_string(), x.stanza))
        .collect();
    let want: Vec<_> = m
        .muc
        .iter()
        .map(|(s, v)| (jid(*s).to_string(), stanza(*v)))
        .collect();
    ensure_eq!(muc, want, "room archive");
    for s in 0..=PUBSUB {
        check_service(store, m, s)?;
    }
    Ok(())
}

/// Every typed read of user `u` but the 1-1 archive.
fn check_user(store: &Store, m: &Model, u: usize) -> Result<(), Divergence> {
    let j = jid(u);
    let name = name(u);
    ensure_eq!(store.accounts().exists(&j)?, m.has(u), "account of {name}");
    let roster: Vec<_> = store
        .roster()
        .list(&j)?
        .into_iter()
        .map(|i| (i.jid.to_string(), i.name))
        .collect();
    let want: Vec<_> = held(&m.roster, u)
        .map(|(c, n)| (jid(*c).to_string(), Some(format!("n{n}"))))
        .collect();
    ensure_eq!(sorted(roster), sorted(want), "roster of {name}");
    let want = m.vcard.get(&u).map(|v| vcard(*v));
    ensure_eq!(store.vcard().get(&j)?, want, "vcard of {name}");
    let want: Vec<_> = held(&m.private, u)
        .map(|(ns, v)| (format!("ns{ns}"), private_xml(*ns, *v)))
        .collect();
    ensure_eq!(store.private().list(&j)?, want, "private of {name}");
    let offline: Vec<_> = store
        .offline()
        .list(&j)?
        .into_iter()
        .map(|o| (o.from.to_string(), o.stanza))
        .collect();
    let want: Vec<_> = held(&m.offline, u)
        .map(|(f, v)| (full(*f).to_string(), stanza(*v)))
        .collect();
    ensure_eq!(offline, want, "offline of {name}");
    let inbox: Vec<_> = store
        .inbox()
        .list(&j)?
        .into_iter()
        .map(|e| (e.remote.to_string(), e.content, e.unread))
        .collect();
    let want: Vec<_> = held(&m.inbox, u)
        .map(|(r, (v, unread))| (jid(*r).to_string(), stanza(*v), *unread))
        .collect();
    ensure_eq!(sorted(inbox), sorted(want), "inbox of {name}");
    let want = m.last.get(&u).map(|v| i64::from(*v));
    ensure_eq!(
        store.last().get(&j)?.map(|l| l.seconds),
        want,
        "last of {name}"
    );
    let mut lists = Vec::new();
    for l in store.privacy().list_names(&j)? {
        let n = store.privacy().get_list(&j, &l)?.map(|items| items.len());
        lists.push((l, n));
    }
    let want: Vec<_> = held(&m.privacy, u)
        .map(|(l, n)| (format!("list{l}"), Some(usize::from(*n))))
        .collect();
    ensure_eq!(lists, want, "privacy of {name}");
    let blocked: Vec<_> = store
        .blocklist()
        .list(&j)?
        .into_iter()
        .map(|b| b.to_string())
        .collect();
    let want: Vec<_> = held(&m.blocked, u).map(|b| full(*b).to_string()).collect();
    ensure_eq!(sorted(blocked), sorted(want), "blocklist of {name}");
    Ok(())
}

/// User `u`'s 1-1 archive: the listing, the count and (with an account) the queries.
fn check_archive(store: &Store, m: &Model, u: usize) -> Result<(), Divergence> {
    let j = jid(u);
    let archive: Vec<_> = store
        .mam()
        .list(&j)?
        .into_iter()
        .map(|a| (a.id, a.to.to_string(), a.stanza))
        .collect();
    let want: Vec<_> = held(&m.mam, u)
        .map(|x| (x.id.clone(), full(x.peer).to_string(), stanza(x.v)))
        .collect();
    ensure_eq!(archive, want, "archive of {}", name(u));
    ensure_eq!(
        store.mam().count(&j)?,
        want.len() as u64,
        "archive count of {}",
        name(u)
    );
    if m.has(u) {
        check_queries(store, &j, &want)?;
    }
    Ok(())
}

/// Paged queries (forward in pages of 3, the last page, `with` each user, by id) agree
/// with the listing `want` of (id, to, stanza).
fn check_queries(
    store: &Store,
    j: &BareJid,
    want: &[(String, String, String)],
) -> Result<(), Divergence> {
    let mut paged = Vec::new();
    let mut page = PageFrom::First;
    loop {
        let q = Query {
            max: Some(3),
            page: page.clone(),
            count: true,
            ..Query::default()
        };
        let got = store.mam().query(j, &q)?;
        ensure_eq!(got.count, Some(want.len() as u64), "query count of {j}");
        paged.extend(got.messages.iter().map(|m| m.id.clone()));
        match (got.complete, got.last) {
            (false, Some(last)) => page = PageFrom::After(last),
            _ => break,
        }
    }
    let ids: Vec<_> = want.iter().map(|w| w.0.clone()).collect();
    ensure_eq!(paged, ids, "paged query of {j}");
    let q = Query {
        max: Some(2),
        page: PageFrom::Before(None),
        ..Query::default()
    };
    let got: Vec<_> = store
        .mam()
        .query(j, &q)?
        .messages
        .into_iter()
        .map(|m| m.id)
        .collect();
    let tail: Vec<_> = ids
        .iter()
        .skip(ids.len().saturating_sub(2))
        .cloned()
        .collect();
    ensure_eq!(got, tail, "last page of {j}");
    for peer in 0..N {
        let q = Query {
            with: Some(Jid::parse(name(peer))?),
            max: Some(1000),
            ..Query::default()
        };
        let got: Vec<_> = store
            .mam()
            .query(j, &q)?
            .messages
            .into_iter()
            .map(|m| m.id)
            .collect();
        let to = full(peer).to_string();
        let want: Vec<_> = want
            .iter()
            .filter(|w| w.1 == to)
            .map(|w| w.0.clone())
            .collect();
        ensure_eq!(got, want, "with={} query of {j}", name(peer));
    }
    for (id, _, stanza) in want {
        let got = store.mam().get(j, id)?.map(|m| m.stanza);
        ensure_eq!(got.as_ref(), Some(stanza), "get {id} of {j}");
    }
    Ok(())
}

/// Two exports of `u` with a fixed timestamp are identical and have the model's rows.
fn check_export(store: &Store, m: &Model, u: usize) -> Result<(), Divergence> {
    let first = export(store, u)?;
    let second = export(store, u)?;
    ensure!(
        first.as_ref().map(|e| &e.0) == second.as_ref().map(|e| &e.0),
        "two exports of {} with a fixed timestamp differ",
        name(u)
    );
    let want = m.export_rows(u);
    match first {
        Some((_, rows)) => ensure_eq!(rows, want, "export rows of {}", name(u)),
        None => ensure!(
            want.values().all(|n| *n == 0),
            "no export for {}, model {want:?}",
            name(u)
        ),
    }
    Ok(())
}

/// Service `s`'s nodes, and each node's items, subscriptions and affiliations.
fn check_service(store: &Store, m: &Model, s: usize) -> Result<(), Divergence> {
    let svc = service(s);
    let nodes: Vec<_> = store
        .pubsub()
        .nodes(&svc)?
        .into_iter()
        .map(|n| (n.node, n.owner.to_string(), n.kind))
        .collect();
    let want: Vec<_> = m
        .nodes
        .iter()
        .filter(|((sv, _), _)| *sv == s)
        .map(|((_, n), (o, k))| (format!("n{n}"), jid(*o).to_string(), k.node_type()))
        .collect();
    ensure_eq!(nodes, want, "nodes of {svc}");
    for (&(_, n), &(owner, _)) in m.nodes.range((s, 0)..=(s, u8::MAX)) {
        let node = format!("n{n}");
        let items: Vec<_> = store
            .pubsub()
            .items(&svc, &node)?
            .into_iter()
            .map(|i| (i.id, i.publisher.to_string(), i.payload))
            .collect();
        let want: Vec<_> = m
            .items
            .range((s, n, 0)..=(s, n, u8::MAX))
            .map(|(&(_, _, i), &(p, v))| (format!("i{i}"), jid(p).to_string(), payload(v)))
            .collect();
        ensure_eq!(items, want, "items of {svc} {node}");
        let subs: Vec<_> = store
            .pubsub()
            .subscriptions(&svc, &node)?
            .into_iter()
            .map(|x| x.subscriber.to_string())
            .collect();
        let want: Vec<_> = m
            .subs
            .iter()
            .filter(|x| x.0 == s && x.1 == n)
            .map(|x| jid(x.2).to_string())
            .collect();
        ensure_eq!(sorted(subs), sorted(want), "subscriptions of {svc} {node}");
        let want = vec![(jid(owner), Affiliation::Owner)];
        ensure_eq!(
            store.pubsub().affiliations(&svc, &node)?,
            want,
            "affiliations of {svc} {node}"
        );
    }
    Ok(())
}
