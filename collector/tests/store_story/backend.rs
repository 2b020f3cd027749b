//! What the story needs of a backend: stores opened through the contract, and the
//! hands of someone with raw access to the database, for the tamper cases. A second
//! backend runs the whole story by implementing [`Backend`] and adding one line to
//! `stories!` in `main.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use logbook_collector::audit::{verify, Keys, VerifyOptions, VerifyReport};
use logbook_collector::store::{
    open_reader, open_writer, StoreAddress, StoreOptions, StoreReader, StoreWriter,
};

/// A change to the stored data made outside logbook, as an attacker (or a careless
/// operator) with the database open would make it.
#[derive(Clone, Debug)]
pub enum Tamper {
    /// Sets a record's message.
    EditMessage { seq: i64, message: String },
    /// Sets a record's name and fields (a JSON object).
    EditNameAndFields {
        seq: i64,
        name: String,
        fields: String,
    },
    /// Gives record `a` the time, message and fields of record `b`, and `b` those of `a`.
    SwapPayloads { a: i64, b: i64 },
    /// Deletes a record.
    DeleteRecord { seq: i64 },
    /// Deletes a chain row and its record.
    DeleteChainRow { n: u64 },
    /// Points chain rows `a` and `b` at each other's records.
    SwapChainRecords { a: u64, b: u64 },
    /// Inserts a copy of record `seq` (new id, message "forged") marked audit, chained
    /// after row `after` with made-up hashes (later rows shift up by one).
    ForgeChainRow { seq: i64, after: u64 },
    /// Inserts a copy of record `seq` (new id) marked audit, not chained.
    ForgeUnchained { seq: i64 },
    /// Recomputes every content and chain hash from row `from` on with a key of its own.
    Rechain { from: u64, key: [u8; 32] },
    /// Deletes chain rows from `from` on, their records and the stored checkpoints
    /// that cover them.
    TruncateFrom { from: u64 },
    /// Marks chain row `n` tombstoned (no DSAR record lists it).
    MarkTombstone { n: u64 },
    /// Flips one bit of every stored copy of `needle` in the database's files.
    FlipBytes { needle: String },
}

/// A backend under test, in a fresh place of its own.
pub trait Backend {
    /// Its name, for messages.
    fn name(&self) -> &'static str;
    /// Where the store is.
    fn address(&self) -> StoreAddress;
    /// The directory of the store's keys and checkpoint file.
    fn dir(&self) -> &Path;
    /// Applies `t`.
    fn tamper(&self, t: Tamper);
    /// A copy of the whole store, to put back later ([`Backend::restore`]).
    fn snapshot(&self) -> Vec<u8>;
    /// Puts back a [`Backend::snapshot`].
    fn restore(&self, snapshot: &[u8]);

    /// The options every story opens the store with: keys and checkpoints in the
    /// store's directory, checkpoints every `checkpoint_records` audit records.
    fn options(&self, checkpoint_records: u64) -> StoreOptions {
        StoreOptions {
            key_dir: Some(self.dir().join("keys")),
            checkpoint_file: Some(self.checkpoint_file()),
            checkpoint_records,
            checkpoint_interval: Duration::from_secs(3600),
            ..StoreOptions::default()
        }
    }

    /// The checkpoint file.
    fn checkpoint_file(&self) -> PathBuf {
        self.dir().join("store.checkpoints")
    }

    /// A writer, with [`Backend::options`].
    fn writer(&self, checkpoint_records: u64) -> Box<dyn StoreWriter> {
        open_writer(&self.address(), &self.options(checkpoint_records)).unwrap()
    }

    /// A writer with these options.
    fn writer_with(&self, options: &StoreOptions) -> Box<dyn StoreWriter> {
        open_writer(&self.address(), options).unwrap()
    }

    /// A reader.
    fn reader(&self) -> Arc<dyn StoreReader> {
        open_reader(&self.address()).unwrap()
    }

    /// `verify` of the store, with its own keys and checkpoint file.
    fn verify(&self) -> VerifyReport {
        let keys = Keys::load(&self.dir().join("keys")).unwrap();
        verify(
            self.reader().as_ref(),
            &VerifyOptions {
                chain_key: *keys.chain_key(),
                public: keys.public(),
                checkpoint_file: self.checkpoint_file(),
            },
        )
        .unwrap()
    }

    /// The record seq of chain row `n`, read through the contract.
    fn record_seq(&self, n: u64) -> i64 {
        let mut seq = None;
        self.reader()
            .with_audit_snapshot(&mut |src| {
                seq = src
                    .chain_rows(n - 1, 1)?
                    .into_iter()
                    .find(|r| r.n == n)
                    .map(|r| r.record_seq);
                Ok(())
            })
            .unwrap();
        seq.unwrap_or_else(|| panic!("no chain row {n}"))
    }
}

pub mod sqlite {
    //! SQLite: one file in a temporary directory; tampering with `rusqlite` after
    //! dropping the append-only triggers, as anyone with the file could.

    use rusqlite::{params, Connection};

    use super::*;
    use logbook_collector::audit::{chain_hash, record_digest, ChainFormat, StorageClass};

    /// A SQLite store in a temporary directory.
    pub struct Sqlite {
        dir: tempfile::TempDir,
    }

    impl Sqlite {
        /// A fresh one.
        pub fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        /// The database file.
        pub fn file(&self) -> PathBuf {
            self.dir.path().join("store.db")
        }

        fn open(&self) -> Connection {
            let conn = Connection::open(self.file()).unwrap();
            conn.execute_batch(
                "DROP TRIGGER IF EXISTS records_audit_no_update;
                 DROP TRIGGER IF EXISTS records_audit_no_delete;
                 DROP TRIGGER IF EXISTS audit_chain_no_update;
                 DROP TRIGGER IF EXISTS audit_chain_no_delete;
                 DROP TRIGGER IF EXISTS audit_checkpoints_no_update;
                 DROP TRIGGER IF EXISTS audit_checkpoints_no_delete;",
            )
            .unwrap();
            conn
        }

        /// All columns of record `seq` but seq and id, for copies.
        const COPY: &'static str = "ts, kind, level, name, target, message, trace_id, span_id,
            parent_span_id, run_id, step_id, tenant, env, project, app, surface, user_id,
            session_id, request_id, service, host, pid, file, line, category, status,
            duration_ns, busy_ns, idle_ns, fields, class";
    }

    impl Backend for Sqlite {
        fn name(&self) -> &'static str {
            "sqlite"
        }

        fn address(&self) -> StoreAddress {
            StoreAddress::sqlite(self.file())
        }

        fn dir(&self) -> &Path {
            self.dir.path()
        }

        fn tamper(&self, t: Tamper) {
            let conn = self.open();
            let run = |sql: String| conn.execute_batch(&sql).unwrap();
            match t {
                Tamper::EditNameAndFields { seq, name, fields } => {
                    conn.execute(
                        "UPDATE records SET name = ?2, fields = ?3 WHERE seq = ?1",
                        params![seq, name, fields],
                    )
                    .unwrap();
                }
                Tamper::EditMessage { seq, message } => {
                    conn.execute(
                        "UPDATE records SET message = ?2 WHERE seq = ?1",
                        params![seq, message],
                    )
                    .unwrap();
                }
                Tamper::SwapPayloads { a, b } => run(format!(
                    "CREATE TEMP TABLE swap AS SELECT seq, ts, message, fields FROM records WHERE seq IN ({a}, {b});
                     UPDATE records SET ts = (SELECT ts FROM swap WHERE seq = {b}),
                        message = (SELECT message FROM swap WHERE seq = {b}),
                        fields = (SELECT fields FROM swap WHERE seq = {b}) WHERE seq = {a};
                     UPDATE records SET ts = (SELECT ts FROM swap WHERE seq = {a}),
                        message = (SELECT message FROM swap WHERE seq = {a}),
                        fields = (SELECT fields FROM swap WHERE seq = {a}) WHERE seq = {b};"
                )),
                Tamper::DeleteRecord { seq } => run(format!("DELETE FROM records WHERE seq = {seq};")),
                Tamper::DeleteChainRow { n } => run(format!(
                    "DELETE FROM records WHERE seq = (SELECT record_seq FROM audit_chain WHERE n = {n});
                     DELETE FROM audit_chain WHERE n = {n};"
                )),
                Tamper::SwapChainRecords { a, b } => {
                    let seq_of = |n: u64| -> i64 {
                        conn.query_row(
                            "SELECT record_seq FROM audit_chain WHERE n = ?1",
                            [n as i64],
                            |r| r.get(0),
                        )
                        .unwrap()
                    };
                    let (sa, sb) = (seq_of(a), seq_of(b));
                    // record_seq is unique: through a free value.
                    run(format!(
                        "UPDATE audit_chain SET record_seq = -1 WHERE n = {a};
                         UPDATE audit_chain SET record_seq = {sa} WHERE n = {b};
                         UPDATE audit_chain SET record_seq = {sb} WHERE n = {a};"
                    ));
                }
                Tamper::ForgeChainRow { seq, after } => run(format!(
                    "INSERT INTO records (seq, id, {copy}) SELECT 100000, x'00112233445566778899aabbccddeeff',
                        {forged} FROM records WHERE seq = {seq};
                     UPDATE audit_chain SET n = n + 1000000 WHERE n > {after};
                     UPDATE audit_chain SET n = n - 999999 WHERE n > 1000000;
                     INSERT INTO audit_chain (n, record_seq, content_hash, chain_hash, format)
                     VALUES ({after} + 1, 100000, zeroblob(32), zeroblob(32), 2);",
                    copy = Self::COPY,
                    forged = Self::COPY.replacen("message", "'forged'", 1),
                )),
                Tamper::ForgeUnchained { seq } => run(format!(
                    "INSERT INTO records (seq, id, {copy}) SELECT 100000, x'00112233445566778899aabbccddeeff',
                        {copy} FROM records WHERE seq = {seq};",
                    copy = Self::COPY
                )),
                Tamper::Rechain { from, key } => {
                    let reader = self.reader();
                    let mut prev: Vec<u8> = conn
                        .query_row(
                            "SELECT chain_hash FROM audit_chain WHERE n = ?1",
                            [from as i64 - 1],
                            |r| r.get(0),
                        )
                        .unwrap();
                    let rows: Vec<(i64, i64)> = conn
                        .prepare("SELECT n, record_seq FROM audit_chain WHERE n >= ?1 ORDER BY n")
                        .unwrap()
                        .query_map([from as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                        .unwrap()
                        .map(Result::unwrap)
                        .collect();
                    for (n, seq) in rows {
                        let id: Vec<u8> = conn
                            .query_row("SELECT id FROM records WHERE seq = ?1", [seq], |r| r.get(0))
                            .unwrap();
                        let record = reader
                            .get(logbook_proto::RecordId(id.try_into().unwrap()))
                            .unwrap()
                            .unwrap();
                        let content = record_digest(
                            &record,
                            seq as u64,
                            StorageClass::Audit,
                            ChainFormat::CURRENT,
                        )
                        .unwrap();
                        let chain = chain_hash(
                            ChainFormat::CURRENT,
                            &key,
                            &prev.clone().try_into().unwrap(),
                            n as u64,
                            &content,
                        );
                        conn.execute(
                            "UPDATE audit_chain SET content_hash = ?1, chain_hash = ?2 WHERE n = ?3",
                            params![&content[..], &chain[..], n],
                        )
                        .unwrap();
                        prev = chain.to_vec();
                    }
                }
                Tamper::TruncateFrom { from } => run(format!(
                    "DELETE FROM records WHERE seq IN (SELECT record_seq FROM audit_chain WHERE n >= {from});
                     DELETE FROM audit_chain WHERE n >= {from};
                     DELETE FROM audit_checkpoints WHERE n >= {from};"
                )),
                Tamper::MarkTombstone { n } => {
                    run(format!("UPDATE audit_chain SET tombstone = 1 WHERE n = {n};"))
                }
                Tamper::FlipBytes { needle } => {
                    run("PRAGMA wal_checkpoint(TRUNCATE);".into());
                    drop(conn);
                    let mut bytes = std::fs::read(self.file()).unwrap();
                    let needle = needle.as_bytes();
                    // Every copy (freed pages may hold stale ones), so the live row is
                    // among them.
                    let found: Vec<usize> = bytes
                        .windows(needle.len())
                        .enumerate()
                        .filter(|(_, w)| *w == needle)
                        .map(|(i, _)| i)
                        .collect();
                    assert!(!found.is_empty(), "no copy of the needle in the file");
                    for at in found {
                        bytes[at + needle.len() - 1] ^= 0x01;
                    }
                    std::fs::write(self.file(), bytes).unwrap();
                }
            }
        }

        fn snapshot(&self) -> Vec<u8> {
            let conn = Connection::open(self.file()).unwrap();
            conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                .unwrap();
            drop(conn);
            std::fs::read(self.file()).unwrap()
        }

        fn restore(&self, snapshot: &[u8]) {
            let _ = std::fs::remove_file(self.file().with_extension("db-wal"));
            let _ = std::fs::remove_file(self.file().with_extension("db-shm"));
            std::fs::write(self.file(), snapshot).unwrap();
        }
    }
}

#[cfg(feature = "postgres")]
pub mod postgres {
    //! PostgreSQL: a fresh database per story on the machine's server
    //! (`LOGBOOK_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/postgres`,
    //! names the server to make it on), dropped at the end; tampering over a
    //! connection with triggers off (`session_replication_role = replica`), as anyone
    //! with the database's superuser could.

    use std::sync::atomic::{AtomicU64, Ordering};

    use ::postgres::{Client, NoTls};

    use super::*;
    use logbook_collector::audit::{chain_hash, record_digest, ChainFormat, StorageClass};

    /// The server the stories make their databases on.
    pub fn admin_url() -> String {
        std::env::var("LOGBOOK_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// The URL of database `name` on that server.
    pub fn url_of(name: &str) -> String {
        let admin = admin_url();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        format!("{base}/{name}")
    }

    fn admin() -> Client {
        Client::connect(&admin_url(), NoTls).unwrap()
    }

    /// Ends every other session on database `name`.
    fn disconnect_all(c: &mut Client, name: &str) {
        c.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .unwrap();
    }

    static NEXT: AtomicU64 = AtomicU64::new(0);

    /// A fresh database, its keys and checkpoints in a temporary directory.
    pub struct Postgres {
        name: String,
        dir: tempfile::TempDir,
        snapshots: AtomicU64,
    }

    impl Postgres {
        /// A fresh one.
        pub fn new() -> Self {
            let name = format!(
                "logbook_story_{}_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos()
            );
            admin()
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .unwrap();
            Self {
                name,
                dir: tempfile::tempdir().unwrap(),
                snapshots: AtomicU64::new(0),
            }
        }

        /// The database's name.
        pub fn db_name(&self) -> &str {
            &self.name
        }

        fn open(&self) -> Client {
            let mut c = Client::connect(&url_of(&self.name), NoTls).unwrap();
            c.batch_execute("SET session_replication_role = replica")
                .unwrap();
            c
        }

        /// All columns of record `seq` but seq and id, for copies.
        const COPY: &'static str = "ts, kind, level, name, target, message, trace_id, span_id,
            parent_span_id, run_id, step_id, tenant, env, project, app, surface, user_id,
            session_id, request_id, service, host, pid, file, line, category, status,
            duration_ns, busy_ns, idle_ns, fields, class, origin";
    }

    impl Drop for Postgres {
        fn drop(&mut self) {
            let mut c = admin();
            disconnect_all(&mut c, &self.name);
            let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {}", self.name));
            for i in 0..self.snapshots.load(Ordering::Relaxed) {
                let _ = c.batch_execute(&format!("DROP DATABASE IF EXISTS {}_snap{i}", self.name));
            }
        }
    }

    impl Backend for Postgres {
        fn name(&self) -> &'static str {
            "postgres"
        }

        fn address(&self) -> StoreAddress {
            url_of(&self.name).parse().unwrap()
        }

        fn dir(&self) -> &Path {
            self.dir.path()
        }

        fn tamper(&self, t: Tamper) {
            let mut c = self.open();
            let mut run = |sql: String| c.batch_execute(&sql).unwrap();
            match t {
                Tamper::EditNameAndFields { seq, name, fields } => {
                    let mut c = self.open();
                    c.execute(
                        "UPDATE records SET name = $2, fields = $3::text::jsonb WHERE seq = $1",
                        &[&seq, &name, &fields],
                    )
                    .unwrap();
                }
                Tamper::EditMessage { seq, message } => {
                    let mut c = self.open();
                    c.execute(
                        "UPDATE records SET message = $2 WHERE seq = $1",
                        &[&seq, &message],
                    )
                    .unwrap();
                }
                Tamper::SwapPayloads { a, b } => run(format!(
                    "CREATE TEMP TABLE swap AS SELECT seq, ts, message, fields FROM records WHERE seq IN ({a}, {b});
                     UPDATE records SET ts = (SELECT ts FROM swap WHERE seq = {b}),
                        message = (SELECT message FROM swap WHERE seq = {b}),
                        fields = (SELECT fields FROM swap WHERE seq = {b}) WHERE seq = {a};
                     UPDATE records SET ts = (SELECT ts FROM swap WHERE seq = {a}),
                        message = (SELECT message FROM swap WHERE seq = {a}),
                        fields = (SELECT fields FROM swap WHERE seq = {a}) WHERE seq = {b};"
                )),
                Tamper::DeleteRecord { seq } => {
                    run(format!("DELETE FROM records WHERE seq = {seq};"))
                }
                Tamper::DeleteChainRow { n } => run(format!(
                    "DELETE FROM records WHERE seq = (SELECT record_seq FROM audit_chain WHERE n = {n});
                     DELETE FROM audit_chain WHERE n = {n};"
                )),
                Tamper::SwapChainRecords { a, b } => run(format!(
                    "CREATE TEMP TABLE s AS SELECT n, record_seq FROM audit_chain WHERE n IN ({a}, {b});
                     UPDATE audit_chain SET record_seq = -1 WHERE n = {a};
                     UPDATE audit_chain SET record_seq = (SELECT record_seq FROM s WHERE n = {a}) WHERE n = {b};
                     UPDATE audit_chain SET record_seq = (SELECT record_seq FROM s WHERE n = {b}) WHERE n = {a};"
                )),
                Tamper::ForgeChainRow { seq, after } => run(format!(
                    "INSERT INTO records (seq, id, {copy}) SELECT 100000, '\\x00112233445566778899aabbccddeeff'::bytea,
                        {forged} FROM records WHERE seq = {seq};
                     UPDATE audit_chain SET n = n + 1000000 WHERE n > {after};
                     UPDATE audit_chain SET n = n - 999999 WHERE n > 1000000;
                     INSERT INTO audit_chain (n, record_seq, content_hash, chain_hash, format)
                     VALUES ({after} + 1, 100000, '\\x{zero}'::bytea, '\\x{zero}'::bytea, 2);",
                    copy = Self::COPY,
                    forged = Self::COPY.replacen("message", "'forged'", 1),
                    zero = "00".repeat(32),
                )),
                Tamper::ForgeUnchained { seq } => run(format!(
                    "INSERT INTO records (seq, id, {copy}) SELECT 100000, '\\x00112233445566778899aabbccddeeff'::bytea,
                        {copy} FROM records WHERE seq = {seq};",
                    copy = Self::COPY
                )),
                Tamper::Rechain { from, key } => {
                    let reader = self.reader();
                    let mut c = self.open();
                    let mut prev: Vec<u8> = c
                        .query_one(
                            "SELECT chain_hash FROM audit_chain WHERE n = $1",
                            &[&(from as i64 - 1)],
                        )
                        .unwrap()
                        .get(0);
                    let rows: Vec<(i64, i64)> = c
                        .query(
                            "SELECT n, record_seq FROM audit_chain WHERE n >= $1 ORDER BY n",
                            &[&(from as i64)],
                        )
                        .unwrap()
                        .iter()
                        .map(|r| (r.get(0), r.get(1)))
                        .collect();
                    for (n, seq) in rows {
                        let id: Vec<u8> = c
                            .query_one("SELECT id FROM records WHERE seq = $1", &[&seq])
                            .unwrap()
                            .get(0);
                        let record = reader
                            .get(logbook_proto::RecordId(id.try_into().unwrap()))
                            .unwrap()
                            .unwrap();
                        let content = record_digest(
                            &record,
                            seq as u64,
                            StorageClass::Audit,
                            ChainFormat::CURRENT,
                        )
                        .unwrap();
                        let chain = chain_hash(
                            ChainFormat::CURRENT,
                            &key,
                            &prev.clone().try_into().unwrap(),
                            n as u64,
                            &content,
                        );
                        c.execute(
                            "UPDATE audit_chain SET content_hash = $1, chain_hash = $2 WHERE n = $3",
                            &[&&content[..], &&chain[..], &n],
                        )
                        .unwrap();
                        prev = chain.to_vec();
                    }
                }
                Tamper::TruncateFrom { from } => run(format!(
                    "DELETE FROM records WHERE seq IN (SELECT record_seq FROM audit_chain WHERE n >= {from});
                     DELETE FROM audit_chain WHERE n >= {from};
                     DELETE FROM audit_checkpoints WHERE n >= {from};"
                )),
                Tamper::MarkTombstone { n } => {
                    run(format!("UPDATE audit_chain SET tombstone = 1 WHERE n = {n};"))
                }
                Tamper::FlipBytes { needle } => {
                    // No file to flip a bit in: the same change, made in the rows
                    // holding the needle.
                    let mut flipped = needle.clone().into_bytes();
                    let last = flipped.len() - 1;
                    flipped[last] ^= 0x01;
                    let flipped = String::from_utf8(flipped).unwrap();
                    let mut c = self.open();
                    let n = c
                        .execute(
                            "UPDATE records SET message = replace(message, $1, $2),
                                    fields = replace(fields::text, $1, $2)::jsonb
                              WHERE strpos(coalesce(message, ''), $1) > 0
                                 OR strpos(fields::text, $1) > 0",
                            &[&needle, &flipped],
                        )
                        .unwrap();
                    assert!(n > 0, "no copy of the needle in the database");
                }
            }
        }

        fn snapshot(&self) -> Vec<u8> {
            let i = self.snapshots.fetch_add(1, Ordering::Relaxed);
            let snap = format!("{}_snap{i}", self.name);
            let mut c = admin();
            disconnect_all(&mut c, &self.name);
            c.batch_execute(&format!("CREATE DATABASE {snap} TEMPLATE {}", self.name))
                .unwrap();
            snap.into_bytes()
        }

        fn restore(&self, snapshot: &[u8]) {
            let snap = std::str::from_utf8(snapshot).unwrap();
            let mut c = admin();
            disconnect_all(&mut c, &self.name);
            c.batch_execute(&format!("DROP DATABASE {}", self.name))
                .unwrap();
            c.batch_execute(&format!("CREATE DATABASE {} TEMPLATE {snap}", self.name))
                .unwrap();
        }
    }
}
