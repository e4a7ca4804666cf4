//! Value encoding: the only module that calls bincode.
//!
//! Every stored value is `[VALUE_VERSION: u8] [payload] [crc32 of version+payload: u32 BE]`.
//! The payload is bincode 2 (serde, standard config, length limit). Swapping bincode for
//! postcard is a change to this file alone; bumping [`VALUE_VERSION`] is how such a change
//! is told apart on disk.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::keys::{Keyspace, escape_key};

/// Version byte written in front of every value.
pub const VALUE_VERSION: u8 = 1;

/// Refuse to decode any length prefix claiming more than this: a flipped bit in a length must
/// not turn into a multi-gigabyte allocation.
const DECODE_LIMIT: usize = 64 * 1024 * 1024;

const OVERHEAD: usize = 1 + 4;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes a value with version byte and CRC-32.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.push(VALUE_VERSION);
    // Encoding plain data structs into a Vec cannot fail: there is no I/O and no limit on
    // the encode side. Should a future type make it fail, store an empty payload that the
    // CRC still covers, so decode reports it rather than writing garbage.
    if let Ok(payload) = bincode::serde::encode_to_vec(value, config()) {
        out.extend_from_slice(&payload);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes a value written by [`encode`], checking version, checksum and that every byte was
/// consumed. `keyspace` and `key` name the entry in the error.
pub fn decode<T: DeserializeOwned>(keyspace: Keyspace, key: &[u8], bytes: &[u8]) -> Result<T> {
    let corrupt = |reason| Error::Corrupt {
        keyspace: keyspace.name(),
        key: escape_key(key),
        reason,
    };
    let payload = checked_payload(bytes).map_err(corrupt)?;
    match bincode::serde::decode_from_slice::<T, _>(payload, config()) {
        Ok((value, used)) if used == payload.len() => Ok(value),
        Ok(_) => Err(corrupt("trailing bytes after value")),
        Err(_) => Err(corrupt("value does not decode")),
    }
}

/// Checks framing and CRC and returns the payload.
fn checked_payload(bytes: &[u8]) -> std::result::Result<&[u8], &'static str> {
    if bytes.len() < OVERHEAD {
        return Err("value too short");
    }
    let (body, crc_bytes) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes(crc_bytes.try_into().map_err(|_| "value too short")?);
    if crc32fast::hash(body) != stored {
        return Err("checksum mismatch");
    }
    match body.split_first() {
        Some((&VALUE_VERSION, payload)) => Ok(payload),
        Some(_) => Err("unknown value version"),
        None => Err("value too short"),
    }
}

/// The encoded form of an index entry: a value with no payload (version and CRC only), so
/// that index values are checked like any other.
pub fn marker() -> Vec<u8> {
    encode(&())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Sample {
        a: String,
        b: u64,
        c: Option<Vec<String>>,
    }

    proptest! {
        #[test]
        fn roundtrip(a in ".*", b in any::<u64>(), c in proptest::option::of(proptest::collection::vec(".*", 0..4))) {
            let s = Sample { a, b, c };
            let bytes = encode(&s);
            prop_assert_eq!(decode::<Sample>(Keyspace::Vcard, b"k", &bytes).unwrap(), s);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<Sample>(Keyspace::Vcard, b"k", &bytes);
        }

        #[test]
        fn any_single_bit_flip_is_detected(a in ".{0,20}", b in any::<u64>(), bit in any::<usize>()) {
            let mut bytes = encode(&Sample { a, b, c: None });
            let bit = bit % (bytes.len() * 8);
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(decode::<Sample>(Keyspace::Vcard, b"k", &bytes).is_err());
        }
    }

    #[test]
    fn error_names_keyspace_and_key() {
        let err = decode::<Sample>(Keyspace::Roster, b"alice@x\0bob@y", b"\x01junk")
            .unwrap_err()
            .to_string();
        assert!(err.contains("'roster'"), "{err}");
        assert!(err.contains("alice@x\\x00bob@y"), "{err}");
    }

    #[test]
    fn marker_decodes_as_unit() {
        decode::<()>(Keyspace::Vcard, b"k", &marker()).unwrap();
    }
}
