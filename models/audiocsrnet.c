/* gst-earlyexit: AudioCSRNet with SL-ViT / CNN early exits
 * (docs/models.md sections 2, 3 and 5).
 *
 * The graph is built in anytime order, one runner segment per step:
 *   audio      VGGish conv stack -> global average -> audio vector a (1, A);
 *              the FiLM generators gamma_i, beta_i = Linear(a) of every block
 *   frontend   VGG-16 conv1_1..conv4_3 -> (1, C, H/8, W/8)
 *   exits at the front end (V1, AV1)
 *   backend.i  x = ReLU(gamma_i * BN_i(conv_i(x)) + beta_i), BN folded into
 * conv_i; exits at that block (AV2 after block 0) final      1x1 conv ->
 * density map D -> count (sum or dense head) Tensor names and the configuration
 * are those of docs/model-format.md; the exits are built by ee-exits.c. */
#include "ee-exits.h"

#include <string.h>

#define AUDIO_FRAMES 96
#define AUDIO_BANDS 64
#define MAX_LAYERS 64

/* One entry of a VGG-style list: a conv with that many channels, or a pool. */
#define POOL_MARK (-1)

typedef struct
{
  EeBuilder b;
  /* configuration */
  int frontend[MAX_LAYERS], n_frontend;
  int audio[MAX_LAYERS], n_audio;
  int backend[MAX_LAYERS], n_backend;
  gint64 dilation;
  double bn_eps, count_scale;
  gboolean bn_affine, dense_count, dense_bias;
  EeExitConfig exits[EE_MAX_EXITS];
  int exit_block[EE_MAX_EXITS]; /* -1: front end; i: after backend block i */
  int n_exits;
  /* graph values */
  int audio_vec;        /* (1, A) */
  int film[MAX_LAYERS]; /* (1, 2 C_i) */
  int64_t a_dim, map_h, map_w;
  int seg_audio, seg_frontend, seg_block[MAX_LAYERS];
} Ctx;

/* ------------------------------------------------------------ configuration */

static gboolean
parse_layers (JsonObject *cfg, const char *key, gboolean pools, int *out,
              int *n, GError **error)
{
  JsonArray *a = ee_json_array (cfg, "config", key, error);
  guint len;

  if (!a)
    return FALSE;
  len = json_array_get_length (a);
  if (len == 0 || len > MAX_LAYERS) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: \"%s\" must list 1 to %d layers", key, MAX_LAYERS);
    return FALSE;
  }
  *n = 0;
  for (guint i = 0; i < len; i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (pools && JSON_NODE_HOLDS_VALUE (e)
        && json_node_get_value_type (e) == G_TYPE_STRING
        && !g_strcmp0 (json_node_get_string (e), "M")) {
      out[(*n)++] = POOL_MARK;
    } else if (JSON_NODE_HOLDS_VALUE (e)
               && json_node_get_value_type (e) == G_TYPE_INT64
               && json_node_get_int (e) >= 1
               && json_node_get_int (e) <= 65536) {
      out[(*n)++] = (int)json_node_get_int (e);
    } else {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "config: \"%s\"[%u] must be a channel count%s", key, i,
                   pools ? " or \"M\"" : "");
      return FALSE;
    }
  }
  return TRUE;
}

static int
last_channels (const int *layers, int n)
{
  for (int i = n - 1; i >= 0; i--)
    if (layers[i] != POOL_MARK)
      return layers[i];
  return 0;
}

static int
count_pools (const int *layers, int n)
{
  int p = 0;
  for (int i = 0; i < n; i++)
    p += layers[i] == POOL_MARK;
  return p;
}

/* The backend block an exit's tap follows: -1 for the front end. */
static gboolean
parse_tap (Ctx *c, const EeExitConfig *e, int *block, GError **error)
{
  char *end = NULL;
  gint64 i;

  if (!strcmp (e->tap, "frontend")) {
    *block = -1;
    return TRUE;
  }
  i = g_str_has_prefix (e->tap, "backend.")
          ? g_ascii_strtoll (e->tap + 8, &end, 10)
          : -1;
  if (!end || *end || i < 0 || i >= c->n_backend) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_FORMAT,
        "config: exit %s: tap \"%s\" is not frontend or backend.0..backend.%d",
        e->name, e->tap, c->n_backend - 1);
    return FALSE;
  }
  *block = (int)i;
  return TRUE;
}

static gboolean
parse_config (Ctx *c, JsonObject *cfg, GError **error)
{
  static const char *const heads[] = { "sum", "dense", NULL };
  static const char *const films[] = { "gamma_beta", NULL };
  static const char *const keys[] = {
    "arch",       "input_width", "input_height",
    "preprocess", "audio_input", "frontend",
    "audio",      "backend",     "backend_dilation",
    "bn_eps",     "bn_affine",   "film",
    "count_head", "count_scale", "dense_bias",
    "exits",      NULL,
  };
  JsonObject *ain;
  gint64 w, h, frames, bands;
  const char *head, *features;
  int stride;

  if (!ee_json_check_keys (cfg, "config", keys, error)
      || !ee_json_int (cfg, "config", "input_width", 1, 1 << 15, &w, error)
      || !ee_json_int (cfg, "config", "input_height", 1, 1 << 15, &h, error)
      || !ee_model_parse_preprocess (c->b.m, cfg, error)
      || !parse_layers (cfg, "frontend", TRUE, c->frontend, &c->n_frontend,
                        error)
      || !parse_layers (cfg, "audio", TRUE, c->audio, &c->n_audio, error)
      || !parse_layers (cfg, "backend", FALSE, c->backend, &c->n_backend, error)
      || !ee_json_int (cfg, "config", "backend_dilation", 1, 64, &c->dilation,
                       error)
      || !ee_json_double (cfg, "config", "bn_eps", &c->bn_eps, error)
      || !ee_json_bool (cfg, "config", "bn_affine", &c->bn_affine, error)
      || !ee_json_string (cfg, "config", "film", films, error)
      || !(head = ee_json_string (cfg, "config", "count_head", heads, error))
      || !ee_json_double (cfg, "config", "count_scale", &c->count_scale, error)
      || !ee_json_bool (cfg, "config", "dense_bias", &c->dense_bias, error)
      || !(ain = ee_json_object (cfg, "config", "audio_input", error))
      || !(features
           = ee_json_string (ain, "audio_input", "features", NULL, error))
      || !ee_json_int (ain, "audio_input", "frames", AUDIO_FRAMES, AUDIO_FRAMES,
                       &frames, error)
      || !ee_json_int (ain, "audio_input", "bands", AUDIO_BANDS, AUDIO_BANDS,
                       &bands, error)
      || !ee_exit_config_parse_list (cfg, c->exits, &c->n_exits, error))
    return FALSE;
  if (strcmp (features, "vggish_logmel")) {
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "config: audio_input: features \"%s\" (only vggish_logmel)",
                 features);
    return FALSE;
  }
  c->dense_count = !strcmp (head, "dense");
  if (c->bn_eps <= 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: bn_eps must be > 0");
    return FALSE;
  }
  stride = 1 << count_pools (c->frontend, c->n_frontend);
  if (w % stride || h % stride) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: input %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                 " is not a "
                 "multiple of the front end's stride %d",
                 w, h, stride);
    return FALSE;
  }
  if ((AUDIO_FRAMES >> count_pools (c->audio, c->n_audio)) < 1
      || (AUDIO_BANDS >> count_pools (c->audio, c->n_audio)) < 1) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: the audio branch pools the 96x64 log-mel below 1x1");
    return FALSE;
  }
  c->b.m->width = (int)w;
  c->b.m->height = (int)h;
  c->map_h = h / stride;
  c->map_w = w / stride;
  c->a_dim = last_channels (c->audio, c->n_audio);

  for (int i = 0; i < c->n_exits; i++) {
    if (!parse_tap (c, &c->exits[i], &c->exit_block[i], error))
      return FALSE;
    if (i && c->exit_block[i] < c->exit_block[i - 1]) {
      g_set_error (
          error, EE_ERROR, EE_ERROR_FORMAT,
          "config: exit %s is listed after an exit with a later tap (exits "
          "must be in tap order)",
          c->exits[i].name);
      return FALSE;
    }
  }
  return TRUE;
}

/* ------------------------------------------------------------ layers */

/* A VGG-style stack: 3x3 pad 1 conv + ReLU, "M" = max pool 2x2/2. */
static int
vgg_stack (Ctx *c, const char *prefix, int x, int64_t cin, const int *layers,
           int n, GError **error)
{
  EeBuilder *b = &c->b;
  int conv_i = 0;

  for (int i = 0; i < n && x >= 0; i++) {
    if (layers[i] == POOL_MARK) {
      x = ee_build_maxpool (b, ee_build_name (b, "%s.pool%d", prefix, i), x, 2,
                            error);
    } else {
      x = ee_build_conv (b, ee_build_name (b, "%s.%d", prefix, conv_i), x, cin,
                         layers[i], 3, 1, 1, EE_ACT_RELU, error);
      cin = layers[i];
      conv_i++;
    }
  }
  return x;
}

/* Adds the exits tapping `tap_block` (-1 = front end) as runner segments. */
static gboolean
add_exits (Ctx *c, int tap_block, int tap, guint32 tap_segment, GError **error)
{
  for (int i = 0; i < c->n_exits; i++) {
    const EeExitConfig *e = &c->exits[i];
    guint32 needs = 1u << tap_segment;
    int out;

    if (c->exit_block[i] != tap_block)
      continue;
    if (ee_exit_uses_audio (e))
      needs |= 1u << c->seg_audio;
    if (!ee_runner_begin_segment (c->b.r, e->name, TRUE, needs, error))
      return FALSE;
    out = ee_exit_build (&c->b, e, tap, c->audio_vec, error);
    if (out < 0 || !ee_runner_end_segment (c->b.r, out, error))
      return FALSE;
  }
  return TRUE;
}

/* ------------------------------------------------------------ backbone */

/* The audio vector a = global average of the VGGish convs, and every block's
 * FiLM parameters from it. */
static gboolean
build_audio (Ctx *c, GError **error)
{
  EeBuilder *b = &c->b;
  const int64_t in_shape[4] = { b->batch, 1, AUDIO_FRAMES, AUDIO_BANDS };
  int x;

  b->m->audio_input = ee_graph_input (b->g, "audio", 4, in_shape);
  x = vgg_stack (c, "audio", b->m->audio_input, 1, c->audio, c->n_audio, error);
  x = ee_build_op (b, "audio.pool", EE_OP_GLOBAL_AVGPOOL, &x, 1, error);
  c->audio_vec = ee_build_reshape2 (b, x, b->batch, c->a_dim, error);
  if (c->audio_vec < 0)
    return FALSE;
  for (int i = 0; i < c->n_backend; i++) {
    c->film[i] = ee_build_linear (
        b, ee_build_name (b, "film.%d", i), c->audio_vec, c->a_dim,
        2 * (int64_t)c->backend[i], EE_ACT_NONE, error);
    if (c->film[i] < 0)
      return FALSE;
  }
  return TRUE;
}

/* conv_i with BN_i folded in (the FiLM op then applies gamma, beta and ReLU).
 */
static int
backend_block (Ctx *c, int i, int x, int64_t cin, GError **error)
{
  EeBuilder *b = &c->b;
  int64_t cout = c->backend[i];
  const int64_t ws[4] = { cout, cin, 3, 3 }, cs[1] = { cout };
  const float *mean, *var, *gamma = NULL, *beta = NULL;
  float *w, *bias;
  EeOpDesc d = ee_op_desc_init (EE_OP_CONV2D);

  if (!(w = ee_model_tensor (
            b->m, ee_build_name (b, "backend.%d.conv.weight", i), 4, ws, error))
      || !(bias = ee_model_tensor (b->m,
                                   ee_build_name (b, "backend.%d.conv.bias", i),
                                   1, cs, error))
      || !(mean = ee_model_tensor (
               b->m, ee_build_name (b, "backend.%d.bn.running_mean", i), 1, cs,
               error))
      || !(var = ee_model_tensor (
               b->m, ee_build_name (b, "backend.%d.bn.running_var", i), 1, cs,
               error)))
    return -1;
  if (c->bn_affine
      && (!(gamma = ee_model_tensor (
                b->m, ee_build_name (b, "backend.%d.bn.weight", i), 1, cs,
                error))
          || !(beta = ee_model_tensor (
                   b->m, ee_build_name (b, "backend.%d.bn.bias", i), 1, cs,
                   error))))
    return -1;
  ee_fold_batchnorm (w, bias, cout, cin * 9, mean, var, gamma, beta,
                     (float)c->bn_eps);
  d.out_features = cout;
  d.kernel_size[0] = d.kernel_size[1] = 3;
  d.pad[0] = d.pad[1] = (int)c->dilation;
  d.dilation[0] = d.dilation[1] = (int)c->dilation;
  d.weight = w;
  d.bias = bias;
  x = ee_graph_op (b->g, ee_build_name (b, "backend.%d.conv", i), &d, &x, 1,
                   error);
  return ee_build_film (b, ee_build_name (b, "backend.%d.film", i), x,
                        c->film[i], cout, error);
}

/* 1x1 conv -> density map D -> count = count_scale * (sum D | w . D + b).
 *
 * The final exit's map (ee_runner_set_exit_map) is what the count sums:
 * - sum head: M = count_scale * D (the scale folded into the 1x1 conv), and
 *   count = sum M;
 * - dense head: M[y][x] = count_scale * (w[y*Wm + x] * D[y][x] + b / (Hm*Wm)),
 *   each cell's contribution to the count (the bias spread evenly over the
 *   cells), and count = sum M.
 * Either way the map's sum is the count (to float rounding) and its cells say
 * where the counted people are. */
static int
count_head (Ctx *c, int x, int64_t cin, GError **error)
{
  EeBuilder *b = &c->b;
  const int64_t ws[4] = { 1, cin, 1, 1 }, bs[1] = { 1 };
  const int64_t hw = c->map_h * c->map_w;
  EeOpDesc d = ee_op_desc_init (EE_OP_CONV2D);
  float *w, *bias;
  int map;

  if (!(w = ee_model_tensor (b->m, "output.weight", 4, ws, error))
      || !(bias = ee_model_tensor (b->m, "output.bias", 1, bs, error)))
    return -1;
  if (!c->dense_count) {
    for (int64_t k = 0; k < cin; k++)
      w[k] *= (float)c->count_scale;
    bias[0] *= (float)c->count_scale;
  }
  d.out_features = 1;
  d.kernel_size[0] = d.kernel_size[1] = 1;
  d.weight = w;
  d.bias = bias;
  map = ee_graph_op (b->g, "output", &d, &x, 1, error);
  if (map < 0)
    return -1;
  if (c->dense_count) {
    /* the cells as channels of an (N, Hm*Wm, 1, 1) batch norm whose mean is 0
     * and variance 1: gamma = count_scale * w, beta = the spread bias */
    const int64_t n = ee_graph_desc (b->g, map)->shape[0]; /* frames */
    const int64_t cells[4] = { n, hw, 1, 1 };
    const int64_t grid[4] = { n, 1, c->map_h, c->map_w };
    const int64_t dws[2] = { 1, hw }, dbs[1] = { 1 };
    float *dw = ee_model_tensor (b->m, "dense.weight", 2, dws, error);
    float *db = NULL, *spread = ee_model_scratch (b->m, hw);
    float *mean = ee_model_scratch (b->m, hw),
          *var = ee_model_scratch (b->m, hw);
    EeOpDesc bn = ee_op_desc_init (EE_OP_BATCHNORM);

    if (!dw
        || (c->dense_bias
            && !(db = ee_model_tensor (b->m, "dense.bias", 1, dbs, error))))
      return -1;
    for (int64_t k = 0; k < hw; k++) {
      dw[k] *= (float)c->count_scale;
      spread[k] = db ? (float)(c->count_scale * db[0] / (double)hw) : 0.0f;
      var[k] = 1.0f;
    }
    bn.eps = 0.0f;
    bn.weight = dw;
    bn.bias = spread;
    bn.mean = mean;
    bn.var = var;
    map = ee_graph_reshape (b->g, map, 4, cells, error);
    if (map < 0 || (map = ee_graph_op (b->g, "dense", &bn, &map, 1, error)) < 0)
      return -1;
    /* the dense head's own parameters: w and the bias */
    ee_graph_set_op_params (b->g, ee_graph_n_ops (b->g) - 1, hw + (db ? 1 : 0));
    if ((map = ee_graph_reshape (b->g, map, 4, grid, error)) < 0)
      return -1;
  }
  if (!ee_runner_set_exit_map (b->r, map, error))
    return -1;
  d = ee_op_desc_init (EE_OP_SUM);
  return ee_graph_op (b->g, "count", &d, &map, 1, error);
}

gboolean
ee_audiocsrnet_build (EeModel *m, JsonObject *config, GError **error)
{
  Ctx c = { 0 };
  EeRunner *r = m->runner;
  gboolean ok = FALSE;
  int x, prev_seg;
  int64_t ch;
  int64_t img_shape[4] = { 0, 3, 0, 0 };

  ee_builder_init (&c.b, m);
  m->task = EE_TASK_COUNT;
  if (!parse_config (&c, config, error))
    goto out;

  /* audio */
  c.seg_audio = ee_runner_n_segments (r);
  if (!ee_runner_begin_segment (r, "audio", FALSE, 0, error)
      || !build_audio (&c, error) || !ee_runner_end_segment (r, -1, error))
    goto out;

  /* front end and its exits */
  img_shape[0] = c.b.batch;
  img_shape[2] = m->height;
  img_shape[3] = m->width;
  m->image_input = ee_graph_input (c.b.g, "image", 4, img_shape);
  c.seg_frontend = ee_runner_n_segments (r);
  if (!ee_runner_begin_segment (r, "frontend", FALSE, 0, error))
    goto out;
  x = vgg_stack (&c, "frontend", m->image_input, 3, c.frontend, c.n_frontend,
                 error);
  if (x < 0 || !ee_runner_end_segment (r, -1, error))
    goto out;
  ch = last_channels (c.frontend, c.n_frontend);
  if (!add_exits (&c, -1, x, (guint32)c.seg_frontend, error))
    goto out;

  /* back-end blocks, each followed by its exits */
  prev_seg = c.seg_frontend;
  for (int i = 0; i < c.n_backend; i++) {
    c.seg_block[i] = ee_runner_n_segments (r);
    if (!ee_runner_begin_segment (r, ee_build_name (&c.b, "backend.%d", i),
                                  FALSE, (1u << prev_seg) | (1u << c.seg_audio),
                                  error))
      goto out;
    x = backend_block (&c, i, x, ch, error);
    if (x < 0 || !ee_runner_end_segment (r, -1, error))
      goto out;
    ch = c.backend[i];
    prev_seg = c.seg_block[i];
    if (!add_exits (&c, i, x, (guint32)prev_seg, error))
      goto out;
  }

  /* final exit */
  if (!ee_runner_begin_segment (r, "final", TRUE, 1u << prev_seg, error))
    goto out;
  x = count_head (&c, x, ch, error);
  if (x < 0 || !ee_runner_end_segment (r, x, error))
    goto out;

  for (int i = 0; i < ee_runner_n_exits (r); i++) {
    const EeSegment *s = ee_runner_segment (r, ee_runner_exit_segment (r, i));
    if (s->needs & (1u << c.seg_audio))
      m->audio_exits |= 1u << i;
  }
  ok = TRUE;
out:
  ee_builder_clear (&c.b);
  return ok;
}
