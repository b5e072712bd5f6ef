/* gst-earlyexit: InceptionV3 as torchvision defines it, without the auxiliary
 * classifier (training only). Every BasicConv2d is a conv with its BN
 * (eps from the config, torchvision's 1e-3) folded in, then ReLU.
 *
 *   stem     Conv2d_1a_3x3 /2, Conv2d_2a_3x3, Conv2d_2b_3x3 pad 1, maxpool1
 *            3x3/2, Conv2d_3b_1x1, Conv2d_4a_3x3, maxpool2 3x3/2
 *   Mixed_5b..5d  InceptionA, Mixed_6a InceptionB, Mixed_6b..6e InceptionC,
 *   Mixed_7a InceptionD, Mixed_7b..7c InceptionE
 *   final    global average pool, fc (or fc.0, ReLU, fc.3)
 * Average pools in the blocks count their padding (torch's default).
 * `transform_input` (torchvision's switch for its ImageNet weights) maps each
 * input channel x -> x std/0.5 + (mean - 0.5)/0.5; Conv2d_1a_3x3 has no
 * padding, so the map folds into its weights exactly.
 * Taps: every module above by its name (Conv2d_1a_3x3 ... Mixed_7c). */
#include "ee-classifier.h"

/* torchvision's _transform_input: ImageNet statistics against 0.5 */
static const float imagenet_mean[3] = { 0.485f, 0.456f, 0.406f };
static const float imagenet_std[3] = { 0.229f, 0.224f, 0.225f };

/* BasicConv2d `name` (name.conv, name.bn) with a kh x kw kernel */
static int
basic (EeClassifier *c, const char *block, const char *name, int x, int64_t out,
       int kh, int kw, int stride, int ph, int pw, GError **error)
{
  EeBuilder *b = &c->b;
  const char *p = block ? ee_build_name (b, "%s.%s", block, name) : name;

  return ee_classifier_conv_bn (c, ee_build_name (b, "%s.conv", p),
                                ee_build_name (b, "%s.bn", p), x,
                                (EeConvSpec){ out, kh, kw, stride, ph, pw },
                                NULL, NULL, EE_ACT_RELU, error);
}

static int
concat_block (EeClassifier *c, const char *block, const int *in, int n,
              GError **error)
{
  int y = ee_classifier_concat (c, ee_build_name (&c->b, "%s.concat", block),
                                in, n, error);
  return ee_classifier_tap (c, y, block, NULL, error) ? y : -1;
}

static int
avg_branch (EeClassifier *c, const char *block, int x, int64_t out,
            GError **error)
{
  int y = ee_classifier_pool (c, ee_build_name (&c->b, "%s.avgpool", block),
                              EE_OP_AVGPOOL, x, 3, 1, 1, error);
  return basic (c, block, "branch_pool", y, out, 1, 1, 1, 0, 0, error);
}

static int
inception_a (EeClassifier *c, const char *blk, int x, int64_t pool_features,
             GError **error)
{
  int in[4];

  in[0] = basic (c, blk, "branch1x1", x, 64, 1, 1, 1, 0, 0, error);
  in[1] = basic (c, blk, "branch5x5_1", in[0] < 0 ? -1 : x, 48, 1, 1, 1, 0, 0,
                 error);
  in[1] = basic (c, blk, "branch5x5_2", in[1], 64, 5, 5, 1, 2, 2, error);
  in[2] = basic (c, blk, "branch3x3dbl_1", in[1] < 0 ? -1 : x, 64, 1, 1, 1, 0,
                 0, error);
  in[2] = basic (c, blk, "branch3x3dbl_2", in[2], 96, 3, 3, 1, 1, 1, error);
  in[2] = basic (c, blk, "branch3x3dbl_3", in[2], 96, 3, 3, 1, 1, 1, error);
  in[3] = avg_branch (c, blk, in[2] < 0 ? -1 : x, pool_features, error);
  return concat_block (c, blk, in, 4, error);
}

static int
inception_b (EeClassifier *c, const char *blk, int x, GError **error)
{
  int in[3];

  in[0] = basic (c, blk, "branch3x3", x, 384, 3, 3, 2, 0, 0, error);
  in[1] = basic (c, blk, "branch3x3dbl_1", in[0] < 0 ? -1 : x, 64, 1, 1, 1, 0,
                 0, error);
  in[1] = basic (c, blk, "branch3x3dbl_2", in[1], 96, 3, 3, 1, 1, 1, error);
  in[1] = basic (c, blk, "branch3x3dbl_3", in[1], 96, 3, 3, 2, 0, 0, error);
  in[2]
      = ee_classifier_pool (c, ee_build_name (&c->b, "%s.maxpool", blk),
                            EE_OP_MAXPOOL, in[1] < 0 ? -1 : x, 3, 2, 0, error);
  return concat_block (c, blk, in, 3, error);
}

static int
inception_c (EeClassifier *c, const char *blk, int x, int64_t c7,
             GError **error)
{
  int in[4];

  in[0] = basic (c, blk, "branch1x1", x, 192, 1, 1, 1, 0, 0, error);
  in[1] = basic (c, blk, "branch7x7_1", in[0] < 0 ? -1 : x, c7, 1, 1, 1, 0, 0,
                 error);
  in[1] = basic (c, blk, "branch7x7_2", in[1], c7, 1, 7, 1, 0, 3, error);
  in[1] = basic (c, blk, "branch7x7_3", in[1], 192, 7, 1, 1, 3, 0, error);
  in[2] = basic (c, blk, "branch7x7dbl_1", in[1] < 0 ? -1 : x, c7, 1, 1, 1, 0,
                 0, error);
  in[2] = basic (c, blk, "branch7x7dbl_2", in[2], c7, 7, 1, 1, 3, 0, error);
  in[2] = basic (c, blk, "branch7x7dbl_3", in[2], c7, 1, 7, 1, 0, 3, error);
  in[2] = basic (c, blk, "branch7x7dbl_4", in[2], c7, 7, 1, 1, 3, 0, error);
  in[2] = basic (c, blk, "branch7x7dbl_5", in[2], 192, 1, 7, 1, 0, 3, error);
  in[3] = avg_branch (c, blk, in[2] < 0 ? -1 : x, 192, error);
  return concat_block (c, blk, in, 4, error);
}

static int
inception_d (EeClassifier *c, const char *blk, int x, GError **error)
{
  int in[3];

  in[0] = basic (c, blk, "branch3x3_1", x, 192, 1, 1, 1, 0, 0, error);
  in[0] = basic (c, blk, "branch3x3_2", in[0], 320, 3, 3, 2, 0, 0, error);
  in[1] = basic (c, blk, "branch7x7x3_1", in[0] < 0 ? -1 : x, 192, 1, 1, 1, 0,
                 0, error);
  in[1] = basic (c, blk, "branch7x7x3_2", in[1], 192, 1, 7, 1, 0, 3, error);
  in[1] = basic (c, blk, "branch7x7x3_3", in[1], 192, 7, 1, 1, 3, 0, error);
  in[1] = basic (c, blk, "branch7x7x3_4", in[1], 192, 3, 3, 2, 0, 0, error);
  in[2]
      = ee_classifier_pool (c, ee_build_name (&c->b, "%s.maxpool", blk),
                            EE_OP_MAXPOOL, in[1] < 0 ? -1 : x, 3, 2, 0, error);
  return concat_block (c, blk, in, 3, error);
}

/* torchvision concatenates 2a/2b and 3a/3b first, then all four branches:
 * the same channel order as one concat of six. */
static int
inception_e (EeClassifier *c, const char *blk, int x, GError **error)
{
  int in[6], t;

  in[0] = basic (c, blk, "branch1x1", x, 320, 1, 1, 1, 0, 0, error);
  t = basic (c, blk, "branch3x3_1", in[0] < 0 ? -1 : x, 384, 1, 1, 1, 0, 0,
             error);
  in[1] = basic (c, blk, "branch3x3_2a", t, 384, 1, 3, 1, 0, 1, error);
  in[2] = basic (c, blk, "branch3x3_2b", in[1] < 0 ? -1 : t, 384, 3, 1, 1, 1, 0,
                 error);
  t = basic (c, blk, "branch3x3dbl_1", in[2] < 0 ? -1 : x, 448, 1, 1, 1, 0, 0,
             error);
  t = basic (c, blk, "branch3x3dbl_2", t, 384, 3, 3, 1, 1, 1, error);
  in[3] = basic (c, blk, "branch3x3dbl_3a", t, 384, 1, 3, 1, 0, 1, error);
  in[4] = basic (c, blk, "branch3x3dbl_3b", in[3] < 0 ? -1 : t, 384, 3, 1, 1, 1,
                 0, error);
  in[5] = avg_branch (c, blk, in[4] < 0 ? -1 : x, 192, error);
  return concat_block (c, blk, in, 6, error);
}

static int
stem_tap (EeClassifier *c, int x, const char *name, GError **error)
{
  return ee_classifier_tap (c, x, name, NULL, error) ? x : -1;
}

gboolean
ee_inceptionv3_build (EeModel *m, JsonObject *config, GError **error)
{
  static const char *const keys[] = { "transform_input", NULL };
  EeClassifier c = { 0 };
  gboolean transform, ok = FALSE;
  float scale[3], shift[3];
  int x;

  /* torchvision's smallest input: Mixed_7a still has 3x3 to convolve */
  if (!ee_classifier_begin (&c, m, config, keys, 75, "Mixed_7c", error)
      || !ee_json_bool (config, "config", "transform_input", &transform, error))
    goto out;
  for (int i = 0; i < 3; i++) {
    scale[i] = imagenet_std[i] / 0.5f;
    shift[i] = (imagenet_mean[i] - 0.5f) / 0.5f;
  }
  x = ee_classifier_conv_bn (&c, "Conv2d_1a_3x3.conv", "Conv2d_1a_3x3.bn",
                             m->image_input, (EeConvSpec){ 32, 3, 3, 2, 0, 0 },
                             transform ? scale : NULL, transform ? shift : NULL,
                             EE_ACT_RELU, error);
  x = stem_tap (&c, x, "Conv2d_1a_3x3", error);
  x = stem_tap (&c,
                basic (&c, NULL, "Conv2d_2a_3x3", x, 32, 3, 3, 1, 0, 0, error),
                "Conv2d_2a_3x3", error);
  x = stem_tap (&c,
                basic (&c, NULL, "Conv2d_2b_3x3", x, 64, 3, 3, 1, 1, 1, error),
                "Conv2d_2b_3x3", error);
  x = stem_tap (
      &c, ee_classifier_pool (&c, "maxpool1", EE_OP_MAXPOOL, x, 3, 2, 0, error),
      "maxpool1", error);
  x = stem_tap (&c,
                basic (&c, NULL, "Conv2d_3b_1x1", x, 80, 1, 1, 1, 0, 0, error),
                "Conv2d_3b_1x1", error);
  x = stem_tap (&c,
                basic (&c, NULL, "Conv2d_4a_3x3", x, 192, 3, 3, 1, 0, 0, error),
                "Conv2d_4a_3x3", error);
  x = stem_tap (
      &c, ee_classifier_pool (&c, "maxpool2", EE_OP_MAXPOOL, x, 3, 2, 0, error),
      "maxpool2", error);
  x = inception_a (&c, "Mixed_5b", x, 32, error);
  x = inception_a (&c, "Mixed_5c", x, 64, error);
  x = inception_a (&c, "Mixed_5d", x, 64, error);
  x = inception_b (&c, "Mixed_6a", x, error);
  x = inception_c (&c, "Mixed_6b", x, 128, error);
  x = inception_c (&c, "Mixed_6c", x, 160, error);
  x = inception_c (&c, "Mixed_6d", x, 160, error);
  x = inception_c (&c, "Mixed_6e", x, 192, error);
  x = inception_d (&c, "Mixed_7a", x, error);
  x = inception_e (&c, "Mixed_7b", x, error);
  x = inception_e (&c, "Mixed_7c", x, error);
  ok = ee_classifier_finish (&c, x, "fc", error);
out:
  ee_classifier_clear (&c);
  return ok;
}
