/* bfloat16 <-> float32, as torch's .to(torch.bfloat16): round to nearest,
 * ties to even; any NaN becomes the canonical quiet NaN 0x7fc0, infinities and signed zeros are kept,
 * subnormals are rounded like any other value (no flush to zero). */
#ifndef SAM_MODEL_BF16_H
#define SAM_MODEL_BF16_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t sam_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u; /* any NaN -> canonical quiet NaN, as torch */
    /* Adding 0x7fff plus the lowest kept bit rounds to nearest with ties to even;
     * an overflow carries into the exponent and yields inf, as it should. */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float sam_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline void sam_f32_to_bf16_array(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = sam_f32_to_bf16(src[i]);
}

static inline void sam_bf16_to_f32_array(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = sam_bf16_to_f32(src[i]);
}

/* Round float32 values in place to the nearest bf16 value (storage round trip). */
static inline void sam_bf16_round_array(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = sam_bf16_to_f32(sam_f32_to_bf16(x[i]));
}

#endif
