// Shared device helpers for every vigil CUDA kernel: the fixed-point requantisation of
// `kernels::quant` (gemmlowp / TFLite), bit for bit, and the parameter blocks the host
// passes by value. NVRTC compiles each .cu file with this text prepended; no system
// headers are used, so the sources compile with NVRTC alone.

typedef signed char i8;
typedef unsigned char u8;
typedef unsigned int u32;
typedef long long i64;

#define VIGIL_I32_MAX 2147483647
#define VIGIL_I32_MIN (-2147483647 - 1)

// round(a * b / 2^31), ties away from zero; saturates a == b == i32::MIN.
__device__ __forceinline__ int vigil_srdhm(int a, int b) {
    if (a == VIGIL_I32_MIN && b == VIGIL_I32_MIN) {
        return VIGIL_I32_MAX;
    }
    i64 ab = (i64)a * (i64)b;
    i64 nudge = ab >= 0 ? (1LL << 30) : (1LL - (1LL << 30));
    // C++ division truncates toward zero, as gemmlowp requires.
    return (int)((ab + nudge) / (1LL << 31));
}

// x / 2^e rounded half away from zero, e in 0..=31.
__device__ __forceinline__ int vigil_rdivpot(int x, int e) {
    int mask = (int)((1LL << e) - 1);
    int remainder = x & mask;
    int threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

// x * 2^left, saturating, left in 0..=30.
__device__ __forceinline__ int vigil_sat_shl(int x, int left) {
    if (x > (VIGIL_I32_MAX >> left)) return VIGIL_I32_MAX;
    if (x < (VIGIL_I32_MIN >> left)) return VIGIL_I32_MIN;
    return (int)((u32)x << left);
}

__device__ __forceinline__ int vigil_sat_add(int a, int b) {
    i64 s = (i64)a + (i64)b;
    if (s > VIGIL_I32_MAX) return VIGIL_I32_MAX;
    if (s < VIGIL_I32_MIN) return VIGIL_I32_MIN;
    return (int)s;
}

__device__ __forceinline__ int vigil_requant(int x, int multiplier, int shift) {
    int left = shift > 0 ? shift : 0;
    int right = shift < 0 ? -shift : 0;
    return vigil_rdivpot(vigil_srdhm(vigil_sat_shl(x, left), multiplier), right);
}

// The fused epilogue: requantise, add the output zero point (saturating), clamp.
__device__ __forceinline__ i8 vigil_requant_out(int acc, int multiplier, int shift, int zp, int lo, int hi) {
    int v = vigil_sat_add(vigil_requant(acc, multiplier, shift), zp);
    return (i8)(v < lo ? lo : (v > hi ? hi : v));
}

// Wrapping i32 add/sub: the reference accumulates with `wrapping_add`; signed overflow is
// undefined in C++, so go through unsigned.
__device__ __forceinline__ int vigil_wadd(int a, int b) { return (int)((u32)a + (u32)b); }
__device__ __forceinline__ int vigil_wmul(int a, int b) { return (int)((u32)a * (u32)b); }

// Per output channel: (bias, multiplier, shift, unused), as int4.

// Convolution geometry, passed by value; mirrors `ConvArgs` in kernels/src/cuda/.
struct VigilConv {
    int n, h, w, in_c;
    int oh, ow, out_c, kh;
    int kw, stride_h, stride_w, pad_t;
    int pad_l, groups, input_zp, output_zp;
    int act_min, act_max, total, _pad;
};
