// The non-convolution ops of a plan, one thread per output byte, over a batch of NHWC
// tensors. Semantics are those of `kernels::plan::Op` as implemented by `cpu_ref`.

// MaxPool / ResizeNearest geometry; mirrors `PoolArgs` in kernels/src/cuda/.
struct VigilPool {
    int n, h, w, c;
    int oh, ow, kh, kw;
    int stride_h, stride_w, pad_t, pad_l;
    int total, _a, _b, _c;
};

extern "C" __global__ void vigil_maxpool(VigilPool p, const i8* __restrict__ src, i8* __restrict__ dst) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= p.total) return;
    int ch = idx % p.c;
    int pix = idx / p.c;
    int ox = pix % p.ow;
    pix /= p.ow;
    int oy = pix % p.oh;
    int n = pix / p.oh;
    int m = -128;
    for (int ky = 0; ky < p.kh; ++ky) {
        int iy = oy * p.stride_h + ky - p.pad_t;
        if (iy < 0 || iy >= p.h) continue;
        for (int kx = 0; kx < p.kw; ++kx) {
            int ix = ox * p.stride_w + kx - p.pad_l;
            if (ix < 0 || ix >= p.w) continue;
            int v = src[((i64)(n * p.h + iy) * p.w + ix) * p.c + ch];
            m = v > m ? v : m;
        }
    }
    dst[idx] = (i8)m;
}

extern "C" __global__ void vigil_resize_nearest(VigilPool p, const i8* __restrict__ src, i8* __restrict__ dst) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= p.total) return;
    int ch = idx % p.c;
    int pix = idx / p.c;
    int ox = pix % p.ow;
    pix /= p.ow;
    int oy = pix % p.oh;
    int n = pix / p.oh;
    int iy = (int)((i64)oy * p.h / p.oh);
    int ix = (int)((i64)ox * p.w / p.ow);
    dst[idx] = src[((i64)(n * p.h + iy) * p.w + ix) * p.c + ch];
}

extern "C" __global__ void vigil_lut(int total, const i8* __restrict__ src, const i8* __restrict__ table,
                                     i8* __restrict__ dst) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= total) return;
    dst[idx] = table[(int)src[idx] + 128];
}

// Requantised add; mirrors `AddArgs` in kernels/src/cuda/backend.rs.
struct VigilAdd {
    int total, left_shift, a_zp, b_zp;
    int out_zp, act_min, act_max, a_mult;
    int a_shift, b_mult, b_shift, out_mult;
    int out_shift, _a, _b, _c;
};

extern "C" __global__ void vigil_add(VigilAdd p, const i8* __restrict__ a, const i8* __restrict__ b, i8* __restrict__ dst) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= p.total) return;
    int xa = (int)((u32)((int)a[idx] - p.a_zp) << p.left_shift);
    int xb = (int)((u32)((int)b[idx] - p.b_zp) << p.left_shift);
    int sa = vigil_requant(xa, p.a_mult, p.a_shift);
    int sb = vigil_requant(xb, p.b_mult, p.b_shift);
    dst[idx] = vigil_requant_out(vigil_sat_add(sa, sb), p.out_mult, p.out_shift, p.out_zp, p.act_min, p.act_max);
}

// One input of a channel concatenation: writes its channel slice of the output, rescaled.
struct VigilConcatPart {
    int total, in_c, out_c, first;
    int in_zp, out_zp, mult, shift;
};

extern "C" __global__ void vigil_concat_part(VigilConcatPart p, const i8* __restrict__ src, i8* __restrict__ dst) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= p.total) return;
    int c = idx % p.in_c;
    int pix = idx / p.in_c;
    dst[(i64)pix * p.out_c + p.first + c] = vigil_requant_out((int)src[idx] - p.in_zp, p.mult, p.shift, p.out_zp, -128, 127);
}
