//! The message id scheme: native ids (seq and a random half, 32 hex digits) and imported ids.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys;

/// How a stored message is named: random half of a native id, or the imported id.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum StoredId {
    Native(u64),
    Foreign(String),
}

impl StoredId {
    pub(super) fn new(given: Option<&String>) -> StoredId {
        match given {
            Some(id) => StoredId::Foreign(id.clone()),
            None => StoredId::Native(rand::random::<u64>()),
        }
    }

    pub(super) fn public(&self, seq: u64) -> String {
        match self {
            StoredId::Native(r) => {
                let mut id = String::with_capacity(32);
                push_native_id(&mut id, seq, *r);
                id
            }
            StoredId::Foreign(id) => id.clone(),
        }
    }
}

/// Appends the public form of a native id: seq and random half, 16 hex digits each. By
/// hand: one per exported row, and `format!` showed in the export profile.
pub(super) fn push_native_id(out: &mut String, seq: u64, rand: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for n in [seq, rand] {
        for shift in (0..16).rev() {
            let nibble = (n >> (shift * 4)) & 0xf;
            out.push(char::from(
                HEX.get(nibble as usize).copied().unwrap_or(b'0'),
            ));
        }
    }
}

/// [`StoredId`] read in place.
#[derive(Deserialize)]
pub(super) enum StoredIdRef<'a> {
    Native(u64),
    Foreign(&'a str),
}

/// Splits a native id into (seq, random); `None` for any other string.
pub(super) fn parse_native(id: &str) -> Option<(u64, u64)> {
    if id.len() != 32 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let seq = u64::from_str_radix(id.get(..16)?, 16).ok()?;
    let rand = u64::from_str_radix(id.get(16..)?, 16).ok()?;
    Some((seq, rand))
}

pub(super) fn check_foreign_id(id: &str) -> Result<()> {
    keys::check_component("message id", id)?;
    if id.is_empty() {
        return Err(Error::InvalidInput("message id must not be empty".into()));
    }
    Ok(())
}

pub(super) fn duplicate_id() -> Error {
    Error::InvalidInput("message id already exists in this archive".into())
}
