//! `jidstore::testing::check_gdpr` can fail: wrong expectations, data of the subject left
//! behind through raw writes, the wrong user erased, and another user's data altered are
//! each reported as the violation they are.

use jidstore::__internal::keys::Keyspace;
use jidstore::gdpr;
use jidstore::testing::{self, Phase, Violation};
use jidstore::{BareJid, Store};
use proptest::prelude::*;

use crate::util;

/// The subject's raw account entry (key starts with the JID and its NUL terminator).
fn raw_account(store: &Store, subject: &BareJid) -> (Vec<u8>, Vec<u8>) {
    let mut prefix = subject.as_str().as_bytes().to_vec();
    prefix.push(0);
    let (k, v) = store
        .raw_tree(Keyspace::Accounts)
        .scan_prefix(&prefix)
        .next()
        .expect("account entry")
        .expect("read");
    (k.to_vec(), v.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn checker_reports_each_broken_promise((d, subject) in testing::deployment_and_subject()) {
        // A correct erasure passes.
        let (_dir, store) = util::store();
        d.apply(&store).unwrap();
        let ok = testing::check_gdpr(&store, &d, &subject);
        prop_assert!(ok.is_ok(), "{}", ok.unwrap_err());

        // A wrong expectation: one roster item more than was written.
        let (_dir, store) = util::store();
        d.apply(&store).unwrap();
        let mut wrong = d.clone();
        let u = wrong.users.iter_mut().find(|u| u.jid == subject).unwrap();
        let n = u.roster.len() as u64;
        u.roster.push(jidstore::ext::roster::RosterItem {
            jid: util::bare("nobody@nowhere.example"),
            name: None,
            subscription: jidstore::ext::roster::Subscription::None,
            ask: jidstore::ext::roster::Ask::None,
            groups: vec![],
            askmessage: None,
        });
        match testing::check_gdpr(&store, &wrong, &subject) {
            Err(Violation::Rows { phase: Phase::Before, jid, file: "roster.csv", expected, found }) => {
                prop_assert_eq!(jid, subject.clone());
                prop_assert_eq!((expected, found), (n + 1, n));
            }
            other => prop_assert!(false, "wrong expectation not reported: {other:?}"),
        }

        // The subject's account written back through a raw write after the erasure.
        let (_dir, store) = util::store();
        d.apply(&store).unwrap();
        let (key, value) = raw_account(&store, &subject);
        let r = testing::check_gdpr_with(&store, &d, &subject, |s, j| {
            let receipt = gdpr::remove(s, j)?;
            s.raw_tree(Keyspace::Accounts).insert(&key, value.clone()).unwrap();
            Ok(receipt)
        });
        prop_assert!(
            matches!(
                &r,
                Err(
                    Violation::LeftBehind { file: "accounts.csv", rows: 1, .. }
                        | Violation::Verify { phase: Phase::After, .. }
                )
            ),
            "left-behind account not reported: {r:?}"
        );

        // A look-alike erased instead of the subject (a prefix or case bug).
        if let Some(other) = d.users.iter().map(|u| u.jid.clone()).find(|j| *j != subject) {
            let (_dir, store) = util::store();
            d.apply(&store).unwrap();
            let r = testing::check_gdpr_with(&store, &d, &subject, |s, _| gdpr::remove(s, &other));
            prop_assert!(
                matches!(&r, Err(Violation::LeftBehind { file: "accounts.csv", .. })),
                "wrong user erased, not reported: {r:?}"
            );

            // Another user's vCard rewritten during the erasure: same row count, new bytes.
            let (_dir, store) = util::store();
            d.apply(&store).unwrap();
            let r = testing::check_gdpr_with(&store, &d, &subject, |s, j| {
                let receipt = gdpr::remove(s, j)?;
                let had = s.vcard().get(&other)?.is_some();
                if had {
                    s.vcard().set(&other, "<vCard xmlns='vcard-temp'><FN>changed</FN></vCard>")?;
                }
                Ok(receipt)
            });
            let untouched = !d.touched_by_erasure(&subject).contains(&other);
            if untouched && d.users.iter().any(|u| u.jid == other && u.vcard.is_some()) {
                prop_assert!(
                    matches!(&r, Err(Violation::OtherChanged { jid, .. }) if *jid == other),
                    "other user's change not reported: {r:?}"
                );
            } else if !untouched {
                // Touched users' exports may change; the row counts still must match.
                prop_assert!(r.is_ok(), "{r:?}");
            }
        }
    }
}
