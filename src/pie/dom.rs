//! A small namespace-aware element tree for PIE documents: parsed with quick-xml, each
//! element knowing its file and line, with a canonical serializer
//! (serializing a parsed serialization gives the same bytes, which round trips rely on).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::{NS_PIE, NS_PIE_OLD, Problem};

const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

/// An attribute; `prefix`/`ns` are set for qualified names such as `xml:lang`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attr {
    pub prefix: Option<String>,
    pub ns: Option<String>,
    pub name: String,
    pub value: String,
}

/// An element with its resolved namespace and where it was read.
#[derive(Clone, Debug)]
pub(crate) struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<Attr>,
    pub children: Vec<Child>,
    pub file: Arc<Path>,
    pub line: u32,
}

/// Element content.
#[derive(Clone, Debug)]
pub(crate) enum Child {
    Element(Element),
    Text(String),
}

impl Element {
    /// A new element without attributes or children.
    pub fn new(ns: &str, name: &str, file: Arc<Path>, line: u32) -> Element {
        Element {
            ns: ns.to_owned(),
            name: name.to_owned(),
            attrs: Vec::new(),
            children: Vec::new(),
            file,
            line,
        }
    }

    /// The value of an unqualified attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.prefix.is_none() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// Sets (or replaces) an unqualified attribute.
    pub fn set_attr(&mut self, name: &str, value: &str) {
        match self
            .attrs
            .iter_mut()
            .find(|a| a.prefix.is_none() && a.name == name)
        {
            Some(a) => value.clone_into(&mut a.value),
            None => self.attrs.push(Attr {
                prefix: None,
                ns: None,
                name: name.to_owned(),
                value: value.to_owned(),
            }),
        }
    }

    /// Child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Child::Element(e) => Some(e),
            Child::Text(_) => None,
        })
    }

    /// The first child element with this namespace and name.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.ns == ns && e.name == name)
    }

    /// The concatenated text children.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for c in &self.children {
            if let Child::Text(t) = c {
                s.push_str(t);
            }
        }
        s
    }

    /// Whether this is a PIE element (current or old namespace) with this name.
    pub fn is_pie(&self, name: &str) -> bool {
        self.name == name && (self.ns == NS_PIE || self.ns == NS_PIE_OLD)
    }

    /// A problem located at this element.
    pub fn problem(&self, message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.to_path_buf(),
            line: self.line,
            message: message.into(),
        }
    }

    /// Canonical XML text of this element, declaring its namespace on the root.
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        write_element(self, None, &mut out);
        out
    }

    /// Replaces the namespace of this element and of its descendants that share it.
    pub fn rename_ns(&mut self, to: &str) {
        let from = std::mem::replace(&mut self.ns, to.to_owned());
        for c in &mut self.children {
            if let Child::Element(e) = c
                && e.ns == from
            {
                e.rename_ns(to);
            }
        }
    }
}

fn write_element(el: &Element, parent_ns: Option<&str>, out: &mut String) {
    out.push('<');
    out.push_str(&el.name);
    if parent_ns.map_or(!el.ns.is_empty(), |p| p != el.ns) {
        let _ = write!(
            out,
            " xmlns='{}'",
            quick_xml::escape::escape(el.ns.as_str())
        );
    }
    for a in &el.attrs {
        match (&a.prefix, &a.ns) {
            (Some(p), Some(ns)) if p != "xml" => {
                let _ = write!(
                    out,
                    " xmlns:{p}='{}' {p}:",
                    quick_xml::escape::escape(ns.as_str())
                );
            }
            (Some(p), _) => {
                let _ = write!(out, " {p}:");
            }
            (None, _) => out.push(' '),
        }
        let _ = write!(
            out,
            "{}='{}'",
            a.name,
            quick_xml::escape::escape(a.value.as_str())
        );
    }
    if el.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for c in &el.children {
        match c {
            Child::Element(e) => write_element(e, Some(&el.ns), out),
            Child::Text(t) => out.push_str(&quick_xml::escape::partial_escape(t.as_str())),
        }
    }
    out.push_str("</");
    out.push_str(&el.name);
    out.push('>');
}

/// Counts lines incrementally as the reader advances.
struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
    line: u32,
}

impl Lines<'_> {
    fn at(&mut self, pos: u64) -> u32 {
        let pos = usize::try_from(pos)
            .unwrap_or(usize::MAX)
            .min(self.bytes.len());
        if pos > self.pos {
            let seen = self.bytes.get(self.pos..pos).unwrap_or_default();
            #[expect(
                clippy::naive_bytecount,
                reason = "files are small; no extra dependency"
            )]
            let n = seen.iter().filter(|b| **b == b'\n').count();
            self.line = self
                .line
                .saturating_add(u32::try_from(n).unwrap_or(u32::MAX));
            self.pos = pos;
        }
        self.line
    }
}

/// Namespace declarations of one element: (prefix, URI), `""` for the default.
pub(crate) type Scope = Vec<(String, String)>;

fn resolve_prefix(scopes: &[Scope], prefix: &str) -> Option<String> {
    if prefix == "xml" {
        return Some(NS_XML.to_owned());
    }
    scopes
        .iter()
        .rev()
        .flat_map(|s| s.iter().rev())
        .find(|(p, _)| p == prefix)
        .map(|(_, uri)| uri.clone())
}

/// Builds an element (without children) from a start tag, pushing its declarations on
/// `scopes` (the caller pops them at its end).
pub(crate) fn open_element(
    e: &BytesStart<'_>,
    scopes: &mut Vec<Scope>,
    file: &Arc<Path>,
    line: u32,
) -> Result<Element, Problem> {
    let bad = |m: String| Problem {
        file: file.to_path_buf(),
        line,
        message: m,
    };
    let mut scope = Scope::new();
    let mut raw_attrs = Vec::new();
    for a in e.attributes().with_checks(true) {
        let a = a.map_err(|err| bad(format!("malformed attribute: {err}")))?;
        let key: String = AsRef::<str>::as_ref(&a.key).to_owned();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| bad(format!("malformed attribute value: {err}")))?
            .into_owned();
        if key == "xmlns" {
            scope.push((String::new(), value));
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            scope.push((p.to_owned(), value));
        } else {
            raw_attrs.push((key, value));
        }
    }
    scopes.push(scope);
    let qname: String = AsRef::<str>::as_ref(&e.name()).to_owned();
    let (prefix, local) = match qname.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", qname.as_str()),
    };
    let ns = match resolve_prefix(scopes, prefix) {
        Some(ns) => ns,
        None if prefix.is_empty() => String::new(),
        None => return Err(bad(format!("undeclared namespace prefix '{prefix}'"))),
    };
    let mut el = Element::new(&ns, local, file.clone(), line);
    for (key, value) in raw_attrs {
        let attr = match key.split_once(':') {
            Some((p, n)) => Attr {
                ns: Some(
                    resolve_prefix(scopes, p)
                        .ok_or_else(|| bad(format!("undeclared namespace prefix '{p}'")))?,
                ),
                prefix: Some(p.to_owned()),
                name: n.to_owned(),
                value,
            },
            None => Attr {
                prefix: None,
                ns: None,
                name: key,
                value,
            },
        };
        el.attrs.push(attr);
    }
    Ok(el)
}

fn push_text(
    stack: &mut [Element],
    text: &str,
    lines: u32,
    file: &Arc<Path>,
) -> Result<(), Problem> {
    match stack.last_mut() {
        Some(top) => {
            if let Some(Child::Text(t)) = top.children.last_mut() {
                t.push_str(text);
            } else {
                top.children.push(Child::Text(text.to_owned()));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(Problem {
            file: file.to_path_buf(),
            line: lines,
            message: "text outside the root element".into(),
        }),
    }
}

/// Parses one document into its root element.
pub(crate) fn parse(bytes: &[u8], file: &Arc<Path>) -> Result<Element, Problem> {
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().check_end_names = true;
    let mut lines = Lines {
        bytes,
        pos: 0,
        line: 1,
    };
    let mut scopes: Vec<Scope> = Vec::new();
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let bad = |line: u32, m: String| Problem {
        file: file.to_path_buf(),
        line,
        message: format!("not well-formed XML: {m}"),
    };
    loop {
        let line = lines.at(reader.buffer_position());
        let event = reader
            .read_event()
            .map_err(|e| bad(lines.at(reader.error_position()), e.to_string()))?;
        // Skip leading whitespace so an element's line is where its `<` is.
        let line = match &event {
            Event::Start(_) | Event::Empty(_) => {
                let start = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
                let from = lines.pos;
                let lt = bytes
                    .get(from..start)
                    .and_then(|s| s.iter().position(|b| *b == b'<'))
                    .map_or(start, |i| from + i);
                lines.at(lt as u64)
            }
            _ => line,
        };
        match event {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(bad(line, "content after the root element".into()));
                }
                stack.push(open_element(&e, &mut scopes, file, line)?);
            }
            Event::Empty(e) => {
                if root.is_some() {
                    return Err(bad(line, "content after the root element".into()));
                }
                let el = open_element(&e, &mut scopes, file, line)?;
                scopes.pop();
                match stack.last_mut() {
                    Some(top) => top.children.push(Child::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                scopes.pop();
                let el = stack
                    .pop()
                    .ok_or_else(|| bad(line, "unbalanced end tag".into()))?;
                match stack.last_mut() {
                    Some(top) => top.children.push(Child::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content(), line, file)?,
            Event::CData(t) => push_text(&mut stack, &t.xml10_content(), line, file)?,
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => quick_xml::escape::resolve_predefined_entity(&r)
                        .ok_or_else(|| bad(line, format!("unknown entity &{};", &*r)))?
                        .to_owned(),
                    Err(e) => return Err(bad(line, e.to_string())),
                };
                push_text(&mut stack, &text, line, file)?;
            }
            Event::DocType(_) => return Err(bad(line, "DOCTYPE is not allowed".into())),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(bad(lines.at(bytes.len() as u64), "unclosed element".into()));
    }
    root.ok_or_else(|| bad(1, "no root element".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Element {
        parse(s.as_bytes(), &Arc::from(Path::new("t.xml"))).unwrap()
    }

    #[test]
    fn serializer_is_a_fixed_point() {
        let src = "<a:x xmlns:a='urn:a' xmlns='urn:d' xml:lang='en'>\n <y b=\"1 &amp; 2\">t &lt; &#x41;</y><z xmlns=''/><![CDATA[<c>]]></a:x>";
        let once = p(src).to_xml();
        assert_eq!(
            once,
            "<x xmlns='urn:a' xml:lang='en'>\n <y xmlns='urn:d' b='1 &amp; 2'>t &lt; A</y><z xmlns=''/>&lt;c&gt;</x>"
        );
        assert_eq!(p(&once).to_xml(), once);
    }

    #[test]
    fn lines_and_errors() {
        let el = p("<?xml version='1.0'?>\n<r xmlns='urn:xmpp:pie:0'>\n\n  <u/>\n</r>");
        assert_eq!(el.line, 2);
        assert_eq!(el.elements().next().unwrap().line, 4);
        for bad in [
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "<a>&bogus;</a>",
            "x<a/>",
            "<p:a/>",
        ] {
            assert!(
                parse(bad.as_bytes(), &Arc::from(Path::new("t"))).is_err(),
                "{bad}"
            );
        }
    }
}
