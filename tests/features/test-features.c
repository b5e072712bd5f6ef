/* gst-earlyexit: feature extractor API tests: shapes, parameter and window
 * errors, reuse, and concurrent extractors in two threads. Numerical accuracy
 * is features_ref.py's job. */
#include <math.h>
#include <string.h>

#include "ee-features.h"

static const EeFeatureKind all_kinds[] = {
  EE_FEATURES_VGGISH,
  EE_FEATURES_SC,
  EE_FEATURES_GTZAN,
};

static gsize
numel (const EeFeatureExtractor *fx)
{
  int64_t shape[4];

  ee_feature_extractor_shape (fx, shape);
  return (gsize)(shape[0] * shape[1] * shape[2] * shape[3]);
}

/* A deterministic, non-trivial signal: two tones and noise, differing by seed.
 */
static float *
make_signal (gsize n, int rate, guint32 seed)
{
  GRand *rand = g_rand_new_with_seed (seed);
  float *x = g_new (float, n);

  for (gsize i = 0; i < n; i++)
    x[i] = (float)(0.4 * sin (2.0 * G_PI * (200.0 + seed) * i / rate)
                   + 0.2 * sin (2.0 * G_PI * 3000.0 * i / rate)
                   + g_rand_double_range (rand, -0.1, 0.1));
  g_rand_free (rand);
  return x;
}

static float *
compute_new (EeFeatureExtractor *fx, const float *x)
{
  float *out = g_new (float, numel (fx));
  GError *error = NULL;

  g_assert_true (ee_feature_extractor_compute (
      fx, x, ee_feature_extractor_window (fx), out, &error));
  g_assert_no_error (error);
  return out;
}

static void
test_kind_strings (void)
{
  EeFeatureKind kind;

  for (guint i = 0; i < G_N_ELEMENTS (all_kinds); i++) {
    const char *name = ee_feature_kind_to_string (all_kinds[i]);
    g_assert_true (ee_feature_kind_from_string (name, &kind));
    g_assert_cmpint (kind, ==, all_kinds[i]);
  }
  g_assert_true (ee_feature_kind_from_string ("GTZAN", &kind));
  g_assert_cmpint (kind, ==, EE_FEATURES_GTZAN);
  g_assert_false (ee_feature_kind_from_string ("mfcc", &kind));
  g_assert_false (ee_feature_kind_from_string (NULL, &kind));
}

static void
test_shapes (void)
{
  static const struct
  {
    EeFeatureKind kind;
    int rate;
    gsize window;
    int64_t shape[4];
  } expect[] = {
    { EE_FEATURES_VGGISH, 16000, 16000, { 1, 1, 96, 64 } },
    { EE_FEATURES_SC, 16000, 16000, { 1, 3, 224, 224 } },
    { EE_FEATURES_GTZAN, 22050, 66150, { 1, 3, 224, 224 } },
  };

  for (guint i = 0; i < G_N_ELEMENTS (expect); i++) {
    EeFeatureParams p = ee_feature_default_params (expect[i].kind);
    EeFeatureExtractor *fx = ee_feature_extractor_new (&p, NULL);
    int64_t shape[4];

    g_assert_nonnull (fx);
    g_assert_cmpint (ee_feature_extractor_sample_rate (fx), ==, expect[i].rate);
    g_assert_cmpuint (ee_feature_extractor_window (fx), ==, expect[i].window);
    ee_feature_extractor_shape (fx, shape);
    g_assert_cmpmem (shape, sizeof shape, expect[i].shape, sizeof shape);
    ee_feature_extractor_free (fx);
  }

  {
    EeFeatureParams p = ee_feature_default_params (EE_FEATURES_SC);
    EeFeatureExtractor *fx;
    int64_t shape[4];

    p.out_height = 32;
    p.out_width = 100;
    fx = ee_feature_extractor_new (&p, NULL);
    ee_feature_extractor_shape (fx, shape);
    g_assert_cmpint (shape[2], ==, 32);
    g_assert_cmpint (shape[3], ==, 100);
    ee_feature_extractor_free (fx);
  }
}

static void
expect_params_error (const EeFeatureParams *p)
{
  GError *error = NULL;
  EeFeatureExtractor *fx = ee_feature_extractor_new (p, &error);

  g_assert_null (fx);
  g_assert_error (error, EE_ERROR, EE_ERROR_ARGUMENT);
  g_test_message ("%s", error->message);
  g_error_free (error);
}

static void
test_params_errors (void)
{
  EeFeatureParams p;

  p = ee_feature_default_params (EE_FEATURES_SC);
  p.kind = (EeFeatureKind)42;
  expect_params_error (&p);

  p = ee_feature_default_params (EE_FEATURES_SC);
  p.out_height = 0;
  expect_params_error (&p);

  p = ee_feature_default_params (EE_FEATURES_GTZAN);
  p.out_width = 100000;
  expect_params_error (&p);

  p = ee_feature_default_params (EE_FEATURES_GTZAN);
  p.log_offset = 0.0f;
  expect_params_error (&p);

  p = ee_feature_default_params (EE_FEATURES_SC);
  p.std[2] = 0.0f;
  expect_params_error (&p);

  p = ee_feature_default_params (EE_FEATURES_SC);
  p.mean[0] = NAN;
  expect_params_error (&p);

  p = ee_feature_default_params (EE_FEATURES_GTZAN);
  p.mel_scale = (EeMelScale)7;
  expect_params_error (&p);

  /* Without log the offset is unused, so any value is accepted. */
  p = ee_feature_default_params (EE_FEATURES_SC);
  p.log = FALSE;
  p.log_offset = 0.0f;
  ee_feature_extractor_free (ee_feature_extractor_new (&p, NULL));
}

static void
test_window_errors (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (all_kinds); i++) {
    EeFeatureParams p = ee_feature_default_params (all_kinds[i]);
    EeFeatureExtractor *fx = ee_feature_extractor_new (&p, NULL);
    const gsize window = ee_feature_extractor_window (fx);
    const gsize wrong[] = { 0, window - 1, window + 1, 2 * window };
    float *x = g_new0 (float, 2 * window);
    float *out = g_new (float, numel (fx));

    for (guint j = 0; j < G_N_ELEMENTS (wrong); j++) {
      GError *error = NULL;
      g_assert_false (
          ee_feature_extractor_compute (fx, x, wrong[j], out, &error));
      g_assert_error (error, EE_ERROR, EE_ERROR_ARGUMENT);
      g_assert_nonnull (strstr (error->message, "exactly"));
      g_error_free (error);
    }
    g_free (out);
    g_free (x);
    ee_feature_extractor_free (fx);
  }
}

/* A second computation with the same extractor gives the same bits, and
 * silence gives finite values (log of the offset). */
static void
test_reuse_and_silence (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (all_kinds); i++) {
    EeFeatureParams p = ee_feature_default_params (all_kinds[i]);
    EeFeatureExtractor *fx = ee_feature_extractor_new (&p, NULL);
    const gsize window = ee_feature_extractor_window (fx);
    float *x = make_signal (window, ee_feature_extractor_sample_rate (fx), 1);
    float *zeros = g_new0 (float, window);
    float *a = compute_new (fx, x);
    float *silent = compute_new (fx, zeros);
    float *b = compute_new (fx, x);

    g_assert_cmpmem (a, numel (fx) * sizeof (float), b,
                     numel (fx) * sizeof (float));
    for (gsize k = 0; k < numel (fx); k++)
      g_assert_true (isfinite (silent[k]));
    g_free (a);
    g_free (b);
    g_free (silent);
    g_free (zeros);
    g_free (x);
    ee_feature_extractor_free (fx);
  }
}

typedef struct
{
  EeFeatureKind kind;
  const float *signal;
  const float *expected;
  int repeats;
  gboolean ok;
} ThreadJob;

/* Creates its own extractor (planning concurrently with the other thread) and
 * checks every computation against the sequential result. */
static gpointer
thread_run (gpointer data)
{
  ThreadJob *job = data;
  EeFeatureParams p = ee_feature_default_params (job->kind);
  EeFeatureExtractor *fx = ee_feature_extractor_new (&p, NULL);
  gsize bytes;

  job->ok = fx != NULL;
  if (!fx)
    return NULL;
  bytes = numel (fx) * sizeof (float);
  for (int r = 0; r < job->repeats && job->ok; r++) {
    float *out = g_new (float, numel (fx));
    job->ok = ee_feature_extractor_compute (
                  fx, job->signal, ee_feature_extractor_window (fx), out, NULL)
              && memcmp (out, job->expected, bytes) == 0;
    g_free (out);
  }
  ee_feature_extractor_free (fx);
  return NULL;
}

static void
test_two_threads (void)
{
  for (guint i = 0; i < G_N_ELEMENTS (all_kinds); i++) {
    /* Both threads use the same kind, so they share FFT sizes, with
     * different signals so that mixed-up buffers would show. */
    EeFeatureParams p = ee_feature_default_params (all_kinds[i]);
    EeFeatureExtractor *fx = ee_feature_extractor_new (&p, NULL);
    const gsize window = ee_feature_extractor_window (fx);
    const int rate = ee_feature_extractor_sample_rate (fx);
    const int repeats = all_kinds[i] == EE_FEATURES_GTZAN ? 10 : 50;
    const gsize bytes = numel (fx) * sizeof (float);
    float *signal[2], *expected[2];
    ThreadJob job[2];
    GThread *thread[2];

    for (int t = 0; t < 2; t++) {
      signal[t] = make_signal (window, rate, 7 + t);
      expected[t] = compute_new (fx, signal[t]);
    }
    g_assert_cmpint (memcmp (expected[0], expected[1], bytes), !=, 0);
    ee_feature_extractor_free (fx);

    for (int t = 0; t < 2; t++) {
      job[t].kind = all_kinds[i];
      job[t].signal = signal[t];
      job[t].expected = expected[t];
      job[t].repeats = repeats;
      thread[t] = g_thread_new ("features", thread_run, &job[t]);
    }
    for (int t = 0; t < 2; t++) {
      g_thread_join (thread[t]);
      g_assert_true (job[t].ok);
      g_free (signal[t]);
      g_free (expected[t]);
    }
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/features/kind-strings", test_kind_strings);
  g_test_add_func ("/features/shapes", test_shapes);
  g_test_add_func ("/features/errors/params", test_params_errors);
  g_test_add_func ("/features/errors/window", test_window_errors);
  g_test_add_func ("/features/reuse-and-silence", test_reuse_and_silence);
  g_test_add_func ("/features/two-threads", test_two_threads);
  return g_test_run ();
}
