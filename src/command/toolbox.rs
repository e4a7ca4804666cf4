//! `users`, `inspect`, `passwd`: an operator's look-ups and account care.

use std::io::Write;

use serde_json::json;

use super::Env;
use crate::BareJid;

/// `jidstore users [--domain D] [--prefix P]`: one JID per line (with `--json`, one
/// document `{"users":[...],"count":N}`), written as the accounts are read, so a store of
/// any size lists in flat memory.
pub(super) fn users(
    env: &Env<'_>,
    domain: Option<&str>,
    prefix: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let store = env.open(false)?;
    let iter = store.accounts().iter(domain, prefix)?;
    let mut count = 0u64;
    if env.ctx.json {
        out.write_all(b"{\"users\":[")?;
    }
    for jid in iter {
        let jid = jid?;
        if env.ctx.json {
            if count > 0 {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, jid.as_str())?;
        } else {
            writeln!(out, "{jid}")?;
        }
        count += 1;
    }
    if env.ctx.json {
        writeln!(out, "],\"count\":{count}}}")?;
    }
    Ok(0)
}

/// `jidstore passwd <user> <domain> <password|->`: new SCRAM verifiers for an existing
/// account (its creation time and archive stay).
pub(super) fn passwd(
    env: &Env<'_>,
    username: &str,
    domain: &str,
    password_arg: &str,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let password = super::gdpr::password(env, password_arg)?;
    let jid = BareJid::from_parts(username, domain)?;
    let store = env.open(false)?;
    store.accounts().set_password(&jid, &password)?;
    store.flush()?;
    env.emit(
        out,
        &json!({ "jid": jid.to_string() }),
        &format!("Password of {jid} set\n"),
    )?;
    Ok(0)
}
