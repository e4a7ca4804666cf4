//! The packer of 1-1 records into blocks, for bulk ingest and the repacking copy of
//! `compact` and `backup`.

use crate::codec;
use crate::error::Result;
use crate::jid::Jid;
use crate::keys::{self, Keyspace};
use crate::store::{Batch, Store};

use super::BULK_CHUNK;
use super::records;
use super::stored::{StoredPm, WithInBlock, peer, pm_key_kind};

/// Packs the records of one 1-1 archive, in seq order, into blocks of consecutive records
/// and blocks of `with` entries per peer (README "On-disk format"): for bulk ingest and for
/// the repacking copy of `compact` and `backup`.
pub(super) struct Packer {
    archive: u64,
    block: Vec<(u64, StoredPm)>,
    block_bytes: usize,
    withs: std::collections::BTreeMap<String, Vec<(u64, WithInBlock)>>,
}

impl Packer {
    pub(super) fn new(archive: u64) -> Self {
        Packer {
            archive,
            block: Vec::new(),
            block_bytes: 0,
            withs: std::collections::BTreeMap::new(),
        }
    }

    /// Adds the next record (seqs must increase); full blocks go into `out`.
    pub(super) fn push(&mut self, seq: u64, stored: StoredPm, out: &mut Batch) {
        let with = peer(stored.direction, &stored.from, &stored.to);
        let bare = Jid::from_stored(with.clone()).to_bare().as_str().to_owned();
        let block = self.block.first().map_or(seq, |(s, _)| *s);
        let entries = self.withs.entry(bare.clone()).or_default();
        entries.push((seq, WithInBlock { with, block }));
        if entries.len() >= records::WITH_PER_BLOCK {
            let full = std::mem::take(entries);
            self.put_withs(&bare, &full, out);
        }
        self.block_bytes += stored.stanza.len();
        self.block.push((seq, stored));
        if self.block.len() >= records::RECORDS_PER_BLOCK
            || self.block_bytes >= records::BLOCK_BYTES
        {
            self.put_block(out);
        }
    }

    fn put_block(&mut self, out: &mut Batch) {
        if let Some((first, _)) = self.block.first() {
            let refs: Vec<(u64, &StoredPm)> = self.block.iter().map(|(s, r)| (*s, r)).collect();
            out.insert(
                keys::archive_seq(self.archive, *first),
                codec::encode_block(&refs),
            );
        }
        self.block.clear();
        self.block_bytes = 0;
    }

    fn put_withs(&self, bare: &str, entries: &[(u64, WithInBlock)], out: &mut Batch) {
        if let Some((first, _)) = entries.first() {
            let refs: Vec<(u64, &WithInBlock)> = entries.iter().map(|(s, w)| (*s, w)).collect();
            out.insert(
                keys::archive_with_seq(self.archive, bare, *first),
                codec::encode_block_frame(&refs),
            );
        }
    }

    /// Writes what is left into `out`.
    pub(super) fn finish(&mut self, out: &mut Batch) {
        self.put_block(out);
        for (bare, entries) in std::mem::take(&mut self.withs) {
            self.put_withs(&bare, &entries, out);
        }
    }
}

/// Reads every 1-1 archive of `src` and hands `write` its entries repacked into blocks, as
/// `append_bulk` writes them: records are decoded and packed in seq order, and the `with` entries are
/// rebuilt from the records (the source's are skipped; `compact` runs only on a store that
/// verifies, where the two agree). Archives appended one message at a time shrink from two
/// keys per message to about 0.16. `write` receives batches of about [`BULK_CHUNK`] records
/// and their logical size. Returns the source's entries and bytes read.
pub(crate) fn repack(
    src: &Store,
    mut write: impl FnMut(Batch, u64, u64) -> Result<()>,
) -> Result<(u64, u64)> {
    let ks = Keyspace::MamPm;
    let (mut entries, mut bytes) = (0u64, 0u64);
    let (mut batch, mut in_batch, mut batch_bytes, mut read) =
        (Batch::default(), 0usize, 0u64, 0u64);
    let mut packer: Option<Packer> = None;
    records::for_each_entry(src, ks, &[], |k, v| {
        entries += 1;
        read += 1;
        bytes += (k.len() + v.len()) as u64;
        let (archive, tag) = pm_key_kind(k)?;
        if tag != keys::PM_RECORD {
            return Ok(true);
        }
        let p = match &mut packer {
            Some(p) if p.archive == archive => p,
            other => {
                if let Some(done) = other {
                    done.finish(&mut batch);
                }
                other.insert(Packer::new(archive))
            }
        };
        let e = codec::entries(ks, k, v, keys::trailing_seq(ks, k)?)?;
        for i in 0..e.len() {
            let (seq, stored) = e.decode::<StoredPm>(i)?;
            batch_bytes += (stored.stanza.len() + 256) as u64;
            p.push(seq, stored, &mut batch);
            in_batch += 1;
        }
        if in_batch >= BULK_CHUNK {
            write(
                std::mem::take(&mut batch),
                batch_bytes,
                std::mem::take(&mut read),
            )?;
            (in_batch, batch_bytes) = (0, 0);
        }
        Ok(true)
    })?;
    if let Some(p) = &mut packer {
        p.finish(&mut batch);
    }
    write(batch, batch_bytes, read)?;
    Ok((entries, bytes))
}
