//! A run's records as a span tree: spans (a start and an end record each) under their
//! parents, events under the span they happened in, each level in time order. Built
//! in O(n log n) from the run's records, whatever order they come in; a span whose
//! parent is not among them (it never arrived, or lives in another run) is a root of
//! the tree. The CLI draws it; the HTTP API and the web UI draw the same tree.

use std::collections::HashMap;

use logbook_proto::{Kind, Record, SpanId, Status, Timestamp};

use super::run::STATUS_RUNNING;

/// One span of the tree.
#[derive(Debug)]
pub struct SpanNode<'a> {
    /// The span.
    pub span_id: SpanId,
    /// Its start record, if stored.
    pub start: Option<&'a Record>,
    /// Its end record, once it ended.
    pub end: Option<&'a Record>,
    /// Spans and events inside it, in time order.
    pub children: Vec<TreeItem<'a>>,
}

impl<'a> SpanNode<'a> {
    /// The record that describes it best: the end (final fields), else the start.
    pub fn record(&self) -> Option<&'a Record> {
        self.end.or(self.start)
    }

    /// When it started.
    pub fn started(&self) -> Timestamp {
        match (self.start, self.end) {
            (Some(s), _) => s.ts,
            (None, Some(e)) => Timestamp(
                e.ts.as_nanos()
                    .saturating_sub(e.duration_ns.map_or(0, |d| d as i64)),
            ),
            (None, None) => Timestamp(0),
        }
    }

    /// `running`, `ok` or `error`.
    pub fn status_word(&self) -> &'static str {
        match self.end {
            Some(e) => e.status.unwrap_or(Status::Ok).as_str(),
            None => STATUS_RUNNING,
        }
    }
}

/// A place in the tree.
#[derive(Clone, Copy, Debug)]
pub enum TreeItem<'a> {
    /// A span: an index into [`RunTree::spans`].
    Span(usize),
    /// An event.
    Event(&'a Record),
}

/// A run's span tree.
#[derive(Debug, Default)]
pub struct RunTree<'a> {
    /// Every span, in no particular order; items refer to them by index.
    pub spans: Vec<SpanNode<'a>>,
    /// The top level, in time order.
    pub roots: Vec<TreeItem<'a>>,
}

impl<'a> RunTree<'a> {
    /// The tree of `records`.
    pub fn build(records: &'a [Record]) -> Self {
        let mut index: HashMap<SpanId, usize> = HashMap::new();
        let mut spans: Vec<SpanNode<'a>> = Vec::new();
        for r in records {
            let (Kind::SpanStart | Kind::SpanEnd, Some(id)) = (r.kind, r.span_id) else {
                continue;
            };
            let i = *index.entry(id).or_insert_with(|| {
                spans.push(SpanNode {
                    span_id: id,
                    start: None,
                    end: None,
                    children: Vec::new(),
                });
                spans.len() - 1
            });
            if r.kind == Kind::SpanStart {
                spans[i].start = Some(r);
            } else {
                spans[i].end = Some(r);
            }
        }
        let mut roots = Vec::new();
        for i in 0..spans.len() {
            let parent = spans[i]
                .record()
                .and_then(|r| r.parent_span_id)
                .and_then(|p| index.get(&p).copied())
                .filter(|p| *p != i);
            match parent {
                Some(p) => spans[p].children.push(TreeItem::Span(i)),
                None => roots.push(TreeItem::Span(i)),
            }
        }
        for r in records.iter().filter(|r| r.kind == Kind::Event) {
            match r.span_id.and_then(|s| index.get(&s).copied()) {
                Some(i) => spans[i].children.push(TreeItem::Event(r)),
                None => roots.push(TreeItem::Event(r)),
            }
        }
        let mut tree = Self { spans, roots };
        let starts: Vec<Timestamp> = tree.spans.iter().map(SpanNode::started).collect();
        let key = |item: &TreeItem<'_>| match item {
            TreeItem::Span(i) => (starts[*i], 0),
            TreeItem::Event(r) => (r.ts, 1),
        };
        for node in &mut tree.spans {
            node.children.sort_by_key(key);
        }
        tree.roots.sort_by_key(key);
        tree
    }

    /// The span at `i`.
    pub fn span(&self, i: usize) -> &SpanNode<'a> {
        &self.spans[i]
    }
}

#[cfg(test)]
mod tests {
    use logbook_proto::{InstanceId, Level, RecordId, TraceId};

    use super::*;

    fn rec(n: u64, kind: Kind, ts: i64, span: u64, parent: Option<u64>) -> Record {
        let mut r = Record::new(
            RecordId::new(InstanceId::from_random(1), n),
            Timestamp(ts),
            kind,
            Level::Info,
            "s",
        );
        r.trace_id = TraceId::from_random(1, 1);
        r.span_id = Some(SpanId::from_random(span));
        r.parent_span_id = parent.map(SpanId::from_random);
        r
    }

    #[test]
    fn nests_spans_and_events_in_time_order_whatever_the_input_order() {
        // Span ids are odd: from_random sets the low bit.
        let mut records = vec![
            rec(1, Kind::SpanStart, 10, 1, None),
            rec(2, Kind::SpanStart, 30, 5, Some(1)),
            rec(3, Kind::SpanStart, 20, 3, Some(1)),
            rec(4, Kind::Event, 25, 3, None),
            rec(5, Kind::SpanEnd, 40, 3, Some(1)),
            rec(6, Kind::SpanEnd, 50, 1, None),
            // A span whose parent never arrived: a root of its own.
            rec(7, Kind::SpanEnd, 60, 9, Some(7)),
        ];
        records.reverse();
        let tree = RunTree::build(&records);
        assert_eq!(tree.roots.len(), 2);
        let TreeItem::Span(top) = tree.roots[0] else {
            panic!("a span first")
        };
        let top = tree.span(top);
        assert_eq!(top.span_id, SpanId::from_random(1));
        assert_eq!(top.status_word(), "ok");
        let kids: Vec<SpanId> = top
            .children
            .iter()
            .map(|c| match c {
                TreeItem::Span(i) => tree.span(*i).span_id,
                TreeItem::Event(_) => unreachable!(),
            })
            .collect();
        assert_eq!(kids, [SpanId::from_random(3), SpanId::from_random(5)]);
        let TreeItem::Span(second) = top.children[0] else {
            unreachable!()
        };
        assert!(matches!(
            tree.span(second).children[..],
            [TreeItem::Event(_)]
        ));
        let TreeItem::Span(orphan) = tree.roots[1] else {
            panic!("the orphan")
        };
        assert_eq!(tree.span(orphan).span_id, SpanId::from_random(9));
    }
}
