//! Model target: arbitrary operation sequences, decoded five bytes at a time by
//! `jidstore::testing::model::Op::from_bytes`, run by `testing::model::run` against a store
//! in a temporary directory and the reference model the property test
//! (`tests/prop_model.rs`) uses: accounts, roster, vCard, private XML, offline messages,
//! inboxes, the 1-1 archive (single and bulk appends, removals by id, paged queries), group
//! chat, pubsub nodes, items and subscriptions, last activity, privacy lists and the
//! blocklist, with reopens and GDPR erasure.
//!
//! A divergence between the store and the model (an outcome, a typed read, `verify`, an
//! export, what an erasure left behind) panics with the model's one-line description.
#![no_main]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jidstore::testing::model::{self, Op};
use jidstore::{Config, Store};
use libfuzzer_sys::fuzz_target;

/// Most operations per input: keeps one execution short.
const MAX_OPS: usize = 48;

fn open(path: &Path) -> Store {
    Config::new(path)
        .cache_capacity(1 << 20)
        .flush_every_ms(None)
        .scram_iterations(4096)
        .lock_timeout(Duration::from_secs(10))
        .open()
        .expect("open store")
}

/// A fresh directory per execution, on tmpfs when there is one.
fn fresh_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "jidstore-fuzz-model-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fuzz_target!(|ops: Vec<[u8; 5]>| {
    let ops: Vec<Op> = ops.into_iter().take(MAX_OPS).map(Op::from_bytes).collect();
    let path = fresh_dir();
    let result = model::run(open(&path), &BTreeSet::new(), &ops, |store| {
        store.flush().expect("flush");
        drop(store);
        open(&path)
    });
    let _ = std::fs::remove_dir_all(&path);
    if let Err(divergence) = result {
        panic!("{divergence}");
    }
});
