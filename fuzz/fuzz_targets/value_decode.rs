//! Any bytes handed to the value decoder give a value or `Error::Corrupt`, never a panic; a
//! value that decodes re-encodes to the same bytes.
#![no_main]

use jidstore::codec;
use jidstore::keys::Keyspace;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = codec::decode::<(String, u64, Option<Vec<u8>>)>(Keyspace::Roster, b"k", data) {
        assert_eq!(codec::encode(&v), data);
    }
    let _ = codec::decode::<()>(Keyspace::Sweep, b"k", data);
});
