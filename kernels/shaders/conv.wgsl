// Fused INT8 convolution: i32 accumulation, bias, fixed-point requantisation, output zero
// point and clamp, over a batch of NHWC images. Each invocation writes one packed output
// word (four consecutive output bytes), so no two invocations touch the same word.
//
// `packed` (a pipeline constant) selects the 4-channel path: input and weight words are
// consumed whole by `dot4`, and the zero-point term is taken out per kernel tap with the
// precomputed weight sum `wsum[tap]`: sum((x - zp) * w) == sum(x * w) - zp * sum(w), exactly,
// in wrapping i32. The host only chooses it when every channel run is word-aligned.

override packed: bool = false;

struct Conv {
    n: u32, h: u32, w: u32, in_c: u32,
    oh: u32, ow: u32, out_c: u32, kh: u32,
    kw: u32, stride_h: u32, stride_w: u32, pad_t: u32,
    pad_l: u32, groups: u32, input_zp: i32, output_zp: i32,
    act_min: i32, act_max: i32, total: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Conv;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> wts: array<u32>;
// Per output channel: (bias, multiplier, shift, unused).
@group(0) @binding(3) var<storage, read> chan: array<vec4<i32>>;
// Per (oc, ky, kx): the sum of that tap's weights (packed path only).
@group(0) @binding(4) var<storage, read> wsum: array<i32>;
@group(0) @binding(5) var<storage, read_write> dst: array<u32>;

fn src_byte(i: u32) -> i32 {
    return sbyte(src[i >> 2u], i & 3u);
}

fn wts_byte(i: u32) -> i32 {
    return sbyte(wts[i >> 2u], i & 3u);
}

fn conv_at(idx: u32) -> i32 {
    let oc = idx % p.out_c;
    var pix = idx / p.out_c;
    let ox = pix % p.ow;
    pix = pix / p.ow;
    let oy = pix % p.oh;
    let n = pix / p.oh;
    let icg = p.in_c / p.groups;
    let ocg = p.out_c / p.groups;
    let g = oc / ocg;
    let c = chan[oc];
    var acc = c.x;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = i32(oy * p.stride_h + ky) - i32(p.pad_t);
        if (iy < 0 || iy >= i32(p.h)) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = i32(ox * p.stride_w + kx) - i32(p.pad_l);
            if (ix < 0 || ix >= i32(p.w)) {
                continue;
            }
            let base = ((n * p.h + u32(iy)) * p.w + u32(ix)) * p.in_c + g * icg;
            let tap = (oc * p.kh + ky) * p.kw + kx;
            let wbase = tap * icg;
            if (packed) {
                let xb = base >> 2u;
                let wb = wbase >> 2u;
                for (var i = 0u; i < icg / 4u; i++) {
                    acc += dot4(src[xb + i], wts[wb + i]);
                }
                acc -= p.input_zp * wsum[tap];
            } else {
                for (var i = 0u; i < icg; i++) {
                    acc += (src_byte(base + i) - p.input_zp) * wts_byte(wbase + i);
                }
            }
        }
    }
    return requant_out(acc, c.y, c.z, p.output_zp, p.act_min, p.act_max);
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
            v[b] = conv_at(first + b);
        }
    }
    dst[t] = pack4(v[0], v[1], v[2], v[3]);
}
