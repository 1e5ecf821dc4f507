// Shared integer helpers: the fixed-point requantisation of `kernels::quant`, emulated in
// 32-bit integer arithmetic (WGSL has no 64-bit integers), and signed byte access to
// tensors stored as little-endian packed `u32` words.
//
// WGSL integer arithmetic wraps on overflow, like the `wrapping_*` operations of the CPU
// reference, and `>>` on `i32` is arithmetic: both are relied on below.

const I32_MAX: i32 = 2147483647;
const I32_MIN: i32 = -2147483647 - 1;

// Unsigned 32 x 32 -> 64-bit product as (lo, hi), from 16-bit halves.
fn mul_wide_u32(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    // Middle column: the high half of ll plus the low halves of the cross terms (< 3 * 2^16).
    let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
    let lo = (ll & 0xffffu) | (mid << 16u);
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(lo, hi);
}

// |x| as u32; |i32::MIN| = 2^31 fits.
fn abs_u32(x: i32) -> u32 {
    return select(bitcast<u32>(x), 0u - bitcast<u32>(x), x < 0);
}

// round(a * b / 2^31), ties away from zero; saturates a == b == i32::MIN.
// For p = |a * b|: the CPU reference computes trunc((a*b + nudge) / 2^31), which is
// (p + 2^30) >> 31 for a non-negative product and -((p + 2^30 - 1) >> 31) for a negative one.
fn srdhm(a: i32, b: i32) -> i32 {
    let neg = (a < 0) != (b < 0);
    let p = mul_wide_u32(abs_u32(a), abs_u32(b));
    let nudge = select(0x40000000u, 0x3fffffffu, neg);
    let lo = p.x + nudge;
    let hi = p.y + select(0u, 1u, lo < p.x);
    let m = (hi << 1u) | (lo >> 31u);
    if (m == 0x80000000u) {
        // Only a == b == i32::MIN reaches 2^31 (a positive product).
        return select(I32_MAX, I32_MIN, neg);
    }
    let v = bitcast<i32>(m);
    return select(v, -v, neg);
}

// x / 2^e rounded half away from zero, e in 0..=31.
fn rounding_divide_by_pot(x: i32, e: u32) -> i32 {
    let mask = bitcast<i32>((1u << e) - 1u);
    let remainder = x & mask;
    let threshold = (mask >> 1u) + select(0, 1, x < 0);
    return (x >> e) + select(0, 1, remainder > threshold);
}

// x * 2^left, saturating, left in 0..=30.
fn saturating_shl(x: i32, left: u32) -> i32 {
    if (x > (I32_MAX >> left)) {
        return I32_MAX;
    }
    if (x < (I32_MIN >> left)) {
        return I32_MIN;
    }
    return x << left;
}

fn saturating_add(a: i32, b: i32) -> i32 {
    let s = a + b;
    // Overflow iff both operands share a sign that the sum does not.
    if (((a ^ s) & (b ^ s)) < 0) {
        return select(I32_MAX, I32_MIN, a < 0);
    }
    return s;
}

// `Requant::apply` of the CPU reference.
fn requant_apply(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = u32(max(shift, 0));
    let right = u32(max(-shift, 0));
    return rounding_divide_by_pot(srdhm(saturating_shl(x, left), multiplier), right);
}

// Requantise, add the output zero point (saturating), clamp: the fused epilogue.
fn requant_out(acc: i32, multiplier: i32, shift: i32, zp: i32, lo: i32, hi: i32) -> i32 {
    return clamp(saturating_add(requant_apply(acc, multiplier, shift), zp), lo, hi);
}

// Byte `k` (0..=3) of a packed word, sign-extended.
fn sbyte(word: u32, k: u32) -> i32 {
    return bitcast<i32>(word << (24u - 8u * k)) >> 24u;
}

// Four values (each already in -128..=127) packed little-endian.
fn pack4(v0: i32, v1: i32, v2: i32, v3: i32) -> u32 {
    return (bitcast<u32>(v0) & 0xffu) | ((bitcast<u32>(v1) & 0xffu) << 8u)
        | ((bitcast<u32>(v2) & 0xffu) << 16u) | ((bitcast<u32>(v3) & 0xffu) << 24u);
}

// Linear invocation index of a (possibly 2D) dispatch of 64-wide workgroups.
fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}
