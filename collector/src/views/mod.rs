//! The derived views, as pure functions of records: what a run is and what its records
//! add to it ([`run`]), what an LLM or tool call is ([`call`]), and a run's span tree
//! ([`tree`]). Stores keep the first two current at ingest; readers draw the third.

mod batch;
pub mod call;
pub mod run;
pub mod tree;

pub use batch::BatchViews;
pub use call::{recompute_cost, CallRow, CallTotals};
pub use run::{derive, run_key, RunDelta, RunKey};
pub use tree::{RunTree, SpanNode, TreeItem};
