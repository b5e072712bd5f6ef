/* gst-earlyexit: backend-independent helpers of the op interface. */
#include "ee-backend.h"

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

static void arg_error (GError **error, const char *backend, EeOpKind kind,
                       const char *format, ...) G_GNUC_PRINTF (4, 5);

static void
arg_error (GError **error, const char *backend, EeOpKind kind,
           const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  ee_op_arg_errorv (error, backend, kind, format, ap);
  va_end (ap);
}

gboolean
ee_op_check_ndim (GError **error, const char *backend, EeOpKind kind,
                  const EeTensorDesc *t, int lo, int hi, const char *what)
{
  char buf[64];

  if (t->ndim >= lo && t->ndim <= hi)
    return TRUE;
  arg_error (error, backend, kind, "input of shape %s has %d dims, expected %s",
             ee_tensor_desc_shape_str (t, buf, sizeof buf), t->ndim, what);
  return FALSE;
}
