//! `/compare?a=RUN&b=RUN`: two runs side by side, their spans aligned by a longest
//! common subsequence over (name, tool, model), so that one extra retry shows as one
//! insertion; the first place they diverge marked (a span only one has, or the same
//! span with other arguments or another outcome); and the differences in duration,
//! tokens, cost and errors.

use askama::Template;
use axum::extract::RawQuery;
use axum::response::Response;
use logbook_proto::genai;
use logbook_proto::{Record, Status};

use super::view::{self, RunRow};
use super::{render, Nav, UiError, Viewer};
use crate::http::api::{blocking, Params};
use crate::store::{find_run, FoundRun, RunSummary, StoreReader};
use crate::views::{RunTree, TreeItem};

/// Records of each run read, at most.
const RECORDS: usize = 20_000;
/// Spans of each run aligned, at most (the alignment is quadratic).
const SPANS: usize = 3_000;

/// A span as compared.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Step {
    pub(super) depth: usize,
    pub(super) name: String,
    pub(super) tool: String,
    pub(super) model: String,
    pub(super) arguments: String,
    pub(super) status: String,
    pub(super) duration: String,
    pub(super) href: String,
}

impl Step {
    fn key(&self) -> (&str, &str, &str) {
        (&self.name, &self.tool, &self.model)
    }

    /// What a reader sees of it in a row.
    pub(super) fn label(&self) -> String {
        let mut s = self.name.clone();
        if !self.tool.is_empty() && !self.name.contains(&self.tool) {
            s.push_str(&format!(" · {}", self.tool));
        }
        if !self.model.is_empty() && !self.name.contains(&self.model) {
            s.push_str(&format!(" · {}", self.model));
        }
        s
    }
}

fn text(r: &Record, key: &str) -> String {
    r.fields
        .get(key)
        .map(|v| match v.as_str() {
            Some(s) => s.to_owned(),
            None => super::detail::value_text(v),
        })
        .unwrap_or_default()
}

/// JSON with its object keys sorted, so that equal arguments compare equal.
fn canonical(s: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(v) => serde_json::to_string(&v).unwrap_or_default(),
        Err(_) => s.to_owned(),
    }
}

/// The spans of a run in tree order (depth first, each level in time order).
fn steps(records: &[Record]) -> Vec<Step> {
    let tree = RunTree::build(records);
    let mut out = Vec::new();
    let mut stack: Vec<(usize, usize)> = tree
        .roots
        .iter()
        .rev()
        .filter_map(|t| match t {
            TreeItem::Span(i) => Some((*i, 0)),
            TreeItem::Event(_) => None,
        })
        .collect();
    while let Some((i, depth)) = stack.pop() {
        if out.len() >= SPANS {
            break;
        }
        let s = &tree.spans[i];
        let Some(r) = s.record() else { continue };
        let model = [genai::REQUEST_MODEL, genai::RESPONSE_MODEL]
            .iter()
            .map(|k| text(r, k))
            .find(|m| !m.is_empty())
            .unwrap_or_default();
        out.push(Step {
            depth,
            name: r.name.to_string(),
            tool: text(r, genai::TOOL_NAME),
            model,
            arguments: canonical(&text(r, genai::TOOL_CALL_ARGUMENTS)),
            status: match s.end {
                None => "running".into(),
                Some(e) if e.status == Some(Status::Error) => "error".into(),
                Some(_) => "ok".into(),
            },
            duration: view::duration(s.end.and_then(|e| e.duration_ns)),
            href: format!("/records/{}", r.id),
        });
        for child in s.children.iter().rev() {
            if let TreeItem::Span(c) = child {
                stack.push((*c, depth + 1));
            }
        }
    }
    out
}

/// One row of the alignment.
pub(super) struct Pair {
    pub(super) left: Option<Step>,
    pub(super) right: Option<Step>,
    /// `same`, `changed` (same span, other arguments or outcome), `only-a`, `only-b`.
    pub(super) class: &'static str,
    /// The first row that is not `same`.
    pub(super) diverges: bool,
    /// What differs, in words.
    pub(super) note: String,
}

/// Aligns `a` and `b` by a longest common subsequence of their keys.
pub(super) fn align(a: &[Step], b: &[Step]) -> Vec<Pair> {
    let (n, m) = (a.len(), b.len());
    // lcs[i][j]: the LCS length of a[i..] and b[j..].
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    let at = |i: usize, j: usize| i * (m + 1) + j;
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[at(i, j)] = if a[i].key() == b[j].key() {
                lcs[at(i + 1, j + 1)] + 1
            } else {
                lcs[at(i + 1, j)].max(lcs[at(i, j + 1)])
            };
        }
    }
    let mut rows = Vec::with_capacity(n.max(m));
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i].key() == b[j].key() {
            let mut notes = Vec::new();
            if a[i].arguments != b[j].arguments {
                notes.push("other arguments");
            }
            if a[i].status != b[j].status {
                notes.push("another outcome");
            }
            rows.push(Pair {
                class: if notes.is_empty() { "same" } else { "changed" },
                note: notes.join(", "),
                left: Some(a[i].clone()),
                right: Some(b[j].clone()),
                diverges: false,
            });
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[at(i, j + 1)] >= lcs[at(i + 1, j)]) {
            rows.push(Pair {
                left: None,
                right: Some(b[j].clone()),
                class: "only-b",
                diverges: false,
                note: "only in B".into(),
            });
            j += 1;
        } else {
            rows.push(Pair {
                left: Some(a[i].clone()),
                right: None,
                class: "only-a",
                diverges: false,
                note: "only in A".into(),
            });
            i += 1;
        }
    }
    if let Some(first) = rows.iter_mut().find(|r| r.class != "same") {
        first.diverges = true;
    }
    rows
}

/// A difference of the summaries.
pub(super) struct Delta {
    pub(super) label: &'static str,
    pub(super) a: String,
    pub(super) b: String,
    pub(super) diff: String,
}

fn deltas(a: &RunSummary, b: &RunSummary) -> Vec<Delta> {
    let signed = |x: f64, unit: &dyn Fn(f64) -> String| {
        if x == 0.0 {
            "=".to_owned()
        } else if x > 0.0 {
            format!("+{}", unit(x))
        } else {
            format!("−{}", unit(-x))
        }
    };
    let count = |x: f64| format!("{x}");
    let ns = |x: f64| view::duration(Some(x as u64));
    let usd = |x: f64| view::usd(Some(x));
    let n = |v: u64| v as f64;
    let mut out = vec![Delta {
        label: "duration",
        a: view::duration(a.duration_ns),
        b: view::duration(b.duration_ns),
        diff: match (a.duration_ns, b.duration_ns) {
            (Some(x), Some(y)) => signed(y as f64 - x as f64, &ns),
            _ => "-".into(),
        },
    }];
    for (label, x, y) in [
        ("spans", a.spans, b.spans),
        ("errors", a.errors, b.errors),
        ("LLM calls", a.llm_calls, b.llm_calls),
        ("tool calls", a.tool_calls, b.tool_calls),
        ("input tokens", a.input_tokens, b.input_tokens),
        ("output tokens", a.output_tokens, b.output_tokens),
    ] {
        out.push(Delta {
            label,
            a: x.to_string(),
            b: y.to_string(),
            diff: signed(n(y) - n(x), &count),
        });
    }
    out.push(Delta {
        label: "cost",
        a: view::usd(a.cost),
        b: view::usd(b.cost),
        diff: match (a.cost, b.cost) {
            (Some(x), Some(y)) => signed(y - x, &usd),
            _ => "-".into(),
        },
    });
    out
}

#[derive(Template)]
#[template(path = "ui/compare.html")]
struct ComparePage {
    nav: Nav,
    a_id: String,
    b_id: String,
    a: Option<RunRow>,
    b: Option<RunRow>,
    deltas: Vec<Delta>,
    rows: Vec<Pair>,
    same_agent: bool,
    error: String,
    cut: bool,
}

fn load(
    reader: &dyn StoreReader,
    id: &str,
) -> Result<Result<(RunSummary, Vec<Record>), String>, crate::store::StoreError> {
    let run = match find_run(reader, id)? {
        FoundRun::One(run) => *run,
        FoundRun::Several(keys) => {
            return Ok(Err(format!(
                "trace {id} holds {} runs: {}",
                keys.len(),
                keys.join(", ")
            )))
        }
        FoundRun::None => return Ok(Err(format!("no run {id:?}"))),
    };
    let records = reader.run_records(&run.run_id, RECORDS)?;
    Ok(Ok((run, records)))
}

/// Two runs side by side.
pub(super) async fn compare(viewer: Viewer, RawQuery(q): RawQuery) -> Result<Response, UiError> {
    let viewer = viewer.nav("runs");
    let mut p = Params::parse(q.as_deref());
    let a_id = p.take("a")?.unwrap_or_default();
    let b_id = p.take("b")?.unwrap_or_default();
    p.finish(&["a", "b"])?;
    let mut page = ComparePage {
        nav: viewer.nav,
        a_id: a_id.clone(),
        b_id: b_id.clone(),
        a: None,
        b: None,
        deltas: Vec::new(),
        rows: Vec::new(),
        same_agent: true,
        error: String::new(),
        cut: false,
    };
    if a_id.is_empty() || b_id.is_empty() {
        page.error = "Give two runs: A and B (run ids or trace ids).".into();
        return Ok(render(&page));
    }
    let reader = viewer.reader;
    let loaded = blocking(move || {
        let a = load(reader.as_ref(), &a_id)?;
        let b = load(reader.as_ref(), &b_id)?;
        Ok((a, b))
    })
    .await?;
    match loaded {
        (Ok((ra, a)), Ok((rb, b))) => {
            let (sa, sb) = (steps(&a), steps(&b));
            page.cut = sa.len() >= SPANS || sb.len() >= SPANS;
            page.rows = align(&sa, &sb);
            page.deltas = deltas(&ra, &rb);
            page.same_agent = ra.agent == rb.agent;
            page.a = Some(RunRow::of(&ra));
            page.b = Some(RunRow::of(&rb));
        }
        (Err(e), _) | (_, Err(e)) => page.error = format!("Cannot compare: {e}."),
    }
    Ok(render(&page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, tool: &str, args: &str) -> Step {
        Step {
            depth: 0,
            name: name.into(),
            tool: tool.into(),
            model: String::new(),
            arguments: canonical(args),
            status: "ok".into(),
            duration: String::new(),
            href: String::new(),
        }
    }

    #[test]
    fn one_extra_retry_is_one_insertion() {
        let a = [
            step("run", "", ""),
            step("chat", "", ""),
            step("tool", "search", r#"{"q":1,"n":2}"#),
            step("chat", "", ""),
        ];
        let b = [
            step("run", "", ""),
            step("chat", "", ""),
            step("chat", "", ""),
            step("tool", "search", r#"{"n":2,"q":1}"#),
            step("chat", "", ""),
        ];
        let rows = align(&a, &b);
        let classes: Vec<&str> = rows.iter().map(|r| r.class).collect();
        assert_eq!(
            classes.iter().filter(|c| **c == "only-b").count(),
            1,
            "{classes:?}"
        );
        assert_eq!(
            classes.iter().filter(|c| **c == "same").count(),
            4,
            "{classes:?}"
        );
        assert_eq!(rows.iter().filter(|r| r.diverges).count(), 1);
    }

    #[test]
    fn other_arguments_are_a_change_where_they_diverge() {
        let a = [step("run", "", ""), step("tool", "search", r#"{"q":"a"}"#)];
        let b = [step("run", "", ""), step("tool", "search", r#"{"q":"b"}"#)];
        let rows = align(&a, &b);
        assert_eq!(rows[1].class, "changed");
        assert!(rows[1].diverges);
        assert_eq!(rows[1].note, "other arguments");
    }
}
