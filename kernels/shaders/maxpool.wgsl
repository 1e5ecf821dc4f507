// Max pooling over a kh x kw window; padded positions never win. One invocation per
// output word (four bytes).

struct Pool {
    n: u32, h: u32, w: u32, c: u32,
    oh: u32, ow: u32, kh: u32, kw: u32,
    stride_h: u32, stride_w: u32, pad_t: u32, pad_l: u32,
    total: u32, _a: u32, _b: u32, _c: u32,
}

@group(0) @binding(0) var<uniform> p: Pool;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

fn pool_at(idx: u32) -> i32 {
    let ch = idx % p.c;
    var pix = idx / p.c;
    let ox = pix % p.ow;
    pix = pix / p.ow;
    let oy = pix % p.oh;
    let n = pix / p.oh;
    var m = -128;
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
            let i = ((n * p.h + u32(iy)) * p.w + u32(ix)) * p.c + ch;
            m = max(m, sbyte(src[i >> 2u], i & 3u));
        }
    }
    return m;
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
            v[b] = pool_at(first + b);
        }
    }
    dst[t] = pack4(v[0], v[1], v[2], v[3]);
}
