/* gst-earlyexit: backend-independent helpers of the op interface, and the
 * part of preparing and enqueueing an op that every backend shares. */
#include "ee-backend-private.h"

#include <string.h>

static const char *const op_names[EE_OP_N_KINDS] = {
  [EE_OP_CONV2D] = "conv2d",
  [EE_OP_MAXPOOL] = "maxpool",
  [EE_OP_AVGPOOL] = "avgpool",
  [EE_OP_GLOBAL_AVGPOOL] = "global_avgpool",
  [EE_OP_BATCHNORM] = "batchnorm",
  [EE_OP_LINEAR] = "linear",
  [EE_OP_MATMUL] = "matmul",
  [EE_OP_LAYERNORM] = "layernorm",
  [EE_OP_SOFTMAX] = "softmax",
  [EE_OP_GELU] = "gelu",
  [EE_OP_RELU] = "relu",
  [EE_OP_ADD] = "add",
  [EE_OP_MUL] = "mul",
  [EE_OP_FILM] = "film",
  [EE_OP_CONCAT] = "concat",
  [EE_OP_PATCHIFY] = "patchify",
  [EE_OP_UPSAMPLE_NEAREST] = "upsample_nearest",
  [EE_OP_SUM] = "sum",
  [EE_OP_REORDER] = "reorder",
};

const char *
ee_op_kind_name (EeOpKind kind)
{
  return (kind >= 0 && kind < EE_OP_N_KINDS) ? op_names[kind] : "?";
}

EeOpDesc
ee_op_desc_init (EeOpKind kind)
{
  EeOpDesc d = { 0 };

  d.kind = kind;
  d.act = EE_ACT_NONE;
  d.stride[0] = d.stride[1] = 1;
  d.dilation[0] = d.dilation[1] = 1;
  d.kernel[0] = d.kernel[1] = 1;
  d.kernel_size[0] = d.kernel_size[1] = 1;
  d.patch = 1;
  d.factor = 1;
  d.eps = 1e-5f;
  d.alpha = 1.0f;
  d.count_include_pad = TRUE;
  return d;
}

double
ee_op_flops (const EeOpDesc *desc, const EeTensorDesc *const *in, int n_in,
             const EeTensorDesc *out)
{
  double out_numel = (double)ee_tensor_desc_numel (out);

  switch (desc->kind) {
    case EE_OP_CONV2D:
      /* 2 x (C x KH x KW) multiply-adds per output element, + bias */
      return out_numel
             * (2.0 * (double)in[0]->shape[1] * desc->kernel_size[0]
                    * desc->kernel_size[1]
                + (desc->bias ? 1.0 : 0.0));
    case EE_OP_LINEAR: {
      double k = (double)in[0]->shape[in[0]->ndim - 1];
      return out_numel * (2.0 * k + (desc->bias ? 1.0 : 0.0));
    }
    case EE_OP_MATMUL:
      return out_numel * 2.0 * (double)in[0]->shape[in[0]->ndim - 1];
    case EE_OP_MAXPOOL:
    case EE_OP_AVGPOOL:
      return out_numel * desc->kernel[0] * desc->kernel[1];
    case EE_OP_GLOBAL_AVGPOOL:
    case EE_OP_SUM:
      return (double)ee_tensor_desc_numel (in[0]);
    case EE_OP_BATCHNORM:
    case EE_OP_FILM:
    case EE_OP_MUL:
      return 2.0 * out_numel;
    case EE_OP_LAYERNORM:
    case EE_OP_SOFTMAX:
      return 5.0 * out_numel;
    case EE_OP_GELU:
      return 8.0 * out_numel;
    case EE_OP_RELU:
    case EE_OP_ADD:
      return out_numel;
    case EE_OP_CONCAT:
    case EE_OP_PATCHIFY:
    case EE_OP_UPSAMPLE_NEAREST:
    case EE_OP_REORDER:
    case EE_OP_N_KINDS:
      return 0.0;
  }
  return 0.0;
}

void
ee_op_arg_errorv (GError **error, const char *backend, EeOpKind kind,
                  const char *format, va_list ap)
{
  char *msg = g_strdup_vprintf (format, ap);

  g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT, "%s backend: %s: %s",
               backend, ee_op_kind_name (kind), msg);
  g_free (msg);
}

gboolean
ee_op_input_error (GError **error, int code, const char *backend, EeOpKind kind,
                   int i, const char *format, ...)
{
  va_list ap;
  char *msg;

  va_start (ap, format);
  msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (error, EE_ERROR, code, "%s backend: %s: input %d %s", backend,
               ee_op_kind_name (kind), i, msg);
  g_free (msg);
  return FALSE;
}

/* ---- output shapes ----
 *
 * Every backend produces the shape PyTorch would for the same arguments;
 * only layouts and data types are theirs to choose. So the rules, and the
 * checks that keep them defined, live here once. */

/* One op_new call as the rules see it. */
typedef struct
{
  const char *backend;
  const EeOpDesc *d;
  const EeTensorDesc *const *in;
  int n_in;
  int *ndim;
  int64_t *shape;
  GError **error;
} ShapeCall;

static gboolean fail (const ShapeCall *c, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

/* Sets the error and returns FALSE, so a rule can end with it. */
static gboolean
fail (const ShapeCall *c, const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  ee_op_arg_errorv (c->error, c->backend, c->d->kind, format, ap);
  va_end (ap);
  return FALSE;
}

/* Checks an input's rank; `what` names the shape expected. */
static gboolean
need_ndim (const ShapeCall *c, const EeTensorDesc *t, int lo, int hi,
           const char *what)
{
  char buf[64];

  if (t->ndim >= lo && t->ndim <= hi)
    return TRUE;
  return fail (c, "input of shape %s has %d dims, expected %s",
               ee_tensor_desc_shape_str (t, buf, sizeof buf), t->ndim, what);
}

#define NCHW "4 (N,C,H,W)"

static gboolean
set_shape (const ShapeCall *c, int ndim, const int64_t *shape)
{
  *c->ndim = ndim;
  memcpy (c->shape, shape, sizeof (int64_t) * (size_t)ndim);
  return TRUE;
}

/* Elementwise and row-wise ops keep their input's shape. */
static gboolean
same_shape (const ShapeCall *c)
{
  return set_shape (c, c->in[0]->ndim, c->in[0]->shape);
}

static gboolean
conv_shape (const ShapeCall *c)
{
  const EeOpDesc *d = c->d;
  const EeTensorDesc *x = c->in[0];
  int64_t num[2];

  if (!need_ndim (c, x, 4, 4, NCHW))
    return FALSE;
  if (!d->weight || d->out_features < 1 || d->kernel_size[0] < 1
      || d->kernel_size[1] < 1)
    return fail (
        c,
        "got weight %s, out_features %" G_GINT64_FORMAT
        ", kernel %dx%d; expected a weight, out_features >= 1, kernel >= 1",
        d->weight ? "set" : "NULL", d->out_features, d->kernel_size[0],
        d->kernel_size[1]);
  for (int i = 0; i < 2; i++) {
    if (d->stride[i] < 1 || d->dilation[i] < 1 || d->pad[i] < 0)
      return fail (c,
                   "got stride %dx%d, dilation %dx%d, pad %dx%d; expected "
                   "stride >= 1, dilation >= 1, pad >= 0",
                   d->stride[0], d->stride[1], d->dilation[0], d->dilation[1],
                   d->pad[0], d->pad[1]);
    num[i] = x->shape[2 + i] + 2 * d->pad[i]
             - (int64_t)d->dilation[i] * (d->kernel_size[i] - 1) - 1;
  }
  if (num[0] < 0 || num[1] < 0)
    return fail (
        c,
        "input %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
        " is smaller than the dilated kernel with padding (%" G_GINT64_FORMAT
        "x%" G_GINT64_FORMAT " needed)",
        x->shape[2], x->shape[3], x->shape[2] - num[0], x->shape[3] - num[1]);
  return set_shape (c, 4,
                    (const int64_t[4]){ x->shape[0], d->out_features,
                                        num[0] / d->stride[0] + 1,
                                        num[1] / d->stride[1] + 1 });
}

/* PyTorch's pooling output size along one spatial dim. */
static int64_t
pool_out_size (int64_t in, int k, int s, int pad, gboolean ceil_mode)
{
  int64_t num = in + 2 * pad - k;
  int64_t o = (ceil_mode ? (num + s - 1) / s : num / s) + 1;

  /* the last window must start inside the input or the left padding */
  if (ceil_mode && (o - 1) * s >= in + pad)
    o--;
  return o;
}

int64_t
ee_op_pool_pad_end (const EeOpDesc *desc, int i, int64_t in, int64_t out)
{
  return MAX ((int64_t)desc->pad[i], (out - 1) * desc->stride[i]
                                         + desc->kernel[i] - in - desc->pad[i]);
}

static gboolean
pool_shape (const ShapeCall *c)
{
  const EeOpDesc *d = c->d;
  const EeTensorDesc *x = c->in[0];
  int64_t shape[4];

  if (!need_ndim (c, x, 4, 4, NCHW))
    return FALSE;
  for (int i = 0; i < 2; i++) {
    if (d->kernel[i] < 1 || d->stride[i] < 1 || d->pad[i] < 0
        || 2 * d->pad[i] > d->kernel[i])
      return fail (c,
                   "got kernel %dx%d, stride %dx%d, pad %dx%d; expected "
                   "kernel >= 1, stride >= 1, 0 <= pad <= kernel/2",
                   d->kernel[0], d->kernel[1], d->stride[0], d->stride[1],
                   d->pad[0], d->pad[1]);
    if (x->shape[2 + i] + 2 * d->pad[i] < d->kernel[i])
      return fail (c,
                   "input %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                   " with padding %dx%d is smaller than the kernel %dx%d",
                   x->shape[2], x->shape[3], d->pad[0], d->pad[1], d->kernel[0],
                   d->kernel[1]);
    shape[2 + i] = pool_out_size (x->shape[2 + i], d->kernel[i], d->stride[i],
                                  d->pad[i], d->ceil_mode);
  }
  shape[0] = x->shape[0];
  shape[1] = x->shape[1];
  return set_shape (c, 4, shape);
}

static gboolean
global_avgpool_shape (const ShapeCall *c)
{
  const EeTensorDesc *x = c->in[0];

  return need_ndim (c, x, 4, 4, NCHW)
         && set_shape (c, 4,
                       (const int64_t[4]){ x->shape[0], x->shape[1], 1, 1 });
}

static gboolean
batchnorm_shape (const ShapeCall *c)
{
  const EeOpDesc *d = c->d;

  if (!need_ndim (c, c->in[0], 2, 4, "2 to 4 (N,C,...)"))
    return FALSE;
  if (!d->mean || !d->var || !(d->eps >= 0.0f))
    return fail (
        c, "got mean %s, var %s, eps %g; expected both statistics and eps >= 0",
        d->mean ? "set" : "NULL", d->var ? "set" : "NULL", d->eps);
  return same_shape (c);
}

static gboolean
linear_shape (const ShapeCall *c)
{
  const EeOpDesc *d = c->d;
  const EeTensorDesc *x = c->in[0];
  int64_t shape[EE_MAX_DIMS];

  if (!d->weight || d->out_features < 1)
    return fail (c,
                 "got weight %s, out_features %" G_GINT64_FORMAT
                 "; expected a weight (out_features, %" G_GINT64_FORMAT
                 ") and out_features >= 1",
                 d->weight ? "set" : "NULL", d->out_features,
                 x->shape[x->ndim - 1]);
  memcpy (shape, x->shape, sizeof shape);
  shape[x->ndim - 1] = d->out_features;
  return set_shape (c, x->ndim, shape);
}

static gboolean
matmul_shape (const ShapeCall *c)
{
  const EeTensorDesc *a = c->in[0], *b = c->in[1];
  int nd = a->ndim;
  int64_t shape[3];
  char sa[64], sb[64];

  if (!need_ndim (c, a, 2, 3, "2 or 3 ([B,]M,K)"))
    return FALSE;
  if (b->ndim != nd || a->shape[nd - 1] != b->shape[nd - 2]
      || (nd == 3 && a->shape[0] != b->shape[0]))
    return fail (c,
                 "got %s times %s; expected ([B,]M,K) times ([B,]K,N) with "
                 "equal B and K",
                 ee_tensor_desc_shape_str (a, sa, sizeof sa),
                 ee_tensor_desc_shape_str (b, sb, sizeof sb));
  memcpy (shape, a->shape, sizeof shape);
  shape[nd - 1] = b->shape[nd - 1];
  return set_shape (c, nd, shape);
}

static gboolean
layernorm_shape (const ShapeCall *c)
{
  if (!(c->d->eps >= 0.0f))
    return fail (c, "got eps %g, expected eps >= 0", c->d->eps);
  return same_shape (c);
}

static gboolean
binary_shape (const ShapeCall *c)
{
  const EeTensorDesc *a = c->in[0], *b = c->in[1];
  gboolean same = a->ndim == b->ndim;
  char sa[64], sb[64];

  for (int i = 0; same && i < a->ndim; i++)
    same = a->shape[i] == b->shape[i];
  if (!same)
    return fail (c, "got shapes %s and %s, expected equal shapes",
                 ee_tensor_desc_shape_str (a, sa, sizeof sa),
                 ee_tensor_desc_shape_str (b, sb, sizeof sb));
  return same_shape (c);
}

static gboolean
film_shape (const ShapeCall *c)
{
  const EeTensorDesc *x = c->in[0], *g = c->in[1], *b = c->in[2];
  char sx[64], sg[64], sb[64];

  if (!need_ndim (c, x, 4, 4, NCHW))
    return FALSE;
  for (int i = 1; i < 3; i++) {
    const EeTensorDesc *t = c->in[i];

    if (t->ndim != 2 || t->shape[0] != x->shape[0]
        || t->shape[1] != x->shape[1])
      return fail (c,
                   "got x %s, gamma %s, beta %s; expected gamma and beta of "
                   "shape (%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ")",
                   ee_tensor_desc_shape_str (x, sx, sizeof sx),
                   ee_tensor_desc_shape_str (g, sg, sizeof sg),
                   ee_tensor_desc_shape_str (b, sb, sizeof sb), x->shape[0],
                   x->shape[1]);
  }
  return same_shape (c);
}

static gboolean
concat_shape (const ShapeCall *c)
{
  const EeTensorDesc *x = c->in[0];
  int64_t shape[EE_MAX_DIMS];
  char sa[64], sb[64];

  if (!need_ndim (c, x, 2, 4, "2 to 4 (N,C,...)"))
    return FALSE;
  memcpy (shape, x->shape, sizeof shape);
  for (int i = 1; i < c->n_in; i++) {
    const EeTensorDesc *t = c->in[i];
    gboolean same = t->ndim == x->ndim;

    for (int k = 0; same && k < x->ndim; k++)
      same = k == 1 || t->shape[k] == x->shape[k];
    if (!same)
      return fail (c,
                   "input %d has shape %s, expected the shape of input 0 (%s) "
                   "but for channels",
                   i, ee_tensor_desc_shape_str (t, sa, sizeof sa),
                   ee_tensor_desc_shape_str (x, sb, sizeof sb));
    shape[1] += t->shape[1];
  }
  return set_shape (c, x->ndim, shape);
}

static gboolean
patchify_shape (const ShapeCall *c)
{
  const EeTensorDesc *x = c->in[0];
  int64_t p = c->d->patch;

  if (!need_ndim (c, x, 4, 4, NCHW))
    return FALSE;
  if (p < 1 || x->shape[2] % p || x->shape[3] % p)
    return fail (c,
                 "got patch %d for H=%" G_GINT64_FORMAT ", W=%" G_GINT64_FORMAT
                 "; expected a patch >= 1 dividing H and W",
                 c->d->patch, x->shape[2], x->shape[3]);
  return set_shape (c, 3,
                    (const int64_t[3]){ x->shape[0],
                                        (x->shape[2] / p) * (x->shape[3] / p),
                                        p * p * x->shape[1] });
}

static gboolean
upsample_shape (const ShapeCall *c)
{
  const EeTensorDesc *x = c->in[0];
  int64_t f = c->d->factor;

  if (f < 1)
    return fail (c, "got factor %d, expected >= 1", c->d->factor);
  return need_ndim (c, x, 4, 4, NCHW)
         && set_shape (c, 4,
                       (const int64_t[4]){ x->shape[0], x->shape[1],
                                           x->shape[2] * f, x->shape[3] * f });
}

static gboolean
sum_shape (const ShapeCall *c)
{
  return set_shape (c, 2, (const int64_t[2]){ c->in[0]->shape[0], 1 });
}

/* Inputs each op kind takes (-1: one or more) and its output shape. */
static const struct
{
  int n_inputs;
  gboolean (*shape) (const ShapeCall *c);
} rules[EE_OP_N_KINDS] = {
  [EE_OP_CONV2D] = { 1, conv_shape },
  [EE_OP_MAXPOOL] = { 1, pool_shape },
  [EE_OP_AVGPOOL] = { 1, pool_shape },
  [EE_OP_GLOBAL_AVGPOOL] = { 1, global_avgpool_shape },
  [EE_OP_BATCHNORM] = { 1, batchnorm_shape },
  [EE_OP_LINEAR] = { 1, linear_shape },
  [EE_OP_MATMUL] = { 2, matmul_shape },
  [EE_OP_LAYERNORM] = { 1, layernorm_shape },
  [EE_OP_SOFTMAX] = { 1, same_shape },
  [EE_OP_GELU] = { 1, same_shape },
  [EE_OP_RELU] = { 1, same_shape },
  [EE_OP_ADD] = { 2, binary_shape },
  [EE_OP_MUL] = { 2, binary_shape },
  [EE_OP_FILM] = { 3, film_shape },
  [EE_OP_CONCAT] = { -1, concat_shape },
  [EE_OP_PATCHIFY] = { 1, patchify_shape },
  [EE_OP_UPSAMPLE_NEAREST] = { 1, upsample_shape },
  [EE_OP_SUM] = { 1, sum_shape },
  [EE_OP_REORDER] = { 1, same_shape },
};

/* What every rule may assume: the input count, an activation it knows, and
 * inputs of 1 to EE_MAX_DIMS dims of at least one element each. */
static gboolean
check_inputs (const ShapeCall *c)
{
  int want = rules[c->d->kind].n_inputs;

  if ((want > 0 && c->n_in != want) || c->n_in < 1 || !c->in)
    return fail (c, "got %d inputs, expected %s%d", c->n_in,
                 want > 0 ? "" : "at least ", want > 0 ? want : 1);
  if (c->d->act < EE_ACT_NONE || c->d->act > EE_ACT_GELU)
    return fail (c, "unknown activation %d", c->d->act);
  for (int i = 0; i < c->n_in; i++) {
    const EeTensorDesc *t = c->in[i];

    if (!t)
      return fail (c, "input %d is NULL", i);
    if (t->ndim < 1 || t->ndim > EE_MAX_DIMS)
      return fail (c, "input %d has %d dims, expected 1 to %d", i, t->ndim,
                   EE_MAX_DIMS);
    for (int k = 0; k < t->ndim; k++)
      if (t->shape[k] < 1)
        return fail (c,
                     "input %d has size %" G_GINT64_FORMAT
                     " in dim %d, expected at least 1",
                     i, t->shape[k], k);
  }
  return TRUE;
}

gboolean
ee_op_output_shape (const char *backend, const EeOpDesc *desc,
                    const EeTensorDesc *const *in, int n_in, int *ndim,
                    int64_t *shape, GError **error)
{
  ShapeCall c = { backend, desc, in, n_in, ndim, shape, error };

  if (!desc || desc->kind < 0 || desc->kind >= EE_OP_N_KINDS) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT, "%s backend: op_new: %s",
                 backend, !desc ? "NULL description" : "unknown op kind");
    return FALSE;
  }
  return check_inputs (&c) && rules[desc->kind].shape (&c);
}

/* ---- ops ---- */

/* Every backend's struct _EeOp starts with its EeOpHead. */
static EeOpHead *
op_head (EeOp *op)
{
  return (EeOpHead *)op;
}

EeOp *
ee_backend_op_new (EeBackend *be, const EeOpDesc *desc,
                   const EeTensorDesc *const *in, int n_in, EeTensorDesc *out,
                   GError **error)
{
  const EeBackendVTable *vt = be->vt;
  EeOpHead head = { 0 };
  EeOp *op;

  if (!out) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s backend: op_new: NULL output description", vt->name);
    return NULL;
  }
  if (!ee_op_output_shape (vt->name, desc, in, n_in, &head.out_ndim,
                           head.out_shape, error))
    return NULL;
  for (int i = 0; i < n_in; i++)
    if (!vt->op_check_input (be, desc->kind, i, in[i], error))
      return NULL;
  head.desc = *desc;
  head.desc.weight = head.desc.bias = NULL;
  head.desc.mean = head.desc.var = NULL;
  head.desc.name = NULL;
  if (head.desc.alpha == 0.0f)
    head.desc.alpha = 1.0f;
  head.n_inputs = n_in;

  op = g_malloc0 (vt->op_size);
  *op_head (op) = head;
  if (!vt->op_init (be, op, desc, in, out, error)) {
    vt->op_free (be, op);
    return NULL;
  }
  return op;
}

gboolean
ee_backend_op_enqueue (EeBackend *be, EeOp *op, const EeTensor *const *in,
                       int n_in, const EeTensor *out, GError **error)
{
  const EeOpHead *head = op_head (op);
  const char *name = ee_op_kind_name (head->desc.kind);

  if (n_in != head->n_inputs || !in || !out || !out->data) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s backend: %s: enqueued with %d inputs%s, prepared for %d",
                 be->vt->name, name, n_in,
                 !out || !out->data ? " and no output" : "", head->n_inputs);
    return FALSE;
  }
  for (int i = 0; i < n_in; i++) {
    if (!in[i] || !in[i]->data) {
      g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                   "%s backend: %s: input %d has no data", be->vt->name, name,
                   i);
      return FALSE;
    }
  }
  return be->vt->op_enqueue (be, op, in, n_in, out, error);
}
