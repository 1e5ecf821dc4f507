//! Shadow evaluation: champion vs challenger on the same frame, on the vehicle.
//!
//! The executor runs a challenger plan on sampled frames in spare budget and calls
//! [`ShadowCompare::compare`] with both detection lists; the result becomes two events
//! (disagreements, confidence shift) for the aggregator. Matching is greedy by IoU within
//! a class, allocation-free, over at most [`MAX_DETECTIONS`] detections a side.

use crate::event::{Event, EventKind};

/// Most detections a side that take part in matching; any beyond count as disagreements.
pub const MAX_DETECTIONS: usize = 256;

/// What the comparison needs from a detection (the pipeline's type implements this).
pub trait ShadowDetection {
    /// Class id.
    fn class(&self) -> u16;
    /// Confidence in `[0, 1]`.
    fn confidence(&self) -> f32;
    /// Box as `[x0, y0, x1, y1]` in any consistent unit.
    fn bbox(&self) -> [f32; 4];
}

/// A plain detection for callers without their own type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShadowDet {
    /// Class id.
    pub class: u16,
    /// Confidence in `[0, 1]`.
    pub confidence: f32,
    /// `[x0, y0, x1, y1]`.
    pub bbox: [f32; 4],
}

impl ShadowDetection for ShadowDet {
    fn class(&self) -> u16 {
        self.class
    }
    fn confidence(&self) -> f32 {
        self.confidence
    }
    fn bbox(&self) -> [f32; 4] {
        self.bbox
    }
}

/// Intersection over union of two `[x0, y0, x1, y1]` boxes (0 for empty or invalid boxes).
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let area = |r: [f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = area(a) + area(b) - inter;
    if union > 0.0 && union.is_finite() { inter / union } else { 0.0 }
}

/// Result of comparing one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShadowResult {
    /// Detections of either side without a match in the other.
    pub disagreements: u32,
    /// Detections considered (both sides).
    pub compared: u32,
    /// Matched pairs.
    pub matched: u32,
    /// Mean confidence shift (challenger minus champion) over matched pairs, in 1/10000.
    pub mean_shift_e4: Option<i32>,
}

impl ShadowResult {
    /// The events this comparison produces: one `ShadowFrame`, plus one
    /// `ShadowConfidenceShift` when any pair matched.
    pub fn events(&self, timestamp_ns: u64, camera: u8, challenger_variant: u8) -> impl Iterator<Item = Event> {
        let frame = Event {
            timestamp_ns,
            value: self.disagreements as i64,
            aux: self.compared,
            kind: EventKind::ShadowFrame,
            camera,
            variant: challenger_variant,
        };
        let shift = self.mean_shift_e4.map(|s| Event {
            timestamp_ns,
            value: s as i64,
            aux: self.matched,
            kind: EventKind::ShadowConfidenceShift,
            camera,
            variant: challenger_variant,
        });
        std::iter::once(frame).chain(shift)
    }
}

/// Champion/challenger comparator.
#[derive(Clone, Copy, Debug)]
pub struct ShadowCompare {
    /// Minimum IoU for two same-class detections to match.
    pub iou_threshold: f32,
}

impl Default for ShadowCompare {
    fn default() -> Self {
        Self { iou_threshold: 0.5 }
    }
}

impl ShadowCompare {
    /// Compares the champion's and the challenger's detections of one frame.
    /// Greedy: each champion detection (in order) takes the unmatched same-class challenger
    /// detection of highest IoU at or above the threshold. No allocation.
    pub fn compare<A: ShadowDetection, B: ShadowDetection>(&self, champion: &[A], challenger: &[B]) -> ShadowResult {
        let champ = &champion[..champion.len().min(MAX_DETECTIONS)];
        let chall = &challenger[..challenger.len().min(MAX_DETECTIONS)];
        let mut taken = [0u64; MAX_DETECTIONS / 64];
        let mut matched = 0u32;
        let mut shift_sum = 0i64;
        for a in champ {
            let mut best: Option<(usize, f32)> = None;
            for (j, b) in chall.iter().enumerate() {
                if taken[j / 64] & (1 << (j % 64)) != 0 || b.class() != a.class() {
                    continue;
                }
                let o = iou(a.bbox(), b.bbox());
                if o >= self.iou_threshold && best.is_none_or(|(_, bo)| o > bo) {
                    best = Some((j, o));
                }
            }
            if let Some((j, _)) = best {
                taken[j / 64] |= 1 << (j % 64);
                matched += 1;
                shift_sum += crate::event::confidence_e4(b_conf(&chall[j])) as i64 - crate::event::confidence_e4(a.confidence()) as i64;
            }
        }
        let compared = (champion.len() + challenger.len()) as u32;
        ShadowResult {
            disagreements: compared - 2 * matched,
            compared,
            matched,
            mean_shift_e4: (matched > 0).then(|| (shift_sum / matched as i64) as i32),
        }
    }
}

fn b_conf<B: ShadowDetection>(b: &B) -> f32 {
    b.confidence()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class: u16, confidence: f32, x: f32) -> ShadowDet {
        ShadowDet { class, confidence, bbox: [x, 0.0, x + 10.0, 10.0] }
    }

    #[test]
    fn identical_lists_agree() {
        let a = [det(1, 0.9, 0.0), det(2, 0.5, 50.0)];
        let r = ShadowCompare::default().compare(&a, &a);
        assert_eq!(r, ShadowResult { disagreements: 0, compared: 4, matched: 2, mean_shift_e4: Some(0) });
    }

    #[test]
    fn class_mismatch_and_missing_boxes_disagree() {
        let champ = [det(1, 0.9, 0.0), det(2, 0.5, 50.0), det(3, 0.7, 100.0)];
        // same box, other class; shifted by 2 (IoU 8/12 = 0.67, matches) with +0.1 confidence
        let chall = [det(5, 0.9, 0.0), det(2, 0.6, 52.0)];
        let r = ShadowCompare::default().compare(&champ, &chall);
        assert_eq!(r.matched, 1);
        assert_eq!(r.disagreements, 3);
        assert_eq!(r.mean_shift_e4, Some(1_000));
        let evs: Vec<_> = r.events(7, 2, 1).collect();
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].kind, EventKind::ShadowFrame);
        assert_eq!(evs[0].value, 3);
        assert_eq!(evs[1].value, 1_000);
    }

    #[test]
    fn low_iou_does_not_match() {
        let r = ShadowCompare::default().compare(&[det(1, 0.9, 0.0)], &[det(1, 0.9, 6.0)]);
        assert_eq!(r.matched, 0);
        assert_eq!(r.disagreements, 2);
        assert_eq!(r.events(0, 0, 0).count(), 1);
    }
}
