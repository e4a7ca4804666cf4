//! Accounts: creation, SCRAM-only storage, listing, reopen.

use crate::util::*;
use jidstore::Error;

#[test]
fn create_check_list_reopen() -> TestResult {
    let (dir, store) = store();
    let alice = user(&store, "Alice@LocalHost");
    assert_eq!(alice.as_str(), "alice@localhost");
    assert!(matches!(
        store.accounts().create(&bare("alice@localhost"), "x"),
        Err(Error::AccountExists(_))
    ));
    let anon = store.accounts().create_random("localhost", "pw")?;
    assert_eq!(anon.node().map(str::len), Some(32));
    assert!(anon.node().unwrap().chars().all(|c| c.is_ascii_hexdigit()));
    user(&store, "bob@other.org");
    let store = reopen(&dir, store);
    assert!(store.accounts().check_password(&alice, "password")?);
    assert!(!store.accounts().check_password(&alice, "Password")?);
    assert!(
        !store
            .accounts()
            .check_password(&bare("nobody@localhost"), "password")?
    );
    let mut expected = vec![alice.clone(), anon];
    expected.sort();
    assert_eq!(store.accounts().list("localhost")?, expected);
    store.accounts().set_password(&alice, "new")?;
    assert!(store.accounts().check_password(&alice, "new")?);
    let info = store.accounts().get(&alice)?.unwrap();
    assert_eq!(info.mechanisms.len(), 3);
    Ok(())
}

#[test]
fn password_never_stored_in_clear() -> TestResult {
    let (dir, store) = store();
    let j = bare("carol@localhost");
    store.accounts().create(&j, "UniqueSecretMarker123")?;
    store.flush()?;
    drop(store);
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry)?;
        assert!(
            !bytes.windows(21).any(|w| w == b"UniqueSecretMarker123"),
            "password found in {}",
            entry.display()
        );
    }
    Ok(())
}

fn walk(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap().path();
        if e.is_dir() {
            out.extend(walk(&e));
        } else {
            out.push(e);
        }
    }
    out
}

/// `lock_timeout`: by default a held directory fails at once; with a wait, the open succeeds
/// once the holder lets go.
#[test]
fn lock_timeout_waits_for_the_holder() -> TestResult {
    let (dir, store) = store();
    let path = dir.path().join("data");
    let err = jidstore::Config::new(&path).open().unwrap_err();
    assert!(matches!(err, jidstore::Error::Locked(_)), "{err}");
    let holder = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(store);
    });
    let reopened = jidstore::Config::new(&path)
        .lock_timeout(std::time::Duration::from_secs(10))
        .open()?;
    holder.join().unwrap();
    assert!(reopened.accounts().list("localhost")?.is_empty());
    Ok(())
}
