//! `expire` and `mam delete`: storage limitation, and deletions a user or a room's owner
//! asks for.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use serde_json::json;

use super::mam::{Archive, archive};
use super::{Env, MamDelete};
use crate::ext::mam::Trim;
use crate::gdpr::audit::{self, Action, Outcome};
use crate::gdpr::retention::{ExpiryCounts, Retention};
use crate::{BareJid, Timestamp, gdpr};

/// `jidstore expire --policy FILE [--dry-run]`: applies a retention policy (JSON, see
/// [`crate::gdpr::retention`]) now and prints what was removed per domain. A dry run writes
/// nothing, not even the audit entry.
pub(super) fn expire(
    env: &Env<'_>,
    policy_file: &Path,
    dry_run: bool,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(policy_file)
        .with_context(|| format!("cannot read the policy file {}", policy_file.display()))?;
    let policy = Retention::from_json(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", policy_file.display()))?;
    let store = env.open(false)?;
    let report = gdpr::expire(&store, &policy, Timestamp::now(), dry_run)?;
    let total = report.total();
    if !dry_run {
        let counts = [
            ("archive_messages", total.archive_messages),
            ("room_messages", total.room_messages),
            ("offline_messages", total.offline_messages),
            ("accounts", report.accounts),
            ("rooms", report.rooms),
        ];
        audit::record(&store, Action::Expire, None, &counts, Outcome::Ok)?;
    }
    let counts_json = |c: &ExpiryCounts| {
        json!({
            "archive_messages": c.archive_messages,
            "room_messages": c.room_messages,
            "offline_messages": c.offline_messages,
        })
    };
    let domains: serde_json::Map<String, serde_json::Value> = report
        .domains
        .iter()
        .map(|(d, c)| (d.clone(), counts_json(c)))
        .collect();
    let doc = json!({
        "dry_run": dry_run,
        "now": report.now.to_rfc3339(),
        "accounts": report.accounts,
        "rooms": report.rooms,
        "total": counts_json(&total),
        "domains": domains,
    });
    let verb = if dry_run { "Would remove" } else { "Removed" };
    let mut text = format!(
        "{verb} {} 1-1 archive messages, {} group-chat messages, {} offline messages \
         ({} accounts and {} rooms checked{})\n",
        total.archive_messages,
        total.room_messages,
        total.offline_messages,
        report.accounts,
        report.rooms,
        if dry_run {
            "; dry run, nothing written"
        } else {
            ""
        },
    );
    for (d, c) in &report.domains {
        if *c != ExpiryCounts::default() {
            let _ = writeln!(
                text,
                "  {d}: {} archive, {} group-chat, {} offline",
                c.archive_messages, c.room_messages, c.offline_messages
            );
        }
    }
    env.emit(out, &doc, &text)?;
    Ok(0)
}

/// `jidstore mam delete (<user> <domain> | --room ROOM) (--id ID | --before T | --all)
/// [--dry-run]`: deletions a user (or a room's owner) asks for. An unknown user, a room
/// with no archive or an unknown message id is an error (exit 1); each deletion is in the
/// audit log under the account's or room's keyed hash.
pub(super) fn delete(env: &Env<'_>, d: &MamDelete, out: &mut dyn Write) -> anyhow::Result<u8> {
    // Every argument is checked before the store is opened.
    let target = archive(&d.archive)?;
    let trim = match (&d.id, d.before) {
        (Some(_), _) => None,
        (None, Some(t)) => Some(Trim::before(t)),
        (None, None) => Some(Trim::all()),
    };
    let store = env.open(false)?;
    let (jid, n, what) = match &target {
        Archive::User(jid) => {
            if !store.accounts().exists(jid)? {
                anyhow::bail!("user {jid} does not exist");
            }
            let mam = store.mam();
            let n = match (&trim, &d.id) {
                (Some(t), _) if d.dry_run => mam.count_trim(jid, t)?,
                (Some(t), _) => mam.trim(jid, t)?,
                (None, Some(id)) => one(
                    d.dry_run,
                    mam.get(jid, id)?.is_some(),
                    || mam.remove(jid, id),
                    id,
                    jid,
                )?,
                (None, None) => 0,
            };
            (jid, n, "archive_messages")
        }
        Archive::Room(room) => {
            let muc = store.muc();
            if muc.count(room)? == 0 {
                anyhow::bail!("room {room} has no archived messages");
            }
            let n = match (&trim, &d.id) {
                (Some(t), _) if d.dry_run => muc.count_trim(room, t)?,
                (Some(t), _) => muc.trim(room, t)?,
                (None, Some(id)) => one(
                    d.dry_run,
                    muc.get(room, id)?.is_some(),
                    || muc.remove(room, id),
                    id,
                    room,
                )?,
                (None, None) => 0,
            };
            (room, n, "room_messages")
        }
    };
    if !d.dry_run {
        store.flush()?;
        audit::record(&store, Action::Delete, Some(jid), &[(what, n)], Outcome::Ok)?;
    }
    let verb = if d.dry_run { "Would delete" } else { "Deleted" };
    env.emit(
        out,
        &json!({ "jid": jid.to_string(), "deleted": n, "dry_run": d.dry_run }),
        &format!("{verb} {n} archived messages of {jid}\n"),
    )?;
    Ok(0)
}

/// One message by id: 1 when it is there (and, unless a dry run, was removed), else the
/// error naming the id.
fn one(
    dry_run: bool,
    present: bool,
    remove: impl FnOnce() -> crate::Result<bool>,
    id: &str,
    jid: &BareJid,
) -> anyhow::Result<u64> {
    let removed = if dry_run { present } else { remove()? };
    if !removed {
        anyhow::bail!("no message with id {id:?} in the archive of {jid}");
    }
    Ok(1)
}
