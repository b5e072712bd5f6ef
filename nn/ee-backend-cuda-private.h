/* gst-earlyexit: internals shared by the files of the CUDA backend module.
 *
 * ee-backend-cuda.c holds the backend object (device, stream, handles),
 * memory, copies, events and the op plumbing (checks, input adapters,
 * parameter upload, enqueue); ee-backend-cuda-dnn.c the cuDNN ops
 * (convolution, pooling), ee-backend-cuda-blas.c the cuBLAS ones (linear,
 * matmul) and ee-backend-cuda-kern.c the ops on kernels/.
 *
 * Layouts: every tensor is read through an EeKView (four dimensions,
 * strides in elements). Convolutions and pooling keep activations in NHWC
 * when the backend computes on tensor cores (tf32, fp16, bf16) and in NCHW
 * for fp32; an NHWC tensor is EE_LAYOUT_BACKEND with a CudaLayout that gives
 * its strides, so the other ops read it in place. */
#ifndef EE_BACKEND_CUDA_PRIVATE_H
#define EE_BACKEND_CUDA_PRIVATE_H

#include "ee-backend-cuda.h"
#include "ee-backend-private.h"
#include "ee-kernels.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

G_BEGIN_DECLS

typedef struct
{
  EeBackend parent;
  int device;
  EePrecision precision;
  EeDType dtype;      /* of activations and weights */
  gboolean nhwc;      /* layout of convolution activations */
  gboolean conv_find; /* time the algorithms (else heuristics) */
  gboolean poison;    /* fill new device memory with NaN */
  cudaStream_t stream;
  cudnnHandle_t dnn;
  cublasHandle_t blas;
  cudaEvent_t synced; /* recorded and waited on by sync */

  /* One workspace for every cuDNN call of the instance, since its stream
   * runs one op at a time; grown by op_new up to workspace_limit. */
  void *workspace;
  size_t workspace_size;
  size_t workspace_limit;

  /* Page-locked buffers that stage downloads into pageable memory: the
   * copy lands in one, a host function on the stream moves it on. Free
   * ones are reused; the lock guards `staging_free`, which host functions
   * (on a driver thread) return buffers to. */
  GMutex staging_lock;
  GSList *staging_free;
  GPtrArray *staging_all;

  /* Device copy of the last preprocessed frame. */
  void *frame;
  size_t frame_size;

  /* Parameters prepared by ops, kept once: a model loaded twice on one
   * instance (the engine's batched copy) shares its weights. Key (a digest
   * of the values, layout and dtype) -> CudaShared. */
  GHashTable *shared;
} CudaBackend;

/* One prepared parameter buffer and the ops that read it. */
typedef struct
{
  GHashTable *table; /* the instance's `shared` */
  char *key;
  void *dev;
  int refs;
} CudaShared;

/* The description of an NHWC tensor in EE_LAYOUT_BACKEND. */
typedef struct
{
  guint32 magic;
  const CudaBackend *be; /* the instance that made it */
  int64_t shape[4];
  int64_t stride[4];
} CudaLayout;

#define CUDA_LAYOUT_MAGIC 0x45454e48u /* "EENH" */

/* How an op reads one input: in place, or through a copy (type conversion
 * and/or layout change) into a buffer the op owns. */
typedef struct
{
  gboolean convert;
  EeKView from; /* the input as it arrives */
  EeDType from_dtype;
  EeKView to; /* the copy, in the backend's dtype */
  void *scratch;
} CudaInput;

/* A strided (batched) GEMM in cuBLAS's column-major terms. Operand `a` is
 * the weight (linear) or input 1 (matmul), `b` input 0. */
typedef struct
{
  cublasOperation_t trans_a, trans_b;
  int m, n, k;
  int lda, ldb, ldc;
  long long stride_a, stride_b, stride_c;
  int batch;
  float alpha;
} CudaGemm;

typedef gboolean (*CudaRunFunc) (CudaBackend *be, EeOp *op,
                                 const void *const *in, void *out,
                                 GError **error);

struct _EeOp
{
  EeOpHead head;
  CudaInput *in;     /* n_inputs */
  const void **ptrs; /* n_inputs: where each input is read */
  EeKView view[3];   /* inputs 0..2 as the op reads them */
  EeKView out_view;
  CudaLayout out_layout; /* layout_desc of an NHWC output */
  CudaRunFunc run;
  GPtrArray *bufs;   /* device buffers the op owns */
  GPtrArray *shared; /* CudaShared parameters the op reads */

  /* Parameters in device memory, in the backend's dtype */
  void *weight;
  void *bias;
  void *shift;
  double *partial; /* SUM: per-block sums */

  /* cuDNN */
  cudnnTensorDescriptor_t x_desc, y_desc, b_desc;
  cudnnFilterDescriptor_t w_desc;
  cudnnConvolutionDescriptor_t conv_desc;
  cudnnActivationDescriptor_t act_desc;
  cudnnPoolingDescriptor_t pool_desc;
  cudnnConvolutionFwdAlgo_t algo;
  size_t ws_size;
  gboolean fused; /* bias + ReLU inside the convolution */

  CudaGemm gemm;
  EeKPool pool;
};

/* ---- errors ---- */

/* Each checks a status, naming the op (may be NULL), the function and the
 * source line; failures become EE_ERROR_BACKEND, or EE_ERROR_NO_MEMORY for
 * allocation failures. */
gboolean cuda_check (cudaError_t st, const EeOp *op, const char *call,
                     const char *file, int line, GError **error);
gboolean cuda_dnn_check (cudnnStatus_t st, const EeOp *op, const char *call,
                         const char *file, int line, GError **error);
gboolean cuda_blas_check (cublasStatus_t st, const EeOp *op, const char *call,
                          const char *file, int line, GError **error);

#define CUDA_CHECK(op, error, fn, ...)                                         \
  cuda_check (fn (__VA_ARGS__), (op), #fn, __FILE__, __LINE__, (error))
#define DNN_CHECK(op, error, fn, ...)                                          \
  cuda_dnn_check (fn (__VA_ARGS__), (op), #fn, __FILE__, __LINE__, (error))
#define BLAS_CHECK(op, error, fn, ...)                                         \
  cuda_blas_check (fn (__VA_ARGS__), (op), #fn, __FILE__, __LINE__, (error))

void cuda_arg_error (const EeOp *op, GError **error, const char *format, ...)
    G_GNUC_PRINTF (3, 4);

/* ---- memory ---- */

/* Device memory; `what` names it in the out-of-memory error. */
void *cuda_malloc (CudaBackend *be, const EeOp *op, size_t nbytes,
                   const char *what, GError **error);
/* Device memory the op owns (freed with it). */
void *cuda_buffer_new (CudaBackend *be, EeOp *op, size_t nbytes,
                       const char *what, GError **error);
/* A host float32 parameter (contiguous, of `from`'s shape) copied into a
 * buffer in the backend's dtype, laid out as `to` (a dense view of the same
 * shape), that the op reads for its life. The same values laid out the same
 * way are copied once per instance and shared. Waits for the copy: op_new
 * may block. */
void *cuda_param_new (CudaBackend *be, EeOp *op, const float *host,
                      const EeKView *to, const char *what, GError **error);
/* A vector of n parameters: host, or `fill` everywhere when host is NULL. */
void *cuda_vector_new (CudaBackend *be, EeOp *op, const float *host, float fill,
                       int64_t n, const char *what, GError **error);
/* Makes the backend workspace at least nbytes. */
gboolean cuda_workspace_reserve (CudaBackend *be, const EeOp *op, size_t nbytes,
                                 GError **error);

/* ---- views and layouts ---- */

EeKDType cuda_kdtype (EeDType dtype);
size_t cuda_dtype_size (EeDType dtype);
/* The backend's dtype as cuDNN and CUDA (cuBLAS) name it. */
cudnnDataType_t cuda_dnn_dtype (const CudaBackend *be);
cudaDataType cuda_blas_dtype (const CudaBackend *be);

/* t as four dimensions, lower ranks right-aligned: (A) -> (1,1,1,A). */
void cuda_view_right (const EeTensorDesc *t, EeKView *v);
/* t as (N, C, ...): (N) -> (N,1,1,1), (N,C) -> (N,C,1,1),
 * (N,C,L) -> (N,C,1,L), 4-d unchanged. */
void cuda_view_nc (const EeTensorDesc *t, EeKView *v);
void cuda_view_contiguous (EeKView *v, const int64_t *shape);
void cuda_view_nhwc (EeKView *v, const int64_t *shape);
/* Same shape and memory order (strides of size-1 dimensions ignored). */
gboolean cuda_view_same (const EeKView *a, const EeKView *b);
gboolean cuda_view_is_nhwc (const EeKView *v);
/* Row-major without gaps. */
gboolean cuda_view_is_contiguous (const EeKView *v);

/* Makes input i readable in the backend's dtype: through `want` (a dense
 * layout of its shape) when given, else in its own layout when the dtype
 * already matches, else contiguous. Sets op->view[i]. */
gboolean cuda_input (CudaBackend *be, EeOp *op, int i, const EeTensorDesc *t,
                     const EeKView *have, const EeKView *want, GError **error);

/* Output descriptions, in the backend's dtype. */
void cuda_out_plain (EeOp *op, CudaBackend *be, int ndim, const int64_t *shape,
                     EeTensorDesc *out);
void cuda_out_nhwc (EeOp *op, CudaBackend *be, const int64_t *shape,
                    EeTensorDesc *out);
/* The output of an op that keeps its input's layout: NHWC when input 0
 * is read in place in NHWC, else plain contiguous of t's shape. */
void cuda_out_like (EeOp *op, CudaBackend *be, const EeTensorDesc *t,
                    EeTensorDesc *out);

/* Checks a kernels/ entry's status like CUDA_CHECK. */
#define KERNEL_CHECK(op, error, fn, ...)                                       \
  cuda_check (fn (__VA_ARGS__), (op), #fn, __FILE__, __LINE__, (error))

/* ---- builders, one per op family (ee-backend-private.h) ----
 *
 * cuda_<family>_new. ee_op_output_shape has checked the arguments and
 * cuda_op_check_input in ee-backend-cuda.c the data types, strides and
 * layouts; what the builders still check are the limits of cuDNN, cuBLAS
 * and the kernels. */

typedef EE_OP_BUILDER (CudaBackend, (*CudaBuilder));
EE_OP_DECLARE_BUILDERS (CudaBackend, cuda)

/* Releases what the cuDNN builders created. */
void cuda_dnn_op_clear (EeOp *op);

G_END_DECLS
#endif /* EE_BACKEND_CUDA_PRIVATE_H */
