/* gst-earlyexit: what the benchmark programs share (bench-util.h). */
#include "bench-util.h"

#include <stdlib.h>

float *
bench_random_floats (GRand *rand, size_t n, double scale)
{
  float *p = g_new (float, n);

  for (size_t i = 0; i < n; i++)
    p[i] = (float)(g_rand_double_range (rand, -1.0, 1.0) * scale);
  return p;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

double
bench_median (double *v, int n)
{
  qsort (v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
