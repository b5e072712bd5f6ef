/* `earlyexit run MODEL --image IMG [--audio WAV] [--exits LIST] [--json]`:
 * runs one frame through the model and prints every requested exit's value and
 * the time it finished (milliseconds since the run started).
 *
 * --image: PNG/JPEG (resized bilinearly to the model input and normalised as the
 *          model file says) or a .npy float tensor (1,3,H,W) already preprocessed.
 * --audio: a 16 kHz WAV (its first second; shorter is zero-padded with a warning)
 *          or a .npy log-mel (1,1,96,64). Without --audio, exits that need audio
 *          are skipped and reported so. */
#include <stdio.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "ee-cmds.h"
#include "ee-features.h"
#include "ee-media.h"
#include "ee-npy.h"

typedef struct
{
  char *image;
  char *audio;
  char *exits;
  gboolean json;
  int threads;
} Options;

static gboolean
npy_expect (const char *path, int ndim, const int64_t *shape, float **data,
    GError **error)
{
  int got_ndim;
  int64_t got[EE_MAX_DIMS];
  gboolean same;

  *data = ee_npy_read_f32 (path, &got_ndim, got, error);
  if (!*data)
    return FALSE;
  same = got_ndim == ndim;
  for (int i = 0; same && i < ndim; i++)
    same = got[i] == shape[i];
  if (!same) {
    GString *g = g_string_new (NULL), *e = g_string_new (NULL);
    for (int i = 0; i < got_ndim; i++)
      g_string_append_printf (g, "%s%" G_GINT64_FORMAT, i ? "," : "", got[i]);
    for (int i = 0; i < ndim; i++)
      g_string_append_printf (e, "%s%" G_GINT64_FORMAT, i ? "," : "", shape[i]);
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
        "%s: shape (%s), the model needs (%s)", path, g->str, e->str);
    g_string_free (g, TRUE);
    g_string_free (e, TRUE);
    g_clear_pointer (data, g_free);
    return FALSE;
  }
  return TRUE;
}

static float *
load_image (EeModel *m, const char *path, GError **error)
{
  int w, h;
  float *out = NULL;
  EeImage img;

  ee_model_input_size (m, &w, &h);
  if (g_str_has_suffix (path, ".npy")) {
    const int64_t shape[4] = { 1, 3, h, w };
    npy_expect (path, 4, shape, &out, error);
    return out;
  }
  if (!ee_image_load (path, &img, error))
    return NULL;
  out = g_new (float, (gsize) 3 * w * h);
  ee_preprocess_rgb8 (img.rgb, img.width, img.height, img.width * 3, 3,
      ee_model_preprocess (m), w, h, out);
  ee_image_clear (&img);
  return out;
}

/* coverage: fraction of the window the file filled (1 for a .npy log-mel) */
static float *
load_audio (const char *path, double *coverage, GError **error)
{
  EeFeatureParams params = ee_feature_default_params (EE_FEATURES_VGGISH);
  EeFeatureExtractor *fx = NULL;
  float *wav = NULL, *window = NULL, *out = NULL;
  gsize n, need;
  int rate;
  int64_t shape[4];

  *coverage = 1.0;
  if (g_str_has_suffix (path, ".npy")) {
    const int64_t want[4] = { 1, 1, 96, 64 };
    npy_expect (path, 4, want, &out, error);
    return out;
  }
  fx = ee_feature_extractor_new (&params, error);
  if (!fx || !(wav = ee_wav_read_mono (path, &rate, &n, error)))
    goto done;
  if (rate != ee_feature_extractor_sample_rate (fx)) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
        "%s: sample rate %d Hz, the model needs %d Hz: resample first (e.g. "
        "sox IN.wav -r %d OUT.wav)", path, rate,
        ee_feature_extractor_sample_rate (fx),
        ee_feature_extractor_sample_rate (fx));
    goto done;
  }
  need = ee_feature_extractor_window (fx);
  window = g_new0 (float, need);
  memcpy (window, wav, MIN (n, need) * sizeof (float));
  *coverage = (double) MIN (n, need) / need;
  if (n < need)
    g_printerr ("earlyexit run: warning: %s has %zu samples, zero-padded to "
        "%zu\n", path, n, need);
  ee_feature_extractor_shape (fx, shape);
  out = g_new (float, shape[0] * shape[1] * shape[2] * shape[3]);
  if (!ee_feature_extractor_compute (fx, window, need, out, error))
    g_clear_pointer (&out, g_free);
done:
  g_free (window);
  g_free (wav);
  ee_feature_extractor_free (fx);
  return out;
}

static gboolean
parse_exits (EeRunner *r, const char *list, guint32 *mask, GError **error)
{
  char **names;

  if (!list) {
    *mask = (1u << ee_runner_n_exits (r)) - 1;
    return TRUE;
  }
  *mask = 0;
  names = g_strsplit (list, ",", -1);
  for (char **n = names; *n; n++) {
    int i = ee_runner_find_exit (r, g_strstrip (*n));
    if (i < 0) {
      GString *known = g_string_new (NULL);
      for (int k = 0; k < ee_runner_n_exits (r); k++)
        g_string_append_printf (known, "%s%s", k ? "," : "",
            ee_runner_result (r, k)->name);
      g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
          "--exits: no exit named \"%s\" (this model has %s)", *n, known->str);
      g_string_free (known, TRUE);
      g_strfreev (names);
      return FALSE;
    }
    *mask |= 1u << i;
  }
  g_strfreev (names);
  return TRUE;
}

static void
print_results (EeModel *m, guint32 requested, guint32 skipped, double coverage,
    gboolean json)
{
  EeRunner *r = ee_model_runner (m);

  if (json) {
    JsonBuilder *b = json_builder_new ();
    JsonNode *root;
    char *text;

    json_builder_begin_object (b);
    json_builder_set_member_name (b, "model");
    json_builder_add_string_value (b, ee_model_path (m));
    json_builder_set_member_name (b, "audio_coverage");
    json_builder_add_double_value (b, coverage);
    json_builder_set_member_name (b, "exits");
    json_builder_begin_array (b);
    for (int i = 0; i < ee_runner_n_exits (r); i++) {
      const EeExitResult *res = ee_runner_result (r, i);
      if (!((requested >> i) & 1) || !res->done)
        continue;
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "name");
      json_builder_add_string_value (b, res->name);
      json_builder_set_member_name (b, "value");
      json_builder_add_double_value (b, res->value[0]);
      json_builder_set_member_name (b, "time_ms");
      json_builder_add_double_value (b, res->time_ms);
      json_builder_end_object (b);
    }
    json_builder_end_array (b);
    if (skipped) {
      json_builder_set_member_name (b, "skipped_no_audio");
      json_builder_begin_array (b);
      for (int i = 0; i < ee_runner_n_exits (r); i++)
        if ((skipped >> i) & 1)
          json_builder_add_string_value (b, ee_runner_result (r, i)->name);
      json_builder_end_array (b);
    }
    json_builder_end_object (b);
    root = json_builder_get_root (b);
    text = json_to_string (root, FALSE);
    printf ("%s\n", text);
    g_free (text);
    json_node_unref (root);
    g_object_unref (b);
    return;
  }
  printf ("audio coverage %.3f\n", coverage);
  printf ("%-8s %14s %10s\n", "exit", "value", "time_ms");
  for (int i = 0; i < ee_runner_n_exits (r); i++) {
    const EeExitResult *res = ee_runner_result (r, i);
    if ((skipped >> i) & 1)
      printf ("%-8s %14s %10s\n", res->name, "(no audio)", "-");
    else if (((requested >> i) & 1) && res->done)
      printf ("%-8s %14.6g %10.2f\n", res->name, res->value[0], res->time_ms);
  }
}

int
ee_cmd_run (int argc, char **argv)
{
  Options o = { 0 };
  GOptionEntry entries[] = {
    {"image", 0, 0, G_OPTION_ARG_FILENAME, &o.image,
        "PNG/JPEG image, or .npy (1,3,H,W) preprocessed", "IMG"},
    {"audio", 0, 0, G_OPTION_ARG_FILENAME, &o.audio,
        "16 kHz WAV, or .npy (1,1,96,64) log-mel", "WAV"},
    {"exits", 0, 0, G_OPTION_ARG_STRING, &o.exits,
        "Comma-separated exits to run (default: all)", "LIST"},
    {"json", 0, 0, G_OPTION_ARG_NONE, &o.json, "Print one JSON object", NULL},
    {"threads", 0, 0, G_OPTION_ARG_INT, &o.threads,
        "CPU threads (default: all cores)", "N"},
    {NULL}
  };
  GOptionContext *ctx =
      g_option_context_new ("MODEL - run one frame through a model");
  GError *error = NULL;
  EeBackend *be = NULL;
  EeModel *m = NULL;
  float *image = NULL, *audio = NULL;
  guint32 mask, skipped = 0;
  double coverage = 0.0;
  int status = 1;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    goto out;
  if (argc != 2 || !o.image) {
    g_printerr ("usage: earlyexit run MODEL --image IMG [--audio WAV] "
        "[--exits LIST] [--json]\n");
    status = 2;
    goto out;
  }
  if (!(be = ee_backend_cpu_new (o.threads, &error)) ||
      !(m = ee_model_load (argv[1], be, TRUE, &error)) ||
      !parse_exits (ee_model_runner (m), o.exits, &mask, &error) ||
      !(image = load_image (m, o.image, &error)) ||
      (o.audio && !(audio = load_audio (o.audio, &coverage, &error))))
    goto out;
  if (!audio) {
    skipped = mask & ee_model_audio_exits (m);
    mask &= ~ee_model_audio_exits (m);
  }
  if (!ee_model_set_image (m, image, &error) ||
      (audio && !ee_model_set_audio (m, audio, &error)) ||
      !ee_model_run_sync (m, mask, &error))
    goto out;
  print_results (m, mask, skipped, coverage, o.json);
  status = 0;

out:
  if (error)
    g_printerr ("earlyexit run: %s\n", error->message);
  g_clear_error (&error);
  ee_model_free (m);
  ee_backend_free (be);
  g_free (image);
  g_free (audio);
  g_free (o.image);
  g_free (o.audio);
  g_free (o.exits);
  g_option_context_free (ctx);
  return status;
}
