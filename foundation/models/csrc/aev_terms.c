/* ANI AEV terms summed into slots, with first and second derivatives, from pair vectors: the CPU
 * kernels behind foundation/models/aev_native.py. The terms are those of ANIRadial / ANIAngular
 * in foundation/models/aev.py (tested equal, and the derivatives against autograd to second
 * order). The geometry is folded in too (distances and the cosine from the pair vectors, and
 * their derivatives), so one call per pass replaces the gathers and scatters of the (items, 3)
 * vectors that autograd would record.
 *
 * Built at run time by aev_native.py with the model's constants as macros:
 *   REAL (float | double); NR, RAD_ETA, RAD_K (radial: shifts, eta, pi / cutoff);
 *   NA, NS, ANG_ETA, ANG_ZETA, ANG_K (angular: shifts, sections, eta, zeta, pi / cutoff).
 * Fixed trip counts let the compiler unroll the feature loops. Each chunk of items is done in
 * phases: the transcendental functions vectorised across items ("terms"), then each item's
 * features accumulated into its slot row, sequentially (items of a chunk can share a slot).
 *
 * Layouts: pair vectors v (P, 3) (r_j - r_i + shift); slot rows (slots, features); triplet t
 * pairs p[t], q[t] (same centre). Pass names: forward (sums), backward (dL/dv from dL/dsums),
 * double (dL/dsums and dL/dv from the upstream gradient U of the backward's output).
 */
#include <math.h>
#include <stdint.h>

#define CHUNK 64
#define NF (NA * NS)
#if REAL_IS_DOUBLE
#define EXP exp
#define COS cos
#define SQRT sqrt
#define POW pow
#else
#define EXP expf
#define COS cosf
#define SQRT sqrtf
#define POW powf
#endif
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define INLINE static inline __attribute__((always_inline))
/* sin(x) as cos(x - pi/2): GCC fuses sin and cos of one argument into sincos, which has no
 * vector version and stops the loop from vectorising (3-5x slower). */
#define SIN_(x) COS((x) - (REAL)1.5707963267948966)

typedef struct {
    REAL x, y, z;
} Vec;

INLINE Vec load(const REAL* v, int64_t k) { return (Vec){v[3 * k], v[3 * k + 1], v[3 * k + 2]}; }
INLINE REAL dot(Vec a, Vec b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
INLINE Vec axpy(REAL a, Vec x, Vec y) { return (Vec){a * x.x + y.x, a * x.y + y.y, a * x.z + y.z}; }
INLINE Vec scale(REAL a, Vec x) { return (Vec){a * x.x, a * x.y, a * x.z}; }
INLINE void add_to(REAL* v, int64_t k, Vec a) {
    v[3 * k] += a.x;
    v[3 * k + 1] += a.y;
    v[3 * k + 2] += a.z;
}

/* ---- radial: G_a(d) = 0.25 exp(-eta (d - s_a)^2) f_C(d), d = |v| ---------------------------- */
typedef struct {
    REAL d[CHUNK], g0[NR][CHUNK], g1[NR][CHUNK], g2[NR][CHUNK];
} RadialTerms;

INLINE void radial_terms(int64_t m, const REAL* v, const REAL* shifts, int order, RadialTerms* w) {
    /* geometry first, in plain arrays: loads of 3-vectors stop GCC from vectorising the terms */
    for (int64_t t = 0; t < m; t++)
        w->d[t] = SQRT(v[3 * t] * v[3 * t] + v[3 * t + 1] * v[3 * t + 1] + v[3 * t + 2] * v[3 * t + 2]);
#pragma omp simd
    for (int64_t t = 0; t < m; t++) {
        REAL d = w->d[t];
        REAL cs = COS(RAD_K * d), sn = order >= 1 ? SIN_(RAD_K * d) : 0;
        REAL fc = 0.5 * cs + 0.5, dfc = -0.5 * RAD_K * sn, ddfc = -0.5 * RAD_K * RAD_K * cs;
        for (int a = 0; a < NR; a++) {
            REAL delta = d - shifts[a];
            REAL gauss = 0.25 * EXP(-RAD_ETA * delta * delta);
            w->g0[a][t] = gauss * fc;
            if (order >= 1) w->g1[a][t] = gauss * (dfc - 2 * RAD_ETA * delta * fc);
            if (order >= 2)
                w->g2[a][t] = gauss * ((4 * RAD_ETA * RAD_ETA * delta * delta - 2 * RAD_ETA) * fc
                                       - 4 * RAD_ETA * delta * dfc + ddfc);
        }
    }
}

void radial_forward(int64_t n, const REAL* v, const int64_t* slot, const REAL* shifts, REAL* out) {
    RadialTerms w;
    for (int64_t s = 0; s < n; s += CHUNK) {
        int64_t m = MIN(CHUNK, n - s);
        radial_terms(m, v + 3 * s, shifts, 0, &w);
        for (int64_t t = 0; t < m; t++) {
            REAL* o = out + slot[s + t] * NR;
            for (int a = 0; a < NR; a++) o[a] += w.g0[a][t];
        }
    }
}

/* gv[k] = (sum_a g_a G_a'(d)) v/d: written, one row per pair */
void radial_backward(int64_t n, const REAL* v, const int64_t* slot, const REAL* shifts, const REAL* grad,
                     REAL* gv) {
    RadialTerms w;
    for (int64_t s = 0; s < n; s += CHUNK) {
        int64_t m = MIN(CHUNK, n - s);
        radial_terms(m, v + 3 * s, shifts, 1, &w);
        for (int64_t t = 0; t < m; t++) {
            const REAL* g = grad + slot[s + t] * NR;
            REAL gd = 0;
            for (int a = 0; a < NR; a++) gd += g[a] * w.g1[a][t];
            Vec e = scale(gd / w.d[t], load(v, s + t));
            gv[3 * (s + t)] = e.x, gv[3 * (s + t) + 1] = e.y, gv[3 * (s + t) + 2] = e.z;
        }
    }
}

/* With n = v/d, w = n.U: L' = gd w; dL'/dg_a = w G_a'; dL'/dv = w (sum_a g_a G_a'') n + gd (U - w n)/d */
void radial_double(int64_t n, const REAL* v, const int64_t* slot, const REAL* shifts, const REAL* grad,
                   const REAL* up, REAL* dgrad, REAL* dv) {
    RadialTerms w;
    for (int64_t s = 0; s < n; s += CHUNK) {
        int64_t m = MIN(CHUNK, n - s);
        radial_terms(m, v + 3 * s, shifts, 2, &w);
        for (int64_t t = 0; t < m; t++) {
            const REAL* g = grad + slot[s + t] * NR;
            REAL* o = dgrad + slot[s + t] * NR;
            REAL d = w.d[t];
            Vec nv = scale(1 / d, load(v, s + t)), U = load(up, s + t);
            REAL wu = dot(nv, U), gd = 0, gdd = 0;
            for (int a = 0; a < NR; a++) {
                o[a] += wu * w.g1[a][t];
                gd += g[a] * w.g1[a][t];
                gdd += g[a] * w.g2[a][t];
            }
            Vec e = axpy(wu * gdd - gd * wu / d, nv, scale(gd / d, U));
            dv[3 * (s + t)] = e.x, dv[3 * (s + t) + 1] = e.y, dv[3 * (s + t) + 2] = e.z;
        }
    }
}

/* ---- angular: R_a(d1, d2) A_b(c), a over NA shifts (outer), b over NS sections (inner) ------ */
typedef struct {
    REAL d1[CHUNK], d2[CHUNK], c[CHUNK];
    REAL r[NA][CHUNK], r1[NA][CHUNK], r2[NA][CHUNK], r11[NA][CHUNK], r12[NA][CHUNK], r22[NA][CHUNK];
    REAL a[NS][CHUNK], a1[NS][CHUNK], a2[NS][CHUNK];
} AngularTerms;

INLINE void angular_terms(int64_t m, const REAL* v, const int64_t* p, const int64_t* q, const REAL* shifts,
                          const REAL* sections, int order, AngularTerms* w) {
    REAL cs[NS], sn[NS];
    for (int b = 0; b < NS; b++) {
        cs[b] = COS(sections[b]);
        sn[b] = SIN_(sections[b]);
    }
    for (int64_t t = 0; t < m; t++) {  /* geometry first, in plain arrays (see radial_terms) */
        Vec v1 = load(v, p[t]), v2 = load(v, q[t]);
        REAL d1 = SQRT(dot(v1, v1)), d2 = SQRT(dot(v2, v2));
        w->d1[t] = d1, w->d2[t] = d2, w->c[t] = dot(v1, v2) / (d1 * d2);
    }
#pragma omp simd
    for (int64_t t = 0; t < m; t++) {
        REAL d1 = w->d1[t], d2 = w->d2[t], c = w->c[t];
        REAL c1 = COS(ANG_K * d1), c2 = COS(ANG_K * d2);
        REAL f1 = 0.5 * c1 + 0.5, f2 = 0.5 * c2 + 0.5, f12 = f1 * f2;
        REAL s1 = 0, s2 = 0, q1 = 0, q2 = 0;
        if (order >= 1) {
            s1 = -0.5 * ANG_K * SIN_(ANG_K * d1);
            s2 = -0.5 * ANG_K * SIN_(ANG_K * d2);
            q1 = -0.5 * ANG_K * ANG_K * c1;
            q2 = -0.5 * ANG_K * ANG_K * c2;
        }
        REAL ab = s1 * f2, ba = f1 * s2;
        REAL mean = 0.5 * (d1 + d2);
        for (int a = 0; a < NA; a++) {
            REAL delta = mean - shifts[a];
            REAL e = EXP(-ANG_ETA * delta * delta);
            w->r[a][t] = e * f12;
            if (order >= 1) {
                REAL de = -2 * ANG_ETA * delta * e;
                w->r1[a][t] = 0.5 * de * f12 + e * ab;
                w->r2[a][t] = 0.5 * de * f12 + e * ba;
                if (order >= 2) {
                    REAL quarter = 0.25 * (4 * ANG_ETA * ANG_ETA * delta * delta - 2 * ANG_ETA) * e * f12;
                    w->r11[a][t] = quarter + de * ab + e * (q1 * f2);
                    w->r12[a][t] = quarter + 0.5 * de * (ab + ba) + e * (s1 * s2);
                    w->r22[a][t] = quarter + de * ba + e * (f1 * q2);
                }
            }
        }
        REAL x = 0.95 * c;
        REAL qx = SQRT(1 - x * x);
        for (int b = 0; b < NS; b++) {
            REAL h = 0.5 * (1 + cs[b] * x + sn[b] * qx);
            if (order == 0) {
                w->a[b][t] = 2 * POW(h, ANG_ZETA);
            } else {
                REAL hz2 = POW(h, ANG_ZETA - 2), hz1 = hz2 * h;
                REAL dy = 0.95 * (cs[b] - sn[b] * (x / qx));
                w->a[b][t] = 2 * hz1 * h;
                w->a1[b][t] = ANG_ZETA * hz1 * dy;
                if (order >= 2) {
                    REAL ddy = -(0.95 * 0.95) * sn[b] / (qx * qx * qx);
                    w->a2[b][t] = 0.5 * ANG_ZETA * (ANG_ZETA - 1) * hz2 * dy * dy + ANG_ZETA * hz1 * ddy;
                }
            }
        }
    }
}

void angular_forward(int64_t n, const REAL* v, const int64_t* p, const int64_t* q, const int64_t* slot,
                     const REAL* shifts, const REAL* sections, REAL* out) {
    AngularTerms w;
    for (int64_t s = 0; s < n; s += CHUNK) {
        int64_t m = MIN(CHUNK, n - s);
        angular_terms(m, v, p + s, q + s, shifts, sections, 0, &w);
        for (int64_t t = 0; t < m; t++) {
            REAL* o = out + slot[s + t] * NF;
            for (int a = 0; a < NA; a++)
                for (int b = 0; b < NS; b++) o[a * NS + b] += w.r[a][t] * w.a[b][t];
        }
    }
}

/* dL/d(d1, d2, c) of one triplet from its slot's gradient row g */
INLINE void angular_contract(const REAL* g, const AngularTerms* w, int64_t t, REAL* o1, REAL* o2, REAL* oc) {
    REAL g_a[NS] = {0};
    *o1 = *o2 = *oc = 0;
    for (int a = 0; a < NA; a++) {
        REAL g_r = 0;
        for (int b = 0; b < NS; b++) {
            g_r += g[a * NS + b] * w->a[b][t];
            g_a[b] += g[a * NS + b] * w->r[a][t];
        }
        *o1 += g_r * w->r1[a][t];
        *o2 += g_r * w->r2[a][t];
    }
    for (int b = 0; b < NS; b++) *oc += g_a[b] * w->a1[b][t];
}

/* gv[p] += gd1 n1 + gc (n2 - c n1)/d1, gv[q] += gd2 n2 + gc (n1 - c n2)/d2: accumulated */
void angular_backward(int64_t n, const REAL* v, const int64_t* p, const int64_t* q, const int64_t* slot,
                      const REAL* shifts, const REAL* sections, const REAL* grad, REAL* gv) {
    AngularTerms w;
    for (int64_t s = 0; s < n; s += CHUNK) {
        int64_t m = MIN(CHUNK, n - s);
        angular_terms(m, v, p + s, q + s, shifts, sections, 1, &w);
        for (int64_t t = 0; t < m; t++) {
            REAL o1, o2, oc;
            angular_contract(grad + slot[s + t] * NF, &w, t, &o1, &o2, &oc);
            REAL d1 = w.d1[t], d2 = w.d2[t], c = w.c[t];
            Vec n1 = scale(1 / d1, load(v, p[s + t])), n2 = scale(1 / d2, load(v, q[s + t]));
            add_to(gv, p[s + t], axpy(o1 - oc * c / d1, n1, scale(oc / d1, n2)));
            add_to(gv, q[s + t], axpy(o2 - oc * c / d2, n2, scale(oc / d2, n1)));
        }
    }
}

/* The backward's output is sum_t J_t^T o_t with o_t = (o1, o2, oc) its contraction and J_t the
 * Jacobian of (d1, d2, c) in (v1, v2). For L' = sum U . gv, with w_t = J_t U_t (the upstream
 * in (d1, d2, c) space): dL'/dg from the terms' double (w in place of u), and
 * dL'/dv = J^T (dd1, dd2, dc) + o1 d(n1.U1)/dv + o2 d(n2.U2)/dv + oc d(wc)/dv. */
void angular_double(int64_t n, const REAL* v, const int64_t* p, const int64_t* q, const int64_t* slot,
                    const REAL* shifts, const REAL* sections, const REAL* grad, const REAL* up, REAL* dgrad,
                    REAL* dv) {
    AngularTerms w;
    for (int64_t s = 0; s < n; s += CHUNK) {
        int64_t m = MIN(CHUNK, n - s);
        angular_terms(m, v, p + s, q + s, shifts, sections, 2, &w);
        for (int64_t t = 0; t < m; t++) {
            int64_t i1 = p[s + t], i2 = q[s + t];
            REAL d1 = w.d1[t], d2 = w.d2[t], c = w.c[t];
            Vec n1 = scale(1 / d1, load(v, i1)), n2 = scale(1 / d2, load(v, i2));
            Vec U1 = load(up, i1), U2 = load(up, i2);
            REAL n1u1 = dot(n1, U1), n2u1 = dot(n2, U1), n1u2 = dot(n1, U2), n2u2 = dot(n2, U2);
            REAL v1 = n1u1, v2 = n2u2;                                    /* w1, w2 */
            REAL vc = (n2u1 - c * n1u1) / d1 + (n1u2 - c * n2u2) / d2;      /* wc */
            const REAL* g = grad + slot[s + t] * NF;
            REAL* o = dgrad + slot[s + t] * NF;
            REAL e1 = 0, e2 = 0, ec = 0, o1 = 0, o2 = 0, g_ur[NS] = {0}, g_a[NS] = {0};
            for (int a = 0; a < NA; a++) {
                REAL ur = v1 * w.r1[a][t] + v2 * w.r2[a][t], r = w.r[a][t];
                REAL g_r = 0, g_r1 = 0;
                for (int b = 0; b < NS; b++) {
                    REAL gab = g[a * NS + b];
                    o[a * NS + b] += ur * w.a[b][t] + r * vc * w.a1[b][t];
                    g_r += gab * w.a[b][t];
                    g_r1 += gab * w.a1[b][t];
                    g_ur[b] += gab * ur;
                    g_a[b] += gab * r;
                }
                e1 += g_r * (v1 * w.r11[a][t] + v2 * w.r12[a][t]) + vc * g_r1 * w.r1[a][t];
                e2 += g_r * (v1 * w.r12[a][t] + v2 * w.r22[a][t]) + vc * g_r1 * w.r2[a][t];
                o1 += g_r * w.r1[a][t];
                o2 += g_r * w.r2[a][t];
            }
            REAL oc = 0;
            for (int b = 0; b < NS; b++) {
                ec += g_ur[b] * w.a1[b][t] + vc * g_a[b] * w.a2[b][t];
                oc += g_a[b] * w.a1[b][t];
            }
            /* J^T (e1, e2, ec): dc/dv1 = (n2 - c n1)/d1, dc/dv2 = (n1 - c n2)/d2 */
            Vec f1 = axpy(e1 - ec * c / d1, n1, scale(ec / d1, n2));
            Vec f2 = axpy(e2 - ec * c / d2, n2, scale(ec / d2, n1));
            /* o1 d(n1.U1)/dv1 = o1 (U1 - n1 (n1.U1))/d1, likewise for 2 */
            f1 = axpy(o1 / d1, axpy(-n1u1, n1, U1), f1);
            f2 = axpy(o2 / d2, axpy(-n2u2, n2, U2), f2);
            /* oc d(wc)/dv1 with P1 x = x - n1 (n1.x), n1.n2 = c:
             *   [-(n2.U1) n1 - (n1.U1) P1 n2 - c P1 U1 + c (n1.U1) n1] / d1^2 + [P1 U2 - (n2.U2) P1 n2] / (d1 d2) */
            Vec p1n2 = axpy(-c, n1, n2), p1u1 = axpy(-n1u1, n1, U1), p1u2 = axpy(-n1u2, n1, U2);
            Vec h1 = axpy(-n2u1 + c * n1u1, n1, axpy(-n1u1, p1n2, scale(-c, p1u1)));
            h1 = axpy(1 / (d1 * d1), h1, scale(1 / (d1 * d2), axpy(-n2u2, p1n2, p1u2)));
            Vec p2n1 = axpy(-c, n2, n1), p2u2 = axpy(-n2u2, n2, U2), p2u1 = axpy(-n2u1, n2, U1);
            Vec h2 = axpy(-n1u2 + c * n2u2, n2, axpy(-n2u2, p2n1, scale(-c, p2u2)));
            h2 = axpy(1 / (d2 * d2), h2, scale(1 / (d1 * d2), axpy(-n1u1, p2n1, p2u1)));
            add_to(dv, i1, axpy(oc, h1, f1));
            add_to(dv, i2, axpy(oc, h2, f2));
        }
    }
}
