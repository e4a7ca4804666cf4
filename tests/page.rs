//! The export's readable page, `index.html` (issue 17): the same rows as the CSVs, messages
//! as a conversation, every stored string escaped, no script; rendered by a real headless
//! Chromium (Debian's `chromium`), which must show the text and run nothing.
//!
//! No Chromium: as root on Debian it is installed with apt (once per test binary, as the
//! PostgreSQL harness does); otherwise the browser test fails saying so, unless
//! `JIDSTORE_SKIP_BROWSER=1`.

use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use jidstore::ext::mam::{Direction, MucMessage, PmMessage};
use jidstore::ext::roster::RosterItem;
use jidstore::gdpr::{ExportOptions, retrieve};
use jidstore::{Store, Timestamp};

use crate::util::*;

/// Stored text that would run if it reached the page unescaped: each sets an attribute the
/// browser test looks for.
const HOSTILE_BODY: &str =
    "&lt;script&gt;document.body.setAttribute('data-pwned','script')&lt;/script&gt;";
const HOSTILE_NAME: &str =
    "\"><img src=x onerror=\"document.body.setAttribute('data-pwned','img')\">";

fn message(at: i64, from: &str, to: &str, dir: Direction, body: &str) -> PmMessage {
    PmMessage::new(
        Timestamp::from_secs(1_760_000_000 + at),
        full(from),
        full(to),
        dir,
        format!("<message xmlns='jabber:client' type='chat'><body>{body}</body></message>"),
    )
}

/// alice with a roster, a vCard, a conversation (one message hostile), a group-chat message
/// and a receipt without text.
fn alice_store() -> (tempfile::TempDir, Store) {
    let (dir, store, alice, _bob) = alice_and_bob();
    let mut item = RosterItem::new(bare("bob@localhost"));
    item.name = Some(HOSTILE_NAME.to_owned());
    store.roster().set(&alice, &item).unwrap();
    store
        .vcard()
        .set(
            &alice,
            "<vCard xmlns='vcard-temp'><FN>Alice Liddell</FN><NICKNAME>Al</NICKNAME></vCard>",
        )
        .unwrap();
    let (a, b) = ("alice@localhost/home", "bob@localhost/phone");
    for m in [
        message(
            0,
            a,
            b,
            Direction::Outgoing,
            "Tea at five? Bring the &amp; sign",
        ),
        message(60, b, a, Direction::Incoming, "Yes, see you at five"),
        message(120, b, a, Direction::Incoming, HOSTILE_BODY),
    ] {
        store.mam().append(&alice, &m).unwrap();
    }
    let receipt = PmMessage::new(
        Timestamp::from_secs(1_760_000_200),
        full(b),
        full(a),
        Direction::Incoming,
        "<message xmlns='jabber:client'><received xmlns='urn:xmpp:receipts' id='x'/></message>",
    );
    store.mam().append(&alice, &receipt).unwrap();
    store
        .muc()
        .append(
            &bare("lounge@conference.localhost"),
            &MucMessage::new(
                Timestamp::from_secs(1_760_000_300),
                alice.clone(),
                "Al",
                "<message xmlns='jabber:client' type='groupchat'><body>Hello room</body></message>",
            ),
        )
        .unwrap();
    (dir, store)
}

/// The export's files by name.
fn export_files(store: &Store, options: &ExportOptions) -> Vec<(String, String)> {
    let mut buf = Cursor::new(Vec::new());
    retrieve(store, &bare("alice@localhost"), &mut buf, options).unwrap();
    let mut zip = zip::ZipArchive::new(Cursor::new(buf.into_inner())).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut s = String::new();
            f.read_to_string(&mut s).unwrap();
            (f.name().unwrap().to_string(), s)
        })
        .collect()
}

fn file<'f>(files: &'f [(String, String)], name: &str) -> &'f str {
    &files.iter().find(|(n, _)| n == name).expect(name).1
}

/// The part of the page from the section of `csv` to the next section.
fn section<'p>(page: &'p str, csv: &str) -> &'p str {
    let id = format!("<section id=\"{}\">", csv.trim_end_matches(".csv"));
    let start = page.find(&id).expect("section");
    let rest = &page[start..];
    &rest[..rest.find("</section>").expect("section end")]
}

#[test]
fn the_page_shows_every_csv_row_escaped_and_runs_nothing() {
    let (_dir, store) = alice_store();
    let files = export_files(&store, &ExportOptions::default());
    let manifest: serde_json::Value = serde_json::from_str(file(&files, "manifest.json")).unwrap();
    assert_eq!(manifest["page"], "index.html");
    let page = file(&files, "index.html");
    // Each non-empty CSV has a section headed with its row count, showing that many rows.
    for f in manifest["files"].as_array().unwrap() {
        let (name, rows) = (f["name"].as_str().unwrap(), f["rows"].as_u64().unwrap());
        let csv_rows = file(&files, name).lines().count() as u64 - 1;
        assert_eq!(csv_rows, rows, "{name}");
        if rows == 0 {
            continue;
        }
        let s = section(page, name);
        assert!(s.contains(&format!("{rows} row(s), {name}")), "{name}: {s}");
        let shown = s.matches("<li class=").count() + s.matches("<tr>").count().saturating_sub(1);
        assert_eq!(shown as u64, rows, "{name}");
    }
    // Messages as a conversation: the text of the body, unescaped once, then escaped.
    let chat = section(page, "mam_pm.csv");
    assert!(chat.contains("Tea at five? Bring the &amp; sign"), "{chat}");
    assert!(chat.contains("class=\"out\""), "{chat}");
    assert!(chat.contains("no text: a receipt"), "{chat}");
    assert!(section(page, "vcard.csv").contains("Alice Liddell Al"));
    assert!(section(page, "mam_muc.csv").contains("Hello room"));
    // Nothing stored becomes markup.
    assert!(!page.contains("<script"), "a script tag on the page");
    assert!(!page.contains("<img"), "an img tag on the page");
    assert!(page.contains("&lt;script&gt;document.body.setAttribute"));
    assert!(page.contains("&quot;&gt;&lt;img src=x onerror="));
    // Without the page: no index.html, no manifest entry.
    let files = export_files(&store, &ExportOptions::default().page(false));
    assert!(files.iter().all(|(n, _)| n != "index.html"));
    let manifest: serde_json::Value = serde_json::from_str(file(&files, "manifest.json")).unwrap();
    assert!(manifest["page"].is_null());
}

/// Debian's Chromium, installed with apt when missing and root; `None` to skip.
fn chromium() -> Option<&'static Path> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            let path = Path::new("/usr/bin/chromium");
            if !path.exists() && std::env::var_os("JIDSTORE_SKIP_BROWSER").is_none() {
                let root = Command::new("id")
                    .arg("-u")
                    .output()
                    .is_ok_and(|o| o.stdout == b"0\n");
                if root && Path::new("/usr/bin/apt-get").exists() {
                    eprintln!("chromium not found: installing Debian's chromium with apt-get");
                    let quiet = |args: &[&str]| {
                        Command::new("apt-get")
                            .args(args)
                            .env("DEBIAN_FRONTEND", "noninteractive")
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .status()
                            .is_ok_and(|s| s.success())
                    };
                    let _ =
                        quiet(&["update", "-qq"]) && quiet(&["install", "-y", "-qq", "chromium"]);
                }
            }
            if path.exists() {
                return Some(path.to_path_buf());
            }
            assert!(
                std::env::var_os("JIDSTORE_SKIP_BROWSER").is_some(),
                "/usr/bin/chromium not found: install it (Debian: apt-get install chromium) \
                 or set JIDSTORE_SKIP_BROWSER=1 to skip the browser test"
            );
            None
        })
        .as_deref()
}

/// Runs headless Chromium on `url` with `args`; its stdout.
fn headless(browser: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn chromium_renders_the_page_and_runs_no_stored_script() {
    let Some(browser) = chromium() else {
        return;
    };
    let (dir, store) = alice_store();
    let files = export_files(&store, &ExportOptions::default());
    let page = dir.path().join("index.html");
    std::fs::write(&page, file(&files, "index.html")).unwrap();
    let url = format!("file://{}", page.display());
    let profile = dir.path().join("profile");
    // The DOM after the page loaded and any script had its chance to run.
    let dom = headless(
        browser,
        &profile,
        &["--dump-dom", "--virtual-time-budget=2000"],
        &url,
    );
    assert!(dom.contains("Data held about alice@localhost"), "{dom}");
    assert!(dom.contains("Yes, see you at five"));
    assert!(dom.contains("Alice Liddell"));
    // A stored script that ran would have set an attribute on <body>.
    assert!(dom.contains("<body><h1>"), "a stored script ran: {dom}");
    // The hostile strings are there as text.
    assert!(dom.contains("&lt;script&gt;document.body.setAttribute"));
    assert!(dom.contains("onerror="), "{dom}");
    assert!(!dom.contains("<img"), "{dom}");
    // And it draws: a screenshot is a PNG of some size.
    let shot = dir.path().join("page.png");
    headless(
        browser,
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=900,1200",
        ],
        &url,
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}
