/* gst-earlyexit: elementwise kernels: activations, add/mul, per-channel
 * affine (FiLM, batch norm) and the bias + activation epilogue.
 *
 * Each has a dense path, taken when all operands share one memory order
 * without gaps (NCHW or NHWC alike): element i is then data[i] everywhere
 * and no index is split. Other views go through the strided path. */
#include "ee-kernels-private.cuh"

using namespace eek;

/* ---- unary ---- */

template <typename T>
static __global__ void
unary_dense_kernel (const T *x, T *y, EeKAct act, unsigned n)
{
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x)
    y[i] = from_f<T> (activate (to_f (x[i]), act));
}

template <typename T>
static __global__ void
unary_strided_kernel (const T *x, EeKView xv, T *y, EeKView yv, EeKAct act,
                      unsigned n)
{
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x)
    y[offset_of (yv, i)]
        = from_f<T> (activate (to_f (x[offset_of (xv, i)]), act));
}

template <typename T>
static cudaError_t
unary_launch (const T *x, EeKView xv, T *y, EeKView yv, EeKAct act,
              cudaStream_t stream)
{
  unsigned n = (unsigned)numel (yv);

  if (same_layout (xv, yv) && is_dense (yv)) {
    unary_dense_kernel<T><<<grid_for (n), kThreads, 0, stream>>> (x, y, act, n);
  } else {
    EeKView v[2] = { yv, xv };

    order_by_first (v, 2);
    unary_strided_kernel<T>
        <<<grid_for (n), kThreads, 0, stream>>> (x, v[1], y, v[0], act, n);
  }
  return cudaGetLastError ();
}

extern "C" cudaError_t
ee_k_unary (EeKAct act, const void *x, EeKView x_view, void *y, EeKView y_view,
            EeKDType dtype, cudaStream_t stream)
{
  cudaError_t err = cudaErrorInvalidValue;

  if (!x || !y || (act != EE_K_ACT_RELU && act != EE_K_ACT_GELU)
      || !dtype_ok (dtype) || !view_ok (x_view) || !view_ok (y_view)
      || !same_shape (x_view, y_view))
    return cudaErrorInvalidValue;
  EEK_DISPATCH (dtype, T,
                err = unary_launch<T> ((const T *)x, x_view, (T *)y, y_view,
                                       act, stream));
  return err;
}

/* ---- binary ---- */

static __device__ __forceinline__ float
apply (EeKBinary op, float a, float b)
{
  return op == EE_K_ADD ? a + b : a * b;
}

template <typename T>
static __global__ void
binary_dense_kernel (EeKBinary op, const T *a, const T *b, T *y, unsigned n)
{
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x)
    y[i] = from_f<T> (apply (op, to_f (a[i]), to_f (b[i])));
}

template <typename T>
static __global__ void
binary_strided_kernel (EeKBinary op, const T *a, EeKView av, const T *b,
                       EeKView bv, T *y, EeKView yv, unsigned n)
{
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x)
    y[offset_of (yv, i)] = from_f<T> (
        apply (op, to_f (a[offset_of (av, i)]), to_f (b[offset_of (bv, i)])));
}

template <typename T>
static cudaError_t
binary_launch (EeKBinary op, const T *a, EeKView av, const T *b, EeKView bv,
               T *y, EeKView yv, cudaStream_t stream)
{
  unsigned n = (unsigned)numel (yv);

  if (same_layout (av, yv) && same_layout (bv, yv) && is_dense (yv)) {
    binary_dense_kernel<T>
        <<<grid_for (n), kThreads, 0, stream>>> (op, a, b, y, n);
  } else {
    EeKView v[3] = { yv, av, bv };

    order_by_first (v, 3);
    binary_strided_kernel<T><<<grid_for (n), kThreads, 0, stream>>> (
        op, a, v[1], b, v[2], y, v[0], n);
  }
  return cudaGetLastError ();
}

extern "C" cudaError_t
ee_k_binary (EeKBinary op, const void *a, EeKView a_view, const void *b,
             EeKView b_view, void *y, EeKView y_view, EeKDType dtype,
             cudaStream_t stream)
{
  cudaError_t err = cudaErrorInvalidValue;

  if (!a || !b || !y || (op != EE_K_ADD && op != EE_K_MUL) || !dtype_ok (dtype)
      || !view_ok (a_view) || !view_ok (b_view) || !view_ok (y_view)
      || !same_shape (a_view, y_view) || !same_shape (b_view, y_view))
    return cudaErrorInvalidValue;
  EEK_DISPATCH (dtype, T,
                err = binary_launch<T> (op, (const T *)a, a_view, (const T *)b,
                                        b_view, (T *)y, y_view, stream));
  return err;
}

/* ---- per-channel affine ---- */

struct Affine
{
  int64_t pn, pc; /* parameter strides of n and c */
  EeKAct act;
};

template <typename T>
static __device__ __forceinline__ T
affine (T x, const T *scale, const T *shift, int64_t p, EeKAct act)
{
  float v = to_f (x) * to_f (scale[p]) + (shift ? to_f (shift[p]) : 0.0f);

  return from_f<T> (activate (v, act));
}

/* Dense: the memory index i holds n = (i / sn) % N and c = (i / sc) % C. */
template <typename T>
static __global__ void
affine_dense_kernel (const T *x, const T *scale, const T *shift, T *y, Affine a,
                     unsigned sn, unsigned nn, unsigned sc, unsigned nc,
                     unsigned n)
{
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x) {
    unsigned bn = (i / sn) % nn, c = (i / sc) % nc;

    y[i] = affine (x[i], scale, shift, bn * a.pn + c * a.pc, a.act);
  }
}

template <typename T>
static __global__ void
affine_strided_kernel (const T *x, EeKView xv, const T *scale, const T *shift,
                       T *y, EeKView yv, Affine a, bool cl, unsigned n)
{
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x) {
    Idx4 o = split (i, yv, cl);

    y[at (yv, o.n, o.c, o.h, o.w)]
        = affine (x[at (xv, o.n, o.c, o.h, o.w)], scale, shift,
                  o.n * a.pn + o.c * a.pc, a.act);
  }
}

template <typename T>
static cudaError_t
affine_launch (const T *x, EeKView xv, const T *scale, const T *shift, Affine a,
               T *y, EeKView yv, cudaStream_t stream)
{
  unsigned n = (unsigned)numel (yv);

  if (same_layout (xv, yv) && is_dense (yv)) {
    /* A size-1 dimension may carry any stride; its index is 0 anyway. */
    unsigned sn = yv.shape[0] > 1 ? (unsigned)yv.stride[0] : 1;
    unsigned sc = yv.shape[1] > 1 ? (unsigned)yv.stride[1] : 1;

    affine_dense_kernel<T><<<grid_for (n), kThreads, 0, stream>>> (
        x, scale, shift, y, a, sn, (unsigned)yv.shape[0], sc,
        (unsigned)yv.shape[1], n);
  } else {
    affine_strided_kernel<T><<<grid_for (n), kThreads, 0, stream>>> (
        x, xv, scale, shift, y, yv, a, channels_last (yv), n);
  }
  return cudaGetLastError ();
}

extern "C" cudaError_t
ee_k_channel_affine (const void *x, EeKView x_view, const void *scale,
                     const void *shift, int64_t param_n, int64_t param_c,
                     EeKAct act, void *y, EeKView y_view, EeKDType dtype,
                     cudaStream_t stream)
{
  cudaError_t err = cudaErrorInvalidValue;
  Affine a = { param_n, param_c, act };

  if (!x || !scale || !y || param_n < 0 || param_c < 0 || act < EE_K_ACT_NONE
      || act > EE_K_ACT_GELU || !dtype_ok (dtype) || !view_ok (x_view)
      || !view_ok (y_view) || !same_shape (x_view, y_view))
    return cudaErrorInvalidValue;
  EEK_DISPATCH (dtype, T,
                err = affine_launch<T> ((const T *)x, x_view, (const T *)scale,
                                        (const T *)shift, a, (T *)y, y_view,
                                        stream));
  return err;
}

/* ---- bias + activation epilogue ---- */

template <typename T>
static __global__ void
bias_act_kernel (T *y, unsigned n, unsigned channels, unsigned inner,
                 const T *bias, EeKAct act)
{
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x) {
    float v = to_f (y[i]);

    if (bias)
      v += to_f (bias[(i / inner) % channels]);
    y[i] = from_f<T> (activate (v, act));
  }
}

extern "C" cudaError_t
ee_k_bias_act (void *y, int64_t numel, int64_t channels, int64_t inner,
               const void *bias, EeKAct act, EeKDType dtype,
               cudaStream_t stream)
{
  unsigned n = (unsigned)numel;

  if (!y || numel < 1 || numel >= EE_K_MAX_NUMEL || channels < 1 || inner < 1
      || act < EE_K_ACT_NONE || act > EE_K_ACT_GELU || !dtype_ok (dtype))
    return cudaErrorInvalidValue;
  EEK_DISPATCH (dtype, T,
                bias_act_kernel<T><<<grid_for (n), kThreads, 0, stream>>> (
                    (T *)y, n, (unsigned)channels, (unsigned)inner,
                    (const T *)bias, act));
  return cudaGetLastError ();
}
