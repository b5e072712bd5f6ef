/* gst-earlyexit: AudioCSRNet with SL-ViT / CNN early exits (MODELS.md 2, 3, 5).
 *
 * The graph is built in anytime order, one runner segment per step:
 *   audio      VGGish conv stack -> global average -> audio vector a (1, A);
 *              the FiLM generators gamma_i, beta_i = Linear(a) of every block
 *   frontend   VGG-16 conv1_1..conv4_3 -> (1, C, H/8, W/8)
 *   exits at the front end (V1, AV1)
 *   backend.i  x = ReLU(gamma_i * BN_i(conv_i(x)) + beta_i), BN folded into conv_i;
 *              exits at that block (AV2 after block 0)
 *   final      1x1 conv -> density map D -> count (sum or dense head)
 * Tensor names and the configuration are those of docs/model-format.md. */
#include "ee-model-private.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#define AUDIO_FRAMES 96
#define AUDIO_BANDS 64
#define MAX_LAYERS 64

/* One entry of a VGG-style list: a conv with that many channels, or a pool. */
#define POOL_MARK (-1)

typedef struct
{
  char name[32];
  gboolean slvit;
  int tap_block;                /* -1: front end; i: after backend block i */
  /* SL-ViT */
  gint64 patch, dim, heads, mlp_dim;
  double ln_eps;
  gboolean last_residual, final_ln, mlp_out_gelu, audio_token;
  /* CNN */
  gint64 filters, conv_padding, pool;
  gboolean film;
  /* head */
  gint64 head_hidden, outputs;
  EeActivation head_act;
} ExitConfig;

typedef struct
{
  EeModel *m;
  EeGraph *g;
  EeRunner *r;
  GPtrArray *names;
  /* configuration */
  int frontend[MAX_LAYERS], n_frontend;
  int audio[MAX_LAYERS], n_audio;
  int backend[MAX_LAYERS], n_backend;
  gint64 dilation;
  double bn_eps, count_scale;
  gboolean bn_affine, dense_count, dense_bias;
  ExitConfig exits[8];
  int n_exits;
  /* graph values */
  int audio_vec;                /* (1, A) */
  int film[MAX_LAYERS];         /* (1, 2 C_i) */
  int64_t a_dim, map_h, map_w;
  int seg_audio, seg_frontend, seg_block[MAX_LAYERS];
} Ctx;

static const char *
nm (Ctx *c, const char *fmt, ...)
{
  va_list ap;
  char *s;

  va_start (ap, fmt);
  s = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_ptr_array_add (c->names, s);
  return s;
}

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
    if (pools && JSON_NODE_HOLDS_VALUE (e) &&
        json_node_get_value_type (e) == G_TYPE_STRING &&
        !g_strcmp0 (json_node_get_string (e), "M")) {
      out[(*n)++] = POOL_MARK;
    } else if (JSON_NODE_HOLDS_VALUE (e) &&
        json_node_get_value_type (e) == G_TYPE_INT64 &&
        json_node_get_int (e) >= 1 && json_node_get_int (e) <= 65536) {
      out[(*n)++] = (int) json_node_get_int (e);
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

static gboolean
parse_exit (Ctx *c, JsonObject *o, ExitConfig *e, GError **error)
{
  static const char *const kinds[] = { "slvit", "cnn", NULL };
  static const char *const acts[] = { "gelu", "relu", NULL };
  static const char *const tokens[] = { "none", "shared_projection", NULL };
  const char *name, *kind, *tap, *act, *token;
  char what[64];

  name = ee_json_string (o, "exit", "name", NULL, error);
  if (!name)
    return FALSE;
  if (strlen (name) >= sizeof e->name || !g_regex_match_simple ("^[a-z][a-z0-9_]*$",
          name, 0, 0) || !strcmp (name, "final")) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
        "config: exit name \"%s\" is not a short lower-case identifier other "
        "than \"final\"", name);
    return FALSE;
  }
  g_strlcpy (e->name, name, sizeof e->name);
  g_snprintf (what, sizeof what, "exit %s", name);
  if (!(kind = ee_json_string (o, what, "kind", kinds, error)) ||
      !(tap = ee_json_string (o, what, "tap", NULL, error)) ||
      !(act = ee_json_string (o, what, "head_act", acts, error)) ||
      !ee_json_int (o, what, "head_hidden", 1, 1 << 20, &e->head_hidden, error) ||
      !ee_json_int (o, what, "outputs", 1, 1 << 20, &e->outputs, error))
    return FALSE;
  e->slvit = !strcmp (kind, "slvit");
  e->head_act = !strcmp (act, "gelu") ? EE_ACT_GELU : EE_ACT_RELU;
  if (!strcmp (tap, "frontend")) {
    e->tap_block = -1;
  } else {
    char *end = NULL;
    gint64 i = g_str_has_prefix (tap, "backend.") ?
        g_ascii_strtoll (tap + 8, &end, 10) : -1;
    if (!end || *end || i < 0 || i >= c->n_backend) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
          "config: %s: tap \"%s\" is not frontend or backend.0..backend.%d",
          what, tap, c->n_backend - 1);
      return FALSE;
    }
    e->tap_block = (int) i;
  }

  if (e->slvit) {
    if (!ee_json_int (o, what, "patch", 1, 4096, &e->patch, error) ||
        !ee_json_int (o, what, "dim", 1, 1 << 16, &e->dim, error) ||
        !ee_json_int (o, what, "heads", 1, 1024, &e->heads, error) ||
        !ee_json_int (o, what, "mlp_dim", 1, 1 << 20, &e->mlp_dim, error) ||
        !ee_json_double (o, what, "ln_eps", &e->ln_eps, error) ||
        !ee_json_bool (o, what, "last_residual", &e->last_residual, error) ||
        !ee_json_bool (o, what, "final_ln", &e->final_ln, error) ||
        !ee_json_bool (o, what, "mlp_out_gelu", &e->mlp_out_gelu, error) ||
        !(token = ee_json_string (o, what, "audio_token", tokens, error)))
      return FALSE;
    e->audio_token = !strcmp (token, "shared_projection");
    if (c->map_h % e->patch || c->map_w % e->patch) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
          "config: %s: the %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " tap is not "
          "divisible by patch %" G_GINT64_FORMAT " (input sides must be "
          "multiples of 8 x patch)", what, c->map_h, c->map_w, e->patch);
      return FALSE;
    }
  } else {
    if (!ee_json_int (o, what, "filters", 1, 1 << 16, &e->filters, error) ||
        !ee_json_int (o, what, "conv_padding", 0, 1, &e->conv_padding, error) ||
        !ee_json_int (o, what, "pool", 1, 4096, &e->pool, error) ||
        !ee_json_bool (o, what, "film", &e->film, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
parse_preprocess (EeModel *m, JsonObject *cfg, GError **error)
{
  static const char *const orders[] = { "rgb", "bgr", NULL };
  JsonObject *p = ee_json_object (cfg, "config", "preprocess", error);
  double scale;
  const char *order;

  if (!p || !ee_json_double (p, "preprocess", "scale", &scale, error) ||
      !(order = ee_json_string (p, "preprocess", "channel_order", orders, error)))
    return FALSE;
  m->pre.scale = (float) scale;
  m->pre.bgr = !strcmp (order, "bgr");
  for (int k = 0; k < 2; k++) {
    const char *key = k ? "std" : "mean";
    JsonArray *a = ee_json_array (p, "preprocess", key, error);
    float *dst = k ? m->pre.std : m->pre.mean;
    if (!a)
      return FALSE;
    if (json_array_get_length (a) != 3) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
          "config: preprocess: \"%s\" must have 3 values", key);
      return FALSE;
    }
    for (int i = 0; i < 3; i++) {
      dst[i] = (float) json_array_get_double_element (a, (guint) i);
      if (k && dst[i] <= 0) {
        g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
            "config: preprocess: std[%d] must be > 0", i);
        return FALSE;
      }
    }
  }
  return TRUE;
}

static gboolean
parse_config (Ctx *c, JsonObject *cfg, GError **error)
{
  static const char *const heads[] = { "sum", "dense", NULL };
  static const char *const films[] = { "gamma_beta", NULL };
  JsonObject *ain;
  JsonArray *exits;
  gint64 w, h, frames, bands;
  const char *head, *features;
  int stride;

  if (!ee_json_int (cfg, "config", "input_width", 1, 1 << 15, &w, error) ||
      !ee_json_int (cfg, "config", "input_height", 1, 1 << 15, &h, error) ||
      !parse_preprocess (c->m, cfg, error) ||
      !parse_layers (cfg, "frontend", TRUE, c->frontend, &c->n_frontend, error) ||
      !parse_layers (cfg, "audio", TRUE, c->audio, &c->n_audio, error) ||
      !parse_layers (cfg, "backend", FALSE, c->backend, &c->n_backend, error) ||
      !ee_json_int (cfg, "config", "backend_dilation", 1, 64, &c->dilation, error)
      || !ee_json_double (cfg, "config", "bn_eps", &c->bn_eps, error)
      || !ee_json_bool (cfg, "config", "bn_affine", &c->bn_affine, error)
      || !ee_json_string (cfg, "config", "film", films, error)
      || !(head = ee_json_string (cfg, "config", "count_head", heads, error))
      || !ee_json_double (cfg, "config", "count_scale", &c->count_scale, error)
      || !ee_json_bool (cfg, "config", "dense_bias", &c->dense_bias, error)
      || !(ain = ee_json_object (cfg, "config", "audio_input", error))
      || !(features = ee_json_string (ain, "audio_input", "features", NULL,
              error))
      || !ee_json_int (ain, "audio_input", "frames", AUDIO_FRAMES, AUDIO_FRAMES,
          &frames, error)
      || !ee_json_int (ain, "audio_input", "bands", AUDIO_BANDS, AUDIO_BANDS,
          &bands, error)
      || !(exits = ee_json_array (cfg, "config", "exits", error)))
    return FALSE;
  if (strcmp (features, "vggish_logmel")) {
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
        "config: audio_input: features \"%s\" (only vggish_logmel)", features);
    return FALSE;
  }
  c->dense_count = !strcmp (head, "dense");
  if (c->bn_eps <= 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "config: bn_eps must be > 0");
    return FALSE;
  }
  stride = 1 << count_pools (c->frontend, c->n_frontend);
  if (w % stride || h % stride) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
        "config: input %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " is not a "
        "multiple of the front end's stride %d", w, h, stride);
    return FALSE;
  }
  if ((AUDIO_FRAMES >> count_pools (c->audio, c->n_audio)) < 1 ||
      (AUDIO_BANDS >> count_pools (c->audio, c->n_audio)) < 1) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
        "config: the audio branch pools the 96x64 log-mel below 1x1");
    return FALSE;
  }
  c->m->width = (int) w;
  c->m->height = (int) h;
  c->map_h = h / stride;
  c->map_w = w / stride;
  c->a_dim = last_channels (c->audio, c->n_audio);

  if (json_array_get_length (exits) > G_N_ELEMENTS (c->exits)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
        "config: at most %d exits", (int) G_N_ELEMENTS (c->exits));
    return FALSE;
  }
  for (guint i = 0; i < json_array_get_length (exits); i++) {
    JsonNode *n = json_array_get_element (exits, i);
    ExitConfig *e = &c->exits[c->n_exits];
    if (!JSON_NODE_HOLDS_OBJECT (n)) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
          "config: exits[%u] is not an object", i);
      return FALSE;
    }
    if (!parse_exit (c, json_node_get_object (n), e, error))
      return FALSE;
    for (int k = 0; k < c->n_exits; k++)
      if (!strcmp (c->exits[k].name, e->name)) {
        g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
            "config: two exits are named \"%s\"", e->name);
        return FALSE;
      }
    if (c->n_exits && e->tap_block < c->exits[c->n_exits - 1].tap_block) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
          "config: exit %s is listed after an exit with a later tap (exits "
          "must be in tap order)", e->name);
      return FALSE;
    }
    if (e->slvit && e->audio_token && c->a_dim != (e->tap_block < 0 ?
            last_channels (c->frontend, c->n_frontend) :
            c->backend[e->tap_block])) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
          "config: exit %s: the audio token needs the audio width (%" G_GINT64_FORMAT
          ") to equal the tap's channels", e->name, c->a_dim);
      return FALSE;
    }
    c->n_exits++;
  }
  return TRUE;
}

/* ------------------------------------------------------------ layers */

static int
conv (Ctx *c, const char *prefix, int x, int64_t cin, int64_t cout, int k,
    int pad, int dil, EeActivation act, GError **error)
{
  const int64_t ws[4] = { cout, cin, k, k }, bs[1] = { cout };
  EeOpDesc d = ee_op_desc_init (EE_OP_CONV2D);

  d.out_features = cout;
  d.kernel_size[0] = d.kernel_size[1] = k;
  d.pad[0] = d.pad[1] = pad;
  d.dilation[0] = d.dilation[1] = dil;
  d.act = act;
  d.weight = ee_model_tensor (c->m, nm (c, "%s.weight", prefix), 4, ws, error);
  if (!d.weight)
    return -1;
  d.bias = ee_model_tensor (c->m, nm (c, "%s.bias", prefix), 1, bs, error);
  if (!d.bias)
    return -1;
  return ee_graph_op (c->g, prefix, &d, &x, 1, error);
}

static int
linear_with (Ctx *c, const char *name, int x, int64_t out, const float *w,
    const float *b, EeActivation act, GError **error)
{
  EeOpDesc d = ee_op_desc_init (EE_OP_LINEAR);

  d.out_features = out;
  d.weight = w;
  d.bias = b;
  d.act = act;
  return ee_graph_op (c->g, name, &d, &x, 1, error);
}

static int
linear (Ctx *c, const char *prefix, int x, int64_t in, int64_t out,
    EeActivation act, GError **error)
{
  const int64_t ws[2] = { out, in }, bs[1] = { out };
  const float *w, *b;

  if (!(w = ee_model_tensor (c->m, nm (c, "%s.weight", prefix), 2, ws, error)) ||
      !(b = ee_model_tensor (c->m, nm (c, "%s.bias", prefix), 1, bs, error)))
    return -1;
  return linear_with (c, prefix, x, out, w, b, act, error);
}

static int
maxpool (Ctx *c, const char *name, int x, int k, GError **error)
{
  EeOpDesc d = ee_op_desc_init (EE_OP_MAXPOOL);

  d.kernel[0] = d.kernel[1] = k;
  d.stride[0] = d.stride[1] = k;
  return ee_graph_op (c->g, name, &d, &x, 1, error);
}

static int
simple (Ctx *c, const char *name, EeOpKind kind, const int *in, int n,
    GError **error)
{
  EeOpDesc d = ee_op_desc_init (kind);
  return ee_graph_op (c->g, name, &d, in, n, error);
}

static int
reshape2 (Ctx *c, int x, int64_t a, int64_t b, GError **error)
{
  const int64_t s[2] = { a, b };
  return x < 0 ? -1 : ee_graph_reshape (c->g, x, 2, s, error);
}

/* gamma, beta: views of the first and second halves of a (1, 2C) value */
static gboolean
film_views (Ctx *c, int gb, int64_t ch, int *gamma, int *beta, GError **error)
{
  const int64_t shape[2] = { 1, ch }, stride[2] = { 2 * ch, 1 };

  *gamma = ee_graph_view (c->g, gb, 2, shape, stride, 0, error);
  *beta = *gamma < 0 ? -1 : ee_graph_view (c->g, gb, 2, shape, stride, ch, error);
  return *beta >= 0;
}

static int
film (Ctx *c, const char *name, int x, int gb, int64_t ch, GError **error)
{
  EeOpDesc d = ee_op_desc_init (EE_OP_FILM);
  int in[3] = { x, -1, -1 };

  if (!film_views (c, gb, ch, &in[1], &in[2], error))
    return -1;
  d.act = EE_ACT_RELU;
  return ee_graph_op (c->g, name, &d, in, 3, error);
}

/* A VGG-style stack: 3x3 pad 1 conv + ReLU, "M" = max pool 2x2/2. */
static int
vgg_stack (Ctx *c, const char *prefix, int x, int64_t cin, const int *layers,
    int n, GError **error)
{
  int conv_i = 0;

  for (int i = 0; i < n && x >= 0; i++) {
    if (layers[i] == POOL_MARK) {
      x = maxpool (c, nm (c, "%s.pool%d", prefix, i), x, 2, error);
    } else {
      x = conv (c, nm (c, "%s.%d", prefix, conv_i), x, cin, layers[i], 3, 1, 1,
          EE_ACT_RELU, error);
      cin = layers[i];
      conv_i++;
    }
  }
  return x;
}

/* ------------------------------------------------------------ exits */

static int
exit_head (Ctx *c, const ExitConfig *e, int flat, int64_t n_flat, GError **error)
{
  const char *p = nm (c, "exits.%s.head", e->name);

  flat = linear (c, nm (c, "%s.0", p), flat, n_flat, e->head_hidden, e->head_act,
      error);
  if (flat >= 0)
    flat = linear (c, nm (c, "%s.1", p), flat, e->head_hidden, e->head_hidden,
        e->head_act, error);
  if (flat >= 0)
    flat = linear (c, nm (c, "%s.2", p), flat, e->head_hidden, e->outputs,
        EE_ACT_NONE, error);
  return flat;
}

/* The audio token: the audio vector tiled to a P x P x A patch and projected by
 * the shared patch projection. Tiling repeats a in every pixel of the patch, so
 * W . tile(a) = (sum over pixels of W's column blocks) . a: fold the sum at load. */
static int
audio_token (Ctx *c, const ExitConfig *e, const float *proj_w,
    const float *proj_b, int64_t ch, GError **error)
{
  int64_t pp = e->patch * e->patch;
  float *wsum = ee_model_scratch (c->m, (gsize) (e->dim * ch));

  for (int64_t o = 0; o < e->dim; o++)
    for (int64_t p = 0; p < pp; p++)
      for (int64_t k = 0; k < ch; k++)
        wsum[o * ch + k] += proj_w[(o * pp + p) * ch + k];
  int t = linear_with (c, nm (c, "exits.%s.audio_token", e->name), c->audio_vec,
      e->dim, wsum, proj_b, EE_ACT_NONE, error);

  /* its weights are the patch projection's, counted there */
  if (t >= 0)
    ee_graph_set_op_params (c->g, ee_graph_n_ops (c->g) - 1, 0);
  return t;
}

static int
slvit_exit (Ctx *c, const ExitConfig *e, int tap, int64_t ch, GError **error)
{
  const char *p = e->name;
  int64_t d = e->dim, h = e->heads, P = e->patch;
  int64_t n = (c->map_h / P) * (c->map_w / P), nt = n + (e->audio_token ? 1 : 0);
  int64_t pw[2] = { d, P * P * ch }, pb[1] = { d }, pos_s[2] = { nt, d };
  const float *proj_w, *proj_b, *pos;
  EeOpDesc desc;
  int x, x2, q, k, v, in[3], t;

  if (!(proj_w = ee_model_tensor (c->m, nm (c, "exits.%s.proj.weight", p), 2, pw,
              error))
      || !(proj_b = ee_model_tensor (c->m, nm (c, "exits.%s.proj.bias", p), 1, pb,
              error))
      || !(pos = ee_model_tensor (c->m, nm (c, "exits.%s.pos", p), 2, pos_s,
              error)))
    return -1;

  desc = ee_op_desc_init (EE_OP_PATCHIFY);
  desc.patch = (int) P;
  x = ee_graph_op (c->g, nm (c, "exits.%s.patchify", p), &desc, &tap, 1, error);
  if (x < 0)
    return -1;
  x = linear_with (c, nm (c, "exits.%s.proj", p), x, d, proj_w, proj_b,
      EE_ACT_NONE, error);
  if (x < 0)
    return -1;
  if (e->audio_token) {
    /* tokens (1, N, d) and the audio token (1, 1, d) as 4-d (1, ., d, 1) so the
     * channel concat appends a token */
    const int64_t s4[4] = { 1, n, d, 1 }, a4[4] = { 1, 1, d, 1 };
    const int64_t s3[3] = { 1, nt, d };
    int a = audio_token (c, e, proj_w, proj_b, ch, error);
    if (a < 0 || (in[0] = ee_graph_reshape (c->g, x, 4, s4, error)) < 0 ||
        (in[1] = ee_graph_reshape (c->g, a, 4, a4, error)) < 0 ||
        (x = simple (c, nm (c, "exits.%s.tokens", p), EE_OP_CONCAT, in, 2,
                error)) < 0 || (x = ee_graph_reshape (c->g, x, 3, s3, error)) < 0)
      return -1;
  }
  {
    const int64_t s3[3] = { 1, nt, d };
    in[0] = x;
    in[1] = ee_graph_constant (c->g, nm (c, "exits.%s.pos", p), 3, s3, pos);
    x = simple (c, nm (c, "exits.%s.add_pos", p), EE_OP_ADD, in, 2, error);
    if (x < 0)
      return -1;
  }

  /* x2 = x + MHA(LN1(x)) */
  {
    const int64_t lns[1] = { d };
    const int64_t hs[3] = { h, nt, d }, hst[3] = { d, h * d, 1 };
    const int64_t ks[3] = { h, d, nt }, kst[3] = { d, 1, h * d };
    const int64_t ts[3] = { nt, h, d }, tst[3] = { d, nt * d, 1 };
    const int64_t cs[3] = { 1, nt, h * d };
    int ln, qh, kt, vh, att;

    desc = ee_op_desc_init (EE_OP_LAYERNORM);
    desc.eps = (float) e->ln_eps;
    if (!(desc.weight = ee_model_tensor (c->m, nm (c, "exits.%s.ln1.weight", p),
                1, lns, error))
        || !(desc.bias = ee_model_tensor (c->m, nm (c, "exits.%s.ln1.bias", p), 1,
                lns, error)))
      return -1;
    ln = ee_graph_op (c->g, nm (c, "exits.%s.ln1", p), &desc, &x, 1, error);
    if (ln < 0
        || (q = linear (c, nm (c, "exits.%s.attn.q", p), ln, d, h * d,
                EE_ACT_NONE, error)) < 0
        || (k = linear (c, nm (c, "exits.%s.attn.k", p), ln, d, h * d,
                EE_ACT_NONE, error)) < 0
        || (v = linear (c, nm (c, "exits.%s.attn.v", p), ln, d, h * d,
                EE_ACT_NONE, error)) < 0
        || (qh = ee_graph_view (c->g, q, 3, hs, hst, 0, error)) < 0
        || (kt = ee_graph_view (c->g, k, 3, ks, kst, 0, error)) < 0
        || (vh = ee_graph_view (c->g, v, 3, hs, hst, 0, error)) < 0)
      return -1;
    desc = ee_op_desc_init (EE_OP_MATMUL);
    desc.alpha = (float) (1.0 / sqrt ((double) d));
    in[0] = qh;
    in[1] = kt;
    att = ee_graph_op (c->g, nm (c, "exits.%s.attn.scores", p), &desc, in, 2,
        error);
    if (att < 0 || (att = simple (c, nm (c, "exits.%s.attn.softmax", p),
                EE_OP_SOFTMAX, &att, 1, error)) < 0)
      return -1;
    desc.alpha = 1.0f;
    in[0] = att;
    in[1] = vh;
    att = ee_graph_op (c->g, nm (c, "exits.%s.attn.values", p), &desc, in, 2,
        error);
    /* (h, nt, d) -> (nt, h, d) contiguous -> (1, nt, h*d) */
    if (att < 0 || (att = ee_graph_view (c->g, att, 3, ts, tst, 0, error)) < 0 ||
        (att = simple (c, nm (c, "exits.%s.attn.merge", p), EE_OP_REORDER, &att,
                1, error)) < 0
        || (att = ee_graph_reshape (c->g, att, 3, cs, error)) < 0
        || (att = linear (c, nm (c, "exits.%s.attn.out", p), att, h * d, d,
                EE_ACT_NONE, error)) < 0)
      return -1;
    in[0] = x;
    in[1] = att;
    x2 = simple (c, nm (c, "exits.%s.residual1", p), EE_OP_ADD, in, 2, error);
    if (x2 < 0)
      return -1;

    /* out = [x2 +] MLP(LN2(x2)) [-> LN] */
    desc = ee_op_desc_init (EE_OP_LAYERNORM);
    desc.eps = (float) e->ln_eps;
    if (!(desc.weight = ee_model_tensor (c->m, nm (c, "exits.%s.ln2.weight", p),
                1, lns, error))
        || !(desc.bias = ee_model_tensor (c->m, nm (c, "exits.%s.ln2.bias", p), 1,
                lns, error)))
      return -1;
    t = ee_graph_op (c->g, nm (c, "exits.%s.ln2", p), &desc, &x2, 1, error);
    if (t < 0 || (t = linear (c, nm (c, "exits.%s.mlp.0", p), t, d, e->mlp_dim,
                EE_ACT_GELU, error)) < 0
        || (t = linear (c, nm (c, "exits.%s.mlp.1", p), t, e->mlp_dim, d,
                e->mlp_out_gelu ? EE_ACT_GELU : EE_ACT_NONE, error)) < 0)
      return -1;
    if (e->last_residual) {
      in[0] = x2;
      in[1] = t;
      t = simple (c, nm (c, "exits.%s.residual2", p), EE_OP_ADD, in, 2, error);
      if (t < 0)
        return -1;
    }
    if (e->final_ln) {
      desc = ee_op_desc_init (EE_OP_LAYERNORM);
      desc.eps = (float) e->ln_eps;
      if (!(desc.weight = ee_model_tensor (c->m,
                  nm (c, "exits.%s.ln_out.weight", p), 1, lns, error))
          || !(desc.bias = ee_model_tensor (c->m,
                  nm (c, "exits.%s.ln_out.bias", p), 1, lns, error))
          || (t = ee_graph_op (c->g, nm (c, "exits.%s.ln_out", p), &desc, &t, 1,
                  error)) < 0)
        return -1;
    }
  }
  /* token-major flatten: n*d + k */
  return exit_head (c, e, reshape2 (c, t, 1, nt * d, error), nt * d, error);
}

static int
cnn_exit (Ctx *c, const ExitConfig *e, int tap, int64_t ch, GError **error)
{
  int64_t f = e->filters, pad = e->conv_padding;
  int64_t ho = (c->map_h + 2 * pad - 2) / e->pool;
  int64_t wo = (c->map_w + 2 * pad - 2) / e->pool;
  int x;

  if (ho < 1 || wo < 1) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
        "config: exit %s: the %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
        " tap is too small for pool %" G_GINT64_FORMAT, e->name, c->map_h,
        c->map_w, e->pool);
    return -1;
  }
  x = conv (c, nm (c, "exits.%s.conv", e->name), tap, ch, f, 3, (int) pad, 1,
      e->film ? EE_ACT_NONE : EE_ACT_RELU, error);
  if (x >= 0 && e->film) {
    int gb = linear (c, nm (c, "exits.%s.film", e->name), c->audio_vec, c->a_dim,
        2 * f, EE_ACT_NONE, error);
    x = gb < 0 ? -1 : film (c, nm (c, "exits.%s.film_apply", e->name), x, gb, f,
        error);
  }
  if (x >= 0)
    x = maxpool (c, nm (c, "exits.%s.pool", e->name), x, (int) e->pool, error);
  /* (c, y, x) flatten, as torch does */
  return exit_head (c, e, reshape2 (c, x, 1, f * ho * wo, error), f * ho * wo,
      error);
}

static gboolean
exit_uses_audio (const ExitConfig *e)
{
  return (e->slvit && e->audio_token) || (!e->slvit && e->film);
}

/* Adds the exits tapping `tap_block` (-1 = front end) as runner segments. */
static gboolean
add_exits (Ctx *c, int tap_block, int tap, int64_t ch, guint32 tap_segment,
    GError **error)
{
  for (int i = 0; i < c->n_exits; i++) {
    const ExitConfig *e = &c->exits[i];
    guint32 needs = 1u << tap_segment;
    int out;

    if (e->tap_block != tap_block)
      continue;
    if (exit_uses_audio (e))
      needs |= 1u << c->seg_audio;
    if (!ee_runner_begin_segment (c->r, e->name, TRUE, needs, error))
      return FALSE;
    out = e->slvit ? slvit_exit (c, e, tap, ch, error) :
        cnn_exit (c, e, tap, ch, error);
    if (out < 0 || !ee_runner_end_segment (c->r, out, error))
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
  const int64_t in_shape[4] = { 1, 1, AUDIO_FRAMES, AUDIO_BANDS };
  int x;

  c->m->audio_input = ee_graph_input (c->g, "audio", 4, in_shape);
  x = vgg_stack (c, "audio", c->m->audio_input, 1, c->audio, c->n_audio, error);
  if (x < 0 || (x = simple (c, "audio.pool", EE_OP_GLOBAL_AVGPOOL, &x, 1,
              error)) < 0 || (x = reshape2 (c, x, 1, c->a_dim, error)) < 0)
    return FALSE;
  c->audio_vec = x;
  for (int i = 0; i < c->n_backend; i++) {
    c->film[i] = linear (c, nm (c, "film.%d", i), c->audio_vec, c->a_dim,
        2 * (int64_t) c->backend[i], EE_ACT_NONE, error);
    if (c->film[i] < 0)
      return FALSE;
  }
  return TRUE;
}

/* conv_i with BN_i folded in (the FiLM op then applies gamma, beta and ReLU). */
static int
backend_block (Ctx *c, int i, int x, int64_t cin, GError **error)
{
  int64_t cout = c->backend[i];
  const int64_t ws[4] = { cout, cin, 3, 3 }, cs[1] = { cout };
  const float *mean, *var, *gamma = NULL, *beta = NULL;
  float *w, *b;
  EeOpDesc d = ee_op_desc_init (EE_OP_CONV2D);

  if (!(w = ee_model_tensor (c->m, nm (c, "backend.%d.conv.weight", i), 4, ws,
              error))
      || !(b = ee_model_tensor (c->m, nm (c, "backend.%d.conv.bias", i), 1, cs,
              error))
      || !(mean = ee_model_tensor (c->m, nm (c, "backend.%d.bn.running_mean", i),
              1, cs, error))
      || !(var = ee_model_tensor (c->m, nm (c, "backend.%d.bn.running_var", i), 1,
              cs, error)))
    return -1;
  if (c->bn_affine &&
      (!(gamma = ee_model_tensor (c->m, nm (c, "backend.%d.bn.weight", i), 1, cs,
                  error))
          || !(beta = ee_model_tensor (c->m, nm (c, "backend.%d.bn.bias", i), 1,
                  cs, error))))
    return -1;
  ee_fold_batchnorm (w, b, cout, cin * 9, mean, var, gamma, beta,
      (float) c->bn_eps);
  d.out_features = cout;
  d.kernel_size[0] = d.kernel_size[1] = 3;
  d.pad[0] = d.pad[1] = (int) c->dilation;
  d.dilation[0] = d.dilation[1] = (int) c->dilation;
  d.weight = w;
  d.bias = b;
  x = ee_graph_op (c->g, nm (c, "backend.%d.conv", i), &d, &x, 1, error);
  return x < 0 ? -1 : film (c, nm (c, "backend.%d.film", i), x, c->film[i], cout,
      error);
}

/* 1x1 conv -> density map D -> count = count_scale * (sum D | w . D + b) */
static int
count_head (Ctx *c, int x, int64_t cin, GError **error)
{
  EeOpDesc d;

  x = conv (c, "output", x, cin, 1, 1, 0, 1, EE_ACT_NONE, error);
  if (x < 0)
    return -1;
  if (!c->dense_count) {
    d = ee_op_desc_init (EE_OP_SUM);
    d.alpha = (float) c->count_scale;
    return ee_graph_op (c->g, "count", &d, &x, 1, error);
  } else {
    int64_t hw = c->map_h * c->map_w;
    const int64_t ws[2] = { 1, hw }, bs[1] = { 1 };
    float *w = ee_model_tensor (c->m, "dense.weight", 2, ws, error);
    float *b = NULL, *scaled_b = ee_model_scratch (c->m, 1);

    if (!w || (c->dense_bias &&
            !(b = ee_model_tensor (c->m, "dense.bias", 1, bs, error))))
      return -1;
    for (int64_t k = 0; k < hw; k++)
      w[k] *= (float) c->count_scale;
    scaled_b[0] = b ? (float) (c->count_scale * b[0]) : 0.0f;
    return linear_with (c, "count", reshape2 (c, x, 1, hw, error), 1, w,
        scaled_b, EE_ACT_NONE, error);
  }
}

gboolean
ee_audiocsrnet_build (EeModel *m, JsonObject *config, GError **error)
{
  Ctx c = { 0 };
  gboolean ok = FALSE;
  int x, prev_seg;
  int64_t ch;
  const int64_t img[4] = { 1, 3, 0, 0 };
  int64_t img_shape[4];

  c.m = m;
  c.r = m->runner;
  c.g = ee_runner_graph (m->runner);
  c.names = g_ptr_array_new_with_free_func (g_free);
  m->task = EE_TASK_COUNT;
  if (!parse_config (&c, config, error))
    goto out;

  /* audio */
  c.seg_audio = ee_runner_n_segments (c.r);
  if (!ee_runner_begin_segment (c.r, "audio", FALSE, 0, error) ||
      !build_audio (&c, error) || !ee_runner_end_segment (c.r, -1, error))
    goto out;

  /* front end and its exits */
  memcpy (img_shape, img, sizeof img);
  img_shape[2] = m->height;
  img_shape[3] = m->width;
  m->image_input = ee_graph_input (c.g, "image", 4, img_shape);
  c.seg_frontend = ee_runner_n_segments (c.r);
  if (!ee_runner_begin_segment (c.r, "frontend", FALSE, 0, error))
    goto out;
  x = vgg_stack (&c, "frontend", m->image_input, 3, c.frontend, c.n_frontend,
      error);
  if (x < 0 || !ee_runner_end_segment (c.r, -1, error))
    goto out;
  ch = last_channels (c.frontend, c.n_frontend);
  if (!add_exits (&c, -1, x, ch, (guint32) c.seg_frontend, error))
    goto out;

  /* back-end blocks, each followed by its exits */
  prev_seg = c.seg_frontend;
  for (int i = 0; i < c.n_backend; i++) {
    c.seg_block[i] = ee_runner_n_segments (c.r);
    if (!ee_runner_begin_segment (c.r, nm (&c, "backend.%d", i), FALSE,
            (1u << prev_seg) | (1u << c.seg_audio), error))
      goto out;
    x = backend_block (&c, i, x, ch, error);
    if (x < 0 || !ee_runner_end_segment (c.r, -1, error))
      goto out;
    ch = c.backend[i];
    prev_seg = c.seg_block[i];
    if (!add_exits (&c, i, x, ch, (guint32) prev_seg, error))
      goto out;
  }

  /* final exit */
  if (!ee_runner_begin_segment (c.r, "final", TRUE, 1u << prev_seg, error))
    goto out;
  x = count_head (&c, x, ch, error);
  if (x < 0 || !ee_runner_end_segment (c.r, x, error))
    goto out;

  for (int i = 0; i < ee_runner_n_exits (c.r); i++) {
    const EeSegment *s = ee_runner_segment (c.r, ee_runner_exit_segment (c.r, i));
    if (s->needs & (1u << c.seg_audio))
      m->audio_exits |= 1u << i;
  }
  ok = TRUE;
out:
  g_ptr_array_unref (c.names);
  return ok;
}
