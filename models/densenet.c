/* gst-earlyexit: DenseNet201 as torchvision defines it (DenseNet-BC, growth
 * rate 32, blocks of 6, 12, 48 and 32 layers, bottleneck 4 x 32).
 *
 *   stem         features.conv0 7x7/2 + norm0 + ReLU, pool0 max 3x3/2 pad 1
 *   denselayer   norm1 + ReLU (pre-activation: a standalone BN op, nothing
 *                precedes it to fold into), conv1 1x1 with norm2 folded + ReLU,
 *                conv2 3x3; its 32 channels are appended to the block's
 *   transition   norm + ReLU, conv 1x1 (half the channels), avg pool 2x2/2
 *   norm5        BN + the ReLU of torchvision's forward()
 *   final        global average pool, classifier (or classifier.0, ReLU,
 *                classifier.3)
 * Taps: features.pool0; features.denseblockK.denselayerJ (the block's
 * channels so far, J's included; the last is also features.denseblockK);
 * features.transitionK.conv (before its pool); features.transitionK;
 * features.norm5. */
#include "ee-classifier.h"

#define N_BLOCKS 4
#define GROWTH 32
#define BN_SIZE 4
#define INIT_FEATURES 64

static const int block_layers[N_BLOCKS] = { 6, 12, 48, 32 };

static int
dense_layer (EeClassifier *c, int x, int k, int j, GError **error)
{
  EeBuilder *b = &c->b;
  const char *blk = ee_build_name (b, "features.denseblock%d", k);
  const char *p = ee_build_name (b, "%s.denselayer%d", blk, j);
  int y, in[2];

  y = ee_classifier_batchnorm (c, ee_build_name (b, "%s.norm1", p), x,
                               EE_ACT_RELU, error);
  y = ee_classifier_conv_bn (c, ee_build_name (b, "%s.conv1", p),
                             ee_build_name (b, "%s.norm2", p), y,
                             (EeConvSpec){ BN_SIZE * GROWTH, 1, 1, 1, 0, 0 },
                             NULL, NULL, EE_ACT_RELU, error);
  y = ee_classifier_conv_bn (c, ee_build_name (b, "%s.conv2", p), NULL, y,
                             (EeConvSpec){ GROWTH, 3, 3, 1, 1, 1 }, NULL, NULL,
                             EE_ACT_NONE, error);
  in[0] = x;
  in[1] = y;
  y = ee_classifier_concat (c, ee_build_name (b, "%s.concat", p), in, 2, error);
  if (!ee_classifier_tap (c, y, p, j == block_layers[k - 1] ? blk : NULL,
                          error))
    return -1;
  return y;
}

static int
transition (EeClassifier *c, int x, int k, GError **error)
{
  EeBuilder *b = &c->b;
  const char *p = ee_build_name (b, "features.transition%d", k);
  const char *conv = ee_build_name (b, "%s.conv", p);
  int y;

  y = ee_classifier_batchnorm (c, ee_build_name (b, "%s.norm", p), x,
                               EE_ACT_RELU, error);
  y = ee_classifier_conv_bn (
      c, conv, NULL, y,
      (EeConvSpec){ ee_classifier_channels (c, x) / 2, 1, 1, 1, 0, 0 }, NULL,
      NULL, EE_ACT_NONE, error);
  if (!ee_classifier_tap (c, y, conv, NULL, error))
    return -1;
  y = ee_classifier_pool (c, ee_build_name (b, "%s.pool", p), EE_OP_AVGPOOL, y,
                          2, 2, 0, error);
  if (!ee_classifier_tap (c, y, p, NULL, error))
    return -1;
  return y;
}

gboolean
ee_densenet201_build (EeModel *m, JsonObject *config, GError **error)
{
  static const char *const keys[] = { NULL };
  EeClassifier c = { 0 };
  gboolean ok = FALSE;
  int x;

  /* torchvision's smallest input: every transition still has 2x2 to pool */
  if (!ee_classifier_begin (&c, m, config, keys, 29, "features.norm5", error))
    goto out;
  x = ee_classifier_conv_bn (&c, "features.conv0", "features.norm0",
                             m->image_input,
                             (EeConvSpec){ INIT_FEATURES, 7, 7, 2, 3, 3 }, NULL,
                             NULL, EE_ACT_RELU, error);
  x = ee_classifier_pool (&c, "features.pool0", EE_OP_MAXPOOL, x, 3, 2, 1,
                          error);
  if (!ee_classifier_tap (&c, x, "features.pool0", NULL, error))
    goto out;
  for (int k = 1; k <= N_BLOCKS; k++) {
    for (int j = 1; j <= block_layers[k - 1]; j++)
      if ((x = dense_layer (&c, x, k, j, error)) < 0)
        goto out;
    if (k < N_BLOCKS && (x = transition (&c, x, k, error)) < 0)
      goto out;
  }
  x = ee_classifier_batchnorm (&c, "features.norm5", x, EE_ACT_RELU, error);
  if (!ee_classifier_tap (&c, x, "features.norm5", NULL, error))
    goto out;
  ok = ee_classifier_finish (&c, x, "classifier", error);
out:
  ee_classifier_clear (&c);
  return ok;
}
