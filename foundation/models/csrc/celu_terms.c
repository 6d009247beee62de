/* CELU and its derivative for the stacked networks of an ANI ensemble: the CPU kernels behind
 * foundation/models/mlp_native.py. torch's CELU is a separate pass for the activation and again
 * for its derivative (recomputing exp); here the forward overwrites its input in place, and the
 * derivative is taken from the output, y > 0 ? 1 : y / alpha + 1, so the backward needs no exp.
 *
 * Built at run time with REAL (float | double), REAL_IS_DOUBLE and ALPHA as macros. In place where it can be:
 * the networks' activations are the largest tensors of an ensemble's inference.
 */
#include <math.h>
#include <stdint.h>

#if REAL_IS_DOUBLE
#define EXP exp
#else
#define EXP expf
#endif
#define INV_ALPHA ((REAL)1 / (REAL)ALPHA)
#define DERIVATIVE(y) ((y) > 0 ? (REAL)1 : (y) * INV_ALPHA + (REAL)1)

/* x (members, rows, width) <- celu(x + bias (members, width)), celu(v) = v > 0 ? v : alpha
 * (exp(v / alpha) - 1): a layer's bias and activation in one pass over its matmul's output
 * (baddbmm would first copy the bias into every row). */
void celu_bias_forward(int64_t members, int64_t rows, int64_t width, REAL *x, const REAL *bias) {
    for (int64_t m = 0; m < members; m++)
        for (int64_t r = 0; r < rows; r++) {
            REAL *xi = x + (m * rows + r) * width;
            const REAL *b = bias + m * width;
#pragma omp simd
            for (int64_t k = 0; k < width; k++) {
                REAL v = xi[k] + b[k];
                REAL e = (REAL)ALPHA * (EXP(v < 0 ? v * INV_ALPHA : (REAL)0) - (REAL)1);
                xi[k] = v > 0 ? v : e;
            }
        }
}

/* g <- g * celu'(x), the derivative from y = celu(x). */
void celu_backward(int64_t n, REAL *g, const REAL *y) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) g[i] *= DERIVATIVE(y[i]);
}

/* out (members, rows, width) <- (g (members, rows, heads) . w (members, width, heads)) * celu'(x):
 * the output layer's backward (a few heads wide: as a matmul it is an outer product written out
 * and read again) and the derivative of the activation before it, in one pass. */
void celu_backward_from_heads(int64_t members, int64_t rows, int64_t width, int64_t heads, const REAL *g,
                              const REAL *w, const REAL *y, REAL *out) {
    for (int64_t m = 0; m < members; m++)
        for (int64_t r = 0; r < rows; r++) {
            const REAL *gi = g + (m * rows + r) * heads, *wm = w + m * width * heads, *yi = y + (m * rows + r) * width;
            REAL *o = out + (m * rows + r) * width;
            if (heads == 1) {
                REAL g0 = gi[0];
#pragma omp simd
                for (int64_t k = 0; k < width; k++) o[k] = g0 * wm[k] * DERIVATIVE(yi[k]);
            } else {
                for (int64_t k = 0; k < width; k++) {
                    REAL sum = 0;
                    for (int64_t h = 0; h < heads; h++) sum += gi[h] * wm[k * heads + h];
                    o[k] = sum * DERIVATIVE(yi[k]);
                }
            }
        }
}

/* out (rows, members, width) <- g (members, rows, width) * celu'(x): the members' gradients
 * side by side per row, so that the first layer's backward is one matmul over all members. */
void celu_backward_by_row(int64_t members, int64_t rows, int64_t width, const REAL *g, const REAL *y, REAL *out) {
    for (int64_t m = 0; m < members; m++)
        for (int64_t r = 0; r < rows; r++) {
            const REAL *gi = g + (m * rows + r) * width, *yi = y + (m * rows + r) * width;
            REAL *o = out + (r * members + m) * width;
#pragma omp simd
            for (int64_t k = 0; k < width; k++) o[k] = gi[k] * DERIVATIVE(yi[k]);
        }
}
