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
