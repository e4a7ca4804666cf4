//! Any bytes handed to the value decoder give a value or `Error::Corrupt`, never a panic; a
//! value that decodes re-encodes to the same bytes. Then any (keyspace, key, value) goes
//! through `verify::check_entry`, which decodes the value as the record type that keyspace
//! holds (every record type of the store) and checks the key layout: it must return, never
//! panic. Input: byte 0 picks the keyspace, byte 1 the key length, then key, then value.
#![no_main]

use jidstore::__internal::codec;
use jidstore::__internal::keys::Keyspace;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = codec::decode::<(String, u64, Option<Vec<u8>>)>(Keyspace::Roster, b"k", data) {
        assert_eq!(codec::encode(&v), data);
    }
    let _ = codec::decode::<()>(Keyspace::Sweep, b"k", data);
    if let [pick, key_len, rest @ ..] = data {
        let ks = Keyspace::ALL[usize::from(*pick) % Keyspace::ALL.len()];
        let split = usize::from(*key_len).min(rest.len());
        let (key, value) = rest.split_at(split);
        if let Err(e) = jidstore::__internal::check_entry(ks, key, value) {
            // An error names the keyspace and says what is wrong, in one line.
            let text = e.to_string();
            assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
        }
    }
});
