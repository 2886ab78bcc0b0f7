//! `burstd simulate`: replays a utilisation trace through the pure credit model.
//!
//! The trace ([`trace`]) is a list of segments, each a duration at a constant *demanded*
//! utilisation, optionally preceded by an event (stop, start, mode switch). The engine
//! ([`engine`]) runs them through [`crate::credit::Bucket`] exactly: inside a segment it splits
//! at the instant the balance reaches zero and at output-step boundaries, so the result does
//! not depend on how the trace was cut into segments. It delivers what the credit rules allow
//! (standard mode: held at baseline at zero; unlimited: always the demand) and reports
//! CloudWatch-like steps and a summary, which [`report`] prints and [`plot`] draws.
//!
//! Nothing here but `report`'s writers and `plot` touches I/O; the engine is pure.

pub mod engine;
pub mod plot;
pub mod report;
pub mod trace;

pub use engine::{simulate, Comparison, SimConfig, SimError, SimResult, Step, Summary};
pub use trace::{parse_trace, Event, Segment, TraceError};

#[cfg(test)]
mod tests;
