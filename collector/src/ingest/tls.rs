//! The wire protocol over TCP with TLS, for applications on other hosts (rustls, with
//! ring): the same frames, admission and limits as the Unix socket, behind a TLS
//! handshake; every hello must carry a token that may send records (the shared token,
//! or an API token of the admin or ingest role), whatever the collector is configured
//! with, since no file mode guards a TCP port.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use logbook_proto::{transport, Origin};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info};

use super::connection::{self, Peer};
use super::{accept_until, Accept, SocketContext};

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The bound TCP port and the TLS configuration it serves with.
pub struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsListener {
    /// Loads the certificate chain and key (PEM files) and binds `addr`.
    pub async fn bind(addr: SocketAddr, cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let acceptor = TlsAcceptor::from(Arc::new(server_config(cert, key)?));
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the TLS listener on {addr}"))?;
        Ok(Self { listener, acceptor })
    }

    /// The address it listens on (its port, when bound to port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections until `shutdown` turns true; then stops accepting and waits
    /// until every connection has been answered for what it sent.
    pub async fn run(self, cx: Arc<SocketContext>, shutdown: watch::Receiver<bool>) {
        let mut connections = accept_until(&self, &cx, shutdown).await;
        info!(
            connections = connections.len(),
            "TLS listener closed: answering what its connections sent."
        );
        drop(self.listener);
        while connections.join_next().await.is_some() {}
    }
}

impl Accept for TlsListener {
    type Stream = (TcpStream, SocketAddr);

    async fn accept(&self) -> std::io::Result<Self::Stream> {
        self.listener.accept().await
    }

    /// Closed at once: no error frame can be sent before a handshake, and the client
    /// retries with its backoff as after any lost connection.
    fn refuse(&self, stream: Self::Stream, _max: usize) {
        drop(stream);
    }

    fn handle(
        &self,
        (stream, addr): Self::Stream,
        cx: Arc<SocketContext>,
        shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let acceptor = self.acceptor.clone();
        async move {
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    debug!(peer = %addr, %error, "TLS handshake failed.");
                    return;
                }
                Err(_) => {
                    debug!(peer = %addr, "TLS handshake timed out.");
                    return;
                }
            };
            let (rd, wr) = tokio::io::split(tls);
            let peer = Peer {
                origin: Origin::new(transport::TLS),
                name: addr.ip().to_string(),
                token_required: true,
            };
            connection::serve(rd, wr, peer, cx, shutdown).await;
        }
    }
}

/// The server's TLS configuration from a PEM certificate chain and private key.
fn server_config(cert: &Path, key: &Path) -> anyhow::Result<rustls::ServerConfig> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("reading the TLS certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        bail!(
            "reading the TLS certificate {}: no certificate in it (expected PEM, -----BEGIN CERTIFICATE-----)",
            cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("reading the TLS key {}: {e}", key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the TLS certificate and key do not go together")
}
