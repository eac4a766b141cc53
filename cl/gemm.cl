/* Our own GEMM, row-major: C = alpha op(A) op(B) + beta C with op(A) (M, K) and op(B)
 * (K, N), any sizes, offsets and leading dimensions. Two register-blocked kernels, no
 * local memory (on CPUs it is ordinary memory and barriers cost):
 *
 *   gemm_bcast  (B as stored, (K, N)): each work-item keeps a GEMM_TM x (GEMM_NV *
 *               GEMM_VW) block of C in vector registers and, for every k, broadcasts
 *               GEMM_TM values of A against GEMM_NV vectors of a row of B.
 *   gemm_dot    (B transposed, stored (N, K)): each work-item keeps GEMM_DOT_TM x
 *               GEMM_DOT_TN vector partial dot products along k, where rows of A and B
 *               are both contiguous, and adds their lanes at the end.
 *
 * When beta is 0, C is not read. Rows and columns past the matrix edge are clamped for
 * loading and skipped for storing, so every tile is safe; columns past N of gemm_bcast
 * take a guarded path. */

#ifndef GEMM_TRANS_A
#define GEMM_TRANS_A 0 /* 1: A is stored (K, M) and read transposed */
#endif
#ifndef GEMM_TM
#define GEMM_TM 6 /* gemm_bcast: rows of C per work-item */
#endif
#ifndef GEMM_VW
#define GEMM_VW 8 /* vector width of both kernels: 2, 4, 8 or 16 floats */
#endif
#ifndef GEMM_NV
#define GEMM_NV 2 /* gemm_bcast: vectors of columns of C per work-item */
#endif
#ifndef GEMM_DOT_TM
#define GEMM_DOT_TM 3 /* gemm_dot: rows of C per work-item */
#endif
#ifndef GEMM_DOT_TN
#define GEMM_DOT_TN 3 /* gemm_dot: columns of C per work-item */
#endif

#define CAT_(a, b) a##b
#define CAT(a, b)  CAT_(a, b)
#define vec        CAT(float, GEMM_VW)
#define vload_vec  CAT(vload, GEMM_VW)
#define vstore_vec CAT(vstore, GEMM_VW)
#define TN         (GEMM_NV * GEMM_VW)

/* Element (m, k) of op(A). */
#if GEMM_TRANS_A
#define A_AT(m, k) A[(size_t)(k)*lda + (m)]
#else
#define A_AT(m, k) A[(size_t)(m)*lda + (k)]
#endif

/* The sum of a vector's lanes. */
static float lane_sum(vec v) {
    float lanes[GEMM_VW];
    vstore_vec(v, 0, lanes);
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < GEMM_VW; i++)
        s += lanes[i];
    return s;
}

/* GEMM_VW columns n .. of row k of B, zero past column N. */
static vec load_b_guarded(__global const float *B, const int ldb, const int k, const int n,
                          const int N) {
    float t[GEMM_VW];
#pragma unroll
    for (int e = 0; e < GEMM_VW; e++)
        t[e] = n + e < N ? B[(size_t)k * ldb + n + e] : 0.0f;
    return vload_vec(0, t);
}

/* Global size: (ceil(N / TN), ceil(M / GEMM_TM)) work-items. */
__kernel void gemm_bcast(const int M, const int N, const int K, const float alpha, const float beta,
                         __global const float *A, const int a_off, const int lda,
                         __global const float *B, const int b_off, const int ldb, __global float *C,
                         const int c_off, const int ldc) {
    const int n0 = get_global_id(0) * TN, m0 = get_global_id(1) * GEMM_TM;
    if (n0 >= N || m0 >= M)
        return;
    A += a_off;
    B += b_off;
    C += c_off;

    int rows[GEMM_TM];
#pragma unroll
    for (int i = 0; i < GEMM_TM; i++)
        rows[i] = min(m0 + i, M - 1);
    vec acc[GEMM_TM][GEMM_NV];
#pragma unroll
    for (int i = 0; i < GEMM_TM; i++)
#pragma unroll
        for (int v = 0; v < GEMM_NV; v++)
            acc[i][v] = (vec)(0.0f);

    /* The k loop: whole vectors when the tile is inside N, guarded loads at the edge. */
    if (n0 + TN <= N) {
        for (int k = 0; k < K; k++) {
            vec b[GEMM_NV];
#pragma unroll
            for (int v = 0; v < GEMM_NV; v++)
                b[v] = vload_vec(0, B + (size_t)k * ldb + n0 + v * GEMM_VW);
#pragma unroll
            for (int i = 0; i < GEMM_TM; i++) {
                const vec a = (vec)(A_AT(rows[i], k));
#pragma unroll
                for (int v = 0; v < GEMM_NV; v++)
                    acc[i][v] = fma(a, b[v], acc[i][v]);
            }
        }
    } else {
        for (int k = 0; k < K; k++) {
            vec b[GEMM_NV];
#pragma unroll
            for (int v = 0; v < GEMM_NV; v++)
                b[v] = load_b_guarded(B, ldb, k, n0 + v * GEMM_VW, N);
#pragma unroll
            for (int i = 0; i < GEMM_TM; i++) {
                const vec a = (vec)(A_AT(rows[i], k));
#pragma unroll
                for (int v = 0; v < GEMM_NV; v++)
                    acc[i][v] = fma(a, b[v], acc[i][v]);
            }
        }
    }

/* C = alpha acc + beta C, inside the matrix only. */
#pragma unroll
    for (int i = 0; i < GEMM_TM && m0 + i < M; i++) {
        __global float *c = C + (size_t)(m0 + i) * ldc + n0;
#pragma unroll
        for (int v = 0; v < GEMM_NV; v++) {
            float out[GEMM_VW];
            vstore_vec(alpha * acc[i][v], 0, out);
#pragma unroll
            for (int e = 0; e < GEMM_VW; e++) {
                const int j = v * GEMM_VW + e;
                if (n0 + j < N)
                    c[j] = beta == 0.0f ? out[e] : out[e] + beta * c[j];
            }
        }
    }
}

/* GEMM_VW values of row m of op(A) from column k on. */
static vec load_a_row(__global const float *A, const int lda, const int m, const int k) {
#if GEMM_TRANS_A
    float t[GEMM_VW];
#pragma unroll
    for (int e = 0; e < GEMM_VW; e++)
        t[e] = A_AT(m, k + e);
    return vload_vec(0, t);
#else
    return vload_vec(0, A + (size_t)m * lda + k);
#endif
}

/* B is stored (N, K). Global size: (ceil(N / GEMM_DOT_TN), ceil(M / GEMM_DOT_TM)). */
__kernel void gemm_dot(const int M, const int N, const int K, const float alpha, const float beta,
                       __global const float *A, const int a_off, const int lda,
                       __global const float *B, const int b_off, const int ldb, __global float *C,
                       const int c_off, const int ldc) {
    const int n0 = get_global_id(0) * GEMM_DOT_TN, m0 = get_global_id(1) * GEMM_DOT_TM;
    if (n0 >= N || m0 >= M)
        return;
    A += a_off;
    B += b_off;
    C += c_off;

    int rows[GEMM_DOT_TM], cols[GEMM_DOT_TN];
#pragma unroll
    for (int i = 0; i < GEMM_DOT_TM; i++)
        rows[i] = min(m0 + i, M - 1);
#pragma unroll
    for (int j = 0; j < GEMM_DOT_TN; j++)
        cols[j] = min(n0 + j, N - 1);
    vec acc[GEMM_DOT_TM][GEMM_DOT_TN];
#pragma unroll
    for (int i = 0; i < GEMM_DOT_TM; i++)
#pragma unroll
        for (int j = 0; j < GEMM_DOT_TN; j++)
            acc[i][j] = (vec)(0.0f);

    /* Whole vectors along k, then the lanes, then the last K % GEMM_VW terms. */
    const int k_vec = K - K % GEMM_VW;
    for (int k = 0; k < k_vec; k += GEMM_VW) {
        vec a[GEMM_DOT_TM];
#pragma unroll
        for (int i = 0; i < GEMM_DOT_TM; i++)
            a[i] = load_a_row(A, lda, rows[i], k);
#pragma unroll
        for (int j = 0; j < GEMM_DOT_TN; j++) {
            const vec b = vload_vec(0, B + (size_t)cols[j] * ldb + k);
#pragma unroll
            for (int i = 0; i < GEMM_DOT_TM; i++)
                acc[i][j] = fma(a[i], b, acc[i][j]);
        }
    }
#pragma unroll
    for (int i = 0; i < GEMM_DOT_TM && m0 + i < M; i++) {
        __global float *c = C + (size_t)(m0 + i) * ldc;
#pragma unroll
        for (int j = 0; j < GEMM_DOT_TN && n0 + j < N; j++) {
            float s = lane_sum(acc[i][j]);
            for (int k = k_vec; k < K; k++)
                s += A_AT(rows[i], k) * B[(size_t)cols[j] * ldb + k];
            c[n0 + j] = beta == 0.0f ? alpha * s : alpha * s + beta * c[n0 + j];
        }
    }
}
