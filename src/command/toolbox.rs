//! `users`, `inspect`, `passwd`: an operator's look-ups and account care.

use std::io::Write;

use serde_json::json;

use super::Env;
use crate::{BareJid, gdpr};

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
    let iter = store.accounts().users(domain, prefix)?;
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

/// `jidstore inspect <user> <domain>`: the rows held per table, then what erasure would
/// remove and keep (with `--json`: `subject`, `account`, `tables`, `total_rows`, and
/// `erasure` as `unregister --dry-run --json` prints it). Writes nothing.
pub(super) fn inspect(
    env: &Env<'_>,
    username: &str,
    domain: &str,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let subject = BareJid::from_parts(username, domain)?;
    let store = env.open(false)?;
    let found = gdpr::inspect(&store, &subject)?;
    let account = found.account.as_ref().map(|a| {
        let mechanisms: Vec<&str> = a.mechanisms.iter().map(|m| m.sasl_name()).collect();
        (a.created_at.to_rfc3339(), mechanisms)
    });
    if env.ctx.json {
        let tables: serde_json::Map<String, serde_json::Value> = found
            .tables
            .iter()
            .map(|(t, n)| ((*t).to_owned(), json!(n)))
            .collect();
        let doc = json!({
            "subject": subject.to_string(),
            "account": account.map(|(created_at, mechanisms)| {
                json!({ "created_at": created_at, "mechanisms": mechanisms })
            }),
            "tables": tables,
            "total_rows": found.total_rows(),
            "erasure": super::gdpr::receipt_json(&found.erasure),
        });
        env.emit(out, &doc, "")?;
        return Ok(0);
    }
    match account {
        Some((created_at, mechanisms)) if mechanisms.is_empty() => writeln!(
            out,
            "{subject}: account created {created_at}, no credentials (cannot log in; see passwd)"
        )?,
        Some((created_at, mechanisms)) => writeln!(
            out,
            "{subject}: account created {created_at} ({})",
            mechanisms.join(", ")
        )?,
        None => writeln!(out, "{subject}: no account")?,
    }
    writeln!(
        out,
        "Held (rows per table, as retrieve_personal_data exports them):"
    )?;
    for (table, n) in &found.tables {
        writeln!(out, "  {table:<26} {n}")?;
    }
    writeln!(out, "  {:<26} {}", "total", found.total_rows())?;
    let receipt = &found.erasure;
    writeln!(
        out,
        "Erasure would remove {} rows (unregister --dry-run shows the receipt)",
        receipt.total_removed()
    )?;
    for c in &receipt.consequences {
        writeln!(
            out,
            "  {:<26} {} of other users ({})",
            c.class, c.rows, c.reason
        )?;
    }
    writeln!(out, "Erasure would keep:")?;
    if receipt.kept.is_empty() {
        writeln!(out, "  nothing")?;
    }
    for k in &receipt.kept {
        match k.rows {
            Some(n) => writeln!(out, "  {:<26} {n} ({})", k.class, k.reason)?,
            None => writeln!(out, "  {:<26} ({})", k.class, k.reason)?,
        }
    }
    Ok(0)
}

/// `jidstore audit [--since T] [--jid J]`: one line per entry (with `--json`, one document
/// `{"entries":[...],"count":N}`), written as the log is read.
pub(super) fn audit(
    env: &Env<'_>,
    since: Option<crate::Timestamp>,
    jid: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let jid = jid.map(BareJid::parse).transpose()?;
    let store = env.open(false)?;
    let hash = jid
        .map(|j| gdpr::audit::subject_hash(&store, &j))
        .transpose()?;
    let mut count = 0u64;
    if env.ctx.json {
        out.write_all(b"{\"entries\":[")?;
    }
    for entry in gdpr::audit::entries(&store, since) {
        let e = entry?;
        if hash.is_some() && e.subject != hash {
            continue;
        }
        if env.ctx.json {
            if count > 0 {
                out.write_all(b",")?;
            }
            let doc = json!({
                "time": e.time.to_rfc3339(),
                "action": e.action.as_str(),
                "outcome": e.outcome.as_str(),
                "subject": e.subject,
                "counts": e.counts,
            });
            serde_json::to_writer(&mut *out, &doc)?;
        } else {
            let counts: Vec<String> = e.counts.iter().map(|(k, n)| format!(" {k}={n}")).collect();
            writeln!(
                out,
                "{} {} {} subject={}{}",
                e.time.to_rfc3339(),
                e.action.as_str(),
                e.outcome.as_str(),
                e.subject.as_deref().unwrap_or("-"),
                counts.concat()
            )?;
        }
        count += 1;
    }
    if env.ctx.json {
        writeln!(out, "],\"count\":{count}}}")?;
    }
    Ok(0)
}
