//! The hot-path side: [`MetricsTap::record`] pushes an [`Event`] into a bounded
//! single-producer ring and never waits.
//!
//! `record` does one wait-free `rtrb` push. When the ring is full the event is
//! dropped and a shared `AtomicU64` is incremented: no allocation, no lock, no
//! system call and no clock read (the event already carries its timestamp).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::event::Event;

/// Hot-path handle: one per producing thread (the ring is single-producer).
pub struct MetricsTap {
    producer: rtrb::Producer<Event>,
    dropped: Arc<AtomicU64>,
}

/// Consumer side of one tap's ring, drained by the aggregator thread.
pub struct TapReader {
    consumer: rtrb::Consumer<Event>,
    dropped: Arc<AtomicU64>,
}

/// A new tap and its reader over a ring of `capacity` events (allocated here, once).
pub fn tap_ring(capacity: usize) -> (MetricsTap, TapReader) {
    let (producer, consumer) = rtrb::RingBuffer::new(capacity.max(1));
    let dropped = Arc::new(AtomicU64::new(0));
    (MetricsTap { producer, dropped: dropped.clone() }, TapReader { consumer, dropped })
}

impl MetricsTap {
    /// Records `event`; returns `false` when the ring was full and the event was dropped
    /// (and counted). Wait-free.
    #[inline]
    pub fn record(&mut self, event: Event) -> bool {
        match self.producer.push(event) {
            Ok(()) => true,
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Free slots in the ring right now (for simulations that pace themselves).
    #[inline]
    pub fn free_slots(&self) -> usize {
        self.producer.slots()
    }

    /// Events dropped so far because the ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the reading side is gone (the service stopped).
    pub fn is_abandoned(&self) -> bool {
        self.producer.is_abandoned()
    }
}

impl TapReader {
    /// Moves every event now in the ring into `f`; returns how many.
    pub fn drain(&mut self, mut f: impl FnMut(Event)) -> usize {
        let n = self.consumer.slots();
        if n == 0 {
            return 0;
        }
        let Ok(chunk) = self.consumer.read_chunk(n) else { return 0 };
        let mut count = 0;
        for e in chunk {
            f(e);
            count += 1;
        }
        count
    }

    /// Events dropped so far on this tap because its ring was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the tap (producer) is gone.
    pub fn is_abandoned(&self) -> bool {
        self.consumer.is_abandoned()
    }
}
