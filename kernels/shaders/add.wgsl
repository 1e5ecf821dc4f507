// Requantised elementwise add (the TFLite scheme, `plan::AddParams`):
//   a' = a_mult((a - a_zp) << left_shift), b' likewise,
//   out = clamp(out_mult(a' + b') + out_zp, act_min, act_max).

struct Add {
    total: u32, left_shift: u32, a_zp: i32, b_zp: i32,
    out_zp: i32, act_min: i32, act_max: i32, _a: i32,
    a_mult: vec2<i32>, b_mult: vec2<i32>,
    out_mult: vec2<i32>, _b: vec2<i32>,
}

@group(0) @binding(0) var<uniform> p: Add;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;

fn add_at(i: u32) -> i32 {
    let xa = (sbyte(a[i >> 2u], i & 3u) - p.a_zp) << p.left_shift;
    let xb = (sbyte(b[i >> 2u], i & 3u) - p.b_zp) << p.left_shift;
    let sa = requant_apply(xa, p.a_mult.x, p.a_mult.y);
    let sb = requant_apply(xb, p.b_mult.x, p.b_mult.y);
    let s = saturating_add(sa, sb);
    return requant_out(s, p.out_mult.x, p.out_mult.y, p.out_zp, p.act_min, p.act_max);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    let first = t * 4u;
    if (first >= p.total) {
        return;
    }
    var v = array<i32, 4>(0, 0, 0, 0);
    for (var k = 0u; k < 4u; k++) {
        if (first + k < p.total) {
            v[k] = add_at(first + k);
        }
    }
    dst[t] = pack4(v[0], v[1], v[2], v[3]);
}
