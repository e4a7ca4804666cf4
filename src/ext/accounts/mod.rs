//! Accounts: a username on a domain, SCRAM verifiers (never a password), and the id of the
//! account's 1-1 message archive.

use crate::error::{Error, Result};
use crate::ext::scram::{Mechanism, Verifier};
use crate::ext::{Emit, Extension, RemovalPlan, Table};
use crate::jid::BareJid;
use crate::keys::{self, Keyspace};
use crate::store::Store;
use crate::time::Timestamp;

mod stored;

pub(crate) use stored::StoredAccount;

/// What may be shown about an account: no salts, no keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountInfo {
    /// The account's JID.
    pub jid: BareJid,
    /// When it was created.
    pub created_at: Timestamp,
    /// SASL mechanisms it has verifiers for.
    pub mechanisms: Vec<Mechanism>,
}

/// Handle on the `accounts` keyspace; from [`Store::accounts`].
pub struct Accounts<'a> {
    store: &'a Store,
}

impl Store {
    /// Accounts and passwords.
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts { store: self }
    }
}

impl Accounts<'_> {
    /// Creates an account, storing SCRAM-SHA-1/256/512 verifiers for `password`.
    /// Fails with [`Error::AccountExists`] when the name is taken.
    pub fn create(&self, jid: &BareJid, password: &str) -> Result<()> {
        if password.is_empty() {
            return Err(Error::InvalidInput("password must not be empty".into()));
        }
        let iterations = self.store.scram_iterations();
        let verifiers = Mechanism::ALL
            .iter()
            .map(|m| Verifier::new(*m, password, iterations))
            .collect();
        self.create_with_verifiers(jid, verifiers, Timestamp::now())
    }

    /// Creates an account from verifiers computed elsewhere (imports).
    pub fn create_with_verifiers(
        &self,
        jid: &BareJid,
        verifiers: Vec<Verifier>,
        created_at: Timestamp,
    ) -> Result<()> {
        if jid.node().is_none() {
            return Err(Error::InvalidJid {
                input: jid.to_string(),
                reason: "an account needs a username".into(),
            });
        }
        // Pseudonyms of erased subjects live there: an account would own their kept rows.
        if jid.domain() == crate::gdpr::redact::PSEUDONYM_DOMAIN {
            return Err(Error::InvalidJid {
                input: jid.to_string(),
                reason: format!(
                    "{} is reserved for the pseudonyms of erased users",
                    crate::gdpr::redact::PSEUDONYM_DOMAIN
                ),
            });
        }
        let _w = self.store.writer()?;
        let account = StoredAccount {
            created_at: created_at.into(),
            verifiers: verifiers.into_iter().map(Into::into).collect(),
            archive: self.store.generate_id()?,
        };
        let key = keys::owner(jid);
        let swapped = self.store.tree(Keyspace::Accounts).compare_and_swap(
            &key,
            None,
            Some(&crate::codec::encode(&account)),
        )?;
        swapped.map_err(|_| Error::AccountExists(jid.to_string()))
    }

    /// Creates an account whose username is a random UUIDv4 in simple hex form (122 random
    /// bits from the OS CSPRNG, no timestamp), and returns its JID.
    pub fn create_random(&self, domain: &str, password: &str) -> Result<BareJid> {
        let name = uuid::Uuid::new_v4().simple().to_string();
        let jid = BareJid::from_parts(&name, domain)?;
        self.create(&jid, password)?;
        Ok(jid)
    }

    /// Whether an account exists.
    pub fn exists(&self, jid: &BareJid) -> Result<bool> {
        self.store
            .tree(Keyspace::Accounts)
            .contains_key(keys::owner(jid))
    }

    /// The public part of an account.
    pub fn get(&self, jid: &BareJid) -> Result<Option<AccountInfo>> {
        Ok(self
            .store
            .get::<StoredAccount>(Keyspace::Accounts, &keys::owner(jid))?
            .map(|a| info(jid.clone(), &a)))
    }

    /// The id of the account's 1-1 archive (the key prefix of its `mam_pm` entries).
    pub(crate) fn archive_id(&self, jid: &BareJid) -> Result<Option<u64>> {
        Ok(self
            .store
            .get::<StoredAccount>(Keyspace::Accounts, &keys::owner(jid))?
            .map(|a| a.archive))
    }

    /// Every account on `domain`, sorted. A full scan: accounts are few next to messages.
    pub fn list(&self, domain: &str) -> Result<Vec<BareJid>> {
        let mut out = Vec::new();
        for key in self.store.scan_keys(Keyspace::Accounts, &[]) {
            let key = key?;
            let jid = owner_of(&key)?;
            if jid.domain() == domain {
                out.push(jid);
            }
        }
        Ok(out)
    }

    /// Every account, lazily in key order (JID order), optionally only those on `domain`
    /// and whose username starts with `prefix`. Both are normalised as JIDs are (so
    /// `Alice` finds `alice@...`); a `prefix` is read as a key range, a `domain` alone
    /// needs a scan of every account key. Nothing is collected: memory stays flat on a
    /// store of any size. Fails at once when `domain` or `prefix` is not valid in a JID.
    pub fn users(
        &self,
        domain: Option<&str>,
        prefix: Option<&str>,
    ) -> Result<impl Iterator<Item = Result<BareJid>> + use<>> {
        let domain = domain
            .map(|d| BareJid::domain_only(d).map(|j| j.as_str().to_owned()))
            .transpose()?;
        let start = match prefix.filter(|p| !p.is_empty()) {
            // The localpart alone, normalised through a JID on a placeholder domain.
            Some(p) => BareJid::from_parts(p, "localhost")?
                .node()
                .unwrap_or_default()
                .to_owned(),
            None => String::new(),
        };
        let keys = self.store.scan_keys(Keyspace::Accounts, start.as_bytes());
        Ok(keys.filter_map(move |key| {
            let jid = key.and_then(|k| owner_of(&k));
            match (&jid, &domain) {
                (Ok(j), Some(d)) if j.domain() != d => None,
                _ => Some(jid),
            }
        }))
    }

    /// The domain of every account (one entry per account, in key order).
    pub fn domains(&self) -> Result<Vec<String>> {
        self.store
            .scan_keys(Keyspace::Accounts, &[])
            .map(|key| Ok(owner_of(&key?)?.domain().to_owned()))
            .collect()
    }

    /// Checks a password against the SCRAM-SHA-256 verifier (or the first one stored).
    /// `Ok(false)` for a wrong password or an unknown user.
    pub fn check_password(&self, jid: &BareJid, password: &str) -> Result<bool> {
        let Some(account) = self
            .store
            .get::<StoredAccount>(Keyspace::Accounts, &keys::owner(jid))?
        else {
            return Ok(false);
        };
        let verifier = account
            .verifiers
            .iter()
            .find(|v| v.mechanism() == Mechanism::Sha256)
            .or_else(|| account.verifiers.first());
        Ok(verifier.is_some_and(|v| Verifier::from(v.clone()).matches(password)))
    }

    /// The stored verifier for one mechanism (for a server's SASL exchange).
    pub fn verifier(&self, jid: &BareJid, mechanism: Mechanism) -> Result<Option<Verifier>> {
        Ok(self
            .store
            .get::<StoredAccount>(Keyspace::Accounts, &keys::owner(jid))?
            .and_then(|a| a.verifiers.into_iter().find(|v| v.mechanism() == mechanism))
            .map(Verifier::from))
    }

    /// Sets the verifiers of an account computed elsewhere (an embedding server's password
    /// change), creating the account when it does not exist; an existing account keeps its
    /// creation time and archive.
    pub fn set_verifiers(&self, jid: &BareJid, verifiers: Vec<Verifier>) -> Result<()> {
        let writer = self.store.writer()?;
        let key = keys::owner(jid);
        if let Some(mut account) = self.store.get::<StoredAccount>(Keyspace::Accounts, &key)? {
            account.verifiers = verifiers.into_iter().map(Into::into).collect();
            return self.store.put(Keyspace::Accounts, &key, &account);
        }
        drop(writer);
        self.create_with_verifiers(jid, verifiers, Timestamp::now())
    }

    /// Removes the account record alone (its login), leaving the rest of the subject's data
    /// to a later erasure ([`crate::gdpr::remove`]): an embedding server that deletes a user
    /// clears the account first, then erases. Returns whether there was an account. Refused
    /// while the account's 1-1 archive holds messages (only the account leads an erasure to
    /// them): erase the subject instead.
    pub fn remove(&self, jid: &BareJid) -> Result<bool> {
        let _w = self.store.remover();
        // Appends hold this from taking a seq to the write: none lands between check and removal.
        let _appends = self.store.archive_appender();
        let key = keys::owner(jid);
        let Some(account) = self.store.get::<StoredAccount>(Keyspace::Accounts, &key)? else {
            return Ok(false);
        };
        let prefix = keys::archive(account.archive);
        if self
            .store
            .scan_keys(Keyspace::MamPm, &prefix)
            .next()
            .is_some()
        {
            return Err(Error::InvalidInput(
                "the account has a message archive: erase the user instead".into(),
            ));
        }
        Ok(self.store.tree(Keyspace::Accounts).remove(key)?.is_some())
    }

    /// Replaces the verifiers with ones for a new password.
    pub fn set_password(&self, jid: &BareJid, password: &str) -> Result<()> {
        if password.is_empty() {
            return Err(Error::InvalidInput("password must not be empty".into()));
        }
        let _w = self.store.writer()?;
        let mut account = self.store.require_account(jid)?;
        let iterations = self.store.scram_iterations();
        account.verifiers = Mechanism::ALL
            .iter()
            .map(|m| Verifier::new(*m, password, iterations).into())
            .collect();
        self.store
            .put(Keyspace::Accounts, &keys::owner(jid), &account)
    }
}

fn info(jid: BareJid, a: &StoredAccount) -> AccountInfo {
    AccountInfo {
        jid,
        created_at: a.created_at.into(),
        mechanisms: a
            .verifiers
            .iter()
            .map(stored::StoredVerifier::mechanism)
            .collect(),
    }
}

fn owner_of(key: &[u8]) -> Result<BareJid> {
    let mut r = keys::KeyReader::new(Keyspace::Accounts, key);
    let jid = r.part()?.to_owned();
    r.end()?;
    Ok(BareJid::from_stored(jid))
}

/// Checks one stored entry: the key parses as this keyspace's layout and the value decodes
/// as its record type. Used by [`crate::verify()`].
pub(crate) fn verify_entry(key: &[u8], value: &[u8]) -> Result<()> {
    owner_of(key)?;
    crate::codec::decode::<StoredAccount>(Keyspace::Accounts, key, value).map(|_| ())
}

/// Registry entry.
pub(crate) struct Class;

const TABLES: &[Table] = &[Table {
    file: "accounts.csv",
    title: "Your account",
    header: &["jid", "created_at", "mechanisms"],
}];

impl Extension for Class {
    fn verify_entry(&self, _ks: Keyspace, key: &[u8], value: &[u8]) -> Result<()> {
        verify_entry(key, value)
    }

    fn name(&self) -> &'static str {
        "accounts"
    }
    fn keyspaces(&self) -> &'static [Keyspace] {
        &[Keyspace::Accounts]
    }
    fn tables(&self) -> &'static [Table] {
        TABLES
    }
    fn rows(&self, store: &Store, subject: &BareJid, _table: usize, emit: Emit<'_>) -> Result<()> {
        if let Some(a) = store.accounts().get(subject)? {
            let mechs: Vec<&str> = a.mechanisms.iter().map(|m| m.sasl_name()).collect();
            emit(vec![
                a.jid.to_string(),
                a.created_at.to_rfc3339(),
                mechs.join(" "),
            ])?;
        }
        Ok(())
    }
    fn plan_removal(&self, store: &Store, subject: &BareJid, plan: &mut RemovalPlan) -> Result<()> {
        let key = keys::owner(subject);
        if store.tree(Keyspace::Accounts).contains_key(&key)? {
            plan.remove(Keyspace::Accounts, key);
            plan.count("accounts", 1);
        }
        Ok(())
    }
}
