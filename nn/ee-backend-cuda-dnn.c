/* gst-earlyexit: CUDA backend ops on cuDNN: convolution and pooling.
 *
 * These use cuDNN's descriptor API (cudnnConvolutionForward,
 * cudnnConvolutionBiasActivationForward, cudnnPoolingForward). cuDNN 9 marks
 * it deprecated in favour of the graph API but ships it complete, and its
 * semantics (algorithm choice, workspace, fused bias + ReLU) are exactly
 * what an inference op needs.
 *
 * Convolution: the algorithm is chosen once, in op_new, by timing the
 * candidates on scratch buffers (cudnnFindConvolutionForwardAlgorithmEx)
 * or, with EE_CUDA_CONV_SEARCH=heuristic, from cuDNN's heuristics; either
 * way within the workspace limit (EE_CUDA_WORKSPACE_MB, 256 by default).
 * The fp32 reference precision keeps to FMA math and to the GEMM and direct
 * algorithms: FFT and Winograd lose more than its tolerance allows. ReLU and
 * the bias run inside the convolution where cuDNN can fuse them (checked by
 * a trial run in op_new); otherwise, and for GELU, an epilogue kernel
 * follows.
 *
 * Pooling: cuDNN takes the windows of floor mode when a trial call shows it
 * handles the data type; ceil mode's extra windows, and whatever cuDNN
 * refuses, go to the kernel with PyTorch's edge rules. */
#define G_LOG_DOMAIN "earlyexit-cuda"

#include "ee-backend-cuda-private.h"

#include <string.h>

static const float one = 1.0f, zero = 0.0f;

void
cuda_dnn_op_clear (EeOp *op)
{
  if (op->x_desc)
    cudnnDestroyTensorDescriptor (op->x_desc);
  if (op->y_desc)
    cudnnDestroyTensorDescriptor (op->y_desc);
  if (op->b_desc)
    cudnnDestroyTensorDescriptor (op->b_desc);
  if (op->w_desc)
    cudnnDestroyFilterDescriptor (op->w_desc);
  if (op->conv_desc)
    cudnnDestroyConvolutionDescriptor (op->conv_desc);
  if (op->act_desc)
    cudnnDestroyActivationDescriptor (op->act_desc);
  if (op->pool_desc)
    cudnnDestroyPoolingDescriptor (op->pool_desc);
}

/* cuDNN takes dimensions as int. */
static gboolean
dims_fit (const EeOp *op, const int64_t *shape, GError **error)
{
  for (int i = 0; i < 4; i++) {
    if (shape[i] > G_MAXINT) {
      cuda_arg_error (op, error,
                      "dimension %d is %" G_GINT64_FORMAT
                      ", cuDNN takes at most %d",
                      i, shape[i], G_MAXINT);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
tensor_desc (EeOp *op, cudnnTensorDescriptor_t *desc, cudnnTensorFormat_t fmt,
             cudnnDataType_t dt, const int64_t *s, GError **error)
{
  return DNN_CHECK (op, error, cudnnCreateTensorDescriptor, desc)
         && DNN_CHECK (op, error, cudnnSetTensor4dDescriptor, *desc, fmt, dt,
                       (int)s[0], (int)s[1], (int)s[2], (int)s[3]);
}

/* ---- convolution ---- */

static gboolean
conv_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
          GError **error)
{
  const EeKView *y = &op->out_view;

  if (op->fused)
    /* z is y with alpha2 = 0: cuDNN adds no side input. */
    return DNN_CHECK (op, error, cudnnConvolutionBiasActivationForward, be->dnn,
                      &one, op->x_desc, in[0], op->w_desc, op->weight,
                      op->conv_desc, op->algo, be->workspace, op->ws_size,
                      &zero, op->y_desc, out, op->b_desc, op->bias,
                      op->act_desc, op->y_desc, out);
  if (!DNN_CHECK (op, error, cudnnConvolutionForward, be->dnn, &one, op->x_desc,
                  in[0], op->w_desc, op->weight, op->conv_desc, op->algo,
                  be->workspace, op->ws_size, &zero, op->y_desc, out))
    return FALSE;
  if (!op->bias && op->head.desc.act == EE_ACT_NONE)
    return TRUE;
  return KERNEL_CHECK (op, error, ee_k_bias_act, out,
                       y->shape[0] * y->shape[1] * y->shape[2] * y->shape[3],
                       y->shape[1], be->nhwc ? 1 : y->shape[2] * y->shape[3],
                       op->bias, (EeKAct)op->head.desc.act,
                       cuda_kdtype (be->dtype), be->stream);
}

static gboolean
algo_allowed (const CudaBackend *be, cudnnConvolutionFwdAlgo_t algo)
{
  if (be->precision != EE_PRECISION_FP32)
    return TRUE;
  return algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM
         || algo == CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM
         || algo == CUDNN_CONVOLUTION_FWD_ALGO_GEMM
         || algo == CUDNN_CONVOLUTION_FWD_ALGO_DIRECT;
}

/* Chooses op->algo and op->ws_size; x and y are scratch tensors of the
 * op's shapes for timing. */
static gboolean
conv_pick_algo (CudaBackend *be, EeOp *op, void *x, void *y, GError **error)
{
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  size_t limit = be->workspace_limit, free_b = 0, total_b = 0;
  int n = 0;
  gboolean ok;

  if (be->conv_find) {
    void *ws = NULL;

    /* Leave room for the model: time within half of what is free. */
    if (CUDA_CHECK (op, error, cudaMemGetInfo, &free_b, &total_b))
      limit = MIN (limit, free_b / 2);
    else
      return FALSE;
    if (limit) {
      ws = cuda_malloc (be, op, limit, "timing convolution algorithms", error);
      if (!ws)
        return FALSE;
    }
    ok = DNN_CHECK (op, error, cudnnFindConvolutionForwardAlgorithmEx, be->dnn,
                    op->x_desc, x, op->w_desc, op->weight, op->conv_desc,
                    op->y_desc, y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf,
                    ws, limit);
    if (ws)
      cudaFree (ws);
  } else {
    ok = DNN_CHECK (op, error, cudnnGetConvolutionForwardAlgorithm_v7, be->dnn,
                    op->x_desc, op->w_desc, op->conv_desc, op->y_desc,
                    CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf);
  }
  if (!ok)
    return FALSE;
  /* Results come best first. */
  for (int i = 0; i < n; i++) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > limit
        || !algo_allowed (be, perf[i].algo))
      continue;
    op->algo = perf[i].algo;
    /* The math type the timing used; fp32 stays on FMA. What the call
     * itself asks for then bounds the workspace, not only the timing. */
    if ((be->precision != EE_PRECISION_FP32
         && !DNN_CHECK (op, error, cudnnSetConvolutionMathType, op->conv_desc,
                        perf[i].mathType))
        || !DNN_CHECK (op, error, cudnnGetConvolutionForwardWorkspaceSize,
                       be->dnn, op->x_desc, op->w_desc, op->conv_desc,
                       op->y_desc, op->algo, &op->ws_size))
      return FALSE;
    op->ws_size = MAX (op->ws_size, perf[i].memory);
    return cuda_workspace_reserve (be, op, op->ws_size, error);
  }
  g_set_error (
      error, EE_ERROR, EE_ERROR_UNSUPPORTED,
      "cuda backend: conv2d: cuDNN offers no %s algorithm for this shape "
      "within a workspace of %zu bytes (EE_CUDA_WORKSPACE_MB raises it)",
      ee_precision_name (be->precision), limit);
  return FALSE;
}

/* Tries the fused bias + ReLU call on the scratch tensors: cuDNN supports
 * it for some data types, layouts and algorithms only, and says so at the
 * call. */
static gboolean
conv_try_fused (CudaBackend *be, EeOp *op, void *x, void *y, GError **error)
{
  cudnnStatus_t st;

  if (!DNN_CHECK (op, error, cudnnCreateActivationDescriptor, &op->act_desc)
      || !DNN_CHECK (op, error, cudnnSetActivationDescriptor, op->act_desc,
                     CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0))
    return FALSE;
  st = cudnnConvolutionBiasActivationForward (
      be->dnn, &one, op->x_desc, x, op->w_desc, op->weight, op->conv_desc,
      op->algo, be->workspace, op->ws_size, &zero, op->y_desc, y, op->b_desc,
      op->bias, op->act_desc, op->y_desc, y);
  op->fused = st == CUDNN_STATUS_SUCCESS;
  if (!op->fused)
    g_info ("conv2d: cuDNN cannot fuse bias + ReLU here (%s), using an "
            "epilogue kernel",
            cudnnGetErrorString (st));
  return TRUE;
}

EE_OP_BUILDER (CudaBackend, cuda_conv_new)
{
  const EeTensorDesc *x = in[0];
  const cudnnTensorFormat_t fmt
      = be->nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  const cudnnDataType_t dt = cuda_dnn_dtype (be);
  const int64_t *ys = op->head.out_shape;
  int64_t o = d->out_features, xs[4], ws[4];
  int got[4];
  EeKView have, want, wv;
  void *x_tmp = NULL, *y_tmp = NULL;
  size_t esize = cuda_dtype_size (be->dtype);
  gboolean ok;

  memcpy (xs, x->shape, sizeof xs);
  ws[0] = o;
  ws[1] = xs[1];
  ws[2] = d->kernel_size[0];
  ws[3] = d->kernel_size[1];
  if (!dims_fit (op, ys, error) || !dims_fit (op, ws, error))
    return FALSE;
  if (ys[0] * ys[1] * ys[2] * ys[3] >= EE_K_MAX_NUMEL) {
    cuda_arg_error (op, error,
                    "the output has %" G_GINT64_FORMAT
                    " elements, at most %" G_GINT64_FORMAT " are supported",
                    ys[0] * ys[1] * ys[2] * ys[3], EE_K_MAX_NUMEL - 1);
    return FALSE;
  }

  /* Input and weights in the convolution layout, parameters uploaded. */
  cuda_view_right (x, &have);
  if (be->nhwc) {
    cuda_view_nhwc (&want, xs);
    cuda_view_nhwc (&wv, ws);
  } else {
    cuda_view_contiguous (&want, xs);
    cuda_view_contiguous (&wv, ws);
  }
  if (!cuda_input (be, op, 0, x, &have, &want, error))
    return FALSE;
  op->weight = cuda_param_new (be, op, d->weight, &wv, "conv weights", error);
  if (!op->weight)
    return FALSE;
  /* The fused call needs a bias, zeros if the layer has none. */
  if (d->bias || d->act == EE_ACT_RELU) {
    op->bias = cuda_vector_new (be, op, d->bias, 0.0f, o, "conv bias", error);
    if (!op->bias)
      return FALSE;
  }

  /* TF32 is what CUDNN_DEFAULT_MATH allows on float data on Ampere and
   * newer; fp32 forbids it with FMA math. */
  ok = tensor_desc (op, &op->x_desc, fmt, dt, xs, error)
       && tensor_desc (op, &op->y_desc, fmt, dt, ys, error)
       && (!op->bias
           || tensor_desc (op, &op->b_desc, CUDNN_TENSOR_NCHW, dt,
                           (const int64_t[4]){ 1, o, 1, 1 }, error))
       && DNN_CHECK (op, error, cudnnCreateFilterDescriptor, &op->w_desc)
       && DNN_CHECK (op, error, cudnnSetFilter4dDescriptor, op->w_desc, dt, fmt,
                     (int)ws[0], (int)ws[1], (int)ws[2], (int)ws[3])
       && DNN_CHECK (op, error, cudnnCreateConvolutionDescriptor,
                     &op->conv_desc)
       && DNN_CHECK (op, error, cudnnSetConvolution2dDescriptor, op->conv_desc,
                     d->pad[0], d->pad[1], d->stride[0], d->stride[1],
                     d->dilation[0], d->dilation[1], CUDNN_CROSS_CORRELATION,
                     CUDNN_DATA_FLOAT)
       && DNN_CHECK (op, error, cudnnSetConvolutionMathType, op->conv_desc,
                     be->precision == EE_PRECISION_FP32 ? CUDNN_FMA_MATH
                     : be->precision == EE_PRECISION_TF32
                         ? CUDNN_DEFAULT_MATH
                         : CUDNN_TENSOR_OP_MATH)
       && DNN_CHECK (op, error, cudnnGetConvolution2dForwardOutputDim,
                     op->conv_desc, op->x_desc, op->w_desc, &got[0], &got[1],
                     &got[2], &got[3]);
  if (!ok)
    return FALSE;
  for (int i = 0; i < 4; i++) {
    if (got[i] != ys[i]) {
      cuda_arg_error (op, error,
                      "cuDNN computes an output of %dx%dx%dx%d, PyTorch's "
                      "rules %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                      "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT,
                      got[0], got[1], got[2], got[3], ys[0], ys[1], ys[2],
                      ys[3]);
      return FALSE;
    }
  }

  x_tmp = cuda_malloc (be, op, (size_t)(xs[0] * xs[1] * xs[2] * xs[3]) * esize,
                       "a scratch input for choosing the algorithm", error);
  y_tmp = x_tmp ? cuda_malloc (
              be, op, (size_t)(ys[0] * ys[1] * ys[2] * ys[3]) * esize,
              "a scratch output for choosing the algorithm", error)
                : NULL;
  ok = y_tmp
       && CUDA_CHECK (op, error, cudaMemsetAsync, x_tmp, 0,
                      (size_t)(xs[0] * xs[1] * xs[2] * xs[3]) * esize,
                      be->stream)
       && conv_pick_algo (be, op, x_tmp, y_tmp, error)
       && (d->act != EE_ACT_RELU
           || conv_try_fused (be, op, x_tmp, y_tmp, error))
       && CUDA_CHECK (op, error, cudaStreamSynchronize, be->stream);
  /* After a failure the stream may still use them: wait for it first. */
  cudaStreamSynchronize (be->stream);
  if (x_tmp)
    cudaFree (x_tmp);
  if (y_tmp)
    cudaFree (y_tmp);
  if (!ok)
    return FALSE;

  if (be->nhwc)
    cuda_out_nhwc (op, be, ys, out);
  else
    cuda_out_plain (op, be, 4, ys, out);
  op->run = conv_run;
  return TRUE;
}

/* ---- pooling ---- */

static gboolean
pool_dnn_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
              GError **error)
{
  return DNN_CHECK (op, error, cudnnPoolingForward, be->dnn, op->pool_desc,
                    &one, op->x_desc, in[0], &zero, op->y_desc, out);
}

static gboolean
pool_kernel_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
                 GError **error)
{
  return KERNEL_CHECK (op, error, ee_k_pool, in[0], op->view[0], out,
                       op->out_view, &op->pool, cuda_kdtype (be->dtype),
                       be->stream);
}

static int64_t
count4 (const int64_t *s)
{
  return s[0] * s[1] * s[2] * s[3];
}

/* cuDNN's pooling for this data type and layout, if a trial call on
 * scratch tensors succeeds; else the kernel, which reads the same input. */
static gboolean
pool_try_dnn (CudaBackend *be, EeOp *op, const int64_t *xs, const int64_t *os,
              GError **error)
{
  const size_t esize = cuda_dtype_size (be->dtype);
  void *x = cuda_malloc (be, op, (size_t)count4 (xs) * esize,
                         "a scratch input for trying cuDNN pooling", error);
  void *y = x ? cuda_malloc (be, op, (size_t)count4 (os) * esize,
                             "a scratch output for trying cuDNN pooling", error)
              : NULL;
  cudnnStatus_t st = CUDNN_STATUS_NOT_SUPPORTED;
  gboolean ok = y != NULL;

  if (ok) {
    ok = CUDA_CHECK (op, error, cudaMemsetAsync, x, 0,
                     (size_t)count4 (xs) * esize, be->stream);
    if (ok)
      st = cudnnPoolingForward (be->dnn, op->pool_desc, &one, op->x_desc, x,
                                &zero, op->y_desc, y);
    ok = CUDA_CHECK (op, error, cudaStreamSynchronize, be->stream) && ok;
  }
  if (x)
    cudaFree (x);
  if (y)
    cudaFree (y);
  if (!ok)
    return FALSE;
  op->run = st == CUDNN_STATUS_SUCCESS ? pool_dnn_run : pool_kernel_run;
  if (st != CUDNN_STATUS_SUCCESS)
    g_info ("%s: cuDNN cannot pool here (%s), using the kernel",
            ee_op_kind_name (op->head.desc.kind), cudnnGetErrorString (st));
  return TRUE;
}

/* Windows cuDNN computes the same way: those of floor mode. */
static gboolean
pool_dnn_new (CudaBackend *be, EeOp *op, const EeOpDesc *d,
              const EeTensorDesc *x, const int64_t *os, EeTensorDesc *out,
              GError **error)
{
  const cudnnDataType_t dt = cuda_dnn_dtype (be);
  cudnnPoolingMode_t mode = d->kind == EE_OP_MAXPOOL ? CUDNN_POOLING_MAX
                            : d->count_include_pad
                                ? CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING
                                : CUDNN_POOLING_AVERAGE_COUNT_EXCLUDE_PADDING;
  cudnnTensorFormat_t fmt;
  EeKView have, want;
  int got[4];
  gboolean nhwc;

  /* cuDNN reads dense NCHW or NHWC; anything else is copied first. */
  cuda_view_right (x, &have);
  if (be->nhwc)
    cuda_view_nhwc (&want, have.shape);
  else
    cuda_view_contiguous (&want, have.shape);
  if (!cuda_input (be, op, 0, x, &have,
                   x->dtype == be->dtype
                           && (cuda_view_is_nhwc (&have)
                               || cuda_view_is_contiguous (&have))
                       ? NULL
                       : &want,
                   error))
    return FALSE;
  /* Where both describe the memory (C = 1 or H = W = 1), say NCHW. */
  nhwc = !cuda_view_is_contiguous (&op->view[0]);
  fmt = nhwc ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  if (!dims_fit (op, have.shape, error)
      || !tensor_desc (op, &op->x_desc, fmt, dt, have.shape, error)
      || !tensor_desc (op, &op->y_desc, fmt, dt, os, error)
      || !DNN_CHECK (op, error, cudnnCreatePoolingDescriptor, &op->pool_desc)
      || !DNN_CHECK (op, error, cudnnSetPooling2dDescriptor, op->pool_desc,
                     mode, CUDNN_PROPAGATE_NAN, d->kernel[0], d->kernel[1],
                     d->pad[0], d->pad[1], d->stride[0], d->stride[1])
      || !DNN_CHECK (op, error, cudnnGetPooling2dForwardOutputDim,
                     op->pool_desc, op->x_desc, &got[0], &got[1], &got[2],
                     &got[3]))
    return FALSE;
  for (int i = 0; i < 4; i++) {
    if (got[i] != os[i]) {
      cuda_arg_error (
          op, error,
          "cuDNN pools to %dx%dx%dx%d, PyTorch's rules give %" G_GINT64_FORMAT
          "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT,
          got[0], got[1], got[2], got[3], os[0], os[1], os[2], os[3]);
      return FALSE;
    }
  }
  if (nhwc)
    cuda_out_nhwc (op, be, os, out);
  else
    cuda_out_plain (op, be, 4, os, out);
  return pool_try_dnn (be, op, have.shape, os, error);
}

EE_OP_BUILDER (CudaBackend, cuda_pool_new)
{
  const EeTensorDesc *x = in[0];
  const int64_t *os = op->head.out_shape;
  int64_t pad_r[2];
  EeKView have;

  for (int i = 0; i < 2; i++) {
    op->pool.kernel[i] = d->kernel[i];
    op->pool.stride[i] = d->stride[i];
    op->pool.pad[i] = d->pad[i];
    pad_r[i] = ee_op_pool_pad_end (d, i, x->shape[2 + i], os[2 + i]);
  }
  op->pool.max = d->kind == EE_OP_MAXPOOL;
  op->pool.count_include_pad = d->count_include_pad;
  if (pad_r[0] == d->pad[0] && pad_r[1] == d->pad[1])
    return pool_dnn_new (be, op, d, x, os, out, error);

  /* Ceil mode added a window: PyTorch's edge rules, in a kernel that reads
   * any layout. */
  cuda_view_right (x, &have);
  if (!cuda_input (be, op, 0, x, &have, NULL, error))
    return FALSE;
  if (x->layout == EE_LAYOUT_BACKEND && !op->in[0].convert)
    cuda_out_nhwc (op, be, os, out);
  else
    cuda_out_plain (op, be, 4, os, out);
  op->run = pool_kernel_run;
  return TRUE;
}
