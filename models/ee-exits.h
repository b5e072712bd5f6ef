/* gst-earlyexit: the two early-exit branch kinds (docs/models.md 3.1, 3.2),
 * shared by every backbone.
 *
 * An exit reads one named tap of its backbone, (N, C, H, W) for a batch of N
 * frames (N = 1 but in batched graphs), and gives
 * `outputs` values: a count or class logits. Its configuration and tensors
 * are those of docs/model-format.md ("SL-ViT exit", "CNN exit"); which taps
 * exist is the backbone's business, so the tap stays a string here. */
#ifndef EE_EXITS_H
#define EE_EXITS_H

#include "ee-layers.h"

G_BEGIN_DECLS

/* Exits per model: the runner's 32 segments hold them with one backbone
 * stage before each tap and the final exit. */
#define EE_MAX_EXITS 8

typedef struct
{
  char name[32];
  char tap[64];
  gboolean slvit;
  /* SL-ViT */
  gint64 patch, dim, heads, mlp_dim;
  double ln_eps;
  gboolean last_residual, final_ln, mlp_out_gelu, audio_token;
  /* "head_kind": FALSE = "flatten" (the paper's head on all tokens, the
   * default when the key is absent), TRUE = "per_token" (the head on each
   * image token, a map of per-patch counts summed to the count) */
  gboolean per_token;
  /* CNN */
  gint64 filters, conv_padding, pool;
  gboolean film;
  /* head */
  gint64 head_hidden, outputs;
  EeActivation head_act;
} EeExitConfig;

/* Reads one element of the config's "exits" list: every key of its kind must
 * be present and no other. */
gboolean ee_exit_config_parse (JsonObject *o, EeExitConfig *e, GError **error);
/* Reads the whole "exits" list: names unique, at most EE_MAX_EXITS. */
gboolean ee_exit_config_parse_list (JsonObject *cfg, EeExitConfig *exits,
                                    int *n_exits, GError **error);
/* The exit reads the audio vector (audio token or FiLM). */
gboolean ee_exit_uses_audio (const EeExitConfig *e);

/* Adds the exit's ops reading `tap` (N, C, H, W); audio_vec is the model's
 * audio vector (N, A), or -1 when it has none. Returns the value holding the
 * exit's result (N, outputs), or -1 with error set. */
int ee_exit_build (EeBuilder *b, const EeExitConfig *e, int tap, int audio_vec,
                   GError **error);
/* The exit gives a map next to its count (an SL-ViT exit with the per_token
 * head: (H/patch) x (W/patch) of the tap), set on the runner's segment by
 * ee_exit_build. */
gboolean ee_exit_has_map (const EeExitConfig *e);

G_END_DECLS
#endif /* EE_EXITS_H */
