//! One `<user>` element parsed and checked child by child; archived messages one at a time.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use super::dom::{Child, Element};
use super::{
    BadTimestamps, NS_CLIENT, NS_DATA, NS_DELAY, NS_FORWARD, NS_NICK, NS_PRIVACY, NS_PRIVATE,
    NS_PUBSUB, NS_PUBSUB_OWNER, NS_ROSTER, NS_SCRAM, NS_SID, NS_VCARD, Problem,
};
use crate::ext::mam::{Direction, PmMessage};
use crate::ext::offline::OfflineMessage;
use crate::ext::privacy::{PrivacyAction, PrivacyItem, PrivacyType};
use crate::ext::pubsub::{Affiliation, SubState};
use crate::ext::roster::{Ask, RosterItem, Subscription};
use crate::ext::scram::{Mechanism, Verifier};
use crate::jid::{BareJid, Jid};
use crate::time::Timestamp;

/// How the account authenticates.
pub(crate) enum Credentials {
    Password(String),
    Scram(Vec<Verifier>),
    None,
}

/// A PEP node with its items `(id, publisher, payload)`, and the affiliations and
/// subscriptions of other JIDs (the owner's own affiliation comes with the node).
pub(crate) struct PepNode {
    pub node: String,
    pub access_model: String,
    pub config: Vec<(String, String)>,
    pub items: Vec<(String, BareJid, String)>,
    pub affiliations: BTreeMap<BareJid, Affiliation>,
    pub subscriptions: BTreeMap<BareJid, SubState>,
}

/// Everything imported for one user.
pub(crate) struct UserData {
    pub jid: BareJid,
    pub credentials: Credentials,
    pub roster: BTreeMap<String, RosterItem>,
    pub roster_ver: Option<u64>,
    pub vcard: Option<String>,
    pub private: BTreeMap<String, String>,
    pub offline: Vec<OfflineMessage>,
    pub privacy: BTreeMap<String, Vec<PrivacyItem>>,
    pub privacy_default: Option<String>,
    pub pep: BTreeMap<String, PepNode>,
}

/// Parsing state of one user: problems found, and why the user must be refused, if so.
pub(crate) struct Ctx<'a> {
    pub problems: &'a mut Vec<Problem>,
    pub fatal: Option<String>,
    pub policy: BadTimestamps,
    pub now: Timestamp,
    /// Report each element read as progress (the check pass).
    pub progress: bool,
}

impl Ctx<'_> {
    /// One more element of the user read.
    pub(crate) fn count_element(&self) {
        if self.progress {
            crate::progress::advance(1);
        }
    }

    fn report(&mut self, el: &Element, message: impl Into<String>) {
        self.problems.push(el.problem(message));
    }

    pub(crate) fn refuse(&mut self, el: &Element, message: impl Into<String>) {
        let p = el.problem(message);
        if self.fatal.is_none() {
            self.fatal = Some(p.to_string());
        }
        self.problems.push(p);
    }

    /// A timestamp under the bad-timestamp policy; `None` drops the element.
    fn stamp(&mut self, el: &Element, raw: Option<&str>, what: &str) -> Option<Timestamp> {
        let why = match raw {
            Some(s) => match Timestamp::parse_rfc3339(s.trim()) {
                Ok(t) => return Some(t),
                Err(_) => match Timestamp::parse_java_date(s.trim()) {
                    Ok((t, offset)) => {
                        let sign = if offset < 0 { '-' } else { '+' };
                        let (h, m) = (offset.abs() / 60, offset.abs() % 60);
                        self.report(
                            el,
                            format!(
                                "{what}: Java date '{s}' converted to {t} (read as UTC{sign}{h:02}:{m:02})"
                            ),
                        );
                        return Some(t);
                    }
                    Err(_) => match s.split_ascii_whitespace().nth(4) {
                        Some(zone) if crate::time::java_zone(zone).is_none() => format!(
                            "{what}: timestamp '{s}' is not XEP-0082 (as a Java date, its zone '{zone}' is unknown)"
                        ),
                        _ => format!("{what}: timestamp '{s}' is not XEP-0082"),
                    },
                },
            },
            None => format!("{what}: no timestamp"),
        };
        match self.policy {
            BadTimestamps::Reject => {
                self.refuse(el, format!("{why}; user refused (--bad-timestamps reject)"));
                None
            }
            BadTimestamps::Now => {
                self.report(el, format!("{why}; import time used"));
                Some(self.now)
            }
            BadTimestamps::Skip => {
                self.report(el, format!("{why}; element skipped"));
                None
            }
        }
    }

    fn unknown(&mut self, el: &Element) {
        let name = if el.ns.is_empty() {
            el.name.clone()
        } else {
            format!("{{{}}}{}", el.ns, el.name)
        };
        self.report(el, format!("unknown element {name} skipped"));
    }
}

/// A `<user>` parsed child by child, so the archive can be streamed: [`UserParser::child`]
/// takes every child except archive results, which go one by one to
/// [`UserParser::archived`]; [`UserParser::finish`] then settles pending subscription
/// requests and credentials. Problems are reported in document order.
pub(crate) struct UserParser {
    u: UserData,
    verifiers: Vec<Verifier>,
    pending: Vec<Element>,
    /// 128-bit fingerprints (SHA-256 prefix) of the archive ids seen, to skip repeats
    /// without keeping every id.
    ids: HashSet<u128>,
    /// Archived messages accepted so far.
    pub archived: u64,
    /// Archived messages that involve neither the user nor its domain, and the first one
    /// (reported once, by [`UserParser::finish`]).
    foreign: u64,
    first_foreign: Option<Problem>,
}

impl UserParser {
    /// Starts a `<user>` of `domain` (only its attributes are read); `None` refuses it.
    pub fn start(user: &Element, domain: &str, ctx: &mut Ctx<'_>) -> Option<UserParser> {
        let Some(name) = user.attr("name") else {
            ctx.refuse(user, "user without a name attribute");
            return None;
        };
        let jid = match BareJid::from_parts(name, domain) {
            Ok(j) => j,
            Err(e) => {
                ctx.refuse(user, format!("user '{name}': {e}"));
                return None;
            }
        };
        Some(UserParser {
            u: UserData {
                jid,
                credentials: Credentials::None,
                roster: BTreeMap::new(),
                roster_ver: None,
                vcard: None,
                private: BTreeMap::new(),
                offline: Vec::new(),
                privacy: BTreeMap::new(),
                privacy_default: None,
                pep: BTreeMap::new(),
            },
            verifiers: Vec::new(),
            pending: Vec::new(),
            ids: HashSet::new(),
            archived: 0,
            foreign: 0,
            first_foreign: None,
        })
    }

    /// One child of `<user>` other than `<archive>`.
    pub fn child(&mut self, el: &Element, ctx: &mut Ctx<'_>) {
        let u = &mut self.u;
        match (el.ns.as_str(), el.name.as_str()) {
            (NS_SCRAM, "scram-credentials") => {
                if let Some(v) = scram(el, ctx) {
                    if self.verifiers.iter().any(|o| o.mechanism == v.mechanism) {
                        ctx.report(
                            el,
                            "duplicate SCRAM credentials for a mechanism; first kept",
                        );
                    } else {
                        self.verifiers.push(v);
                    }
                }
            }
            (NS_ROSTER, "query") => roster(el, u, ctx),
            (NS_PRIVATE, "query") => private(el, u, ctx),
            (NS_PRIVACY, "query") => privacy(el, u, ctx),
            (NS_VCARD, "vCard") => {
                if u.vcard.is_some() {
                    ctx.report(el, "second vCard; it replaces the first");
                }
                u.vcard = Some(el.to_xml());
            }
            (NS_CLIENT, "presence") => self.pending.push(el.clone()),
            (NS_PUBSUB_OWNER, "pubsub") => pep_config(el, u, ctx),
            (NS_PUBSUB, "pubsub") => pep_items(el, u, ctx),
            _ if el.is_pie("offline-messages") => offline(el, u, ctx),
            _ => ctx.unknown(el),
        }
    }

    /// One child of an `<archive>`: the message to archive, or `None` when it is dropped
    /// (reported) or refuses the user (see [`Ctx::fatal`]).
    pub fn archived(&mut self, r: &Element, ctx: &mut Ctx<'_>) -> Option<PmMessage> {
        let m = archived(r, &self.u.jid, &mut self.ids, ctx)?;
        self.archived += 1;
        let jid = &self.u.jid;
        let involves = |j: &Jid| {
            let b = j.as_str().split_once('/').map_or(j.as_str(), |(b, _)| b);
            b == jid.as_str() || b == jid.domain()
        };
        if !involves(&m.from) && !involves(&m.to) {
            self.foreign += 1;
            if self.first_foreign.is_none() {
                self.first_foreign = Some(r.problem(format!(
                    "between {} and {}",
                    m.from.to_bare(),
                    m.to.to_bare()
                )));
            }
        }
        Some(m)
    }

    /// Settles pending subscription requests and credentials.
    pub fn finish(mut self, user: &Element, ctx: &mut Ctx<'_>) -> UserData {
        if let Some(first) = self.first_foreign.take() {
            ctx.problems.push(Problem {
                message: format!(
                    "{} archived message(s) involve neither {} nor its domain (the first, here, {}); kept as incoming",
                    self.foreign, self.u.jid, first.message
                ),
                ..first
            });
        }
        for p in std::mem::take(&mut self.pending) {
            presence(&p, &mut self.u, ctx);
        }
        let mut u = self.u;
        u.credentials = match user.attr("password") {
            _ if !self.verifiers.is_empty() => {
                if user.attr("password").is_some() {
                    ctx.report(user, "both a password and SCRAM credentials; SCRAM kept");
                }
                Credentials::Scram(self.verifiers)
            }
            Some(pw) if pw.starts_with("scram:") => {
                if let Some(v) = ejabberd_scram(pw) {
                    ctx.report(
                        user,
                        format!(
                            "{}: password in ejabberd's 'scram:' export form read as {} credentials",
                            u.jid,
                            v.mechanism.sasl_name()
                        ),
                    );
                    Credentials::Scram(vec![v])
                } else {
                    ctx.report(
                        user,
                        format!(
                            "{}: password starts with 'scram:' but is not ejabberd's scram:StoredKey,ServerKey,Salt,Iterations form; taken as the literal password",
                            u.jid
                        ),
                    );
                    Credentials::Password(pw.to_owned())
                }
            }
            Some(pw) if !pw.is_empty() => Credentials::Password(pw.to_owned()),
            _ => {
                ctx.report(
                    user,
                    format!(
                        "{}: no password or SCRAM credentials; the account cannot log in until a password is set",
                        u.jid
                    ),
                );
                Credentials::None
            }
        };
        u
    }
}

/// ejabberd's export of SCRAM credentials in the password attribute (`ejabberd_piefxis`):
/// `scram:` then base64 `StoredKey`, `ServerKey` and salt, and the iteration count, comma
/// separated. ejabberd writes SCRAM-SHA-1 there; the key length tells the hash.
fn ejabberd_scram(pw: &str) -> Option<Verifier> {
    let mut parts = pw.strip_prefix("scram:")?.split(',');
    let (Some(stored), Some(server), Some(salt), Some(iter), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let decode = |t: &str| BASE64.decode(t.trim()).ok().filter(|v| !v.is_empty());
    let (stored_key, server_key, salt) = (decode(stored)?, decode(server)?, decode(salt)?);
    let iterations = iter.trim().parse::<u32>().ok().filter(|n| *n > 0)?;
    let mechanism = match stored_key.len() {
        20 => Mechanism::Sha1,
        32 => Mechanism::Sha256,
        64 => Mechanism::Sha512,
        _ => return None,
    };
    (server_key.len() == stored_key.len()).then_some(Verifier {
        mechanism,
        salt,
        iterations,
        stored_key,
        server_key,
    })
}

fn b64(el: &Element, name: &str, ctx: &mut Ctx<'_>) -> Option<Vec<u8>> {
    let c = el.child(super::NS_SCRAM, name);
    let text: String = c
        .map(Element::text)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    match BASE64.decode(text.as_bytes()) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            ctx.refuse(
                el,
                format!("SCRAM credentials: <{name}/> missing or not base64"),
            );
            None
        }
    }
}

fn scram(el: &Element, ctx: &mut Ctx<'_>) -> Option<Verifier> {
    let mech = el.attr("mechanism").unwrap_or_default();
    let mechanism = match mech.strip_suffix("-PLUS").unwrap_or(mech) {
        "SCRAM-SHA-1" => Mechanism::Sha1,
        "SCRAM-SHA-256" => Mechanism::Sha256,
        "SCRAM-SHA-512" => Mechanism::Sha512,
        other => {
            ctx.report(
                el,
                format!("SCRAM mechanism '{other}' is not supported; credentials skipped"),
            );
            return None;
        }
    };
    let iterations = el
        .child(NS_SCRAM, "iter-count")
        .and_then(|c| c.text().trim().parse::<u32>().ok())
        .filter(|n| *n > 0);
    let Some(iterations) = iterations else {
        ctx.refuse(
            el,
            "SCRAM credentials: <iter-count/> missing or not a positive integer",
        );
        return None;
    };
    let salt = b64(el, "salt", ctx)?;
    let server_key = b64(el, "server-key", ctx)?;
    let stored_key = b64(el, "stored-key", ctx)?;
    let len = match mechanism {
        Mechanism::Sha1 => 20,
        Mechanism::Sha256 => 32,
        Mechanism::Sha512 => 64,
    };
    if server_key.len() != len || stored_key.len() != len {
        ctx.refuse(
            el,
            format!("SCRAM credentials: {mech} keys must be {len} bytes"),
        );
        return None;
    }
    Some(Verifier {
        mechanism,
        salt,
        iterations,
        stored_key,
        server_key,
    })
}

fn roster(q: &Element, u: &mut UserData, ctx: &mut Ctx<'_>) {
    if let Some(v) = q.attr("ver") {
        match v.parse::<u64>() {
            Ok(n) => u.roster_ver = Some(n),
            Err(_) => ctx.report(
                q,
                format!("roster ver '{v}' is not a number; a new version is assigned"),
            ),
        }
    }
    for item in q.elements() {
        if item.ns != NS_ROSTER || item.name != "item" {
            ctx.unknown(item);
            continue;
        }
        let raw = item.attr("jid").unwrap_or_default();
        let jid = match BareJid::parse(raw) {
            Ok(j) => j,
            Err(e) => {
                ctx.report(item, format!("roster item skipped: {e}"));
                continue;
            }
        };
        let subscription = match item.attr("subscription").unwrap_or("none") {
            "none" => Subscription::None,
            "to" => Subscription::To,
            "from" => Subscription::From,
            "both" => Subscription::Both,
            other => {
                ctx.report(
                    item,
                    format!("roster item {jid}: subscription '{other}'; item skipped"),
                );
                continue;
            }
        };
        if matches!(item.attr("approved"), Some("true" | "1")) {
            ctx.report(
                item,
                format!("roster item {jid}: subscription pre-approval not kept"),
            );
        }
        let ask = match item.attr("ask") {
            None => Ask::None,
            Some("subscribe") => Ask::Out,
            Some(other) => {
                ctx.report(item, format!("roster item {jid}: ask '{other}' ignored"));
                Ask::None
            }
        };
        let mut groups: Vec<String> = Vec::new();
        for g in item.elements() {
            if g.ns != NS_ROSTER || g.name != "group" {
                ctx.unknown(g);
                continue;
            }
            let name = g.text();
            if name.is_empty() {
                ctx.report(g, format!("roster item {jid}: empty <group/> dropped"));
            } else if !groups.contains(&name) {
                groups.push(name);
            }
        }
        let name = item
            .attr("name")
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        if u.roster.contains_key(jid.as_str()) {
            ctx.report(
                item,
                format!("roster item {jid} listed twice; the last one kept"),
            );
        }
        u.roster.insert(
            jid.as_str().to_owned(),
            RosterItem {
                jid,
                name,
                subscription,
                ask,
                groups,
                askmessage: None,
            },
        );
    }
}

fn presence(p: &Element, u: &mut UserData, ctx: &mut Ctx<'_>) {
    if p.attr("type") != Some("subscribe") {
        ctx.report(p, "presence other than a subscription request skipped");
        return;
    }
    let from = match p.attr("from").map(Jid::parse) {
        Some(Ok(j)) => j.to_bare(),
        Some(Err(e)) => {
            ctx.report(p, format!("subscription request skipped: {e}"));
            return;
        }
        None => {
            ctx.report(p, "subscription request without from skipped");
            return;
        }
    };
    let status = p
        .child(NS_CLIENT, "status")
        .map(Element::text)
        .filter(|s| !s.is_empty());
    // The roster keeps who asked and the status text; anything else is reported.
    if p.attr("id").is_some() {
        ctx.report(
            p,
            format!("subscription request from {from}: its id is not kept"),
        );
    }
    for c in p.elements() {
        if c.ns == NS_CLIENT && c.name == "status" {
            continue;
        }
        let what = if c.ns == NS_NICK && c.name == "nick" {
            "its <nick/> (XEP-0172)".to_owned()
        } else {
            format!("its <{}/>", c.name)
        };
        ctx.report(
            p,
            format!("subscription request from {from}: {what} is not kept"),
        );
    }
    let item = u
        .roster
        .entry(from.as_str().to_owned())
        .or_insert_with(|| RosterItem {
            jid: from.clone(),
            name: None,
            subscription: Subscription::None,
            ask: Ask::None,
            groups: Vec::new(),
            askmessage: None,
        });
    item.ask = match item.ask {
        Ask::Out | Ask::Both => Ask::Both,
        Ask::None | Ask::In => Ask::In,
    };
    if status.is_some() {
        item.askmessage = status;
    }
}

fn private(q: &Element, u: &mut UserData, ctx: &mut Ctx<'_>) {
    for item in q.elements() {
        if item.ns.is_empty() || item.ns == NS_PRIVATE {
            ctx.report(
                item,
                format!(
                    "private XML <{}/> without its own namespace skipped",
                    item.name
                ),
            );
            continue;
        }
        if u.private.contains_key(&item.ns) {
            ctx.report(
                item,
                format!(
                    "private XML namespace {} given twice; the last one kept",
                    item.ns
                ),
            );
        }
        u.private.insert(item.ns.clone(), item.to_xml());
    }
}

fn privacy(q: &Element, u: &mut UserData, ctx: &mut Ctx<'_>) {
    for el in q.elements() {
        match (el.ns.as_str(), el.name.as_str(), el.attr("name")) {
            (NS_PRIVACY, "default", Some(n)) => u.privacy_default = Some(n.to_owned()),
            (NS_PRIVACY, "active", _) => ctx.report(
                el,
                "active privacy list: session state, not kept (the default list is)",
            ),
            (NS_PRIVACY, "list", Some(n)) if !n.is_empty() => {
                let items = privacy_items(el, ctx);
                u.privacy.insert(n.to_owned(), items);
            }
            _ => ctx.unknown(el),
        }
    }
    if let Some(d) = &u.privacy_default
        && !u.privacy.contains_key(d)
    {
        ctx.report(
            q,
            format!("default privacy list '{d}' does not exist; no default set"),
        );
        u.privacy_default = None;
    }
}

fn privacy_items(list: &Element, ctx: &mut Ctx<'_>) -> Vec<PrivacyItem> {
    let mut out = Vec::new();
    let mut orders = BTreeSet::new();
    for it in list.elements() {
        if it.ns != NS_PRIVACY || it.name != "item" {
            ctx.unknown(it);
            continue;
        }
        let order = it.attr("order").and_then(|o| o.parse::<u32>().ok());
        let action = match it.attr("action") {
            Some("allow") => Some(PrivacyAction::Allow),
            Some("deny") => Some(PrivacyAction::Deny),
            _ => None,
        };
        let kind = match it.attr("type") {
            None => Ok(None),
            Some("jid") => Ok(Some(PrivacyType::Jid)),
            Some("group") => Ok(Some(PrivacyType::Group)),
            Some("subscription") => Ok(Some(PrivacyType::Subscription)),
            Some(_) => Err(()),
        };
        let value = it.attr("value").map(str::to_owned);
        let (Some(order), Some(action), Ok(kind)) = (order, action, kind) else {
            ctx.report(
                it,
                "privacy item without a valid order, action or type skipped",
            );
            continue;
        };
        let valid = match (kind, value.as_deref()) {
            (None, None) | (Some(PrivacyType::Jid | PrivacyType::Group), Some(_)) => true,
            (Some(PrivacyType::Subscription), Some(v)) => {
                matches!(v, "none" | "to" | "from" | "both")
            }
            _ => false,
        };
        if !valid || !orders.insert(order) {
            ctx.report(
                it,
                format!("privacy item {order}: invalid value or duplicate order; skipped"),
            );
            continue;
        }
        let has = |n: &str| it.child(NS_PRIVACY, n).is_some();
        out.push(PrivacyItem {
            order,
            kind,
            value,
            action,
            message: has("message"),
            iq: has("iq"),
            presence_in: has("presence-in"),
            presence_out: has("presence-out"),
        });
    }
    out
}

fn pep_node<'u>(u: &'u mut UserData, node: &str) -> &'u mut PepNode {
    u.pep.entry(node.to_owned()).or_insert_with(|| PepNode {
        node: node.to_owned(),
        access_model: "presence".into(),
        config: Vec::new(),
        items: Vec::new(),
        affiliations: BTreeMap::new(),
        subscriptions: BTreeMap::new(),
    })
}

fn pep_config(ps: &Element, u: &mut UserData, ctx: &mut Ctx<'_>) {
    for c in ps.elements() {
        let node = c.attr("node").filter(|n| !n.is_empty());
        let (NS_PUBSUB_OWNER, name, Some(node)) = (c.ns.as_str(), c.name.as_str(), node) else {
            ctx.unknown(c);
            continue;
        };
        match name {
            "configure" => {}
            "affiliations" => {
                pep_affiliations(c, node, u, ctx);
                continue;
            }
            "subscriptions" => {
                pep_subscriptions(c, node, u, ctx);
                continue;
            }
            _ => {
                ctx.unknown(c);
                continue;
            }
        }
        let n = pep_node(u, node);
        if let Some(x) = c.child(NS_DATA, "x") {
            for f in x
                .elements()
                .filter(|f| f.ns == NS_DATA && f.name == "field")
            {
                let var = f.attr("var").unwrap_or_default();
                let values = f
                    .elements()
                    .filter(|v| v.ns == NS_DATA && v.name == "value")
                    .map(Element::text);
                match var {
                    "FORM_TYPE" | "" => {}
                    "pubsub#access_model" => {
                        if let Some(v) = values.last() {
                            n.access_model = v;
                        }
                    }
                    _ => n.config.extend(values.map(|v| (var.to_owned(), v))),
                }
            }
        }
    }
}

/// A JID attribute of a pubsub entry, as a bare JID; `None` (reported) when it is missing or
/// invalid.
fn entry_jid(e: &Element, what: &str, ctx: &mut Ctx<'_>) -> Option<BareJid> {
    match e.attr("jid").map(Jid::parse) {
        Some(Ok(j)) => Some(j.to_bare()),
        Some(Err(err)) => {
            ctx.report(e, format!("{what} skipped: {err}"));
            None
        }
        None => {
            ctx.report(e, format!("{what} without a jid skipped"));
            None
        }
    }
}

/// `<affiliations node=..>` of the owner namespace (XEP-0227 v1.1, as Prosody writes it).
fn pep_affiliations(list: &Element, node: &str, u: &mut UserData, ctx: &mut Ctx<'_>) {
    for a in list.elements() {
        if a.ns != NS_PUBSUB_OWNER || a.name != "affiliation" {
            ctx.unknown(a);
            continue;
        }
        let what = format!("PEP node {node}: affiliation");
        let Some(jid) = entry_jid(a, &what, ctx) else {
            continue;
        };
        let affiliation = match a.attr("affiliation") {
            Some("owner") => Affiliation::Owner,
            Some("publisher") => Affiliation::Publisher,
            Some("publish-only") => Affiliation::PublishOnly,
            Some("member") => Affiliation::Member,
            Some("outcast") => Affiliation::Outcast,
            // No affiliation: nothing to keep.
            Some("none") => continue,
            other => {
                ctx.report(
                    a,
                    format!(
                        "{what} of {jid}: '{}' is not a XEP-0060 affiliation; skipped",
                        other.unwrap_or_default()
                    ),
                );
                continue;
            }
        };
        if jid == u.jid {
            if affiliation != Affiliation::Owner {
                ctx.report(
                    a,
                    format!(
                        "{what} of the owner as {}: the owner keeps 'owner'",
                        affiliation.as_str()
                    ),
                );
            }
            continue;
        }
        pep_node(u, node).affiliations.insert(jid, affiliation);
    }
}

/// `<subscriptions node=..>` of the owner namespace. Prosody writes the state in a
/// `subscribed` attribute rather than `subscription`; both are read.
fn pep_subscriptions(list: &Element, node: &str, u: &mut UserData, ctx: &mut Ctx<'_>) {
    for sub in list.elements() {
        if sub.ns != NS_PUBSUB_OWNER || sub.name != "subscription" {
            ctx.unknown(sub);
            continue;
        }
        let what = format!("PEP node {node}: subscription");
        let Some(jid) = entry_jid(sub, &what, ctx) else {
            continue;
        };
        let state = match sub.attr("subscription").or_else(|| sub.attr("subscribed")) {
            Some("subscribed") => SubState::Subscribed,
            Some("pending") => SubState::Pending,
            Some("unconfigured") => SubState::Unconfigured,
            Some("none") => continue,
            other => {
                ctx.report(
                    sub,
                    format!(
                        "{what} of {jid}: state '{}' is not a XEP-0060 subscription state; skipped",
                        other.unwrap_or_default()
                    ),
                );
                continue;
            }
        };
        if sub.attr("subid").is_some() {
            ctx.report(sub, format!("{what} of {jid}: its subid is not kept"));
        }
        if sub.elements().next().is_some() {
            ctx.report(
                sub,
                format!("{what} of {jid}: subscription options are not kept"),
            );
        }
        pep_node(u, node).subscriptions.insert(jid, state);
    }
}

fn pep_items(ps: &Element, u: &mut UserData, ctx: &mut Ctx<'_>) {
    for items in ps.elements() {
        let node = items.attr("node").filter(|n| !n.is_empty());
        let (NS_PUBSUB, "items", Some(node)) = (items.ns.as_str(), items.name.as_str(), node)
        else {
            ctx.unknown(items);
            continue;
        };
        for item in items.elements() {
            let id = item.attr("id").filter(|i| !i.is_empty());
            let (NS_PUBSUB, "item", Some(id)) = (item.ns.as_str(), item.name.as_str(), id) else {
                ctx.report(item, format!("PEP node {node}: item without an id skipped"));
                continue;
            };
            if item.elements().nth(1).is_some() {
                ctx.report(
                    item,
                    format!("PEP item {node}/{id}: only the first payload element is kept"),
                );
            }
            let Some(payload) = item.elements().next() else {
                ctx.report(
                    item,
                    format!("PEP item {node}/{id} without payload skipped"),
                );
                continue;
            };
            let publisher = match item.attr("publisher").map(Jid::parse) {
                None => u.jid.clone(),
                Some(Ok(j)) => j.to_bare(),
                Some(Err(e)) => {
                    ctx.report(
                        item,
                        format!("PEP item {node}/{id}: {e}; owner used as publisher"),
                    );
                    u.jid.clone()
                }
            };
            let payload = payload.to_xml();
            let n = pep_node(u, node);
            n.items.retain(|(i, _, _)| i != id);
            n.items.push((id.to_owned(), publisher, payload));
        }
    }
}

/// The first `urn:xmpp:delay` child's stamp, with the element for reports.
fn delay(el: &Element) -> Option<&Element> {
    el.child(NS_DELAY, "delay")
}

fn offline(list: &Element, u: &mut UserData, ctx: &mut Ctx<'_>) {
    for m in list.elements() {
        if m.name != "message" {
            ctx.unknown(m);
            continue;
        }
        let mut stanza = m.clone();
        if stanza.ns != NS_CLIENT {
            stanza.rename_ns(NS_CLIENT);
        }
        let timestamp = match delay(m) {
            None => ctx.now,
            Some(d) => match d.attr("stamp").map(|s| Timestamp::parse_rfc3339(s.trim())) {
                Some(Ok(t)) => t,
                raw => {
                    let raw = if raw.is_some() { d.attr("stamp") } else { None };
                    let Some(t) = ctx.stamp(d, raw, "offline message delay") else {
                        continue;
                    };
                    rewrite_delay(&mut stanza, t);
                    t
                }
            },
        };
        let from = match m.attr("from").map(Jid::parse) {
            None => Jid::from(match BareJid::parse(u.jid.domain()) {
                Ok(d) => d,
                Err(_) => u.jid.clone(),
            }),
            Some(Ok(j)) => j,
            Some(Err(e)) => {
                ctx.report(m, format!("offline message skipped: from: {e}"));
                continue;
            }
        };
        let to = match m.attr("to").map(Jid::parse) {
            None => Jid::from(u.jid.clone()),
            Some(Ok(j)) => j,
            Some(Err(e)) => {
                ctx.report(m, format!("offline message skipped: to: {e}"));
                continue;
            }
        };
        u.offline.push(OfflineMessage {
            from,
            to,
            timestamp,
            expires: None,
            stanza: stanza.to_xml(),
        });
    }
}

/// Sets the stamp of the message's first delay element.
fn rewrite_delay(stanza: &mut Element, t: Timestamp) {
    for c in &mut stanza.children {
        if let Child::Element(d) = c
            && d.ns == NS_DELAY
            && d.name == "delay"
        {
            d.set_attr("stamp", &t.to_rfc3339());
            return;
        }
    }
}

fn fingerprint(id: &str) -> u128 {
    let d = Sha256::digest(id.as_bytes());
    let mut b = [0u8; 16];
    for (o, i) in b.iter_mut().zip(d.iter()) {
        *o = *i;
    }
    u128::from_be_bytes(b)
}

fn archived(
    r: &Element,
    jid: &BareJid,
    ids: &mut HashSet<u128>,
    ctx: &mut Ctx<'_>,
) -> Option<PmMessage> {
    if r.name != "result" {
        ctx.unknown(r);
        return None;
    }
    let fwd = r.child(NS_FORWARD, "forwarded");
    let msg = fwd.and_then(|f| f.elements().find(|e| e.name == "message"));
    let (Some(fwd), Some(msg)) = (fwd, msg) else {
        ctx.report(r, "archived result without <forwarded><message/> skipped");
        return None;
    };
    let d = delay(fwd);
    let timestamp = ctx.stamp(
        d.unwrap_or(fwd),
        d.and_then(|d| d.attr("stamp")),
        "archived message",
    )?;
    let id = r.attr("id").filter(|i| !i.is_empty()).map(str::to_owned);
    match &id {
        Some(i) if !ids.insert(fingerprint(i)) => {
            ctx.report(
                r,
                format!("archived message id '{i}' repeated; later copy skipped"),
            );
            return None;
        }
        Some(_) => {}
        None => ctx.report(r, "archived message without an id; a new id is assigned"),
    }
    let mut stanza = msg.clone();
    if stanza.ns != NS_CLIENT {
        stanza.rename_ns(NS_CLIENT);
    }
    let parse = |attr: &str| match msg.attr(attr).map(Jid::parse) {
        None => Ok(Jid::from(jid.clone())),
        Some(r) => r,
    };
    let (from, to) = match (parse("from"), parse("to")) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => {
            ctx.report(r, format!("archived message skipped: {e}"));
            return None;
        }
    };
    let direction = if from.to_bare() == *jid {
        Direction::Outgoing
    } else {
        Direction::Incoming
    };
    let origin_id = msg
        .child(NS_SID, "origin-id")
        .and_then(|o| o.attr("id"))
        .map(str::to_owned);
    Some(PmMessage {
        id,
        timestamp,
        from,
        to,
        direction,
        origin_id,
        stanza: stanza.to_xml(),
    })
}
