//! Prosody stores kept in jidstore's dedicated classes: roster, vCard, private XML, blocklist
//! (key-value stores the Lua side converts to and from plain tables), offline messages, the
//! 1-1 MAM archive (`archive`) and the group-chat archive (`muc_log`).
//!
//! Every method returns `false` (or nil) where the class cannot take the data (no such
//! account, a JID that does not parse, a stanza that is not one element): the Lua side then
//! keeps the value in the generic class, so no write is lost.

use jidstore::ext::mam::{
    ArchivedMessage, ArchivedMucMessage, Direction, MucMessage, Page, PageFrom, PmMessage, Query,
};
use jidstore::ext::offline::OfflineMessage;
use jidstore::ext::pubsub::{Node, NodeType};
use jidstore::ext::roster::{Ask, RosterItem, Subscription};
use jidstore::{BareJid, Jid, Store};
use mlua::{Lua, Table, UserDataMethods, Value};

use crate::{Handle, from_secs, guarded, lua_err, opt_count, opt_string, opt_time, owner, to_secs};

/// Whether `e` means "this class cannot hold that" (so the caller falls back to the generic
/// class) rather than a storage failure.
fn unmappable(e: &jidstore::Error) -> bool {
    matches!(
        e,
        jidstore::Error::NoAccount(_)
            | jidstore::Error::InvalidJid { .. }
            | jidstore::Error::InvalidInput(_)
    )
}

/// `Ok(true)` on success, `Ok(false)` when the data does not fit the class.
fn fits(r: jidstore::Result<()>) -> mlua::Result<bool> {
    match r {
        Ok(()) => Ok(true),
        Err(e) if unmappable(&e) => Ok(false),
        Err(e) => Err(lua_err(&e)),
    }
}

fn subscription(s: &str) -> Option<Subscription> {
    Some(match s {
        "none" => Subscription::None,
        "to" => Subscription::To,
        "from" => Subscription::From,
        "both" => Subscription::Both,
        _ => return None,
    })
}

fn ask(s: &str) -> Option<Ask> {
    Some(match s {
        "none" => Ask::None,
        "out" => Ask::Out,
        "in" => Ask::In,
        "both" => Ask::Both,
        _ => return None,
    })
}

/// A roster item from `{jid, name, subscription, ask, groups = {...}, askmessage}`.
fn roster_item(t: &Table) -> mlua::Result<Option<RosterItem>> {
    let Some(jid) = opt_string(t, "jid")?.and_then(|j| BareJid::parse(&j).ok()) else {
        return Ok(None);
    };
    let (Some(sub), Some(ask)) = (
        subscription(&opt_string(t, "subscription")?.unwrap_or_default()),
        ask(&opt_string(t, "ask")?.unwrap_or_default()),
    ) else {
        return Ok(None);
    };
    let groups = match t.get::<Value>("groups")? {
        Value::Table(g) => g.sequence_values::<String>().collect::<mlua::Result<_>>()?,
        _ => Vec::new(),
    };
    Ok(Some(RosterItem {
        jid,
        name: opt_string(t, "name")?,
        subscription: sub,
        ask,
        groups,
        askmessage: opt_string(t, "askmessage")?,
    }))
}

/// Replaces the owner's whole roster with `items` and sets its version. `false` when an item
/// does not fit (nothing is written then) or the owner has no account.
fn roster_replace(
    store: &Store,
    owner: &BareJid,
    items: &Table,
    version: Option<u64>,
) -> mlua::Result<bool> {
    let mut new = Vec::new();
    for t in items.sequence_values::<Table>() {
        let Some(item) = roster_item(&t?)? else {
            return Ok(false);
        };
        new.push(item);
    }
    let roster = store.roster();
    let old = match roster.list(owner) {
        Ok(old) => old,
        Err(e) if unmappable(&e) => return Ok(false),
        Err(e) => return Err(lua_err(&e)),
    };
    for item in &old {
        if !new.iter().any(|n| n.jid == item.jid) {
            roster.remove(owner, &item.jid).map_err(|e| lua_err(&e))?;
        }
    }
    for item in &new {
        if !old.contains(item) {
            match roster.set(owner, item) {
                Ok(_) => {}
                Err(e) if unmappable(&e) => return Ok(false),
                Err(e) => return Err(lua_err(&e)),
            }
        }
    }
    if let Some(v) = version {
        return fits(roster.set_version(owner, v));
    }
    Ok(true)
}

/// The query from Prosody's archive query table (`with` is left to the caller: a JID in the
/// 1-1 archive, the stanza type in `muc_log`), and the `key` asked for.
fn mam_query(t: Option<&Table>) -> mlua::Result<(Query, Option<String>)> {
    let mut q = Query {
        max: Some(usize::MAX),
        ..Query::default()
    };
    let Some(t) = t else {
        return Ok((q, None));
    };
    q.start = opt_time(t, "start")?;
    q.end = opt_time(t, "end")?;
    if let Some(limit) = opt_count(t, "limit")? {
        q.max = Some(limit);
    }
    q.count = t.get::<Option<bool>>("total")?.unwrap_or(false);
    let before = opt_string(t, "before")?;
    let after = opt_string(t, "after")?;
    if t.get::<Option<bool>>("reverse")?.unwrap_or(false) {
        q.page = PageFrom::Before(before);
        q.after_id = after;
        q.flip_page = true;
    } else {
        q.page = after.map_or(PageFrom::First, PageFrom::After);
        q.before_id = before;
    }
    if let Value::Table(ids) = t.get::<Value>("ids")? {
        q.ids = Some(
            ids.sequence_values::<String>()
                .collect::<mlua::Result<_>>()?,
        );
    }
    Ok((q, opt_string(t, "key")?))
}

/// Drops the ids no message has (Prosody ignores them; jidstore's query refuses them).
fn known_ids(q: &mut Query, known: impl Fn(&str) -> jidstore::Result<bool>) -> mlua::Result<()> {
    if let Some(ids) = q.ids.take() {
        let mut kept = Vec::with_capacity(ids.len());
        for id in ids {
            if known(&id).map_err(|e| lua_err(&e))? {
                kept.push(id);
            }
        }
        q.ids = Some(kept);
    }
    Ok(())
}

/// One archive's `find` (the 1-1 archive and `muc_log` alike): the single message `key` names
/// (no total), or the page `q` selects after dropping the ids no message has, as
/// `page_result` returns it. `get` and `query` read the one archive; `to_item` converts.
fn find_page<M>(
    lua: &Lua,
    mut q: Query,
    key: Option<String>,
    get: impl Fn(&str) -> jidstore::Result<Option<M>>,
    query: impl FnOnce(&Query) -> jidstore::Result<Page<M>>,
    to_item: impl Fn(M) -> mlua::Result<Table>,
) -> mlua::Result<(Value, Value)> {
    if let Some(key) = key {
        let found = get(&key).map_err(|e| lua_err(&e))?;
        let items = found.map(to_item).transpose()?.into_iter().collect();
        return page_result(lua, Ok(items), None);
    }
    known_ids(&mut q, |id| Ok(get(id)?.is_some()))?;
    match query(&q) {
        Ok(page) => {
            let items = page
                .messages
                .into_iter()
                .map(to_item)
                .collect::<mlua::Result<Vec<_>>>()?;
            page_result(lua, Ok(items), page.count)
        }
        Err(e) => page_result(lua, Err(e), None),
    }
}

/// One found item for Lua: `{id, when, with, value}` plus class-specific fields.
fn item(
    lua: &Lua,
    id: String,
    when: f64,
    with: Option<String>,
    value: String,
) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(0, 4)?;
    t.set("id", id)?;
    t.set("when", when)?;
    t.set("with", with)?;
    t.set("value", value)?;
    Ok(t)
}

/// `(items, total)`, or `(nil, "item-not-found")` for an unknown `before`/`after` id.
fn page_result(
    lua: &Lua,
    page: jidstore::Result<Vec<Table>>,
    total: Option<u64>,
) -> mlua::Result<(Value, Value)> {
    match page {
        Ok(items) => {
            let total = total.map_or(Value::Nil, |n| {
                Value::Integer(i64::try_from(n).unwrap_or(i64::MAX))
            });
            Ok((Value::Table(lua.create_sequence_from(items)?), total))
        }
        Err(jidstore::Error::NotFound(_)) => Ok((
            Value::Nil,
            Value::String(lua.create_string("item-not-found")?),
        )),
        Err(e) => Err(lua_err(&e)),
    }
}

/// Which stored messages a Prosody `delete` query selects, oldest first: ids.
fn select_for_delete(
    q: Option<&Table>,
    all: Vec<(String, jidstore::Timestamp, Option<String>)>,
) -> mlua::Result<Vec<String>> {
    let Some(t) = q else {
        return Ok(all.into_iter().map(|(id, _, _)| id).collect());
    };
    let key = opt_string(t, "key")?;
    let with = opt_string(t, "with")?;
    let start = opt_time(t, "start")?;
    let end = opt_time(t, "end")?;
    let mut ids: Vec<String> = all
        .into_iter()
        .filter(|(id, when, w)| {
            key.as_ref().is_none_or(|k| k == id)
                && (with.is_none() || with == *w)
                && start.is_none_or(|s| *when >= s)
                && end.is_none_or(|e| *when <= e)
        })
        .map(|(id, _, _)| id)
        .collect();
    if let Some(keep) = opt_count(t, "truncate")? {
        let n = ids.len().saturating_sub(keep);
        if t.get::<Option<bool>>("reverse")?.unwrap_or(false) {
            ids.drain(..ids.len() - n);
        } else {
            ids.truncate(n);
        }
    }
    Ok(ids)
}

type MamArgs = (
    String,
    String,
    Option<String>,
    f64,
    String,
    String,
    bool,
    String,
);

/// Registers the methods of the mapped classes.
pub(crate) fn methods<M: UserDataMethods<Handle>>(methods: &mut M) {
    keyval(methods);
    xml_methods(methods);
    blocklist_methods(methods);
    archives(methods);
    muc_methods(methods);
    offline(methods);
    pep_methods(methods);
}

fn keyval<M: UserDataMethods<Handle>>(methods: &mut M) {
    // nil when the owner has no roster items and no version; else {version, items}.
    methods.add_method("roster_get", |lua, h, (user, host): (String, String)| {
        guarded(|| {
            let owner = owner(Some(&user), &host)?;
            let roster = h.store.roster();
            let items = roster.list(&owner).map_err(|e| lua_err(&e))?;
            let version = roster.version(&owner).map_err(|e| lua_err(&e))?;
            if items.is_empty() && version == 0 {
                return Ok(Value::Nil);
            }
            let list = lua.create_table_with_capacity(items.len(), 0)?;
            for i in items {
                let t = lua.create_table_with_capacity(0, 6)?;
                t.set("jid", i.jid.as_str())?;
                t.set("name", i.name)?;
                t.set("subscription", i.subscription.as_str())?;
                t.set("ask", i.ask.as_str())?;
                t.set("groups", lua.create_sequence_from(i.groups)?)?;
                t.set("askmessage", i.askmessage)?;
                list.push(t)?;
            }
            let t = lua.create_table_with_capacity(0, 2)?;
            t.set("items", list)?;
            t.set("version", i64::try_from(version).unwrap_or(i64::MAX))?;
            Ok(Value::Table(t))
        })
    });
    methods.add_method(
        "roster_set",
        |_, h, (user, host, items, version): (String, String, Table, Option<i64>)| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                let version = match version {
                    Some(v) => match u64::try_from(v) {
                        Ok(v) => Some(v),
                        Err(_) => return Ok(false),
                    },
                    None => None,
                };
                roster_replace(&h.store, &owner, &items, version)
            })
        },
    );
}

fn xml_methods<M: UserDataMethods<Handle>>(methods: &mut M) {
    methods.add_method("vcard_get", |_, h, (user, host): (String, String)| {
        guarded(|| {
            let owner = owner(Some(&user), &host)?;
            h.store.vcard().get(&owner).map_err(|e| lua_err(&e))
        })
    });
    methods.add_method(
        "vcard_set",
        |_, h, (user, host, xml): (String, String, Option<String>)| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                match xml {
                    Some(xml) => fits(h.store.vcard().set(&owner, &xml)),
                    None => fits(h.store.vcard().remove(&owner).map(|_| ())),
                }
            })
        },
    );
    // {{ns, xml}, ...}
    methods.add_method("private_list", |lua, h, (user, host): (String, String)| {
        guarded(|| {
            let owner = owner(Some(&user), &host)?;
            let list = h.store.private().list(&owner).map_err(|e| lua_err(&e))?;
            let out = lua.create_table_with_capacity(list.len(), 0)?;
            for (ns, xml) in list {
                out.push(lua.create_sequence_from([ns, xml])?)?;
            }
            Ok(out)
        })
    });
    // Replaces every namespace of the owner with `list` ({{ns, xml}, ...}).
    methods.add_method(
        "private_set",
        |_, h, (user, host, list): (String, String, Table)| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                let private = h.store.private();
                let mut new = Vec::new();
                for pair in list.sequence_values::<Table>() {
                    let pair = pair?;
                    new.push((pair.get::<String>(1)?, pair.get::<String>(2)?));
                }
                for (ns, _) in private.list(&owner).map_err(|e| lua_err(&e))? {
                    if !new.iter().any(|(n, _)| *n == ns) {
                        private.remove(&owner, &ns).map_err(|e| lua_err(&e))?;
                    }
                }
                for (ns, xml) in &new {
                    if !fits(private.set(&owner, ns, xml))? {
                        return Ok(false);
                    }
                }
                Ok(true)
            })
        },
    );
}

fn blocklist_methods<M: UserDataMethods<Handle>>(methods: &mut M) {
    methods.add_method("blocklist_get", |lua, h, (user, host): (String, String)| {
        guarded(|| {
            let owner = owner(Some(&user), &host)?;
            let jids = h.store.blocklist().list(&owner).map_err(|e| lua_err(&e))?;
            lua.create_sequence_from(jids.into_iter().map(Jid::into_string))
        })
    });
    methods.add_method(
        "blocklist_set",
        |_, h, (user, host, list): (String, String, Table)| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                let mut jids = Vec::new();
                for j in list.sequence_values::<String>() {
                    match Jid::parse(&j?) {
                        Ok(j) => jids.push(j),
                        Err(_) => return Ok(false),
                    }
                }
                let blocklist = h.store.blocklist();
                let old = blocklist.list(&owner).map_err(|e| lua_err(&e))?;
                let gone: Vec<Jid> = old.iter().filter(|j| !jids.contains(j)).cloned().collect();
                if !gone.is_empty() {
                    blocklist.unblock(&owner, &gone).map_err(|e| lua_err(&e))?;
                }
                if jids.is_empty() {
                    return Ok(true);
                }
                fits(blocklist.block(&owner, &jids))
            })
        },
    );
}

/// The other party of a 1-1 message (Prosody's `with`): the bare JID it went to or came from.
fn peer(m: &ArchivedMessage) -> String {
    match m.direction {
        Direction::Outgoing => m.to.to_bare().as_str().to_owned(),
        Direction::Incoming => m.from.to_bare().as_str().to_owned(),
    }
}

fn archives<M: UserDataMethods<Handle>>(methods: &mut M) {
    // The 1-1 archive: (user, host, id, when, from, to, outgoing, stanza) -> id, or false.
    methods.add_method(
        "mam_append",
        |lua, h, (user, host, id, when, from, to, outgoing, stanza): MamArgs| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                let (Ok(from), Ok(to)) = (Jid::parse(&from), Jid::parse(&to)) else {
                    return Ok(Value::Boolean(false));
                };
                let msg = PmMessage {
                    id,
                    timestamp: from_secs(when),
                    from,
                    to,
                    direction: if outgoing {
                        Direction::Outgoing
                    } else {
                        Direction::Incoming
                    },
                    origin_id: None,
                    stanza,
                };
                match h.store.mam().append(&owner, &msg) {
                    Ok(id) => Ok(Value::String(lua.create_string(&id)?)),
                    Err(e) if unmappable(&e) => Ok(Value::Boolean(false)),
                    Err(e) => Err(lua_err(&e)),
                }
            })
        },
    );
    methods.add_method(
        "mam_find",
        |lua, h, (user, host, query): (String, String, Option<Table>)| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                // A user with no jidstore account (Prosody authenticating elsewhere) has
                // their archive in the generic class: the Lua side reads it there.
                if !h.store.accounts().exists(&owner).map_err(|e| lua_err(&e))? {
                    return Ok((Value::Boolean(false), Value::Nil));
                }
                let (mut q, key) = mam_query(query.as_ref())?;
                let with = query.as_ref().map(|t| opt_string(t, "with")).transpose()?;
                if let Some(with) = with.flatten() {
                    // A `with` that is no JID matches nothing.
                    match Jid::parse(&with) {
                        Ok(j) => q.with = Some(j),
                        Err(_) => return page_result(lua, Ok(Vec::new()), Some(0)),
                    }
                }
                let mam = h.store.mam();
                find_page(
                    lua,
                    q,
                    key,
                    |id| mam.get(&owner, id),
                    |q| mam.query(&owner, q),
                    |m: ArchivedMessage| {
                        let with = peer(&m);
                        item(lua, m.id, to_secs(m.timestamp), Some(with), m.stanza)
                    },
                )
            })
        },
    );
    methods.add_method(
        "mam_delete",
        |_, h, (user, host, q): (String, String, Option<Table>)| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                let mam = h.store.mam();
                let mut all = Vec::new();
                for m in mam.iter(&owner).map_err(|e| lua_err(&e))? {
                    let m = m.map_err(|e| lua_err(&e))?;
                    let with = peer(&m);
                    all.push((m.id, m.timestamp, Some(with)));
                }
                let mut n = 0i64;
                for id in select_for_delete(q.as_ref(), all)? {
                    if mam.remove(&owner, &id).map_err(|e| lua_err(&e))? {
                        n += 1;
                    }
                }
                Ok(n)
            })
        },
    );
}

fn muc_methods<M: UserDataMethods<Handle>>(methods: &mut M) {
    // The group-chat archive: (room node, host, when, sender, nick, stanza) -> id, or false.
    methods.add_method(
        "muc_append",
        |lua,
         h,
         (room, host, when, sender, nick, stanza): (
            String,
            String,
            f64,
            String,
            String,
            String,
        )| {
            guarded(|| {
                let room = owner(Some(&room), &host)?;
                let Ok(sender) = BareJid::parse(&sender) else {
                    return Ok(Value::Boolean(false));
                };
                let msg = MucMessage {
                    id: None,
                    timestamp: from_secs(when),
                    sender,
                    nick,
                    stanza,
                };
                match h.store.muc().append(&room, &msg) {
                    Ok(id) => Ok(Value::String(lua.create_string(&id)?)),
                    Err(e) if unmappable(&e) => Ok(Value::Boolean(false)),
                    Err(e) => Err(lua_err(&e)),
                }
            })
        },
    );
    // Items carry no `with` (the Lua side derives it from the stanza, as mod_muc_mam does).
    methods.add_method(
        "muc_find",
        |lua, h, (room, host, q): (String, String, Option<Table>)| {
            guarded(|| {
                let room = owner(Some(&room), &host)?;
                let (q, key) = mam_query(q.as_ref())?;
                // `with` in muc_log is the stanza type, not a JID: the Lua side routes it.
                let muc = h.store.muc();
                find_page(
                    lua,
                    q,
                    key,
                    |id| muc.get(&room, id),
                    |q| muc.query(&room, q),
                    |m: ArchivedMucMessage| item(lua, m.id, to_secs(m.timestamp), None, m.stanza),
                )
            })
        },
    );
    methods.add_method(
        "muc_delete",
        |_, h, (room, host, q): (String, String, Option<Table>)| {
            guarded(|| {
                let room = owner(Some(&room), &host)?;
                let muc = h.store.muc();
                let all = muc
                    .list(&room)
                    .map_err(|e| lua_err(&e))?
                    .into_iter()
                    .map(|m| (m.id, m.timestamp, Some("message<groupchat".to_owned())))
                    .collect();
                let mut n = 0i64;
                for id in select_for_delete(q.as_ref(), all)? {
                    if muc.remove(&room, &id).map_err(|e| lua_err(&e))? {
                        n += 1;
                    }
                }
                Ok(n)
            })
        },
    );
}

fn offline<M: UserDataMethods<Handle>>(methods: &mut M) {
    // (user, host, from, to, when, stanza) -> true, or false when it does not fit.
    methods.add_method(
        "offline_store",
        |_,
         h,
         (user, host, from, to, when, stanza): (String, String, String, String, f64, String)| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                let (Ok(from), Ok(to)) = (Jid::parse(&from), Jid::parse(&to)) else {
                    return Ok(false);
                };
                let msg = OfflineMessage {
                    from,
                    to,
                    timestamp: from_secs(when),
                    expires: None,
                    stanza,
                };
                fits(h.store.offline().store(&owner, &msg))
            })
        },
    );
    // Items in arrival order, {id = position, when, value}.
    methods.add_method("offline_list", |lua, h, (user, host): (String, String)| {
        guarded(|| {
            let owner = owner(Some(&user), &host)?;
            let list = h.store.offline().list(&owner).map_err(|e| lua_err(&e))?;
            let out = lua.create_table_with_capacity(list.len(), 0)?;
            for (n, m) in list.into_iter().enumerate() {
                out.push(item(
                    lua,
                    format!("offline-{}", n + 1),
                    to_secs(m.timestamp),
                    None,
                    m.stanza,
                )?)?;
            }
            Ok(out)
        })
    });
    // Deletes every message held for the owner; returns how many.
    methods.add_method("offline_clear", |_, h, (user, host): (String, String)| {
        guarded(|| {
            let owner = owner(Some(&user), &host)?;
            let n = h
                .store
                .offline()
                .pop_all(&owner, jidstore::Timestamp::from_micros(i64::MIN))
                .map_err(|e| lua_err(&e))?;
            Ok(i64::try_from(n.len()).unwrap_or(i64::MAX))
        })
    });
}

type PublishArgs = (
    String,
    String,
    String,
    String,
    String,
    String,
    f64,
    Option<String>,
);

/// PEP items (Prosody's `pep_<node>` archive stores) as items of the owner's PEP node in
/// jidstore's pubsub class.
fn pep_methods<M: UserDataMethods<Handle>>(methods: &mut M) {
    // (user, host, node, item id, publisher, payload, when, access model) -> true, or false
    // when the class cannot hold it (a publisher that is not a bare JID, ...). Creates the
    // node (PEP, on the owner's JID) on its first item.
    methods.add_method(
        "pep_publish",
        |_, h, (user, host, node, id, publisher, payload, when, access): PublishArgs| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                let publisher = match BareJid::parse(&publisher) {
                    Ok(p) if p.as_str() == publisher => p,
                    _ => return Ok(false),
                };
                let pubsub = h.store.pubsub();
                let exists = pubsub.get_node(&owner, &node).map_err(|e| lua_err(&e))?;
                if exists.is_none() {
                    let created = pubsub.create_node(&Node {
                        service: owner.clone(),
                        node: node.clone(),
                        owner: owner.clone(),
                        kind: NodeType::Pep,
                        access_model: access.unwrap_or_else(|| "presence".to_owned()),
                        config: Vec::new(),
                        created_at: from_secs(when),
                    });
                    if !fits(created)? {
                        return Ok(false);
                    }
                }
                fits(pubsub.publish(&owner, &node, &id, &publisher, &payload, from_secs(when)))
            })
        },
    );
    // The node's items, oldest first: {id, when, with = publisher, value = payload}.
    methods.add_method(
        "pep_items",
        |lua, h, (user, host, node): (String, String, String)| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                let mut items = match h.store.pubsub().items(&owner, &node) {
                    Ok(items) => items,
                    Err(e) if unmappable(&e) => Vec::new(),
                    Err(e) => return Err(lua_err(&e)),
                };
                items.sort_by_key(|i| i.published_at);
                let out = lua.create_table_with_capacity(items.len(), 0)?;
                for i in items {
                    let with = i.publisher.as_str().to_owned();
                    out.push(item(
                        lua,
                        i.id,
                        to_secs(i.published_at),
                        Some(with),
                        i.payload,
                    )?)?;
                }
                Ok(out)
            })
        },
    );
    methods.add_method(
        "pep_retract",
        |_, h, (user, host, node, id): (String, String, String, String)| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                match h.store.pubsub().retract(&owner, &node, &id) {
                    Ok(gone) => Ok(gone),
                    Err(e) if unmappable(&e) => Ok(false),
                    Err(e) => Err(lua_err(&e)),
                }
            })
        },
    );
    // Deletes the node with its items (Prosody clears a node's store when it is deleted).
    methods.add_method(
        "pep_clear",
        |_, h, (user, host, node): (String, String, String)| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                let pubsub = h.store.pubsub();
                let n = match pubsub.items(&owner, &node) {
                    Ok(items) => items.len(),
                    Err(e) if unmappable(&e) => return Ok(0),
                    Err(e) => return Err(lua_err(&e)),
                };
                pubsub.delete_node(&owner, &node).map_err(|e| lua_err(&e))?;
                Ok(i64::try_from(n).unwrap_or(i64::MAX))
            })
        },
    );
}
