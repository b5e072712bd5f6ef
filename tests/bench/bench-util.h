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

/* The Python with torch: $EE_PYTHON, else the one the build found. */
const char *bench_python (void);
/* Runs argv (searched on PATH) to its end; *out its standard output (free
 * with g_free). FALSE with *error when it cannot run or fails. */
gboolean bench_spawn (const char *const *argv, char **out, GError **error);
/* Runs the PyTorch bench `script` on `model` (SCRIPT MODEL --threads T
 * --iterations I) and reads its exit times into ms (bench_torch_exit_times). */
gboolean bench_torch_times (const char *script, const char *model, int threads,
                            int iters, EeRunner *r, double *ms, GError **error);
/* The per-precision columns of a per-exit table's header: "P ms | P GFLOP/s"
 * for each, then "LAST / PREVIOUS" when there are several. */
void bench_print_precision_columns (const EePrecision *prec, int n);

G_END_DECLS
#endif /* BENCH_UTIL_H */
