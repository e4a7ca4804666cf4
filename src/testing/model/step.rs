//! One operation on the store and the model, and the check that their outcomes agree.

use std::collections::BTreeSet;

use super::state::{Model, Msg};
use super::{
    Divergence, Kind, MAX_BULK, N, Op, PUBSUB, at, check, ensure, ensure_eq, full, jid, name,
    payload, private_xml, room, service, stanza, vcard,
};
use crate::error::{Error, Result};
use crate::ext::mam::{Direction, MucMessage, PmMessage};
use crate::ext::offline::OfflineMessage;
use crate::ext::privacy::{PrivacyAction, PrivacyItem};
use crate::ext::pubsub::{Node, SubState};
use crate::ext::roster::{Ask, RosterItem, Subscription};
use crate::gdpr;
use crate::store::Store;

/// How an operation ended, as far as the model can tell.
#[derive(Debug, PartialEq, Eq)]
enum Out {
    Ok,
    NoAccount,
    NotFound,
    Exists,
    Invalid,
}

/// The outcome of `r`; an error the model never predicts is a divergence.
fn out<T>(r: &Result<T>) -> Result<Out, Divergence> {
    Ok(match r {
        Ok(_) => Out::Ok,
        Err(Error::NoAccount(_)) => Out::NoAccount,
        Err(Error::NotFound(_)) => Out::NotFound,
        Err(Error::AccountExists(_)) => Out::Exists,
        Err(Error::InvalidInput(_)) => Out::Invalid,
        Err(e) => return Err(Divergence(format!("unexpected error: {e}"))),
    })
}

/// The outcome of a write that needs `u`'s account.
fn needs(m: &Model, u: usize) -> Out {
    if m.has(u) { Out::Ok } else { Out::NoAccount }
}

fn pm(owner: usize, peer: usize, id: Option<String>, v: u8) -> PmMessage {
    PmMessage {
        id,
        timestamp: at(),
        from: full(owner),
        to: full(peer),
        direction: Direction::Outgoing,
        origin_id: None,
        stanza: stanza(v),
    }
}

/// Applies `op` (not [`Op::Reopen`], which only checks) to the store and the model.
#[expect(
    clippy::too_many_lines,
    clippy::many_single_char_names,
    reason = "one arm per operation, over short indexes and values as in `Op`"
)]
pub(super) fn apply(st: &Store, m: &mut Model, op: &Op) -> Result<(), Divergence> {
    match *op {
        Op::Create(u) => {
            let want = if m.accounts.insert(u) {
                Out::Ok
            } else {
                Out::Exists
            };
            ensure_eq!(
                out(&st.accounts().create(&jid(u), "pw"))?,
                want,
                "create {}",
                name(u)
            );
        }
        Op::RosterSet(u, c, n) => {
            let item = RosterItem {
                jid: jid(c),
                name: Some(format!("n{n}")),
                subscription: Subscription::Both,
                ask: Ask::None,
                groups: vec![],
                askmessage: None,
            };
            let want = needs(m, u);
            if want == Out::Ok {
                m.roster.entry(u).or_default().insert(c, n);
            }
            ensure_eq!(out(&st.roster().set(&jid(u), &item))?, want, "roster set");
        }
        Op::RosterRemove(u, c) => {
            let had = m.roster.get_mut(&u).and_then(|r| r.remove(&c)).is_some();
            ensure_eq!(st.roster().remove(&jid(u), &jid(c))?, had, "roster remove");
        }
        Op::VcardSet(u, v) => {
            let want = needs(m, u);
            if want == Out::Ok {
                m.vcard.insert(u, v);
            }
            ensure_eq!(out(&st.vcard().set(&jid(u), &vcard(v)))?, want, "vcard set");
        }
        Op::VcardRemove(u) => {
            let had = m.vcard.remove(&u).is_some();
            ensure_eq!(st.vcard().remove(&jid(u))?, had, "vcard remove");
        }
        Op::PrivateSet(u, ns, v) => {
            let want = needs(m, u);
            if want == Out::Ok {
                m.private.entry(u).or_default().insert(ns, v);
            }
            let r = st
                .private()
                .set(&jid(u), &format!("ns{ns}"), &private_xml(ns, v));
            ensure_eq!(out(&r)?, want, "private set");
        }
        Op::OfflineStore(u, from, v) => {
            let want = needs(m, u);
            if want == Out::Ok {
                m.offline.entry(u).or_default().push((from, v));
            }
            let msg = OfflineMessage {
                from: full(from),
                to: full(u),
                timestamp: at(),
                expires: None,
                stanza: stanza(v),
            };
            ensure_eq!(
                out(&st.offline().store(&jid(u), &msg))?,
                want,
                "offline store"
            );
        }
        Op::OfflinePop(u) => {
            let popped: Vec<_> = st
                .offline()
                .pop_all(&jid(u), at())?
                .into_iter()
                .map(|o| (o.from.to_string(), o.stanza))
                .collect();
            let want: Vec<_> = m
                .offline
                .remove(&u)
                .unwrap_or_default()
                .into_iter()
                .map(|(f, v)| (full(f).to_string(), stanza(v)))
                .collect();
            ensure_eq!(popped, want, "offline pop of {}", name(u));
        }
        Op::InboxMessage(u, r, v, incoming) => {
            let want = needs(m, u);
            if want == Out::Ok {
                let entry = m.inbox.entry(u).or_default().entry(r).or_insert((v, 0));
                entry.0 = v;
                entry.1 = if incoming { entry.1 + 1 } else { 0 };
            }
            let res = st
                .inbox()
                .on_message(&jid(u), &jid(r), &stanza(v), None, at(), incoming);
            ensure_eq!(out(&res)?, want, "inbox message");
        }
        Op::InboxReset(u, r) => {
            let res = st.inbox().reset_unread(&jid(u), &jid(r));
            if m.has(u) {
                let e = m.inbox.get_mut(&u).and_then(|i| i.get_mut(&r));
                ensure_eq!(res?, e.is_some(), "inbox reset");
                if let Some(e) = e {
                    e.1 = 0;
                }
            } else {
                ensure_eq!(out(&res)?, Out::NoAccount, "inbox reset");
            }
        }
        Op::MamAppend(u, peer, v) => {
            let r = st.mam().append(&jid(u), &pm(u, peer, None, v));
            ensure_eq!(out(&r)?, needs(m, u), "mam append");
            if let Ok(id) = r {
                m.mam.entry(u).or_default().push(Msg { id, peer, v });
            }
        }
        Op::MamBulk(u, ref bytes) => mam_bulk(st, m, u, bytes)?,
        Op::MamRemove(u, i) => match m.mam.get_mut(&u).filter(|l| !l.is_empty()) {
            Some(list) => {
                let x = list.remove(usize::from(i) % list.len());
                ensure!(
                    st.mam().remove(&jid(u), &x.id)?,
                    "mam remove {} found nothing",
                    x.id
                );
                ensure!(
                    !st.mam().remove(&jid(u), &x.id)?,
                    "mam remove {} twice",
                    x.id
                );
            }
            None => ensure!(!st.mam().remove(&jid(u), "x0")?, "mam remove from nothing"),
        },
        Op::MucAppend(u, v) => {
            m.muc.push((u, v));
            let msg = MucMessage {
                id: None,
                timestamp: at(),
                sender: jid(u),
                nick: format!("nick{u}"),
                stanza: stanza(v),
            };
            st.muc().append(&room(), &msg)?;
        }
        Op::CreateNode(u, kind, n) => {
            let s = if kind == Kind::Pep { u } else { PUBSUB };
            let want = if !m.has(u) {
                Out::NoAccount
            } else if let std::collections::btree_map::Entry::Vacant(e) = m.nodes.entry((s, n)) {
                e.insert((u, kind));
                Out::Ok
            } else {
                Out::Invalid
            };
            let node = Node {
                service: service(s),
                node: format!("n{n}"),
                owner: jid(u),
                kind: kind.node_type(),
                access_model: "open".into(),
                config: vec![],
                created_at: at(),
            };
            ensure_eq!(out(&st.pubsub().create_node(&node))?, want, "create node");
        }
        Op::Publish(u, target, item, v) => {
            let (s, n) = m.node(target);
            let want = if m.nodes.contains_key(&(s, n)) {
                m.items.insert((s, n, item), (u, v));
                Out::Ok
            } else {
                Out::NotFound
            };
            let res = st.pubsub().publish(
                &service(s),
                &format!("n{n}"),
                &format!("i{item}"),
                &jid(u),
                &payload(v),
                at(),
            );
            ensure_eq!(out(&res)?, want, "publish");
        }
        Op::Subscribe(u, target) => {
            let (s, n) = m.node(target);
            let want = if m.nodes.contains_key(&(s, n)) {
                m.subs.insert((s, n, u));
                Out::Ok
            } else {
                Out::NotFound
            };
            let res =
                st.pubsub()
                    .subscribe(&service(s), &format!("n{n}"), &jid(u), SubState::Subscribed);
            ensure_eq!(out(&res)?, want, "subscribe");
        }
        Op::DeleteNode(target) => {
            let (s, n) = m.node(target);
            let had = m.nodes.contains_key(&(s, n));
            m.delete_node((s, n));
            let res = st.pubsub().delete_node(&service(s), &format!("n{n}"))?;
            ensure_eq!(res, had, "delete node");
        }
        Op::LastSet(u, v) => {
            let want = needs(m, u);
            if want == Out::Ok {
                m.last.insert(u, v);
            }
            ensure_eq!(
                out(&st.last().set(&jid(u), i64::from(v), "away"))?,
                want,
                "last set"
            );
        }
        Op::PrivacySet(u, l, n) => {
            let want = needs(m, u);
            if want == Out::Ok {
                m.privacy.entry(u).or_default().insert(l, n);
            }
            let items: Vec<_> = (0..u32::from(n))
                .map(|order| PrivacyItem {
                    order,
                    kind: None,
                    value: None,
                    action: PrivacyAction::Deny,
                    message: true,
                    iq: false,
                    presence_in: false,
                    presence_out: false,
                })
                .collect();
            let res = st.privacy().set_list(&jid(u), &format!("list{l}"), &items);
            ensure_eq!(out(&res)?, want, "privacy set");
        }
        Op::Block(u, c) => {
            let want = needs(m, u);
            if want == Out::Ok {
                m.blocked.entry(u).or_default().insert(c);
            }
            ensure_eq!(
                out(&st.blocklist().block(&jid(u), &[full(c)]))?,
                want,
                "block"
            );
        }
        Op::Unblock(u, c) => {
            if let Some(b) = m.blocked.get_mut(&u) {
                b.remove(&c);
            }
            let res = out(&st.blocklist().unblock(&jid(u), &[full(c)]))?;
            // Unblocking for a user without an account removes nothing, whichever way the
            // store reports it.
            ensure!(
                res == Out::Ok || (!m.has(u) && res == Out::NoAccount),
                "unblock: store {res:?}"
            );
        }
        Op::Reopen => check::check(st, m)?,
        Op::RemoveUser(u) => remove_user(st, m, u)?,
    }
    Ok(())
}

/// Imported ids `x<byte>`: a duplicate inside the call is refused before the account is
/// looked up, one already in the archive after.
fn mam_bulk(st: &Store, m: &mut Model, u: usize, bytes: &[u8]) -> Result<(), Divergence> {
    let msgs: Vec<Msg> = bytes
        .iter()
        .take(MAX_BULK)
        .map(|b| Msg {
            id: format!("x{b}"),
            peer: usize::from(*b) % N,
            v: *b,
        })
        .collect();
    let batch: Vec<PmMessage> = msgs
        .iter()
        .map(|x| pm(u, x.peer, Some(x.id.clone()), x.v))
        .collect();
    let r = st.mam().append_bulk(&jid(u), batch);
    let existing: BTreeSet<&str> = m
        .mam
        .get(&u)
        .into_iter()
        .flatten()
        .map(|x| x.id.as_str())
        .collect();
    let mut seen = BTreeSet::new();
    let repeated = msgs.iter().any(|x| !seen.insert(x.id.as_str()));
    let duplicate = repeated || msgs.iter().any(|x| existing.contains(x.id.as_str()));
    if msgs.is_empty() {
        ensure_eq!(r?, 0, "empty bulk");
    } else if repeated {
        ensure_eq!(out(&r)?, Out::Invalid, "bulk with a repeated id");
    } else if !m.has(u) {
        ensure_eq!(out(&r)?, Out::NoAccount, "bulk without an account");
    } else if duplicate {
        ensure_eq!(out(&r)?, Out::Invalid, "bulk with an archived id");
    } else {
        ensure_eq!(r?, msgs.len() as u64, "bulk");
        m.mam.entry(u).or_default().extend(msgs);
    }
    Ok(())
}

/// Erases `u`; checks the outcome, the store, the subject's export (only kept files), the
/// group-chat messages it sent (kept) and that untouched users' exports did not change.
fn remove_user(st: &Store, m: &mut Model, u: usize) -> Result<(), Divergence> {
    let before = (0..N)
        .map(|v| check::export(st, v).map(|e| e.map(|e| e.0)))
        .collect::<Result<Vec<_>, _>>()?;
    let holds = m.holds_anything(u);
    let res = gdpr::remove(st, &jid(u));
    match (&res, holds) {
        (Ok(_), true) | (Err(Error::NoPersonalData(_)), false) => {}
        _ => ensure!(
            false,
            "remove {}: {res:?}, model holds anything = {holds}",
            name(u)
        ),
    }
    let touched = m.remove_user(u);
    check::check(st, m)?;
    if let Some((_, rows)) = check::export(st, u)? {
        for (file, n) in rows {
            ensure!(
                n == 0 || super::KEPT_FILES.contains(&file),
                "{} still has {n} rows in {file} after erasure",
                name(u)
            );
        }
    }
    let sent = m.muc.iter().filter(|x| x.0 == u).count();
    ensure_eq!(
        st.muc().by_sender(&jid(u))?.len(),
        sent,
        "kept group-chat messages"
    );
    for (v, was) in before.iter().enumerate() {
        if v != u && !touched.contains(&v) {
            let now = check::export(st, v)?.map(|e| e.0);
            ensure!(
                now == *was,
                "export of {} changed when {} was erased",
                name(v),
                name(u)
            );
        }
    }
    Ok(())
}
