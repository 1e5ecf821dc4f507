//! CLOCK_MONOTONIC as an [`rtic_monotonic::Monotonic`].
//!
//! The `scheduler` crate forbids `unsafe` code. `rtic_monotonic::Monotonic` declares an
//! `unsafe fn reset`, and implementing it counts as unsafe code for the lint, so the
//! implementation lives in this small crate. It contains no `unsafe` block: `reset` is a
//! no-op because CLOCK_MONOTONIC cannot be reset.
//!
//! Time is nanoseconds of CLOCK_MONOTONIC (the Linux clock that is not affected by
//! wall-clock jumps), read through `rustix` (vDSO, no system call on common kernels). The
//! same values are written into the control snapshot, so a reader in another process can
//! compare them with its own `clock_gettime(CLOCK_MONOTONIC)`.
#![deny(unsafe_code)]

use rustix::time::{ClockId, clock_gettime};

/// One tick is one nanosecond.
pub const TICK_HZ: u32 = 1_000_000_000;

/// A point on CLOCK_MONOTONIC, nanoseconds.
pub type Instant = fugit::TimerInstantU64<TICK_HZ>;

/// A span of CLOCK_MONOTONIC, nanoseconds.
pub type Duration = fugit::TimerDurationU64<TICK_HZ>;

/// Reads CLOCK_MONOTONIC in nanoseconds.
#[inline]
pub fn monotonic_ns() -> u64 {
    let ts = clock_gettime(ClockId::Monotonic);
    // CLOCK_MONOTONIC is never negative; the conversion saturates rather than wraps.
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// CLOCK_MONOTONIC with an RTIC-style compare register kept in software.
///
/// On a microcontroller the compare register raises an interrupt; here the owner polls
/// [`LinuxMonotonic::compare_reached`] (or sleeps until [`LinuxMonotonic::compare`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxMonotonic {
    compare: Option<Instant>,
    enabled: bool,
}

impl LinuxMonotonic {
    /// A clock with no compare value armed.
    pub const fn new() -> Self {
        LinuxMonotonic { compare: None, enabled: true }
    }

    /// The armed compare value, if any.
    pub fn compare(&self) -> Option<Instant> {
        self.compare
    }

    /// True when a compare value is armed, the timer is enabled and the clock has passed it.
    pub fn compare_reached(&self) -> bool {
        self.enabled && self.compare.is_some_and(|c| Instant::from_ticks(monotonic_ns()) >= c)
    }
}

impl rtic_monotonic::Monotonic for LinuxMonotonic {
    type Instant = Instant;
    type Duration = Duration;

    fn now(&mut self) -> Instant {
        Instant::from_ticks(monotonic_ns())
    }

    fn set_compare(&mut self, instant: Instant) {
        self.compare = Some(instant);
    }

    fn clear_compare_flag(&mut self) {
        self.compare = None;
    }

    fn zero() -> Instant {
        Instant::from_ticks(0)
    }

    // The trait declares `reset` unsafe for hardware timers; nothing here needs it.
    #[allow(unsafe_code)]
    unsafe fn reset(&mut self) {
        // CLOCK_MONOTONIC cannot be reset: forget the compare value only.
        self.compare = None;
    }

    fn enable_timer(&mut self) {
        self.enabled = true;
    }

    fn disable_timer(&mut self) {
        self.enabled = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtic_monotonic::Monotonic;

    #[test]
    fn monotonic_never_goes_back_and_matches_std() {
        let mut m = LinuxMonotonic::new();
        let mut last = m.now();
        for _ in 0..10_000 {
            let t = m.now();
            assert!(t >= last);
            last = t;
        }
        // std's Instant is CLOCK_MONOTONIC on Linux: an interval measured by both agrees.
        let s0 = std::time::Instant::now();
        let a = m.now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = m.now();
        let s = s0.elapsed().as_nanos() as u64;
        let ours = (b - a).ticks();
        assert!(ours >= 20_000_000, "slept 20 ms but the clock moved {ours} ns");
        assert!(ours <= s, "clock moved {ours} ns, std measured {s} ns around it");
    }

    #[test]
    fn compare_register_in_software() {
        let mut m = LinuxMonotonic::new();
        assert!(!m.compare_reached());
        let now = m.now();
        m.set_compare(now + Duration::millis(5));
        assert!(!m.compare_reached());
        std::thread::sleep(std::time::Duration::from_millis(6));
        assert!(m.compare_reached());
        m.disable_timer();
        assert!(!m.compare_reached());
        m.enable_timer();
        m.clear_compare_flag();
        assert!(!m.compare_reached());
        assert_eq!(LinuxMonotonic::zero().ticks(), 0);
    }
}
