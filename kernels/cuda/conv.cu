// Fused INT8 convolution over a batch of NHWC images: three kernels, one contract.
//
// * vigil_conv_generic: one thread per output byte; any channel count (e.g. the 3-channel
//   stem). Byte loads.
// * vigil_conv_dp4a: one thread per output byte; channel runs word-aligned (in_c and
//   in_c/groups multiples of 4), 4 MACs per __dp4a (sm_61+).
// * vigil_conv_mma: implicit GEMM on tensor cores, mma.sync.m16n8k32 with s8 operands
//   (sm_80+): M = output pixels, N = output channels of a group, K = kh*kw*(in_c/groups).
//   One warp computes 16 pixels x 32 channels; the epilogue (bias, requantisation, zero
//   point, clamp) is fused.
//
// The zero point: the packed kernels multiply raw int8 inputs and take `input_zp * wsum`
// out per valid tap (wsum[(oc*kh+ky)*kw+kx] = sum of that tap's weights), which equals
// sum((x - zp) * w) exactly in wrapping i32 arithmetic. Padded taps contribute nothing,
// as in the reference. mma.sync without .satfinite wraps on s32 overflow, like the
// reference's wrapping_add.

__device__ __forceinline__ int vigil_conv_at_generic(const VigilConv& p, const i8* __restrict__ src,
                                                     const i8* __restrict__ wts, const int4* __restrict__ chan,
                                                     int idx) {
    int oc = idx % p.out_c;
    int pix = idx / p.out_c;
    int ox = pix % p.ow;
    pix /= p.ow;
    int oy = pix % p.oh;
    int n = pix / p.oh;
    int icg = p.in_c / p.groups;
    int ocg = p.out_c / p.groups;
    int g = oc / ocg;
    int4 c = chan[oc];
    int acc = c.x;
    for (int ky = 0; ky < p.kh; ++ky) {
        int iy = oy * p.stride_h + ky - p.pad_t;
        if (iy < 0 || iy >= p.h) continue;
        for (int kx = 0; kx < p.kw; ++kx) {
            int ix = ox * p.stride_w + kx - p.pad_l;
            if (ix < 0 || ix >= p.w) continue;
            const i8* x = src + ((i64)(n * p.h + iy) * p.w + ix) * p.in_c + g * icg;
            const i8* wt = wts + ((i64)(oc * p.kh + ky) * p.kw + kx) * icg;
            for (int i = 0; i < icg; ++i) {
                acc = vigil_wadd(acc, ((int)x[i] - p.input_zp) * (int)wt[i]);
            }
        }
    }
    return vigil_requant_out(acc, c.y, c.z, p.output_zp, p.act_min, p.act_max);
}

extern "C" __global__ void vigil_conv_generic(VigilConv p, const i8* __restrict__ src, const i8* __restrict__ wts,
                                              const int4* __restrict__ chan, const int* __restrict__ wsum,
                                              i8* __restrict__ dst) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= p.total) return;
    dst[idx] = (i8)vigil_conv_at_generic(p, src, wts, chan, idx);
}

extern "C" __global__ void vigil_conv_dp4a(VigilConv p, const i8* __restrict__ src, const i8* __restrict__ wts,
                                           const int4* __restrict__ chan, const int* __restrict__ wsum,
                                           i8* __restrict__ dst) {
    int idx = blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= p.total) return;
    int oc = idx % p.out_c;
    int pix = idx / p.out_c;
    int ox = pix % p.ow;
    pix /= p.ow;
    int oy = pix % p.oh;
    int n = pix / p.oh;
    int icg = p.in_c / p.groups;
    int ocg = p.out_c / p.groups;
    int g = oc / ocg;
    int words = icg >> 2;
    int4 c = chan[oc];
    int acc = c.x;
    for (int ky = 0; ky < p.kh; ++ky) {
        int iy = oy * p.stride_h + ky - p.pad_t;
        if (iy < 0 || iy >= p.h) continue;
        for (int kx = 0; kx < p.kw; ++kx) {
            int ix = ox * p.stride_w + kx - p.pad_l;
            if (ix < 0 || ix >= p.w) continue;
            int tap = (oc * p.kh + ky) * p.kw + kx;
            const int* x = (const int*)(src + ((i64)(n * p.h + iy) * p.w + ix) * p.in_c + g * icg);
            const int* wt = (const int*)(wts + (i64)tap * icg);
            int dot = 0;
            for (int i = 0; i < words; ++i) {
                dot = __dp4a(x[i], wt[i], dot);
            }
            acc = vigil_wadd(acc, vigil_wadd(dot, -vigil_wmul(p.input_zp, wsum[tap])));
        }
    }
    dst[idx] = vigil_requant_out(acc, c.y, c.z, p.output_zp, p.act_min, p.act_max);
}

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
__device__ __forceinline__ void vigil_mma_s8(int (&d)[4], const u32 (&a)[4], u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#define VIGIL_MMA_NB 4      // n-tiles of 8 channels per warp: 32 channels
#define VIGIL_MMA_WARPS 4   // warps per block, each its own 16 pixels

// grid: x = ceil(M / (16 * WARPS)), y = ceil(ocg / (8 * NB)), z = groups; block = 32 * WARPS.
// Fragment layout of m16n8k32 (gid = lane / 4, tid = lane % 4):
//   A 16x32 row-major: a0 = A[gid][tid*4..+4], a1 = A[gid+8][tid*4..], a2 = A[gid][16+tid*4..], a3 = A[gid+8][16+tid*4..]
//   B 32x8 col-major:  b0 = B[tid*4..+4][gid], b1 = B[16+tid*4..][gid]
//   C 16x8:            c0 = C[gid][tid*2], c1 = C[gid][tid*2+1], c2 = C[gid+8][tid*2], c3 = C[gid+8][tid*2+1]
extern "C" __global__ void __launch_bounds__(32 * VIGIL_MMA_WARPS)
vigil_conv_mma(VigilConv p, const i8* __restrict__ src, const i8* __restrict__ wts,
               const int4* __restrict__ chan, const int* __restrict__ wsum, i8* __restrict__ dst) {
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    const int gid = lane >> 2;
    const int tid = lane & 3;
    const int icg = p.in_c / p.groups;
    const int ocg = p.out_c / p.groups;
    const int g = blockIdx.z;
    const int oc_base = g * ocg + blockIdx.y * (8 * VIGIL_MMA_NB);
    const int oc_end = (g + 1) * ocg;
    const int m_total = p.n * p.oh * p.ow;
    const int m_base = (blockIdx.x * VIGIL_MMA_WARPS + warp) * 16;
    const int taps = p.kh * p.kw;

    // The two pixel rows this lane loads for A and owns in C.
    int row[2] = {m_base + gid, m_base + gid + 8};
    int rn[2], ry[2], rx[2];
    bool rok[2];
    for (int r = 0; r < 2; ++r) {
        int m = row[r];
        rok[r] = m < m_total;
        int mm = rok[r] ? m : 0;
        rx[r] = mm % p.ow;
        mm /= p.ow;
        ry[r] = mm % p.oh;
        rn[r] = mm / p.oh;
    }

    int acc[VIGIL_MMA_NB][4];
    for (int nb = 0; nb < VIGIL_MMA_NB; ++nb)
        for (int j = 0; j < 4; ++j) acc[nb][j] = 0;

    for (int ky = 0; ky < p.kh; ++ky) {
        for (int kx = 0; kx < p.kw; ++kx) {
            const int tap = ky * p.kw + kx;
            const i8* xrow[2];
            bool valid[2];
            for (int r = 0; r < 2; ++r) {
                int iy = ry[r] * p.stride_h + ky - p.pad_t;
                int ix = rx[r] * p.stride_w + kx - p.pad_l;
                valid[r] = rok[r] && iy >= 0 && iy < p.h && ix >= 0 && ix < p.w;
                xrow[r] = valid[r] ? src + ((i64)(rn[r] * p.h + iy) * p.w + ix) * p.in_c + g * icg : src;
            }
            for (int k0 = 0; k0 < icg; k0 += 32) {
                const int ka = k0 + tid * 4;
                const int kb = ka + 16;
                u32 a[4];
                a[0] = (valid[0] && ka < icg) ? *(const u32*)(xrow[0] + ka) : 0u;
                a[1] = (valid[1] && ka < icg) ? *(const u32*)(xrow[1] + ka) : 0u;
                a[2] = (valid[0] && kb < icg) ? *(const u32*)(xrow[0] + kb) : 0u;
                a[3] = (valid[1] && kb < icg) ? *(const u32*)(xrow[1] + kb) : 0u;
                for (int nb = 0; nb < VIGIL_MMA_NB; ++nb) {
                    const int oc = oc_base + nb * 8 + gid;
                    const bool ocok = oc < oc_end;
                    const i8* wt = wts + ((i64)oc * taps + tap) * icg;
                    u32 b0 = (ocok && ka < icg) ? *(const u32*)(wt + ka) : 0u;
                    u32 b1 = (ocok && kb < icg) ? *(const u32*)(wt + kb) : 0u;
                    vigil_mma_s8(acc[nb], a, b0, b1);
                }
            }
            // Zero-point correction for the (row, channel) pairs this lane owns.
            for (int nb = 0; nb < VIGIL_MMA_NB; ++nb) {
                for (int j = 0; j < 2; ++j) {
                    const int oc = oc_base + nb * 8 + tid * 2 + j;
                    if (oc >= oc_end) continue;
                    const int corr = vigil_wmul(p.input_zp, wsum[oc * taps + tap]);
                    if (valid[0]) acc[nb][j] = vigil_wadd(acc[nb][j], -corr);
                    if (valid[1]) acc[nb][2 + j] = vigil_wadd(acc[nb][2 + j], -corr);
                }
            }
        }
    }

    // Fused epilogue.
    for (int nb = 0; nb < VIGIL_MMA_NB; ++nb) {
        for (int j = 0; j < 4; ++j) {
            const int r = j >> 1;
            const int oc = oc_base + nb * 8 + tid * 2 + (j & 1);
            if (!rok[r] || oc >= oc_end) continue;
            const int4 c = chan[oc];
            const int v = vigil_wadd(acc[nb][j], c.x);
            dst[(i64)row[r] * p.out_c + oc] = vigil_requant_out(v, c.y, c.z, p.output_zp, p.act_min, p.act_max);
        }
    }
}
#endif
