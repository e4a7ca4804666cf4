//! The flush witness: a small file beside sled's that records the newest flush generation
//! known durable, so that a store sled recovers to an *earlier* state is refused instead of
//! opened as if nothing happened.
//!
//! sled 0.34 recovers a damaged log up to the first bad entry and silently drops everything
//! after it (a flipped bit after the last snapshot dropped entries in 62 of 75 cases, with no
//! error). Dropped entries can be acknowledged messages, or a GDPR erasure, which would bring
//! erased data back. So every [`Store::flush`](crate::Store::flush) and every erasure commit
//! writes a generation number `g` into the `meta` keyspace (as part of what sled makes
//! durable), and once sled's flush has returned, writes `g` into this file. At open, a
//! generation in `meta` lower than the file's means sled lost writes that were durable:
//! [`Error::EarlierState`](crate::Error::EarlierState).
//!
//! The file is written after sled's flush, so it can lag sled (a crash between the two) but
//! never lead it: it gives no false alarm. It is not fsynced (that would cost a second sync
//! per flush); after a power cut it may hold an older generation, which only narrows what it
//! detects. Writes to it are best effort: a failure (a full disk) leaves the older generation.
//!
//! Format, two 16-byte slots, written alternately (generation `g` goes to slot `g % 2`), so a
//! torn write loses at most the newest generation: `magic "jsw1" | generation u64 BE |
//! CRC-32 BE of the first 12 bytes`. The newest slot with a valid CRC counts; a file with no
//! valid slot counts as generation 0 (no check).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The file's name inside the data directory.
pub use crate::paths::FLUSH_WITNESS as FILE_NAME;

const MAGIC: &[u8; 4] = b"jsw1";
const SLOT: usize = 16;

/// The witness of one open store.
#[derive(Debug)]
pub(crate) struct Witness {
    /// `None` for temporary stores (nothing to witness after they are gone).
    path: Option<PathBuf>,
    file: Option<File>,
    /// The newest generation handed out (recorded or not).
    generation: u64,
}

impl Witness {
    /// A witness that records nothing (temporary stores).
    pub(crate) fn none() -> Self {
        Witness {
            path: None,
            file: None,
            generation: 0,
        }
    }

    /// Reads the witness of the store in `dir` (generation 0 when there is none). Never
    /// writes.
    pub(crate) fn read(dir: &Path) -> io::Result<(Self, u64)> {
        let path = dir.join(FILE_NAME);
        let recorded = match std::fs::read(&path) {
            Ok(bytes) => newest(&bytes),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok((
            Witness {
                path: Some(path),
                file: None,
                generation: recorded,
            },
            recorded,
        ))
    }

    /// Takes note of the generation found in sled (so the next one is above both).
    pub(crate) fn saw(&mut self, in_store: u64) {
        self.generation = self.generation.max(in_store);
    }

    /// The next generation to write into `meta`.
    pub(crate) fn next(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Records `generation` as durable (call after sled's flush returned). Best effort.
    pub(crate) fn record(&mut self, generation: u64) {
        let Some(path) = &self.path else {
            return;
        };
        if self.file.is_none() {
            self.file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .ok();
        }
        if let Some(f) = &self.file {
            let slot = encode(generation);
            let offset = (generation % 2) * SLOT as u64;
            let _ = f.write_all_at(&slot, offset);
        }
    }
}

fn encode(generation: u64) -> [u8; SLOT] {
    let mut s = [0u8; SLOT];
    s[..4].copy_from_slice(MAGIC);
    s[4..12].copy_from_slice(&generation.to_be_bytes());
    let crc = crc32fast::hash(&s[..12]);
    s[12..].copy_from_slice(&crc.to_be_bytes());
    s
}

/// The newest valid generation in a witness file's bytes (0: none).
pub(crate) fn newest(bytes: &[u8]) -> u64 {
    bytes
        .chunks_exact(SLOT)
        .take(2)
        .filter_map(|s| {
            let (body, crc) = s.split_at(12);
            let ok = body.starts_with(MAGIC) && crc32fast::hash(body).to_be_bytes() == crc;
            ok.then(|| body.get(4..12)?.try_into().ok().map(u64::from_be_bytes))
                .flatten()
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_valid_slot_wins_and_damage_counts_as_older() {
        let mut file = [0u8; 32];
        file[..16].copy_from_slice(&encode(6));
        file[16..].copy_from_slice(&encode(7));
        assert_eq!(newest(&file), 7);
        file[20] ^= 1;
        assert_eq!(newest(&file), 6, "a torn slot falls back to the other");
        file[3] ^= 1;
        assert_eq!(newest(&file), 0);
        assert_eq!(newest(&[]), 0);
        assert_eq!(newest(&file[..20]), 0);
    }

    #[test]
    fn record_then_read_round_trips_and_alternates_slots() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, g) = Witness::read(dir.path()).unwrap();
        assert_eq!(g, 0);
        w.saw(41);
        let a = w.next();
        w.record(a);
        let b = w.next();
        w.record(b);
        assert_eq!((a, b), (42, 43));
        assert_eq!(Witness::read(dir.path()).unwrap().1, 43);
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(bytes.len(), 32);
        let mode = std::fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
}
