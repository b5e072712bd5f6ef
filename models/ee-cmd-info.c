/* `earlyexit info MODEL [--json]`: architecture, input size, and every exit
 * with its own parameter count, the parameters it depends on, and the FLOPs of
 * one frame up to and including it (its branch plus the backbone stages it
 * needs). */
#include <stdio.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "ee-cmds.h"
#include "ee-model.h"

static int64_t
params_total (EeRunner *r, const EeSegment *s)
{
  int64_t p = s->params;
  for (int i = 0; i < ee_runner_n_segments (r); i++)
    if (s->needs & (1u << i))
      p += ee_runner_segment (r, i)->params;
  return p;
}

static void
print_text (EeModel *m)
{
  EeRunner *r = ee_model_runner (m);
  const EePreprocess *pre = ee_model_preprocess (m);
  EeFeatureParams features;
  int w, h, width = 12;

  ee_model_input_size (m, &w, &h);
  printf ("model:  %s\n", ee_model_path (m));
  printf ("arch:   %s (%s)\n", ee_model_arch (m),
          ee_model_task (m) == EE_TASK_COUNT ? "crowd counting"
                                             : "classification");
  if (ee_model_source (m))
    printf ("source: %s\n", ee_model_source (m));
  if (ee_model_audio_features (m, &features))
    printf ("input:  %dx%d %s audio features, x = (feature - mean) / std, "
            "mean [%g %g %g], std [%g %g %g]\n",
            w, h, ee_feature_kind_to_string (features.kind), features.mean[0],
            features.mean[1], features.mean[2], features.std[0],
            features.std[1], features.std[2]);
  else
    printf ("input:  %dx%d %s, x = (pixel * %g - mean) / std, mean [%g %g %g], "
            "std [%g %g %g]\n",
            w, h, pre->bgr ? "BGR" : "RGB", pre->scale, pre->mean[0],
            pre->mean[1], pre->mean[2], pre->std[0], pre->std[1], pre->std[2]);
  /* stages are named after taps, as long as "features.transition2.conv" */
  for (int i = 0; i < ee_runner_n_segments (r); i++)
    width = MAX (width, (int)strlen (ee_runner_segment (r, i)->name));
  printf ("\nsegments in anytime order:\n");
  printf ("  %-*s %-6s %12s %12s\n", width, "segment", "kind", "params",
          "GFLOP");
  for (int i = 0; i < ee_runner_n_segments (r); i++) {
    const EeSegment *s = ee_runner_segment (r, i);
    printf ("  %-*s %-6s %12" G_GINT64_FORMAT " %12.3f\n", width, s->name,
            s->is_exit ? "exit" : "stage", s->params, s->flops / 1e9);
  }
  printf ("\nexits:\n");
  printf ("  %-8s %14s %16s %18s %-5s %s\n", "exit", "exit params",
          "params to exit", "GFLOP to exit", "audio", "map");
  for (int i = 0; i < ee_runner_n_exits (r); i++) {
    const EeSegment *s = ee_runner_segment (r, ee_runner_exit_segment (r, i));
    char map[48] = "-";

    if (s->map >= 0)
      g_snprintf (map, sizeof map, "%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT,
                  s->map_w, s->map_h);
    printf ("  %-8s %14" G_GINT64_FORMAT " %16" G_GINT64_FORMAT
            " %18.3f %-5s %s\n",
            s->name, s->params, params_total (r, s), s->flops_total / 1e9,
            (ee_model_audio_exits (m) >> i) & 1 ? "yes" : "no", map);
  }
}

static void
print_json (EeModel *m)
{
  EeRunner *r = ee_model_runner (m);
  JsonBuilder *b = json_builder_new ();
  JsonParser *cfg = json_parser_new ();
  JsonNode *root;
  char *text;
  int w, h;

  ee_model_input_size (m, &w, &h);
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, ee_model_path (m));
  json_builder_set_member_name (b, "arch");
  json_builder_add_string_value (b, ee_model_arch (m));
  if (ee_model_source (m)) {
    json_builder_set_member_name (b, "source");
    json_builder_add_string_value (b, ee_model_source (m));
  }
  json_builder_set_member_name (b, "task");
  json_builder_add_string_value (
      b, ee_model_task (m) == EE_TASK_COUNT ? "count" : "classify");
  if (ee_model_label (m, 0)) {
    json_builder_set_member_name (b, "labels");
    json_builder_begin_array (b);
    for (int i = 0; ee_model_label (m, i); i++)
      json_builder_add_string_value (b, ee_model_label (m, i));
    json_builder_end_array (b);
  }
  json_builder_set_member_name (b, "input_width");
  json_builder_add_int_value (b, w);
  json_builder_set_member_name (b, "input_height");
  json_builder_add_int_value (b, h);
  json_builder_set_member_name (b, "segments");
  json_builder_begin_array (b);
  for (int i = 0; i < ee_runner_n_segments (r); i++) {
    const EeSegment *s = ee_runner_segment (r, i);
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "name");
    json_builder_add_string_value (b, s->name);
    json_builder_set_member_name (b, "exit");
    json_builder_add_boolean_value (b, s->is_exit);
    json_builder_set_member_name (b, "params");
    json_builder_add_int_value (b, s->params);
    json_builder_set_member_name (b, "flops");
    json_builder_add_double_value (b, s->flops);
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  json_builder_set_member_name (b, "exits");
  json_builder_begin_array (b);
  for (int i = 0; i < ee_runner_n_exits (r); i++) {
    const EeSegment *s = ee_runner_segment (r, ee_runner_exit_segment (r, i));
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "name");
    json_builder_add_string_value (b, s->name);
    json_builder_set_member_name (b, "params");
    json_builder_add_int_value (b, s->params);
    json_builder_set_member_name (b, "params_to_exit");
    json_builder_add_int_value (b, params_total (r, s));
    json_builder_set_member_name (b, "flops_to_exit");
    json_builder_add_double_value (b, s->flops_total);
    json_builder_set_member_name (b, "uses_audio");
    json_builder_add_boolean_value (b, (ee_model_audio_exits (m) >> i) & 1);
    /* the exit's map grid (ee_runner_set_exit_map), when it has one */
    if (s->map >= 0) {
      json_builder_set_member_name (b, "map_width");
      json_builder_add_int_value (b, s->map_w);
      json_builder_set_member_name (b, "map_height");
      json_builder_add_int_value (b, s->map_h);
    }
    json_builder_end_object (b);
  }
  json_builder_end_array (b);
  if (json_parser_load_from_data (cfg, ee_model_config_json (m), -1, NULL)) {
    json_builder_set_member_name (b, "config");
    json_builder_add_value (b, json_node_copy (json_parser_get_root (cfg)));
  }
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  text = json_to_string (root, TRUE);
  printf ("%s\n", text);
  g_free (text);
  json_node_unref (root);
  g_object_unref (cfg);
  g_object_unref (b);
}

int
ee_cmd_info (int argc, char **argv)
{
  gboolean json = FALSE;
  GOptionEntry entries[] = { { "json", 0, 0, G_OPTION_ARG_NONE, &json,
                               "Print one JSON object", NULL },
                             { NULL } };
  GOptionContext *ctx = g_option_context_new ("MODEL - describe a model file");
  GError *error = NULL;
  EeBackend *be = NULL;
  EeModel *m = NULL;
  int status = 1;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    goto out;
  if (argc != 2) {
    g_printerr ("usage: earlyexit info MODEL [--json]\n");
    status = 2;
    goto out;
  }
  be = ee_backend_cpu_new (0, &error);
  if (!be)
    goto out;
  /* no arena: info only needs the graph's shapes and costs */
  m = ee_model_load (argv[1], be, FALSE, &error);
  if (!m)
    goto out;
  if (json)
    print_json (m);
  else
    print_text (m);
  status = 0;

out:
  if (error)
    g_printerr ("earlyexit info: %s\n", error->message);
  g_clear_error (&error);
  ee_model_free (m);
  ee_backend_free (be);
  g_option_context_free (ctx);
  return status;
}
