//! The byte streams the socket sink speaks the wire protocol over: a collector's Unix
//! socket, or (cargo feature `tls`) TCP with TLS to a collector on another host. Both
//! are blocking during the handshake and non-blocking after it.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// Where a collector listens.
#[derive(Clone)]
pub(crate) enum Target {
    /// Its Unix socket.
    Unix(PathBuf),
    /// Its TLS listener.
    #[cfg(feature = "tls")]
    Tls(tls::Remote),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "{}", p.display()),
            #[cfg(feature = "tls")]
            Self::Tls(r) => write!(f, "tls://{}:{}", r.host, r.port),
        }
    }
}

impl Target {
    /// A connection, blocking with `timeout` on reads and writes until
    /// [`Stream::set_nonblocking`].
    pub(crate) fn connect(&self, timeout: Duration) -> io::Result<Stream> {
        match self {
            Self::Unix(path) => {
                let s = UnixStream::connect(path)?;
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
                Ok(Stream::Unix(s))
            }
            #[cfg(feature = "tls")]
            Self::Tls(remote) => remote.connect(timeout).map(|s| Stream::Tls(Box::new(s))),
        }
    }
}

/// A connection to a collector.
pub(crate) enum Stream {
    Unix(UnixStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>),
}

impl Stream {
    /// From now on reads and writes return `WouldBlock` rather than wait.
    pub(crate) fn set_nonblocking(&self) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.set_nonblocking(true),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.sock.set_nonblocking(true),
        }
    }

    /// Sends what TLS holds encrypted but not yet written to the socket (nothing to do
    /// for a Unix socket); `WouldBlock` is not an error here.
    pub(crate) fn push_pending(&mut self) -> io::Result<()> {
        match self {
            Self::Unix(_) => Ok(()),
            #[cfg(feature = "tls")]
            Self::Tls(s) => match s.flush() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                other => other,
            },
        }
    }

    /// Closes the connection (TLS: with a close_notify, if it can be sent at once).
    pub(crate) fn close(self) {
        match self {
            Self::Unix(s) => {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            #[cfg(feature = "tls")]
            Self::Tls(mut s) => {
                s.conn.send_close_notify();
                let _ = s.conn.write_tls(&mut s.sock);
                let _ = s.sock.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.flush(),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.flush(),
        }
    }
}

#[cfg(feature = "tls")]
pub(crate) mod tls {
    //! TLS to a remote collector: rustls with ring, the server's name checked against
    //! its certificate, roots from a CA bundle or the system's.

    use std::io;
    use std::net::{TcpStream, ToSocketAddrs};
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Duration;

    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, ServerName};

    /// A collector's TLS listener, and how its certificate is checked.
    #[derive(Clone)]
    pub(crate) struct Remote {
        pub(crate) host: String,
        pub(crate) port: u16,
        name: ServerName<'static>,
        config: Arc<rustls::ClientConfig>,
    }

    impl Remote {
        /// `host:port`, its certificate checked against the CA certificates in `ca`
        /// (PEM), else the system's roots.
        pub(crate) fn new(host: &str, port: u16, ca: Option<&Path>) -> Result<Self, String> {
            let name = ServerName::try_from(host.to_owned())
                .map_err(|e| format!("{host:?} is not a host name or IP address: {e}"))?;
            let mut roots = rustls::RootCertStore::empty();
            match ca {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                        .map_err(|e| format!("reading CA certificates {}: {e}", path.display()))?;
                    let (added, _) = roots.add_parsable_certificates(certs);
                    if added == 0 {
                        return Err(format!(
                            "no usable CA certificate in {} (expected PEM)",
                            path.display()
                        ));
                    }
                }
                None => {
                    let found = rustls_native_certs::load_native_certs();
                    roots.add_parsable_certificates(found.certs);
                    if roots.is_empty() {
                        return Err(
                            "no system root certificates found: set LOGBOOK_TLS_CA to the collector's CA bundle".into(),
                        );
                    }
                }
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Ok(Self {
                host: host.to_owned(),
                port,
                name,
                config: Arc::new(config),
            })
        }

        /// Connects (each address of the host in turn) and starts the handshake, which
        /// completes with the first write.
        pub(crate) fn connect(
            &self,
            timeout: Duration,
        ) -> io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
            let mut last = None;
            let mut sock = None;
            for addr in (self.host.as_str(), self.port).to_socket_addrs()? {
                match TcpStream::connect_timeout(&addr, timeout) {
                    Ok(s) => {
                        sock = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let sock = match sock {
                Some(s) => s,
                None => {
                    return Err(last.unwrap_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "the host has no address")
                    }))
                }
            };
            sock.set_nodelay(true)?;
            sock.set_read_timeout(Some(timeout))?;
            sock.set_write_timeout(Some(timeout))?;
            let conn = rustls::ClientConnection::new(Arc::clone(&self.config), self.name.clone())
                .map_err(io::Error::other)?;
            Ok(rustls::StreamOwned::new(conn, sock))
        }
    }
}
