//! JIDs parsed and normalised once at the edge (RFC 7622 via the `jid` crate's stringprep).
//!
//! Everything past this module handles only normalised JIDs, so `Alice@Example.ORG` and
//! `alice@example.org` name the same owner in every keyspace.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// A normalised bare JID (`localpart@domain` or a bare `domain`): the owner of personal data.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BareJid(String);

/// A normalised JID that may carry a resource (`user@domain/resource`), as found in the
/// `from` and `to` of stanzas.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Jid(String);

fn invalid(input: &str, reason: impl fmt::Display) -> Error {
    Error::InvalidJid {
        input: input.to_owned(),
        reason: reason.to_string(),
    }
}

/// NUL separates owner prefixes in keys; stringprep forbids it already, this is belt and braces.
fn check_nul(input: &str) -> Result<()> {
    if input.contains('\0') {
        return Err(invalid(input, "contains a NUL character"));
    }
    Ok(())
}

/// The domainpart as jidstore keeps it: the `jid` crate's IDNA mapping is lenient with ASCII
/// (it lets `"`, `&`, `'`, `!`, `*`, `=`, `{` and more through), so ASCII is held to host
/// name letters, digits, `-`, `.` and `_` (used in practice), or an IPv6 literal in
/// brackets. A final dot is dropped (RFC 7622 section 3.2: `example.org.` is `example.org`).
fn domainpart<'a>(input: &str, domain: &'a str) -> Result<&'a str> {
    if domain.is_empty() || domain.ends_with('.') {
        return Err(invalid(input, "empty domain"));
    }
    if let Some(inner) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        if inner.parse::<std::net::Ipv6Addr>().is_ok() {
            return Ok(domain);
        }
        return Err(invalid(input, "domain is not a valid IPv6 literal"));
    }
    if let Some(c) = domain
        .chars()
        .find(|c| c.is_ascii() && !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
    {
        return Err(invalid(
            input,
            format!("domain contains the character {c:?}"),
        ));
    }
    Ok(domain)
}

/// `input` with one final dot of the domainpart dropped (before the `jid` crate sees it: its
/// full-JID parser miscounts the resource offset when its IDNA step drops the dot).
fn without_final_dot(input: &str) -> std::borrow::Cow<'_, str> {
    let (bare, resource) = match input.split_once('/') {
        Some((b, r)) => (b, Some(r)),
        None => (input, None),
    };
    match bare.strip_suffix('.') {
        Some(b) if !b.is_empty() && !b.ends_with(['.', '@']) => match resource {
            Some(r) => format!("{b}/{r}").into(),
            None => b.to_owned().into(),
        },
        _ => input.into(),
    }
}

/// Applies `prep` until its output stops changing. Stringprep is not idempotent for a few
/// characters (U+03F9 GREEK CAPITAL LUNATE SIGMA maps to a capital sigma that only a second
/// pass lower-cases; found by fuzzing), so one pass could give a JID that parses to another
/// one: the person typing the printed JID would not find their own data.
fn settled(
    input: &str,
    prep: impl Fn(&str) -> std::result::Result<String, jid::Error>,
) -> Result<String> {
    let mut current = prep(input).map_err(|e| invalid(input, e))?;
    for _ in 0..4 {
        let next = prep(&current).map_err(|e| invalid(input, e))?;
        if next == current {
            return Ok(current);
        }
        current = next;
    }
    Err(invalid(input, "normalisation does not settle"))
}

impl BareJid {
    /// Parses and normalises a bare JID. A JID with a resource is refused. Parsing a
    /// normalised JID gives it back unchanged.
    pub fn parse(input: &str) -> Result<Self> {
        check_nul(input)?;
        let norm = settled(&without_final_dot(input), |s| {
            jid::BareJid::new(s).map(|j| j.to_string())
        })?;
        let jid = jid::BareJid::new(&norm).map_err(|e| invalid(input, e))?;
        let domain = domainpart(input, jid.domain().as_str())?;
        Ok(BareJid(match jid.node() {
            Some(node) => format!("{}@{domain}", node.as_str()),
            None => domain.to_owned(),
        }))
    }

    /// Builds `username@domain` from its two parts, normalising both.
    pub fn from_parts(username: &str, domain: &str) -> Result<Self> {
        if username.is_empty() {
            return Err(invalid(&format!("{username}@{domain}"), "empty username"));
        }
        if username.contains(['@', '/']) || domain.contains(['@', '/']) {
            return Err(invalid(
                &format!("{username}@{domain}"),
                "username and domain must not contain '@' or '/'",
            ));
        }
        Self::parse(&format!("{username}@{domain}"))
    }

    /// Parses and normalises a domain alone (a bare JID without localpart), e.g. to check
    /// the domain of an account before its username is chosen.
    pub fn domain_only(domain: &str) -> Result<Self> {
        if domain.contains(['@', '/']) {
            return Err(invalid(domain, "a domain must not contain '@' or '/'"));
        }
        Self::parse(domain)
    }

    /// The normalised text, e.g. `alice@example.org`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The localpart, if any.
    pub fn node(&self) -> Option<&str> {
        self.0.split_once('@').map(|(node, _)| node)
    }

    /// The domain part.
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map_or(self.0.as_str(), |(_, d)| d)
    }

    /// Rebuilds from a string that was normalised before it was stored.
    pub(crate) fn from_stored(s: String) -> Self {
        BareJid(s)
    }
}

impl Jid {
    /// Parses and normalises a bare or full JID. Parsing a normalised JID gives it back
    /// unchanged.
    pub fn parse(input: &str) -> Result<Self> {
        check_nul(input)?;
        let norm = settled(&without_final_dot(input), |s| {
            jid::Jid::new(s).map(|j| j.to_string())
        })?;
        let jid = jid::Jid::new(&norm).map_err(|e| invalid(input, e))?;
        let domain = domainpart(input, jid.domain().as_str())?;
        let mut text = match jid.node() {
            Some(node) => format!("{}@{domain}", node.as_str()),
            None => domain.to_owned(),
        };
        if let Some(res) = jid.resource() {
            text.push('/');
            text.push_str(res.as_str());
        }
        Ok(Jid(text))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The bare part (drops the resource).
    pub fn to_bare(&self) -> BareJid {
        BareJid(
            self.0
                .split_once('/')
                .map_or(self.0.as_str(), |(b, _)| b)
                .to_owned(),
        )
    }

    /// The resource, if any.
    pub fn resource(&self) -> Option<&str> {
        self.0.split_once('/').map(|(_, r)| r)
    }

    /// Rebuilds from a string that was normalised before it was stored.
    pub(crate) fn from_stored(s: String) -> Self {
        Jid(s)
    }

    /// The JID as a string, without a copy.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<BareJid> for Jid {
    fn from(b: BareJid) -> Self {
        Jid(b.0)
    }
}

impl FromStr for BareJid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl FromStr for Jid {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

macro_rules! text_impls {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($t), self.0)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
text_impls!(BareJid);
text_impls!(Jid);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_folds_localpart_and_domain() {
        let a = BareJid::parse("Alice@Example.ORG").unwrap();
        assert_eq!(a.as_str(), "alice@example.org");
        assert_eq!(a, BareJid::from_parts("ALICE", "example.org").unwrap());
        assert_eq!(a.node(), Some("alice"));
        assert_eq!(a.domain(), "example.org");
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            "",
            "@example.org",
            "alice@",
            "a@b@c",
            "alice@example.org/res",
            "al\0ice@x",
            "a lice@x",
            "a@b\"c",
            "a@b&c",
            "a@b'c",
            "a@b!c",
            "a@b=c",
            "a@[::1",
            "a@[nope]",
            "a@.",
        ] {
            assert!(BareJid::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(BareJid::from_parts("", "x").is_err());
        assert!(BareJid::from_parts("a@b", "x").is_err());
        assert!(BareJid::parse(&format!("{}@x", "a".repeat(1024))).is_err());
    }

    #[test]
    fn full_jid_keeps_resource_and_strips_to_bare() {
        let j = Jid::parse("Bob@LocalHost/Res1").unwrap();
        assert_eq!(j.as_str(), "bob@localhost/Res1");
        assert_eq!(j.resource(), Some("Res1"));
        assert_eq!(j.to_bare().as_str(), "bob@localhost");
    }

    #[test]
    fn final_dot_and_ip_literals() {
        assert_eq!(
            BareJid::parse("a@Example.ORG.").unwrap().as_str(),
            "a@example.org"
        );
        assert_eq!(Jid::parse("a@x./r").unwrap().as_str(), "a@x/r");
        assert_eq!(BareJid::parse("a@[::1]").unwrap().as_str(), "a@[::1]");
        assert_eq!(BareJid::parse("a@1.2.3.4").unwrap().as_str(), "a@1.2.3.4");
        assert_eq!(BareJid::parse("a@a_b").unwrap().as_str(), "a@a_b");
        assert!(Jid::parse("a@b\"c/r").is_err());
    }

    #[test]
    fn normalisation_is_idempotent_for_lunate_sigma() {
        // Found by the jid_parse fuzz target: one stringprep pass turns U+03F9 into a
        // capital sigma, which a second pass lower-cases.
        for input in ["\u{3f9}\u{1d9}", "a@\u{3f9}x", "\u{3f9}@x/\u{3f9}"] {
            let once = Jid::parse(input).unwrap();
            assert_eq!(Jid::parse(once.as_str()).unwrap(), once, "{input:?}");
            if let Ok(bare) = BareJid::parse(input) {
                assert_eq!(BareJid::parse(bare.as_str()).unwrap(), bare, "{input:?}");
                assert!(!bare.as_str().contains('\u{3a3}'), "{bare:?}");
            }
        }
    }

    #[test]
    fn domain_only_jid() {
        let d = BareJid::parse("pubsub.localhost").unwrap();
        assert_eq!(d.node(), None);
        assert_eq!(d.domain(), "pubsub.localhost");
    }
}
