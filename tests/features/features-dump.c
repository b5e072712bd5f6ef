/* gst-earlyexit test helper: computes one feature kind on float32 .npy signals
 * for features_ref.py, which compares the results with its numpy reference.
 *
 *   features-dump --kind KIND [OPTIONS] IN.npy OUT.npy [IN.npy OUT.npy ...]
 *
 * Each IN is a 1-d array of exactly one window; each OUT gets the (1, C, H, W)
 * tensor. One extractor serves all pairs, so reuse is exercised as well. */
#include <stdio.h>
#include <stdlib.h>

#include "ee-features.h"
#include "ee-npy.h"

static gboolean
parse_triple (const char *text, float v[3], GError **error)
{
  char **parts = g_strsplit (text, ",", -1);
  gboolean ok = g_strv_length (parts) == 3;

  for (int i = 0; ok && i < 3; i++) {
    char *end;
    v[i] = strtof (parts[i], &end);
    ok = end != parts[i] && *end == '\0';
  }
  g_strfreev (parts);
  if (!ok)
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "'%s' is not three comma-separated numbers", text);
  return ok;
}

static gboolean
dump_one (EeFeatureExtractor *fx, const char *in, const char *out,
          GError **error)
{
  int64_t in_shape[EE_MAX_DIMS], shape[4];
  int ndim;
  float *samples, *features;
  gboolean ok;

  samples = ee_npy_read_f32 (in, &ndim, in_shape, error);
  if (!samples)
    return FALSE;
  if (ndim != 1) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s: expected a 1-d signal, got %d dimensions", in, ndim);
    g_free (samples);
    return FALSE;
  }
  ee_feature_extractor_shape (fx, shape);
  features = g_new (float, shape[0] * shape[1] * shape[2] * shape[3]);
  ok = ee_feature_extractor_compute (fx, samples, (gsize)in_shape[0], features,
                                     error)
       && ee_npy_write_f32 (out, features, 4, shape, error);
  g_free (features);
  g_free (samples);
  return ok;
}

int
main (int argc, char **argv)
{
  char *kind_name = NULL, *mean = NULL, *std = NULL;
  gboolean htk = FALSE, no_log = FALSE;
  int height = 0, width = 0;
  double log_offset = 0.0;
  const GOptionEntry entries[] = {
    { "kind", 0, 0, G_OPTION_ARG_STRING, &kind_name, "vggish, sc or gtzan",
      "KIND" },
    { "height", 0, 0, G_OPTION_ARG_INT, &height, "output height", "H" },
    { "width", 0, 0, G_OPTION_ARG_INT, &width, "output width", "W" },
    { "htk", 0, 0, G_OPTION_ARG_NONE, &htk, "HTK mel scale", NULL },
    { "no-log", 0, 0, G_OPTION_ARG_NONE, &no_log, "no log compression", NULL },
    { "log-offset", 0, 0, G_OPTION_ARG_DOUBLE, &log_offset, "log offset", "X" },
    { "mean", 0, 0, G_OPTION_ARG_STRING, &mean, "per-channel mean", "A,B,C" },
    { "std", 0, 0, G_OPTION_ARG_STRING, &std, "per-channel std", "A,B,C" },
    { NULL },
  };
  GOptionContext *ctx = g_option_context_new ("IN.npy OUT.npy ...");
  EeFeatureExtractor *fx = NULL;
  EeFeatureParams params;
  EeFeatureKind kind;
  GError *error = NULL;
  int status = 1;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    goto out;
  if (!ee_feature_kind_from_string (kind_name, &kind) || argc < 3
      || (argc - 1) % 2 != 0) {
    g_set_error (
        &error, EE_ERROR, EE_ERROR_ARGUMENT,
        "usage: features-dump --kind vggish|sc|gtzan [OPTIONS] IN OUT ...");
    goto out;
  }
  params = ee_feature_default_params (kind);
  params.mel_scale = htk ? EE_MEL_HTK : EE_MEL_SLANEY;
  params.log = !no_log;
  if (log_offset > 0.0)
    params.log_offset = (float)log_offset;
  if (height > 0)
    params.out_height = height;
  if (width > 0)
    params.out_width = width;
  if ((mean && !parse_triple (mean, params.mean, &error))
      || (std && !parse_triple (std, params.std, &error)))
    goto out;

  fx = ee_feature_extractor_new (&params, &error);
  if (!fx)
    goto out;
  for (int i = 1; i + 1 < argc; i += 2)
    if (!dump_one (fx, argv[i], argv[i + 1], &error))
      goto out;
  status = 0;

out:
  if (error)
    fprintf (stderr, "features-dump: %s\n", error->message);
  g_clear_error (&error);
  ee_feature_extractor_free (fx);
  g_option_context_free (ctx);
  g_free (kind_name);
  g_free (mean);
  g_free (std);
  return status;
}
