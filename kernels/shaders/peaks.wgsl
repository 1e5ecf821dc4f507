// Head decode, step 1: CenterNet peak extraction (see `plan::HeadSpec`). One invocation per
// (frame, cls, y, x). A peak appends a record to its frame's list:
//   word 0: key = (127 - score) << 24 | (cls * h + y) * w + x   (ascending key = top-K order)
//   word 1: offset x | offset y << 8 | size w << 16 | size h << 24 (raw int8 bytes)
//   word 2: depth (raw int8 byte), word 3: unused.
// The append order is whatever the atomics give; step 2 (topk.wgsl) ranks by key, which is
// unique, so the result does not depend on it.

struct Peaks {
    n: u32, h: u32, w: u32, classes: u32,
    hm_c: u32, hm_ch0: u32, threshold: i32, cap: u32,
    rec_base: u32, total: u32, _a: u32, _b: u32,
    // (channels of the tensor, channel index) for offset x, offset y, size w, size h, depth.
    refs: array<vec4<u32>, 5>,
}

@group(0) @binding(0) var<uniform> p: Peaks;
@group(0) @binding(1) var<storage, read> hm: array<u32>;
@group(0) @binding(2) var<storage, read> t_ox: array<u32>;
@group(0) @binding(3) var<storage, read> t_oy: array<u32>;
@group(0) @binding(4) var<storage, read> t_sw: array<u32>;
@group(0) @binding(5) var<storage, read> t_sh: array<u32>;
@group(0) @binding(6) var<storage, read> t_d: array<u32>;
// Words 0..n: per-frame record counts; from rec_base: cap records of 4 words per frame.
@group(0) @binding(7) var<storage, read_write> out: array<atomic<u32>>;

fn hm_at(n: u32, y: u32, x: u32, cls: u32) -> i32 {
    let i = ((n * p.h + y) * p.w + x) * p.hm_c + p.hm_ch0 + cls;
    return sbyte(hm[i >> 2u], i & 3u);
}

fn ref_index(k: u32, n: u32, y: u32, x: u32) -> u32 {
    return ((n * p.h + y) * p.w + x) * p.refs[k].x + p.refs[k].y;
}

fn ubyte(word: u32, i: u32) -> u32 {
    return (word >> (8u * (i & 3u))) & 0xffu;
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if (t >= p.total) {
        return;
    }
    let x = t % p.w;
    var r = t / p.w;
    let y = r % p.h;
    r = r / p.h;
    let cls = r % p.classes;
    let n = r / p.classes;
    let q = hm_at(n, y, x, cls);
    if (q < p.threshold) {
        return;
    }
    for (var dy = -1; dy <= 1; dy++) {
        for (var dx = -1; dx <= 1; dx++) {
            if (dy == 0 && dx == 0) {
                continue;
            }
            let ny = i32(y) + dy;
            let nx = i32(x) + dx;
            if (ny < 0 || nx < 0 || ny >= i32(p.h) || nx >= i32(p.w)) {
                continue;
            }
            let o = hm_at(n, u32(ny), u32(nx), cls);
            let before = dy < 0 || (dy == 0 && dx < 0);
            if ((before && o >= q) || (!before && o > q)) {
                return;
            }
        }
    }
    let slot = atomicAdd(&out[n], 1u);
    if (slot >= p.cap) {
        return;
    }
    let key = (u32(127 - q) << 24u) | ((cls * p.h + y) * p.w + x);
    let i0 = ref_index(0u, n, y, x);
    let i1 = ref_index(1u, n, y, x);
    let i2 = ref_index(2u, n, y, x);
    let i3 = ref_index(3u, n, y, x);
    let i4 = ref_index(4u, n, y, x);
    let vals = ubyte(t_ox[i0 >> 2u], i0) | (ubyte(t_oy[i1 >> 2u], i1) << 8u)
        | (ubyte(t_sw[i2 >> 2u], i2) << 16u) | (ubyte(t_sh[i3 >> 2u], i3) << 24u);
    let base = p.rec_base + (n * p.cap + slot) * 4u;
    atomicStore(&out[base], key);
    atomicStore(&out[base + 1u], vals);
    atomicStore(&out[base + 2u], ubyte(t_d[i4 >> 2u], i4));
    atomicStore(&out[base + 3u], 0u);
}
