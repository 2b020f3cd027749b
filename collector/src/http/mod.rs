//! The HTTP listener (`http` in the configuration, `127.0.0.1:7070` by default): OTLP
//! ingest (`otlp`) and health. Composed with the rest of the collector in
//! `crate::serve`; stops like the socket does: no new requests, those in flight
//! finish (their records committed and answered), then it returns.

pub mod budget;
mod otlp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::admission::auth::Authenticator;
use crate::admission::Admission;

/// What bounds HTTP requests.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Largest request body as sent (compressed or not).
    pub max_body_bytes: usize,
    /// Largest request body once decompressed.
    pub max_decoded_bytes: usize,
    /// Most requests handled at once; more wait.
    pub max_requests: usize,
    /// Longest a request may take, body included.
    pub request_timeout: Duration,
    /// Most bytes of memory the ingest requests being read and decoded take, over all
    /// of them: see [`budget`].
    pub budget_bytes: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_decoded_bytes: 16 << 20,
            max_requests: 64,
            request_timeout: Duration::from_secs(30),
            budget_bytes: 64 << 20,
        }
    }
}

/// What every request handler shares.
pub struct HttpContext {
    /// The way into the store.
    pub admission: Admission,
    /// The token check (`Authorization: Bearer`), shared with the socket, and the
    /// count of failures.
    pub auth: Arc<Authenticator>,
    /// Its bounds.
    pub limits: HttpLimits,
    /// The memory of requests being read and decoded.
    pub budget: budget::HttpBudget,
}

impl HttpContext {
    /// The context of requests admitted through `admission`, checked by `auth`, within
    /// `limits`.
    pub fn new(admission: Admission, auth: Arc<Authenticator>, limits: HttpLimits) -> Self {
        Self {
            admission,
            auth,
            limits,
            budget: budget::HttpBudget::new(limits.budget_bytes),
        }
    }
}

/// The bound HTTP listener.
pub struct HttpListener {
    listener: TcpListener,
}

impl HttpListener {
    /// Binds `addr`; a clear error when it is taken. Without a token (`tokens`
    /// false), only a loopback address: anyone who can reach the port could write.
    pub async fn bind(addr: SocketAddr, tokens: bool) -> anyhow::Result<Self> {
        if !tokens && !addr.ip().is_loopback() {
            anyhow::bail!(
                "http = \"{addr}\" is not a loopback address, and no token is set: anyone who can reach it could write records; set token (LOGBOOK_TOKEN), or listen on 127.0.0.1"
            );
        }
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!("binding HTTP {addr} (set http = \"IP:PORT\" in logbook.toml, --http, or --no-http)")
        })?;
        Ok(Self { listener })
    }

    /// The address it listens on (the port chosen, for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` turns true, then finishes the requests in flight.
    pub async fn run(
        self,
        cx: Arc<HttpContext>,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let app = router(cx).into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                while !*stop.borrow_and_update() {
                    if stop.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await
            .context("serving HTTP")
    }
}

/// The routes, inside the limits: the body's size as sent (its size decompressed and
/// its memory are the handlers', `budget`), the time, the requests at once.
fn router(cx: Arc<HttpContext>) -> Router {
    let limits = cx.limits;
    Router::new()
        .route("/v1/traces", post(otlp::traces))
        .route("/v1/logs", post(otlp::logs))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            limits.max_requests,
        ))
        .with_state(cx)
}
