//! The launch-credit limiter: at most N grants per rolling window on one host (SPEC §3).

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// AWS's figure: 100 launches or starts per rolling 24 h.
pub const DEFAULT_LAUNCH_LIMIT: u32 = 100;
pub const DAY_S: u64 = 24 * 3600;

#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaunchLimiter {
    pub limit: u32,
    pub window_s: u64,
    /// Times (seconds, caller's clock) of the grants still inside the window, oldest first.
    grants: VecDeque<u64>,
    /// Grants refused since this limiter was made (not saved: a count for reports).
    #[serde(skip)]
    refused: u64,
}

impl Default for LaunchLimiter {
    fn default() -> Self {
        LaunchLimiter::new(DEFAULT_LAUNCH_LIMIT, DAY_S)
    }
}

impl LaunchLimiter {
    pub fn new(limit: u32, window_s: u64) -> Self {
        LaunchLimiter {
            limit,
            window_s,
            grants: VecDeque::new(),
            refused: 0,
        }
    }

    /// A limiter that never refuses.
    pub fn unlimited() -> Self {
        LaunchLimiter::new(u32::MAX, DAY_S)
    }

    fn forget_old(&mut self, now_s: u64) {
        while let Some(&t) = self.grants.front() {
            if now_s.saturating_sub(t) >= self.window_s {
                self.grants.pop_front();
            } else {
                break;
            }
        }
    }

    /// Records a grant at `now_s` if fewer than `limit` happened in the window before it.
    pub fn try_grant(&mut self, now_s: u64) -> bool {
        self.forget_old(now_s);
        if (self.grants.len() as u64) < self.limit as u64 {
            self.grants.push_back(now_s);
            true
        } else {
            self.refused += 1;
            false
        }
    }

    /// How many grants [`LaunchLimiter::try_grant`] refused.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Grants left at `now_s`.
    pub fn remaining(&mut self, now_s: u64) -> u32 {
        self.forget_old(now_s);
        self.limit.saturating_sub(self.grants.len() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_beyond_limit_then_recovers_after_window() {
        let mut l = LaunchLimiter::new(3, 100);
        assert!(l.try_grant(0));
        assert!(l.try_grant(10));
        assert!(l.try_grant(20));
        assert!(!l.try_grant(99));
        assert_eq!(l.remaining(99), 0);
        // The grant at 0 leaves the window at 100.
        assert!(l.try_grant(100));
        assert!(!l.try_grant(105));
        assert_eq!(l.remaining(130), 2);
        assert_eq!(l.refused(), 2);
    }
}
