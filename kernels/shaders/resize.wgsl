// Nearest-neighbour resize: out[oy][ox] = in[oy * h / oh][ox * w / ow] (floor).

struct Resize {
    n: u32, h: u32, w: u32, c: u32,
    oh: u32, ow: u32, total: u32, _a: u32,
}

@group(0) @binding(0) var<uniform> p: Resize;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

fn resize_at(idx: u32) -> i32 {
    let ch = idx % p.c;
    var pix = idx / p.c;
    let ox = pix % p.ow;
    pix = pix / p.ow;
    let oy = pix % p.oh;
    let n = pix / p.oh;
    let iy = oy * p.h / p.oh;
    let ix = ox * p.w / p.ow;
    let i = ((n * p.h + iy) * p.w + ix) * p.c + ch;
    return sbyte(src[i >> 2u], i & 3u);
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
            v[b] = resize_at(first + b);
        }
    }
    dst[t] = pack4(v[0], v[1], v[2], v[3]);
}
