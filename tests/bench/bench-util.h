/* gst-earlyexit: what the benchmark programs share. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <glib.h>

#include "ee-runner.h"

G_BEGIN_DECLS

/* n floats uniform in [-scale, scale) (free with g_free). */
float *bench_random_floats (GRand *rand, size_t n, double scale);
/* The median of v[0..n) (sorts v); n >= 1. */
double bench_median (double *v, int n);

/* "fp32,bf16,int8" (NULL: "fp32") -> p[0..*n), at most max, no repeats;
 * FALSE for anything else. */
gboolean bench_parse_precisions (const char *list, EePrecision *p, int max,
                                 int *n);
/* The "exit NAME MS" lines of a PyTorch bench script's output into
 * ms[exit index of NAME in r]. */
void bench_torch_exit_times (const char *output, EeRunner *r, double *ms);

G_END_DECLS
#endif /* BENCH_UTIL_H */
