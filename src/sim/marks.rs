//! What happened during a run, for charts: the trace's events and the spans the workload was
//! stopped or held at its baseline.
//!
//! The engine records these as it runs (`MarkRecorder`), at the exact nanosecond it splits
//! at (a held span starts when the balance reaches zero, not at the end of an output step),
//! so a chart's marks agree with the summary: the held spans add up to `held_at_baseline_s`
//! and, in a run that stays in standard mode, the first starts at `credits_exhausted_at_s`.

use super::trace::Event;
use crate::credit::{Mode, NS_PER_SEC};

/// A trace event at its time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EventMark {
    pub t_s: f64,
    pub event: Event,
}

/// `[start_s, end_s)` of trace time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Span {
    pub start_s: f64,
    pub end_s: f64,
}

/// The marks of one run, in time order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Marks {
    /// Every event of the trace, including those that change nothing (a second `stop`).
    pub events: Vec<EventMark>,
    /// From a `stop` of a running workload to the next `start` (or the end of the trace).
    pub stopped: Vec<Span>,
    /// Running in standard mode at the baseline while demanding more.
    pub held: Vec<Span>,
}

impl Marks {
    /// The mode changes, from `start` (the mode at launch): (new mode, time). Switches to the
    /// mode already in force are left out.
    pub fn mode_changes(&self, start: Mode) -> Vec<(Mode, f64)> {
        let mut mode = start;
        let mut changes = Vec::new();
        for m in &self.events {
            let next = match m.event {
                Event::Standard => Mode::Standard,
                Event::Unlimited => Mode::Unlimited,
                Event::Stop | Event::Start => continue,
            };
            if next != mode {
                changes.push((next, m.t_s));
                mode = next;
            }
        }
        changes
    }
}

/// Builds [`Marks`] in nanoseconds as the engine runs.
#[derive(Debug, Default)]
pub(super) struct MarkRecorder {
    events: Vec<(u64, Event)>,
    stopped: Vec<(u64, u64)>,
    stopped_since: Option<u64>,
    held: Vec<(u64, u64)>,
}

impl MarkRecorder {
    /// `event` was applied at `now`; `running` is the workload's state after it.
    pub(super) fn event(&mut self, now: u64, event: Event, running: bool) {
        self.events.push((now, event));
        match (running, self.stopped_since) {
            (false, None) => self.stopped_since = Some(now),
            (true, Some(since)) => {
                self.stopped.push((since, now));
                self.stopped_since = None;
            }
            _ => {}
        }
    }

    /// The workload was held at its baseline from `now` for `ns`; joins the span before it
    /// when they touch, so how the trace is cut into segments does not show.
    pub(super) fn held(&mut self, now: u64, ns: u64) {
        match self.held.last_mut() {
            Some(last) if last.1 == now => last.1 = now + ns,
            _ => self.held.push((now, now + ns)),
        }
    }

    /// The marks at the end of the trace (`now`): a stop still in force lasts until then.
    pub(super) fn finish(mut self, now: u64) -> Marks {
        if let Some(since) = self.stopped_since.take() {
            self.stopped.push((since, now));
        }
        let secs = |ns: u64| ns as f64 / NS_PER_SEC as f64;
        let spans = |v: Vec<(u64, u64)>| {
            v.into_iter()
                .filter(|(a, b)| b > a)
                .map(|(a, b)| Span {
                    start_s: secs(a),
                    end_s: secs(b),
                })
                .collect()
        };
        Marks {
            events: self
                .events
                .into_iter()
                .map(|(t, event)| EventMark {
                    t_s: secs(t),
                    event,
                })
                .collect(),
            stopped: spans(self.stopped),
            held: spans(self.held),
        }
    }
}
