//! What the agent keeps across restarts: saving its state file, and counting how that went.

use super::control::Agent;
use super::state;
use tracing::error;

/// Counters of state saving, for logs and metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct SaveStats {
    pub saves: u64,
    pub failures: u64,
    pub last_success_unix_s: u64,
}

/// Saves the agent's state to its state file now, streamed from the live workloads (no copy of
/// them, no whole body in memory), and counts how it went. A failure is logged, not returned:
/// the agent keeps running and tries again at the next save.
pub fn save(agent: &Agent, wall_s: u64, stats: &mut SaveStats) {
    match state::save_ref(&agent.config.state_dir, &agent.saved_state(wall_s)) {
        Ok(()) => {
            stats.saves += 1;
            stats.last_success_unix_s = wall_s;
        }
        Err(e) => {
            stats.failures += 1;
            error!(error = %e, "state save failed; balances since the last save would be lost on a crash");
        }
    }
}
