//! vCards: set, get, remove, reopen; writes need an account.

use crate::util::*;
use jidstore::Error;

#[test]
fn set_get_remove_reopen() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "alice@localhost");
    let xml = "<vCard xmlns='vcard-temp'><FN>Alice</FN><N><FAMILY>Ecila</FAMILY></N></vCard>";
    store.vcard().set(&alice, xml)?;
    let store = reopen(&dir, store);
    assert_eq!(
        store.vcard().get(&bare("ALICE@localhost"))?.as_deref(),
        Some(xml)
    );
    assert!(store.vcard().remove(&alice)?);
    assert_eq!(store.vcard().get(&alice)?, None);
    Ok(())
}

#[test]
fn refuses_unknown_owner_and_bad_xml() {
    let (_dir, store) = store();
    let ghost = bare("ghost@localhost");
    assert_no_account(store.vcard().set(&ghost, "<vCard/>"));
    let alice = user(&store, "alice@localhost");
    assert!(matches!(
        store.vcard().set(&alice, "<vCard>"),
        Err(Error::InvalidInput(_))
    ));
}
