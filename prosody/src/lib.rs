//! `jidstore_prosody`: the Lua 5.4 C module behind Prosody's `mod_storage_jidstore`.
//!
//! Loaded into Prosody's own process (`require "jidstore_prosody"`), it opens a jidstore
//! store and serves its admin socket, so the `jidstore` command works on the live data while
//! Prosody runs. Built in mlua's `module` mode: it links no Lua of its own and uses the Lua
//! API of the process that loads it (Debian's lua5.4).
//!
//! Accounts, rosters, vCards, private XML, blocklists, offline messages, the 1-1 and
//! group-chat archives and PEP items go to jidstore's dedicated classes (module `mapped`;
//! the Lua side converts Prosody's values). Every other store goes to jidstore's generic
//! per-owner class ([`jidstore::ext::generic`]): key-value stores as one text value per user
//! and store (the Lua side serialises with Prosody's `util.serialization`), archive stores
//! as items with an id, a time, a `with` JID and the stanza's XML. `purge` is jidstore's
//! atomic erasure ([`jidstore::gdpr::remove`]).
//!
//! No Rust panic unwinds into Lua: every function runs under `catch_unwind` and a panic
//! becomes a Lua error. Errors name no JID (they reach Prosody's log).

mod mapped;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;

use jidstore::ext::generic::{Deletion, Query};
use jidstore::ext::scram::{Mechanism, Verifier};
use jidstore::{BareJid, Store, Timestamp};
use mlua::{Lua, Table, UserData, UserDataMethods, Value};

/// An open store and its admin socket.
struct Handle {
    store: Store,
    admin: Mutex<Option<jidstore::admin::AdminHandle>>,
}

/// A Lua error from a jidstore error, with no personal data in it.
fn lua_err(e: &jidstore::Error) -> mlua::Error {
    let text = match e {
        jidstore::Error::InvalidJid { .. } => "invalid JID".to_owned(),
        jidstore::Error::NoAccount(_) => "no such user".to_owned(),
        jidstore::Error::AccountExists(_) => "user exists".to_owned(),
        // The key names its owner: say where, not whose.
        jidstore::Error::Corrupt { keyspace, .. } => {
            format!("a damaged entry in keyspace {keyspace} (run jidstore verify)")
        }
        other => other.to_string(),
    };
    mlua::Error::runtime(format!("jidstore: {text}"))
}

/// Runs `f`, turning a panic into a Lua error.
fn guarded<T>(f: impl FnOnce() -> mlua::Result<T>) -> mlua::Result<T> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(mlua::Error::runtime("jidstore: internal error (panic)")))
}

/// The owner of a Prosody record: `user@host`, or the host itself when `user` is nil.
fn owner(user: Option<&str>, host: &str) -> mlua::Result<BareJid> {
    match user {
        Some(u) => BareJid::from_parts(u, host),
        None => BareJid::domain_only(host),
    }
    .map_err(|e| lua_err(&e))
}

/// Seconds (Prosody's float time) to a timestamp.
#[expect(
    clippy::cast_possible_truncation,
    reason = "times are far inside i64 micros"
)]
fn from_secs(secs: f64) -> Timestamp {
    Timestamp::from_micros((secs * 1e6).round() as i64)
}

#[expect(
    clippy::cast_precision_loss,
    reason = "micros fit an f64 exactly until 2255"
)]
fn to_secs(t: Timestamp) -> f64 {
    t.as_micros() as f64 / 1e6
}

fn opt_string(t: &Table, key: &str) -> mlua::Result<Option<String>> {
    match t.get::<Value>(key)? {
        Value::String(s) => Ok(Some(s.to_str()?.to_owned())),
        _ => Ok(None),
    }
}

fn opt_time(t: &Table, key: &str) -> mlua::Result<Option<Timestamp>> {
    match t.get::<Value>(key)? {
        Value::Integer(n) => Ok(Some(Timestamp::from_secs(n))),
        Value::Number(n) => Ok(Some(from_secs(n))),
        _ => Ok(None),
    }
}

fn opt_count(t: &Table, key: &str) -> mlua::Result<Option<usize>> {
    Ok(match t.get::<Value>(key)? {
        Value::Integer(n) => Some(usize::try_from(n).unwrap_or(0)),
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a count"
        )]
        Value::Number(n) => Some(n.max(0.0) as usize),
        _ => None,
    })
}

fn query(t: Option<&Table>) -> mlua::Result<Query> {
    let Some(t) = t else {
        return Ok(Query::default());
    };
    let ids = match t.get::<Value>("ids")? {
        Value::Table(ids) => Some(
            ids.sequence_values::<String>()
                .collect::<mlua::Result<Vec<_>>>()?,
        ),
        _ => None,
    };
    Ok(Query {
        id: opt_string(t, "key")?,
        ids,
        with: opt_string(t, "with")?,
        start: opt_time(t, "start")?,
        end: opt_time(t, "end")?,
        before: opt_string(t, "before")?,
        after: opt_string(t, "after")?,
        limit: opt_count(t, "limit")?,
        reverse: t.get::<Option<bool>>("reverse")?.unwrap_or(false),
    })
}

fn deletion(t: Option<&Table>) -> mlua::Result<Deletion> {
    let Some(t) = t else {
        return Ok(Deletion::default());
    };
    Ok(Deletion {
        id: opt_string(t, "key")?,
        with: opt_string(t, "with")?,
        start: opt_time(t, "start")?,
        end: opt_time(t, "end")?,
        truncate: opt_count(t, "truncate")?,
        reverse: t.get::<Option<bool>>("reverse")?.unwrap_or(false),
    })
}

type Args4 = (Option<String>, String, String, Option<String>);

impl UserData for Handle {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        keyval_methods(methods);
        account_methods(methods);
        archive_methods(methods);
        mapped::methods(methods);
        methods.add_method("purge", |_, h, (user, host): (String, String)| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                match jidstore::gdpr::remove(&h.store, &owner) {
                    Ok(receipt) => {
                        let removed: Vec<String> = receipt
                            .removed
                            .iter()
                            .filter(|(_, n)| **n > 0)
                            .map(|(t, n)| format!("{t} {n}"))
                            .collect();
                        let kept: Vec<&str> = receipt.kept.iter().map(|k| k.class).collect();
                        let total = i64::try_from(receipt.total_removed()).unwrap_or(i64::MAX);
                        // The erasure is committed whatever the audit log says; a failed
                        // entry is reported to the caller, which logs it.
                        let audit =
                            jidstore::gdpr::audit::record_erasure(&h.store, &owner, &receipt)
                                .err()
                                .map(|e| e.to_string());
                        Ok((total, removed.join(", "), kept.join(", "), audit))
                    }
                    Err(jidstore::Error::NoPersonalData(_)) => {
                        Ok((0, String::new(), String::new(), None))
                    }
                    Err(e) => Err(lua_err(&e)),
                }
            })
        });
        methods.add_method("flush", |_, h, ()| {
            guarded(|| {
                h.store.flush().map_err(|e| lua_err(&e))?;
                Ok(true)
            })
        });
        // Stops the admin socket and flushes; the store itself closes when collected.
        methods.add_method("close", |_, h, ()| {
            guarded(|| {
                h.admin
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .take();
                h.store.flush().map_err(|e| lua_err(&e))?;
                Ok(true)
            })
        });
    }
}

/// `kv_get`, `kv_set`, `users`.
fn keyval_methods<M: UserDataMethods<Handle>>(methods: &mut M) {
    methods.add_method(
        "kv_get",
        |_, h, (user, host, store): (Option<String>, String, String)| {
            guarded(|| {
                let owner = owner(user.as_deref(), &host)?;
                h.store
                    .generic()
                    .get(&owner, &store)
                    .map_err(|e| lua_err(&e))
            })
        },
    );
    methods.add_method("kv_set", |_, h, (user, host, store, value): Args4| {
        guarded(|| {
            let owner = owner(user.as_deref(), &host)?;
            h.store
                .generic()
                .set(&owner, &store, value.as_deref())
                .map_err(|e| lua_err(&e))?;
            Ok(true)
        })
    });
    methods.add_method(
        "users",
        |lua, h, (host, store, archive): (String, String, bool)| {
            guarded(|| {
                let owners = h
                    .store
                    .generic()
                    .owners(&host, &store, archive)
                    .map_err(|e| lua_err(&e))?;
                lua.create_sequence_from(
                    owners
                        .iter()
                        .filter_map(|j| j.node().map(str::to_owned))
                        .collect::<Vec<_>>(),
                )
            })
        },
    );
}

/// Lowercase hex, as Prosody's `mod_auth_internal_hashed` stores keys.
fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `account_get`, `account_set`, `account_remove`, `account_users`: Prosody's `accounts` store
/// as jidstore accounts (one SCRAM-SHA-1 verifier, as `mod_auth_internal_hashed` keeps).
fn account_methods<M: UserDataMethods<Handle>>(methods: &mut M) {
    // Returns the account as `mod_auth_internal_hashed` keeps it, or nil.
    methods.add_method("account_get", |lua, h, (user, host): (String, String)| {
        guarded(|| {
            let owner = owner(Some(&user), &host)?;
            let v = h
                .store
                .accounts()
                .verifier(&owner, Mechanism::Sha1)
                .map_err(|e| lua_err(&e))?;
            let Some(v) = v else {
                return Ok(Value::Nil);
            };
            let t = lua.create_table_with_capacity(0, 4)?;
            t.set("salt", lua.create_string(&v.salt)?)?;
            t.set("iteration_count", v.iterations)?;
            t.set("stored_key", to_hex(&v.stored_key))?;
            t.set("server_key", to_hex(&v.server_key))?;
            Ok(Value::Table(t))
        })
    });
    // Returns true, or false when the keys are not hex (the caller stores the value as is).
    methods.add_method(
        "account_set",
        |_,
         h,
         (user, host, salt, iterations, stored, server): (
            String,
            String,
            mlua::BString,
            u32,
            String,
            String,
        )| {
            guarded(|| {
                let owner = owner(Some(&user), &host)?;
                let (Some(stored_key), Some(server_key)) = (from_hex(&stored), from_hex(&server))
                else {
                    return Ok(false);
                };
                let verifier = Verifier {
                    mechanism: Mechanism::Sha1,
                    salt: salt.to_vec(),
                    iterations,
                    stored_key,
                    server_key,
                };
                h.store
                    .accounts()
                    .set_verifiers(&owner, vec![verifier])
                    .map_err(|e| lua_err(&e))?;
                Ok(true)
            })
        },
    );
    // Prosody clears the account before it purges the user. jidstore keeps an account that
    // holds a 1-1 archive (the account leads the erasure to it): its verifiers are cleared
    // instead, so nobody can log in, and the purge that follows removes it with the rest.
    methods.add_method("account_remove", |_, h, (user, host): (String, String)| {
        guarded(|| {
            let owner = owner(Some(&user), &host)?;
            let accounts = h.store.accounts();
            match accounts.remove(&owner) {
                Ok(removed) => Ok(removed),
                Err(jidstore::Error::InvalidInput(_)) => {
                    accounts
                        .set_verifiers(&owner, Vec::new())
                        .map_err(|e| lua_err(&e))?;
                    Ok(true)
                }
                Err(e) => Err(lua_err(&e)),
            }
        })
    });
    methods.add_method("account_users", |lua, h, host: String| {
        guarded(|| {
            let accounts = h.store.accounts();
            let jids = accounts.list(&host).map_err(|e| lua_err(&e))?;
            let mut names = Vec::with_capacity(jids.len());
            for j in &jids {
                // An account whose login was cleared (awaiting its purge) is no user.
                let login = accounts
                    .get(j)
                    .map_err(|e| lua_err(&e))?
                    .is_some_and(|a| !a.mechanisms.is_empty());
                if let (true, Some(node)) = (login, j.node()) {
                    names.push(node.to_owned());
                }
            }
            lua.create_sequence_from(names)
        })
    });
}

/// `append`, `find`, `delete`.
fn archive_methods<M: UserDataMethods<Handle>>(methods: &mut M) {
    methods.add_method(
        "append",
        |_,
         h,
         (user, host, store, id, when, with, value): (
            Option<String>,
            String,
            String,
            Option<String>,
            f64,
            Option<String>,
            String,
        )| {
            guarded(|| {
                let owner = owner(user.as_deref(), &host)?;
                h.store
                    .generic()
                    .append(
                        &owner,
                        &store,
                        id.as_deref(),
                        from_secs(when),
                        with.as_deref(),
                        &value,
                    )
                    .map_err(|e| lua_err(&e))
            })
        },
    );
    // Returns (items, total) or (nil, "item-not-found"); items are {id, when, with, value}.
    methods.add_method(
        "find",
        |lua, h, (user, host, store, q): (Option<String>, String, String, Option<Table>)| {
            guarded(|| {
                let owner = owner(user.as_deref(), &host)?;
                let q = query(q.as_ref())?;
                let page = h
                    .store
                    .generic()
                    .find(&owner, &store, &q)
                    .map_err(|e| lua_err(&e))?;
                let Some(page) = page else {
                    return Ok((
                        Value::Nil,
                        Value::String(lua.create_string("item-not-found")?),
                    ));
                };
                let items = lua.create_table_with_capacity(page.items.len(), 0)?;
                for item in page.items {
                    let t = lua.create_table_with_capacity(0, 4)?;
                    t.set("id", item.id)?;
                    t.set("when", to_secs(item.when))?;
                    t.set("with", item.with)?;
                    t.set("value", item.value)?;
                    items.push(t)?;
                }
                let total = i64::try_from(page.total).unwrap_or(i64::MAX);
                Ok((Value::Table(items), Value::Integer(total)))
            })
        },
    );
    methods.add_method(
        "delete",
        |_, h, (user, host, store, q): (Option<String>, String, String, Option<Table>)| {
            guarded(|| {
                let owner = owner(user.as_deref(), &host)?;
                let d = deletion(q.as_ref())?;
                let n = h
                    .store
                    .generic()
                    .delete(&owner, &store, &d)
                    .map_err(|e| lua_err(&e))?;
                Ok(i64::try_from(n).unwrap_or(i64::MAX))
            })
        },
    );
    // Erases `user@host` (jidstore's atomic erasure). Returns the number of rows removed,
    // the rows per table and the classes kept, for a log line without personal data; 0
    // when nothing was held.
}

/// `open(path, serve_admin)`: opens (creating) the store at `path`; with `serve_admin` also
/// serves its admin socket. Returns the handle, or nil and an error text (`"locked"` when
/// another process holds the store).
fn open(lua: &Lua, (path, serve_admin): (String, bool)) -> mlua::Result<(Value, Value)> {
    guarded(|| {
        let store = match Store::open(&path) {
            Ok(s) => s,
            Err(jidstore::Error::Locked(_)) => {
                return Ok((Value::Nil, Value::String(lua.create_string("locked")?)));
            }
            Err(e) => return Err(lua_err(&e)),
        };
        let admin = if serve_admin {
            Some(jidstore::admin::serve(&store).map_err(|e| lua_err(&e))?)
        } else {
            None
        };
        let handle = Handle {
            store,
            admin: Mutex::new(admin),
        };
        Ok((Value::UserData(lua.create_userdata(handle)?), Value::Nil))
    })
}

#[mlua::lua_module]
fn jidstore_prosody(lua: &Lua) -> mlua::Result<Table> {
    let exports = lua.create_table()?;
    exports.set("open", lua.create_function(open)?)?;
    exports.set("version", env!("CARGO_PKG_VERSION"))?;
    Ok(exports)
}
