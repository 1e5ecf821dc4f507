//! Clocks: every time-dependent decision in the scheduler reads one through [`Clock`].
//!
//! [`MonotonicClock`] reads CLOCK_MONOTONIC (the same clock as
//! [`rtic_clock::LinuxMonotonic`], the `rtic_monotonic::Monotonic` implementation), and
//! [`VirtualClock`] only moves when a test or the deterministic replay advances it, so a
//! deadline miss can be reproduced to the nanosecond.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use rtic_clock::{Duration, Instant, LinuxMonotonic, TICK_HZ};

/// A source of the current time, in nanoseconds of a monotonic timeline.
///
/// Cheap to call (the hot path reads it several times per job) and never blocking.
pub trait Clock {
    /// The current instant.
    fn now(&self) -> Instant;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }
}

/// CLOCK_MONOTONIC, in nanoseconds since boot (comparable across processes).
#[derive(Debug, Default, Clone, Copy)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::from_ticks(rtic_clock::monotonic_ns())
    }
}

/// A clock that moves only when told to.
///
/// Clones share the same time, so a test can hand one clone to the executor and keep
/// another to advance. Advancing is atomic; the clock never goes backwards.
#[derive(Debug, Clone, Default)]
pub struct VirtualClock {
    ns: Arc<AtomicU64>,
}

impl VirtualClock {
    /// A virtual clock starting at `start`.
    pub fn new(start: Instant) -> Self {
        VirtualClock { ns: Arc::new(AtomicU64::new(start.ticks())) }
    }

    /// Moves the clock forward by `d`; returns the new time.
    pub fn advance(&self, d: Duration) -> Instant {
        let prev = self.ns.fetch_add(d.ticks(), Ordering::AcqRel);
        Instant::from_ticks(prev + d.ticks())
    }

    /// Moves the clock to `t`; a `t` in the past is ignored (the clock is monotonic).
    pub fn set(&self, t: Instant) -> Instant {
        let prev = self.ns.fetch_max(t.ticks(), Ordering::AcqRel);
        Instant::from_ticks(prev.max(t.ticks()))
    }
}

impl Clock for VirtualClock {
    #[inline]
    fn now(&self) -> Instant {
        Instant::from_ticks(self.ns.load(Ordering::Acquire))
    }
}

/// Nanoseconds as a [`Duration`].
#[inline]
pub const fn nanos(ns: u64) -> Duration {
    Duration::from_ticks(ns)
}

/// Microseconds as a [`Duration`].
#[inline]
pub const fn micros(us: u64) -> Duration {
    Duration::from_ticks(us * 1_000)
}

/// Milliseconds as a [`Duration`].
#[inline]
pub const fn millis(ms: u64) -> Duration {
    Duration::from_ticks(ms * 1_000_000)
}

/// Whole seconds as a [`Duration`].
#[inline]
pub const fn secs(s: u64) -> Duration {
    Duration::from_ticks(s * 1_000_000_000)
}

/// `b - a`, or zero when `b` is earlier than `a`.
#[inline]
pub fn since(a: Instant, b: Instant) -> Duration {
    Duration::from_ticks(b.ticks().saturating_sub(a.ticks()))
}

/// Seconds as `f64` (for the governor's physics; decisions stay in integer nanoseconds).
#[inline]
pub fn as_secs_f64(d: Duration) -> f64 {
    d.ticks() as f64 * 1e-9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_by_hand_and_never_back() {
        let c = VirtualClock::new(Instant::from_ticks(1_000));
        let shared = c.clone();
        assert_eq!(c.now().ticks(), 1_000);
        assert_eq!(shared.advance(millis(2)).ticks(), 2_001_000);
        assert_eq!(c.now().ticks(), 2_001_000);
        assert_eq!(c.set(Instant::from_ticks(5)).ticks(), 2_001_000, "set into the past is ignored");
        assert_eq!(c.set(Instant::from_ticks(3_000_000)).ticks(), 3_000_000);
        assert_eq!(shared.now().ticks(), 3_000_000);
    }

    #[test]
    fn monotonic_clock_moves() {
        let c = MonotonicClock;
        let a = c.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(since(a, c.now()) >= millis(2));
        assert_eq!(since(c.now(), a), nanos(0));
    }
}
