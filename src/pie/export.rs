//! Export of one user as a XEP-0227 v1.1 document, streamed class by class (the archive
//! message by message) through `quick_xml::Writer`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::dom::{self, Child, Element};
use super::{
    NS_CLIENT, NS_DATA, NS_DELAY, NS_FORWARD, NS_MAM, NS_MAM_ARCHIVE, NS_PIE, NS_PRIVACY,
    NS_PRIVATE, NS_PUBSUB, NS_PUBSUB_OWNER, NS_ROSTER, NS_SCRAM,
};
use crate::error::{Error, Result};
use crate::ext::pubsub::{Affiliation, NodeType};
use crate::ext::roster::{Ask, RosterItem, Subscription};
use crate::ext::scram::Mechanism;
use crate::jid::BareJid;
use crate::output;
use crate::store::Store;
use crate::time::Timestamp;

type W<S> = Writer<S>;

fn io(e: std::io::Error) -> Error {
    Error::Io(e)
}

fn start<S: Write>(w: &mut W<S>, name: &str, attrs: &[(&str, &str)]) -> Result<()> {
    let mut el = BytesStart::new(name);
    for (k, v) in attrs {
        el.push_attribute((*k, *v));
    }
    w.write_event(Event::Start(el)).map_err(io)
}

fn empty<S: Write>(w: &mut W<S>, name: &str, attrs: &[(&str, &str)]) -> Result<()> {
    let mut el = BytesStart::new(name);
    for (k, v) in attrs {
        el.push_attribute((*k, *v));
    }
    w.write_event(Event::Empty(el)).map_err(io)
}

fn end<S: Write>(w: &mut W<S>, name: &str) -> Result<()> {
    w.write_event(Event::End(BytesEnd::new(name))).map_err(io)
}

fn text_el<S: Write>(w: &mut W<S>, name: &str, text: &str) -> Result<()> {
    start(w, name, &[])?;
    w.write_event(Event::Text(BytesText::new(text)))
        .map_err(io)?;
    end(w, name)
}

fn nl<S: Write>(w: &mut W<S>) -> Result<()> {
    w.get_mut().write_all(b"\n").map_err(io)
}

/// Writes stored XML (already well-formed, its root declaring its namespace) verbatim.
fn raw<S: Write>(w: &mut W<S>, xml: &str) -> Result<()> {
    w.get_mut().write_all(xml.as_bytes()).map_err(io)
}

/// A stored stanza as a `jabber:client` element, optionally with a delay stamp added when
/// it has none (so an offline message's time survives the trip).
fn stanza(xml: &str, stamp: Option<Timestamp>) -> Result<String> {
    let file: Arc<Path> = Arc::from(Path::new("<stored stanza>"));
    let mut el = dom::parse(xml.as_bytes(), &file).map_err(|p| Error::InvalidInput(p.message))?;
    if el.ns.is_empty() {
        el.rename_ns(NS_CLIENT);
    }
    if let Some(t) = stamp
        && el.child(NS_DELAY, "delay").is_none()
    {
        let mut d = Element::new(NS_DELAY, "delay", file, 0);
        d.set_attr("stamp", &t.to_rfc3339());
        el.children.push(Child::Element(d));
    }
    Ok(el.to_xml())
}

/// Records written per class.
pub type ExportCounts = BTreeMap<&'static str, u64>;

/// Writes `user`'s data as a XEP-0227 v1.1 document into `sink`: SCRAM credentials (never a
/// password), roster and pending subscription requests, vCard, private XML, offline
/// messages, privacy lists, PEP nodes with their items, affiliations and subscriptions, and
/// the message archive with its ids.
/// The archive is streamed. Fails with [`Error::NoAccount`] when `user` has no account.
pub fn export<S: Write>(store: &Store, user: &BareJid, sink: S) -> Result<ExportCounts> {
    if !store.accounts().exists(user)? {
        return Err(Error::NoAccount(user.to_string()));
    }
    let mut counts = ExportCounts::new();
    let _progress = crate::progress::Phase::start("export-xep0227", "archived messages", None);
    let mut w = Writer::new(sink);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(io)?;
    nl(&mut w)?;
    start(&mut w, "server-data", &[("xmlns", NS_PIE)])?;
    nl(&mut w)?;
    start(&mut w, "host", &[("jid", user.domain())])?;
    nl(&mut w)?;
    start(&mut w, "user", &[("name", user.node().unwrap_or_default())])?;
    nl(&mut w)?;
    *counts.entry("accounts").or_default() += 1;
    for m in Mechanism::ALL {
        if let Some(v) = store.accounts().verifier(user, m)? {
            start(
                &mut w,
                "scram-credentials",
                &[("xmlns", NS_SCRAM), ("mechanism", m.sasl_name())],
            )?;
            text_el(&mut w, "iter-count", &v.iterations.to_string())?;
            text_el(&mut w, "salt", &BASE64.encode(&v.salt))?;
            text_el(&mut w, "server-key", &BASE64.encode(&v.server_key))?;
            text_el(&mut w, "stored-key", &BASE64.encode(&v.stored_key))?;
            end(&mut w, "scram-credentials")?;
            nl(&mut w)?;
        }
    }
    roster(store, user, &mut w, &mut counts)?;
    if let Some(v) = store.vcard().get(user)? {
        raw(&mut w, &v)?;
        nl(&mut w)?;
        counts.insert("vcard", 1);
    }
    let private = store.private().list(user)?;
    if !private.is_empty() {
        start(&mut w, "query", &[("xmlns", NS_PRIVATE)])?;
        for (_, xml) in &private {
            raw(&mut w, xml)?;
        }
        end(&mut w, "query")?;
        nl(&mut w)?;
        counts.insert("private", private.len() as u64);
    }
    let offline = store.offline().list(user)?;
    if !offline.is_empty() {
        start(&mut w, "offline-messages", &[])?;
        for m in &offline {
            raw(&mut w, &stanza(&m.stanza, Some(m.timestamp))?)?;
        }
        end(&mut w, "offline-messages")?;
        nl(&mut w)?;
        counts.insert("offline", offline.len() as u64);
    }
    privacy(store, user, &mut w, &mut counts)?;
    pep(store, user, &mut w, &mut counts)?;
    archive(store, user, &mut w, &mut counts)?;
    end(&mut w, "user")?;
    nl(&mut w)?;
    end(&mut w, "host")?;
    nl(&mut w)?;
    end(&mut w, "server-data")?;
    nl(&mut w)?;
    w.into_inner().flush()?;
    Ok(counts)
}

/// A roster item that exists only because of a pending inbound request is written as the
/// `<presence type='subscribe'/>` alone, as servers export it.
fn only_pending(i: &RosterItem) -> bool {
    i.ask == Ask::In
        && i.subscription == Subscription::None
        && i.name.is_none()
        && i.groups.is_empty()
}

fn roster<S: Write>(
    store: &Store,
    user: &BareJid,
    w: &mut W<S>,
    counts: &mut ExportCounts,
) -> Result<()> {
    let items = store.roster().list(user)?;
    if items.is_empty() {
        return Ok(());
    }
    let ver = store.roster().version(user)?.to_string();
    start(w, "query", &[("xmlns", NS_ROSTER), ("ver", &ver)])?;
    for i in items.iter().filter(|i| !only_pending(i)) {
        let mut attrs = vec![("jid", i.jid.as_str())];
        if let Some(n) = &i.name {
            attrs.push(("name", n));
        }
        attrs.push(("subscription", i.subscription.as_str()));
        if matches!(i.ask, Ask::Out | Ask::Both) {
            attrs.push(("ask", "subscribe"));
        }
        if i.groups.is_empty() {
            empty(w, "item", &attrs)?;
        } else {
            start(w, "item", &attrs)?;
            for g in &i.groups {
                text_el(w, "group", g)?;
            }
            end(w, "item")?;
        }
    }
    end(w, "query")?;
    nl(w)?;
    for i in items
        .iter()
        .filter(|i| matches!(i.ask, Ask::In | Ask::Both))
    {
        let attrs = [
            ("xmlns", NS_CLIENT),
            ("type", "subscribe"),
            ("from", i.jid.as_str()),
        ];
        match &i.askmessage {
            Some(m) => {
                start(w, "presence", &attrs)?;
                text_el(w, "status", m)?;
                end(w, "presence")?;
            }
            None => empty(w, "presence", &attrs)?,
        }
        nl(w)?;
    }
    counts.insert("roster", items.len() as u64);
    Ok(())
}

fn privacy<S: Write>(
    store: &Store,
    user: &BareJid,
    w: &mut W<S>,
    counts: &mut ExportCounts,
) -> Result<()> {
    let names = store.privacy().list_names(user)?;
    if names.is_empty() {
        return Ok(());
    }
    start(w, "query", &[("xmlns", NS_PRIVACY)])?;
    if let Some(d) = store.privacy().default_list(user)? {
        empty(w, "default", &[("name", &d)])?;
    }
    for name in &names {
        let items = store.privacy().get_list(user, name)?.unwrap_or_default();
        start(w, "list", &[("name", name)])?;
        for it in &items {
            let order = it.order.to_string();
            let mut attrs = Vec::new();
            if let (Some(k), Some(v)) = (it.kind, &it.value) {
                attrs.push(("type", k.as_str()));
                attrs.push(("value", v.as_str()));
            }
            attrs.push(("action", it.action.as_str()));
            attrs.push(("order", &order));
            let kinds = [
                (it.message, "message"),
                (it.iq, "iq"),
                (it.presence_in, "presence-in"),
                (it.presence_out, "presence-out"),
            ];
            if kinds.iter().any(|(set, _)| *set) {
                start(w, "item", &attrs)?;
                for (_, k) in kinds.iter().filter(|(set, _)| *set) {
                    empty(w, k, &[])?;
                }
                end(w, "item")?;
            } else {
                empty(w, "item", &attrs)?;
            }
        }
        end(w, "list")?;
    }
    end(w, "query")?;
    nl(w)?;
    counts.insert("privacy_lists", names.len() as u64);
    Ok(())
}

/// A node's affiliations (but the owner's own, implied by the node) and subscriptions, in
/// the owner namespace, as XEP-0227 v1.1 importers (Prosody, jidstore) read them.
fn node_people<S: Write>(
    store: &Store,
    user: &BareJid,
    node: &str,
    w: &mut W<S>,
    counts: &mut ExportCounts,
) -> Result<()> {
    // The owner's own affiliation is implied by the node.
    let affiliations: Vec<_> = store
        .pubsub()
        .affiliations(user, node)?
        .into_iter()
        .filter(|(jid, a)| !(jid == user && *a == Affiliation::Owner))
        .collect();
    if !affiliations.is_empty() {
        start(w, "affiliations", &[("node", node)])?;
        for (jid, a) in &affiliations {
            empty(
                w,
                "affiliation",
                &[("jid", jid.as_str()), ("affiliation", a.as_str())],
            )?;
        }
        end(w, "affiliations")?;
        *counts.entry("pubsub_affiliations").or_default() += affiliations.len() as u64;
    }
    let subscriptions = store.pubsub().subscriptions(user, node)?;
    if !subscriptions.is_empty() {
        start(w, "subscriptions", &[("node", node)])?;
        for sub in &subscriptions {
            empty(
                w,
                "subscription",
                &[
                    ("jid", sub.subscriber.as_str()),
                    ("subscription", sub.state.as_str()),
                ],
            )?;
        }
        end(w, "subscriptions")?;
        *counts.entry("pubsub_subscriptions").or_default() += subscriptions.len() as u64;
    }
    Ok(())
}

fn pep<S: Write>(
    store: &Store,
    user: &BareJid,
    w: &mut W<S>,
    counts: &mut ExportCounts,
) -> Result<()> {
    let nodes: Vec<_> = store
        .pubsub()
        .nodes(user)?
        .into_iter()
        .filter(|n| n.kind == NodeType::Pep)
        .collect();
    if nodes.is_empty() {
        return Ok(());
    }
    start(w, "pubsub", &[("xmlns", NS_PUBSUB_OWNER)])?;
    for n in &nodes {
        start(w, "configure", &[("node", &n.node)])?;
        start(w, "x", &[("xmlns", NS_DATA), ("type", "submit")])?;
        start(w, "field", &[("var", "FORM_TYPE"), ("type", "hidden")])?;
        text_el(w, "value", "http://jabber.org/protocol/pubsub#node_config")?;
        end(w, "field")?;
        start(w, "field", &[("var", "pubsub#access_model")])?;
        text_el(w, "value", &n.access_model)?;
        end(w, "field")?;
        let mut i = 0;
        while let Some((var, _)) = n.config.get(i) {
            start(w, "field", &[("var", var)])?;
            while let Some((v, value)) = n.config.get(i).filter(|(v, _)| v == var) {
                let _ = v;
                text_el(w, "value", value)?;
                i += 1;
            }
            end(w, "field")?;
        }
        end(w, "x")?;
        end(w, "configure")?;
        node_people(store, user, &n.node, w, counts)?;
    }
    end(w, "pubsub")?;
    nl(w)?;
    let mut n_items = 0u64;
    let mut opened = false;
    for n in &nodes {
        let items = store.pubsub().items(user, &n.node)?;
        if items.is_empty() {
            continue;
        }
        if !opened {
            start(w, "pubsub", &[("xmlns", NS_PUBSUB)])?;
            opened = true;
        }
        start(w, "items", &[("node", &n.node)])?;
        for it in &items {
            let mut attrs = vec![("id", it.id.as_str())];
            if it.publisher != *user {
                attrs.push(("publisher", it.publisher.as_str()));
            }
            start(w, "item", &attrs)?;
            raw(w, &it.payload)?;
            end(w, "item")?;
            n_items += 1;
        }
        end(w, "items")?;
    }
    if opened {
        end(w, "pubsub")?;
        nl(w)?;
    }
    counts.insert("pubsub_nodes", nodes.len() as u64);
    if n_items > 0 {
        counts.insert("pubsub_items", n_items);
    }
    Ok(())
}

fn archive<S: Write>(
    store: &Store,
    user: &BareJid,
    w: &mut W<S>,
    counts: &mut ExportCounts,
) -> Result<()> {
    let mut n = 0u64;
    for m in store.mam().iter(user)? {
        let m = m?;
        if n == 0 {
            start(w, "archive", &[("xmlns", NS_MAM_ARCHIVE)])?;
            nl(w)?;
        }
        n += 1;
        crate::progress::advance(1);
        start(w, "result", &[("xmlns", NS_MAM), ("id", &m.id)])?;
        start(w, "forwarded", &[("xmlns", NS_FORWARD)])?;
        empty(
            w,
            "delay",
            &[("xmlns", NS_DELAY), ("stamp", &m.timestamp.to_rfc3339())],
        )?;
        raw(w, &stanza(&m.stanza, None)?)?;
        end(w, "forwarded")?;
        end(w, "result")?;
        nl(w)?;
    }
    if n > 0 {
        end(w, "archive")?;
        nl(w)?;
        counts.insert("mam_pm", n);
    }
    Ok(())
}

/// Writes the export of `user` to `path` (or `<path>/<username>.xml` when `path` is a
/// directory) with the same file safety as the GDPR zip: a temporary file created 0600,
/// fsynced and renamed into place, no overwrite without `force` (and never of anything but a
/// regular file), nothing left on failure, never inside the store's data directory.
pub fn export_to_path(
    store: &Store,
    user: &BareJid,
    path: &Path,
    force: bool,
) -> Result<(PathBuf, ExportCounts)> {
    if !store.accounts().exists(user)? {
        return Err(Error::NoAccount(user.to_string()));
    }
    let name = format!("{}.xml", user.node().unwrap_or(user.as_str()));
    let target = output::resolve(path, &name)?;
    if !store.is_temporary() {
        output::refuse_inside_store(store.path(), &target, "the export file")?;
    }
    let counts = output::write_new(&target, force, |sink| export(store, user, sink))?;
    Ok((target, counts))
}
