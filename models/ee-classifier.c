/* gst-earlyexit: configuration, segments, layers and the classifier head
 * shared by ResNet152, DenseNet201 and InceptionV3 (docs/model-format.md,
 * "Classification models"). */
#include "ee-classifier.h"

#include <string.h>

static const char *const common_keys[] = {
  "arch",
  "input_width",
  "input_height",
  "preprocess",
  "audio_features",
  "bn_eps",
  "classes",
  "classifier",
  "classifier_hidden",
  "exits",
  NULL,
};

/* ------------------------------------------------------------ configuration */

/* "audio_features": null for images, else how the input is computed from a
 * clip (docs/models.md 1.2, 1.3), at the model's input size. */
static gboolean
parse_audio_features (EeModel *m, JsonObject *cfg, GError **error)
{
  static const char *const keys[]
      = { "kind", "log", "log_offset", "mel_scale", "mean", "std", NULL };
  static const char *const kinds[] = { "sc", "gtzan", NULL };
  static const char *const scales[] = { "slaney", "htk", NULL };
  const char *what = "audio_features";
  JsonNode *n = json_object_get_member (cfg, what);
  JsonObject *o;
  const char *kind, *scale;
  EeFeatureKind k;
  double offset;

  if (n && JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  if (!(o = ee_json_object (cfg, "config", what, error))
      || !ee_json_check_keys (o, what, keys, error)
      || !(kind = ee_json_string (o, what, "kind", kinds, error))
      || !(scale = ee_json_string (o, what, "mel_scale", scales, error)))
    return FALSE;
  ee_feature_kind_from_string (kind, &k);
  m->features = ee_feature_default_params (k);
  if (!ee_json_bool (o, what, "log", &m->features.log, error)
      || !ee_json_double (o, what, "log_offset", &offset, error)
      || !ee_json_floats (o, what, "mean", 3, m->features.mean, error)
      || !ee_json_floats (o, what, "std", 3, m->features.std, error))
    return FALSE;
  if (!(offset > 0)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: audio_features: \"log_offset\" must be > 0");
    return FALSE;
  }
  for (int i = 0; i < 3; i++)
    if (!(m->features.std[i] > 0)) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "config: audio_features: std[%d] must be > 0", i);
      return FALSE;
    }
  m->features.log_offset = (float)offset;
  m->features.mel_scale = !strcmp (scale, "htk") ? EE_MEL_HTK : EE_MEL_SLANEY;
  m->features.out_width = m->width;
  m->features.out_height = m->height;
  m->has_features = TRUE;
  return TRUE;
}

static gboolean
parse_config (EeClassifier *c, JsonObject *cfg, const char *const *arch_keys,
              int min_size, GError **error)
{
  static const char *const heads[] = { "linear", "two_layer", NULL };
  EeModel *m = c->b.m;
  GPtrArray *keys = g_ptr_array_new ();
  const char *head;
  gint64 w, h;
  gboolean ok;

  for (int i = 0; common_keys[i]; i++)
    g_ptr_array_add (keys, (gpointer)common_keys[i]);
  for (int i = 0; arch_keys[i]; i++)
    g_ptr_array_add (keys, (gpointer)arch_keys[i]);
  g_ptr_array_add (keys, NULL);
  ok = ee_json_check_keys (cfg, "config", (const char *const *)keys->pdata,
                           error);
  g_ptr_array_unref (keys);
  if (!ok
      || !ee_json_int (cfg, "config", "input_width", min_size, 1 << 15, &w,
                       error)
      || !ee_json_int (cfg, "config", "input_height", min_size, 1 << 15, &h,
                       error)
      || !ee_model_parse_preprocess (m, cfg, error)
      || !ee_json_double (cfg, "config", "bn_eps", &c->bn_eps, error)
      || !ee_json_int (cfg, "config", "classes", 1, 1 << 20, &c->classes, error)
      || !(head = ee_json_string (cfg, "config", "classifier", heads, error))
      || !ee_json_int (cfg, "config", "classifier_hidden", 0, 1 << 20,
                       &c->hidden, error)
      || !ee_exit_config_parse_list (cfg, c->exits, &c->n_exits, error))
    return FALSE;
  m->width = (int)w;
  m->height = (int)h;
  if (!parse_audio_features (m, cfg, error))
    return FALSE;
  if (!(c->bn_eps > 0)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: bn_eps must be > 0");
    return FALSE;
  }
  if (!strcmp (head, "linear") != (c->hidden == 0)) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_FORMAT,
        "config: classifier_hidden must be 0 for a linear classifier and the "
        "hidden width (> 0) for two_layer, got %s with %" G_GINT64_FORMAT,
        head, c->hidden);
    return FALSE;
  }
  for (int i = 0; i < c->n_exits; i++)
    if (c->exits[i].outputs != c->classes) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "config: exit %s: outputs is %" G_GINT64_FORMAT
                   ", a classifier's "
                   "exits give one logit per class (%" G_GINT64_FORMAT ")",
                   c->exits[i].name, c->exits[i].outputs, c->classes);
      return FALSE;
    }
  return TRUE;
}

/* ------------------------------------------------------------ segments */

/* The stage that ends at the next exit's tap is named after that tap. */
static gboolean
begin_stage (EeClassifier *c, guint32 needs, GError **error)
{
  const char *name
      = c->next_exit < c->n_exits ? c->exits[c->next_exit].tap : c->last_tap;

  c->stage = ee_runner_n_segments (c->b.r);
  return ee_runner_begin_segment (c->b.r, name, FALSE, needs, error);
}

gboolean
ee_classifier_begin (EeClassifier *c, EeModel *m, JsonObject *cfg,
                     const char *const *arch_keys, int min_size,
                     const char *last_tap, GError **error)
{
  int64_t shape[4] = { 0, 3, 0, 0 };

  ee_builder_init (&c->b, m);
  c->arch = m->arch;
  c->last_tap = last_tap;
  c->taps = g_ptr_array_new ();
  m->task = EE_TASK_CLASSIFY;
  if (!parse_config (c, cfg, arch_keys, min_size, error))
    return FALSE;
  shape[0] = c->b.batch;
  shape[2] = m->height;
  shape[3] = m->width;
  m->image_input = ee_graph_input (c->b.g, "image", 4, shape);
  return begin_stage (c, 0, error);
}

void
ee_classifier_clear (EeClassifier *c)
{
  g_clear_pointer (&c->taps, g_ptr_array_unref);
  ee_builder_clear (&c->b);
}

gboolean
ee_classifier_tap (EeClassifier *c, int x, const char *name, const char *alias,
                   GError **error)
{
  guint32 stage_bit;

  if (x < 0)
    return FALSE;
  g_ptr_array_add (c->taps, (gpointer)ee_build_name (&c->b, "%s", name));
  if (alias)
    g_ptr_array_add (c->taps, (gpointer)ee_build_name (&c->b, "%s", alias));
  if (c->next_exit == c->n_exits
      || (strcmp (c->exits[c->next_exit].tap, name)
          && g_strcmp0 (c->exits[c->next_exit].tap, alias)))
    return TRUE;

  if (!ee_runner_end_segment (c->b.r, -1, error))
    return FALSE;
  stage_bit = 1u << c->stage;
  while (c->next_exit < c->n_exits
         && (!strcmp (c->exits[c->next_exit].tap, name)
             || !g_strcmp0 (c->exits[c->next_exit].tap, alias))) {
    const EeExitConfig *e = &c->exits[c->next_exit++];
    int out;

    if (!ee_runner_begin_segment (c->b.r, e->name, TRUE, stage_bit, error))
      return FALSE;
    out = ee_exit_build (&c->b, e, x, -1, error);
    if (out < 0 || !ee_runner_end_segment (c->b.r, out, error))
      return FALSE;
  }
  return begin_stage (c, stage_bit, error);
}

/* An exit left unbuilt names a tap this backbone does not have, or one it
 * passed before the previous exit's. */
static void
unbuilt_exit_error (EeClassifier *c, GError **error)
{
  const EeExitConfig *e = &c->exits[c->next_exit];
  GString *known;

  for (guint i = 0; i < c->taps->len; i++)
    if (!strcmp (e->tap, g_ptr_array_index (c->taps, i))) {
      g_set_error (
          error, EE_ERROR, EE_ERROR_FORMAT,
          "config: exit %s is listed after an exit with a later tap (exits "
          "must be in tap order)",
          e->name);
      return;
    }
  known = g_string_new (NULL);
  for (guint i = 0; i < c->taps->len; i++)
    g_string_append_printf (known, "%s%s", i ? ", " : "",
                            (const char *)g_ptr_array_index (c->taps, i));
  g_set_error (
      error, EE_ERROR, EE_ERROR_FORMAT,
      "config: exit %s: \"%s\" is not a tap of %s (its taps, in order: %s)",
      e->name, e->tap, c->arch, known->str);
  g_string_free (known, TRUE);
}

gboolean
ee_classifier_finish (EeClassifier *c, int x, const char *head, GError **error)
{
  EeBuilder *b = &c->b;
  int64_t f;

  if (x < 0)
    return FALSE;
  if (c->next_exit < c->n_exits) {
    unbuilt_exit_error (c, error);
    return FALSE;
  }
  f = ee_classifier_channels (c, x);
  if (!ee_runner_end_segment (b->r, -1, error)
      || !ee_runner_begin_segment (b->r, "final", TRUE, 1u << c->stage, error))
    return FALSE;
  x = ee_build_op (b, "avgpool", EE_OP_GLOBAL_AVGPOOL, &x, 1, error);
  x = ee_build_reshape2 (b, x, b->batch, f, error);
  if (c->hidden) {
    x = ee_build_linear (b, ee_build_name (b, "%s.0", head), x, f, c->hidden,
                         EE_ACT_RELU, error);
    x = ee_build_linear (b, ee_build_name (b, "%s.3", head), x, c->hidden,
                         c->classes, EE_ACT_NONE, error);
  } else {
    x = ee_build_linear (b, head, x, f, c->classes, EE_ACT_NONE, error);
  }
  return x >= 0 && ee_runner_end_segment (b->r, x, error);
}

/* ------------------------------------------------------------ layers */

int64_t
ee_classifier_channels (EeClassifier *c, int x)
{
  return ee_graph_desc (c->b.g, x)->shape[1];
}

/* Running statistics and affine parameters of BatchNorm2d `bn` (C). */
static gboolean
bn_params (EeClassifier *c, const char *bn, int64_t ch, const float **mean,
           const float **var, const float **gamma, const float **beta,
           GError **error)
{
  EeBuilder *b = &c->b;
  const int64_t s[1] = { ch };

  return (*mean = ee_model_tensor (
              b->m, ee_build_name (b, "%s.running_mean", bn), 1, s, error))
         && (*var = ee_model_tensor (
                 b->m, ee_build_name (b, "%s.running_var", bn), 1, s, error))
         && (*gamma = ee_model_tensor (b->m, ee_build_name (b, "%s.weight", bn),
                                       1, s, error))
         && (*beta = ee_model_tensor (b->m, ee_build_name (b, "%s.bias", bn), 1,
                                      s, error));
}

int
ee_classifier_conv_bn (EeClassifier *c, const char *conv, const char *bn, int x,
                       EeConvSpec spec, const float *in_scale,
                       const float *in_shift, EeActivation act, GError **error)
{
  EeBuilder *b = &c->b;
  int64_t cin, per_out;
  int64_t ws[4];
  const float *mean = NULL, *var = NULL, *gamma = NULL, *beta = NULL;
  float *w, *bias;
  EeOpDesc d = ee_op_desc_init (EE_OP_CONV2D);

  if (x < 0)
    return -1;
  cin = ee_classifier_channels (c, x);
  ws[0] = spec.out;
  ws[1] = cin;
  ws[2] = spec.kh;
  ws[3] = spec.kw;
  per_out = cin * spec.kh * spec.kw;
  if (!(w = ee_model_tensor (b->m, ee_build_name (b, "%s.weight", conv), 4, ws,
                             error))
      || (bn
          && !bn_params (c, bn, spec.out, &mean, &var, &gamma, &beta, error)))
    return -1;
  /* torchvision's convs have no bias: it comes from the BN or the input map */
  bias = bn || in_scale ? ee_model_scratch (b->m, (gsize)spec.out) : NULL;
  if (in_scale) {
    /* conv(a x + s) = conv'(x) with w' = w a and a bias of sum w s */
    int64_t kk = spec.kh * spec.kw;
    for (int64_t o = 0; o < spec.out; o++)
      for (int64_t i = 0; i < cin; i++)
        for (int64_t k = 0; k < kk; k++) {
          float *wp = &w[(o * cin + i) * kk + k];
          bias[o] += *wp * in_shift[i];
          *wp *= in_scale[i];
        }
  }
  if (bn)
    ee_fold_batchnorm (w, bias, spec.out, per_out, mean, var, gamma, beta,
                       (float)c->bn_eps);
  d.out_features = spec.out;
  d.kernel_size[0] = spec.kh;
  d.kernel_size[1] = spec.kw;
  d.stride[0] = d.stride[1] = spec.stride;
  d.pad[0] = spec.ph;
  d.pad[1] = spec.pw;
  d.weight = w;
  d.bias = bias;
  d.act = act;
  return ee_graph_op (b->g, conv, &d, &x, 1, error);
}

int
ee_classifier_batchnorm (EeClassifier *c, const char *bn, int x,
                         EeActivation act, GError **error)
{
  EeOpDesc d = ee_op_desc_init (EE_OP_BATCHNORM);

  if (x < 0
      || !bn_params (c, bn, ee_classifier_channels (c, x), &d.mean, &d.var,
                     &d.weight, &d.bias, error))
    return -1;
  d.eps = (float)c->bn_eps;
  d.act = act;
  return ee_graph_op (c->b.g, bn, &d, &x, 1, error);
}

int
ee_classifier_pool (EeClassifier *c, const char *name, EeOpKind kind, int x,
                    int k, int stride, int pad, GError **error)
{
  EeOpDesc d = ee_op_desc_init (kind);

  if (x < 0)
    return -1;
  d.kernel[0] = d.kernel[1] = k;
  d.stride[0] = d.stride[1] = stride;
  d.pad[0] = d.pad[1] = pad;
  d.count_include_pad = TRUE;
  return ee_graph_op (c->b.g, name, &d, &x, 1, error);
}

int
ee_classifier_concat (EeClassifier *c, const char *name, const int *in, int n,
                      GError **error)
{
  return ee_build_op (&c->b, name, EE_OP_CONCAT, in, n, error);
}
