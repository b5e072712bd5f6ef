/* gst-earlyexit benchmark: time of one feature window per kind, on one thread.
 *
 *   bench-features [-n RUNS]
 *
 * Prints a table: kind, window, output shape, and the mean and minimum
 * milliseconds of ee_feature_extractor_compute over RUNS runs (after one
 * warm-up run) on white noise. Creation (FFTW planning, filterbanks) is not
 * timed: an extractor is made once per stream. */
#include <stdio.h>
#include <time.h>

#include "ee-features.h"

static double
now_ms (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static gboolean
bench_kind (EeFeatureKind kind, int runs, GError **error)
{
  EeFeatureParams params = ee_feature_default_params (kind);
  EeFeatureExtractor *fx = ee_feature_extractor_new (&params, error);
  GRand *rand = g_rand_new_with_seed (1);
  gsize window;
  int64_t shape[4];
  float *x, *out;
  double total = 0.0, best = G_MAXDOUBLE;
  gboolean ok = TRUE;
  char shape_str[64], window_str[64];

  if (!fx)
    return FALSE;
  window = ee_feature_extractor_window (fx);
  ee_feature_extractor_shape (fx, shape);
  x = g_new (float, window);
  out = g_new (float, shape[0] * shape[1] * shape[2] * shape[3]);
  for (gsize i = 0; i < window; i++)
    x[i] = (float)g_rand_double_range (rand, -0.5, 0.5);

  ok = ee_feature_extractor_compute (fx, x, window, out, error);
  for (int r = 0; ok && r < runs; r++) {
    const double t0 = now_ms ();
    ok = ee_feature_extractor_compute (fx, x, window, out, error);
    const double dt = now_ms () - t0;
    total += dt;
    best = MIN (best, dt);
  }
  if (ok) {
    g_snprintf (shape_str, sizeof shape_str,
                "%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                "x%" G_GINT64_FORMAT,
                shape[0], shape[1], shape[2], shape[3]);
    g_snprintf (window_str, sizeof window_str,
                "%" G_GSIZE_FORMAT " (%.2f s @ %d Hz)", window,
                (double)window / ee_feature_extractor_sample_rate (fx),
                ee_feature_extractor_sample_rate (fx));
    printf ("%-7s %-26s %-13s %6d %9.3f %9.3f\n",
            ee_feature_kind_to_string (kind), window_str, shape_str, runs,
            total / runs, best);
  }
  g_free (out);
  g_free (x);
  g_rand_free (rand);
  ee_feature_extractor_free (fx);
  return ok;
}

int
main (int argc, char **argv)
{
  static const EeFeatureKind kinds[] = {
    EE_FEATURES_VGGISH,
    EE_FEATURES_SC,
    EE_FEATURES_GTZAN,
  };
  int runs = 200;
  const GOptionEntry entries[] = {
    { "runs", 'n', 0, G_OPTION_ARG_INT, &runs, "timed runs per kind (200)",
      "RUNS" },
    { NULL },
  };
  GOptionContext *ctx = g_option_context_new ("- time audio features");
  GError *error = NULL;
  int status = 0;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || runs < 1) {
    fprintf (stderr, "bench-features: %s\n",
             error ? error->message : "--runs must be at least 1");
    g_clear_error (&error);
    g_option_context_free (ctx);
    return 2;
  }
  g_option_context_free (ctx);

  printf ("%-7s %-26s %-13s %6s %9s %9s\n", "kind", "window", "shape", "runs",
          "mean ms", "min ms");
  for (guint i = 0; i < G_N_ELEMENTS (kinds); i++) {
    if (!bench_kind (kinds[i], runs, &error)) {
      fprintf (stderr, "bench-features: %s\n", error->message);
      g_clear_error (&error);
      status = 1;
    }
  }
  return status;
}
