// Elementwise table lookup: out = table[x + 128]. The 256-entry table is 64 packed words.

struct Lut {
    total: u32, _a: u32, _b: u32, _c: u32,
}

@group(0) @binding(0) var<uniform> p: Lut;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;

fn lut_at(idx: u32) -> i32 {
    let x = sbyte(src[idx >> 2u], idx & 3u);
    let i = u32(x + 128);
    return sbyte(table[i >> 2u], i & 3u);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let first = t * 4u;
    if (first >= p.total) {
        return;
    }
    var v = array<i32, 4>(0, 0, 0, 0);
    for (var b = 0u; b < 4u; b++) {
        if (first + b < p.total) {
            v[b] = lut_at(first + b);
        }
    }
    dst[t] = pack4(v[0], v[1], v[2], v[3]);
}
