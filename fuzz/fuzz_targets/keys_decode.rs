//! Any bytes read as a key give components or `Error::Corrupt`, never a panic; a key that
//! parses as `room \0 seq` rebuilds identically.
#![no_main]

use jidstore::__internal::keys::{self, KeyReader, Keyspace};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = KeyReader::new(Keyspace::MamMuc, data);
    if let (Ok(room), Ok(seq)) = (r.part(), r.u64()) {
        if r.end().is_ok() {
            assert_eq!(keys::room_seq(room, seq), data);
        }
    }
    let mut r = KeyReader::new(Keyspace::PubsubItems, data);
    let _ = (r.part(), r.part(), r.tail(), r.end());
});
