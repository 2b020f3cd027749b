//! The web UI at `/`: server-rendered pages from askama templates (`templates/ui`,
//! checked at compile time, every value HTML-escaped unless a template says
//! otherwise, which none does for user text), a stylesheet and a little JavaScript,
//! embedded in the binary (`assets`). Every control is a link or a form that works
//! without script; the script draws the waterfall, follows the live tail and loads
//! details in place.
//!
//! Pages read the store the way the API does: through the caller's scoped reader
//! ([`Viewer`]), so a viewer's token shows its tenant's runs and records only.
//! Without a token configured, local browsers are served as they are by the API;
//! with tokens, `/sign-in` turns one into a session cookie (`session`).
//!
//! `runs` (runs, one run and its waterfall), `records` (the explorer, one record),
//! `sign_in`, `assets`, `view` (what the templates show: formatted rows).

mod admin;
mod assets;
mod audit;
mod calls;
mod chart;
mod compare;
mod detail;
mod errors;
mod performance;
mod records;
mod runs;
pub mod session;
mod sessions;
mod sign_in;
mod view;

use std::sync::Arc;

use askama::Template;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use super::{HttpContext, Refused};
use crate::admission::auth::Caller;
use crate::store::{scoped, StoreError, StoreReader};

/// The UI's routes.
pub fn routes() -> Router<Arc<HttpContext>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/runs") }))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::one))
        .route("/runs/{id}/feedback", post(runs::feedback))
        .route("/compare", get(compare::compare))
        .route("/calls", get(calls::list))
        .route("/calls/costs", get(calls::costs))
        .route("/charts/runs", get(chart::runs))
        .route("/charts/records", get(chart::records))
        .route("/charts/calls", get(chart::calls))
        .route("/charts/spans", get(chart::spans))
        .route("/performance", get(performance::show))
        .route("/errors", get(errors::list))
        .route(
            "/errors/{fingerprint}",
            get(errors::one).post(errors::change),
        )
        .route("/sessions", get(sessions::list))
        .route("/sessions/{id}", get(sessions::one))
        .route("/records", get(records::list))
        .route("/records/{id}", get(records::one))
        .route("/records/{id}/value", get(records::value))
        .route("/audit", get(audit::show))
        .route("/maintenance", get(admin::show))
        .route("/maintenance/purge", post(admin::purge))
        .route("/maintenance/dsar", post(admin::dsar))
        .route("/sign-in", get(sign_in::form).post(sign_in::submit))
        .route("/sign-out", post(sign_in::sign_out))
        .route("/assets/{name}", get(assets::serve))
        .layer(axum::middleware::from_fn(security_headers))
}

/// What every page's frame shows: who is signed in, where the reader is, the CSRF
/// token of its forms.
pub struct Nav {
    /// The caller's name.
    pub who: String,
    /// Its scope, as `tenant=…` (empty for everything).
    pub scope: String,
    /// It may administer (the maintenance page).
    pub admin: bool,
    /// It signed in (and may sign out).
    pub signed_in: bool,
    /// The CSRF token of its forms.
    pub csrf: String,
    /// The page: runs, sessions, records, calls, audit, maintenance.
    pub active: &'static str,
}

impl Nav {
    /// Whether `page` is the one shown.
    pub fn is(&self, page: &str) -> bool {
        self.active == page
    }
}

/// The caller of a page and the store as it may read it; without one, the page
/// answers with the sign-in page (tokens configured) or a refusal.
pub struct Viewer {
    /// Who asks.
    pub caller: Caller,
    /// The store, as far as the caller may see it.
    pub reader: Arc<dyn StoreReader>,
    /// The page frame.
    pub nav: Nav,
}

impl Viewer {
    /// The frame of page `active`.
    pub fn nav(mut self, active: &'static str) -> Self {
        self.nav.active = active;
        self
    }
}

impl FromRequestParts<Arc<HttpContext>> for Viewer {
    type Rejection = UiError;

    async fn from_request_parts(
        parts: &mut Parts,
        cx: &Arc<HttpContext>,
    ) -> Result<Self, Self::Rejection> {
        let caller = match cx.reader_caller(&parts.headers) {
            Ok(caller) => caller,
            Err(Refused::Unauthenticated) => {
                return Err(UiError::SignIn(
                    parts
                        .uri
                        .path_and_query()
                        .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
                ))
            }
            Err(Refused::NotLocal) => {
                return Err(UiError::page(
                    StatusCode::FORBIDDEN,
                    "Not from this machine",
                    "Without a token the collector serves browsers on this machine only, at http://127.0.0.1 or http://localhost, from its own pages; and a session serves no request another site sends. Create a token (logbook token create) to serve others.",
                ))
            }
        };
        if !caller.may_read() {
            return Err(UiError::page(
                StatusCode::FORBIDDEN,
                "This token may not read",
                format!(
                    "The token {:?} may only send records (role {}); sign in with a viewer's or an admin's.",
                    caller.name,
                    caller.role.as_str()
                ),
            ));
        }
        let reader = scoped(Arc::clone(&cx.reader), caller.visibility.clone());
        let mut scope = Vec::new();
        if let Some(t) = &caller.visibility.tenant {
            scope.push(format!("tenant={t}"));
        }
        if let Some(u) = &caller.visibility.user_id {
            scope.push(format!("user={u}"));
        }
        let nav = Nav {
            who: caller.name.clone(),
            scope: scope.join(" "),
            admin: caller.is_admin(),
            signed_in: !caller.is_anonymous(),
            csrf: cx.sessions.csrf(&parts.headers),
            active: "",
        };
        Ok(Self {
            caller,
            reader,
            nav,
        })
    }
}

/// The fields of a form a page posted, once its CSRF token (`csrf`) is checked.
pub struct Form(Vec<(String, String)>);

impl Form {
    /// The fields of `body`; a refusal unless they carry the request's CSRF token.
    pub fn checked(cx: &HttpContext, headers: &HeaderMap, body: &[u8]) -> Result<Self, UiError> {
        let fields: Vec<(String, String)> = form_urlencoded::parse(body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let csrf = fields
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str());
        if !cx.sessions.csrf_ok(headers, csrf) {
            return Err(UiError::page(
                StatusCode::FORBIDDEN,
                "Expired form",
                "This form is out of date or came from another site; reload the page and try again.",
            ));
        }
        Ok(Self(fields))
    }

    /// The value of field `key`, trimmed; `None` when absent or empty.
    pub fn get(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }
}

/// Why a page is not shown.
#[derive(Debug)]
pub enum UiError {
    /// Sign in first, then come back to this path.
    SignIn(String),
    /// A page saying what went wrong.
    Page {
        /// Its status.
        status: StatusCode,
        /// Its title.
        title: String,
        /// One or two sentences.
        message: String,
    },
}

impl UiError {
    /// An error page.
    pub fn page(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Page {
            status,
            title: title.into(),
            message: message.into(),
        }
    }

    /// 400: the request cannot be answered as asked.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::page(StatusCode::BAD_REQUEST, "Cannot show this", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::page(StatusCode::NOT_FOUND, "Not found", message)
    }
}

impl From<super::api::ApiError> for UiError {
    fn from(e: super::api::ApiError) -> Self {
        let (status, message) = e.parts();
        let title = match status {
            StatusCode::BAD_REQUEST => "Cannot show this",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::FORBIDDEN => "Not allowed",
            StatusCode::SERVICE_UNAVAILABLE => "Busy",
            _ => "Something went wrong",
        };
        Self::page(status, title, message)
    }
}

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        super::api::ApiError::from(e).into()
    }
}

#[derive(Template)]
#[template(path = "ui/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            Self::SignIn(next) => {
                let target = format!(
                    "/sign-in?next={}",
                    form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                Redirect::to(&target).into_response()
            }
            Self::Page {
                status,
                title,
                message,
            } => {
                let mut r = render(&ErrorPage {
                    title: &title,
                    message: &message,
                });
                *r.status_mut() = status;
                r
            }
        }
    }
}

/// A rendered page (or fragment).
pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "A page did not render.");
            (StatusCode::INTERNAL_SERVER_ERROR, "the page did not render").into_response()
        }
    }
}

/// The answer to a path that names nothing: the API's JSON error under `/api/`, a page
/// elsewhere.
pub async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        return super::api::not_found().into_response();
    }
    let mut r = UiError::not_found("No page here. The runs are at /runs.").into_response();
    set_security_headers(r.headers_mut());
    r
}

/// The Content-Security-Policy of every page: scripts and styles from this origin
/// only (no inline script, no inline style attribute), no plugins, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn set_security_headers(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    set_security_headers(response.headers_mut());
    response
}
