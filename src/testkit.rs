//! The test kit: what tests of the agent, the loop, the metrics endpoint and the API share. An
//! agent on the in-memory kernel (`agent::fake`) whose time is tokio's clock, so
//! `start_paused` tests run it in virtual time, and the real loop to drive it. Test-only, so
//! it may reach every layer.

use crate::agent::clock::TokioClock;
use crate::agent::discover::{Discoverer, UnitResolver};
use crate::agent::fake::Fake;
use crate::agent::persist::{SaveStats, Sections};
use crate::agent::{Agent, AgentParts};
use crate::config::{self, Config};
use crate::daemon::event_loop::{run_loop, Inbox, LoopOptions};
use std::path::Path;
use std::sync::Arc;

/// Every unit runs in `system.slice/<unit>`, as systemd places a service by default.
pub struct NoUnits;
impl UnitResolver for NoUnits {
    fn cgroup_of(&mut self, unit: &str) -> Option<String> {
        Some(format!("system.slice/{unit}"))
    }
}

/// A configuration with `state_dir` in `dir` and `text` after the `[agent]` header.
pub fn cfg(text: &str, state_dir: &Path) -> Config {
    let text = format!(
        "[agent]\nstate_dir = {:?}\n{text}",
        state_dir.display().to_string()
    );
    match config::parse(Path::new("test.toml"), &text) {
        Ok(c) => c,
        Err(e) => panic!("test config: {e}"),
    }
}

/// An in-memory kernel with 4 CPUs on tokio's clock.
pub fn fake() -> Fake {
    let origin = tokio::time::Instant::now();
    Fake::new(Arc::new(move || origin.elapsed().as_nanos() as u64), 4)
}

/// The agent of `c` on `fake`, with 4 host CPUs and no cgroups of its own.
pub fn agent(c: &Config, fake: &Fake) -> Agent {
    Agent::new(AgentParts {
        config: c.agent.clone(),
        specs: c.workloads.clone(),
        hierarchy: Box::new(fake.clone()),
        discover: Discoverer::with_units(Box::new(NoUnits)),
        host_cpus: 4,
        own_cgroups: vec![],
        boot_id: "boot-1".into(),
    })
}

/// Runs the real loop on `agent` until `Shutdown`; returns its save counters.
pub async fn run(agent: Agent, inbox: Inbox) -> SaveStats {
    run_with(agent, Sections::new(), inbox).await
}

/// [`run`] with the state file's other sections as restored (the API's).
pub async fn run_with(agent: Agent, sections: Sections, inbox: Inbox) -> SaveStats {
    let clock = TokioClock::new(0, 1_000_000);
    let opts = LoopOptions {
        config_path: None,
        notify: false,
    };
    run_loop(agent, sections, opts, &clock, inbox).await
}
