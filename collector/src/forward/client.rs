//! OTLP/HTTP requests to one destination: protobuf bodies POSTed over HTTP/1.1, plain
//! or inside TLS (rustls with ring; the system's roots, or a CA bundle), on one kept-
//! alive connection made again when it closes.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How long connecting, and then one request with its answer, may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The most of an error answer's body kept for the message.
const ERROR_BODY: usize = 512;

/// Where a destination listens: `http://host:4318` or `https://host/base`; requests go
/// to the base path with `/v1/traces` and `/v1/logs` after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    base: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "https" } else { "http" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.base)
        } else {
            write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.base)
        }
    }
}

impl FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid endpoint {s:?}: {why}");
        let (tls, rest) = if let Some(r) = s.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = s.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("expected http://host:port or https://host:port"));
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("expected a host (and no user or password)"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, _)) if !h.ends_with(']') && h.contains(':') => (authority, None),
            Some((h, p)) => (
                h,
                Some(
                    p.parse::<u16>()
                        .map_err(|_| bad("the port is not a number"))?,
                ),
            ),
            None => (authority, None),
        };
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || path.contains(['?', '#']) {
            return Err(bad("expected a host, and a path with no query"));
        }
        Ok(Self {
            tls,
            host: host.to_owned(),
            port: port.unwrap_or(if tls { 443 } else { 80 }),
            base: path.trim_end_matches('/').to_owned(),
        })
    }
}

/// Why a request did not succeed.
#[derive(Debug)]
pub(crate) enum PostError {
    /// The destination refused what was sent as malformed or too large (HTTP 400,
    /// 413): sending it again will not help.
    Refused(String),
    /// Anything else (no connection, a timeout, 429, 5xx, 401): worth retrying.
    Failed(String),
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(m) | Self::Failed(m) => f.write_str(m),
        }
    }
}

/// A destination's connection and how requests to it are made.
pub(crate) struct Client {
    endpoint: Endpoint,
    tls: Option<tokio_rustls::TlsConnector>,
    headers: Vec<(String, String)>,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl fmt::Debug for Client {
    /// Never the headers' values (API keys).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of `endpoint` sending `headers` with every request; for https, the
    /// server's certificate checked against `ca` (PEM), else the system's roots.
    pub(crate) fn new(
        endpoint: Endpoint,
        headers: Vec<(String, String)>,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, String> {
        let tls = if endpoint.tls {
            let mut roots = rustls::RootCertStore::empty();
            match ca {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .and_then(|c| c.collect::<Result<Vec<_>, _>>())
                        .map_err(|e| format!("reading {}: {e}", path.display()))?;
                    roots.add_parsable_certificates(certs);
                }
                None => {
                    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
                }
            }
            if roots.is_empty() {
                return Err(
                    "no CA certificates to check the destination's certificate with: set `ca`"
                        .into(),
                );
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(Self {
            endpoint,
            tls,
            headers,
            conn: None,
        })
    }

    /// POSTs `body` (OTLP protobuf) to the base path and `path`; `Ok` on a 2xx answer.
    pub(super) async fn post(&mut self, path: &str, body: Vec<u8>) -> Result<(), PostError> {
        self.post_as(path, "application/x-protobuf", &[], body)
            .await
    }

    /// POSTs `body` of `content_type` with `extra` headers to the base path and
    /// `path`; `Ok` on a 2xx answer.
    pub(crate) async fn post_as(
        &mut self,
        path: &str,
        content_type: &str,
        extra: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<(), PostError> {
        let failed = |e: String| PostError::Failed(e);
        let mut sender = match self.conn.take() {
            Some(s) if !s.is_closed() => s,
            _ => tokio::time::timeout(TIMEOUT, self.connect())
                .await
                .map_err(|_| failed(format!("connecting to {}: timed out", self.endpoint)))??,
        };
        let mut request = Request::post(format!("{}{path}", self.endpoint.base))
            .header(hyper::header::HOST, self.authority())
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header(
                hyper::header::USER_AGENT,
                concat!("logbook/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in self.headers.iter().chain(extra) {
            request = request.header(k.as_str(), v.as_str());
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| failed(format!("making the request: {e}")))?;
        let answer = tokio::time::timeout(TIMEOUT, async {
            sender
                .ready()
                .await
                .map_err(|e| failed(format!("{}: {e}", self.endpoint)))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| failed(format!("{}: {e}", self.endpoint)))?;
            let status = response.status();
            // Only as much of the answer as a message keeps: a destination cannot make
            // the collector hold a large body.
            let body = http_body_util::Limited::new(response.into_body(), 64 << 10)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, PostError>((status, body))
        })
        .await
        .map_err(|_| {
            failed(format!(
                "{}{path}: no answer within {} s",
                self.endpoint,
                TIMEOUT.as_secs()
            ))
        })?;
        let (status, body) = answer?;
        if status.is_success() {
            self.conn = Some(sender);
            return Ok(());
        }
        let text = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY)])
            .trim()
            .to_owned();
        let message = format!("{}{path} answered {status}: {text}", self.endpoint);
        // After a client error the connection carries the next request; after a server
        // error (or a timeout) a new one does.
        if keeps_connection(status) {
            self.conn = Some(sender);
        }
        Err(match status {
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE => PostError::Refused(message),
            _ => PostError::Failed(message),
        })
    }

    fn authority(&self) -> String {
        let e = &self.endpoint;
        if e.host.contains(':') {
            format!("[{}]:{}", e.host, e.port)
        } else {
            format!("{}:{}", e.host, e.port)
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, PostError> {
        let e = &self.endpoint;
        let failed =
            |what: &str, err: &dyn fmt::Display| PostError::Failed(format!("{what} {e}: {err}"));
        let tcp = TcpStream::connect((e.host.as_str(), e.port))
            .await
            .map_err(|err| failed("connecting to", &err))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some(connector) => {
                let name = ServerName::try_from(e.host.clone())
                    .map_err(|err| failed("the host name of", &err))?;
                let tls = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|err| failed("TLS with", &err))?;
                handshake(tls).await
            }
            None => handshake(tcp).await,
        }
        .map_err(|err| failed("HTTP with", &err))
    }
}

/// Whether a connection may carry the next request after this answer.
fn keeps_connection(status: StatusCode) -> bool {
    status.is_client_error() && status != StatusCode::REQUEST_TIMEOUT
}

async fn handshake<S>(io: S) -> Result<SendRequest<Full<Bytes>>, hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e: Endpoint = "http://otel:4318".parse().unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.base.as_str()),
            (false, "otel", 4318, "")
        );
        let e: Endpoint = "https://ingest.example.com/otlp/".parse().unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.port, e.base.as_str()),
            (true, "ingest.example.com", 443, "/otlp")
        );
        let e: Endpoint = "http://[::1]:4318".parse().unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 4318));
        assert_eq!(e.to_string(), "http://[::1]:4318");
        for bad in [
            "otel:4318",
            "http://",
            "http://u:p@h:1",
            "http://h:x",
            "http://h/a?b",
            "ftp://h",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }
}
