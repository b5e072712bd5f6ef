/* gst-earlyexit: the CUDA backend (module libearlyexit-cuda.so).
 *
 * One instance owns one non-blocking CUDA stream and a cuDNN and a cuBLAS
 * handle bound to it, so instances on one device run independently.
 * Uploads, downloads and ops only enqueue on the stream; events are CUDA
 * events (blocking-sync, so a waiting thread sleeps instead of spinning).
 * A download into pageable host memory goes through a page-locked staging
 * buffer and a host function on the stream, so it stays asynchronous too.
 *
 * Ops are prepared in op_new: parameters converted to the backend's dtype
 * and layout on the device, cuDNN algorithms chosen, buffers for input
 * conversions allocated. op_enqueue only launches. Every CUDA, cuDNN and
 * cuBLAS status is checked and returned as a GError naming the call and the
 * source line: the module runs inside someone else's process. */
#define G_LOG_DOMAIN "earlyexit-cuda"

#include "ee-backend-cuda-private.h"

#include <stdarg.h>
#include <string.h>

/* The module passes the runtime's EeDType straight to the kernels. */
G_STATIC_ASSERT ((int)EE_DTYPE_F32 == (int)EE_K_F32);
G_STATIC_ASSERT ((int)EE_DTYPE_F16 == (int)EE_K_F16);
G_STATIC_ASSERT ((int)EE_DTYPE_BF16 == (int)EE_K_BF16);
G_STATIC_ASSERT ((int)EE_PIXEL_RGB == (int)EE_K_PIXEL_RGB);
G_STATIC_ASSERT ((int)EE_PIXEL_RGBX == (int)EE_K_PIXEL_RGBX);
G_STATIC_ASSERT ((int)EE_PIXEL_BGRX == (int)EE_K_PIXEL_BGRX);

#define DEFAULT_WORKSPACE_MB 256
#define STAGING_ROUND (64 * 1024)

struct _EeEvent
{
  cudaEvent_t ev;
  gboolean recorded;
};

/* ---- errors ---- */

static void
set_error (GError **error, int code, const EeOp *op, const char *call,
           const char *file, int line, const char *what)
{
  g_set_error (error, EE_ERROR, code, "cuda backend: %s%s%s failed (%s:%d): %s",
               op ? ee_op_kind_name (op->head.desc.kind) : "", op ? ": " : "",
               call, file, line, what);
}

gboolean
cuda_check (cudaError_t st, const EeOp *op, const char *call, const char *file,
            int line, GError **error)
{
  char *what;

  if (st == cudaSuccess)
    return TRUE;
  /* Clear the error the runtime keeps for cudaGetLastError, so the launch
   * checks that follow do not report it again (sticky errors stay). */
  (void)cudaGetLastError ();
  what = g_strdup_printf ("%s (%s)", cudaGetErrorString (st),
                          cudaGetErrorName (st));
  set_error (error,
             st == cudaErrorMemoryAllocation ? EE_ERROR_NO_MEMORY
                                             : EE_ERROR_BACKEND,
             op, call, file, line, what);
  g_free (what);
  return FALSE;
}

gboolean
cuda_dnn_check (cudnnStatus_t st, const EeOp *op, const char *call,
                const char *file, int line, GError **error)
{
  char detail[512] = "";
  char *what;

  if (st == CUDNN_STATUS_SUCCESS)
    return TRUE;
  /* cuDNN 9 says why in its last-error string. */
  cudnnGetLastErrorString (detail, sizeof detail);
  what = g_strdup_printf ("%s%s%s", cudnnGetErrorString (st),
                          detail[0] ? ": " : "", detail);
  set_error (error,
             st == CUDNN_STATUS_ALLOC_FAILED ? EE_ERROR_NO_MEMORY
                                             : EE_ERROR_BACKEND,
             op, call, file, line, what);
  g_free (what);
  return FALSE;
}

gboolean
cuda_blas_check (cublasStatus_t st, const EeOp *op, const char *call,
                 const char *file, int line, GError **error)
{
  if (st == CUBLAS_STATUS_SUCCESS)
    return TRUE;
  set_error (error,
             st == CUBLAS_STATUS_ALLOC_FAILED ? EE_ERROR_NO_MEMORY
                                              : EE_ERROR_BACKEND,
             op, call, file, line, cublasGetStatusString (st));
  return FALSE;
}

void
cuda_arg_error (const EeOp *op, GError **error, const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  ee_op_arg_errorv (error, "cuda", op->head.desc.kind, format, ap);
  va_end (ap);
}

/* ---- memory ---- */

static gboolean
use_device (CudaBackend *be, GError **error)
{
  /* The calling thread may last have used another device. */
  return CUDA_CHECK (NULL, error, cudaSetDevice, be->device);
}

void *
cuda_malloc (CudaBackend *be, const EeOp *op, size_t nbytes, const char *what,
             GError **error)
{
  void *p = NULL;
  cudaError_t st;
  size_t free_b = 0, total_b = 0;

  /* A zero-sized tensor still needs a distinct pointer. */
  st = cudaMalloc (&p, nbytes ? nbytes : 256);
  if (st == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError ();
    (void)cudaMemGetInfo (&free_b, &total_b);
    g_set_error (error, EE_ERROR, EE_ERROR_NO_MEMORY,
                 "cuda backend: %s%sout of device memory: %zu bytes (%.1f MiB) "
                 "asked for %s on device %d, %.1f MiB free of %.1f MiB",
                 op ? ee_op_kind_name (op->head.desc.kind) : "", op ? ": " : "",
                 nbytes, nbytes / 1048576.0, what, be->device,
                 free_b / 1048576.0, total_b / 1048576.0);
    return NULL;
  }
  if (!cuda_check (st, op, "cudaMalloc", __FILE__, __LINE__, error))
    return NULL;
  /* Poisoned memory reads as NaN in every dtype: a kernel that reads what
   * nobody wrote then shows in the results. */
  if (be->poison
      && !CUDA_CHECK (op, error, cudaMemsetAsync, p, 0xff,
                      nbytes ? nbytes : 256, be->stream)) {
    cudaFree (p);
    return NULL;
  }
  return p;
}

void *
cuda_buffer_new (CudaBackend *be, EeOp *op, size_t nbytes, const char *what,
                 GError **error)
{
  void *p = cuda_malloc (be, op, nbytes, what, error);

  if (p)
    g_ptr_array_add (op->bufs, p);
  return p;
}

static void
shared_release (gpointer data)
{
  CudaShared *s = data;

  if (--s->refs > 0)
    return;
  g_hash_table_remove (s->table, s->key);
  cudaFree (s->dev);
  g_free (s->key);
  g_free (s);
}

/* The key of `host` laid out as `to` in the backend's dtype. */
static char *
param_key (CudaBackend *be, const float *host, size_t host_bytes,
           const EeKView *to)
{
  GChecksum *sum = g_checksum_new (G_CHECKSUM_SHA256);
  char *key;

  g_checksum_update (sum, (const guchar *)host, host_bytes);
  key = g_strdup_printf (
      "%s/%d/%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT
      ",%" G_GINT64_FORMAT "/%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT
      ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT,
      g_checksum_get_string (sum), (int)be->dtype, to->shape[0], to->shape[1],
      to->shape[2], to->shape[3], to->stride[0], to->stride[1], to->stride[2],
      to->stride[3]);
  g_checksum_free (sum);
  return key;
}

void *
cuda_param_new (CudaBackend *be, EeOp *op, const float *host, const EeKView *to,
                const char *what, GError **error)
{
  int64_t n = to->shape[0] * to->shape[1] * to->shape[2] * to->shape[3];
  size_t host_bytes = (size_t)n * sizeof (float);
  char *key = param_key (be, host, host_bytes, to);
  CudaShared *shared = g_hash_table_lookup (be->shared, key);
  EeKView from;
  void *dst, *tmp;
  gboolean ok;

  if (shared) {
    g_free (key);
    shared->refs++;
    g_ptr_array_add (op->shared, shared);
    return shared->dev;
  }
  dst = cuda_malloc (be, op, (size_t)n * cuda_dtype_size (be->dtype), what,
                     error);
  if (!dst) {
    g_free (key);
    return NULL;
  }
  shared = g_new0 (CudaShared, 1);
  shared->table = be->shared;
  shared->key = key;
  shared->dev = dst;
  shared->refs = 1;
  g_hash_table_insert (be->shared, key, shared);
  /* released with the op, also when the copy below fails */
  g_ptr_array_add (op->shared, shared);
  /* Conversion and layout change run on the device, from a float32 copy. */
  tmp = cuda_malloc (be, op, host_bytes, what, error);
  if (!tmp)
    return NULL;
  cuda_view_contiguous (&from, to->shape);
  ok = CUDA_CHECK (op, error, cudaMemcpyAsync, tmp, host, host_bytes,
                   cudaMemcpyHostToDevice, be->stream)
       && KERNEL_CHECK (op, error, ee_k_copy, tmp, EE_K_F32, from, dst,
                        cuda_kdtype (be->dtype), *to, be->stream)
       && CUDA_CHECK (op, error, cudaStreamSynchronize, be->stream);
  cudaFree (tmp);
  return ok ? dst : NULL;
}

void *
cuda_vector_new (CudaBackend *be, EeOp *op, const float *host, float fill,
                 int64_t n, const char *what, GError **error)
{
  float *values = NULL;
  EeKView v;
  void *p;

  if (!host) {
    values = g_new (float, n);
    for (int64_t i = 0; i < n; i++)
      values[i] = fill;
  }
  cuda_view_contiguous (&v, (const int64_t[4]){ 1, 1, 1, n });
  p = cuda_param_new (be, op, host ? host : values, &v, what, error);
  g_free (values);
  return p;
}

gboolean
cuda_workspace_reserve (CudaBackend *be, const EeOp *op, size_t nbytes,
                        GError **error)
{
  void *p;

  if (nbytes <= be->workspace_size)
    return TRUE;
  p = cuda_malloc (be, op, nbytes, "the cuDNN workspace", error);
  if (!p)
    return FALSE;
  /* cudaFree waits for the device, so no enqueued op still uses it. */
  if (be->workspace)
    cudaFree (be->workspace);
  be->workspace = p;
  be->workspace_size = nbytes;
  return TRUE;
}

/* ---- views and layouts ---- */

EeKDType
cuda_kdtype (EeDType dtype)
{
  return (EeKDType)dtype;
}

size_t
cuda_dtype_size (EeDType dtype)
{
  return ee_dtype_size (dtype);
}

cudnnDataType_t
cuda_dnn_dtype (const CudaBackend *be)
{
  switch (be->dtype) {
    case EE_DTYPE_F16:
      return CUDNN_DATA_HALF;
    case EE_DTYPE_BF16:
      return CUDNN_DATA_BFLOAT16;
    case EE_DTYPE_F32:
    case EE_DTYPE_U8: /* not a CUDA tensor type */
    case EE_DTYPE_S8:
      break;
  }
  return CUDNN_DATA_FLOAT;
}

cudaDataType
cuda_blas_dtype (const CudaBackend *be)
{
  switch (be->dtype) {
    case EE_DTYPE_F16:
      return CUDA_R_16F;
    case EE_DTYPE_BF16:
      return CUDA_R_16BF;
    case EE_DTYPE_F32:
    case EE_DTYPE_U8: /* not a CUDA tensor type */
    case EE_DTYPE_S8:
      break;
  }
  return CUDA_R_32F;
}

static gboolean
layout_of (const EeTensorDesc *t, const CudaLayout **l)
{
  *l = t->layout == EE_LAYOUT_BACKEND ? t->layout_desc : NULL;
  return *l != NULL;
}

void
cuda_view_right (const EeTensorDesc *t, EeKView *v)
{
  const CudaLayout *l;
  int off = 4 - t->ndim;

  if (layout_of (t, &l)) {
    memcpy (v->shape, l->shape, sizeof v->shape);
    memcpy (v->stride, l->stride, sizeof v->stride);
    return;
  }
  for (int i = 0; i < 4; i++) {
    v->shape[i] = i < off ? 1 : t->shape[i - off];
    v->stride[i] = i < off ? 0 : t->stride[i - off];
  }
}

void
cuda_view_nc (const EeTensorDesc *t, EeKView *v)
{
  static const int place[5][4] = {
    { 0 }, { 0, -1, -1, -1 }, { 0, 1, -1, -1 }, { 0, 1, -1, 2 }, { 0, 1, 2, 3 },
  };

  if (t->ndim == 4 || t->layout == EE_LAYOUT_BACKEND) {
    cuda_view_right (t, v);
    return;
  }
  for (int i = 0; i < 4; i++) {
    int src = place[t->ndim][i];

    v->shape[i] = src < 0 ? 1 : t->shape[src];
    v->stride[i] = src < 0 ? 0 : t->stride[src];
  }
}

void
cuda_view_contiguous (EeKView *v, const int64_t *shape)
{
  int64_t s = 1;

  for (int i = 3; i >= 0; i--) {
    v->shape[i] = shape[i];
    v->stride[i] = s;
    s *= shape[i];
  }
}

void
cuda_view_nhwc (EeKView *v, const int64_t *shape)
{
  memcpy (v->shape, shape, sizeof v->shape);
  v->stride[1] = 1;
  v->stride[3] = shape[1];
  v->stride[2] = shape[3] * shape[1];
  v->stride[0] = shape[2] * shape[3] * shape[1];
}

gboolean
cuda_view_same (const EeKView *a, const EeKView *b)
{
  for (int i = 0; i < 4; i++) {
    if (a->shape[i] != b->shape[i])
      return FALSE;
    if (a->shape[i] != 1 && a->stride[i] != b->stride[i])
      return FALSE;
  }
  return TRUE;
}

gboolean
cuda_view_is_nhwc (const EeKView *v)
{
  EeKView n;

  cuda_view_nhwc (&n, v->shape);
  return cuda_view_same (v, &n);
}

gboolean
cuda_view_is_contiguous (const EeKView *v)
{
  EeKView c;

  cuda_view_contiguous (&c, v->shape);
  return cuda_view_same (v, &c);
}

gboolean
cuda_input (CudaBackend *be, EeOp *op, int i, const EeTensorDesc *t,
            const EeKView *have, const EeKView *want, GError **error)
{
  CudaInput *in = &op->in[i];
  EeKView to;
  int64_t n;

  if (t->dtype == be->dtype && (!want || cuda_view_same (have, want))) {
    op->view[i] = *have;
    return TRUE;
  }
  if (want)
    to = *want;
  else
    cuda_view_contiguous (&to, have->shape);
  n = to.shape[0] * to.shape[1] * to.shape[2] * to.shape[3];
  in->scratch
      = cuda_buffer_new (be, op, (size_t)n * cuda_dtype_size (be->dtype),
                         "an input conversion", error);
  if (!in->scratch)
    return FALSE;
  in->convert = TRUE;
  in->from = *have;
  in->from_dtype = t->dtype;
  in->to = to;
  op->view[i] = to;
  return TRUE;
}

void
cuda_out_plain (EeOp *op, CudaBackend *be, int ndim, const int64_t *shape,
                EeTensorDesc *out)
{
  int64_t s4[4] = { 1, 1, 1, 1 };

  *out = ee_tensor_desc_plain (be->dtype, ndim, shape);
  memcpy (s4 + 4 - ndim, shape, sizeof (int64_t) * (size_t)ndim);
  cuda_view_contiguous (&op->out_view, s4);
}

void
cuda_out_nhwc (EeOp *op, CudaBackend *be, const int64_t *shape,
               EeTensorDesc *out)
{
  CudaLayout *l = &op->out_layout;

  l->magic = CUDA_LAYOUT_MAGIC;
  l->be = be;
  cuda_view_nhwc (&op->out_view, shape);
  memcpy (l->shape, op->out_view.shape, sizeof l->shape);
  memcpy (l->stride, op->out_view.stride, sizeof l->stride);
  memset (out, 0, sizeof *out);
  out->dtype = be->dtype;
  out->ndim = 4;
  memcpy (out->shape, shape, sizeof (int64_t) * 4);
  out->layout = EE_LAYOUT_BACKEND;
  out->layout_desc = l;
  out->nbytes = (size_t)(shape[0] * shape[1] * shape[2] * shape[3])
                * cuda_dtype_size (be->dtype);
}

void
cuda_out_like (EeOp *op, CudaBackend *be, const EeTensorDesc *t,
               EeTensorDesc *out)
{
  if (t->layout == EE_LAYOUT_BACKEND && !op->in[0].convert
      && cuda_view_is_nhwc (&op->view[0])) {
    cuda_out_nhwc (op, be, op->view[0].shape, out);
    return;
  }
  cuda_out_plain (op, be, t->ndim, t->shape, out);
  /* Ops that keep the layout address the output as they read input 0. */
  cuda_view_contiguous (&op->out_view, op->view[0].shape);
}

/* ---- the backend table ---- */

static void
cuda_free (EeBackend *base)
{
  CudaBackend *be = (CudaBackend *)base;

  cudaSetDevice (be->device);
  if (be->stream)
    cudaStreamSynchronize (be->stream);
  if (be->blas)
    cublasDestroy (be->blas);
  if (be->dnn)
    cudnnDestroy (be->dnn);
  if (be->synced)
    cudaEventDestroy (be->synced);
  if (be->stream)
    cudaStreamDestroy (be->stream);
  if (be->workspace)
    cudaFree (be->workspace);
  if (be->frame)
    cudaFree (be->frame);
  /* The stream is idle: no host function still holds a staging buffer. */
  if (be->staging_all)
    g_ptr_array_unref (be->staging_all);
  g_slist_free (be->staging_free);
  g_mutex_clear (&be->staging_lock);
  /* every op is freed before its backend, and with it its shared params */
  if (be->shared) {
    g_warn_if_fail (g_hash_table_size (be->shared) == 0);
    g_hash_table_unref (be->shared);
  }
  g_free (be);
}

static void *
cuda_alloc (EeBackend *base, size_t nbytes, GError **error)
{
  CudaBackend *be = (CudaBackend *)base;

  if (!use_device (be, error))
    return NULL;
  return cuda_malloc (be, NULL, nbytes, "a tensor", error);
}

static void
cuda_dealloc (EeBackend *base, void *ptr)
{
  CudaBackend *be = (CudaBackend *)base;

  if (!ptr)
    return;
  cudaSetDevice (be->device);
  cudaFree (ptr);
}

static gboolean
copy_args_ok (const void *dst, const void *src, size_t nbytes, GError **error)
{
  if (nbytes && (!dst || !src)) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "cuda backend: copy of %zu bytes with a NULL pointer", nbytes);
    return FALSE;
  }
  return TRUE;
}

static gboolean
cuda_upload (EeBackend *base, void *dst, const void *host_src, size_t nbytes,
             GError **error)
{
  CudaBackend *be = (CudaBackend *)base;

  if (!copy_args_ok (dst, host_src, nbytes, error) || !nbytes)
    return nbytes == 0;
  return use_device (be, error)
         && CUDA_CHECK (NULL, error, cudaMemcpyAsync, dst, host_src, nbytes,
                        cudaMemcpyHostToDevice, be->stream);
}

typedef struct
{
  CudaBackend *be;
  void *pinned;
  size_t size;
  void *dst; /* pageable destination of the pending copy */
  size_t nbytes;
} Staging;

static void
staging_free (gpointer data)
{
  Staging *s = data;

  cudaFreeHost (s->pinned);
  g_free (s);
}

/* Runs on a CUDA driver thread once the copy into the staging buffer is
 * done; it must not call CUDA. */
static void CUDART_CB
staging_done (void *data)
{
  Staging *s = data;

  memcpy (s->dst, s->pinned, s->nbytes);
  g_mutex_lock (&s->be->staging_lock);
  s->be->staging_free = g_slist_prepend (s->be->staging_free, s);
  g_mutex_unlock (&s->be->staging_lock);
}

static Staging *
staging_take (CudaBackend *be, size_t nbytes, GError **error)
{
  Staging *s = NULL;

  g_mutex_lock (&be->staging_lock);
  for (GSList *l = be->staging_free; l; l = l->next) {
    Staging *c = l->data;

    if (c->size >= nbytes) {
      s = c;
      be->staging_free = g_slist_delete_link (be->staging_free, l);
      break;
    }
  }
  g_mutex_unlock (&be->staging_lock);
  if (s)
    return s;
  s = g_new0 (Staging, 1);
  s->be = be;
  s->size = (nbytes + STAGING_ROUND - 1) / STAGING_ROUND * STAGING_ROUND;
  if (!CUDA_CHECK (NULL, error, cudaHostAlloc, &s->pinned, s->size,
                   cudaHostAllocDefault)) {
    g_free (s);
    return NULL;
  }
  g_ptr_array_add (be->staging_all, s);
  return s;
}

static gboolean
is_pinned (const void *host)
{
  struct cudaPointerAttributes attr;

  if (cudaPointerGetAttributes (&attr, host) != cudaSuccess) {
    (void)cudaGetLastError ();
    return FALSE;
  }
  return attr.type == cudaMemoryTypeHost;
}

static gboolean
cuda_download (EeBackend *base, void *host_dst, const void *src, size_t nbytes,
               GError **error)
{
  CudaBackend *be = (CudaBackend *)base;
  Staging *s;

  if (!copy_args_ok (host_dst, src, nbytes, error) || !nbytes)
    return nbytes == 0;
  if (!use_device (be, error))
    return FALSE;
  if (is_pinned (host_dst))
    return CUDA_CHECK (NULL, error, cudaMemcpyAsync, host_dst, src, nbytes,
                       cudaMemcpyDeviceToHost, be->stream);
  /* A copy into pageable memory would wait for the stream. */
  s = staging_take (be, nbytes, error);
  if (!s)
    return FALSE;
  s->dst = host_dst;
  s->nbytes = nbytes;
  /* On failure the buffer stays out of the free list (a copy into it may
   * still be pending); cuda_free releases it with the others. */
  return CUDA_CHECK (NULL, error, cudaMemcpyAsync, s->pinned, src, nbytes,
                     cudaMemcpyDeviceToHost, be->stream)
         && CUDA_CHECK (NULL, error, cudaLaunchHostFunc, be->stream,
                        staging_done, s);
}

/* What this backend adds to ee_op_output_shape's checks for input i: F32
 * or the backend's dtype, no negative strides, sizes the kernels index, and
 * backend layouts this instance made. */
static gboolean
cuda_op_check_input (EeBackend *base, EeOpKind kind, int i,
                     const EeTensorDesc *t, GError **error)
{
  CudaBackend *be = (CudaBackend *)base;
  const CudaLayout *l;
  int64_t numel = ee_tensor_desc_numel (t);

  if (t->dtype != EE_DTYPE_F32 && t->dtype != be->dtype)
    return ee_op_input_error (error, EE_ERROR_UNSUPPORTED, "cuda", kind, i,
                              "is %s; this backend computes in %s and takes "
                              "F32 or %s",
                              ee_dtype_name (t->dtype),
                              ee_precision_name (be->precision),
                              ee_dtype_name (be->dtype));
  for (int d = 0; d < t->ndim; d++)
    if (t->layout == EE_LAYOUT_PLAIN && t->stride[d] < 0)
      return ee_op_input_error (error, EE_ERROR_ARGUMENT, "cuda", kind, i,
                                "has stride %" G_GINT64_FORMAT
                                " in dim %d, expected a stride of at least 0",
                                t->stride[d], d);
  if (numel >= EE_K_MAX_NUMEL)
    return ee_op_input_error (error, EE_ERROR_UNSUPPORTED, "cuda", kind, i,
                              "has %" G_GINT64_FORMAT
                              " elements; the kernels index at most "
                              "%" G_GINT64_FORMAT,
                              numel, EE_K_MAX_NUMEL - 1);
  if (layout_of (t, &l)) {
    gboolean same = l->magic == CUDA_LAYOUT_MAGIC && l->be == be && t->ndim == 4
                    && t->dtype == be->dtype;

    for (int d = 0; same && d < 4; d++)
      same = l->shape[d] == t->shape[d];
    if (!same)
      return ee_op_input_error (
          error, EE_ERROR_ARGUMENT, "cuda", kind, i,
          "is in a backend layout this backend instance did not make (or "
          "that describes another shape)");
  }
  return TRUE;
}

static void
cuda_op_free (EeBackend *base, EeOp *op)
{
  CudaBackend *be = (CudaBackend *)base;

  cudaSetDevice (be->device);
  cuda_dnn_op_clear (op);
  /* cudaFree waits for the device: no enqueued run still reads these. */
  g_ptr_array_unref (op->bufs);
  g_ptr_array_unref (op->shared);
  g_free (op->in);
  g_free (op->ptrs);
  g_free (op);
}

static void
free_device (gpointer p)
{
  cudaFree (p);
}

static gboolean
cuda_op_init (EeBackend *base, EeOp *op, const EeOpDesc *desc,
              const EeTensorDesc *const *in, EeTensorDesc *out, GError **error)
{
  static const CudaBuilder builders[EE_OP_N_KINDS] = EE_OP_BUILDER_TABLE (cuda);
  CudaBackend *be = (CudaBackend *)base;

  op->in = g_new0 (CudaInput, op->head.n_inputs);
  op->ptrs = g_new0 (const void *, op->head.n_inputs);
  op->bufs = g_ptr_array_new_with_free_func (free_device);
  op->shared = g_ptr_array_new_with_free_func (shared_release);
  return use_device (be, error)
         && builders[desc->kind](be, op, desc, in, out, error);
}

static gboolean
cuda_op_enqueue (EeBackend *base, EeOp *op, const EeTensor *const *inputs,
                 int n_inputs, const EeTensor *out, GError **error)
{
  CudaBackend *be = (CudaBackend *)base;

  if (!use_device (be, error))
    return FALSE;
  for (int i = 0; i < n_inputs; i++) {
    const CudaInput *in = &op->in[i];

    op->ptrs[i] = inputs[i]->data;
    if (in->convert) {
      if (!KERNEL_CHECK (op, error, ee_k_copy, inputs[i]->data,
                         cuda_kdtype (in->from_dtype), in->from, in->scratch,
                         cuda_kdtype (be->dtype), in->to, be->stream))
        return FALSE;
      op->ptrs[i] = in->scratch;
    }
  }
  return op->run (be, op, op->ptrs, out->data, error);
}

static EeEvent *
cuda_event_new (EeBackend *base, GError **error)
{
  CudaBackend *be = (CudaBackend *)base;
  EeEvent *ev = g_new0 (EeEvent, 1);

  if (!use_device (be, error)
      || !CUDA_CHECK (NULL, error, cudaEventCreateWithFlags, &ev->ev,
                      cudaEventBlockingSync)) {
    g_free (ev);
    return NULL;
  }
  return ev;
}

static gboolean
cuda_event_record (EeBackend *base, EeEvent *ev, GError **error)
{
  CudaBackend *be = (CudaBackend *)base;

  if (!use_device (be, error)
      || !CUDA_CHECK (NULL, error, cudaEventRecord, ev->ev, be->stream))
    return FALSE;
  ev->recorded = TRUE;
  return TRUE;
}

static gboolean
cuda_event_query (EeBackend *base, EeEvent *ev)
{
  CudaBackend *be = (CudaBackend *)base;
  cudaError_t st;

  cudaSetDevice (be->device);
  st = cudaEventQuery (ev->ev);
  if (st == cudaErrorNotReady) {
    (void)cudaGetLastError ();
    return FALSE;
  }
  /* Finished, or failed: event_sync then reports the failure. */
  return TRUE;
}

static gboolean
cuda_event_sync (EeBackend *base, EeEvent *ev, GError **error)
{
  CudaBackend *be = (CudaBackend *)base;

  return use_device (be, error)
         && CUDA_CHECK (NULL, error, cudaEventSynchronize, ev->ev);
}

static gboolean
cuda_event_elapsed_ms (EeBackend *base, EeEvent *start, EeEvent *end,
                       double *ms, GError **error)
{
  CudaBackend *be = (CudaBackend *)base;
  float f;

  if (!start->recorded || !end->recorded) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "cuda backend: elapsed time asked of an event never recorded");
    return FALSE;
  }
  if (!use_device (be, error)
      || !CUDA_CHECK (NULL, error, cudaEventElapsedTime, &f, start->ev,
                      end->ev))
    return FALSE;
  *ms = f;
  return TRUE;
}

static void
cuda_event_free (EeBackend *base, EeEvent *ev)
{
  CudaBackend *be = (CudaBackend *)base;

  if (!ev)
    return;
  cudaSetDevice (be->device);
  cudaEventDestroy (ev->ev);
  g_free (ev);
}

static gboolean
cuda_sync (EeBackend *base, GError **error)
{
  CudaBackend *be = (CudaBackend *)base;

  /* Through a blocking-sync event rather than cudaStreamSynchronize, whose
   * waiting (spin or sleep) is a property of the whole device context. */
  return use_device (be, error)
         && CUDA_CHECK (NULL, error, cudaEventRecord, be->synced, be->stream)
         && CUDA_CHECK (NULL, error, cudaEventSynchronize, be->synced);
}

static const EeBackendVTable cuda_vtable = {
  .name = "cuda",
  .op_size = sizeof (EeOp),
  EE_BACKEND_FUNCS (cuda),
};

/* ---- module entry points ---- */

static gboolean no_device (GError **error, const char *format, ...)
    G_GNUC_PRINTF (2, 3);

static gboolean
no_device (GError **error, const char *format, ...)
{
  va_list ap;
  char *msg;

  va_start (ap, format);
  msg = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (error, EE_ERROR, EE_ERROR_BACKEND, "no usable CUDA device: %s",
               msg);
  g_free (msg);
  return FALSE;
}

/* A device this build can run on: kernels are compiled for compute
 * capability 8.0 and 9.0 (plus PTX for newer ones), and bf16 and TF32 need
 * 8.0 anyway. */
static gboolean
device_usable (int device, struct cudaDeviceProp *prop, GError **error)
{
  int count = 0;
  cudaError_t st = cudaGetDeviceCount (&count);
  size_t dnn_version = cudnnGetVersion ();

  if (st != cudaSuccess) {
    (void)cudaGetLastError ();
    return no_device (error, "%s", cudaGetErrorString (st));
  }
  if (count == 0)
    return no_device (error, "the driver reports no device");
  if (device < 0 || device >= count)
    return no_device (error, "device %d asked for, %d present", device, count);
  st = cudaGetDeviceProperties (prop, device);
  if (st != cudaSuccess) {
    (void)cudaGetLastError ();
    return no_device (error, "%s", cudaGetErrorString (st));
  }
  if (prop->major < 8)
    return no_device (error,
                      "device %d (%s) has compute capability %d.%d; this build "
                      "needs 8.0 or newer",
                      device, prop->name, prop->major, prop->minor);
  if (dnn_version / 10000 != CUDNN_MAJOR)
    return no_device (error, "cuDNN %zu is loaded, this build needs cuDNN %d",
                      dnn_version, CUDNN_MAJOR);
  return TRUE;
}

static size_t
env_size_mb (const char *name, size_t fallback)
{
  const char *v = g_getenv (name);
  guint64 n;

  if (v && g_ascii_string_to_unsigned (v, 10, 0, G_MAXSIZE / 1048576, &n, NULL))
    return (size_t)n;
  return fallback;
}

EeBackend *
ee_backend_cuda_module_new (int device, int precision, GError **error)
{
  CudaBackend *be;
  struct cudaDeviceProp prop;
  const char *layout = g_getenv ("EE_CUDA_LAYOUT");
  const char *search = g_getenv ("EE_CUDA_CONV_SEARCH");
  cublasMath_t math;
  gboolean ok;

  if (precision < EE_PRECISION_FP32 || precision > EE_PRECISION_BF16) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "cuda backend: unknown precision %d", precision);
    return NULL;
  }
  if (!device_usable (device, &prop, error))
    return NULL;

  be = g_new0 (CudaBackend, 1);
  be->parent.vt = &cuda_vtable;
  be->device = device;
  be->precision = (EePrecision)precision;
  be->dtype = precision == EE_PRECISION_FP16   ? EE_DTYPE_F16
              : precision == EE_PRECISION_BF16 ? EE_DTYPE_BF16
                                               : EE_DTYPE_F32;
  /* Tensor cores read NHWC natively; plain fp32 runs on FMA units, where
   * cuDNN's NCHW kernels are the mature ones. */
  be->nhwc = precision != EE_PRECISION_FP32;
  if (layout && g_ascii_strcasecmp (layout, "nchw") == 0)
    be->nhwc = FALSE;
  else if (layout && g_ascii_strcasecmp (layout, "nhwc") == 0)
    be->nhwc = TRUE;
  be->conv_find = !(search && g_ascii_strcasecmp (search, "heuristic") == 0);
  be->poison = g_getenv ("EE_CUDA_POISON") != NULL;
  be->workspace_limit
      = env_size_mb ("EE_CUDA_WORKSPACE_MB", DEFAULT_WORKSPACE_MB) * 1048576;
  g_mutex_init (&be->staging_lock);
  be->staging_all = g_ptr_array_new_with_free_func (staging_free);
  be->shared = g_hash_table_new (g_str_hash, g_str_equal);

  /* FP32: no TF32 anywhere. TF32: allowed through the compute type.
   * FP16/BF16: split-K and other reductions stay in fp32, as promised. */
  math = CUBLAS_DEFAULT_MATH;
  if (be->dtype != EE_DTYPE_F32)
    math |= CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
  ok = use_device (be, error)
       && CUDA_CHECK (NULL, error, cudaStreamCreateWithFlags, &be->stream,
                      cudaStreamNonBlocking)
       && CUDA_CHECK (NULL, error, cudaEventCreateWithFlags, &be->synced,
                      cudaEventBlockingSync | cudaEventDisableTiming)
       && DNN_CHECK (NULL, error, cudnnCreate, &be->dnn)
       && DNN_CHECK (NULL, error, cudnnSetStream, be->dnn, be->stream)
       && BLAS_CHECK (NULL, error, cublasCreate, &be->blas)
       && BLAS_CHECK (NULL, error, cublasSetStream, be->blas, be->stream)
       && BLAS_CHECK (NULL, error, cublasSetMathMode, be->blas, math);
  if (!ok) {
    g_prefix_error (error, "no usable CUDA device: ");
    cuda_free (&be->parent);
    return NULL;
  }
  g_info ("cuda backend: device %d (%s, compute capability %d.%d), %s, %s "
          "convolutions, cuDNN %zu",
          device, prop.name, prop.major, prop.minor,
          ee_precision_name (be->precision), be->nhwc ? "NHWC" : "NCHW",
          cudnnGetVersion ());
  return &be->parent;
}

void *
ee_backend_cuda_host_alloc (EeBackend *base, size_t nbytes, GError **error)
{
  CudaBackend *be = (CudaBackend *)base;
  void *p = NULL;

  if (!use_device (be, error))
    return NULL;
  if (!CUDA_CHECK (NULL, error, cudaHostAlloc, &p, nbytes ? nbytes : 64,
                   cudaHostAllocPortable)) {
    if (error && *error)
      g_prefix_error (error, "%zu bytes of page-locked host memory: ", nbytes);
    return NULL;
  }
  return p;
}

void
ee_backend_cuda_host_free (EeBackend *base, void *ptr)
{
  CudaBackend *be = (CudaBackend *)base;

  if (!ptr)
    return;
  cudaSetDevice (be->device);
  cudaFreeHost (ptr);
}

gboolean
ee_backend_cuda_preprocess (EeBackend *base, const guint8 *frame,
                            const EeImagePrep *prep, const EeTensor *out,
                            GError **error)
{
  CudaBackend *be = (CudaBackend *)base;
  const EeTensorDesc *o = out ? &out->desc : NULL;
  EeKPreprocess k;
  EeKView v;
  size_t bytes;

  if (!frame || !prep || !o || !out->data || o->ndim != 4 || o->shape[0] != 1
      || o->shape[1] != 3 || (o->dtype != EE_DTYPE_F32 && o->dtype != be->dtype)
      || prep->width < 1 || prep->height < 1
      || prep->row_stride
             < (int64_t)prep->width * (prep->format == EE_PIXEL_RGB ? 3 : 4)) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_ARGUMENT,
        "cuda backend: preprocess: expected a frame of at least 1x1 with a row "
        "stride covering its width, and an output (1,3,H,W) in F32 or %s",
        ee_dtype_name (be->dtype));
    return FALSE;
  }
  cuda_view_right (o, &v);
  if (o->layout != EE_LAYOUT_PLAIN || !cuda_view_is_contiguous (&v)) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_ARGUMENT,
        "cuda backend: preprocess: the output must be plain and contiguous");
    return FALSE;
  }
  bytes = (size_t)prep->row_stride * (size_t)(prep->height - 1)
          + (size_t)prep->width * (prep->format == EE_PIXEL_RGB ? 3 : 4);
  if (!use_device (be, error))
    return FALSE;
  if (bytes > be->frame_size) {
    void *p = cuda_malloc (be, NULL, bytes, "an image frame", error);

    if (!p)
      return FALSE;
    /* cudaFree waits for the device: the last frame is no longer read. */
    if (be->frame)
      cudaFree (be->frame);
    be->frame = p;
    be->frame_size = bytes;
  }
  memset (&k, 0, sizeof k);
  k.format = (EeKPixel)prep->format;
  k.width = prep->width;
  k.height = prep->height;
  k.row_stride = prep->row_stride;
  k.out_width = (int)o->shape[3];
  k.out_height = (int)o->shape[2];
  k.scale = prep->scale;
  memcpy (k.mean, prep->mean, sizeof k.mean);
  memcpy (k.std, prep->std, sizeof k.std);
  return CUDA_CHECK (NULL, error, cudaMemcpyAsync, be->frame, frame, bytes,
                     cudaMemcpyHostToDevice, be->stream)
         && KERNEL_CHECK (NULL, error, ee_k_preprocess, be->frame, &k,
                          out->data, cuda_kdtype (o->dtype), be->stream);
}
