/*
 * A control loop in C reading vigil's snapshot segment.
 *
 *   cc -O2 -I control/include control/examples/reader.c -o reader
 *   ./reader /dev/shm/vigil-snapshot [hz=100] [seconds=10]
 *
 * Reads at `hz` for `seconds`, prints one summary line and exits 0 when no read was
 * torn (a consistent copy whose checksum fails), 1 otherwise, 2 on a usage or layout
 * error.
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vigil_snapshot.h"

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SEGMENT [hz] [seconds]\n", argv[0]);
        return 2;
    }
    double hz = argc > 2 ? atof(argv[2]) : 100.0;
    double seconds = argc > 3 ? atof(argv[3]) : 10.0;
    int fd = open(argv[1], O_RDONLY);
    if (fd < 0) {
        perror(argv[1]);
        return 2;
    }
    void *seg = mmap(NULL, VIGIL_SEGMENT_SIZE, PROT_READ, MAP_SHARED, fd, 0);
    if (seg == MAP_FAILED) {
        perror("mmap");
        return 2;
    }
    if (vigil_check_header(seg) != VIGIL_READ_OK) {
        fprintf(stderr, "%s: not a vigil snapshot segment of version %u\n", argv[1], VIGIL_VERSION);
        return 2;
    }
    uint64_t period = (uint64_t)(1e9 / hz);
    uint64_t end = now_ns() + (uint64_t)(seconds * 1e9);
    uint64_t next = now_ns();
    unsigned long ticks = 0, ok = 0, empty = 0, busy = 0, torn = 0, late_ticks = 0;
    uint64_t last_seq = 0, max_age = 0, new_seq = 0;
    vigil_snapshot s;
    while (now_ns() < end) {
        uint64_t t = now_ns();
        if (t > next + period) late_ticks++;
        ticks++;
        switch (vigil_read(seg, &s, 64)) {
        case VIGIL_READ_OK: {
            ok++;
            if (s.sequence > last_seq) new_seq++;
            last_seq = s.sequence;
            uint64_t now = now_ns();
            if (s.publish_ns <= now && now - s.publish_ns > max_age) max_age = now - s.publish_ns;
            break;
        }
        case VIGIL_READ_EMPTY: empty++; break;
        case VIGIL_READ_BUSY: busy++; break;
        default: torn++; break;
        }
        next += period;
        uint64_t n = now_ns();
        if (next > n) {
            struct timespec d = {(time_t)((next - n) / 1000000000ull), (long)((next - n) % 1000000000ull)};
            nanosleep(&d, NULL);
        }
    }
    printf("ticks=%lu ok=%lu empty=%lu busy=%lu torn=%lu new=%lu last_seq=%llu max_age_ns=%llu late_ticks=%lu\n",
           ticks, ok, empty, busy, torn, new_seq, (unsigned long long)last_seq, (unsigned long long)max_age,
           late_ticks);
    munmap(seg, VIGIL_SEGMENT_SIZE);
    close(fd);
    return torn == 0 ? 0 : 1;
}
