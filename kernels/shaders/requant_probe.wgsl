// Test hook: applies `requant_apply` of common.wgsl to i32 inputs, one (x, multiplier,
// shift) triple per invocation, so the emulated 64-bit arithmetic is checked over the whole
// i32 range rather than only through int8 outputs.

struct Probe {
    count: u32, _a: u32, _b: u32, _c: u32,
}

@group(0) @binding(0) var<uniform> p: Probe;
@group(0) @binding(1) var<storage, read> args: array<vec4<i32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<i32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = linear_id(gid, nwg);
    if (t >= p.count) {
        return;
    }
    let a = args[t];
    // a.w selects the piece under test: 0 the whole requantisation, 1 srdhm alone,
    // 2 rounding_divide_by_pot alone (exponent in a.z), 3 saturating_add.
    switch a.w {
        case 1: { dst[t] = srdhm(a.x, a.y); }
        case 2: { dst[t] = rounding_divide_by_pot(a.x, u32(a.z)); }
        case 3: { dst[t] = saturating_add(a.x, a.y); }
        default: { dst[t] = requant_apply(a.x, a.y, a.z); }
    }
}
