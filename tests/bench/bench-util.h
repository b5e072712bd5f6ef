/* gst-earlyexit: what the benchmark programs share. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <glib.h>

G_BEGIN_DECLS

/* n floats uniform in [-scale, scale) (free with g_free). */
float *bench_random_floats (GRand *rand, size_t n, double scale);
/* The median of v[0..n) (sorts v); n >= 1. */
double bench_median (double *v, int n);

G_END_DECLS
#endif /* BENCH_UTIL_H */
