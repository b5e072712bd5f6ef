/* gst-earlyexit: SL-ViT and CNN early exits (docs/models.md 3.1, 3.2). Tensor
 * names, orders and the configuration keys are those of docs/model-format.md.
 */
#include "ee-exits.h"

#include <math.h>
#include <string.h>

static const char *const common_keys[]
    = { "name", "kind", "tap", "head_hidden", "head_act", "outputs", NULL };

static const char *const slvit_keys[] = {
  "patch",       "dim",           "heads",    "mlp_dim",
  "ln_eps",      "last_residual", "final_ln", "mlp_out_gelu",
  "audio_token", "head_kind",     NULL,
};

static const char *const cnn_keys[]
    = { "filters", "conv_padding", "pool", "film", NULL };

/* ------------------------------------------------------------ configuration */

static gboolean
check_exit_keys (JsonObject *o, const char *what, gboolean slvit,
                 GError **error)
{
  const char *const *kind_keys = slvit ? slvit_keys : cnn_keys;
  GList *members = json_object_get_members (o);
  gboolean ok = TRUE;

  for (GList *l = members; l && ok; l = l->next) {
    if (!g_strv_contains (common_keys, l->data)
        && !g_strv_contains (kind_keys, l->data)) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "config: %s: unknown key \"%s\" for a %s exit", what,
                   (const char *)l->data, slvit ? "slvit" : "cnn");
      ok = FALSE;
    }
  }
  g_list_free (members);
  return ok;
}

/* "head_kind" of an SL-ViT exit: optional, "flatten" when absent (the files
 * written before the per-token head keep the paper's head). */
static gboolean
parse_head_kind (JsonObject *o, const char *what, EeExitConfig *e,
                 GError **error)
{
  static const char *const heads[] = { "flatten", "per_token", NULL };
  const char *head;

  if (!json_object_has_member (o, "head_kind"))
    return TRUE;
  if (!(head = ee_json_string (o, what, "head_kind", heads, error)))
    return FALSE;
  e->per_token = !strcmp (head, "per_token");
  if (e->per_token && e->outputs != 1) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: %s: a per_token head gives a count (one value per "
                 "token, summed), so outputs must be 1, not %" G_GINT64_FORMAT
                 " (use head_kind \"flatten\" for class logits)",
                 what, e->outputs);
    return FALSE;
  }
  return TRUE;
}

gboolean
ee_exit_config_parse (JsonObject *o, EeExitConfig *e, GError **error)
{
  static const char *const kinds[] = { "slvit", "cnn", NULL };
  static const char *const acts[] = { "gelu", "relu", NULL };
  static const char *const tokens[] = { "none", "shared_projection", NULL };
  const char *name, *kind, *tap, *act, *token;
  char what[64];

  memset (e, 0, sizeof *e);
  name = ee_json_string (o, "exit", "name", NULL, error);
  if (!name)
    return FALSE;
  if (strlen (name) >= sizeof e->name
      || !g_regex_match_simple ("^[a-z][a-z0-9_]*$", name, 0, 0)
      || !strcmp (name, "final")) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_FORMAT,
        "config: exit name \"%s\" is not a short lower-case identifier other "
        "than \"final\"",
        name);
    return FALSE;
  }
  g_strlcpy (e->name, name, sizeof e->name);
  g_snprintf (what, sizeof what, "exit %s", name);
  if (!(kind = ee_json_string (o, what, "kind", kinds, error))
      || !(tap = ee_json_string (o, what, "tap", NULL, error))
      || !(act = ee_json_string (o, what, "head_act", acts, error))
      || !ee_json_int (o, what, "head_hidden", 1, 1 << 20, &e->head_hidden,
                       error)
      || !ee_json_int (o, what, "outputs", 1, 1 << 20, &e->outputs, error))
    return FALSE;
  if (strlen (tap) >= sizeof e->tap) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: %s: tap name \"%s\" is too long", what, tap);
    return FALSE;
  }
  g_strlcpy (e->tap, tap, sizeof e->tap);
  e->slvit = !strcmp (kind, "slvit");
  e->head_act = !strcmp (act, "gelu") ? EE_ACT_GELU : EE_ACT_RELU;
  if (!check_exit_keys (o, what, e->slvit, error))
    return FALSE;

  if (e->slvit) {
    if (!ee_json_int (o, what, "patch", 1, 4096, &e->patch, error)
        || !ee_json_int (o, what, "dim", 1, 1 << 16, &e->dim, error)
        || !ee_json_int (o, what, "heads", 1, 1024, &e->heads, error)
        || !ee_json_int (o, what, "mlp_dim", 1, 1 << 20, &e->mlp_dim, error)
        || !ee_json_double (o, what, "ln_eps", &e->ln_eps, error)
        || !ee_json_bool (o, what, "last_residual", &e->last_residual, error)
        || !ee_json_bool (o, what, "final_ln", &e->final_ln, error)
        || !ee_json_bool (o, what, "mlp_out_gelu", &e->mlp_out_gelu, error)
        || !(token = ee_json_string (o, what, "audio_token", tokens, error))
        || !parse_head_kind (o, what, e, error))
      return FALSE;
    e->audio_token = !strcmp (token, "shared_projection");
  } else {
    if (!ee_json_int (o, what, "filters", 1, 1 << 16, &e->filters, error)
        || !ee_json_int (o, what, "conv_padding", 0, 1, &e->conv_padding, error)
        || !ee_json_int (o, what, "pool", 1, 4096, &e->pool, error)
        || !ee_json_bool (o, what, "film", &e->film, error))
      return FALSE;
  }
  return TRUE;
}

gboolean
ee_exit_config_parse_list (JsonObject *cfg, EeExitConfig *exits, int *n_exits,
                           GError **error)
{
  JsonArray *list = ee_json_array (cfg, "config", "exits", error);

  if (!list)
    return FALSE;
  if (json_array_get_length (list) > EE_MAX_EXITS) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "config: at most %d exits",
                 EE_MAX_EXITS);
    return FALSE;
  }
  *n_exits = 0;
  for (guint i = 0; i < json_array_get_length (list); i++) {
    JsonNode *n = json_array_get_element (list, i);
    EeExitConfig *e = &exits[*n_exits];

    if (!JSON_NODE_HOLDS_OBJECT (n)) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "config: exits[%u] is not an object", i);
      return FALSE;
    }
    if (!ee_exit_config_parse (json_node_get_object (n), e, error))
      return FALSE;
    for (int k = 0; k < *n_exits; k++)
      if (!strcmp (exits[k].name, e->name)) {
        g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                     "config: two exits are named \"%s\"", e->name);
        return FALSE;
      }
    (*n_exits)++;
  }
  return TRUE;
}

gboolean
ee_exit_uses_audio (const EeExitConfig *e)
{
  return (e->slvit && e->audio_token) || (!e->slvit && e->film);
}

gboolean
ee_exit_has_map (const EeExitConfig *e)
{
  return e->slvit && e->per_token;
}

/* ------------------------------------------------------------ exits */

static int
exit_head (EeBuilder *b, const EeExitConfig *e, int flat, int64_t n_flat,
           GError **error)
{
  const char *p = ee_build_name (b, "exits.%s.head", e->name);

  flat = ee_build_linear (b, ee_build_name (b, "%s.0", p), flat, n_flat,
                          e->head_hidden, e->head_act, error);
  flat = ee_build_linear (b, ee_build_name (b, "%s.1", p), flat, e->head_hidden,
                          e->head_hidden, e->head_act, error);
  return ee_build_linear (b, ee_build_name (b, "%s.2", p), flat, e->head_hidden,
                          e->outputs, EE_ACT_NONE, error);
}

/* The audio token: the audio vector tiled to a P x P x A patch and projected by
 * the shared patch projection. Tiling repeats a in every pixel of the patch, so
 * W . tile(a) = (sum over pixels of W's column blocks) . a: fold the sum at
 * load. */
static int
audio_token (EeBuilder *b, const EeExitConfig *e, int audio_vec,
             const float *proj_w, const float *proj_b, int64_t ch,
             GError **error)
{
  int64_t pp = e->patch * e->patch;
  float *wsum = ee_model_scratch (b->m, (gsize)(e->dim * ch));
  int t;

  for (int64_t o = 0; o < e->dim; o++)
    for (int64_t p = 0; p < pp; p++)
      for (int64_t k = 0; k < ch; k++)
        wsum[o * ch + k] += proj_w[(o * pp + p) * ch + k];
  t = ee_build_linear_with (
      b, ee_build_name (b, "exits.%s.audio_token", e->name), audio_vec, e->dim,
      wsum, proj_b, EE_ACT_NONE, error);

  /* its weights are the patch projection's, counted there */
  if (t >= 0)
    ee_graph_set_op_params (b->g, ee_graph_n_ops (b->g) - 1, 0);
  return t;
}

static int
layer_norm (EeBuilder *b, const EeExitConfig *e, const char *which, int x,
            GError **error)
{
  const int64_t s[1] = { e->dim };
  EeOpDesc d = ee_op_desc_init (EE_OP_LAYERNORM);
  const char *p = ee_build_name (b, "exits.%s.%s", e->name, which);

  if (x < 0)
    return -1;
  d.eps = (float)e->ln_eps;
  if (!(d.weight = ee_model_tensor (b->m, ee_build_name (b, "%s.weight", p), 1,
                                    s, error))
      || !(d.bias = ee_model_tensor (b->m, ee_build_name (b, "%s.bias", p), 1,
                                     s, error)))
    return -1;
  return ee_graph_op (b->g, p, &d, &x, 1, error);
}

/* The heads of q, k or v (B, nt, h*d) as a (B*h, nt, d) batch of matrices,
 * or transposed (B*h, d, nt) for k: a view for one frame; with several the
 * frame and head strides differ, so the heads are first copied out frame by
 * frame into (B, h, nt, d). */
static int
split_heads (EeBuilder *b, const char *name, int x, int64_t nt, int64_t h,
             int64_t d, gboolean transpose, GError **error)
{
  int64_t n = b->batch;

  if (n == 1) {
    const int64_t hs[3] = { h, nt, d }, hst[3] = { d, h * d, 1 };
    const int64_t ks[3] = { h, d, nt }, kst[3] = { d, 1, h * d };

    return transpose ? ee_graph_view (b->g, x, 3, ks, kst, 0, error)
                     : ee_graph_view (b->g, x, 3, hs, hst, 0, error);
  } else {
    const int64_t s4[4] = { n, h, nt, d }, st4[4] = { nt * h * d, d, h * d, 1 };
    const int64_t hs[3] = { n * h, nt, d }, hst[3] = { nt * d, d, 1 };
    const int64_t ks[3] = { n * h, d, nt }, kst[3] = { nt * d, 1, d };

    if ((x = ee_graph_view (b->g, x, 4, s4, st4, 0, error)) < 0
        || (x = ee_build_op (b, name, EE_OP_REORDER, &x, 1, error)) < 0)
      return -1;
    return transpose ? ee_graph_view (b->g, x, 3, ks, kst, 0, error)
                     : ee_graph_view (b->g, x, 3, hs, hst, 0, error);
  }
}

/* x2 = x + MHA(LN1(x)) for x (B, nt, d); every head has key/value size d. */
static int
attention_block (EeBuilder *b, const EeExitConfig *e, int x, int64_t nt,
                 GError **error)
{
  const char *p = e->name;
  int64_t d = e->dim, h = e->heads, n = b->batch;
  const int64_t ts[4] = { n, nt, h, d }, tst[4] = { h * nt * d, d, nt * d, 1 };
  const int64_t cs[3] = { n, nt, h * d };
  EeOpDesc desc;
  int ln, q, k, v, qh, kt, vh, att, in[2];

  ln = layer_norm (b, e, "ln1", x, error);
  if ((q = ee_build_linear (b, ee_build_name (b, "exits.%s.attn.q", p), ln, d,
                            h * d, EE_ACT_NONE, error))
          < 0
      || (k = ee_build_linear (b, ee_build_name (b, "exits.%s.attn.k", p), ln,
                               d, h * d, EE_ACT_NONE, error))
             < 0
      || (v = ee_build_linear (b, ee_build_name (b, "exits.%s.attn.v", p), ln,
                               d, h * d, EE_ACT_NONE, error))
             < 0
      || (qh = split_heads (b, ee_build_name (b, "exits.%s.attn.q_heads", p), q,
                            nt, h, d, FALSE, error))
             < 0
      || (kt = split_heads (b, ee_build_name (b, "exits.%s.attn.k_heads", p), k,
                            nt, h, d, TRUE, error))
             < 0
      || (vh = split_heads (b, ee_build_name (b, "exits.%s.attn.v_heads", p), v,
                            nt, h, d, FALSE, error))
             < 0)
    return -1;
  desc = ee_op_desc_init (EE_OP_MATMUL);
  desc.alpha = (float)(1.0 / sqrt ((double)d));
  in[0] = qh;
  in[1] = kt;
  att = ee_graph_op (b->g, ee_build_name (b, "exits.%s.attn.scores", p), &desc,
                     in, 2, error);
  att = ee_build_op (b, ee_build_name (b, "exits.%s.attn.softmax", p),
                     EE_OP_SOFTMAX, &att, 1, error);
  if (att < 0)
    return -1;
  desc.alpha = 1.0f;
  in[0] = att;
  in[1] = vh;
  att = ee_graph_op (b->g, ee_build_name (b, "exits.%s.attn.values", p), &desc,
                     in, 2, error);
  /* (B*h, nt, d) -> (B, nt, h, d) contiguous -> (B, nt, h*d) */
  if (att < 0 || (att = ee_graph_view (b->g, att, 4, ts, tst, 0, error)) < 0
      || (att = ee_build_op (b, ee_build_name (b, "exits.%s.attn.merge", p),
                             EE_OP_REORDER, &att, 1, error))
             < 0
      || (att = ee_graph_reshape (b->g, att, 3, cs, error)) < 0)
    return -1;
  in[0] = x;
  in[1] = ee_build_linear (b, ee_build_name (b, "exits.%s.attn.out", p), att,
                           h * d, d, EE_ACT_NONE, error);
  return ee_build_op (b, ee_build_name (b, "exits.%s.residual1", p), EE_OP_ADD,
                      in, 2, error);
}

/* out = [x2 +] MLP(LN2(x2)) [-> LN_out] */
static int
mlp_block (EeBuilder *b, const EeExitConfig *e, int x2, GError **error)
{
  const char *p = e->name;
  int t, in[2];

  t = layer_norm (b, e, "ln2", x2, error);
  t = ee_build_linear (b, ee_build_name (b, "exits.%s.mlp.0", p), t, e->dim,
                       e->mlp_dim, EE_ACT_GELU, error);
  t = ee_build_linear (b, ee_build_name (b, "exits.%s.mlp.1", p), t, e->mlp_dim,
                       e->dim, e->mlp_out_gelu ? EE_ACT_GELU : EE_ACT_NONE,
                       error);
  if (e->last_residual) {
    in[0] = x2;
    in[1] = t;
    t = ee_build_op (b, ee_build_name (b, "exits.%s.residual2", p), EE_OP_ADD,
                     in, 2, error);
  }
  if (e->final_ln)
    t = layer_norm (b, e, "ln_out", t, error);
  return t;
}

/* The per_token head (our own exit kind, not the paper's): the head's three
 * linear layers on each of the gh x gw image tokens of x (B, nt, d), the audio
 * token (last, when there is one) left out; each gives the count of its
 * patch. Those values are the exit's map (B, 1, gh, gw), set on the runner's
 * segment, and their sum is its count (B, 1). */
static int
per_token_head (EeBuilder *b, const EeExitConfig *e, int x, int64_t gh,
                int64_t gw, int64_t nt, GError **error)
{
  const char *p = ee_build_name (b, "exits.%s.head", e->name);
  const int64_t n = gh * gw, d = e->dim, hh = e->head_hidden;
  const int64_t ts[3] = { b->batch, n, d }, tst[3] = { nt * d, d, 1 };
  const int64_t ms[4] = { b->batch, 1, gh, gw };
  EeOpDesc desc;
  int map;

  if (x < 0)
    return -1;
  if (nt != n
      && ((x = ee_graph_view (b->g, x, 3, ts, tst, 0, error)) < 0
          || (x = ee_build_op (b, ee_build_name (b, "%s.image_tokens", p),
                               EE_OP_REORDER, &x, 1, error))
                 < 0))
    return -1;
  x = ee_build_linear (b, ee_build_name (b, "%s.0", p), x, d, hh, e->head_act,
                       error);
  x = ee_build_linear (b, ee_build_name (b, "%s.1", p), x, hh, hh, e->head_act,
                       error);
  x = ee_build_linear (b, ee_build_name (b, "%s.2", p), x, hh, 1, EE_ACT_NONE,
                       error);
  if (x < 0 || (map = ee_graph_reshape (b->g, x, 4, ms, error)) < 0
      || !ee_runner_set_exit_map (b->r, map, error))
    return -1;
  desc = ee_op_desc_init (EE_OP_SUM);
  desc.alpha = 1.0f;
  return ee_graph_op (b->g, ee_build_name (b, "%s.sum", p), &desc, &map, 1,
                      error);
}

static int
slvit_exit (EeBuilder *b, const EeExitConfig *e, int tap, int audio_vec,
            GError **error)
{
  const EeTensorDesc *td = ee_graph_desc (b->g, tap);
  const char *p = e->name;
  int64_t ch = td->shape[1], th = td->shape[2], tw = td->shape[3];
  int64_t d = e->dim, P = e->patch;
  int64_t n = (th / P) * (tw / P), nt = n + (e->audio_token ? 1 : 0);
  const int64_t pw[2] = { d, P * P * ch }, pb[1] = { d }, pos_s[2] = { nt, d };
  const int64_t s3[3] = { b->batch, nt, d };
  const float *proj_w, *proj_b, *pos;
  EeOpDesc desc;
  int x, in[2];

  if (th % P || tw % P) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_FORMAT,
        "config: exit %s: the %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " tap %s "
        "is not divisible by patch %" G_GINT64_FORMAT " (choose another patch "
        "or input size)",
        p, th, tw, e->tap, P);
    return -1;
  }
  if (!(proj_w = ee_model_tensor (
            b->m, ee_build_name (b, "exits.%s.proj.weight", p), 2, pw, error))
      || !(proj_b = ee_model_tensor (
               b->m, ee_build_name (b, "exits.%s.proj.bias", p), 1, pb, error))
      || !(pos = ee_model_tensor (b->m, ee_build_name (b, "exits.%s.pos", p), 2,
                                  pos_s, error)))
    return -1;

  desc = ee_op_desc_init (EE_OP_PATCHIFY);
  desc.patch = (int)P;
  x = ee_graph_op (b->g, ee_build_name (b, "exits.%s.patchify", p), &desc, &tap,
                   1, error);
  x = ee_build_linear_with (b, ee_build_name (b, "exits.%s.proj", p), x, d,
                            proj_w, proj_b, EE_ACT_NONE, error);
  if (x < 0)
    return -1;
  if (e->audio_token) {
    /* tokens (B, N, d) and the audio token (B, 1, d) as 4-d (B, ., d, 1) so
     * the channel concat appends a token */
    const int64_t s4[4] = { b->batch, n, d, 1 }, a4[4] = { b->batch, 1, d, 1 };
    int a = audio_token (b, e, audio_vec, proj_w, proj_b, ch, error);

    if (a < 0 || (in[0] = ee_graph_reshape (b->g, x, 4, s4, error)) < 0
        || (in[1] = ee_graph_reshape (b->g, a, 4, a4, error)) < 0
        || (x = ee_build_op (b, ee_build_name (b, "exits.%s.tokens", p),
                             EE_OP_CONCAT, in, 2, error))
               < 0
        || (x = ee_graph_reshape (b->g, x, 3, s3, error)) < 0)
      return -1;
  }
  in[0] = x;
  in[1] = ee_graph_constant_repeated (
      b->g, ee_build_name (b, "exits.%s.pos", p), 3, s3, pos, b->batch);
  x = ee_build_op (b, ee_build_name (b, "exits.%s.add_pos", p), EE_OP_ADD, in,
                   2, error);
  if (x < 0)
    return -1;
  x = mlp_block (b, e, attention_block (b, e, x, nt, error), error);
  if (e->per_token)
    return per_token_head (b, e, x, th / P, tw / P, nt, error);
  /* token-major flatten: n*d + k */
  return exit_head (b, e, ee_build_reshape2 (b, x, b->batch, nt * d, error),
                    nt * d, error);
}

static int
cnn_exit (EeBuilder *b, const EeExitConfig *e, int tap, int audio_vec,
          GError **error)
{
  const EeTensorDesc *td = ee_graph_desc (b->g, tap);
  int64_t ch = td->shape[1], f = e->filters, pad = e->conv_padding;
  int64_t ho = (td->shape[2] + 2 * pad - 2) / e->pool;
  int64_t wo = (td->shape[3] + 2 * pad - 2) / e->pool;
  int x;

  if (ho < 1 || wo < 1) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "config: exit %s: the %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                 " tap %s is too small for pool %" G_GINT64_FORMAT,
                 e->name, td->shape[2], td->shape[3], e->tap, e->pool);
    return -1;
  }
  x = ee_build_conv (b, ee_build_name (b, "exits.%s.conv", e->name), tap, ch, f,
                     3, (int)pad, 1, e->film ? EE_ACT_NONE : EE_ACT_RELU,
                     error);
  if (x >= 0 && e->film) {
    int gb = ee_build_linear (
        b, ee_build_name (b, "exits.%s.film", e->name), audio_vec,
        ee_graph_desc (b->g, audio_vec)->shape[1], 2 * f, EE_ACT_NONE, error);
    x = ee_build_film (b, ee_build_name (b, "exits.%s.film_apply", e->name), x,
                       gb, f, error);
  }
  x = ee_build_maxpool (b, ee_build_name (b, "exits.%s.pool", e->name), x,
                        (int)e->pool, error);
  /* (c, y, x) flatten, as torch does */
  return exit_head (b, e,
                    ee_build_reshape2 (b, x, b->batch, f * ho * wo, error),
                    f * ho * wo, error);
}

int
ee_exit_build (EeBuilder *b, const EeExitConfig *e, int tap, int audio_vec,
               GError **error)
{
  const EeTensorDesc *td = ee_graph_desc (b->g, tap);

  if (td->ndim != 4) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "exit %s: tap %s is not a (N, C, H, W) feature map", e->name,
                 e->tap);
    return -1;
  }
  if (ee_exit_uses_audio (e)) {
    if (audio_vec < 0) {
      g_set_error (
          error, EE_ERROR, EE_ERROR_FORMAT,
          "config: exit %s: %s needs an audio vector, which this architecture "
          "does not have",
          e->name, e->slvit ? "the audio token" : "FiLM");
      return -1;
    }
    if (e->slvit && ee_graph_desc (b->g, audio_vec)->shape[1] != td->shape[1]) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "config: exit %s: the audio token needs the audio width "
                   "(%" G_GINT64_FORMAT
                   ") to equal the tap's channels (%" G_GINT64_FORMAT ")",
                   e->name, ee_graph_desc (b->g, audio_vec)->shape[1],
                   td->shape[1]);
      return -1;
    }
  }
  return e->slvit ? slvit_exit (b, e, tap, audio_vec, error)
                  : cnn_exit (b, e, tap, audio_vec, error);
}
