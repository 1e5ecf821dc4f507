//! Preallocated, 128-byte aligned frame buffers and the per-camera rings that hand them over.
//!
//! A camera source owns a [`FrameSender`], the consumer (the executor) a [`FrameReceiver`];
//! both share one camera's [`FramePool`]. Frames travel as [`FrameHandle`]s (a slot index
//! plus sequence number and capture time) through an `rtrb` SPSC ring, exactly as a DMA
//! engine would hand over a filled buffer: pixels are never copied on the way. The
//! consumer hands every slot it is done with back through a second ring, so the producer
//! knows which buffers it may hand out again.
//!
//! Pools are filled at start-up (a pre-rendered loop or a pre-decoded log) and are
//! read-only afterwards, so sharing them between threads needs no lock and no `unsafe`.
//! Nothing in [`FrameSender::send`] or [`FrameReceiver::take_newest`] allocates; the
//! `no_alloc` integration test proves it with a counting global allocator.

use std::sync::Arc;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Alignment of every frame buffer, bytes (a cache-line pair; what pinned DMA buffers get).
pub const FRAME_ALIGN: usize = 128;

/// One aligned block of pixel memory.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(128))]
struct Block([u8; FRAME_ALIGN]);

/// One frame buffer: `len` bytes starting on a [`FRAME_ALIGN`] boundary.
pub struct FrameBuf {
    blocks: Box<[Block]>,
    len: usize,
}

impl FrameBuf {
    /// A zero-filled buffer of `len` bytes.
    pub fn zeroed(len: usize) -> Self {
        FrameBuf { blocks: vec![Block([0; FRAME_ALIGN]); len.div_ceil(FRAME_ALIGN)].into_boxed_slice(), len }
    }

    /// The frame's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.blocks.as_bytes()[..self.len]
    }

    /// The frame's bytes, writable (start-up only: pools are frozen once shared).
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut self.blocks.as_mut_bytes()[..self.len]
    }
}

impl std::fmt::Debug for FrameBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameBuf").field("len", &self.len).finish()
    }
}

/// Pixel layout of the frames in a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameFormat {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl FrameFormat {
    /// Bytes of one packed RGB8 frame.
    pub fn rgb8_len(&self) -> usize {
        self.width as usize * self.height as usize * 3
    }
}

/// The frame buffers of one camera, filled at start-up.
#[derive(Debug)]
pub struct FramePool {
    format: FrameFormat,
    slots: Vec<FrameBuf>,
}

impl FramePool {
    /// `count` zeroed RGB8 buffers of `format`.
    pub fn new(format: FrameFormat, count: usize) -> Self {
        FramePool { format, slots: (0..count).map(|_| FrameBuf::zeroed(format.rgb8_len())).collect() }
    }

    /// Builds a pool from already-filled buffers (each must be `format.rgb8_len()` bytes).
    pub fn from_slots(format: FrameFormat, slots: Vec<FrameBuf>) -> Self {
        debug_assert!(slots.iter().all(|s| s.len == format.rgb8_len()));
        FramePool { format, slots }
    }

    /// Pixel layout of every slot.
    pub fn format(&self) -> FrameFormat {
        self.format
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when the pool has no slot.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The bytes of slot `slot`, if it exists.
    pub fn slot(&self, slot: u32) -> Option<&[u8]> {
        self.slots.get(slot as usize).map(FrameBuf::as_bytes)
    }

    /// Slot `slot` writable (start-up only, before the pool is shared).
    pub fn slot_mut(&mut self, slot: u32) -> Option<&mut [u8]> {
        self.slots.get_mut(slot as usize).map(FrameBuf::as_mut_bytes)
    }
}

/// A filled buffer handed from a source to the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHandle {
    /// Slot in the camera's [`FramePool`].
    pub slot: u32,
    /// Capture sequence number of the camera (from 0; gaps mean lost frames).
    pub sequence: u64,
    /// Capture time, nanoseconds on the source's timeline.
    pub timestamp_ns: u64,
}

/// Why a source could not hand over a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendError {
    /// The ring is full: the consumer is behind (the frame is dropped, as a camera drops it).
    RingFull,
    /// The slot is still held by the consumer: no free buffer for this capture.
    SlotBusy,
    /// The slot index is outside the pool.
    NoSuchSlot,
}

/// The producer end of one camera's ring.
#[derive(Debug)]
pub struct FrameSender {
    ring: rtrb::Producer<FrameHandle>,
    returns: rtrb::Consumer<u32>,
    in_flight: Vec<bool>,
    pool: Arc<FramePool>,
}

impl FrameSender {
    /// Hands slot `slot` to the consumer. Never allocates, never blocks.
    pub fn send(&mut self, handle: FrameHandle) -> Result<(), SendError> {
        self.reclaim();
        let Some(busy) = self.in_flight.get_mut(handle.slot as usize) else {
            return Err(SendError::NoSuchSlot);
        };
        if *busy {
            return Err(SendError::SlotBusy);
        }
        match self.ring.push(handle) {
            Ok(()) => {
                *busy = true;
                Ok(())
            }
            Err(_) => Err(SendError::RingFull),
        }
    }

    /// Takes back every slot the consumer has returned.
    pub fn reclaim(&mut self) {
        while let Ok(slot) = self.returns.pop() {
            if let Some(b) = self.in_flight.get_mut(slot as usize) {
                *b = false;
            }
        }
    }

    /// Whether `slot` is currently out with the consumer (as of the last reclaim).
    pub fn is_in_flight(&self, slot: u32) -> bool {
        self.in_flight.get(slot as usize).copied().unwrap_or(false)
    }

    /// The pool this sender hands out.
    pub fn pool(&self) -> &Arc<FramePool> {
        &self.pool
    }
}

/// Counters of one receiver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Frames taken as the newest.
    pub taken: u64,
    /// Frames that arrived but were superseded by a newer one before the consumer looked.
    pub superseded: u64,
}

/// A frame the consumer holds: its handle and its pixels.
#[derive(Clone, Copy, Debug)]
pub struct FrameRef<'a> {
    /// The handle as the source sent it.
    pub handle: FrameHandle,
    /// Pixel layout.
    pub format: FrameFormat,
    /// Packed RGB8 pixels, 128-byte aligned.
    pub pixels: &'a [u8],
}

/// The consumer end of one camera's ring.
#[derive(Debug)]
pub struct FrameReceiver {
    ring: rtrb::Consumer<FrameHandle>,
    returns: rtrb::Producer<u32>,
    held: Option<FrameHandle>,
    pool: Arc<FramePool>,
    stats: ReceiverStats,
}

impl FrameReceiver {
    /// Takes the newest frame in the ring, returning every older one (and the previously held
    /// one) to the producer. `None` when nothing new arrived (the held frame stays held).
    /// Never allocates, never blocks.
    pub fn take_newest(&mut self) -> Option<FrameRef<'_>> {
        let mut newest = None;
        while let Ok(h) = self.ring.pop() {
            if let Some(older) = newest.replace(h) {
                self.stats.superseded += 1;
                self.give_back(older.slot);
            }
        }
        let h = newest?;
        if let Some(prev) = self.held.replace(h) {
            self.give_back(prev.slot);
        }
        self.stats.taken += 1;
        self.held()
    }

    /// Takes the oldest frame in the ring, leaving newer ones queued. The slot stays out
    /// until [`FrameReceiver::return_slot`] hands it back (the consumer may hold several
    /// frames, e.g. one queued and one running). Never allocates, never blocks.
    pub fn pop_oldest(&mut self) -> Option<FrameHandle> {
        let h = self.ring.pop().ok()?;
        self.stats.taken += 1;
        Some(h)
    }

    /// Hands back a slot taken with [`FrameReceiver::pop_oldest`].
    pub fn return_slot(&mut self, slot: u32) {
        self.give_back(slot);
    }

    /// Frames waiting in the ring.
    pub fn queued(&self) -> usize {
        self.ring.slots()
    }

    /// Pixels of `slot` in this camera's pool.
    pub fn pixels(&self, slot: u32) -> Option<&[u8]> {
        self.pool.slot(slot)
    }

    /// The frame currently held, if any.
    pub fn held(&self) -> Option<FrameRef<'_>> {
        let h = self.held?;
        Some(FrameRef { handle: h, format: self.pool.format(), pixels: self.pool.slot(h.slot)? })
    }

    /// Returns the held frame to the producer.
    pub fn release(&mut self) {
        if let Some(h) = self.held.take() {
            self.give_back(h.slot);
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ReceiverStats {
        self.stats
    }

    /// The pool the frames live in.
    pub fn pool(&self) -> &Arc<FramePool> {
        &self.pool
    }

    fn give_back(&mut self, slot: u32) {
        // The return ring has one place per slot and a slot is out at most once, so this push
        // cannot fail; were it ever to, the producer would see the slot as busy and drop a frame.
        let _ = self.returns.push(slot);
    }
}

/// One camera's ring pair over `pool`, with room for `depth` frames in flight.
pub fn frame_channel(pool: Arc<FramePool>, depth: usize) -> (FrameSender, FrameReceiver) {
    let (ring_tx, ring_rx) = rtrb::RingBuffer::new(depth.max(1));
    let (ret_tx, ret_rx) = rtrb::RingBuffer::new(pool.len().max(1));
    let sender = FrameSender { ring: ring_tx, returns: ret_rx, in_flight: vec![false; pool.len()], pool: pool.clone() };
    let receiver = FrameReceiver { ring: ring_rx, returns: ret_tx, held: None, pool, stats: ReceiverStats::default() };
    (sender, receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> Arc<FramePool> {
        let mut p = FramePool::new(FrameFormat { width: 5, height: 3 }, n);
        for s in 0..n as u32 {
            p.slot_mut(s).unwrap().fill(s as u8 + 1);
        }
        Arc::new(p)
    }

    fn h(slot: u32, sequence: u64) -> FrameHandle {
        FrameHandle { slot, sequence, timestamp_ns: sequence * 10 }
    }

    #[test]
    fn buffers_are_128_byte_aligned_and_sized() {
        for len in [1usize, 127, 128, 129, 640 * 384 * 3] {
            let b = FrameBuf::zeroed(len);
            assert_eq!(b.as_bytes().as_ptr() as usize % FRAME_ALIGN, 0);
            assert_eq!(b.as_bytes().len(), len);
        }
        let p = pool(3);
        for s in 0..3 {
            assert_eq!(p.slot(s).unwrap().as_ptr() as usize % FRAME_ALIGN, 0);
            assert_eq!(p.slot(s).unwrap().len(), 45);
        }
    }

    #[test]
    fn consumer_takes_newest_and_returns_the_rest() {
        let (mut tx, mut rx) = frame_channel(pool(4), 4);
        tx.send(h(0, 0)).unwrap();
        tx.send(h(1, 1)).unwrap();
        tx.send(h(2, 2)).unwrap();
        let f = rx.take_newest().unwrap();
        assert_eq!(f.handle, h(2, 2));
        assert!(f.pixels.iter().all(|&b| b == 3), "pixels are the slot's, not a copy of another");
        assert_eq!(rx.stats(), ReceiverStats { taken: 1, superseded: 2 });
        tx.reclaim();
        assert!(!tx.is_in_flight(0) && !tx.is_in_flight(1));
        assert!(tx.is_in_flight(2), "held frame stays out");
        // Nothing new: the held frame stays.
        assert!(rx.take_newest().is_none());
        assert_eq!(rx.held().unwrap().handle.slot, 2);
        rx.release();
        tx.reclaim();
        assert!(!tx.is_in_flight(2));
    }

    #[test]
    fn a_held_slot_cannot_be_sent_again_and_a_full_ring_drops() {
        let (mut tx, mut rx) = frame_channel(pool(3), 2);
        tx.send(h(0, 0)).unwrap();
        rx.take_newest().unwrap();
        assert_eq!(tx.send(h(0, 1)), Err(SendError::SlotBusy));
        tx.send(h(1, 2)).unwrap();
        tx.send(h(2, 3)).unwrap();
        assert_eq!(tx.send(h(1, 4)), Err(SendError::SlotBusy));
        assert_eq!(tx.send(h(7, 4)), Err(SendError::NoSuchSlot));
        // Take the newest: slot 1 superseded and returned, slot 0 (previously held) returned.
        assert_eq!(rx.take_newest().unwrap().handle.slot, 2);
        tx.send(h(0, 5)).unwrap();
        tx.send(h(1, 6)).unwrap();
        // Ring of depth 2 is now full; slot 2 is held anyway.
        assert_eq!(tx.send(h(2, 7)), Err(SendError::SlotBusy));
        rx.release();
        assert_eq!(tx.send(h(2, 7)), Err(SendError::RingFull));
    }
}
