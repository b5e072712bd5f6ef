/* gst-earlyexit: what the benchmark programs share (bench-util.h). */
#include "bench-util.h"

#include <stdio.h>
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

gboolean
bench_parse_precisions (const char *list, EePrecision *p, int max, int *n)
{
  char **names = g_strsplit (list ? list : "fp32", ",", -1);
  gboolean ok = TRUE;

  *n = 0;
  for (char **k = names; ok && *k; k++) {
    ok = *n < max && ee_precision_from_string (*k, &p[*n])
         && (p[*n] == EE_PRECISION_FP32 || p[*n] == EE_PRECISION_BF16
             || p[*n] == EE_PRECISION_INT8);
    for (int j = 0; ok && j < *n; j++)
      ok = p[j] != p[*n];
    (*n)++;
  }
  g_strfreev (names);
  return ok && *n > 0;
}

void
bench_torch_exit_times (const char *output, EeRunner *r, double *ms)
{
  char **lines = g_strsplit (output, "\n", -1);

  for (char **l = lines; *l; l++) {
    char name[64];
    double v;
    if (sscanf (*l, "exit %63s %lf", name, &v) == 2) {
      int k = ee_runner_find_exit (r, name);
      if (k >= 0)
        ms[k] = v;
    }
  }
  g_strfreev (lines);
}
