/*
 * vigil control-loop boundary: the shared-memory snapshot segment.
 *
 * Layout (native endianness, little-endian on every supported target; all times are
 * CLOCK_MONOTONIC nanoseconds):
 *
 *   offset  size  field
 *        0    64  vigil_segment_header   (magic "VIGILSNP", version 1, seq lock at 32)
 *       64  2480  vigil_snapshot
 *
 * Protocol (one writer, any number of readers, nobody ever waits):
 *   writer: seq = odd; release fence; store the snapshot words; seq = even (release).
 *   reader: s1 = seq (acquire); if odd: retry; copy the snapshot words (relaxed atomic
 *           loads); acquire fence; s2 = seq; if s1 != s2: retry. s1 == 0: nothing yet.
 *   The copy then carries a checksum (vigil_checksum) over every byte before `checksum`.
 *
 * vigil_read() implements the reader side. The Rust definition is control/src/snapshot.rs;
 * a test compiles this header and compares every size and offset with it.
 */
#ifndef VIGIL_SNAPSHOT_H
#define VIGIL_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#define VIGIL_MAGIC "VIGILSNP"
#define VIGIL_VERSION 1u
#define VIGIL_MAX_OBJECTS 64
#define VIGIL_MAX_CAMERAS 8

#define VIGIL_FLAG_STALE 1u    /* the last good snapshot, republished */
#define VIGIL_FLAG_DEGRADED 2u /* a camera's result was dropped or degraded */
#define VIGIL_FLAG_REVERTED 4u /* the model was reverted to last-known-good */

typedef struct vigil_object {
    uint32_t track_id;   /* stable track id, never 0 */
    uint16_t class_id;   /* detector class index */
    uint16_t flags;      /* reserved, 0 */
    float confidence;    /* 0..1 */
    float position[3];   /* vehicle frame (x forward, y left, z up), metres */
    float velocity[3];   /* metres per second */
} vigil_object;

typedef struct vigil_camera_status {
    uint64_t last_capture_ns; /* newest frame of this camera in the snapshot; 0 = none */
    uint32_t frames;          /* frames processed since start */
    uint32_t fps_milli;       /* measured rate, millihertz */
} vigil_camera_status;

typedef struct vigil_snapshot {
    uint64_t sequence;          /* 1 for the first snapshot */
    uint64_t capture_ns;        /* oldest contributing capture */
    uint64_t publish_ns;
    uint64_t model_version;
    uint16_t degradation_level; /* 0 = nominal */
    uint16_t flags;             /* VIGIL_FLAG_* */
    uint16_t object_count;
    uint16_t camera_count;
    vigil_camera_status cameras[VIGIL_MAX_CAMERAS];
    vigil_object objects[VIGIL_MAX_OBJECTS];
    uint64_t checksum;          /* vigil_checksum() of the bytes before this field */
} vigil_snapshot;

typedef struct vigil_segment_header {
    char magic[8];           /* "VIGILSNP", not NUL-terminated */
    uint32_t version;        /* VIGIL_VERSION */
    uint32_t header_size;    /* 64 */
    uint32_t snapshot_size;  /* sizeof(vigil_snapshot) */
    uint32_t max_objects;    /* VIGIL_MAX_OBJECTS */
    uint32_t max_cameras;    /* VIGIL_MAX_CAMERAS */
    uint32_t reserved0;
    uint64_t seq;            /* the sequence lock; access atomically only */
    uint64_t reserved[3];
} vigil_segment_header;

_Static_assert(sizeof(vigil_object) == 36, "vigil_object layout");
_Static_assert(sizeof(vigil_camera_status) == 16, "vigil_camera_status layout");
_Static_assert(sizeof(vigil_snapshot) == 2480, "vigil_snapshot layout");
_Static_assert(sizeof(vigil_segment_header) == 64, "vigil_segment_header layout");
_Static_assert(offsetof(vigil_segment_header, seq) == 32, "seq offset");
_Static_assert(sizeof(vigil_snapshot) % 8 == 0, "the seqlock copies whole words");

#define VIGIL_SEGMENT_SIZE (sizeof(vigil_segment_header) + sizeof(vigil_snapshot))

/* FNV-1a over the 64-bit words before `checksum`. */
static inline uint64_t vigil_checksum(const vigil_snapshot *s) {
    const uint64_t *w = (const uint64_t *)(const void *)s;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < offsetof(vigil_snapshot, checksum) / 8; i++) {
        h = (h ^ w[i]) * 0x100000001b3ull;
    }
    return h;
}

enum {
    VIGIL_READ_OK = 0,
    VIGIL_READ_EMPTY = 1,   /* nothing published yet */
    VIGIL_READ_BUSY = 2,    /* every attempt overlapped a write: try next tick */
    VIGIL_READ_CORRUPT = 3, /* consistent copy with a bad checksum */
    VIGIL_READ_LAYOUT = 4,  /* not a segment of this layout */
};

/* Checks the header of a mapped segment. Returns VIGIL_READ_OK or VIGIL_READ_LAYOUT. */
static inline int vigil_check_header(const void *segment) {
    const vigil_segment_header *h = (const vigil_segment_header *)segment;
    for (int i = 0; i < 8; i++) {
        if (h->magic[i] != VIGIL_MAGIC[i]) return VIGIL_READ_LAYOUT;
    }
    if (h->version != VIGIL_VERSION || h->header_size != sizeof(vigil_segment_header) ||
        h->snapshot_size != sizeof(vigil_snapshot) || h->max_objects != VIGIL_MAX_OBJECTS ||
        h->max_cameras != VIGIL_MAX_CAMERAS) {
        return VIGIL_READ_LAYOUT;
    }
    return VIGIL_READ_OK;
}

/* Copies the newest snapshot of a mapped segment into *out, trying up to `attempts`
 * times. Never waits for the writer. */
static inline int vigil_read(const void *segment, vigil_snapshot *out, int attempts) {
    const uint64_t *seq = (const uint64_t *)((const char *)segment + offsetof(vigil_segment_header, seq));
    const uint64_t *src = (const uint64_t *)((const char *)segment + sizeof(vigil_segment_header));
    uint64_t *dst = (uint64_t *)(void *)out;
    for (int a = 0; a < attempts; a++) {
        uint64_t s1 = __atomic_load_n(seq, __ATOMIC_ACQUIRE);
        if (s1 & 1) continue;
        for (size_t i = 0; i < sizeof(vigil_snapshot) / 8; i++) {
            dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        uint64_t s2 = __atomic_load_n(seq, __ATOMIC_RELAXED);
        if (s1 != s2) continue;
        if (s1 == 0) return VIGIL_READ_EMPTY;
        return vigil_checksum(out) == out->checksum ? VIGIL_READ_OK : VIGIL_READ_CORRUPT;
    }
    return VIGIL_READ_BUSY;
}

#endif /* VIGIL_SNAPSHOT_H */
