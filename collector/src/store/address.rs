//! Where a store lives: the backend is chosen once, from this.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use thiserror::Error;

/// A store's address: `sqlite:/path/to/logbook.db`, or a bare path (SQLite).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreAddress {
    /// A SQLite database file.
    Sqlite(PathBuf),
}

/// An address no backend of this build serves.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum ParseStoreAddressError {
    /// Empty.
    #[error("empty store address: expected sqlite:/path/to/logbook.db or a path")]
    Empty,
    /// A scheme this build has no backend for.
    #[error("store address {0:?}: this build stores in SQLite only (sqlite:/path/to/logbook.db or a path)")]
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
        }
    }
}

impl fmt::Display for StoreAddress {
    /// A path for SQLite (as users write it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "{}", p.display()),
        }
    }
}

impl FromStr for StoreAddress {
    type Err = ParseStoreAddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(ParseStoreAddressError::Empty);
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
                return Err(ParseStoreAddressError::Unsupported(s.to_owned()));
            }
        }
        Ok(Self::Sqlite(s.into()))
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
            "postgres://u@h/db".parse::<StoreAddress>(),
            Err(ParseStoreAddressError::Unsupported(_))
        ));
        assert!("".parse::<StoreAddress>().is_err());
        assert!("sqlite:".parse::<StoreAddress>().is_err());
    }
}
