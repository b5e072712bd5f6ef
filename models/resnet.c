/* gst-earlyexit: ResNet152 as torchvision defines it (v1.5: the stride of a
 * downsampling block on its 3x3 conv), or with `stride_on_1x1` as the
 * Keras/Caffe ResNet v1 (on its first 1x1 conv); BN folded into every conv.
 *
 *   stem      conv1 7x7/2 + bn1 + ReLU, max pool 3x3/2 pad 1
 *   layerK.I  Bottleneck: conv1 1x1 + bn1 + ReLU, conv2 3x3 + bn2 + ReLU,
 *             conv3 1x1 + bn3, plus the identity (block 0: downsample.0
 *             1x1 conv + downsample.1 BN), ReLU
 *   final     global average pool, fc (or the paper's fc.0, ReLU, fc.3)
 * Taps: stem, layerK.I.conv1 and layerK.I.conv2 (after their BN and ReLU),
 * layerK.I (the block's output; the stage's last block is also layerK). */
#include "ee-classifier.h"

#define N_STAGES 4

static const int blocks[N_STAGES] = { 3, 8, 36, 3 };
static const int widths[N_STAGES] = { 64, 128, 256, 512 };

#define EXPANSION 4

static int
bottleneck (EeClassifier *c, int x, int stage, int i, gboolean stride_on_1x1,
            GError **error)
{
  EeBuilder *b = &c->b;
  const char *p = ee_build_name (b, "layer%d.%d", stage + 1, i);
  int64_t w = widths[stage], out = EXPANSION * w;
  int stride = stage > 0 && i == 0 ? 2 : 1;
  int s1 = stride_on_1x1 ? stride : 1, s2 = stride_on_1x1 ? 1 : stride;
  int y, in[2];

  y = ee_classifier_conv_bn (
      c, ee_build_name (b, "%s.conv1", p), ee_build_name (b, "%s.bn1", p), x,
      (EeConvSpec){ w, 1, 1, s1, 0, 0 }, NULL, NULL, EE_ACT_RELU, error);
  if (!ee_classifier_tap (c, y, ee_build_name (b, "%s.conv1", p), NULL, error))
    return -1;
  y = ee_classifier_conv_bn (
      c, ee_build_name (b, "%s.conv2", p), ee_build_name (b, "%s.bn2", p), y,
      (EeConvSpec){ w, 3, 3, s2, 1, 1 }, NULL, NULL, EE_ACT_RELU, error);
  if (!ee_classifier_tap (c, y, ee_build_name (b, "%s.conv2", p), NULL, error))
    return -1;
  in[0] = ee_classifier_conv_bn (
      c, ee_build_name (b, "%s.conv3", p), ee_build_name (b, "%s.bn3", p), y,
      (EeConvSpec){ out, 1, 1, 1, 0, 0 }, NULL, NULL, EE_ACT_NONE, error);
  if (in[0] < 0)
    return -1;
  /* every stage's first block changes the width (and stage 2-4 the size) */
  in[1]
      = i > 0
            ? x
            : ee_classifier_conv_bn (c, ee_build_name (b, "%s.downsample.0", p),
                                     ee_build_name (b, "%s.downsample.1", p), x,
                                     (EeConvSpec){ out, 1, 1, stride, 0, 0 },
                                     NULL, NULL, EE_ACT_NONE, error);
  y = ee_build_op (b, ee_build_name (b, "%s.add", p), EE_OP_ADD, in, 2, error);
  y = ee_build_op (b, ee_build_name (b, "%s.relu", p), EE_OP_RELU, &y, 1,
                   error);
  if (!ee_classifier_tap (c, y, p,
                          i == blocks[stage] - 1
                              ? ee_build_name (b, "layer%d", stage + 1)
                              : NULL,
                          error))
    return -1;
  return y;
}

gboolean
ee_resnet152_build (EeModel *m, JsonObject *config, GError **error)
{
  static const char *const keys[] = { "stride_on_1x1", NULL };
  EeClassifier c = { 0 };
  gboolean stride_on_1x1, ok = FALSE;
  int x;

  if (!ee_classifier_begin (&c, m, config, keys, 1, "layer4", error)
      || !ee_json_bool (config, "config", "stride_on_1x1", &stride_on_1x1,
                        error))
    goto out;
  x = ee_classifier_conv_bn (&c, "conv1", "bn1", m->image_input,
                             (EeConvSpec){ 64, 7, 7, 2, 3, 3 }, NULL, NULL,
                             EE_ACT_RELU, error);
  x = ee_classifier_pool (&c, "maxpool", EE_OP_MAXPOOL, x, 3, 2, 1, error);
  if (!ee_classifier_tap (&c, x, "stem", NULL, error))
    goto out;
  for (int s = 0; s < N_STAGES; s++)
    for (int i = 0; i < blocks[s]; i++)
      if ((x = bottleneck (&c, x, s, i, stride_on_1x1, error)) < 0)
        goto out;
  ok = ee_classifier_finish (&c, x, "fc", error);
out:
  ee_classifier_clear (&c);
  return ok;
}
