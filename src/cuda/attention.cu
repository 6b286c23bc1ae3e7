/* Multi-head attention without the full score matrix, two ways.
 *
 * Fused (flash style), for many small problems: a block owns BQ queries of
 * one (batch, head); it walks the keys in tiles of BK held in shared memory
 * with the values, keeping per query a running max and sum (online softmax)
 * and rescaling its output accumulator, which lives in registers. fp32
 * (bf16 mode too, for now: no tensor cores here).
 *
 * Chunked, for a few big problems: see attention_chunked below.
 *
 * Thread layout (128 threads): thread t serves query row r = t / 4 of the
 * tile and lane c4 = t % 4 of it: scores of keys c4 + 4u (u < 8) and output
 * columns c4 + 4j (j < NJ). The four threads of a row are neighbours in one
 * warp, so row max / sum are two shuffles and P needs only __syncwarp. */
#include <math.h>

#include "cuda/cuda_internal.cuh"

#define BQ 32
#define BK 32
#define ATT_THREADS 128
#define ATT_DMAX 256

typedef struct {
    const float *q, *k, *v;
    float *out;
    int heads, Lq, Lk, dq, dv, nqt;
    int64_t q_stride, k_stride, v_stride, o_stride;
    int64_t q_batch, k_batch, v_batch, o_batch;
    float scale;
} attn_args;

/* NJ = output columns per thread = ceil(d_v / 4), rounded up to a supported size. */
template <int NJ>
__global__ void __launch_bounds__(ATT_THREADS) attn_kernel(attn_args a) {
    extern __shared__ float smem[];
    const int dq = a.dq, dv = a.dv, dqp = dq + 1; /* +1: rows of Q and K fall in different banks */
    float *Qs = smem;                    /* (BQ, dqp) */
    float *Ks = Qs + BQ * dqp;           /* (BK, dqp) */
    float *Vs = Ks + BK * dqp;           /* (BK, dv) */
    float *Ps = Vs + BK * dv;            /* (BQ, BK + 1) probabilities of the tile */

    const int tid = threadIdx.x, r = tid >> 2, c4 = tid & 3;
    const int qt = (int)(blockIdx.x % a.nqt);
    const int64_t bh = blockIdx.x / a.nqt;
    const int h = (int)(bh % a.heads);
    const int64_t b = bh / a.heads;
    const int q0 = qt * BQ;
    const float *Q = a.q + b * a.q_batch + (int64_t)h * dq;
    const float *K = a.k + b * a.k_batch + (int64_t)h * dq;
    const float *V = a.v + b * a.v_batch + (int64_t)h * dv;

    for (int e = tid; e < BQ * dq; e += ATT_THREADS) {
        const int i = e / dq, d = e % dq;
        Qs[i * dqp + d] = q0 + i < a.Lq ? Q[(int64_t)(q0 + i) * a.q_stride + d] : 0.0f;
    }

    float o[NJ];
#pragma unroll
    for (int j = 0; j < NJ; j++) o[j] = 0.0f;
    float m = -INFINITY, l = 0.0f;

    for (int k0 = 0; k0 < a.Lk; k0 += BK) {
        __syncthreads(); /* the previous tile is consumed (and Q is loaded on the first) */
        for (int e = tid; e < BK * dq; e += ATT_THREADS) {
            const int c = e / dq, d = e % dq;
            Ks[c * dqp + d] = k0 + c < a.Lk ? K[(int64_t)(k0 + c) * a.k_stride + d] : 0.0f;
        }
        for (int e = tid; e < BK * dv; e += ATT_THREADS) {
            const int c = e / dv, d = e % dv;
            Vs[c * dv + d] = k0 + c < a.Lk ? V[(int64_t)(k0 + c) * a.v_stride + d] : 0.0f; /* 0, not garbage: p = 0 there */
        }
        __syncthreads();

        float s[BK / 4];
#pragma unroll
        for (int u = 0; u < BK / 4; u++) s[u] = 0.0f;
        const float *qr = Qs + r * dqp;
        for (int d = 0; d < dq; d++) {
            const float qv = qr[d];
#pragma unroll
            for (int u = 0; u < BK / 4; u++) s[u] += qv * Ks[(c4 + 4 * u) * dqp + d];
        }
        float mt = -INFINITY;
#pragma unroll
        for (int u = 0; u < BK / 4; u++) {
            s[u] = k0 + c4 + 4 * u < a.Lk ? s[u] * a.scale : -INFINITY;
            mt = fmaxf(mt, s[u]);
        }
        mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 1));
        mt = fmaxf(mt, __shfl_xor_sync(0xffffffffu, mt, 2));
        const float mn = fmaxf(m, mt);
        const float corr = expf(m - mn); /* 0 on the first tile (m = -inf) */
        float sum = 0.0f;
#pragma unroll
        for (int u = 0; u < BK / 4; u++) {
            const float p = expf(s[u] - mn);
            sum += p;
            Ps[r * (BK + 1) + c4 + 4 * u] = p;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        l = l * corr + sum;
        m = mn;
        __syncwarp(); /* the row's P is written by the 4 threads of this warp that read it */

#pragma unroll
        for (int j = 0; j < NJ; j++) o[j] *= corr;
        const float *pr = Ps + r * (BK + 1);
        for (int c = 0; c < BK; c++) {
            const float p = pr[c];
            const float *vr = Vs + c * dv + c4;
#pragma unroll
            for (int j = 0; j < NJ; j++)
                if (c4 + 4 * j < dv) o[j] += p * vr[4 * j];
        }
    }

    if (q0 + r < a.Lq) {
        float *O = a.out + b * a.o_batch + (int64_t)(q0 + r) * a.o_stride + (int64_t)h * dv;
        const float inv = 1.0f / l;
#pragma unroll
        for (int j = 0; j < NJ; j++)
            if (c4 + 4 * j < dv) O[c4 + 4 * j] = o[j] * inv;
    }
}

/* Lk == 0: the output rows are zeros (as the CPU defines it). */
__global__ void attn_zero_kernel(float *out, int64_t batch, int Lq, int width, int64_t o_stride, int64_t o_batch) {
    const int64_t total = batch * Lq * width;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int e = (int)(i % width);
        const int64_t t = i / width;
        out[(t / Lq) * o_batch + (t % Lq) * o_stride + e] = 0.0f;
    }
}

template <int NJ>
static void launch(sam_cuda_backend *cb, const attn_args &a, int64_t blocks, size_t smem) {
    if (!CUDA_CHECK(cb, cudaFuncSetAttribute(attn_kernel<NJ>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem)))
        return;
    attn_kernel<NJ><<<(unsigned)blocks, ATT_THREADS, smem, cb->stream>>>(a);
    KERNEL_CHECK(cb);
}

/* ---- large problems: key chunks through cuBLAS ---------------------------------------
 * For one big (batch, head) problem (the memory attention: 4096 queries over
 * ~29k keys, d 256) the products dominate and cuBLAS runs them several times
 * faster than the kernel above. Keys are taken in chunks of Ck: S = scale Q
 * K_c^T (Lq, Ck) in the scratch (bounded: never the whole score matrix),
 * then a row kernel does the online-softmax step (running max / sum per
 * query, P = exp(S - max) in place, rescale of the output rows so far), and
 * O += P V_c accumulates straight into the output rows. */

#ifndef CHUNK_SCORES /* (tests may build with a smaller one) */
#define CHUNK_SCORES ((int64_t)16 << 20) /* floats of one score chunk (64 MiB) */
#endif

/* One warp per query row. first: the first chunk (nothing accumulated yet). */
__global__ void chunk_softmax_kernel(float *S, int64_t Lq, int Ck, int nk, float *m, float *l, float *O,
                                     int64_t o_stride, int dv, int first) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
    for (int64_t r = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5); r < Lq; r += warps) {
        float *s = S + r * Ck;
        /* every lane reads the running values before the shuffles below, lane 0 alone writes them after */
        const float m_old = first ? -INFINITY : m[r], l_old = first ? 0.0f : l[r];
        float mx = -INFINITY;
        for (int j = lane; j < nk; j += 32) mx = fmaxf(mx, s[j]);
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        const float mn = fmaxf(m_old, mx);
        const float corr = first ? 0.0f : expf(m_old - mn);
        double sum = 0;
        for (int j = lane; j < nk; j += 32) {
            const float e = expf(s[j] - mn);
            s[j] = e;
            sum += e;
        }
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (lane == 0) {
            l[r] = l_old * corr + (float)sum;
            m[r] = mn;
        }
        if (!first && corr != 1.0f) {
            float *orow = O + r * o_stride;
            for (int e = lane; e < dv; e += 32) orow[e] *= corr;
        }
    }
}

/* O rows (Lq, dv) at o_stride /= l */
__global__ void chunk_finish_kernel(float *O, int64_t Lq, int dv, int64_t o_stride, const float *l) {
    const int64_t total = Lq * dv;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / dv;
        O[r * o_stride + i % dv] *= 1.0f / l[r];
    }
}

static void attention_chunked(sam_cuda_backend *cb, float *out, const float *q, const float *k, const float *v,
                              const sam_attn_params *p) {
    const int64_t Lq = p->Lq;
    int64_t ck = CHUNK_SCORES / Lq;
    if (ck < 256) ck = 256;
    if (ck > p->Lk) ck = p->Lk;
    const int Ck = (int)ck;
    float *S = (float *)sam_cuda_scratch(cb, sizeof(float) * ((size_t)Lq * Ck + 2 * (size_t)Lq));
    if (!S) return; /* error recorded */
    float *m = S + (size_t)Lq * Ck, *l = m + Lq;
    for (int64_t b = 0; b < p->batch; b++)
        for (int h = 0; h < p->heads; h++) {
            const float *Q = q + b * p->q_batch + (int64_t)h * p->d_qk;
            const float *K = k + b * p->k_batch + (int64_t)h * p->d_qk;
            const float *V = v + b * p->v_batch + (int64_t)h * p->d_v;
            float *O = out + b * p->o_batch + (int64_t)h * p->d_v;
            for (int k0 = 0; k0 < p->Lk; k0 += Ck) {
                const int nk = p->Lk - k0 < Ck ? p->Lk - k0 : Ck, first = k0 == 0;
                sam_cuda_sgemm_locked(cb, false, true, (int)Lq, nk, p->d_qk, p->scale, Q, p->q_stride,
                                      K + (int64_t)k0 * p->k_stride, p->k_stride, 0.0f, S, Ck);
                chunk_softmax_kernel<<<sam_cuda_blocks(Lq * 32, 256), 256, 0, cb->stream>>>(S, Lq, Ck, nk, m, l, O,
                                                                                             p->o_stride, p->d_v, first);
                KERNEL_CHECK(cb);
                sam_cuda_sgemm_locked(cb, false, false, (int)Lq, p->d_v, nk, 1.0f, S, Ck,
                                      V + (int64_t)k0 * p->v_stride, p->v_stride, first ? 0.0f : 1.0f, O, p->o_stride);
            }
            chunk_finish_kernel<<<sam_cuda_blocks(Lq * p->d_v, 256), 256, 0, cb->stream>>>(O, Lq, p->d_v,
                                                                                            p->o_stride, l);
            KERNEL_CHECK(cb);
        }
}

extern "C" void sam_cuda_set_attention_path(sam_backend *be, int path) {
    sam_cuda_backend *cb = sam_cuda_lock(be);
    cb->attn_path = path;
    sam_cuda_unlock(cb);
}

void sam_cuda_attention(sam_backend *be, float *out, const float *q, const float *k, const float *v,
                        const sam_attn_params *p) {
    if (p->batch <= 0 || p->heads <= 0 || p->Lq <= 0 || p->d_v <= 0) return;
    sam_cuda_backend *cb = sam_cuda_lock(be);
    if (p->Lk <= 0) {
        const int width = p->heads * p->d_v;
        const int64_t total = (int64_t)p->batch * p->Lq * width;
        attn_zero_kernel<<<sam_cuda_blocks(total, 256), 256, 0, cb->stream>>>(out, p->batch, p->Lq, width, p->o_stride,
                                                                                p->o_batch);
        KERNEL_CHECK(cb);
        sam_cuda_unlock(cb);
        return;
    }
    /* Few big problems (memory attention) go to cuBLAS; many small ones
     * (windows, heads of the decoder) to the fused kernel. */
    const int64_t bh = (int64_t)p->batch * p->heads;
    const bool big = (int64_t)p->Lq * p->Lk >= ((int64_t)1 << 21) && bh <= 32 && p->Lq >= 256;
    const bool wide = p->d_qk > ATT_DMAX || p->d_v > ATT_DMAX;
    int path = cb->attn_path;
    if (path == SAM_CUDA_ATTN_AUTO) path = big || wide ? SAM_CUDA_ATTN_CHUNKED : SAM_CUDA_ATTN_FLASH;
    if (path == SAM_CUDA_ATTN_CHUNKED && p->d_qk > 0 && p->Lq <= 0x7fffffff / 2) {
        attention_chunked(cb, out, q, k, v, p);
        sam_cuda_unlock(cb);
        return;
    }
    if (p->d_qk <= 0 || wide) {
        CUDA_FAIL(cb, SAM2D_ERR_UNSUPPORTED, "attention: head dims %d/%d (1..%d supported)", p->d_qk, p->d_v,
                  ATT_DMAX);
        sam_cuda_unlock(cb);
        return;
    }
    attn_args a;
    a.q = q;
    a.k = k;
    a.v = v;
    a.out = out;
    a.heads = p->heads;
    a.Lq = p->Lq;
    a.Lk = p->Lk;
    a.dq = p->d_qk;
    a.dv = p->d_v;
    a.nqt = (p->Lq + BQ - 1) / BQ;
    a.q_stride = p->q_stride;
    a.k_stride = p->k_stride;
    a.v_stride = p->v_stride;
    a.o_stride = p->o_stride;
    a.q_batch = p->q_batch;
    a.k_batch = p->k_batch;
    a.v_batch = p->v_batch;
    a.o_batch = p->o_batch;
    a.scale = p->scale;
    const int64_t blocks = (int64_t)a.nqt * p->heads * p->batch;
    const size_t smem = sizeof(float) * ((size_t)(BQ + BK) * (a.dq + 1) + (size_t)BK * a.dv + (size_t)BQ * (BK + 1));
    if (blocks > 0x7fffffff || smem > (size_t)cb->max_smem_optin) {
        CUDA_FAIL(cb, SAM2D_ERR_UNSUPPORTED, "attention: %lld blocks, %zu bytes of shared memory (max %d)",
                  (long long)blocks, smem, cb->max_smem_optin);
        sam_cuda_unlock(cb);
        return;
    }
    const int nj = (a.dv + 3) / 4;
    if (nj <= 8)
        launch<8>(cb, a, blocks, smem);
    else if (nj <= 16)
        launch<16>(cb, a, blocks, smem);
    else if (nj <= 32)
        launch<32>(cb, a, blocks, smem);
    else
        launch<64>(cb, a, blocks, smem);
    sam_cuda_unlock(cb);
}
