//! Storage errors in neutral terms: no database type appears in them.

use std::io;

use thiserror::Error;

/// A storage failure.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database error: {message}")]
    Database {
        /// The database's own words.
        message: String,
        /// The error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database is locked by another writer for longer than a writer waits.
    #[error("the database is busy: another writer held it too long ({0})")]
    Busy(String),
    /// Reading or writing a file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The store was written by a newer logbook.
    #[error("database schema version {found} is newer than this logbook supports ({supported}); upgrade logbook")]
    SchemaTooNew {
        /// Version in the store.
        found: i64,
        /// Newest version known here.
        supported: i64,
    },
    /// A stored value does not decode (the store was edited or is corrupt).
    #[error("corrupt row (seq {seq}): {message}")]
    Corrupt {
        /// The row.
        seq: i64,
        /// What is wrong.
        message: String,
    },
    /// The reader may not show this (a scoped reader, asked for the store's own
    /// records).
    #[error("{0}")]
    NotPermitted(String),
    /// A visitor asked to stop (e.g. the output pipe closed).
    #[error("stopped: {0}")]
    Stopped(#[source] io::Error),
}

impl StoreError {
    /// A file error while `context`.
    pub fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    /// Data that is not what it should be, read from `context`.
    pub fn invalid_data(context: impl Into<String>) -> Self {
        Self::Io {
            context: context.into(),
            source: io::Error::from(io::ErrorKind::InvalidData),
        }
    }
}
