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

const char *
bench_python (void)
{
  const char *py = g_getenv ("EE_PYTHON");

  return py && *py ? py : EE_PYTHON_DEFAULT;
}

gboolean
bench_spawn (const char *const *argv, char **out, GError **error)
{
  gint status;

  return g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                       NULL, out, NULL, &status, error)
         && g_spawn_check_wait_status (status, error);
}

gboolean
bench_torch_times (const char *script, const char *model, int threads,
                   int iters, EeRunner *r, double *ms, GError **error)
{
  char *t = g_strdup_printf ("%d", threads), *i = g_strdup_printf ("%d", iters);
  const char *argv[] = { bench_python (), script, model, "--threads", t,
                         "--iterations",  i,      NULL };
  char *out = NULL;
  gboolean ok = bench_spawn (argv, &out, error);

  if (ok)
    bench_torch_exit_times (out, r, ms);
  g_free (out);
  g_free (t);
  g_free (i);
  return ok;
}

void
bench_print_precision_columns (const EePrecision *prec, int n)
{
  for (int p = 0; p < n; p++)
    printf (" %s ms | %s GFLOP/s |", ee_precision_name (prec[p]),
            ee_precision_name (prec[p]));
  if (n > 1)
    printf (" %s / %s |", ee_precision_name (prec[n - 1]),
            ee_precision_name (prec[n - 2]));
}
