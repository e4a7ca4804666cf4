//! XML checks at the edge: stanzas, vCards and private XML are stored only when well formed,
//! so every XML cell of an export parses.

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::error::{Error, Result};

/// Fails unless `xml` is one well-formed element (optionally surrounded by whitespace).
pub fn check_element(what: &str, xml: &str) -> Result<()> {
    let bad = |why: String| Error::InvalidInput(format!("{what} is not well-formed XML: {why}"));
    if xml.contains('\0') {
        return Err(bad("contains NUL".into()));
    }
    let mut reader = Reader::from_str(xml);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut roots = 0usize;
    loop {
        match reader.read_event() {
            Ok(Event::Start(_)) => {
                if depth == 0 {
                    roots += 1;
                }
                depth += 1;
            }
            Ok(Event::End(_)) => depth = depth.saturating_sub(1),
            Ok(Event::Empty(_)) => {
                if depth == 0 {
                    roots += 1;
                }
            }
            Ok(Event::Text(t)) => {
                if depth == 0
                    && !AsRef::<[u8]>::as_ref(&*t)
                        .iter()
                        .all(u8::is_ascii_whitespace)
                {
                    return Err(bad("text outside the root element".into()));
                }
            }
            Ok(Event::Eof) => break,
            Ok(Event::Decl(_) | Event::Comment(_) | Event::PI(_)) if depth == 0 => {}
            Ok(Event::DocType(_)) => return Err(bad("DOCTYPE is not allowed".into())),
            Ok(_) => {}
            Err(e) => return Err(bad(e.to_string())),
        }
    }
    if depth != 0 {
        return Err(bad("unclosed element".into()));
    }
    if roots != 1 {
        return Err(bad(format!("expected one root element, found {roots}")));
    }
    Ok(())
}

/// The text a person reads in `xml`: with `inside`, the text of the first element with that
/// local name (a message's `body`), else all text, runs of whitespace collapsed to one space.
/// Malformed XML gives what was read before the error (stored XML was checked when written).
pub(crate) fn readable_text(xml: &str, inside: Option<&[u8]>) -> String {
    let mut reader = Reader::from_str(xml);
    let mut out = String::new();
    // Depth inside the wanted element (0: outside; None: not looking for one).
    let mut depth: Option<usize> = inside.map(|_| 0);
    let mut found = false;
    loop {
        let event = match reader.read_event() {
            Ok(Event::Eof) | Err(_) => break,
            Ok(e) => e,
        };
        let collecting = depth.is_none_or(|d| d > 0);
        if matches!(event, Event::Start(_) | Event::End(_) | Event::Empty(_)) {
            // Element boundaries separate words (a vCard's name from its nickname).
            out.push(' ');
        }
        if inside.is_none()
            && let Event::Start(e) | Event::Empty(e) = &event
        {
            // Attributes carry what a person reads in some XML (a bookmark's room and name).
            for a in e.attributes().flatten() {
                let key: &str = a.key.as_ref();
                if key == "xmlns" || key.starts_with("xmlns:") {
                    continue;
                }
                if let Ok(v) = a.normalized_value(quick_xml::XmlVersion::Implicit1_0) {
                    out.push_str(key);
                    out.push('=');
                    out.push_str(&v);
                    out.push(' ');
                }
            }
        }
        match event {
            Event::Start(e) => {
                if let (Some(d), Some(name)) = (depth.as_mut(), inside) {
                    if *d > 0 {
                        *d += 1;
                    } else if !found && AsRef::<str>::as_ref(&e.local_name()).as_bytes() == name {
                        *d = 1;
                        found = true;
                    }
                }
            }
            Event::End(_) => {
                if let Some(d) = depth.as_mut()
                    && *d > 0
                {
                    *d -= 1;
                    if *d == 0 {
                        break;
                    }
                }
            }
            Event::Text(t) if collecting => out.push_str(&t.xml10_content()),
            Event::CData(t) if collecting => out.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if collecting => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    out.push(c);
                } else if let Some(s) = quick_xml::escape::resolve_predefined_entity(&r) {
                    out.push_str(s);
                }
            }
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::check_element;

    #[test]
    fn accepts_and_refuses() {
        check_element("x", "<a xmlns='n'><b>t &amp; u</b></a>").unwrap();
        check_element("x", "  <a/>\n").unwrap();
        for bad in [
            "",
            "text",
            "<a>",
            "<a></b>",
            "<a/><b/>",
            "<a>&bogus;</a>x",
            "<a/>tail",
        ] {
            assert!(check_element("x", bad).is_err(), "{bad:?} accepted");
        }
    }
}
