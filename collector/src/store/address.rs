//! Where a store lives: the backend is chosen once, from this.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use thiserror::Error;

/// A store's address: `sqlite:/path/to/logbook.db`, or a bare path (SQLite);
/// `postgres://user@host/db` (PostgreSQL, with the `postgres` feature).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreAddress {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database: its connection URL (`postgres://` or `postgresql://`,
    /// with libpq's parameters).
    Postgres(String),
}

impl fmt::Debug for StoreAddress {
    /// Never a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            Self::Postgres(_) => f.debug_tuple("Postgres").field(&self.to_string()).finish(),
        }
    }
}

/// An address no backend of this build serves.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ParseStoreAddressError {
    /// Empty.
    #[error("empty store address: expected sqlite:/path/to/logbook.db or a path")]
    Empty,
    /// A scheme this build has no backend for.
    #[error("store address {0:?}: expected sqlite:/path/to/logbook.db, a path, or postgres://user@host/db (when built with the `postgres` feature)")]
    Unsupported(String),
}

impl StoreAddress {
    /// A SQLite file.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self::Sqlite(path.into())
    }

    /// The file of a file-based store: keys and checkpoints default to beside it.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Self::Sqlite(p) => Some(p),
            Self::Postgres(_) => None,
        }
    }
}

impl fmt::Display for StoreAddress {
    /// A path for SQLite (as users write it); PostgreSQL's URL without its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "{}", p.display()),
            Self::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

impl FromStr for StoreAddress {
    type Err = ParseStoreAddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ParseStoreAddressError::Empty);
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return if cfg!(feature = "postgres") {
                Ok(Self::Postgres(s.to_owned()))
            } else {
                Err(ParseStoreAddressError::Unsupported(redact_password(s)))
            };
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(ParseStoreAddressError::Empty);
            }
            return Ok(Self::Sqlite(path.into()));
        }
        // A scheme (letters, then "://" or ":" before anything path-like) that is not
        // ours: postgres://…, mysql://…
        if let Some((scheme, _)) = s.split_once("://") {
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+')
            {
                return Err(ParseStoreAddressError::Unsupported(redact_password(s)));
            }
        }
        Ok(Self::Sqlite(s.into()))
    }
}

/// A URL with its password, if any (`user:password@` or a `password=` parameter),
/// replaced by `***`.
pub fn redact_password(url: &str) -> String {
    let url = match url.split_once('?') {
        Some((base, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_owned(),
                })
                .collect();
            format!("{base}?{}", query.join("&"))
        }
        None => url.to_owned(),
    };
    let url = url.as_str();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((user, host)) if user.contains(':') => {
                    let user = user.split_once(':').map_or(user, |(u, _)| u);
                    format!("{scheme}://{user}:***@{host}{tail}")
                }
                _ => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "sqlite:/var/lib/l.db".parse(),
            Ok(StoreAddress::sqlite("/var/lib/l.db"))
        );
        assert_eq!(
            "sqlite:///var/lib/l.db".parse(),
            Ok(StoreAddress::sqlite("/var/lib/l.db"))
        );
        assert_eq!("l.db".parse(), Ok(StoreAddress::sqlite("l.db")));
        assert_eq!("./a:b/l.db".parse(), Ok(StoreAddress::sqlite("./a:b/l.db")));
        assert!(matches!(
            "mysql://u@h/db".parse::<StoreAddress>(),
            Err(ParseStoreAddressError::Unsupported(_))
        ));
        #[cfg(feature = "postgres")]
        {
            let a: StoreAddress = "postgres://u:secret@h:5432/db?sslmode=disable"
                .parse()
                .unwrap();
            assert_eq!(a.to_string(), "postgres://u:***@h:5432/db?sslmode=disable");
            assert!(!format!("{a:?}").contains("secret"));
            let b: StoreAddress = "postgres://u@h/db?password=secret&application_name=x"
                .parse()
                .unwrap();
            assert_eq!(
                b.to_string(),
                "postgres://u@h/db?password=***&application_name=x"
            );
        }
        assert!("".parse::<StoreAddress>().is_err());
        assert!("sqlite:".parse::<StoreAddress>().is_err());
    }
}
