//! The generic per-owner class (an embedding server's other stores, e.g. Prosody's) and the
//! account calls the Prosody driver uses: values, archives with Prosody's `find`/`delete`
//! semantics, export, erasure and verify.

use crate::util::*;
use jidstore::Timestamp;
use jidstore::ext::generic::{Deletion, Query};
use jidstore::ext::mam::{Direction, PmMessage};
use jidstore::ext::scram::{Mechanism, Verifier};

fn ids(page: &jidstore::ext::generic::Page) -> Vec<&str> {
    page.items.iter().map(|i| i.id.as_str()).collect()
}

#[test]
fn values_export_erase_and_reopen() -> TestResult {
    let (dir, store) = store();
    let alice = bare("alice@localhost");
    let bob = bare("bob@localhost");
    let host = jidstore::BareJid::domain_only("localhost")?;
    let g = store.generic();
    g.set(&alice, "roster", Some("{ [false] = { version = 1 } }"))?;
    g.set(&alice, "pep", Some("{ }"))?;
    g.set(&bob, "roster", Some("{ }"))?;
    g.set(&host, "roster", Some("host data"))?;
    assert!(g.set(&alice, "a\0b", Some("x")).is_err());
    assert!(g.set(&alice, "", Some("x")).is_err());
    let store = reopen(&dir, store);
    let g = store.generic();
    assert_eq!(
        g.get(&alice, "roster")?.as_deref(),
        Some("{ [false] = { version = 1 } }")
    );
    assert_eq!(g.get(&alice, "vcard")?, None);
    assert_eq!(
        g.owners("localhost", "roster", false)?,
        vec![alice.clone(), bob.clone()]
    );
    assert_eq!(g.owners("localhost", "roster", true)?, vec![]);
    g.append(
        &alice,
        "archive",
        None,
        Timestamp::from_secs(5),
        None,
        "<m/>",
    )?;
    assert_eq!(
        export_rows(&store, &alice, "generic_kv.csv"),
        vec![
            vec!["pep".to_owned(), "{ }".to_owned()],
            vec![
                "roster".to_owned(),
                "{ [false] = { version = 1 } }".to_owned()
            ],
        ]
    );
    assert_eq!(export_rows(&store, &alice, "generic_archive.csv").len(), 1);
    assert!(jidstore::verify(&store)?.is_clean());

    // No account at all: erasure still reaches the generic rows.
    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.removed.get("generic_kv"), Some(&2));
    assert_eq!(receipt.removed.get("generic_archive"), Some(&1));
    assert_eq!(g.get(&alice, "roster")?, None);
    assert_eq!(g.get(&bob, "roster")?.as_deref(), Some("{ }"));
    assert_eq!(g.get(&host, "roster")?.as_deref(), Some("host data"));
    g.set(&bob, "roster", None)?;
    assert_eq!(g.get(&bob, "roster")?, None);
    Ok(())
}

/// Five items in alice's "archive", three in the same second, two `with`s; their ids.
fn five_items(store: &jidstore::Store, alice: &jidstore::BareJid) -> jidstore::Result<Vec<String>> {
    let g = store.generic();
    let mut all = Vec::new();
    for (secs, with) in [
        (10, "bob"),
        (11, "carol"),
        (11, "bob"),
        (11, "bob"),
        (12, "carol"),
    ] {
        let with = format!("{with}@localhost");
        all.push(g.append(
            alice,
            "archive",
            None,
            Timestamp::from_secs(secs),
            Some(&with),
            &format!("<message><body>{secs}</body></message>"),
        )?);
    }
    Ok(all)
}

#[test]
fn archive_find_follows_prosody() -> TestResult {
    let (_dir, store) = store();
    let alice = bare("alice@localhost");
    let g = store.generic();
    let all = five_items(&store, &alice)?;
    let find = |q: Query| g.find(&alice, "archive", &q);
    let page = find(Query::default())?.expect("page");
    assert_eq!(
        ids(&page),
        all.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(page.total, 5);

    let with_bob = Query {
        with: Some("bob@localhost".into()),
        ..Query::default()
    };
    let page = find(with_bob.clone())?.expect("page");
    assert_eq!(ids(&page), [&*all[0], &*all[2], &*all[3]]);

    // start/end inclusive, insertion order within a second.
    let page = find(Query {
        start: Some(Timestamp::from_secs(11)),
        end: Some(Timestamp::from_secs(11)),
        ..Query::default()
    })?
    .expect("page");
    assert_eq!(ids(&page), [&*all[1], &*all[2], &*all[3]]);

    // mod_mam's paging: limit = max + 1, after/before ids, reverse for the last page.
    let page = find(Query {
        limit: Some(2),
        after: Some(all[1].clone()),
        ..Query::default()
    })?
    .expect("page");
    assert_eq!(ids(&page), [&*all[2], &*all[3]]);
    assert_eq!(page.total, 5);
    let page = find(Query {
        limit: Some(2),
        reverse: true,
        ..Query::default()
    })?
    .expect("page");
    assert_eq!(ids(&page), [&*all[4], &*all[3]]);
    let page = find(Query {
        limit: Some(10),
        reverse: true,
        before: Some(all[3].clone()),
        ..with_bob.clone()
    })?
    .expect("page");
    assert_eq!(ids(&page), [&*all[2], &*all[0]]);
    let page = find(Query {
        after: Some(all[0].clone()),
        before: Some(all[3].clone()),
        ..Query::default()
    })?
    .expect("page");
    assert_eq!(ids(&page), [&*all[1], &*all[2]]);
    let page = find(Query {
        ids: Some(vec![all[4].clone(), all[0].clone(), "nope".into()]),
        ..Query::default()
    })?
    .expect("page");
    assert_eq!(ids(&page), [&*all[0], &*all[4]]);
    Ok(())
}

#[test]
fn archive_unknown_ids_and_replacing_appends() -> TestResult {
    let (_dir, store) = store();
    let alice = bare("alice@localhost");
    let g = store.generic();
    let all = five_items(&store, &alice)?;
    let find = |q: Query| g.find(&alice, "archive", &q);
    let with_bob = Query {
        with: Some("bob@localhost".into()),
        ..Query::default()
    };

    // Unknown before/after: item-not-found (None), also when the id is filtered out.
    for q in [
        Query {
            after: Some("nope".into()),
            ..Query::default()
        },
        Query {
            before: Some("nope".into()),
            reverse: true,
            ..Query::default()
        },
        Query {
            after: Some(all[1].clone()),
            ..with_bob
        },
    ] {
        assert!(find(q)?.is_none());
    }

    // Appending with an existing id replaces that item in place.
    g.append(
        &alice,
        "archive",
        Some(&all[2]),
        Timestamp::from_secs(11),
        None,
        "<x/>",
    )?;
    let page = find(Query::default())?.expect("page");
    assert_eq!(page.total, 5);
    assert_eq!(page.items[2].value, "<x/>");
    assert_eq!(page.items[2].with, None);
    // Another archive of the same owner is separate.
    assert_eq!(
        g.find(&alice, "offline", &Query::default())?
            .expect("page")
            .total,
        0
    );
    Ok(())
}

#[test]
fn archive_delete_by_end_with_and_truncate() -> TestResult {
    let (_dir, store) = store();
    let alice = bare("alice@localhost");
    let g = store.generic();
    for secs in 1..=6 {
        let with = if secs % 2 == 0 {
            "bob@localhost"
        } else {
            "carol@localhost"
        };
        g.append(
            &alice,
            "archive",
            Some(&format!("m{secs}")),
            Timestamp::from_secs(secs),
            Some(with),
            "<m/>",
        )?;
    }
    let left = || -> jidstore::Result<Vec<String>> {
        let page = g.find(&alice, "archive", &Query::default())?.expect("page");
        Ok(page.items.into_iter().map(|i| i.id).collect())
    };
    // archive_expires_after: delete with `end`.
    let n = g.delete(
        &alice,
        "archive",
        &Deletion {
            end: Some(Timestamp::from_secs(2)),
            ..Deletion::default()
        },
    )?;
    assert_eq!(n, 2);
    assert_eq!(left()?, ["m3", "m4", "m5", "m6"]);
    // Filters combine: bob's items at or after 5.
    let n = g.delete(
        &alice,
        "archive",
        &Deletion {
            with: Some("bob@localhost".into()),
            start: Some(Timestamp::from_secs(5)),
            ..Deletion::default()
        },
    )?;
    assert_eq!(n, 1);
    assert_eq!(left()?, ["m3", "m4", "m5"]);
    // truncate keeps the newest N (with reverse, the oldest N).
    let keep_newest = Deletion {
        truncate: Some(2),
        ..Deletion::default()
    };
    assert_eq!(g.delete(&alice, "archive", &keep_newest)?, 1);
    assert_eq!(left()?, ["m4", "m5"]);
    let keep_oldest = Deletion {
        truncate: Some(1),
        reverse: true,
        ..Deletion::default()
    };
    assert_eq!(g.delete(&alice, "archive", &keep_oldest)?, 1);
    assert_eq!(left()?, ["m4"]);
    assert_eq!(g.delete(&alice, "archive", &Deletion::default())?, 1);
    assert!(left()?.is_empty());
    Ok(())
}

#[test]
fn accounts_set_verifiers_and_remove() -> TestResult {
    let (_dir, store) = store();
    let alice = bare("alice@localhost");
    let v1 = Verifier::with_salt(Mechanism::Sha1, "one", b"salt-1".to_vec(), 4096);
    store.accounts().set_verifiers(&alice, vec![v1.clone()])?;
    assert_eq!(
        store.accounts().verifier(&alice, Mechanism::Sha1)?,
        Some(v1)
    );
    assert!(store.accounts().check_password(&alice, "one")?);
    let created = store.accounts().get(&alice)?.expect("account").created_at;
    // A password change keeps the account (its creation time).
    let v2 = Verifier::with_salt(Mechanism::Sha1, "two", b"salt-2".to_vec(), 4096);
    store.accounts().set_verifiers(&alice, vec![v2])?;
    assert!(store.accounts().check_password(&alice, "two")?);
    assert!(!store.accounts().check_password(&alice, "one")?);
    assert_eq!(
        store.accounts().get(&alice)?.expect("account").created_at,
        created
    );
    assert_eq!(
        export_rows(&store, &alice, "accounts.csv"),
        vec![vec![
            "alice@localhost".to_owned(),
            created.to_rfc3339(),
            "SCRAM-SHA-1".to_owned()
        ]]
    );
    assert!(store.accounts().remove(&alice)?);
    assert!(!store.accounts().exists(&alice)?);
    assert!(!store.accounts().remove(&alice)?);

    // An account whose 1-1 archive holds messages is only erased, never just removed.
    let bob = user(&store, "bob@localhost");
    store.mam().append(
        &bob,
        &PmMessage::new(
            Timestamp::from_secs(1),
            full("bob@localhost/r"),
            full("carol@localhost/r"),
            Direction::Outgoing,
            "<message><body>hi</body></message>",
        ),
    )?;
    assert!(matches!(
        store.accounts().remove(&bob),
        Err(jidstore::Error::InvalidInput(_))
    ));
    assert!(store.accounts().exists(&bob)?);
    Ok(())
}
