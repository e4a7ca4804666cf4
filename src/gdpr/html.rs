//! `index.html`: the export as one page a person can read (GDPR Art. 12 and 15).
//!
//! The CSV files are the exact record; this page shows the same rows readably: messages as a
//! conversation (time, sender, addressee, the text of the message's `body`), other XML as
//! its text, everything else as tables. It is self-contained: no script, no external
//! resource, and a Content-Security-Policy that forbids both, so that even stored text
//! crafted as markup cannot run (every stored string is HTML-escaped as well).
//!
//! Counts: each section is headed with its CSV's row count, and shows at most that many rows
//! (the rows are read again after the CSVs; a write in between is said, never hidden).

use std::io::{self, Write};

use crate::error::Result;
use crate::ext::EXTENSIONS;
use crate::jid::BareJid;
use crate::store::Store;
use crate::time::Timestamp;
use crate::xml::readable_text;

use super::retrieve::FileSummary;

/// The page's file name inside the zip.
pub const PAGE: &str = "index.html";

/// Columns that hold XML, shown as their text.
const XML_COLUMNS: &[&str] = &[
    "vcard", "xml", "payload", "content", "packet", "message", "value",
];

/// `s` HTML-escaped (text and attribute values alike).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A cell as shown: a message stanza as its body's text, other XML as its text, anything
/// else as is; escaped.
fn shown(column: &str, cell: &str) -> String {
    if XML_COLUMNS.contains(&column) && cell.trim_start().starts_with("<message") {
        body(cell)
    } else if XML_COLUMNS.contains(&column) && cell.trim_start().starts_with('<') {
        esc(&readable_text(cell, None))
    } else {
        esc(cell)
    }
}

/// The text of a message stanza: its `body`, else a note.
fn body(stanza: &str) -> String {
    let text = readable_text(stanza, Some(b"body"));
    if text.is_empty() {
        "<i>(no text: a receipt, a chat state or other signal)</i>".to_owned()
    } else {
        esc(&text)
    }
}

const STYLE: &str = "body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em;\
color:#222}h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;\
margin-top:2em}small{color:#666;font-weight:normal}table{border-collapse:collapse;\
width:100%}td,th{border:1px solid #ddd;padding:.3em;text-align:left;vertical-align:top;\
font-size:.9em;overflow-wrap:anywhere}ol.chat{list-style:none;padding:0}ol.chat li{margin:\
.4em 0;padding:.4em .6em;border-radius:.4em;background:#f1f3f5}ol.chat li.out{background:\
#e3f0ff;margin-left:3em}ol.chat li.in{margin-right:3em}.meta{color:#555;font-size:.85em}";

/// Writes the page for `subject`: `files` are the CSVs just written (their row counts head
/// the sections).
pub(crate) fn write_page(
    store: &Store,
    subject: &BareJid,
    files: &[FileSummary],
    now: Timestamp,
    out: &mut dyn Write,
) -> Result<()> {
    let out = &mut io::BufWriter::with_capacity(64 * 1024, out);
    let who = esc(subject.as_str());
    write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\"><meta name=\"viewport\" content=\"width=device-width, \
         initial-scale=1\"><title>Data held about {who}</title><style>{STYLE}</style></head>\
         <body><h1>Data held about {who}</h1><p>Exported {} by jidstore {}. This page shows \
         the rows of the CSV files in this archive in a readable form; the CSV files are the \
         exact record.</p>",
        esc(&now.to_rfc3339()),
        env!("CARGO_PKG_VERSION")
    )?;
    let count = |file: &str| files.iter().find(|f| f.name == file).map_or(0, |f| f.rows);
    out.write_all(b"<nav><ul>")?;
    let mut empty = Vec::new();
    for ext in EXTENSIONS {
        for t in ext.tables() {
            match count(t.file) {
                0 => empty.push(t.title),
                n => write!(
                    out,
                    "<li><a href=\"#{}\">{}</a> ({n})</li>",
                    anchor(t.file),
                    esc(t.title)
                )?,
            }
        }
    }
    out.write_all(b"</ul></nav>")?;
    if !empty.is_empty() {
        let list: Vec<String> = empty.iter().map(|t| esc(t)).collect();
        write!(out, "<p>Nothing held in: {}.</p>", list.join(", "))?;
    }
    for ext in EXTENSIONS {
        for (i, t) in ext.tables().iter().enumerate() {
            let expected = count(t.file);
            if expected == 0 {
                continue;
            }
            write!(
                out,
                "<section id=\"{}\"><h2>{} <small>{expected} row(s), {}</small></h2>",
                anchor(t.file),
                esc(t.title),
                esc(t.file)
            )?;
            let chat = is_chat(t.header);
            if chat {
                out.write_all(b"<ol class=\"chat\">")?;
            } else {
                out.write_all(b"<table><tr>")?;
                for h in t.header {
                    write!(out, "<th>{}</th>", esc(h))?;
                }
                out.write_all(b"</tr>")?;
            }
            let mut shown_rows = 0u64;
            let mut failed: Option<io::Error> = None;
            ext.cells(store, subject, i, &mut |row: &[&str]| {
                if shown_rows >= expected || failed.is_some() {
                    return Ok(());
                }
                shown_rows += 1;
                let res = if chat {
                    chat_row(out, t.header, row)
                } else {
                    table_row(out, t.header, row)
                };
                if let Err(e) = res {
                    failed = Some(e);
                }
                Ok(())
            })?;
            if let Some(e) = failed {
                return Err(e.into());
            }
            out.write_all(if chat { b"</ol>" } else { b"</table>" })?;
            if shown_rows < expected {
                write!(
                    out,
                    "<p>{shown_rows} of {expected} shown: the rest changed while the export \
                     ran; the CSV file holds all {expected}.</p>"
                )?;
            }
            out.write_all(b"</section>")?;
        }
    }
    out.write_all(b"</body></html>\n")?;
    out.flush()?;
    Ok(())
}

/// An id for a section: the CSV's name without `.csv`.
fn anchor(file: &str) -> &str {
    file.strip_suffix(".csv").unwrap_or(file)
}

/// The cell of `row` under `column` (empty when absent).
fn cell<'r>(header: &[&str], row: &[&'r str], column: &str) -> &'r str {
    header
        .iter()
        .position(|h| *h == column)
        .and_then(|i| row.get(i))
        .copied()
        .unwrap_or("")
}

fn table_row(out: &mut dyn Write, header: &[&str], row: &[&str]) -> io::Result<()> {
    out.write_all(b"<tr>")?;
    for (h, c) in header.iter().zip(row) {
        write!(out, "<td>{}</td>", shown(h, c))?;
    }
    out.write_all(b"</tr>")
}

/// A table of messages, shown as a conversation: a time and a stanza column (`message` or
/// `packet`), and a sender (`from` or `nick`).
fn is_chat(header: &[&str]) -> bool {
    let has = |c: &str| header.contains(&c);
    has("timestamp") && (has("message") || has("packet")) && (has("from") || has("nick"))
}

/// One message of a conversation: time, who to whom (or nick in room), the body's text;
/// an outgoing one (direction `outgoing`, or a group-chat message the subject sent, named
/// by nick) to the right.
fn chat_row(out: &mut dyn Write, header: &[&str], row: &[&str]) -> io::Result<()> {
    let get = |c| cell(header, row, c);
    let stanza = if header.contains(&"message") {
        get("message")
    } else {
        get("packet")
    };
    let (class, meta) = if header.contains(&"nick") {
        (
            "out",
            format!("{} in {}", esc(get("nick")), esc(get("room"))),
        )
    } else {
        let class = if get("direction") == "outgoing" {
            "out"
        } else {
            "in"
        };
        (
            class,
            format!("from {} to {}", esc(get("from")), esc(get("to"))),
        )
    };
    write!(
        out,
        "<li class=\"{class}\"><div class=\"meta\">{} &middot; {meta}</div>{}</li>",
        esc(get("timestamp")),
        body(stanza)
    )
}
