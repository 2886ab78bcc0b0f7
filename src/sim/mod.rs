//! `burstd simulate`: replays a utilisation trace through the pure credit model.
//!
//! The trace ([`trace`]) is a list of segments, each a duration at a constant *demanded*
//! utilisation, optionally preceded by an event (stop, start, mode switch). The engine
//! ([`engine`]) runs them through [`crate::credit::Bucket`] exactly: inside a segment it splits
//! at the instant the balance reaches zero and at output-step boundaries, so the result does
//! not depend on how the trace was cut into segments. It delivers what the credit rules allow
//! (standard mode: held at baseline at zero; unlimited: always the demand) and reports
//! CloudWatch-like steps and a summary, which [`report`] prints and [`plot`] draws, with
//! [`marks`] (events, stopped and held spans) for the chart.
//!
//! Nothing here but [`trace::load_trace`], `report`'s writers and [`plot::write_svg`] touches
//! I/O; the engine is pure.
//!
//! ```text
//! burstd simulate --profile t2.micro --trace config/example-trace.csv
//! burstd simulate --profile t3.large --trace - --format json \
//!     --compare-hourly-price 0.096 --instance-hourly-price 0.0832 < trace.csv
//! ```
//!
//! Choices where the issue left room: an event exactly on a step boundary counts in the step
//! it opens (a stop or switch after the trace's last moment closes the last step instead);
//! `--launch-credits` replaces the amount at every start that grants launch credits, under
//! the same limit of grants per rolling 24 h (`--launch-credit-limit`) as the profile's; the
//! end of a trace is not a stop, so surplus still owed is reported (`final_surplus_balance`,
//! `surplus_owed_usd`), not charged; the cost comparison counts it, as AWS bills it at the
//! next stop or the end of the billing period.

pub mod advise;
pub mod engine;
pub mod import;
pub mod marks;
pub mod plot;
pub mod prices;
pub mod report;
pub mod trace;

pub use engine::{simulate, Comparison, SimConfig, SimError, SimResult, Step, Summary};
pub use marks::{EventMark, Marks, Span};
pub use trace::{parse_trace, Event, Segment, TraceError};

#[cfg(test)]
mod tests;
