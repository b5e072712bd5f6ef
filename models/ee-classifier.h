/* gst-earlyexit: what the classification backbones (resnet.c, densenet.c,
 * inception.c; docs/models.md 4) share.
 *
 * A backbone builder calls ee_classifier_begin(), adds its layers top to
 * bottom with the torchvision tensor names, calls ee_classifier_tap() at every
 * point an exit may read (in forward order), and ends with
 * ee_classifier_finish(). The runner segments follow from the exits' taps:
 *   stage up to the first tapped point, its exits, stage up to the next, ...,
 *   the rest of the backbone, then "final" = global average pool + classifier.
 * Every exit outputs `classes` logits (EE_TASK_CLASSIFY). */
#ifndef EE_CLASSIFIER_H
#define EE_CLASSIFIER_H

#include "ee-exits.h"

G_BEGIN_DECLS

typedef struct
{
  EeBuilder b;
  const char *arch;
  const char *last_tap; /* names the stage after the last exit */
  /* configuration */
  double bn_eps;
  gint64 classes;
  gint64 hidden; /* 0: one linear classifier */
  EeExitConfig exits[EE_MAX_EXITS];
  int n_exits;
  /* building */
  int next_exit;   /* exits before it are built */
  int stage;       /* open stage segment */
  GPtrArray *taps; /* tap names passed, for error messages */
} EeClassifier;

/* A convolution as torchvision's nn.Conv2d describes it. */
typedef struct
{
  int64_t out;
  int kh, kw;
  int stride;
  int ph, pw;
} EeConvSpec;

/* Reads the keys every classifier config has plus `arch_keys` (NULL-ended),
 * refuses any other, checks the input size against `min_size`, creates the
 * (1, 3, H, W) input and opens the first stage segment. */
gboolean ee_classifier_begin (EeClassifier *c, EeModel *m, JsonObject *cfg,
                              const char *const *arch_keys, int min_size,
                              const char *last_tap, GError **error);
void ee_classifier_clear (EeClassifier *c);

/* `x` is the backbone's tensor named `name` (and `alias`, may be NULL): adds
 * the exits listed for it, each as its own segment, and starts the next
 * stage. */
gboolean ee_classifier_tap (EeClassifier *c, int x, const char *name,
                            const char *alias, GError **error);

/* Closes the backbone at `x` (1, F, h, w) and adds the final exit: global
 * average pool, then `head`.weight/bias (F -> classes), or with a hidden
 * width the paper's `head`.0 (F -> hidden), ReLU, `head`.3 (hidden ->
 * classes). */
gboolean ee_classifier_finish (EeClassifier *c, int x, const char *head,
                               GError **error);

/* nn.Conv2d without bias, then BatchNorm2d `bn` (NULL: none) folded into it,
 * then `act`.
 * in_scale/in_shift (per input channel, may be NULL) fold an affine map of
 * the input into the weights; only exact without padding. */
int ee_classifier_conv_bn (EeClassifier *c, const char *conv, const char *bn,
                           int x, EeConvSpec spec, const float *in_scale,
                           const float *in_shift, EeActivation act,
                           GError **error);
/* A BatchNorm2d that no conv precedes (DenseNet's pre-activation), with act. */
int ee_classifier_batchnorm (EeClassifier *c, const char *bn, int x,
                             EeActivation act, GError **error);
/* Pools as torch.nn.functional: stride, symmetric padding, floor;
 * avg counts the padding (count_include_pad = True, torch's default). */
int ee_classifier_pool (EeClassifier *c, const char *name, EeOpKind kind, int x,
                        int k, int stride, int pad, GError **error);
/* Concatenation on channels. */
int ee_classifier_concat (EeClassifier *c, const char *name, const int *in,
                          int n, GError **error);
/* Channels of value x (1, C, H, W). */
int64_t ee_classifier_channels (EeClassifier *c, int x);

G_END_DECLS
#endif /* EE_CLASSIFIER_H */
