//! JID parsing never panics, and normalisation is idempotent.
#![no_main]

use jidstore::{BareJid, Jid};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(j) = BareJid::parse(s) {
            assert_eq!(BareJid::parse(j.as_str()).ok().as_ref(), Some(&j));
        }
        if let Ok(j) = Jid::parse(s) {
            assert_eq!(Jid::parse(j.as_str()).ok().as_ref(), Some(&j));
        }
    }
});
