/* `earlyexit calibrate MODEL --data DIR|random:N --out OUT
 *     [--method percentile|entropy] [--percentile P] [--threads N]`:
 * int8 scales for the CPU backend's convolutions (precision int8).
 *
 * Runs every input of the data through the model in fp32, every exit, and
 * records the values each convolution reads (its input) and writes (after
 * its activation) in histograms (nn/ee-backend-cpu-calib.h); then picks a
 * clipping threshold for each by the method: percentile (default: the P-th
 * percentile of |x|, P = 100 by default, the largest value seen) or entropy
 * (the threshold whose int8 version of the histogram diverges least from
 * it). A counting network sums its density map, so values clipped are
 * people lost: on the default model entropy's clipping loses 30-77% of the
 * MAE per exit, P = 99.99 up to 8%, P = 100 about 1% (docs/cpu-backend.md).
 * OUT is
 * MODEL with the metadata "int8" added (docs/model-format.md, "int8
 * scales"); its tensors and other metadata are MODEL's, byte for byte.
 *
 * Data: DIR holds the inputs, one per name: NAME.png, NAME.jpg or
 * NAME.jpeg (resized and preprocessed as the model says) or NAME.npy (the
 * network input (1,3,H,W), preprocessed), with the audio of a model that
 * takes audio in NAME.wav or NAME.audio.npy (the log-mel (1,1,96,64)); an
 * audio classifier takes NAME.wav alone. Hidden files are skipped.
 * random:N: N inputs of uniform random pixels (0..255, preprocessed) and
 * log-mel values (-4..4), seeded: for models with random weights, whose
 * activations real inputs would not make any more typical. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "ee-backend-cpu-calib.h"
#include "ee-cmds.h"
#include "ee-inputs.h"

typedef struct
{
  char *name;
  EeCalibHist in, out;
} OpStats;

typedef struct
{
  GPtrArray *ops;    /* OpStats, in the order first seen */
  GHashTable *index; /* name -> OpStats */
} Stats;

static void
op_stats_free (gpointer p)
{
  OpStats *s = p;

  g_free (s->name);
  g_free (s);
}

static void
observe (const char *name, const float *x, int64_t nx, const float *y,
         int64_t ny, gpointer data)
{
  Stats *st = data;
  OpStats *s = g_hash_table_lookup (st->index, name);

  if (!s) {
    s = g_new0 (OpStats, 1);
    s->name = g_strdup (name);
    ee_calib_hist_init (&s->in);
    ee_calib_hist_init (&s->out);
    g_ptr_array_add (st->ops, s);
    g_hash_table_insert (st->index, s->name, s);
  }
  ee_calib_hist_add (&s->in, x, nx);
  ee_calib_hist_add (&s->out, y, ny);
}

/* One input of the data: the network input and, for models with audio, the
 * log-mel (NULL when the model takes none). */
typedef struct
{
  char *image; /* path, or NULL for random */
  char *audio;
} Sample;

static gboolean
is_image (const char *f)
{
  return g_str_has_suffix (f, ".png") || g_str_has_suffix (f, ".jpg")
         || g_str_has_suffix (f, ".jpeg")
         || (g_str_has_suffix (f, ".npy")
             && !g_str_has_suffix (f, ".audio.npy"));
}

static char *
stem (const char *f)
{
  const char *dot = strrchr (f, '.');

  return g_strndup (f, dot ? (gsize)(dot - f) : strlen (f));
}

/* The samples of DIR, sorted by name. */
static GPtrArray *
list_dir (const char *dir, gboolean takes_audio, gboolean audio_only,
          GError **error)
{
  GDir *d = g_dir_open (dir, 0, error);
  GPtrArray *names, *samples;
  const char *f;

  if (!d)
    return NULL;
  names = g_ptr_array_new_with_free_func (g_free);
  while ((f = g_dir_read_name (d)))
    if (f[0] != '.')
      g_ptr_array_add (names, g_strdup (f));
  g_dir_close (d);
  g_ptr_array_sort (names, (GCompareFunc)g_strcmp0);
  samples = g_ptr_array_new ();
  for (guint i = 0; i < names->len; i++) {
    const char *n = *(char **)&names->pdata[i];
    Sample *s;

    if (audio_only ? !g_str_has_suffix (n, ".wav") : !is_image (n))
      continue;
    s = g_new0 (Sample, 1);
    if (audio_only) {
      s->audio = g_build_filename (dir, n, NULL);
    } else {
      char *base = stem (n);
      char *wav = g_strconcat (base, ".wav", NULL);
      char *npy = g_strconcat (base, ".audio.npy", NULL);

      s->image = g_build_filename (dir, n, NULL);
      for (guint k = 0; takes_audio && k < names->len && !s->audio; k++)
        if (!strcmp (names->pdata[k], wav) || !strcmp (names->pdata[k], npy))
          s->audio = g_build_filename (dir, names->pdata[k], NULL);
      if (takes_audio && !s->audio) {
        g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                     "--data: %s has no audio beside it (%s or %s): this "
                     "model takes audio",
                     s->image, wav, npy);
        g_free (base);
        g_free (wav);
        g_free (npy);
        g_free (s->image);
        g_free (s);
        g_ptr_array_unref (names);
        g_ptr_array_unref (samples);
        return NULL;
      }
      g_free (base);
      g_free (wav);
      g_free (npy);
    }
    g_ptr_array_add (samples, s);
  }
  g_ptr_array_unref (names);
  if (samples->len == 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT, "--data: %s holds no %s",
                 dir, audio_only ? "WAV files" : "images (PNG, JPEG or .npy)");
    g_ptr_array_unref (samples);
    return NULL;
  }
  return samples;
}

/* A random network input: pixels preprocessed as the model says. */
static void
random_image (EeModel *m, GRand *rand, float *image)
{
  const EePreprocess *pre = ee_model_preprocess (m);
  int w, h;

  ee_model_input_size (m, &w, &h);
  for (int c = 0; c < 3; c++)
    for (gsize k = 0; k < (gsize)w * h; k++) {
      float px = (float)g_rand_int_range (rand, 0, 256);

      image[c * (gsize)w * h + k]
          = (px * pre->scale - pre->mean[c]) / pre->std[c];
    }
}

/* The metadata "int8" of the statistics. */
static char *
int8_json (Stats *st, EeCalibMethod method, double pct, int n_inputs)
{
  JsonBuilder *b = json_builder_new ();
  JsonNode *root;
  char *text;

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "method");
  json_builder_add_string_value (b, method == EE_CALIB_ENTROPY ? "entropy"
                                                               : "percentile");
  if (method == EE_CALIB_PERCENTILE) {
    json_builder_set_member_name (b, "percentile");
    json_builder_add_double_value (b, pct);
  }
  json_builder_set_member_name (b, "inputs");
  json_builder_add_int_value (b, n_inputs);
  json_builder_set_member_name (b, "ops");
  json_builder_begin_object (b);
  for (guint i = 0; i < st->ops->len; i++) {
    OpStats *s = g_ptr_array_index (st->ops, i);
    gboolean u8 = s->in.min >= 0.0f;
    double t_in
        = ee_calib_threshold (&s->in, method, pct / 100.0, u8 ? 255 : 127);
    /* outputs that int8 may hold: non-negative ones (after a ReLU) */
    double t_out = s->out.min >= 0.0f
                       ? ee_calib_threshold (&s->out, method, pct / 100.0, 255)
                       : 0.0;

    /* an input that is all zeros still needs a scale */
    if (!(t_in > 0.0))
      t_in = 1.0;
    json_builder_set_member_name (b, s->name);
    json_builder_begin_array (b);
    json_builder_add_double_value (b, u8 ? 0.0 : s->in.min);
    json_builder_add_double_value (b, (float)t_in);
    json_builder_add_double_value (b, (float)t_out);
    json_builder_end_array (b);
  }
  json_builder_end_object (b);
  json_builder_end_object (b);
  root = json_builder_get_root (b);
  text = json_to_string (root, FALSE);
  json_node_unref (root);
  g_object_unref (b);
  return text;
}

/* OUT = IN with metadata "int8" set: the safetensors header (an 8-byte
 * little-endian length and JSON) rewritten, the tensor bytes copied. */
static gboolean
write_with_int8 (const char *in, const char *out, const char *int8,
                 GError **error)
{
  char *data = NULL, *header_text = NULL;
  gsize len;
  guint64 hlen;
  JsonParser *p = NULL;
  JsonNode *root;
  JsonObject *meta;
  GString *blob;
  gboolean ok = FALSE;

  if (!g_file_get_contents (in, &data, &len, error))
    return FALSE;
  memcpy (&hlen, data, 8);
  hlen = GUINT64_FROM_LE (hlen);
  p = json_parser_new ();
  if (len < 8 || hlen > len - 8
      || !json_parser_load_from_data (p, data + 8, (gssize)hlen, error)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (p))) {
    if (error && !*error)
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: not a safetensors file", in);
    goto out;
  }
  root = json_parser_get_root (p);
  if (!json_object_has_member (json_node_get_object (root), "__metadata__"))
    json_object_set_object_member (json_node_get_object (root), "__metadata__",
                                   json_object_new ());
  meta = json_object_get_object_member (json_node_get_object (root),
                                        "__metadata__");
  json_object_set_string_member (meta, "int8", int8);
  header_text = json_to_string (root, FALSE);
  blob = g_string_new (header_text);
  /* the data starts 8-byte aligned, as the writers align it */
  while (blob->len % 8)
    g_string_append_c (blob, ' ');
  hlen = GUINT64_TO_LE ((guint64)blob->len);
  {
    GString *file = g_string_sized_new (8 + blob->len + len);

    g_string_append_len (file, (const char *)&hlen, 8);
    g_string_append_len (file, blob->str, (gssize)blob->len);
    g_string_append_len (
        file, data + 8 + GUINT64_FROM_LE (*(guint64 *)data),
        (gssize)(len - 8 - GUINT64_FROM_LE (*(guint64 *)data)));
    ok = g_file_set_contents (out, file->str, (gssize)file->len, error);
    g_string_free (file, TRUE);
  }
  g_string_free (blob, TRUE);

out:
  if (p)
    g_object_unref (p);
  g_free (header_text);
  g_free (data);
  return ok;
}

int
ee_cmd_calibrate (int argc, char **argv)
{
  char *data = NULL, *out_path = NULL, *method_name = NULL;
  double pct = 100.0;
  int threads = 0, status = 1, n_random = 0;
  GOptionEntry entries[]
      = { { "data", 0, 0, G_OPTION_ARG_STRING, &data,
            "Directory of representative inputs, or random:N", "DIR" },
          { "out", 0, 0, G_OPTION_ARG_FILENAME, &out_path,
            "The calibrated model file to write", "OUT" },
          { "method", 0, 0, G_OPTION_ARG_STRING, &method_name,
            "percentile (default) or entropy", "M" },
          { "percentile", 0, 0, G_OPTION_ARG_DOUBLE, &pct,
            "The percentile method's P (default 100: the largest value)", "P" },
          { "threads", 0, 0, G_OPTION_ARG_INT, &threads,
            "CPU threads (default: all cores)", "N" },
          { NULL } };
  GOptionContext *ctx = g_option_context_new (
      "MODEL - int8 scales for the CPU backend's convolutions");
  GError *error = NULL;
  EeBackend *be = NULL;
  EeModel *m = NULL;
  GPtrArray *samples = NULL;
  Stats st = { 0 };
  EeCalibMethod method = EE_CALIB_PERCENTILE;
  EeFeatureParams features;
  gboolean audio_only, takes_audio;
  float *image = NULL, *audio = NULL;
  GRand *rand = NULL;
  char *int8 = NULL;
  int n, w, h;

  st.ops = g_ptr_array_new_with_free_func (op_stats_free);
  st.index = g_hash_table_new (g_str_hash, g_str_equal);
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    goto out;
  if (argc != 2 || !data || !out_path) {
    g_printerr ("usage: earlyexit calibrate MODEL --data DIR|random:N --out "
                "OUT [--method percentile|entropy] [--percentile P] "
                "[--threads N]\n");
    status = 2;
    goto out;
  }
  if (method_name && !strcmp (method_name, "entropy"))
    method = EE_CALIB_ENTROPY;
  else if (method_name && strcmp (method_name, "percentile")) {
    g_set_error (&error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "--method: \"%s\" is not entropy or percentile", method_name);
    goto out;
  }
  if (!(pct > 50.0 && pct <= 100.0)) {
    g_set_error (&error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "--percentile: %g is not in (50, 100]", pct);
    goto out;
  }
  if (g_str_has_prefix (data, "random:")) {
    char *end;

    n_random = (int)strtol (data + 7, &end, 10);
    if (*end || n_random < 1 || n_random > 100000) {
      g_set_error (&error, EE_ERROR, EE_ERROR_ARGUMENT,
                   "--data: \"%s\": random:N takes N from 1 to 100000", data);
      goto out;
    }
  }
  if (!(be = ee_backend_cpu_new_full (threads, EE_PRECISION_FP32, &error)))
    goto out;
  ee_backend_cpu_set_conv_observer (be, observe, &st);
  if (!(m = ee_model_load (argv[1], be, TRUE, &error)))
    goto out;
  audio_only = ee_model_audio_features (m, &features);
  takes_audio = !audio_only && ee_model_audio_input (m) >= 0;
  if (!n_random
      && !(samples = list_dir (data, takes_audio, audio_only, &error)))
    goto out;
  n = n_random ? n_random : (int)samples->len;
  ee_model_input_size (m, &w, &h);
  rand = g_rand_new_with_seed (20261206);
  for (int i = 0; i < n; i++) {
    Sample *s = samples ? g_ptr_array_index (samples, i) : NULL;
    double coverage;

    g_clear_pointer (&image, g_free);
    g_clear_pointer (&audio, g_free);
    if (!s) {
      image = g_new (float, (gsize)3 * w * h);
      if (audio_only) /* the input is features: log-mel-like values */
        for (gsize k = 0; k < (gsize)3 * w * h; k++)
          image[k] = (float)g_rand_double_range (rand, -4.0, 4.0);
      else
        random_image (m, rand, image);
      if (takes_audio) {
        audio = g_new (float, 96 * 64);
        for (int k = 0; k < 96 * 64; k++)
          audio[k] = (float)g_rand_double_range (rand, -4.0, 4.0);
      }
    } else if (audio_only) {
      image = ee_input_audio (s->audio, &features, &coverage, &error);
    } else {
      image = ee_input_image (m, s->image, &error);
      if (image && s->audio)
        audio = ee_input_audio (s->audio, NULL, &coverage, &error);
    }
    if (!image || (!s && takes_audio && !audio)
        || (s && s->audio && !audio_only && !audio)
        || !ee_model_set_image (m, image, &error)
        || (audio && !ee_model_set_audio (m, audio, &error))
        || !ee_model_run_sync (
            m, (1u << ee_runner_n_exits (ee_model_runner (m))) - 1, &error))
      goto out;
  }
  if (st.ops->len == 0) {
    g_set_error (&error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s has no convolutions: nothing to calibrate", argv[1]);
    goto out;
  }
  int8 = int8_json (&st, method, pct, n);
  if (!write_with_int8 (argv[1], out_path, int8, &error))
    goto out;
  printf ("%s: %u convolutions calibrated on %d inputs (%s), written to %s\n",
          argv[1], st.ops->len, n,
          method == EE_CALIB_ENTROPY ? "entropy" : "percentile", out_path);
  status = 0;

out:
  if (error)
    g_printerr ("earlyexit calibrate: %s\n", error->message);
  g_clear_error (&error);
  ee_model_free (m);
  ee_backend_free (be);
  if (samples) {
    for (guint i = 0; i < samples->len; i++) {
      Sample *s = g_ptr_array_index (samples, i);

      g_free (s->image);
      g_free (s->audio);
      g_free (s);
    }
    g_ptr_array_unref (samples);
  }
  g_hash_table_unref (st.index);
  g_ptr_array_unref (st.ops);
  if (rand)
    g_rand_free (rand);
  g_free (image);
  g_free (audio);
  g_free (int8);
  g_free (data);
  g_free (out_path);
  g_free (method_name);
  g_option_context_free (ctx);
  return status;
}
