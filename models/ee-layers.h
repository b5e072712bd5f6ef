/* gst-earlyexit: what every model builder uses to add layers to its graph.
 *
 * An EeBuilder bundles the model being loaded, its graph and runner, and the
 * op names made while building. Each helper reads its parameters by tensor
 * name from the model file (checking their shapes), adds one or a few ops and
 * returns the id of the output value, or -1 with `error` set. Helpers accept
 * x < 0 and then return -1 at once, so a chain of calls needs one check. */
#ifndef EE_LAYERS_H
#define EE_LAYERS_H

#include "ee-model-private.h"

G_BEGIN_DECLS

typedef struct
{
  EeModel *m;
  EeGraph *g;
  EeRunner *r;
  GPtrArray *names; /* strings made by ee_build_name */
  int64_t batch;    /* frames per run (the model's batch size) */
} EeBuilder;

void ee_builder_init (EeBuilder *b, EeModel *m);
void ee_builder_clear (EeBuilder *b);

/* A printf-formatted name that lives as long as the builder. */
const char *ee_build_name (EeBuilder *b, const char *fmt, ...)
    G_GNUC_PRINTF (2, 3);

/* k x k conv, stride 1, with bias: tensors `prefix`.weight (cout, cin, k, k)
 * and `prefix`.bias (cout). */
int ee_build_conv (EeBuilder *b, const char *prefix, int x, int64_t cin,
                   int64_t cout, int k, int pad, int dil, EeActivation act,
                   GError **error);
/* Linear with tensors `prefix`.weight (out, in) and `prefix`.bias (out). */
int ee_build_linear (EeBuilder *b, const char *prefix, int x, int64_t in,
                     int64_t out, EeActivation act, GError **error);
/* Linear with weights already in host memory (copied by the backend). */
int ee_build_linear_with (EeBuilder *b, const char *name, int x, int64_t out,
                          const float *w, const float *bias, EeActivation act,
                          GError **error);
/* Max pool k x k, stride k, floor. */
int ee_build_maxpool (EeBuilder *b, const char *name, int x, int k,
                      GError **error);
/* An op without parameters (ADD, SOFTMAX, CONCAT, GLOBAL_AVGPOOL, ...). */
int ee_build_op (EeBuilder *b, const char *name, EeOpKind kind, const int *in,
                 int n, GError **error);
/* Contiguous reshape of x to (a, c): (batch, c) for a = b->batch. */
int ee_build_reshape2 (EeBuilder *b, int x, int64_t a, int64_t c,
                       GError **error);
/* ReLU(gamma * x + beta) per channel, gamma and beta the first and second
 * halves of gb (batch, 2 ch). */
int ee_build_film (EeBuilder *b, const char *name, int x, int gb, int64_t ch,
                   GError **error);

G_END_DECLS
#endif /* EE_LAYERS_H */
