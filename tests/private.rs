//! Private XML (XEP-0049): set, get, list, remove, reopen, isolation, export and erasure.

use crate::util::*;
use jidstore::Error;

const BOOKMARKS: &str = "<storage xmlns='storage:bookmarks'><conference jid='r@muc.h'/></storage>";
const NOTES: &str = "<storage xmlns='storage:rosternotes'/>";

#[test]
fn set_get_list_remove_reopen() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    store.private().set(&alice, "storage:rosternotes", NOTES)?;
    store.private().set(
        &alice,
        "storage:bookmarks",
        "<storage xmlns='storage:bookmarks'/>",
    )?;
    store
        .private()
        .set(&alice, "storage:bookmarks", BOOKMARKS)?;
    let store = reopen(&dir, store);
    let private = store.private();
    assert_eq!(
        private
            .get(&bare("Alice@LOCALHOST"), "storage:bookmarks")?
            .as_deref(),
        Some(BOOKMARKS)
    );
    assert_eq!(private.get(&alice, "storage:none")?, None);
    assert_eq!(
        private.list(&alice)?,
        vec![
            ("storage:bookmarks".to_owned(), BOOKMARKS.to_owned()),
            ("storage:rosternotes".to_owned(), NOTES.to_owned()),
        ]
    );
    assert!(private.remove(&alice, "storage:rosternotes")?);
    assert!(!private.remove(&alice, "storage:rosternotes")?);
    let store = reopen(&dir, store);
    assert_eq!(store.private().list(&alice)?.len(), 1);
    assert_eq!(store.private().get(&alice, "storage:rosternotes")?, None);
    Ok(())
}

#[test]
fn refuses_unknown_owner_bad_ns_and_bad_xml() {
    let (_dir, store) = store();
    let ghost = bare("ghost@localhost");
    assert_no_account(store.private().set(&ghost, "ns", "<x/>"));
    let alice = user(&store, "alice@localhost");
    for (ns, xml) in [("", "<x/>"), ("a\0b", "<x/>"), ("ns", "<x>"), ("ns", "")] {
        assert!(
            matches!(
                store.private().set(&alice, ns, xml),
                Err(Error::InvalidInput(_))
            ),
            "{ns:?} {xml:?}"
        );
    }
    assert!(store.private().list(&alice).unwrap().is_empty());
}

#[test]
fn lookalike_owners_never_mix() -> TestResult {
    let (_dir, store, owners) = lookalike_store();
    for owner in &owners {
        let xml = format!("<x xmlns='n'>{owner}</x>");
        store.private().set(owner, "n", &xml)?;
    }
    for owner in &owners {
        let items = store.private().list(owner)?;
        assert_eq!(
            items,
            vec![("n".to_owned(), format!("<x xmlns='n'>{owner}</x>"))]
        );
    }
    assert_eq!(
        store.private().get(&bare("A@HH"), "n")?.as_deref(),
        Some("<x xmlns='n'>a@hh</x>")
    );
    Ok(())
}

#[test]
fn export_rows_and_erasure() -> TestResult {
    let (_dir, store, alice, bob) = alice_and_bob();
    store
        .private()
        .set(&alice, "storage:bookmarks", BOOKMARKS)?;
    store.private().set(&alice, "storage:rosternotes", NOTES)?;
    store.private().set(&bob, "storage:rosternotes", NOTES)?;
    let rows = export_rows(&store, &alice, "private.csv");
    assert_eq!(
        rows,
        vec![
            vec!["storage:bookmarks", BOOKMARKS],
            vec!["storage:rosternotes", NOTES],
        ]
    );
    let receipt = jidstore::gdpr::remove(&store, &alice)?;
    assert_eq!(receipt.removed["private"], rows.len() as u64);
    assert!(store.private().list(&alice)?.is_empty());
    assert_eq!(store.private().list(&bob)?.len(), 1);
    Ok(())
}
