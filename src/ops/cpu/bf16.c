/* bf16 products with fp32 accumulation (SAM2_PRECISION=bf16).
 *
 * Operands are rounded to bf16 (round to nearest even, as torch's .bfloat16())
 * and multiplied pairwise along K. Where the CPU has AMX-BF16 (Sapphire Rapids
 * and later) tiles of 16x16 outputs come from tdpbf16ps, ~15x the fp32 FMA
 * rate measured on this project's machine (where vdpbf16ps runs at only half
 * the FMA rate, so it is no gain there). Else the AVX512_BF16 vdpbf16ps adds
 * two exact bf16 x bf16 products into each fp32 lane, twice the work of an
 * fp32 FMA per instruction. Where the CPU lacks it the same sums are formed
 * with two fp32 FMAs (AVX-512F), or by a plain C loop: every path gives the
 * same numbers up to fp32 summation order (and denormals, which vdpbf16ps
 * flushes).
 *
 * Layouts: A (rows, Kp) bf16 row-major with K padded to an even Kp; B packed
 * in panels of NR = 32 columns, (Kp/2, NR, 2) per panel: for every pair of k
 * the 32 columns' two values side by side, so one 64-byte load feeds one
 * vdpbf16ps with 16 columns. */
#include <cpuid.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <pthread.h>

#include "core/alloc.h"
#include "ops/cpu/bf16.h"
#include "ops/cpu/cpu_internal.h"
#include "ops/cpu/simd.h"

#define NR 32   /* columns per B panel: two 16-lane vectors */
#define MR 12   /* rows per micro-tile: 24 accumulators */
#define KC 256  /* k per cache block (B panel slice of KC x NR bf16 = 16 KiB stays in L1) */
#define MC 96   /* rows of A converted per work item */
#define NC 256  /* columns per work item */

/* ---- conversion ---------------------------------------------------------- */

/* bf16 pairs handled as 32-bit words (the buffers are typed float or uint16_t) */
typedef uint32_t u32a __attribute__((may_alias, aligned(4)));

static inline uint16_t f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN stays NaN (quiet) */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* 16 at a time with AVX-512: the same integer rounding as f2bf, narrowed by vpmovdw. */
static __attribute__((target("avx512f,avx512bw,avx512vl"))) int64_t from_f32_avx512(uint16_t *dst, const float *src,
                                                                                 int64_t n) {
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), qnan = _mm512_set1_epi32(0x40);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i u = _mm512_loadu_si512(src + i);
        const __mmask16 isnan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absmask), inf);
        const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, lsb)), 16);
        r = _mm512_mask_mov_epi32(r, isnan, _mm512_or_si512(_mm512_srli_epi32(u, 16), qnan));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm512_cvtepi32_epi16(r));
    }
    return i;
}

static bool have_avx512(void) {
    static int v = -1; /* benign race: every thread computes the same answer */
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl");
    }
    return v;
}

void sam_bf16_from_f32(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = have_avx512() ? from_f32_avx512(dst, src, n) : 0;
    for (; i < n; i++) dst[i] = f2bf(src[i]);
}

float sam_bf16_round(float f) {
    uint32_t u = (uint32_t)f2bf(f) << 16;
    float r;
    memcpy(&r, &u, 4);
    return r;
}

static inline float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Rows [r0, r1) of x (rows, K) at row stride ldx -> a (r1-r0, Kp) bf16, zero in the pad column. */
static void pack_a(uint16_t *a, int64_t Kp, const float *x, int64_t ldx, int r0, int r1, int K) {
    for (int r = r0; r < r1; r++) {
        uint16_t *d = a + (int64_t)(r - r0) * Kp;
        sam_bf16_from_f32(d, x + (int64_t)r * ldx, K);
        if (Kp > K) memset(d + K, 0, sizeof(uint16_t) * (size_t)(Kp - K));
    }
}

/* Panel p of w (N, K) (rows = output columns, at row stride ldw) -> (Kp/2, NR, 2), zero outside.
 * Each row is converted contiguously first; its bf16 pairs are then 32-bit
 * words that only need transposing into the panel. */
static void pack_b_panel(uint16_t *bp, const float *w, int64_t ldw, int N, int K, int Kp, int p) {
    const int n0 = p * NR, kp2 = Kp / 2;
    u32a row32[1024]; /* one converted row (2048 k) at a time */
    uint16_t *row = (uint16_t *)row32;
    u32a *d32 = (u32a *)(void *)bp;
    for (int j = 0; j < NR; j++) {
        const int n = n0 + j;
        if (n >= N) {
            for (int k = 0; k < kp2; k++) d32[(int64_t)k * NR + j] = 0;
            continue;
        }
        const float *src = w + (int64_t)n * ldw;
        for (int k0 = 0; k0 < Kp; k0 += 2048) {
            const int kc = Kp - k0 < 2048 ? Kp - k0 : 2048;
            const int valid = K - k0 < kc ? (K - k0 > 0 ? K - k0 : 0) : kc;
            sam_bf16_from_f32(row, src + k0, valid);
            if (valid < kc) memset(row + valid, 0, sizeof(uint16_t) * (size_t)(kc - valid));
            for (int k = 0; k < kc / 2; k++) d32[(int64_t)(k0 / 2 + k) * NR + j] = row32[k];
        }
    }
}

/* ---- micro-kernels --------------------------------------------------------
 * C(mr, ncols <= NR) (= or +=) A(mr, 2*kp) . Bpanel(2*kp, NR): A rows at lda
 * (bf16 elements), C rows at ldc. init: start from bias (or 0) instead of C. */

#define TGT_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define TGT_F __attribute__((target("avx512f,avx512bw,avx512vl")))

static TGT_BF16 inline __attribute__((always_inline)) void micro_bf16(const int mr, int kp, const uint16_t *A,
                                                                     int64_t lda, const uint16_t *B, float *C,
                                                                     int64_t ldc, int ncols, const float *bias,
                                                                     bool init) {
    __m512 c0[MR], c1[MR];
    const __mmask16 m0 = ncols >= 16 ? 0xffff : (__mmask16)((1u << ncols) - 1);
    const __mmask16 m1 = ncols >= 32 ? 0xffff : ncols <= 16 ? 0 : (__mmask16)((1u << (ncols - 16)) - 1);
    for (int r = 0; r < mr; r++) {
        if (init) {
            c0[r] = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
            c1[r] = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
        } else {
            c0[r] = _mm512_maskz_loadu_ps(m0, C + r * ldc);
            c1[r] = _mm512_maskz_loadu_ps(m1, C + r * ldc + 16);
        }
    }
    for (int k = 0; k < kp; k++) {
        const __m512i b0 = _mm512_loadu_si512(B + (int64_t)k * 2 * NR);
        const __m512i b1 = _mm512_loadu_si512(B + (int64_t)k * 2 * NR + NR);
        for (int r = 0; r < mr; r++) {
            int32_t pair;
            memcpy(&pair, A + r * lda + 2 * k, 4);
            const __m512i a = _mm512_set1_epi32(pair);
            c0[r] = _mm512_dpbf16_ps(c0[r], (__m512bh)a, (__m512bh)b0);
            c1[r] = _mm512_dpbf16_ps(c1[r], (__m512bh)a, (__m512bh)b1);
        }
    }
    for (int r = 0; r < mr; r++) {
        _mm512_mask_storeu_ps(C + r * ldc, m0, c0[r]);
        if (m1) _mm512_mask_storeu_ps(C + r * ldc + 16, m1, c1[r]);
    }
}

/* Same sums with fp32 FMAs: a bf16 pair (lo = even k, hi = odd k) becomes two
 * fp32 vectors by shifting / masking. Odd k first, as vdpbf16ps adds them. */
static TGT_F inline __attribute__((always_inline)) void micro_emul(const int mr, int kp, const uint16_t *A, int64_t lda,
                                                                   const uint16_t *B, float *C, int64_t ldc, int ncols,
                                                                   const float *bias, bool init) {
    __m512 c0[MR], c1[MR];
    const __mmask16 m0 = ncols >= 16 ? 0xffff : (__mmask16)((1u << ncols) - 1);
    const __mmask16 m1 = ncols >= 32 ? 0xffff : ncols <= 16 ? 0 : (__mmask16)((1u << (ncols - 16)) - 1);
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u);
    for (int r = 0; r < mr; r++) {
        if (init) {
            c0[r] = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
            c1[r] = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
        } else {
            c0[r] = _mm512_maskz_loadu_ps(m0, C + r * ldc);
            c1[r] = _mm512_maskz_loadu_ps(m1, C + r * ldc + 16);
        }
    }
    for (int k = 0; k < kp; k++) {
        const __m512i b0 = _mm512_loadu_si512(B + (int64_t)k * 2 * NR);
        const __m512i b1 = _mm512_loadu_si512(B + (int64_t)k * 2 * NR + NR);
        const __m512 b0e = _mm512_castsi512_ps(_mm512_slli_epi32(b0, 16)), b0o = _mm512_castsi512_ps(_mm512_and_si512(b0, hi));
        const __m512 b1e = _mm512_castsi512_ps(_mm512_slli_epi32(b1, 16)), b1o = _mm512_castsi512_ps(_mm512_and_si512(b1, hi));
        for (int r = 0; r < mr; r++) {
            uint32_t pair;
            memcpy(&pair, A + r * lda + 2 * k, 4);
            const __m512 ae = _mm512_set1_ps(bf2f((uint16_t)pair)), ao = _mm512_set1_ps(bf2f((uint16_t)(pair >> 16)));
            c0[r] = _mm512_fmadd_ps(ao, b0o, c0[r]);
            c1[r] = _mm512_fmadd_ps(ao, b1o, c1[r]);
            c0[r] = _mm512_fmadd_ps(ae, b0e, c0[r]);
            c1[r] = _mm512_fmadd_ps(ae, b1e, c1[r]);
        }
    }
    for (int r = 0; r < mr; r++) {
        _mm512_mask_storeu_ps(C + r * ldc, m0, c0[r]);
        if (m1) _mm512_mask_storeu_ps(C + r * ldc + 16, m1, c1[r]);
    }
}

/* Plain C, for CPUs without AVX-512. */
static void micro_c(int mr, int kp, const uint16_t *A, int64_t lda, const uint16_t *B, float *C, int64_t ldc, int ncols,
                    const float *bias, bool init) {
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < ncols; j++) {
            float s = init ? (bias ? bias[j] : 0.0f) : C[r * ldc + j];
            for (int k = 0; k < kp; k++) {
                const uint16_t *b = B + (int64_t)k * 2 * NR + 2 * j;
                s = fmaf(bf2f(A[r * lda + 2 * k + 1]), bf2f(b[1]), s);
                s = fmaf(bf2f(A[r * lda + 2 * k]), bf2f(b[0]), s);
            }
            C[r * ldc + j] = s;
        }
}

/* Block loops: C(M, ncols) over all rows of a (M, Kp) at once; one version per micro-kernel. */
#define DEFINE_BLOCK(NAME, MICRO, TGT)                                                                                \
    static TGT void NAME(int M, int Kp, const uint16_t *A, int64_t lda, const uint16_t *B, float *C, int64_t ldc,    \
                         int ncols, const float *bias, bool init) {                                                   \
        for (int i = 0; i < M; i += MR) {                                                                             \
            const uint16_t *a = A + (int64_t)i * lda;                                                                 \
            float *c = C + (int64_t)i * ldc;                                                                          \
            const int kp = Kp / 2;                                                                                    \
            switch (M - i < MR ? M - i : MR) {                                                                        \
            case 12: MICRO(12, kp, a, lda, B, c, ldc, ncols, bias, init); break;                                      \
            case 11: MICRO(11, kp, a, lda, B, c, ldc, ncols, bias, init); break;                                      \
            case 10: MICRO(10, kp, a, lda, B, c, ldc, ncols, bias, init); break;                                      \
            case 9: MICRO(9, kp, a, lda, B, c, ldc, ncols, bias, init); break;                                        \
            case 8: MICRO(8, kp, a, lda, B, c, ldc, ncols, bias, init); break;                                        \
            case 7: MICRO(7, kp, a, lda, B, c, ldc, ncols, bias, init); break;                                        \
            case 6: MICRO(6, kp, a, lda, B, c, ldc, ncols, bias, init); break;                                        \
            case 5: MICRO(5, kp, a, lda, B, c, ldc, ncols, bias, init); break;                                        \
            case 4: MICRO(4, kp, a, lda, B, c, ldc, ncols, bias, init); break;                                        \
            case 3: MICRO(3, kp, a, lda, B, c, ldc, ncols, bias, init); break;                                        \
            case 2: MICRO(2, kp, a, lda, B, c, ldc, ncols, bias, init); break;                                        \
            default: MICRO(1, kp, a, lda, B, c, ldc, ncols, bias, init); break;                                       \
            }                                                                                                         \
        }                                                                                                             \
    }
DEFINE_BLOCK(block_bf16, micro_bf16, TGT_BF16)
DEFINE_BLOCK(block_emul, micro_emul, TGT_F)

typedef void (*block_fn)(int M, int Kp, const uint16_t *A, int64_t lda, const uint16_t *B, float *C, int64_t ldc,
                         int ncols, const float *bias, bool init);

static void block_c(int M, int Kp, const uint16_t *A, int64_t lda, const uint16_t *B, float *C, int64_t ldc, int ncols,
                    const float *bias, bool init) {
    micro_c(M, Kp / 2, A, lda, B, C, ldc, ncols, bias, init);
}

static int forced_path = -1;
void sam_bf16_force_path(int path) { forced_path = path; }

/* AMX needs the kernel's permission for the (8 KiB) tile state, once per process. */
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
static bool amx_usable(void) {
#if defined(__x86_64__) && defined(SYS_arch_prctl)
    /* cpuid leaf 7: EDX bit 22 AMX-BF16, bit 24 AMX-TILE (__builtin_cpu_supports
     * does not know these names in every compiler) */
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 22)) || !(d & (1u << 24))) return false;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return false;
#endif
}

static int detect_path(void) {
    __builtin_cpu_init();
    if (amx_usable()) return SAM_BF16_PATH_AMX;
    if (__builtin_cpu_supports("avx512bf16")) return SAM_BF16_PATH_NATIVE;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return SAM_BF16_PATH_AVX512F;
    return SAM_BF16_PATH_C;
}

static pthread_once_t path_once = PTHREAD_ONCE_INIT;
static int detected_path;
static void detect_once(void) { detected_path = detect_path(); }

/* The best path this CPU runs (checked once; the answer never changes). */
static int pick_path(void) {
    if (forced_path >= 0) return forced_path;
    pthread_once(&path_once, detect_once);
    return detected_path;
}

static block_fn path_block(int p) {
    return p == SAM_BF16_PATH_NATIVE ? block_bf16 : p == SAM_BF16_PATH_AVX512F ? block_emul : block_c;
}

int sam_bf16_path(void) { return pick_path(); }

/* ---- AMX ------------------------------------------------------------------
 * Tiles: 0-3 accumulate a 32x32 output block (2x2 tiles of 16x16 fp32),
 * 4-5 hold 16 rows x 32 k of A, 6-7 hold 16 k-pairs x 16 columns of B (the
 * packed panel's left and right halves: rows of 128 bytes). */

#define TGT_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl")))
#define AMX_KB 32 /* k per tile step */

typedef struct {
    uint8_t palette, start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} __attribute__((packed)) amx_cfg;

static TGT_AMX void amx_begin(void) {
    amx_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {
        c.rows[t] = 16;
        c.colsb[t] = 64;
    }
    _tile_loadconfig(&c);
}

static TGT_AMX void amx_end(void) { _tile_release(); }

/* cb (32, 32) fp32 at row stride ldc = A (32 rows at lda bf16, Kp) . Bpanel (Kp/2, 32, 2); Kp a multiple of 32. */
static TGT_AMX void amx_block_ld(const uint16_t *A, int64_t lda, const uint16_t *B, int Kp, float *cb, int64_t ldc) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int k0 = 0; k0 < Kp; k0 += AMX_KB) {
        _tile_loadd(4, A + k0, lda * 2);
        _tile_loadd(5, A + 16 * lda + k0, lda * 2);
        _tile_loadd(6, B + (int64_t)(k0 / 2) * 2 * NR, 2 * NR * 2);
        _tile_loadd(7, B + (int64_t)(k0 / 2) * 2 * NR + NR, 2 * NR * 2);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, cb, ldc * 4);
    _tile_stored(1, cb + 16, ldc * 4);
    _tile_stored(2, cb + 16 * ldc, ldc * 4);
    _tile_stored(3, cb + 16 * ldc + 16, ldc * 4);
}

static void amx_block(const uint16_t *A, int64_t lda, const uint16_t *B, int Kp, float *cb) {
    amx_block_ld(A, lda, B, Kp, cb, 32);
}

/* y (rows, ncols) at ldy = cb (32-stride) + bias (ncols) or 0. */
static TGT_F void amx_out(float *y, int64_t ldy, const float *cb, int rows, int ncols, const float *bias) {
    const __mmask16 m0 = ncols >= 16 ? 0xffff : (__mmask16)((1u << ncols) - 1);
    const __mmask16 m1 = ncols >= 32 ? 0xffff : ncols <= 16 ? 0 : (__mmask16)((1u << (ncols - 16)) - 1);
    const __m512 b0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    const __m512 b1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    for (int r = 0; r < rows; r++) {
        _mm512_mask_storeu_ps(y + r * ldy, m0, _mm512_add_ps(_mm512_loadu_ps(cb + r * 32), b0));
        if (m1) _mm512_mask_storeu_ps(y + r * ldy + 16, m1, _mm512_add_ps(_mm512_loadu_ps(cb + r * 32 + 16), b1));
    }
}

/* ---- prepared weights ----------------------------------------------------- */

struct sam_bf16_wentry {
    const float *w; /* key; NULL = free slot */
    int N, K, Kp;   /* Kp as the path that packed it pads */
    uint16_t *wp;   /* (npanels, Kp/2, NR, 2) */
};

static size_t wreg_slot(const sam_cpu_backend *cb, const float *w) {
    uint64_t h = (uint64_t)(uintptr_t)w * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 20) & (cb->wreg_cap - 1);
}

static int padded_k(int K, int path) { return path == SAM_BF16_PATH_AMX ? (K + 31) & ~31 : (K + 1) & ~1; }

typedef struct {
    uint16_t *wp;
    const float *w;
    int N, K, Kp;
} packw_ctx;

static void packw_range(void *vc, int64_t p0, int64_t p1, int tid) {
    (void)tid;
    const packw_ctx *c = vc;
    for (int64_t p = p0; p < p1; p++)
        pack_b_panel(c->wp + p * (int64_t)c->Kp * NR, c->w, c->K, c->N, c->K, c->Kp, (int)p);
}

/* Insert into a table with room (cap a power of two, load <= 1/2). */
static void wreg_put(struct sam_bf16_wentry *t, size_t cap, struct sam_bf16_wentry e) {
    uint64_t h = (uint64_t)(uintptr_t)e.w * 0x9e3779b97f4a7c15ull;
    size_t i = (size_t)(h >> 20) & (cap - 1);
    while (t[i].w) i = (i + 1) & (cap - 1);
    t[i] = e;
}

bool sam_cpu_linear_prepare(sam_backend *be, const float *w, int N, int K) {
    if (be->precision != SAM_PRECISION_BF16 || !w || N <= 0 || K <= 0) return true; /* fp32 reads w as it is */
    sam_cpu_backend *cb = (sam_cpu_backend *)be;
    const int path = pick_path(), Kp = padded_k(K, path), npanels = (N + NR - 1) / NR;
    const size_t bytes = (size_t)npanels * Kp * NR * sizeof(uint16_t);
    uint16_t *wp = sam_malloc(bytes);
    if (!wp) return false;
    packw_ctx pc = {wp, w, N, K, Kp};
    sam_parallel_for(be->pool, npanels, 1, packw_range, &pc);
    sam_cpu_linear_forget(be, w); /* re-preparing replaces */
    pthread_mutex_lock(&cb->wreg_mu);
    if (2 * (cb->wreg_n + 1) > cb->wreg_cap) {
        size_t ncap = cb->wreg_cap ? 2 * cb->wreg_cap : 64;
        struct sam_bf16_wentry *nt = sam_calloc(ncap, sizeof *nt);
        if (!nt) {
            pthread_mutex_unlock(&cb->wreg_mu);
            sam_free(wp);
            return false;
        }
        for (size_t i = 0; i < cb->wreg_cap; i++)
            if (cb->wreg[i].w) wreg_put(nt, ncap, cb->wreg[i]);
        sam_free(cb->wreg);
        cb->wreg = nt;
        cb->wreg_cap = ncap;
    }
    wreg_put(cb->wreg, cb->wreg_cap, (struct sam_bf16_wentry){w, N, K, Kp, wp});
    cb->wreg_n++;
    cb->wreg_bytes += bytes;
    pthread_mutex_unlock(&cb->wreg_mu);
    return true;
}

void sam_cpu_linear_forget(sam_backend *be, const float *w) {
    sam_cpu_backend *cb = (sam_cpu_backend *)be;
    pthread_mutex_lock(&cb->wreg_mu);
    if (cb->wreg_n && w) {
        size_t i = wreg_slot(cb, w);
        while (cb->wreg[i].w && cb->wreg[i].w != w) i = (i + 1) & (cb->wreg_cap - 1);
        if (cb->wreg[i].w == w) {
            cb->wreg_bytes -= (size_t)((cb->wreg[i].N + NR - 1) / NR) * cb->wreg[i].Kp * NR * sizeof(uint16_t);
            sam_free(cb->wreg[i].wp);
            /* re-insert the rest of the cluster so lookups still find them */
            cb->wreg[i].w = NULL;
            cb->wreg_n--;
            for (size_t j = (i + 1) & (cb->wreg_cap - 1); cb->wreg[j].w; j = (j + 1) & (cb->wreg_cap - 1)) {
                struct sam_bf16_wentry e = cb->wreg[j];
                cb->wreg[j].w = NULL;
                wreg_put(cb->wreg, cb->wreg_cap, e);
            }
        }
    }
    pthread_mutex_unlock(&cb->wreg_mu);
}

/* The prepared panels of w for this shape and path, or NULL. */
static const uint16_t *wreg_find(sam_backend *be, const float *w, int N, int K, int Kp) {
    sam_cpu_backend *cb = (sam_cpu_backend *)be;
    const uint16_t *r = NULL;
    pthread_mutex_lock(&cb->wreg_mu);
    if (cb->wreg_n) {
        size_t i = wreg_slot(cb, w);
        while (cb->wreg[i].w && cb->wreg[i].w != w) i = (i + 1) & (cb->wreg_cap - 1);
        if (cb->wreg[i].w == w && cb->wreg[i].N == N && cb->wreg[i].K == K && cb->wreg[i].Kp == Kp) r = cb->wreg[i].wp;
    }
    pthread_mutex_unlock(&cb->wreg_mu);
    return r;
}

void sam_cpu_wreg_free(sam_backend *be) {
    sam_cpu_backend *cb = (sam_cpu_backend *)be;
    for (size_t i = 0; i < cb->wreg_cap; i++)
        if (cb->wreg[i].w) sam_free(cb->wreg[i].wp);
    sam_free(cb->wreg);
    cb->wreg = NULL;
    cb->wreg_cap = cb->wreg_n = cb->wreg_bytes = 0;
}

size_t sam_bf16_prepared_bytes(sam_backend *be) {
    sam_cpu_backend *cb = (sam_cpu_backend *)be;
    pthread_mutex_lock(&cb->wreg_mu);
    size_t b = cb->wreg_bytes;
    pthread_mutex_unlock(&cb->wreg_mu);
    return b;
}

/* ---- linear --------------------------------------------------------------- */

typedef struct {
    float *y;          /* (M, N) */
    const float *x;    /* (M, K) */
    const float *b;    /* (N) or NULL */
    const uint16_t *wp; /* (npanels, Kp/2, NR, 2) packed weights */
    const float *w;    /* (N, K), for packing */
    int M, N, K, Kp, npanels, nmb, nnb;
    uint16_t *abuf;    /* per thread (MCp, Kp) */
    size_t a_per;      /* bf16 elements per thread */
    float *cbuf;       /* per thread (32, 32) AMX output block */
    bool amx;
    block_fn blk;
    const sam_cpu_ep *ep; /* epilogue or NULL */
    float *tbuf;       /* per thread (MC, NC): the residual tile when it is y itself */
} lin_ctx;

/* bf16 results are ~1e-3 from fp32 anyway: GELU with the fast reciprocal. */
static inline sam_act ep_act(const sam_cpu_ep *ep) { return ep->act == SAM_ACT_GELU ? SAM_CPU_ACT_GELU_FAST : ep->act; }

/* The residual tile of an item (rows m0.., columns n0..n1): y accumulates over
 * k blocks, so a residual that is y itself is saved first. *ldr receives its stride. */
static const float *item_res(const lin_ctx *c, int tid, int m0, int mr, int n0, int n1, int64_t *ldr) {
    *ldr = c->N;
    if (!c->ep || !c->ep->res) return NULL;
    const float *res = c->ep->res + (int64_t)m0 * c->N + n0;
    if (res != c->y + (int64_t)m0 * c->N + n0) return res;
    float *t = c->tbuf + (size_t)tid * MC * NC;
    for (int r = 0; r < mr; r++) memcpy(t + (size_t)r * NC, res + (int64_t)r * c->N, sizeof(float) * (size_t)(n1 - n0));
    *ldr = NC;
    return t;
}

static void lin_pack(void *vc, int64_t p0, int64_t p1, int tid) {
    (void)tid;
    const lin_ctx *c = vc;
    for (int64_t p = p0; p < p1; p++)
        pack_b_panel((uint16_t *)c->wp + p * (int64_t)c->Kp * NR, c->w, c->K, c->N, c->K, c->Kp, (int)p);
}

/* AMX: A rows padded with zeros to a multiple of 32, K to a multiple of 32. */
static void lin_items_amx(const lin_ctx *c, int64_t i0, int64_t i1, int tid) {
    uint16_t *a = c->abuf + (size_t)tid * c->a_per;
    float *cb = c->cbuf + (size_t)tid * 32 * 32;
    int last_mb = -1;
    amx_begin();
    for (int64_t it = i0; it < i1; it++) {
        const int mb = (int)(it / c->nnb), nb = (int)(it % c->nnb);
        const int m0 = mb * MC, mr = c->M - m0 < MC ? c->M - m0 : MC, mrp = (mr + 31) & ~31;
        if (mb != last_mb) {
            pack_a(a, c->Kp, c->x, c->K, m0, m0 + mr, c->K);
            memset(a + (int64_t)mr * c->Kp, 0, sizeof(uint16_t) * (size_t)(mrp - mr) * c->Kp);
            last_mb = mb;
        }
        const int p0 = nb * (NC / NR), p1 = p0 + NC / NR < c->npanels ? p0 + NC / NR : c->npanels;
        for (int i = 0; i < mr; i += 32)
            for (int p = p0; p < p1; p++) {
                const int n0 = p * NR, ncols = c->N - n0 < NR ? c->N - n0 : NR, rows = mr - i < 32 ? mr - i : 32;
                float *yt = c->y + (int64_t)(m0 + i) * c->N + n0;
                amx_block(a + (int64_t)i * c->Kp, c->Kp, c->wp + (int64_t)p * c->Kp * NR, c->Kp, cb);
                if (c->ep) /* the whole K is in cb: the residual (even y itself) is read before y is written */
                    sam_cpu_ep_apply(yt, c->N, cb, 32, rows, ncols, c->b ? c->b + n0 : NULL, ep_act(c->ep),
                                     c->ep->res ? c->ep->res + (int64_t)(m0 + i) * c->N + n0 : NULL, c->N);
                else
                    amx_out(yt, c->N, cb, rows, ncols, c->b ? c->b + n0 : NULL);
            }
    }
    amx_end();
}

static void lin_items(void *vc, int64_t i0, int64_t i1, int tid) {
    const lin_ctx *c = vc;
    if (c->amx) {
        lin_items_amx(c, i0, i1, tid);
        return;
    }
    uint16_t *a = c->abuf + (size_t)tid * c->a_per;
    int last_mb = -1;
    for (int64_t it = i0; it < i1; it++) {
        /* items are ordered m-block major: the converted rows are reused across n-blocks */
        const int mb = (int)(it / c->nnb), nb = (int)(it % c->nnb);
        const int m0 = mb * MC, mr = c->M - m0 < MC ? c->M - m0 : MC;
        if (mb != last_mb) {
            pack_a(a, c->Kp, c->x, c->K, m0, m0 + mr, c->K);
            last_mb = mb;
        }
        const int p0 = nb * (NC / NR), p1 = p0 + NC / NR < c->npanels ? p0 + NC / NR : c->npanels;
        int64_t ldr;
        const float *res = item_res(c, tid, m0, mr, p0 * NR, p1 * NR < c->N ? p1 * NR : c->N, &ldr);
        for (int k0 = 0; k0 < c->Kp; k0 += KC) {
            const int kc = c->Kp - k0 < KC ? c->Kp - k0 : KC;
            for (int p = p0; p < p1; p++) {
                const int n0 = p * NR, ncols = c->N - n0 < NR ? c->N - n0 : NR;
                const uint16_t *bp = c->wp + (int64_t)p * c->Kp * NR + (int64_t)k0 * NR;
                float *yt = c->y + (int64_t)m0 * c->N + n0;
                c->blk(mr, kc, a + k0, c->Kp, bp, yt, c->N, ncols, c->b ? c->b + n0 : NULL, k0 == 0);
                if (c->ep && k0 + kc >= c->Kp) /* the panel is final and in L1 */
                    sam_cpu_ep_apply(yt, c->N, yt, c->N, mr, ncols, NULL, ep_act(c->ep),
                                     res ? res + (n0 - p0 * NR) : NULL, ldr);
            }
        }
    }
}

bool sam_cpu_linear_bf16(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N,
                         int K) {
    return sam_cpu_linear_bf16_ep(be, y, x, w, b, M, N, K, NULL);
}

bool sam_cpu_linear_bf16_ep(sam_backend *be, float *y, const float *x, const float *w, const float *b, int M, int N,
                            int K, const sam_cpu_ep *ep) {
    if (M <= 0 || N <= 0 || K <= 0) return false;
    if (sam_cpu_ep_none(ep)) ep = NULL;
    const int nt = sam_cpu_threads(be);
    const int path = pick_path();
    const bool amx = path == SAM_BF16_PATH_AMX;
    const int Kp = padded_k(K, path), npanels = (N + NR - 1) / NR;
    const uint16_t *prepared = wreg_find(be, w, N, K, Kp);
    const size_t wp_n = prepared ? 0 : (size_t)npanels * Kp * NR; /* bf16 elements packed per call */
    size_t a_per = (size_t)((MC + 31) & ~31) * Kp;
    a_per = (a_per + 31) & ~(size_t)31;
    const size_t cb_f = (size_t)nt * 32 * 32;
    const size_t tb_f = ep && ep->res == y && !amx ? (size_t)nt * MC * NC : 0; /* residual tiles */
    const size_t want_f = (wp_n + a_per * (size_t)nt + 64) / 2 + 16 + cb_f + tb_f; /* in floats */
    size_t got;
    float *s = sam_cpu_scratch_lock(be, want_f, &got);
    if (got < want_f) {
        sam_cpu_scratch_unlock(be);
        return false; /* too large for the scratch: the caller runs fp32 */
    }
    lin_ctx c;
    c.y = y;
    c.x = x;
    c.b = b;
    c.w = w;
    c.M = M;
    c.N = N;
    c.K = K;
    c.Kp = Kp;
    c.npanels = npanels;
    c.nmb = (M + MC - 1) / MC;
    c.nnb = (N + NC - 1) / NC;
    c.wp = (const uint16_t *)s;
    c.abuf = (uint16_t *)s + ((wp_n + 31) & ~(size_t)31);
    c.a_per = a_per;
    c.cbuf = s + (want_f - cb_f - tb_f);
    c.tbuf = s + (want_f - tb_f);
    c.ep = ep;
    c.amx = amx;
    c.blk = path_block(path);
    if (prepared)
        c.wp = prepared;
    else
        sam_parallel_for(be->pool, npanels, 1, lin_pack, &c);
    sam_parallel_for(be->pool, (int64_t)c.nmb * c.nnb, 1, lin_items, &c);
    sam_cpu_scratch_unlock(be);
    return true;
}

/* ---- attention -------------------------------------------------------------
 * K and V of every (batch, head) are packed once into bf16 panels (K as the B
 * operand of S = Q K^T, V as the B operand of O = P V; keys padded to a
 * multiple of 32 with zeros). A work item takes up to 128 queries (4 blocks
 * of 32 rows) and walks the keys in chunks of 512 with an online softmax:
 * S for the chunk (fp32), a running max and sum per query, the unnormalised
 * exponentials rounded to bf16 for P V, and the fp32 output accumulator
 * rescaled when the max grows. Each K/V panel is read once per 128 queries
 * (the packed bank is ~18 MB for SAM 2's memory attention: streaming it once
 * per 32 queries made that call memory-bound), and the per-thread buffers
 * stay in L2 whatever Lk is. */

#define AQ 32   /* rows per block (one AMX block of rows) */
#define AQB 4   /* blocks per item: 128 queries */
#define KCH 512 /* keys per chunk */

typedef struct {
    float *out;
    const float *q, *k, *v;
    const sam_attn_params *p;
    int dqp, dvp, Lkp, nqt, nkp, nvp, nrb;
    uint16_t *kp;   /* (batch*heads, nkp, dqp/2, 32, 2) */
    uint16_t *vp;   /* (batch*heads, nvp, Lkp/2, 32, 2) */
    uint16_t *abuf; /* per thread: Q (nrb*AQ, dqp) then P (nrb*AQ, KCH) bf16 */
    size_t a_per;
    float *sbuf;    /* per thread: S (nrb*AQ, KCH), O (nrb*AQ, dvp), (AQ, 32) block, max and sum (nrb*AQ) */
    size_t s_per;
    int path;
    block_fn blk;
} att16_ctx;

/* bf16 bits (as f2bf) of 16 floats, in the low half of 32-bit lanes. */
static TGT_F inline __m512i bf16_bits(__m512 x) {
    const __m512i u = _mm512_castps_si512(x);
    const __mmask16 isnan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                    _mm512_set1_epi32(0x7f800000));
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb)), 16);
    return _mm512_mask_mov_epi32(r, isnan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
}

/* V rows (Lk, dv) at stride ldv, columns [32j, 32j+32) -> (Lkp/2, 32, 2), zero outside.
 * Two key rows at a time: their values pair up into 32-bit words. */
static TGT_F void pack_v_panel(uint16_t *bp, const float *V, int64_t ldv, int Lk, int dv, int Lkp, int j) {
    const int nc = dv - j * NR < NR ? dv - j * NR : NR;
    const __mmask16 m0 = nc >= 16 ? 0xffff : (__mmask16)((1u << nc) - 1);
    const __mmask16 m1 = nc >= 32 ? 0xffff : nc <= 16 ? 0 : (__mmask16)((1u << (nc - 16)) - 1);
    for (int kk = 0; kk < Lkp; kk += 2) {
        const float *r0 = V + (int64_t)kk * ldv + j * NR, *r1 = r0 + ldv;
        const __mmask16 a0 = kk < Lk ? m0 : 0, a1 = kk < Lk ? m1 : 0;
        const __mmask16 b0 = kk + 1 < Lk ? m0 : 0, b1 = kk + 1 < Lk ? m1 : 0;
        const __m512i lo0 = bf16_bits(_mm512_maskz_loadu_ps(a0, r0)), lo1 = bf16_bits(_mm512_maskz_loadu_ps(a1, r0 + 16));
        const __m512i hi0 = bf16_bits(_mm512_maskz_loadu_ps(b0, r1)), hi1 = bf16_bits(_mm512_maskz_loadu_ps(b1, r1 + 16));
        uint16_t *d = bp + (int64_t)(kk >> 1) * 2 * NR;
        _mm512_storeu_si512(d, _mm512_or_si512(lo0, _mm512_slli_epi32(hi0, 16)));
        _mm512_storeu_si512(d + NR, _mm512_or_si512(lo1, _mm512_slli_epi32(hi1, 16)));
    }
}

static void att16_pack(void *vc, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const att16_ctx *c = vc;
    const sam_attn_params *p = c->p;
    const int per = c->nkp + c->nvp;
    for (int64_t it = i0; it < i1; it++) {
        const int64_t bh = it / per;
        const int j = (int)(it % per), h = (int)(bh % p->heads);
        const int64_t b = bh / p->heads;
        if (j < c->nkp) {
            const float *K = c->k + b * p->k_batch + (int64_t)h * p->d_qk;
            pack_b_panel(c->kp + (bh * c->nkp + j) * (int64_t)c->dqp * NR, K, p->k_stride, p->Lk, p->d_qk, c->dqp, j);
        } else {
            const int jv = j - c->nkp;
            const float *V = c->v + b * p->v_batch + (int64_t)h * p->d_v;
            pack_v_panel(c->vp + (bh * c->nvp + jv) * (int64_t)c->Lkp * NR, V, p->v_stride, p->Lk, p->d_v, c->Lkp, jv);
        }
    }
}

/* out (32, 32) at ldo = A (32, Kp) . panel, through whichever kernel the path has. */
static inline void panel_prod(const att16_ctx *c, const uint16_t *A, int64_t lda, const uint16_t *B, int Kp,
                              float *out, int64_t ldo) {
    if (c->path == SAM_BF16_PATH_AMX)
        amx_block_ld(A, lda, B, Kp, out, ldo);
    else
        c->blk(AQ, Kp, A, lda, B, out, ldo, NR, NULL, true);
}

/* exp(x) for x <= 0 to well within bf16 rounding (relative error < 5e-5):
 * 2^t = 2^n * 2^f, |f| <= 1/2, 2^f by its degree-5 Taylor series; scalef
 * applies 2^n and gives 0 for very negative t (and exp(-inf) = 0). */
static TGT_F inline __m512 exp_bf16ish(__m512 x) {
    const __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504f));
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_mul_ps(_mm512_sub_ps(t, n), _mm512_set1_ps(0.69314718f));
    __m512 p = _mm512_set1_ps(1.0f / 120);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* One query's chunk of scores s (kc, the first nvalid real): with its running
 * max *m (raw score units) and sum *l, writes p (kc) bf16 = exp((s - m') *
 * scale) (0 after the real keys), updates *m and *l, and returns the factor
 * exp((m - m') * scale) the query's accumulated output must be scaled by. */
static TGT_F float softmax_chunk_bf16(const float *s, uint16_t *p, int nvalid, int kc, float scale, float *m,
                                      float *l) {
    __m512 vm = _mm512_set1_ps(-INFINITY);
    int k = 0;
    for (; k + 16 <= nvalid; k += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(s + k));
    const __mmask16 tail = (__mmask16)((1u << (nvalid - k)) - 1);
    if (tail) vm = _mm512_mask_max_ps(vm, tail, vm, _mm512_maskz_loadu_ps(tail, s + k));
    const float cmax = _mm512_reduce_max_ps(vm);
    const float mold = *m, mx = cmax > mold ? cmax : mold;
    const float corr = mold == -INFINITY ? 0.0f : expf((mold - mx) * scale);
    const __m512 vmx = _mm512_set1_ps(mx), vsc = _mm512_set1_ps(scale);
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), qnan = _mm512_set1_epi32(0x40);
    __m512 sum = _mm512_setzero_ps();
    for (k = 0; k < kc; k += 16) {
        const int left = nvalid - k;
        const __mmask16 mk = left >= 16 ? 0xffff : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
        const __m512 x = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mk, s + k), vmx), vsc);
        const __m512 e = _mm512_maskz_mov_ps(mk, exp_bf16ish(x));
        sum = _mm512_add_ps(sum, e);
        /* to bf16, rounding as f2bf */
        const __m512i u = _mm512_castps_si512(e);
        const __mmask16 isnan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, absmask), inf);
        const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(bias, lsb)), 16);
        r = _mm512_mask_mov_epi32(r, isnan, _mm512_or_si512(_mm512_srli_epi32(u, 16), qnan));
        _mm256_storeu_si256((__m256i *)(p + k), _mm512_cvtepi32_epi16(r));
    }
    *l = *l * corr + _mm512_reduce_add_ps(sum);
    *m = mx;
    return corr;
}

static void att16_items(void *vc, int64_t i0, int64_t i1, int tid) {
    const att16_ctx *c = vc;
    const sam_attn_params *p = c->p;
    const int dqp = c->dqp, dvp = c->dvp, nrb = c->nrb, QR = nrb * AQ;
    uint16_t *Qb = c->abuf + (size_t)tid * c->a_per; /* (QR, dqp) */
    uint16_t *P = Qb + (size_t)QR * dqp;              /* (QR, KCH) */
    float *S = c->sbuf + (size_t)tid * c->s_per;      /* (QR, KCH) */
    float *O = S + (size_t)QR * KCH;                  /* (QR, dvp) */
    float *cb = O + (size_t)QR * dvp;                 /* (AQ, 32) */
    float *mrow = cb + AQ * 32;                       /* (QR) */
    float *lrow = mrow + QR;                          /* (QR) */
    if (c->path == SAM_BF16_PATH_AMX) amx_begin();
    for (int64_t it = i0; it < i1; it++) {
        const int qt = (int)(it % c->nqt);
        const int64_t bh = it / c->nqt;
        const int h = (int)(bh % p->heads);
        const int64_t b = bh / p->heads;
        const int q0 = qt * QR, nq = p->Lq - q0 < QR ? p->Lq - q0 : QR;
        const int nb = (nq + AQ - 1) / AQ; /* row blocks in use */
        const float *Q = c->q + b * p->q_batch + (int64_t)q0 * p->q_stride + (int64_t)h * p->d_qk;
        float *out = c->out + b * p->o_batch + (int64_t)q0 * p->o_stride + (int64_t)h * p->d_v;
        const uint16_t *Kp = c->kp + bh * c->nkp * (int64_t)dqp * NR;
        const uint16_t *Vp = c->vp + bh * c->nvp * (int64_t)c->Lkp * NR;
        /* queries -> bf16 rows, zero padded */
        for (int i = 0; i < nb * AQ; i++) {
            uint16_t *d = Qb + (int64_t)i * dqp;
            if (i < nq) {
                sam_bf16_from_f32(d, Q + (int64_t)i * p->q_stride, p->d_qk);
                memset(d + p->d_qk, 0, sizeof(uint16_t) * (size_t)(dqp - p->d_qk));
            } else {
                memset(d, 0, sizeof(uint16_t) * (size_t)dqp);
            }
            mrow[i] = -INFINITY;
            lrow[i] = 0.0f;
        }
        memset(O, 0, sizeof(float) * (size_t)nb * AQ * dvp);
        for (int c0 = 0; c0 < c->Lkp; c0 += KCH) {
            const int kc = c->Lkp - c0 < KCH ? c->Lkp - c0 : KCH, nvalid = p->Lk - c0 < kc ? p->Lk - c0 : kc;
            /* S chunk: each K panel read once for all row blocks */
            for (int j = 0; j < kc / NR; j++) {
                const uint16_t *kpan = Kp + (int64_t)(c0 / NR + j) * dqp * NR;
                for (int rb = 0; rb < nb; rb++)
                    panel_prod(c, Qb + (int64_t)rb * AQ * dqp, dqp, kpan, dqp, S + (size_t)rb * AQ * KCH + j * NR, KCH);
            }
            for (int i = 0; i < nb * AQ; i++) {
                uint16_t *prow = P + (size_t)i * KCH;
                if (i >= nq) {
                    memset(prow, 0, sizeof(uint16_t) * (size_t)kc);
                    continue;
                }
                const float corr =
                    softmax_chunk_bf16(S + (size_t)i * KCH, prow, nvalid, kc, p->scale, mrow + i, lrow + i);
                if (corr != 1.0f) {
                    float *o = O + (size_t)i * dvp;
                    for (int e = 0; e < dvp; e++) o[e] *= corr;
                }
            }
            /* O += P V for the chunk: the V panel slice (kc keys) serves every row block */
            for (int j = 0; j < c->nvp; j++) {
                const uint16_t *vpan = Vp + (int64_t)j * c->Lkp * NR + (int64_t)(c0 / 2) * 2 * NR;
                for (int rb = 0; rb < nb; rb++) {
                    panel_prod(c, P + (size_t)rb * AQ * KCH, KCH, vpan, kc, cb, NR);
                    for (int r = 0; r < AQ; r++) {
                        float *o = O + (size_t)(rb * AQ + r) * dvp + j * NR;
                        const float *src = cb + r * NR;
                        for (int e = 0; e < NR; e++) o[e] += src[e];
                    }
                }
            }
        }
        for (int i = 0; i < nq; i++) {
            const float inv = 1.0f / lrow[i];
            const float *o = O + (size_t)i * dvp;
            float *dst = out + (int64_t)i * p->o_stride;
            for (int e = 0; e < p->d_v; e++) dst[e] = o[e] * inv;
        }
    }
    if (c->path == SAM_BF16_PATH_AMX) amx_end();
}

bool sam_cpu_attention_bf16(sam_backend *be, float *out, const float *q, const float *k, const float *v,
                            const sam_attn_params *p) {
    const int path = pick_path();
    if (path == SAM_BF16_PATH_C || p->Lk <= 0 || p->Lq <= 0 || p->batch <= 0 || p->heads <= 0) return false;
    const int nt = sam_cpu_threads(be);
    att16_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out;
    c.q = q;
    c.k = k;
    c.v = v;
    c.p = p;
    c.dqp = (p->d_qk + 31) & ~31;
    c.dvp = (p->d_v + 31) & ~31;
    c.Lkp = (p->Lk + 31) & ~31;
    const int64_t bh = (int64_t)p->batch * p->heads;
    /* 128 queries per item unless that leaves a thread idle */
    c.nrb = AQB;
    while (c.nrb > 1 && (c.nrb - 1) * AQ >= p->Lq) c.nrb--;
    while (c.nrb > 1 && bh * ((p->Lq + c.nrb * AQ - 1) / (c.nrb * AQ)) < 2 * nt) c.nrb--;
    const int QR = c.nrb * AQ;
    c.nqt = (p->Lq + QR - 1) / QR;
    c.nkp = c.Lkp / NR;
    c.nvp = c.dvp / NR;
    const size_t kp_n = (size_t)bh * c.nkp * c.dqp * NR, vp_n = (size_t)bh * c.nvp * c.Lkp * NR; /* bf16 */
    c.a_per = ((size_t)QR * (c.dqp + KCH) + 31) & ~(size_t)31;
    c.s_per = ((size_t)QR * KCH + (size_t)QR * c.dvp + AQ * 32 + 2 * (size_t)QR + 15) & ~(size_t)15;
    const size_t bf_n = ((kp_n + 31) & ~(size_t)31) + ((vp_n + 31) & ~(size_t)31) + c.a_per * nt;
    const size_t want_f = bf_n / 2 + c.s_per * nt + 16;
    size_t got;
    float *s = sam_cpu_scratch_lock(be, want_f, &got);
    if (got < want_f) {
        sam_cpu_scratch_unlock(be);
        return false; /* too big for the scratch: the fp32 kernel (tiled) runs instead */
    }
    c.sbuf = s; /* 64-byte aligned: the scratch is */
    uint16_t *h16 = (uint16_t *)(s + c.s_per * nt);
    c.kp = h16;
    c.vp = h16 + ((kp_n + 31) & ~(size_t)31);
    c.abuf = c.vp + ((vp_n + 31) & ~(size_t)31);
    c.path = path;
    c.blk = path_block(path);
    sam_parallel_for(be->pool, bh * (c.nkp + c.nvp), 4, att16_pack, &c);
    sam_parallel_for(be->pool, bh * c.nqt, 1, att16_items, &c);
    sam_cpu_scratch_unlock(be);
    return true;
}
