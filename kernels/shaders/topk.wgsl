// Head decode, step 2: top-K by rank. Each record of a frame counts the records with a
// smaller key (keys are unique) and, when its rank is below K, writes itself at that rank.
// Output: words 0..n the per-frame candidate counts (min(peaks, K)); from out_base, K records
// of 4 words per frame, in order.

struct TopK {
    n: u32, cap: u32, k: u32, rec_base: u32,
    out_base: u32, total: u32, _a: u32, _b: u32,
}

@group(0) @binding(0) var<uniform> p: TopK;
@group(0) @binding(1) var<storage, read> peaks: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if (t >= p.total) {
        return;
    }
    let n = t / p.cap;
    let s = t % p.cap;
    let count = min(peaks[n], p.cap);
    if (s == 0u) {
        out[n] = min(count, p.k);
    }
    if (s >= count) {
        return;
    }
    let base = p.rec_base + n * p.cap * 4u;
    let key = peaks[base + s * 4u];
    var rank = 0u;
    for (var j = 0u; j < count; j++) {
        rank += select(0u, 1u, peaks[base + j * 4u] < key);
    }
    if (rank < p.k) {
        let o = p.out_base + (n * p.k + rank) * 4u;
        out[o] = key;
        out[o + 1u] = peaks[base + s * 4u + 1u];
        out[o + 2u] = peaks[base + s * 4u + 2u];
        out[o + 3u] = 0u;
    }
}
