/* gst-earlyexit: CUDA backend ops on the kernels of kernels/.
 *
 * The kernels read any strided view, so most ops take their inputs where
 * they are (NHWC from a convolution, a transposed or sliced plain view) and
 * only convert F32 inputs to the backend's dtype. Layer norm and softmax
 * want contiguous rows. Elementwise ops, FiLM, batch norm and upsampling
 * keep an NHWC input's layout for their output. */
#include "ee-backend-cuda-private.h"

#include <math.h>
#include <string.h>

static EeKDType
kdt (const CudaBackend *be)
{
  return cuda_kdtype (be->dtype);
}

static int64_t
numel (const EeKView *v)
{
  return v->shape[0] * v->shape[1] * v->shape[2] * v->shape[3];
}

/* ---- global average pooling ---- */

static gboolean
global_avgpool_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
                    GError **error)
{
  return KERNEL_CHECK (op, error, ee_k_global_avgpool, in[0], op->view[0], out,
                       kdt (be), be->stream);
}

EE_OP_BUILDER (CudaBackend, cuda_global_avgpool_new)
{
  EeKView have;

  if (in[0]->shape[0] > 65535) {
    cuda_arg_error (op, error,
                    "a batch of %" G_GINT64_FORMAT ", at most 65535 supported",
                    in[0]->shape[0]);
    return FALSE;
  }
  cuda_view_right (in[0], &have);
  if (!cuda_input (be, op, 0, in[0], &have, NULL, error))
    return FALSE;
  cuda_out_plain (op, be, 4, op->head.out_shape, out);
  op->run = global_avgpool_run;
  return TRUE;
}

/* ---- batch norm: a per-channel affine map prepared on the host ---- */

static gboolean
affine_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
            GError **error)
{
  return KERNEL_CHECK (op, error, ee_k_channel_affine, in[0], op->view[0],
                       op->weight, op->shift, 0, 1, (EeKAct)op->head.desc.act,
                       out, op->out_view, kdt (be), be->stream);
}

EE_OP_BUILDER (CudaBackend, cuda_batchnorm_new)
{
  const EeTensorDesc *x = in[0];
  int64_t c = x->ndim > 1 ? x->shape[1] : 0;
  float *scale, *shift;
  EeKView have;

  /* y = x * scale + shift, folded in double like ee_fold_batchnorm. */
  scale = g_new (float, c);
  shift = g_new (float, c);
  for (int64_t i = 0; i < c; i++) {
    double s
        = (d->weight ? d->weight[i] : 1.0) / sqrt ((double)d->var[i] + d->eps);

    scale[i] = (float)s;
    shift[i] = (float)((d->bias ? d->bias[i] : 0.0) - d->mean[i] * s);
  }
  op->weight
      = cuda_vector_new (be, op, scale, 0.0f, c, "batch norm scale", error);
  op->shift = op->weight ? cuda_vector_new (be, op, shift, 0.0f, c,
                                            "batch norm shift", error)
                         : NULL;
  g_free (scale);
  g_free (shift);
  if (!op->shift)
    return FALSE;
  cuda_view_nc (x, &have);
  if (!cuda_input (be, op, 0, x, &have, NULL, error))
    return FALSE;
  cuda_out_like (op, be, x, out);
  op->run = affine_run;
  return TRUE;
}

/* ---- layer norm and softmax over contiguous rows ---- */

static gboolean
rows_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
          GError **error)
{
  int64_t dim = op->view[0].shape[3];
  int64_t rows = numel (&op->view[0]) / dim;

  if (op->head.desc.kind == EE_OP_SOFTMAX)
    return KERNEL_CHECK (op, error, ee_k_softmax, in[0], out, rows, dim,
                         kdt (be), be->stream);
  return KERNEL_CHECK (op, error, ee_k_layernorm, in[0], out, rows, dim,
                       op->weight, op->bias, op->head.desc.eps, kdt (be),
                       be->stream);
}

/* Reads input 0 as contiguous rows of its last dim. */
static gboolean
rows_new (CudaBackend *be, EeOp *op, const EeTensorDesc *x, EeTensorDesc *out,
          GError **error)
{
  EeKView have, want;

  cuda_view_right (x, &have);
  cuda_view_contiguous (&want, have.shape);
  if (!cuda_input (be, op, 0, x, &have, &want, error))
    return FALSE;
  cuda_out_plain (op, be, x->ndim, x->shape, out);
  op->run = rows_run;
  return TRUE;
}

EE_OP_BUILDER (CudaBackend, cuda_layernorm_new)
{
  const EeTensorDesc *x = in[0];
  int64_t dim = x->shape[x->ndim - 1];

  if (d->weight) {
    op->weight = cuda_vector_new (be, op, d->weight, 1.0f, dim,
                                  "layer norm gamma", error);
    if (!op->weight)
      return FALSE;
  }
  if (d->bias) {
    op->bias = cuda_vector_new (be, op, d->bias, 0.0f, dim, "layer norm beta",
                                error);
    if (!op->bias)
      return FALSE;
  }
  return rows_new (be, op, x, out, error);
}

EE_OP_BUILDER (CudaBackend, cuda_softmax_new)
{
  return rows_new (be, op, in[0], out, error);
}

/* ---- GELU, ReLU ---- */

static gboolean
eltwise_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
             GError **error)
{
  return KERNEL_CHECK (
      op, error, ee_k_unary,
      op->head.desc.kind == EE_OP_RELU ? EE_K_ACT_RELU : EE_K_ACT_GELU, in[0],
      op->view[0], out, op->out_view, kdt (be), be->stream);
}

EE_OP_BUILDER (CudaBackend, cuda_eltwise_new)
{
  EeKView have;

  cuda_view_right (in[0], &have);
  if (!cuda_input (be, op, 0, in[0], &have, NULL, error))
    return FALSE;
  cuda_out_like (op, be, in[0], out);
  op->run = eltwise_run;
  return TRUE;
}

/* ---- add, mul ---- */

static gboolean
binary_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
            GError **error)
{
  return KERNEL_CHECK (op, error, ee_k_binary,
                       op->head.desc.kind == EE_OP_ADD ? EE_K_ADD : EE_K_MUL,
                       in[0], op->view[0], in[1], op->view[1], out,
                       op->out_view, kdt (be), be->stream);
}

EE_OP_BUILDER (CudaBackend, cuda_binary_new)
{
  EeKView have;

  for (int i = 0; i < 2; i++) {
    cuda_view_right (in[i], &have);
    if (!cuda_input (be, op, i, in[i], &have, NULL, error))
      return FALSE;
  }
  cuda_out_like (op, be, in[0], out);
  op->run = binary_run;
  return TRUE;
}

/* ---- FiLM: y = act (gamma[n,c] * x + beta[n,c]) ---- */

static gboolean
film_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
          GError **error)
{
  const EeKView *g = &op->view[1];

  /* gamma and beta are (N,C), right-aligned into dims 2 and 3, and share
   * their strides (film_new made sure). */
  return KERNEL_CHECK (
      op, error, ee_k_channel_affine, in[0], op->view[0], in[1], in[2],
      g->shape[2] > 1 ? g->stride[2] : 0, g->shape[3] > 1 ? g->stride[3] : 0,
      (EeKAct)op->head.desc.act, out, op->out_view, kdt (be), be->stream);
}

EE_OP_BUILDER (CudaBackend, cuda_film_new)
{
  const EeTensorDesc *x = in[0];
  EeKView have[3], want;
  gboolean same;

  for (int i = 0; i < 3; i++)
    cuda_view_right (in[i], &have[i]);
  /* One pair of parameter strides serves both: unless gamma and beta are
   * laid out alike in the backend's dtype, both are made contiguous. */
  same = in[1]->dtype == be->dtype && in[2]->dtype == be->dtype
         && cuda_view_same (&have[1], &have[2]);
  cuda_view_contiguous (&want, have[1].shape);
  if (!cuda_input (be, op, 0, x, &have[0], NULL, error)
      || !cuda_input (be, op, 1, in[1], &have[1], same ? NULL : &want, error)
      || !cuda_input (be, op, 2, in[2], &have[2], same ? NULL : &want, error))
    return FALSE;
  cuda_out_like (op, be, x, out);
  op->run = film_run;
  return TRUE;
}

/* ---- concat on channels ---- */

static gboolean
concat_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
            GError **error)
{
  const size_t esize = cuda_dtype_size (be->dtype);
  int64_t c0 = 0;

  /* Each input is copied (and converted) into its slice of channels. */
  for (int i = 0; i < op->head.n_inputs; i++) {
    const CudaInput *ci = &op->in[i];
    EeKView dst = op->out_view;

    dst.shape[1] = ci->from.shape[1];
    if (!KERNEL_CHECK (
            op, error, ee_k_copy, in[i], cuda_kdtype (ci->from_dtype), ci->from,
            (char *)out + (size_t)(c0 * op->out_view.stride[1]) * esize,
            kdt (be), dst, be->stream))
      return FALSE;
    c0 += ci->from.shape[1];
  }
  return TRUE;
}

EE_OP_BUILDER (CudaBackend, cuda_concat_new)
{
  int n = op->head.n_inputs;
  gboolean all_nhwc = TRUE;

  for (int i = 0; i < n; i++) {
    /* The copies convert as they go: inputs are read where they are. */
    cuda_view_nc (in[i], &op->in[i].from);
    op->in[i].from_dtype = in[i]->dtype;
    all_nhwc = all_nhwc && in[i]->layout == EE_LAYOUT_BACKEND;
  }
  if (all_nhwc) {
    cuda_out_nhwc (op, be, op->head.out_shape, out);
  } else {
    EeKView nc;

    cuda_out_plain (op, be, op->head.out_ndim, op->head.out_shape, out);
    cuda_view_nc (out, &nc);
    op->out_view = nc;
  }
  op->run = concat_run;
  return TRUE;
}

/* ---- patchify ---- */

static gboolean
patchify_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
              GError **error)
{
  return KERNEL_CHECK (op, error, ee_k_patchify, in[0], op->view[0], out,
                       op->head.desc.patch, kdt (be), be->stream);
}

EE_OP_BUILDER (CudaBackend, cuda_patchify_new)
{
  EeKView have;

  cuda_view_right (in[0], &have);
  if (!cuda_input (be, op, 0, in[0], &have, NULL, error))
    return FALSE;
  cuda_out_plain (op, be, 3, op->head.out_shape, out);
  op->run = patchify_run;
  return TRUE;
}

/* ---- nearest upsampling ---- */

static gboolean
upsample_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
              GError **error)
{
  return KERNEL_CHECK (op, error, ee_k_upsample_nearest, in[0], op->view[0],
                       out, op->out_view, op->head.desc.factor, kdt (be),
                       be->stream);
}

EE_OP_BUILDER (CudaBackend, cuda_upsample_new)
{
  const EeTensorDesc *x = in[0];
  const int64_t *shape = op->head.out_shape;
  EeKView have;

  if (shape[0] * shape[1] * shape[2] * shape[3] >= EE_K_MAX_NUMEL) {
    cuda_arg_error (op, error,
                    "the output has %" G_GINT64_FORMAT
                    " elements, at most %" G_GINT64_FORMAT " are supported",
                    shape[0] * shape[1] * shape[2] * shape[3],
                    EE_K_MAX_NUMEL - 1);
    return FALSE;
  }
  cuda_view_right (x, &have);
  if (!cuda_input (be, op, 0, x, &have, NULL, error))
    return FALSE;
  if (x->layout == EE_LAYOUT_BACKEND && !op->in[0].convert)
    cuda_out_nhwc (op, be, shape, out);
  else
    cuda_out_plain (op, be, 4, shape, out);
  op->run = upsample_run;
  return TRUE;
}

/* ---- sum of each batch item ---- */

static gboolean
sum_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
         GError **error)
{
  return KERNEL_CHECK (op, error, ee_k_sum, in[0], op->view[0],
                       op->head.desc.alpha, op->partial, out, kdt (be),
                       be->stream);
}

EE_OP_BUILDER (CudaBackend, cuda_sum_new)
{
  EeKView have;
  int64_t per;

  if (in[0]->shape[0] > 65535) {
    cuda_arg_error (op, error,
                    "a batch of %" G_GINT64_FORMAT ", at most 65535 supported",
                    in[0]->shape[0]);
    return FALSE;
  }
  cuda_view_nc (in[0], &have);
  per = have.shape[1] * have.shape[2] * have.shape[3];
  op->partial = cuda_buffer_new (
      be, op, sizeof (double) * (size_t)(have.shape[0] * ee_k_sum_blocks (per)),
      "partial sums", error);
  if (!op->partial || !cuda_input (be, op, 0, in[0], &have, NULL, error))
    return FALSE;
  cuda_out_plain (op, be, 2, op->head.out_shape, out);
  op->run = sum_run;
  return TRUE;
}

/* ---- reorder: any layout and dtype to plain contiguous F32 ---- */

static gboolean
reorder_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
             GError **error)
{
  const CudaInput *ci = &op->in[0];

  return KERNEL_CHECK (op, error, ee_k_copy, in[0],
                       cuda_kdtype (ci->from_dtype), ci->from, out, EE_K_F32,
                       op->out_view, be->stream);
}

EE_OP_BUILDER (CudaBackend, cuda_reorder_new)
{
  const EeTensorDesc *x = in[0];

  /* The copy converts on its way: the input is read where it is. */
  cuda_view_right (x, &op->in[0].from);
  op->in[0].from_dtype = x->dtype;
  *out = ee_tensor_desc_plain (EE_DTYPE_F32, x->ndim, x->shape);
  cuda_view_contiguous (&op->out_view, op->in[0].from.shape);
  op->run = reorder_run;
  return TRUE;
}
