//! The engine contract (see the module docs), checked the same way on every engine.

use std::ops::Bound;

use super::memory::MemoryEngine;
use super::sled_engine::SledEngine;
use super::{Durability, Engine, TxError, WriteBatch, prefix_range};
use crate::config::Config;
use crate::error::Error;
use crate::keys::Keyspace;

const A: Keyspace = Keyspace::Vcard;
const B: Keyspace = Keyspace::Private;

/// The throwaway PostgreSQL cluster the integration tests use too.
#[cfg(feature = "postgres")]
#[path = "../../tests/pg/mod.rs"]
mod pg;

/// Runs `check` on a fresh engine of every kind (PostgreSQL: a fresh database on the test
/// cluster, unless `JIDSTORE_SKIP_PG=1`).
fn each(check: impl Fn(&dyn Engine)) {
    check(&MemoryEngine::new());
    let sled = SledEngine::open(&Config::temporary()).unwrap();
    check(&sled);
    #[cfg(feature = "postgres")]
    if let Some(url) = pg::database() {
        let url = crate::database_url::DatabaseUrl::new(&url);
        let e = super::postgres::PgEngine::open(&url, false).unwrap();
        // What the store does first at open: the format check writes the magic.
        assert!(crate::meta::check(&e, std::path::Path::new("pg"), false).unwrap());
        check(&e);
    }
}

fn keys(it: super::KvIter) -> Vec<Vec<u8>> {
    it.map(|kv| kv.unwrap().0.to_vec()).collect()
}

#[test]
fn get_insert_remove_return_the_previous_value() {
    each(|e| {
        assert_eq!(e.get(A, b"k").unwrap(), None);
        assert_eq!(e.insert(A, b"k", b"1").unwrap(), None);
        assert_eq!(e.insert(A, b"k", b"2").unwrap().unwrap(), b"1");
        assert_eq!(e.get(A, b"k").unwrap().unwrap(), b"2");
        // Keyspaces are separate maps.
        assert_eq!(e.get(B, b"k").unwrap(), None);
        assert_eq!(e.remove(A, b"k").unwrap().unwrap(), b"2");
        assert_eq!(e.remove(A, b"k").unwrap(), None);
        assert_eq!(e.get(A, b"k").unwrap(), None);
    });
}

#[test]
fn get_many_answers_every_key_in_order() {
    each(|e| {
        assert!(e.get_many(A, &[]).unwrap().is_empty());
        e.insert(A, b"a", b"1").unwrap();
        e.insert(A, b"c", b"3").unwrap();
        e.insert(B, b"b", b"2").unwrap();
        let got = e
            .get_many(A, &[b"c", b"b", b"a", b"c", b"zz", b"a"])
            .unwrap();
        let got: Vec<Option<&[u8]>> = got.iter().map(|v| v.as_deref()).collect();
        let want: Vec<Option<&[u8]>> = vec![
            Some(b"3"),
            None, // in keyspace B only
            Some(b"1"),
            Some(b"3"),
            None,
            Some(b"1"),
        ];
        assert_eq!(got, want);
        // A list longer than one query's worth: the answers still line up with the keys.
        let many: Vec<Vec<u8>> = (0..2500u32).map(|i| i.to_be_bytes().to_vec()).collect();
        e.insert(A, &many[7], b"x").unwrap();
        e.insert(A, &many[2400], b"y").unwrap();
        let refs: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
        let got = e.get_many(A, &refs).unwrap();
        assert_eq!(got.len(), 2500);
        for (i, v) in got.iter().enumerate() {
            let want: Option<&[u8]> = match i {
                7 => Some(b"x"),
                2400 => Some(b"y"),
                _ => None,
            };
            assert_eq!(v.as_deref(), want, "key {i}");
        }
    });
}

#[test]
fn compare_and_swap_changes_only_the_expected_value() {
    each(|e| {
        assert!(
            e.compare_and_swap(A, b"k", None, Some(b"1"))
                .unwrap()
                .is_ok()
        );
        let lost = e.compare_and_swap(A, b"k", None, Some(b"2")).unwrap();
        assert_eq!(lost.unwrap_err().current.unwrap(), b"1");
        assert!(
            e.compare_and_swap(A, b"k", Some(b"1"), Some(b"3"))
                .unwrap()
                .is_ok()
        );
        assert_eq!(e.get(A, b"k").unwrap().unwrap(), b"3");
        assert!(
            e.compare_and_swap(A, b"k", Some(b"3"), None)
                .unwrap()
                .is_ok()
        );
        assert_eq!(e.get(A, b"k").unwrap(), None);
    });
}

#[test]
fn ranges_are_ordered_both_ways_and_bounded() {
    each(|e| {
        for k in [&b"b"[..], b"a\xff", b"a", b"a\x00", b"c", b"ab"] {
            e.insert(A, k, k).unwrap();
        }
        let all: Vec<Vec<u8>> = vec![
            b"a".to_vec(),
            b"a\x00".to_vec(),
            b"ab".to_vec(),
            b"a\xff".to_vec(),
            b"b".to_vec(),
            b"c".to_vec(),
        ];
        let full = || (Bound::Unbounded, Bound::Unbounded);
        assert_eq!(keys(e.range(A, full())), all);
        assert_eq!(keys(e.scan(A, full())), all);
        let mut rev = all.clone();
        rev.reverse();
        assert_eq!(keys(Box::new(e.range(A, full()).rev())), rev);
        assert_eq!(keys(Box::new(e.scan(A, full()).rev())), rev);
        // A prefix range holds exactly the keys starting with the prefix.
        assert_eq!(keys(e.range(A, prefix_range(b"a"))), all[..4].to_vec());
        assert_eq!(
            keys(e.scan(A, prefix_range(b"a\x00"))),
            vec![b"a\x00".to_vec()]
        );
        let r = (
            Bound::Excluded(b"a".to_vec()),
            Bound::Included(b"b".to_vec()),
        );
        assert_eq!(keys(e.range(A, r.clone())), all[1..5].to_vec());
        // Both ends of one iterator meet without yielding an entry twice.
        let mut it = e.scan(A, r);
        let mut seen = vec![it.next().unwrap().unwrap().0.to_vec()];
        seen.push(it.next_back().unwrap().unwrap().0.to_vec());
        seen.extend(keys(it));
        seen.sort();
        assert_eq!(seen, all[1..5].to_vec());
        // Empty and inverted ranges yield nothing.
        let same = (
            Bound::Excluded(b"b".to_vec()),
            Bound::Excluded(b"b".to_vec()),
        );
        assert!(keys(e.range(A, same.clone())).is_empty());
        assert!(keys(e.scan(A, same)).is_empty());
        assert!(keys(e.scan(B, full())).is_empty());
    });
}

#[test]
fn a_batch_applies_across_keyspaces_in_order() {
    each(|e| {
        e.insert(B, b"gone", b"x").unwrap();
        let mut batch = WriteBatch::default();
        batch.insert(A, b"k".to_vec(), b"1".to_vec());
        batch.insert(A, b"k".to_vec(), b"2".to_vec());
        batch.insert(B, b"k".to_vec(), b"3".to_vec());
        batch.remove(B, b"gone".to_vec());
        e.apply(&batch).unwrap();
        assert_eq!(e.get(A, b"k").unwrap().unwrap(), b"2");
        assert_eq!(e.get(B, b"k").unwrap().unwrap(), b"3");
        assert_eq!(e.get(B, b"gone").unwrap(), None);
    });
}

#[test]
fn a_transaction_sees_its_own_writes_and_an_abort_writes_nothing() {
    each(|e| {
        e.insert(A, b"n", b"1").unwrap();
        e.transaction(&[A, B], Durability::Buffered, &|tx| {
            let n = tx.get(A, b"n")?.unwrap();
            tx.insert(B, b"copy", &n)?;
            tx.remove(A, b"n")?;
            assert_eq!(tx.get(A, b"n")?, None);
            assert_eq!(tx.get(B, b"copy")?.unwrap(), b"1");
            Ok(())
        })
        .unwrap();
        assert_eq!(e.get(A, b"n").unwrap(), None);
        assert_eq!(e.get(B, b"copy").unwrap().unwrap(), b"1");

        let res = e.transaction(&[A, B], Durability::Flushed, &|tx| {
            tx.insert(A, b"half", b"x")?;
            Err(TxError::Abort(Error::InvalidInput("stop".into())))
        });
        assert!(matches!(res, Err(Error::InvalidInput(m)) if m == "stop"));
        assert_eq!(e.get(A, b"half").unwrap(), None);

        // A keyspace the transaction was not opened over is refused.
        let res = e.transaction(&[A], Durability::Buffered, &|tx| tx.insert(B, b"x", b"y"));
        assert!(res.is_err());
        assert_eq!(e.get(B, b"x").unwrap(), None);
    });
}

#[test]
fn a_conflict_runs_the_body_again() {
    each(|e| {
        let runs = std::cell::Cell::new(0);
        e.transaction(&[A], Durability::Buffered, &|tx| {
            runs.set(runs.get() + 1);
            tx.insert(A, b"k", &[runs.get()])?;
            if runs.get() < 3 {
                return Err(TxError::Conflict);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(runs.get(), 3);
        assert_eq!(e.get(A, b"k").unwrap().unwrap(), [3u8]);
    });
}

#[test]
fn transactions_are_isolated_from_each_other() {
    each(|e| {
        // Eight threads each add 1 to a counter 50 times, read and written in a transaction:
        // a lost update would leave less than 400.
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        e.transaction(&[A], Durability::Buffered, &|tx| {
                            let n = tx.get(A, b"n")?.map_or(0, |v| {
                                u64::from_be_bytes(v.as_slice().try_into().unwrap())
                            });
                            tx.insert(A, b"n", &(n + 1).to_be_bytes())
                        })
                        .unwrap();
                    }
                });
            }
        });
        let n = e.get(A, b"n").unwrap().unwrap();
        assert_eq!(u64::from_be_bytes(n.as_slice().try_into().unwrap()), 400);
    });
}

#[test]
fn ids_increase_and_never_repeat() {
    each(|e| {
        let mut last = e.generate_id().unwrap();
        for _ in 0..1000 {
            let id = e.generate_id().unwrap();
            assert!(id > last);
            last = id;
        }
    });
}

#[test]
fn advance_ids_raises_the_next_id_and_never_lowers_it() {
    each(|e| {
        let first = e.generate_id().unwrap();
        e.advance_ids(first + 1000).unwrap();
        let raised = e.generate_id().unwrap();
        assert!(raised >= first + 1000, "{first} {raised}");
        e.advance_ids(first).unwrap();
        assert!(e.generate_id().unwrap() > raised);
    });
}

#[test]
fn clear_empties_one_keyspace_only() {
    each(|e| {
        let mut batch = WriteBatch::default();
        for i in 0..25_000u32 {
            batch.insert(A, i.to_be_bytes().to_vec(), b"v".to_vec());
        }
        batch.insert(B, b"kept".to_vec(), b"v".to_vec());
        e.apply(&batch).unwrap();
        e.clear(A).unwrap();
        let all = (Bound::Unbounded, Bound::Unbounded);
        assert!(keys(e.scan(A, all.clone())).is_empty());
        assert_eq!(keys(e.scan(B, all)), vec![b"kept".to_vec()]);
    });
}

#[test]
fn names_list_every_keyspace_and_flush_succeeds() {
    each(|e| {
        let names = e.keyspace_names().unwrap();
        for ks in Keyspace::ALL {
            assert!(
                names.contains(&ks.name().as_bytes().to_vec()),
                "{}",
                ks.name()
            );
        }
        e.insert(A, b"k", b"v").unwrap();
        e.flush().unwrap();
        e.check_space(0).unwrap();
    });
}

#[test]
fn sled_writes_survive_a_reopen_and_a_flushed_transaction_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path().join("data"));
    {
        let e = SledEngine::open(&config).unwrap();
        assert!(crate::meta::check(&e, &dir.path().join("data"), false).unwrap());
        e.insert(A, b"k", b"v").unwrap();
        e.transaction(&[B], Durability::Flushed, &|tx| tx.insert(B, b"t", b"1"))
            .unwrap();
    }
    let (_, recorded) = crate::witness::Witness::read(&dir.path().join("data")).unwrap();
    assert!(recorded > 0, "the flushed transaction is in the witness");
    let e = SledEngine::open(&config.lock_timeout(std::time::Duration::from_secs(10))).unwrap();
    assert_eq!(e.get(A, b"k").unwrap().unwrap(), b"v");
    assert_eq!(e.get(B, b"t").unwrap().unwrap(), b"1");
}

#[test]
fn a_batch_of_new_keys_applies_in_order_and_leaves_no_undo_record() {
    each(|e| {
        let mut batch = WriteBatch::default();
        batch.insert(A, b"n1".to_vec(), b"1".to_vec());
        batch.insert(B, b"n2".to_vec(), b"2".to_vec());
        e.apply_new(&batch).unwrap();
        assert_eq!(e.get(A, b"n1").unwrap().unwrap(), b"1");
        assert_eq!(e.get(B, b"n2").unwrap().unwrap(), b"2");
        let undo = keys(e.range(Keyspace::Meta, prefix_range(super::UNDO_PREFIX)));
        assert!(undo.is_empty(), "undo records left: {undo:?}");
        e.apply_new(&WriteBatch::default()).unwrap();
    });
}

#[test]
fn sled_rolls_back_a_batch_of_new_keys_cut_by_a_crash_when_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::new(dir.path().join("data"));
    {
        let e = SledEngine::open(&config).unwrap();
        assert!(crate::meta::check(&e, &dir.path().join("data"), false).unwrap());
        let mut done = WriteBatch::default();
        done.insert(A, b"kept".to_vec(), b"v".to_vec());
        e.apply_new(&done).unwrap();
        // What a crash between the writes of a batch leaves: its undo record, some writes.
        let mut cut = WriteBatch::default();
        cut.insert(A, b"new1".to_vec(), b"1".to_vec());
        cut.insert(B, b"new2".to_vec(), b"2".to_vec());
        let mut record = super::UNDO_PREFIX.to_vec();
        record.extend_from_slice(&u64::MAX.to_be_bytes());
        e.insert(
            Keyspace::Meta,
            &record,
            &super::sled_engine::undo::encode(&cut),
        )
        .unwrap();
        super::check_undo(&record, &super::sled_engine::undo::encode(&cut)).unwrap();
        e.insert(A, b"new1", b"1").unwrap();
    }
    let e = SledEngine::open(&config.lock_timeout(std::time::Duration::from_secs(10))).unwrap();
    assert_eq!(e.get(A, b"kept").unwrap().unwrap(), b"v");
    assert_eq!(e.get(A, b"new1").unwrap(), None);
    assert_eq!(e.get(B, b"new2").unwrap(), None);
    assert!(keys(e.range(Keyspace::Meta, prefix_range(super::UNDO_PREFIX))).is_empty());
}
