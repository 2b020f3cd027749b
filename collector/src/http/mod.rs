//! The HTTP listener (`http` in the configuration, `127.0.0.1:7070` by default): OTLP
//! ingest (`otlp`), the read API (`api`) and health. Composed with the rest of the collector in
//! `crate::serve`; stops like the socket does: no new requests, those in flight
//! finish (their records committed and answered), then it returns.

pub mod api;
pub mod budget;
pub mod feedback;
mod health;
mod otlp;
pub mod ui;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt as _;
use tower_http::compression::CompressionLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::{debug, warn};

use crate::admission::auth::{Authenticator, Caller};
use crate::admission::feed::Feed;
use crate::admission::Admission;
use crate::config::{self, Config};
use crate::store::StoreReader;

/// How long requests in flight may take to finish once the collector stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Exports running at once, at most: each holds a thread and a read transaction for
/// as long as its client reads.
const MAX_EXPORTS: usize = 4;

/// What bounds HTTP requests.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Largest request body as sent (compressed or not).
    pub max_body_bytes: usize,
    /// Largest request body once decompressed.
    pub max_decoded_bytes: usize,
    /// Most requests handled at once; more wait.
    pub max_requests: usize,
    /// Longest a request may take, body included (a live stream's events aside).
    pub request_timeout: Duration,
    /// Longest a client may take to send a request's headers, or to begin its next
    /// request on a kept-alive connection.
    pub header_timeout: Duration,
    /// Most connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Most live streams open at once.
    pub max_streams: usize,
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
            request_timeout: Duration::from_secs(config::HTTP_REQUEST_TIMEOUT_SECS as u64),
            header_timeout: Duration::from_secs(config::HTTP_HEADER_TIMEOUT_SECS as u64),
            max_connections: config::HTTP_MAX_CONNECTIONS as usize,
            max_streams: 64,
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
    /// The store, unscoped: handlers read it through `api::Access`, which scopes it
    /// to the caller.
    reader: Arc<dyn StoreReader>,
    /// Commits as they happen, for live streams.
    pub feed: Feed,
    /// What the collector runs with (verify's keys, purge's policies).
    pub config: Arc<Config>,
    /// Turns true when the collector stops: live streams end.
    pub shutdown: watch::Receiver<bool>,
    /// Live streams open.
    pub streams: Arc<tokio::sync::Semaphore>,
    /// Exports running.
    pub exports: Arc<tokio::sync::Semaphore>,
    /// The listener is on a loopback address: without any token configured, local
    /// clients are served without one.
    pub loopback: bool,
    /// Browser sessions and their CSRF tokens.
    pub sessions: ui::session::Sessions,
}

/// What a collector's HTTP side is built from.
pub struct HttpParts {
    /// The way into the store.
    pub admission: Admission,
    /// The token check.
    pub auth: Arc<Authenticator>,
    /// The store's reading side.
    pub reader: Arc<dyn StoreReader>,
    /// The post-commit feed.
    pub feed: Feed,
    /// The configuration.
    pub config: Arc<Config>,
    /// Turns true when the collector stops.
    pub shutdown: watch::Receiver<bool>,
    /// Whether the listener is on a loopback address.
    pub loopback: bool,
    /// The key browser sessions are signed with.
    pub session_key: [u8; 32],
}

/// Why a request has no caller.
#[derive(Debug)]
pub enum Refused {
    /// No valid token, and one is needed.
    Unauthenticated,
    /// No token is configured, but the request does not come from this machine's
    /// clients: a web page's (its `Origin`), or one that reached a loopback listener
    /// under another name (DNS rebinding).
    NotLocal,
}

impl HttpContext {
    /// Who made a request with these headers: the holder of its bearer token; or,
    /// with no token configured on a loopback listener, a local client (its `Host` a
    /// loopback name, its `Origin`, if any, too), so that a web page the operator
    /// visits cannot use the collector through the browser.
    pub fn caller(&self, headers: &axum::http::HeaderMap) -> Result<Caller, Refused> {
        let caller = self
            .auth
            .authenticate(api::bearer(headers), self.loopback)
            .ok_or(Refused::Unauthenticated)?;
        if caller.is_anonymous() && !is_local(headers) {
            return Err(Refused::NotLocal);
        }
        Ok(caller)
    }
}

impl HttpContext {
    /// [`HttpContext::caller`], or, for a request without a bearer token, the holder
    /// of the browser session its cookie names (`ui::session`): for the pages and the
    /// read API, never for ingest. A cookie is refused when a browser says another
    /// site (another port of this host included) sent the request.
    pub fn reader_caller(&self, headers: &axum::http::HeaderMap) -> Result<Caller, Refused> {
        if api::bearer(headers).is_none() && ui::session::cookie(headers).is_some() {
            let other_site = headers
                .get("sec-fetch-site")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|s| s == "same-site" || s == "cross-site");
            if other_site {
                return Err(Refused::NotLocal);
            }
            if let Some(caller) = self.sessions.caller(headers, &self.auth) {
                return Ok(caller);
            }
        }
        self.caller(headers)
    }
}

/// Whether a request names this machine: its `Host` a loopback name or address, its
/// `Origin`, if it has one, as well, and no browser says another site sent it.
fn is_local(headers: &axum::http::HeaderMap) -> bool {
    let host_is_local = |authority: &str| {
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
        };
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    };
    let header = |name| headers.get(name).map(|v| v.to_str().unwrap_or("\u{0}"));
    let host_ok = header(axum::http::header::HOST).is_none_or(host_is_local);
    // A browser says when a page of another site made the request (even one that
    // carries no Origin, such as an image's).
    let not_cross_site = header(axum::http::HeaderName::from_static("sec-fetch-site"))
        .is_none_or(|site| site == "same-origin" || site == "none");
    let origin_ok = header(axum::http::header::ORIGIN).is_none_or(|origin| {
        origin
            .split_once("://")
            .is_some_and(|(_, authority)| host_is_local(authority.trim_end_matches('/')))
    });
    host_ok && origin_ok && not_cross_site
}

impl HttpContext {
    /// The context of requests made of `parts`, within `limits`.
    pub fn new(parts: HttpParts, limits: HttpLimits) -> Self {
        Self {
            admission: parts.admission,
            auth: parts.auth,
            limits,
            budget: budget::HttpBudget::new(limits.budget_bytes),
            reader: parts.reader,
            feed: parts.feed,
            config: parts.config,
            shutdown: parts.shutdown,
            streams: Arc::new(Semaphore::new(limits.max_streams)),
            exports: Arc::new(Semaphore::new(MAX_EXPORTS)),
            loopback: parts.loopback,
            sessions: ui::session::Sessions::new(parts.session_key),
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
    /// (A listener elsewhere never serves a request without a token, even once every
    /// token is revoked: see [`HttpContext::caller`].)
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
    ///
    /// Each connection is HTTP/1.1 with a header timeout (which also closes a
    /// kept-alive connection that starts no new request in time); at most
    /// `max_connections` are open, and more wait in the listen queue: a flood of
    /// slow clients costs a bounded number of tasks and buffers.
    pub async fn run(
        self,
        cx: Arc<HttpContext>,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let limits = cx.limits;
        let app = router(cx);
        let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        let graceful = GracefulShutdown::new();
        // Every connection's task: what is left of them once the grace runs out is
        // aborted, so that none outlives the stop (each holds the admission handle
        // the writer waits on).
        let mut connections = tokio::task::JoinSet::new();
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true);
        loop {
            let permit = tokio::select! {
                p = Arc::clone(&open).acquire_owned() => p.context("the connection limit closed")?,
                () = stopping(&mut stop) => break,
            };
            let (stream, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: wait, rather than spin.
                        warn!(error = %e, "Could not accept an HTTP connection.");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = stopping(&mut stop) => break,
            };
            let _ = stream.set_nodelay(true);
            let service = TowerToHyperService::new(app.clone().map_request(
                move |request: axum::http::Request<hyper::body::Incoming>| {
                    let mut request = request.map(axum::body::Body::new);
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                },
            ));
            let connection = graceful.watch(http1.serve_connection(TokioIo::new(stream), service));
            // Finished connections leave the set as new ones come.
            while connections.try_join_next().is_some() {}
            connections.spawn(async move {
                if let Err(e) = connection.await {
                    debug!(%peer, error = %e, "HTTP connection ended with an error.");
                }
                drop(permit);
            });
        }
        // Stop accepting; let the requests in flight finish (live streams end on
        // `stop` by themselves), then close every connection.
        drop(self.listener);
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            warn!(
                "HTTP connections still open {}s after the stop (a client not reading its answer); closing them.",
                SHUTDOWN_GRACE.as_secs()
            );
            connections.abort_all();
        }
        while connections.join_next().await.is_some() {}
        Ok(())
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
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
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .merge(api::routes().layer(CompressionLayer::new()))
        .merge(ui::routes().layer(CompressionLayer::new()))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .merge(api::long_routes())
        .fallback(ui::not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&cx),
            health::count_request,
        ))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            limits.max_requests,
        ))
        .with_state(cx)
}
