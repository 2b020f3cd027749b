//! `/sessions` (runs grouped by `session_id`, filtered like the runs page, and by any
//! field of the root span: `meta=key=value`) and `/sessions/{id}` (a session read as a
//! transcript: one turn per run, oldest first, its first user message and its final
//! answer, with tokens, cost, latency and errors, and a link into the run).

use askama::Template;
use axum::extract::{Path, RawQuery};
use axum::response::Response;
use logbook_proto::Timestamp;

use super::detail::{cut, messages};
use super::runs::RunForm;
use super::view::{self, choices, link, query, Choice};
use super::{render, Nav, UiError, Viewer};
use crate::http::api::{blocking, run_filter, Params, RUN_KEYS};
use crate::query::RunFilter;
use crate::store::{CallFilter, LlmCall, RunSummary, SessionSummary};

/// Sessions a page lists.
const PAGE: usize = 50;
/// Turns a transcript shows (the latest).
const TURNS: usize = 200;
/// Characters of a turn's message shown.
const TURN_CHARS: usize = 2000;

pub(super) struct SessionRow {
    pub(super) href: String,
    pub(super) id: String,
    pub(super) runs: u64,
    pub(super) errors: u64,
    pub(super) first: String,
    pub(super) last: String,
    pub(super) user: String,
    pub(super) tenant: String,
    pub(super) agent: String,
    pub(super) tokens: String,
    pub(super) cost: String,
}

fn session_href(id: &str) -> String {
    format!("/sessions/{}", view::segment(id))
}

impl SessionRow {
    fn of(s: &SessionSummary) -> Self {
        Self {
            href: session_href(&s.session_id),
            id: s.session_id.clone(),
            runs: s.runs,
            errors: s.errors,
            first: view::time(s.first),
            last: view::time(s.last),
            user: s.user_id.clone().unwrap_or_default(),
            tenant: s.tenant.clone().unwrap_or_default(),
            agent: s.agent.clone().unwrap_or_default(),
            tokens: format!("{}/{}", s.input_tokens, s.output_tokens),
            cost: view::usd(s.cost),
        }
    }
}

#[derive(Template)]
#[template(path = "ui/sessions.html")]
struct SessionsPage {
    nav: Nav,
    form: RunForm,
    ranges: Vec<Choice>,
    statuses: Vec<Choice>,
    rows: Vec<SessionRow>,
    error: String,
    next: String,
}

/// The sessions list.
pub(super) async fn list(viewer: Viewer, RawQuery(q): RawQuery) -> Result<Response, UiError> {
    let viewer = viewer.nav("sessions");
    let mut p = Params::parse(q.as_deref());
    let form = RunForm::read(&p);
    // The page's cursor: `<last activity ns>.<session id>` of the last session shown.
    let before = p.take("before").and_then(|b| {
        b.map(|b| {
            b.split_once('.')
                .and_then(|(ns, id)| Some((Timestamp(ns.parse().ok()?), id.to_owned())))
                .ok_or_else(|| {
                    crate::http::api::ApiError::bad_request(format!(
                        "before: {b:?} is not a page cursor of this list"
                    ))
                })
        })
        .transpose()
    });
    let parsed = before.and_then(|before| {
        let f = run_filter(&mut p)?;
        p.finish(&[RUN_KEYS, &["before"]].concat())?;
        Ok((f, before))
    });
    let (rows, next, error) = match parsed {
        Ok((mut filter, before)) => {
            filter.limit = PAGE;
            let reader = viewer.reader;
            let sessions = blocking(move || reader.sessions(&filter, before.as_ref())).await?;
            let next = if sessions.len() == PAGE {
                sessions.last().map_or_else(String::new, |s| {
                    let mut q = form.query();
                    if !q.is_empty() {
                        q.push('&');
                    }
                    let cursor = format!("{}.{}", s.last.as_nanos(), s.session_id);
                    q.push_str(&query([("before", cursor.as_str())]));
                    link("/sessions", &q)
                })
            } else {
                String::new()
            };
            (
                sessions.iter().map(SessionRow::of).collect(),
                next,
                String::new(),
            )
        }
        Err(e) => (Vec::new(), String::new(), e.parts().1),
    };
    Ok(render(&SessionsPage {
        nav: viewer.nav,
        ranges: choices(view::RANGES, &form.since),
        statuses: choices(view::RUN_STATUSES, &form.status),
        form,
        rows,
        error,
        next,
    }))
}

/// One turn of a transcript.
pub(super) struct Turn {
    pub(super) href: String,
    pub(super) started: String,
    pub(super) status: String,
    pub(super) duration: String,
    pub(super) tokens: String,
    pub(super) cost: String,
    pub(super) errors: u64,
    pub(super) question: String,
    pub(super) answer: String,
    pub(super) name: String,
}

#[derive(Template)]
#[template(path = "ui/session.html")]
struct TranscriptPage {
    nav: Nav,
    id: String,
    turns: Vec<Turn>,
    more: bool,
    runs_href: String,
    tokens: String,
    cost: String,
}

/// The text of the first message of `role` in a chat field.
fn first_text(v: Option<&serde_json::Value>, key: &str, role: &str, last: bool) -> Option<String> {
    let parsed;
    let v = match v? {
        serde_json::Value::String(s) => {
            parsed = serde_json::from_str::<serde_json::Value>(s).ok()?;
            &parsed
        }
        v => v,
    };
    let list = messages(key, v)?;
    let mut it = list.into_iter().filter(|(r, _)| r == role);
    let m = if last { it.next_back() } else { it.next() }?;
    let text =
        m.1.into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join("\n");
    Some(cut(&text, TURN_CHARS).0)
}

fn turn(run: &RunSummary, calls: &[LlmCall]) -> Turn {
    // Calls come newest first: the question is in the oldest, the answer in the newest.
    let question = calls
        .iter()
        .rev()
        .find_map(|c| {
            first_text(
                c.input_messages.as_ref(),
                "gen_ai.input.messages",
                "user",
                false,
            )
        })
        .unwrap_or_default();
    let answer = calls
        .iter()
        .find_map(|c| {
            first_text(
                c.output_messages.as_ref(),
                "gen_ai.output.messages",
                "assistant",
                true,
            )
        })
        .unwrap_or_default();
    Turn {
        href: view::run_href(&run.run_id),
        started: view::time(run.started),
        status: run.status.clone(),
        duration: view::duration(run.duration_ns),
        tokens: format!("{}/{}", run.input_tokens, run.output_tokens),
        cost: view::usd(run.cost),
        errors: run.errors,
        question,
        answer,
        name: run
            .agent
            .clone()
            .or_else(|| run.root_name.clone())
            .unwrap_or_default(),
    }
}

/// A session's transcript.
pub(super) async fn one(viewer: Viewer, Path(id): Path<String>) -> Result<Response, UiError> {
    let viewer = viewer.nav("sessions");
    let reader = viewer.reader;
    let key = id.clone();
    let (turns, more, tokens, cost) = blocking(move || {
        let mut runs = reader.runs(&RunFilter {
            session_id: Some(key),
            limit: TURNS + 1,
            ..RunFilter::default()
        })?;
        let more = runs.len() > TURNS;
        runs.truncate(TURNS);
        runs.reverse();
        let mut turns = Vec::with_capacity(runs.len());
        let (mut tin, mut tout, mut cost) = (0u64, 0u64, None::<f64>);
        for run in &runs {
            let calls = reader.llm_calls(&CallFilter {
                run_id: Some(run.run_id.clone()),
                limit: 100,
                ..CallFilter::default()
            })?;
            tin += run.input_tokens;
            tout += run.output_tokens;
            if let Some(c) = run.cost {
                cost = Some(cost.unwrap_or(0.0) + c);
            }
            turns.push(turn(run, &calls));
        }
        Ok((turns, more, format!("{tin}/{tout}"), view::usd(cost)))
    })
    .await?;
    if turns.is_empty() {
        return Err(UiError::not_found(format!("No runs of session {id:?}.")));
    }
    Ok(render(&TranscriptPage {
        nav: viewer.nav,
        runs_href: link("/runs", &query([("session", id.as_str())])),
        id,
        turns,
        more,
        tokens,
        cost,
    }))
}
