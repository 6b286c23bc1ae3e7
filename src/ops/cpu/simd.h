/* Portable SIMD helpers for the CPU kernels (GCC/clang vector extensions:
 * lowered to AVX-512, AVX2 or SSE, whatever the build targets). */
#ifndef SAM_OPS_CPU_SIMD_H
#define SAM_OPS_CPU_SIMD_H

#include <stdint.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

/* Lanes = the widest registers the build targets (a wider vector type than
 * the target has would change the calling convention and spill). */
#if defined(__AVX512F__)
#define SAM_VL 16
#elif defined(__AVX__)
#define SAM_VL 8
#else
#define SAM_VL 4
#endif
/* aligned(4) + may_alias: a vf may be loaded from / stored to any float address. */
typedef float sam_vf __attribute__((vector_size(SAM_VL * 4), aligned(4), may_alias));
typedef int32_t sam_vi __attribute__((vector_size(SAM_VL * 4), aligned(4), may_alias));
typedef uint32_t sam_vu __attribute__((vector_size(SAM_VL * 4), aligned(4), may_alias));

static inline sam_vf sam_vsplat(float x) { return (sam_vf){0} + x; }
static inline sam_vf sam_vselect(sam_vi mask, sam_vf a, sam_vf b) {
    return (sam_vf)(((sam_vi)a & mask) | ((sam_vi)b & ~mask));
}
static inline sam_vf sam_vmax(sam_vf a, sam_vf b) { return sam_vselect(a > b, a, b); }

/* exp: Cephes-style range reduction + degree-6 polynomial, about 1 ulp like
 * the Sleef exp PyTorch vectorises with. Exactly 0 below -87 (so exp(-inf)
 * is 0; the denormal range is dropped) and +inf above 88.7 (overflow, as
 * expf), so e.g. 1 / (1 + exp(1000)) is 0 as in torch. */
static inline sam_vf sam_vexp(sam_vf x) {
    const sam_vi tiny = x < sam_vsplat(-87.0f);
    const sam_vi huge = x > sam_vsplat(88.72283f);
    x = sam_vselect(tiny, sam_vsplat(-87.0f), x);
    x = sam_vselect(huge, sam_vsplat(88.0f), x);
    /* round to nearest with the 1.5 * 2^23 trick: no floorf call, so loops vectorise */
    const sam_vf magic = sam_vsplat(12582912.0f);
    const sam_vf n = (x * sam_vsplat(1.44269504088896341f) + magic) - magic;
    sam_vf r = x - n * sam_vsplat(0.693359375f);
    r = r - n * sam_vsplat(-2.12194440e-4f);
    sam_vf p = sam_vsplat(1.9875691500e-4f);
    p = p * r + sam_vsplat(1.3981999507e-3f);
    p = p * r + sam_vsplat(8.3334519073e-3f);
    p = p * r + sam_vsplat(4.1665795894e-2f);
    p = p * r + sam_vsplat(1.6666665459e-1f);
    p = p * r + sam_vsplat(5.0000001201e-1f);
    p = p * r * r + r + sam_vsplat(1.0f);
    /* 2^n from the exponent bits; shifted as unsigned so a NaN input (n out of
     * range) is not a signed-overflow UB, just a NaN result via p */
    const sam_vu bits = ((sam_vu)__builtin_convertvector(n, sam_vi) + 127u) << 23;
    const sam_vf y = (sam_vf)((sam_vi)(p * (sam_vf)bits) & ~tiny);
    return sam_vselect(huge, sam_vsplat(__builtin_inff()), y);
}

/* erf as PyTorch's vectorised CPU kernels compute it (Abramowitz & Stegun
 * 7.1.26, |error| < 1.5e-7): using the same formula keeps GELU within float
 * rounding of the reference instead of 1e-7 away from it. */
static inline sam_vf sam_verf(sam_vf x) {
    const sam_vi signbit = (sam_vi){0} + INT32_MIN; /* not vsplat(-0.0f): 0 + -0 is +0 */
    const sam_vi sign = (sam_vi)x & signbit;
    const sam_vf ax = (sam_vf)((sam_vi)x & ~signbit);
    const sam_vf t = sam_vsplat(1.0f) / (sam_vsplat(0.3275911f) * ax + sam_vsplat(1.0f));
    sam_vf r = sam_vsplat(1.061405429f) * t + sam_vsplat(-1.453152027f);
    r = r * t + sam_vsplat(1.421413741f);
    r = r * t + sam_vsplat(-0.284496736f);
    r = r * t + sam_vsplat(0.254829592f);
    const sam_vf e = sam_vexp(-(x * x));
    const sam_vf y = (-e * t) * r + sam_vsplat(1.0f);
    return (sam_vf)((sam_vi)y ^ sign);
}

/* 1/d from the hardware estimate and one Newton step (within ~2 ulp of the
 * division, which costs ~4x more on AVX-512). Not for fp32 results that must
 * match the reference's rounding: the bf16 mode's epilogues only. */
static inline sam_vf sam_vrcp_fast(sam_vf d) {
#if defined(__AVX512F__)
    const sam_vf r = (sam_vf)_mm512_rcp14_ps((__m512)d);
    return r * (sam_vsplat(2.0f) - d * r);
#else
    return sam_vsplat(1.0f) / d;
#endif
}

/* GELU with that reciprocal in the erf (bf16 mode). */
static inline sam_vf sam_vgelu_fast(sam_vf x) {
    const sam_vi signbit = (sam_vi){0} + INT32_MIN;
    const sam_vf z = x * sam_vsplat(0.70710678118654752440f);
    const sam_vi sign = (sam_vi)z & signbit;
    const sam_vf az = (sam_vf)((sam_vi)z & ~signbit);
    const sam_vf t = sam_vrcp_fast(sam_vsplat(0.3275911f) * az + sam_vsplat(1.0f));
    sam_vf r = sam_vsplat(1.061405429f) * t + sam_vsplat(-1.453152027f);
    r = r * t + sam_vsplat(1.421413741f);
    r = r * t + sam_vsplat(-0.284496736f);
    r = r * t + sam_vsplat(0.254829592f);
    const sam_vf e = sam_vexp(-(z * z));
    const sam_vf erf = (sam_vf)((sam_vi)((-e * t) * r + sam_vsplat(1.0f)) ^ sign);
    return x * sam_vsplat(0.5f) * (sam_vsplat(1.0f) + erf);
}

/* GELU, exact erf form, with the erf above (as torch's vectorised kernel). */
static inline sam_vf sam_vgelu(sam_vf x) {
    return x * sam_vsplat(0.5f) * (sam_vsplat(1.0f) + sam_verf(x * sam_vsplat(0.70710678118654752440f)));
}

#endif
