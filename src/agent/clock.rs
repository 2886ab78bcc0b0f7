//! The agent's clocks: time comes into the control core as arguments, read from one of these.

/// The loop's clocks: a monotonic one that keeps running across agent restarts within one
/// boot (CLOCK_BOOTTIME in production), and the wall clock for the model's stop/start rules.
pub trait Clock {
    fn now_ns(&self) -> u64;
    fn wall_s(&self) -> u64;
}

/// CLOCK_BOOTTIME and the system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        (t.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(t.tv_nsec as u64)
    }

    fn wall_s(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

/// Tokio's clock (pausable in tests) from an origin, and a fixed wall clock origin.
pub struct TokioClock {
    origin: tokio::time::Instant,
    pub boot_offset_ns: u64,
    pub wall_origin_s: u64,
}

impl TokioClock {
    pub fn new(boot_offset_ns: u64, wall_origin_s: u64) -> Self {
        TokioClock {
            origin: tokio::time::Instant::now(),
            boot_offset_ns,
            wall_origin_s,
        }
    }
}

impl Clock for TokioClock {
    fn now_ns(&self) -> u64 {
        self.boot_offset_ns + self.origin.elapsed().as_nanos() as u64
    }

    fn wall_s(&self) -> u64 {
        self.wall_origin_s + self.origin.elapsed().as_secs()
    }
}
