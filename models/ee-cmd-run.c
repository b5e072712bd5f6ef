/* `earlyexit run MODEL --image IMG [--audio WAV] [--exits LIST] [--json]`:
 * runs one frame through the model and prints every requested exit's value and
 * the time it finished (milliseconds since the run started). A classifier's
 * exits print the top class instead of a value: its label (the class number
 * when the file has no labels), label_id, and confidence (its softmax
 * probability); --json gives them, and every logit, in place of "value".
 *
 * --image: PNG/JPEG (resized bilinearly to the model input and normalised as
 * the model file says) or a .npy float tensor (1,3,H,W) already preprocessed.
 * --audio: a 16 kHz WAV (its first second; shorter is zero-padded with a
 * warning) or a .npy log-mel (1,1,96,64). Without --audio, exits that need
 * audio are skipped and reported so. An audio classifier (SC, GTZAN) takes only
 * --audio: a WAV at the model's rate (its first window: 1 s SC, 3 s GTZAN)
 * whose features become the network input; --image .npy gives that input
 * directly.
 * --precision: fp32 (default), bf16 (convolutions and large inner products in
 *          bf16; refused on CPUs without AVX-512) or int8 (convolutions in
 *          int8 with the scales of `earlyexit calibrate`; refused on CPUs
 *          without VNNI and on model files without scales). */
#include <stdio.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "ee-cmds.h"
#include "ee-features.h"
#include "ee-inputs.h"

typedef struct
{
  char *image;
  char *audio;
  char *exits;
  gboolean json;
  int threads;
  char *precision;
} Options;

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
                                ee_runner_exit_name (r, k));
      g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                   "--exits: no exit named \"%s\" (this model has %s)", *n,
                   known->str);
      g_string_free (known, TRUE);
      g_strfreev (names);
      return FALSE;
    }
    *mask |= 1u << i;
  }
  g_strfreev (names);
  return TRUE;
}

/* label, label_id, confidence and the logits of a classifier's exit */
static void
add_classification (JsonBuilder *b, EeModel *m, const EeExitResult *res)
{
  EeClassification c;
  char id[16];

  ee_model_classify (m, res->value, res->n_out, &c);
  g_snprintf (id, sizeof id, "%d", c.label_id);
  json_builder_set_member_name (b, "label");
  json_builder_add_string_value (b, c.label ? c.label : id);
  json_builder_set_member_name (b, "label_id");
  json_builder_add_int_value (b, c.label_id);
  json_builder_set_member_name (b, "confidence");
  json_builder_add_double_value (b, c.confidence);
  json_builder_set_member_name (b, "logits");
  json_builder_begin_array (b);
  for (int64_t k = 0; k < res->n_out; k++)
    json_builder_add_double_value (b, res->value[k]);
  json_builder_end_array (b);
}

static void
print_classifications (EeModel *m, guint32 requested)
{
  EeRunner *r = ee_model_runner (m);

  printf ("%-8s %-24s %8s %10s %10s\n", "exit", "label", "label_id",
          "confidence", "time_ms");
  for (int i = 0; i < ee_runner_n_exits (r); i++) {
    const EeExitResult *res = ee_model_result (m, i);
    EeClassification c;
    char id[16];

    if (!((requested >> i) & 1) || !res->done)
      continue;
    ee_model_classify (m, res->value, res->n_out, &c);
    g_snprintf (id, sizeof id, "%d", c.label_id);
    printf ("%-8s %-24s %8d %10.4f %10.2f\n", res->name, c.label ? c.label : id,
            c.label_id, c.confidence, res->time_ms);
  }
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
      const EeExitResult *res = ee_model_result (m, i);
      if (!((requested >> i) & 1) || !res->done)
        continue;
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "name");
      json_builder_add_string_value (b, res->name);
      if (ee_model_task (m) == EE_TASK_CLASSIFY) {
        add_classification (b, m, res);
      } else {
        json_builder_set_member_name (b, "value");
        json_builder_add_double_value (b, res->value[0]);
      }
      if (res->map) {
        /* the exit's map: height x width floats, row-major */
        json_builder_set_member_name (b, "map");
        json_builder_begin_object (b);
        json_builder_set_member_name (b, "width");
        json_builder_add_int_value (b, res->map_w);
        json_builder_set_member_name (b, "height");
        json_builder_add_int_value (b, res->map_h);
        json_builder_set_member_name (b, "values");
        json_builder_begin_array (b);
        for (int64_t k = 0; k < res->map_h * res->map_w; k++)
          json_builder_add_double_value (b, res->map[k]);
        json_builder_end_array (b);
        json_builder_end_object (b);
      }
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
          json_builder_add_string_value (b, ee_runner_exit_name (r, i));
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
  if (ee_model_task (m) == EE_TASK_CLASSIFY) {
    if (ee_model_audio_features (m, NULL))
      printf ("audio coverage %.3f\n", coverage);
    print_classifications (m, requested);
    return;
  }
  printf ("audio coverage %.3f\n", coverage);
  printf ("%-8s %14s %10s\n", "exit", "value", "time_ms");
  for (int i = 0; i < ee_runner_n_exits (r); i++) {
    const EeExitResult *res = ee_model_result (m, i);
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
  GOptionEntry entries[]
      = { { "image", 0, 0, G_OPTION_ARG_FILENAME, &o.image,
            "PNG/JPEG image, or .npy (1,3,H,W) preprocessed", "IMG" },
          { "audio", 0, 0, G_OPTION_ARG_FILENAME, &o.audio,
            "16 kHz WAV, or .npy (1,1,96,64) log-mel; an audio classifier's "
            "input: WAV at its rate",
            "WAV" },
          { "exits", 0, 0, G_OPTION_ARG_STRING, &o.exits,
            "Comma-separated exits to run (default: all)", "LIST" },
          { "json", 0, 0, G_OPTION_ARG_NONE, &o.json, "Print one JSON object",
            NULL },
          { "threads", 0, 0, G_OPTION_ARG_INT, &o.threads,
            "CPU threads (default: all cores)", "N" },
          { "precision", 0, 0, G_OPTION_ARG_STRING, &o.precision,
            "fp32 (default), bf16 or int8", "P" },
          { NULL } };
  GOptionContext *ctx
      = g_option_context_new ("MODEL - run one frame through a model");
  GError *error = NULL;
  EeBackend *be = NULL;
  EeModel *m = NULL;
  float *image = NULL, *audio = NULL;
  guint32 mask, skipped = 0;
  double coverage = 0.0;
  EeFeatureParams features;
  EePrecision precision = EE_PRECISION_FP32;
  int status = 1;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    goto out;
  if (argc != 2 || (!o.image && !o.audio)) {
    g_printerr ("usage: earlyexit run MODEL --image IMG [--audio WAV] "
                "[--exits LIST] [--json] [--precision fp32|bf16|int8]\n");
    status = 2;
    goto out;
  }
  if (o.precision
      && (!ee_precision_from_string (o.precision, &precision)
          || (precision != EE_PRECISION_FP32 && precision != EE_PRECISION_BF16
              && precision != EE_PRECISION_INT8))) {
    g_set_error (&error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "--precision: \"%s\" is not fp32, bf16 or int8", o.precision);
    goto out;
  }
  if (!(be = ee_backend_cpu_new_full (o.threads, precision, &error))
      || !(m = ee_model_load (argv[1], be, TRUE, &error))
      || !parse_exits (ee_model_runner (m), o.exits, &mask, &error))
    goto out;
  if (ee_model_audio_features (m, &features)) {
    /* an audio classifier: the clip's features are the network input */
    if (!(image = o.image
                      ? ee_input_image (m, o.image, &error)
                      : ee_input_audio (o.audio, &features, &coverage, &error)))
      goto out;
  } else if (!o.image) {
    g_set_error (&error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s takes an image: give --image", argv[1]);
    goto out;
  } else if (!(image = ee_input_image (m, o.image, &error))
             || (o.audio
                 && !(audio
                      = ee_input_audio (o.audio, NULL, &coverage, &error)))) {
    goto out;
  }
  if (!audio) {
    skipped = mask & ee_model_audio_exits (m);
    mask &= ~ee_model_audio_exits (m);
  }
  if (!ee_model_set_image (m, image, &error)
      || (audio && !ee_model_set_audio (m, audio, &error))
      || !ee_model_run_sync (m, mask, &error))
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
  g_free (o.precision);
  g_option_context_free (ctx);
  return status;
}
