/* gst-earlyexit: CUDA backend ops on cuBLAS: linear layers and batched
 * matmul.
 *
 * cuBLAS is column-major; a row-major matrix is the column-major view of its
 * transpose, so C = A B (row-major) is computed as C^T = B^T A^T. A matmul
 * operand is read in place when one of its two strides is 1 (a row-major
 * matrix, or a transposed view such as K^T in attention) and its batches
 * are evenly strided; other views are copied contiguous first. Compute is
 * fp32 (FAST_TF32 in tf32 precision); fp16/bf16 operands accumulate in fp32
 * on tensor cores. */
#include "ee-backend-cuda-private.h"

static cublasComputeType_t
compute_type (const CudaBackend *be)
{
  return be->precision == EE_PRECISION_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                            : CUBLAS_COMPUTE_32F;
}

/* C = op (A) op (B) for the pointers given; alpha and beta are floats for
 * every fp32 compute type. */
static gboolean
gemm (CudaBackend *be, EeOp *op, const void *a, const void *b, void *c,
      GError **error)
{
  const CudaGemm *g = &op->gemm;
  const cudaDataType dt = cuda_blas_dtype (be);
  const float beta = 0.0f;

  if (g->batch == 1)
    return BLAS_CHECK (op, error, cublasGemmEx, be->blas, g->trans_a,
                       g->trans_b, g->m, g->n, g->k, &g->alpha, a, dt, g->lda,
                       b, dt, g->ldb, &beta, c, dt, g->ldc, compute_type (be),
                       CUBLAS_GEMM_DEFAULT);
  return BLAS_CHECK (op, error, cublasGemmStridedBatchedEx, be->blas,
                     g->trans_a, g->trans_b, g->m, g->n, g->k, &g->alpha, a, dt,
                     g->lda, g->stride_a, b, dt, g->ldb, g->stride_b, &beta, c,
                     dt, g->ldc, g->stride_c, g->batch, compute_type (be),
                     CUBLAS_GEMM_DEFAULT);
}

static gboolean
fits_int (const EeOp *op, const char *what, int64_t v, GError **error)
{
  if (v <= G_MAXINT)
    return TRUE;
  cuda_arg_error (op, error,
                  "%s is %" G_GINT64_FORMAT ", cuBLAS takes at most %d", what,
                  v, G_MAXINT);
  return FALSE;
}

/* ---- linear ---- */

static gboolean
linear_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
            GError **error)
{
  const CudaGemm *g = &op->gemm;

  if (!gemm (be, op, op->weight, in[0], out, error))
    return FALSE;
  if (!op->bias && op->head.desc.act == EE_ACT_NONE)
    return TRUE;
  return KERNEL_CHECK (op, error, ee_k_bias_act, out, (int64_t)g->m * g->n,
                       g->m, 1, op->bias, (EeKAct)op->head.desc.act,
                       cuda_kdtype (be->dtype), be->stream);
}

EE_OP_BUILDER (CudaBackend, cuda_linear_new)
{
  const EeTensorDesc *x = in[0];
  int64_t k = x->shape[x->ndim - 1], m = d->out_features, rows = 1;
  EeKView have, want, wv;
  CudaGemm *g = &op->gemm;

  for (int i = 0; i < x->ndim - 1; i++)
    rows *= x->shape[i];
  if (!fits_int (op, "out_features", m, error)
      || !fits_int (op, "the row count", rows, error)
      || !fits_int (op, "in_features", k, error)
      || !fits_int (op, "the output size", rows * m, error))
    return FALSE;
  /* Leading dims fold into rows of one GEMM over dense rows. */
  cuda_view_right (x, &have);
  cuda_view_contiguous (&want, have.shape);
  if (!cuda_input (be, op, 0, x, &have, &want, error))
    return FALSE;
  cuda_view_contiguous (&wv, (const int64_t[4]){ 1, 1, m, k });
  op->weight = cuda_param_new (be, op, d->weight, &wv, "linear weights", error);
  if (!op->weight)
    return FALSE;
  if (d->bias) {
    op->bias = cuda_vector_new (be, op, d->bias, 0.0f, m, "linear bias", error);
    if (!op->bias)
      return FALSE;
  }
  /* Y^T (M x rows) = W (M x K, the transpose of W^T column-major) X^T */
  g->trans_a = CUBLAS_OP_T;
  g->trans_b = CUBLAS_OP_N;
  g->m = (int)m;
  g->n = (int)rows;
  g->k = (int)k;
  g->lda = (int)k;
  g->ldb = (int)k;
  g->ldc = (int)m;
  g->batch = 1;
  g->alpha = 1.0f;
  cuda_out_plain (op, be, op->head.out_ndim, op->head.out_shape, out);
  op->run = linear_run;
  return TRUE;
}

/* ---- matmul ---- */

/* How cuBLAS can read a rows x cols matrix with strides (sr, sc): row-major
 * (sc 1) or column-major (sr 1), with leading dimension *ld. */
static gboolean
operand_of (int64_t rows, int64_t cols, int64_t sr, int64_t sc,
            gboolean *row_major, int64_t *ld)
{
  if ((cols == 1 || sc == 1) && (rows == 1 || sr >= cols)) {
    *row_major = TRUE;
    *ld = rows == 1 ? cols : sr;
  } else if ((rows == 1 || sr == 1) && (cols == 1 || sc >= rows)) {
    *row_major = FALSE;
    *ld = cols == 1 ? rows : sc;
  } else {
    return FALSE;
  }
  return *ld >= 1 && *ld <= G_MAXINT;
}

static gboolean
matmul_run (CudaBackend *be, EeOp *op, const void *const *in, void *out,
            GError **error)
{
  /* cuBLAS's A is our second operand. */
  return gemm (be, op, in[1], in[0], out, error);
}

EE_OP_BUILDER (CudaBackend, cuda_matmul_new)
{
  const EeTensorDesc *a = in[0], *b = in[1];
  int nd = a->ndim;
  int64_t batch, mm, nn, kk;
  gboolean row_major[2];
  int64_t ld[2];
  CudaGemm *g = &op->gemm;

  batch = nd == 3 ? a->shape[0] : 1;
  mm = a->shape[nd - 2];
  kk = a->shape[nd - 1];
  nn = b->shape[nd - 1];
  if (!fits_int (op, "the batch", batch, error)
      || !fits_int (op, "M", mm, error) || !fits_int (op, "N", nn, error)
      || !fits_int (op, "K", kk, error))
    return FALSE;
  for (int i = 0; i < 2; i++) {
    EeKView have, want;
    const EeKView *use = NULL;

    /* (B,R,C) -> (1,B,R,C): dims 2 and 3 are the matrix, 1 the batch. */
    cuda_view_right (in[i], &have);
    if (in[i]->layout != EE_LAYOUT_PLAIN || in[i]->dtype != be->dtype
        || !operand_of (have.shape[2], have.shape[3], have.stride[2],
                        have.stride[3], &row_major[i], &ld[i])) {
      cuda_view_contiguous (&want, have.shape);
      use = &want;
    }
    if (!cuda_input (be, op, i, in[i], &have, use, error))
      return FALSE;
    if (use) {
      row_major[i] = TRUE;
      ld[i] = have.shape[3];
    }
  }
  g->m = (int)nn;
  g->n = (int)mm;
  g->k = (int)kk;
  g->trans_a = row_major[1] ? CUBLAS_OP_N : CUBLAS_OP_T;
  g->lda = (int)ld[1];
  g->trans_b = row_major[0] ? CUBLAS_OP_N : CUBLAS_OP_T;
  g->ldb = (int)ld[0];
  g->ldc = (int)nn;
  g->batch = (int)batch;
  g->stride_a = batch > 1 ? op->view[1].stride[1] : 0;
  g->stride_b = batch > 1 ? op->view[0].stride[1] : 0;
  g->stride_c = mm * nn;
  g->alpha = d->alpha == 0.0f ? 1.0f : d->alpha;
  cuda_out_plain (op, be, nd, op->head.out_shape, out);
  op->run = matmul_run;
  return TRUE;
}
