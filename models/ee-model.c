/* gst-earlyexit: model files -> runnable multi-exit models. */
#include "ee-model-private.h"

#include <math.h>
#include <string.h>

#define MODEL_FORMAT "gst-earlyexit"
/* Version 2 added the classification architectures and the "labels" key;
 * version 1 files (AudioCSRNet) read unchanged. */
#define MODEL_FORMAT_VERSION_MAX 2

typedef struct
{
  const char *arch;
  int since_version; /* first format_version that defines it */
  gboolean (*build) (EeModel *m, JsonObject *config, GError **error);
} Architecture;

static const Architecture architectures[] = {
  { "audiocsrnet", 1, ee_audiocsrnet_build },
  { "resnet152", 2, ee_resnet152_build },
  { "densenet201", 2, ee_densenet201_build },
  { "inceptionv3", 2, ee_inceptionv3_build },
};

float *
ee_model_tensor (EeModel *m, const char *name, int ndim, const int64_t *shape,
                 GError **error)
{
  const EeStTensor *t
      = ee_safetensors_get_checked (m->st, name, ndim, shape, error);
  float *data;

  if (!t)
    return NULL;
  data = g_new (float, MAX (t->numel, 1));
  ee_st_tensor_to_f32 (t, data);
  g_ptr_array_add (m->scratch, data);
  /* one pass over what was just converted: a NaN or an infinity in the
   * weights would only show as NaN results, frame after frame */
  for (int64_t i = 0; i < t->numel; i++) {
    if (!isfinite (data[i])) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "%s: tensor \"%s\" holds %s at element %" G_GINT64_FORMAT
                   " (of %" G_GINT64_FORMAT "): the weights are not finite "
                   "(a diverged training or a damaged file); export the "
                   "model again",
                   ee_safetensors_path (m->st), name,
                   isnan (data[i]) ? "NaN" : "an infinity", i, t->numel);
      return NULL;
    }
  }
  g_hash_table_add (m->used, g_strdup (name));
  return data;
}

gboolean
ee_model_has_tensor (EeModel *m, const char *name)
{
  return ee_safetensors_find (m->st, name) != NULL;
}

float *
ee_model_scratch (EeModel *m, gsize n)
{
  float *data = g_new0 (float, MAX (n, 1));
  g_ptr_array_add (m->scratch, data);
  return data;
}

static JsonNode *
member (JsonObject *o, const char *what, const char *key, GError **error)
{
  JsonNode *n = json_object_get_member (o, key);
  if (!n)
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "config: %s: missing \"%s\"",
                 what, key);
  return n;
}

gboolean
ee_json_int (JsonObject *o, const char *what, const char *key, gint64 lo,
             gint64 hi, gint64 *out, GError **error)
{
  JsonNode *n = member (o, what, key, error);

  if (!n)
    return FALSE;
  if (JSON_NODE_HOLDS_VALUE (n)
      && json_node_get_value_type (n) == G_TYPE_INT64) {
    *out = json_node_get_int (n);
    if (*out >= lo && *out <= hi)
      return TRUE;
  }
  g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
               "config: %s: \"%s\" must be an integer in [%" G_GINT64_FORMAT
               ", %" G_GINT64_FORMAT "]",
               what, key, lo, hi);
  return FALSE;
}

gboolean
ee_json_double (JsonObject *o, const char *what, const char *key, double *out,
                GError **error)
{
  JsonNode *n = member (o, what, key, error);

  if (!n)
    return FALSE;
  if (JSON_NODE_HOLDS_VALUE (n)
      && (json_node_get_value_type (n) == G_TYPE_DOUBLE
          || json_node_get_value_type (n) == G_TYPE_INT64)) {
    *out = json_node_get_double (n);
    return TRUE;
  }
  g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
               "config: %s: \"%s\" must be a number", what, key);
  return FALSE;
}

gboolean
ee_json_bool (JsonObject *o, const char *what, const char *key, gboolean *out,
              GError **error)
{
  JsonNode *n = member (o, what, key, error);

  if (!n)
    return FALSE;
  if (JSON_NODE_HOLDS_VALUE (n)
      && json_node_get_value_type (n) == G_TYPE_BOOLEAN) {
    *out = json_node_get_boolean (n);
    return TRUE;
  }
  g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
               "config: %s: \"%s\" must be true or false", what, key);
  return FALSE;
}

const char *
ee_json_string (JsonObject *o, const char *what, const char *key,
                const char *const *allowed, GError **error)
{
  JsonNode *n = member (o, what, key, error);
  const char *s;

  if (!n)
    return NULL;
  if (!JSON_NODE_HOLDS_VALUE (n)
      || json_node_get_value_type (n) != G_TYPE_STRING) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: %s: \"%s\" must be a string", what, key);
    return NULL;
  }
  s = json_node_get_string (n);
  if (allowed && !g_strv_contains (allowed, s)) {
    char *list = g_strjoinv ("|", (char **)allowed);
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "config: %s: \"%s\" is \"%s\"; supported: %s", what, key, s,
                 list);
    g_free (list);
    return NULL;
  }
  return s;
}

JsonArray *
ee_json_array (JsonObject *o, const char *what, const char *key, GError **error)
{
  JsonNode *n = member (o, what, key, error);

  if (n && JSON_NODE_HOLDS_ARRAY (n))
    return json_node_get_array (n);
  if (n)
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: %s: \"%s\" must be an array", what, key);
  return NULL;
}

JsonObject *
ee_json_object (JsonObject *o, const char *what, const char *key,
                GError **error)
{
  JsonNode *n = member (o, what, key, error);

  if (n && JSON_NODE_HOLDS_OBJECT (n))
    return json_node_get_object (n);
  if (n)
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: %s: \"%s\" must be an object", what, key);
  return NULL;
}

gboolean
ee_json_floats (JsonObject *o, const char *what, const char *key, int n,
                float *out, GError **error)
{
  JsonArray *a = ee_json_array (o, what, key, error);

  if (!a)
    return FALSE;
  if (json_array_get_length (a) != (guint)n) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: %s: \"%s\" must have %d values", what, key, n);
    return FALSE;
  }
  for (int i = 0; i < n; i++) {
    JsonNode *e = json_array_get_element (a, (guint)i);
    if (!JSON_NODE_HOLDS_VALUE (e)
        || (json_node_get_value_type (e) != G_TYPE_DOUBLE
            && json_node_get_value_type (e) != G_TYPE_INT64)) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "config: %s: \"%s\"[%d] must be a number", what, key, i);
      return FALSE;
    }
    out[i] = (float)json_node_get_double (e);
  }
  return TRUE;
}

gboolean
ee_json_check_keys (JsonObject *o, const char *what, const char *const *allowed,
                    GError **error)
{
  GList *members = json_object_get_members (o);
  gboolean ok = TRUE;

  for (GList *l = members; l && ok; l = l->next)
    if (!g_strv_contains (allowed, l->data)) {
      g_set_error (
          error, EE_ERROR, EE_ERROR_FORMAT,
          "config: %s: unknown key \"%s\" (a file for another version or "
          "architecture?)",
          what, (const char *)l->data);
      ok = FALSE;
    }
  g_list_free (members);
  return ok;
}

gboolean
ee_model_parse_preprocess (EeModel *m, JsonObject *cfg, GError **error)
{
  static const char *const keys[]
      = { "scale", "mean", "std", "channel_order", NULL };
  static const char *const orders[] = { "rgb", "bgr", NULL };
  JsonObject *p = ee_json_object (cfg, "config", "preprocess", error);
  double scale;
  const char *order;

  if (!p || !ee_json_check_keys (p, "preprocess", keys, error)
      || !ee_json_double (p, "preprocess", "scale", &scale, error)
      || !(order
           = ee_json_string (p, "preprocess", "channel_order", orders, error))
      || !ee_json_floats (p, "preprocess", "mean", 3, m->pre.mean, error)
      || !ee_json_floats (p, "preprocess", "std", 3, m->pre.std, error))
    return FALSE;
  if (!(scale > 0)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: preprocess: \"scale\" must be > 0");
    return FALSE;
  }
  m->pre.scale = (float)scale;
  m->pre.bgr = !strcmp (order, "bgr");
  for (int i = 0; i < 3; i++)
    if (!(m->pre.std[i] > 0)) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "config: preprocess: std[%d] must be > 0", i);
      return FALSE;
    }
  return TRUE;
}

/* The optional "labels" metadata: a JSON list of one name per class, which
 * the final exit's output size fixes. */
static gboolean
parse_labels (EeModel *m, const char *text, GError **error)
{
  JsonParser *parser = json_parser_new ();
  JsonNode *root;
  JsonArray *a;
  int64_t classes;
  gboolean ok = FALSE;

  if (m->version < 2 || m->task != EE_TASK_CLASSIFY) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_FORMAT,
        "metadata \"labels\" is only defined for classification models "
        "(format_version 2)");
    goto out;
  }
  if (!json_parser_load_from_data (parser, text, -1, NULL)
      || !(root = json_parser_get_root (parser))
      || !JSON_NODE_HOLDS_ARRAY (root)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "metadata \"labels\" is not a JSON list of strings");
    goto out;
  }
  a = json_node_get_array (root);
  classes = ee_runner_segment (
                m->runner, ee_runner_exit_segment (
                               m->runner, ee_runner_n_exits (m->runner) - 1))
                ->n_out;
  if ((int64_t)json_array_get_length (a) != classes) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_FORMAT,
        "metadata \"labels\" has %u names, the model has %" G_GINT64_FORMAT
        " classes",
        json_array_get_length (a), classes);
    goto out;
  }
  m->labels = g_new0 (char *, classes + 1);
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (!JSON_NODE_HOLDS_VALUE (e)
        || json_node_get_value_type (e) != G_TYPE_STRING) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "metadata \"labels\"[%u] is not a string", i);
      goto out;
    }
    m->labels[i] = g_strdup (json_node_get_string (e));
  }
  m->n_labels = (int)classes;
  ok = TRUE;
out:
  g_object_unref (parser);
  return ok;
}

/* Every tensor in the file must have been read: an unexpected tensor means the
 * file was written for another configuration. */
static gboolean
check_all_used (EeModel *m, GError **error)
{
  for (guint i = 0; i < ee_safetensors_n_tensors (m->st); i++) {
    const EeStTensor *t = ee_safetensors_tensor (m->st, i);
    if (!g_hash_table_contains (m->used, t->name)) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "unexpected tensor \"%s\": the configuration in the "
                   "metadata does not "
                   "use it (regenerate the file with models/convert/)",
                   t->name);
      return FALSE;
    }
  }
  return TRUE;
}

/* The optional "int8" metadata (earlyexit calibrate, docs/model-format.md):
 * {"ops": {NAME: [in_min, in_max, out_max], ...}, ...}, handed to the graph
 * for the CPU backend's int8 convolutions. */
static gboolean
read_int8 (EeModel *m, const char *text, GError **error)
{
  JsonParser *p = json_parser_new ();
  GHashTable *ranges = NULL;
  JsonObject *ops = NULL;
  JsonNode *root;
  GList *names;
  gboolean ok = json_parser_load_from_data (p, text, -1, NULL);

  root = ok ? json_parser_get_root (p) : NULL;
  if (root && JSON_NODE_HOLDS_OBJECT (root)
      && json_object_has_member (json_node_get_object (root), "ops")) {
    JsonNode *n = json_object_get_member (json_node_get_object (root), "ops");

    ops = JSON_NODE_HOLDS_OBJECT (n) ? json_node_get_object (n) : NULL;
  }
  ok = ops != NULL;
  if (ok)
    ranges = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  names = ok ? json_object_get_members (ops) : NULL;
  for (GList *l = names; ok && l; l = l->next) {
    JsonNode *n = json_object_get_member (ops, l->data);
    JsonArray *a = JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
    float *r = g_new (float, 3);

    ok = a && json_array_get_length (a) == 3;
    for (guint k = 0; ok && k < 3; k++) {
      JsonNode *v = json_array_get_element (a, k);

      ok = JSON_NODE_HOLDS_VALUE (v)
           && json_node_get_value_type (v) != G_TYPE_STRING
           && json_node_get_value_type (v) != G_TYPE_BOOLEAN;
      if (ok)
        r[k] = (float)json_node_get_double (v);
    }
    ok = ok && isfinite (r[0]) && isfinite (r[1]) && r[1] > 0.0f
         && isfinite (r[2]) && r[2] >= 0.0f;
    if (ok)
      g_hash_table_insert (ranges, g_strdup (l->data), r);
    else
      g_free (r);
  }
  g_list_free (names);
  if (ok)
    ee_graph_set_int8 (ee_runner_graph (m->runner), ranges);
  else
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "metadata \"int8\" is not an object whose \"ops\" maps "
                 "each convolution to [in_min, in_max, out_max] (in_max > "
                 "0, out_max >= 0); calibrate the model again with "
                 "earlyexit calibrate");
  if (ranges)
    g_hash_table_unref (ranges);
  g_object_unref (p);
  return ok;
}

EeModel *
ee_model_load (const char *path, EeBackend *be, gboolean plan, GError **error)
{
  return ee_model_load_batch (path, be, plan, 1, error);
}

EeModel *
ee_model_load_batch (const char *path, EeBackend *be, gboolean plan, int batch,
                     GError **error)
{
  EeModel *m = g_new0 (EeModel, 1);
  JsonParser *parser = NULL;
  JsonNode *root;
  const char *format, *version, *config, *arch, *labels;
  GError *local = NULL;
  gsize i;

  g_return_val_if_fail (batch >= 1, NULL);
  m->path = g_strdup (path);
  m->batch = batch;
  m->image_input = m->audio_input = -1;
  m->st = ee_safetensors_open (path, &local);
  if (!m->st)
    goto fail;

  format = ee_safetensors_metadata (m->st, "format");
  version = ee_safetensors_metadata (m->st, "format_version");
  config = ee_safetensors_metadata (m->st, "config");
  if (g_strcmp0 (format, MODEL_FORMAT)) {
    g_set_error (
        &local, EE_ERROR, EE_ERROR_FORMAT,
        "metadata \"format\" is %s%s%s, expected \"" MODEL_FORMAT "\" (write "
        "model files with models/convert/)",
        format ? "\"" : "", format ? format : "missing", format ? "\"" : "");
    goto fail;
  }
  for (int v = 1; v <= MODEL_FORMAT_VERSION_MAX && !m->version; v++) {
    char text[16];
    g_snprintf (text, sizeof text, "%d", v);
    if (!g_strcmp0 (version, text))
      m->version = v;
  }
  if (!m->version) {
    g_set_error (
        &local, EE_ERROR, EE_ERROR_UNSUPPORTED,
        "metadata \"format_version\" is %s, this build reads versions 1 to "
        "%d",
        version ? version : "missing", MODEL_FORMAT_VERSION_MAX);
    goto fail;
  }
  if (!config) {
    g_set_error (&local, EE_ERROR, EE_ERROR_FORMAT,
                 "metadata \"config\" is missing");
    goto fail;
  }
  parser = json_parser_new ();
  if (!json_parser_load_from_data (parser, config, -1, &local)) {
    g_prefix_error (&local, "metadata \"config\" is not valid JSON: ");
    local->domain = EE_ERROR;
    local->code = EE_ERROR_FORMAT;
    goto fail;
  }
  root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (&local, EE_ERROR, EE_ERROR_FORMAT,
                 "metadata \"config\" is not a JSON object");
    goto fail;
  }
  m->config_json = g_strdup (config);
  m->source = g_strdup (ee_safetensors_metadata (m->st, "source"));
  arch = ee_json_string (json_node_get_object (root), "config", "arch", NULL,
                         &local);
  if (!arch)
    goto fail;
  m->arch = g_strdup (arch);

  m->used = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  m->scratch = g_ptr_array_new_with_free_func (g_free);
  m->runner = ee_runner_new (ee_graph_new (be));
  if (ee_safetensors_metadata (m->st, "int8")
      && !read_int8 (m, ee_safetensors_metadata (m->st, "int8"), &local))
    goto fail;
  for (i = 0; i < G_N_ELEMENTS (architectures); i++)
    if (!strcmp (arch, architectures[i].arch))
      break;
  if (i == G_N_ELEMENTS (architectures)) {
    g_set_error (&local, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "architecture \"%s\" is not supported by this build", arch);
    goto fail;
  }
  if (m->version < architectures[i].since_version) {
    g_set_error (
        &local, EE_ERROR, EE_ERROR_FORMAT,
        "architecture \"%s\" needs format_version %d or later, the file "
        "says %d",
        arch, architectures[i].since_version, m->version);
    goto fail;
  }
  if (!architectures[i].build (m, json_node_get_object (root), &local))
    goto fail;
  if (!check_all_used (m, &local))
    goto fail;
  labels = ee_safetensors_metadata (m->st, "labels");
  if (labels && !parse_labels (m, labels, &local))
    goto fail;
  if (plan && !ee_runner_finalize (m->runner, &local))
    goto fail;

  g_clear_pointer (&m->scratch, g_ptr_array_unref);
  g_clear_pointer (&m->used, g_hash_table_unref);
  g_clear_pointer (&m->st, ee_safetensors_free);
  g_object_unref (parser);
  return m;

fail:
  /* messages from the safetensors reader already name the file */
  if (local && !g_str_has_prefix (local->message, path))
    g_prefix_error (&local, "%s: ", path);
  g_propagate_error (error, local);
  if (parser)
    g_object_unref (parser);
  ee_model_free (m);
  return NULL;
}

void
ee_model_free (EeModel *m)
{
  if (!m)
    return;
  ee_cursor_free (m->cursor);
  ee_runner_free (m->runner);
  if (m->scratch)
    g_ptr_array_unref (m->scratch);
  if (m->used)
    g_hash_table_unref (m->used);
  ee_safetensors_free (m->st);
  g_free (m->path);
  g_free (m->arch);
  g_free (m->config_json);
  g_free (m->source);
  g_strfreev (m->labels);
  g_free (m);
}

const char *
ee_model_path (const EeModel *m)
{
  return m->path;
}

const char *
ee_model_arch (const EeModel *m)
{
  return m->arch;
}

EeTask
ee_model_task (const EeModel *m)
{
  return m->task;
}

void
ee_model_input_size (const EeModel *m, int *width, int *height)
{
  *width = m->width;
  *height = m->height;
}

const EePreprocess *
ee_model_preprocess (const EeModel *m)
{
  return &m->pre;
}

const char *
ee_model_config_json (const EeModel *m)
{
  return m->config_json;
}

const char *
ee_model_source (const EeModel *m)
{
  return m->source;
}

EeRunner *
ee_model_runner (EeModel *m)
{
  return m->runner;
}

const char *
ee_model_label (const EeModel *m, int class_id)
{
  return m->labels && class_id >= 0 && class_id < m->n_labels
             ? m->labels[class_id]
             : NULL;
}

/* The top class of `logits` and its softmax probability. */
static int
top_class (const float *logits, int64_t n, float *probability)
{
  int best = 0;
  double sum = 0.0;

  for (int64_t i = 1; i < n; i++)
    if (logits[i] > logits[best])
      best = (int)i;
  /* softmax of the top logit, shifted by it so no term overflows */
  for (int64_t i = 0; i < n; i++)
    sum += exp ((double)logits[i] - logits[best]);
  *probability = (float)(1.0 / sum);
  return best;
}

void
ee_model_classify (const EeModel *m, const float *logits, int64_t n,
                   EeClassification *out)
{
  out->label_id = top_class (logits, n, &out->confidence);
  out->label = ee_model_label (m, out->label_id);
}

gboolean
ee_model_confident (gpointer threshold, int exit_index, const float *logits,
                    int64_t n)
{
  double t = *(const double *)threshold;
  float p;

  /* 1 never stops early: a probability can round to 1 numerically */
  if (n < 1 || t >= 1.0)
    return FALSE;
  top_class (logits, n, &p);
  return p >= t;
}

gboolean
ee_model_audio_features (const EeModel *m, EeFeatureParams *params)
{
  if (m->has_features && params)
    *params = m->features;
  return m->has_features;
}

guint32
ee_model_audio_exits (const EeModel *m)
{
  return m->audio_exits;
}

EeRunner *
ee_model_engine_load (EeBackend *be, const char *path, int batch,
                      gpointer user_data, gpointer *owner,
                      GDestroyNotify *owner_free, GError **error)
{
  EeModel *m = ee_model_load_batch (path, be, TRUE, batch, error);

  if (!m)
    return NULL;
  *owner = m;
  *owner_free = (GDestroyNotify)ee_model_free;
  return m->runner;
}

int
ee_model_image_input (const EeModel *m)
{
  return m->image_input;
}

int
ee_model_audio_input (const EeModel *m)
{
  return m->audio_input;
}

static EeCursor *
model_cursor (EeModel *m, GError **error)
{
  if (!m->cursor)
    m->cursor = ee_cursor_new (m->runner, error);
  return m->cursor;
}

gboolean
ee_model_set_image (EeModel *m, const float *image, GError **error)
{
  return model_cursor (m, error)
         && ee_cursor_upload (m->cursor, m->image_input, image, error);
}

gboolean
ee_model_set_audio (EeModel *m, const float *logmel, GError **error)
{
  if (m->audio_input < 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s: this model has no audio input", m->path);
    return FALSE;
  }
  return model_cursor (m, error)
         && ee_cursor_upload (m->cursor, m->audio_input, logmel, error);
}

gboolean
ee_model_run_sync (EeModel *m, guint32 exit_mask, GError **error)
{
  if (!model_cursor (m, error))
    return FALSE;
  ee_cursor_begin (m->cursor, exit_mask);
  for (int i = 0; i < ee_runner_n_exits (m->runner); i++)
    if ((exit_mask & (1u << i)) && ee_cursor_can_run (m->cursor, i)
        && !ee_cursor_enqueue (m->cursor, i, error))
      return FALSE;
  return ee_cursor_wait (m->cursor, error);
}

const EeExitResult *
ee_model_result (EeModel *m, int exit_index)
{
  return m->cursor ? ee_cursor_result (m->cursor, exit_index) : NULL;
}
