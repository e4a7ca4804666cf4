//! The data set, a pure function of the message index: every engine and every child process
//! sees the same messages, generated before any timer starts.
//!
//! Message `i` belongs to alice when `i % 10 == 0` (she holds a tenth of the archive) and
//! otherwise to one of 9,999 other users. Peers are skewed (a few frequent contacts, a long
//! tail of 97); one alice message in 1,000 is with a rare peer. Bodies are 1 to ~70 words drawn
//! from a 200-word vocabulary with numbers, links and punctuation, so they compress like chat
//! rather than 20:1 like one repeated sentence.

/// Users in the store: alice (0) and `u1`..`u9999`.
pub const USERS: u32 = 10_000;
/// Alice's user number.
pub const ALICE: u32 = 0;
/// The rare peer of alice's archive.
pub const RARE: &str = "rare@example.com";
const T0_US: i64 = 1_600_000_000_000_000;

/// splitmix64.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One message, with every field each engine stores already formatted.
pub struct Gen {
    pub user: u32,
    /// Microseconds since the epoch; unique and increasing with the index.
    pub ts: i64,
    pub peer_bare: String,
    pub peer_full: String,
    pub incoming: bool,
    pub body: String,
    pub stanza: String,
    /// The stanza's id (also its XEP-0359 origin id).
    pub sid: String,
    /// A UUID-shaped item key, as Prosody uses.
    pub key: String,
}

pub fn user_of(i: u64) -> u32 {
    if i % 10 == 0 {
        ALICE
    } else {
        1 + (mix(i) % u64::from(USERS - 1)) as u32
    }
}

pub fn user_name(u: u32) -> String {
    if u == ALICE {
        "alice".to_owned()
    } else {
        format!("u{u}")
    }
}

pub fn user_bare(u: u32) -> String {
    format!("{}@example.org", user_name(u))
}

pub fn peer_bare(p: u64) -> String {
    format!("c{p}@example.net")
}

/// Messages alice holds among the first `n`.
pub fn alice_share(n: u64) -> u64 {
    n.div_ceil(10)
}

fn ts(i: u64) -> i64 {
    T0_US + (i as i64) * 1000 + (mix(i ^ 0xabc) % 1000) as i64
}

/// Timestamp of alice's `k`-th message.
pub fn alice_ts(k: u64) -> i64 {
    ts(k * 10)
}

const WORDS: &[&str] = &[
    "the",
    "a",
    "to",
    "and",
    "I",
    "you",
    "it",
    "is",
    "that",
    "of",
    "in",
    "for",
    "on",
    "we",
    "this",
    "with",
    "be",
    "have",
    "are",
    "not",
    "do",
    "at",
    "so",
    "but",
    "just",
    "can",
    "was",
    "if",
    "me",
    "my",
    "what",
    "all",
    "will",
    "get",
    "there",
    "up",
    "no",
    "yes",
    "ok",
    "now",
    "think",
    "know",
    "see",
    "out",
    "about",
    "like",
    "time",
    "one",
    "good",
    "going",
    "tomorrow",
    "today",
    "tonight",
    "meeting",
    "call",
    "later",
    "lunch",
    "dinner",
    "train",
    "late",
    "sorry",
    "thanks",
    "great",
    "sure",
    "maybe",
    "again",
    "work",
    "home",
    "office",
    "weekend",
    "monday",
    "friday",
    "build",
    "deploy",
    "server",
    "release",
    "patch",
    "bug",
    "test",
    "review",
    "branch",
    "merge",
    "logs",
    "disk",
    "memory",
    "cpu",
    "query",
    "index",
    "backup",
    "restore",
    "config",
    "password",
    "account",
    "photo",
    "picture",
    "video",
    "link",
    "file",
    "document",
    "draft",
    "email",
    "phone",
    "battery",
    "charger",
    "coffee",
    "tea",
    "beer",
    "pizza",
    "cake",
    "birthday",
    "party",
    "holiday",
    "flight",
    "hotel",
    "ticket",
    "station",
    "airport",
    "car",
    "bike",
    "rain",
    "sun",
    "snow",
    "cold",
    "warm",
    "weather",
    "happy",
    "tired",
    "busy",
    "free",
    "ready",
    "done",
    "started",
    "finished",
    "waiting",
    "coming",
    "leaving",
    "arrived",
    "here",
    "there",
    "where",
    "when",
    "why",
    "how",
    "who",
    "which",
    "because",
    "though",
    "anyway",
    "actually",
    "really",
    "probably",
    "definitely",
    "almost",
    "already",
    "still",
    "soon",
    "never",
    "always",
    "often",
    "people",
    "team",
    "family",
    "kids",
    "mum",
    "dad",
    "friend",
    "neighbour",
    "boss",
    "client",
    "project",
    "plan",
    "idea",
    "question",
    "answer",
    "problem",
    "solution",
    "issue",
    "ticket",
    "price",
    "money",
    "invoice",
    "order",
    "delivery",
    "package",
    "store",
    "shop",
    "market",
    "music",
    "song",
    "film",
    "book",
    "game",
    "match",
    "score",
    "news",
    "story",
    "joke",
];

fn body(h: u64) -> String {
    let mut r = h;
    let long = r % 10 == 0;
    let words = 1 + (r >> 8) % 14 + if long { 20 + (r >> 16) % 40 } else { 0 };
    let mut s = String::with_capacity(words as usize * 6);
    for w in 0..words {
        r = mix(r);
        if w > 0 {
            s.push(if r % 11 == 0 { ',' } else { ' ' });
            if s.ends_with(',') {
                s.push(' ');
            }
        }
        match r % 53 {
            0 => s.push_str(&format!("{}", (r >> 20) % 10_000)),
            1 => s.push_str(&format!(
                "https://example.com/{:x}",
                (r >> 12) % 0xffff_ffff
            )),
            2 => s.push_str(&format!("{}:{:02}", (r >> 20) % 24, (r >> 30) % 60)),
            _ => {
                let word = WORDS[(r >> 16) as usize % WORDS.len()];
                if w == 0 {
                    let mut c = word.chars();
                    if let Some(f) = c.next() {
                        s.push(f.to_ascii_uppercase());
                        s.push_str(c.as_str());
                    }
                } else {
                    s.push_str(word);
                }
            }
        }
    }
    s.push(match h % 7 {
        0 => '?',
        1 => '!',
        2 | 3 => '.',
        _ => ' ',
    });
    s.trim_end().to_owned()
}

/// Message `i` of the data set.
pub fn message(i: u64) -> Gen {
    gen_for(i, user_of(i))
}

/// Message `i`'s content, archived by `user` (live phases pick their own users).
pub fn gen_for(i: u64, user: u32) -> Gen {
    let h = mix(i);
    let peer_bare = if user == ALICE && (i / 10) % 1000 == 500 {
        RARE.to_owned()
    } else {
        peer_bare((h % 97).min((h >> 20) % 97))
    };
    let peer_full = format!(
        "{peer_bare}/{}",
        ["phone", "laptop", "tablet"][(h >> 40) as usize % 3]
    );
    let me = format!("{}/desktop", user_bare(user));
    let incoming = (h >> 50) % 2 == 0;
    let (from, to) = if incoming {
        (&peer_full, &me)
    } else {
        (&me, &peer_full)
    };
    let sid = format!("{:016x}", mix(h));
    let body = body(mix(h ^ 0xb0d1));
    let stanza = format!(
        "<message xmlns='jabber:client' from='{from}' to='{to}' id='{sid}' type='chat'><body>{body}</body><active xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='{sid}'/></message>"
    );
    let k = mix(h ^ 0x0007);
    let key = format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        k >> 32,
        (k >> 16) & 0xffff,
        k & 0xfff,
        (h >> 48) & 0xffff,
        mix(k) & 0xffff_ffff_ffff
    );
    Gen {
        user,
        ts: ts(i),
        peer_bare,
        peer_full,
        incoming,
        body,
        stanza,
        sid,
        key,
    }
}

/// Messages `from..to`, grouped per user (each user's in time order), in chunks of at most
/// 1,000: the bulk-import schedule every engine gets (one transaction or batch per chunk).
pub fn chunks(from: u64, to: u64) -> Vec<(u32, Vec<Gen>)> {
    let mut per: Vec<Vec<Gen>> = (0..USERS).map(|_| Vec::new()).collect();
    for i in from..to {
        let g = message(i);
        per[g.user as usize].push(g);
    }
    let mut out = Vec::new();
    for (u, msgs) in per.into_iter().enumerate() {
        let mut it = msgs.into_iter().peekable();
        while it.peek().is_some() {
            out.push((u as u32, it.by_ref().take(1000).collect()));
        }
    }
    out
}
