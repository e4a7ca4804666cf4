//! [`DatabaseUrl`]: the connection URL of a store on PostgreSQL, never shown with its
//! password.

use std::fmt;

use crate::error::{Error, Result};

/// A `postgres://` or `postgresql://` URL. `Debug` and [`DatabaseUrl::redacted`] hide the
/// password, so a `Config` or an error can be printed without leaking it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The URL as given; [`DatabaseUrl::check`] says whether it is one.
    pub(crate) fn new(url: &str) -> Self {
        DatabaseUrl(url.trim().to_owned())
    }

    /// Checks the scheme (the only engine selected by URL is PostgreSQL).
    pub(crate) fn check(&self) -> Result<()> {
        if self.0.starts_with("postgres://") || self.0.starts_with("postgresql://") {
            Ok(())
        } else {
            Err(Error::InvalidInput(
                "a database URL must start with postgres:// or postgresql://".into(),
            ))
        }
    }

    /// The URL as given, checked.
    #[cfg(test)]
    fn parse(url: &str) -> Result<Self> {
        let u = DatabaseUrl::new(url);
        u.check().map(|()| u)
    }

    /// The URL as given, password included: for the connection only.
    #[cfg_attr(
        not(feature = "postgres"),
        expect(dead_code, reason = "read by the postgres engine")
    )]
    pub(crate) fn secret(&self) -> &str {
        &self.0
    }

    /// The URL without its password and query (`postgres://user@host:port/db`), for
    /// messages and [`crate::Store::path`].
    pub(crate) fn redacted(&self) -> String {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("postgres", &self.0));
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (auth, host) = match rest.rsplit_once('@') {
            Some((auth, host)) => (Some(auth), host),
            None => (None, rest),
        };
        match auth.map(|a| a.split(':').next().unwrap_or_default()) {
            Some(user) if !user.is_empty() => format!("{scheme}://{user}@{host}"),
            _ => format!("{scheme}://{host}"),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::DatabaseUrl;

    #[test]
    fn the_password_and_query_never_show() {
        let u = DatabaseUrl::parse("postgres://al:s3cret@db:5432/x?password=also").unwrap();
        assert_eq!(u.redacted(), "postgres://al@db:5432/x");
        assert!(!format!("{u:?}").contains("s3cret"));
        let u = DatabaseUrl::parse("postgresql://:pw@db/x").unwrap();
        assert_eq!(u.redacted(), "postgresql://db/x");
        let u = DatabaseUrl::parse("postgres:///x?host=/tmp&password=pw").unwrap();
        assert_eq!(u.redacted(), "postgres:///x");
        assert!(DatabaseUrl::parse("/var/lib/jidstore").is_err());
        assert!(DatabaseUrl::parse("mysql://x").is_err());
    }
}
