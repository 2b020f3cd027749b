//! Ingest transports: they decode what clients send and hand it to admission
//! (`crate::admission`). Today the Unix socket of `proto/PROTOCOL.md`: a listener, one
//! task per connection. Composed with the rest of the collector in `crate::serve`.

mod connection;
mod socket;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::admission::Admission;
use crate::config::SensitiveString;

/// What every socket connection shares.
pub struct SocketContext {
    /// The way into the store.
    pub admission: Admission,
    /// Largest frame accepted from a client.
    pub max_frame_bytes: u32,
    /// Shared secret clients must present, if any.
    pub token: Option<SensitiveString>,
}

/// The bound Unix socket.
pub struct SocketListener {
    listener: UnixListener,
    path: PathBuf,
    inode: u64,
}

impl SocketListener {
    /// Binds `path` with permissions `mode`: a stale socket file is replaced, a live one
    /// (another collector) or any other file refused.
    pub fn bind(path: &Path, mode: u32) -> anyhow::Result<Self> {
        let (listener, inode) = socket::bind(path, mode)?;
        Ok(Self {
            listener,
            path: path.to_owned(),
            inode,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts connections until `shutdown` turns true; then stops accepting, removes
    /// the socket file, and waits until every connection has been answered for what
    /// it sent (each stops reading, and its batches are committed and acknowledged).
    pub async fn run(self, cx: Arc<SocketContext>, mut shutdown: watch::Receiver<bool>) {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        connections.spawn(connection::handle(stream, Arc::clone(&cx), shutdown.clone()));
                    }
                    Err(error) => {
                        // E.g. out of file descriptors: keep serving the connections we have.
                        warn!(%error, "Failed to accept a connection.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        info!(
            connections = connections.len(),
            "Socket closed: answering what its connections sent."
        );
        drop(self.listener);
        socket::remove_if_ours(&self.path, self.inode);
        while connections.join_next().await.is_some() {}
    }
}
