/* gst-earlyexit: data movement kernels: strided copy with type conversion
 * (layout changes, reorders, concat slices, weight packing), nearest
 * upsampling and patchify. */
#include "ee-kernels-private.cuh"

using namespace eek;

/* ---- copy ---- */

template <typename S, typename D>
static __global__ void
copy_dense_kernel (const S *__restrict__ src, D *__restrict__ dst, unsigned n)
{
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x)
    dst[i] = from_f<D> (to_f (src[i]));
}

template <typename S, typename D>
static __global__ void
copy_strided_kernel (const S *__restrict__ src, EeKView sv, D *__restrict__ dst,
                     EeKView dv, unsigned n)
{
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x)
    dst[offset_of (dv, i)] = from_f<D> (to_f (src[offset_of (sv, i)]));
}

template <typename S, typename D>
static cudaError_t
copy_launch (const S *src, EeKView sv, D *dst, EeKView dv, cudaStream_t stream)
{
  unsigned n = (unsigned)numel (dv);

  if (same_layout (sv, dv) && is_dense (dv)) {
    copy_dense_kernel<S, D>
        <<<grid_for (n), kThreads, 0, stream>>> (src, dst, n);
  } else {
    EeKView views[2] = { dv, sv };

    order_by_first (views, 2);
    copy_strided_kernel<S, D><<<grid_for (n), kThreads, 0, stream>>> (
        src, views[1], dst, views[0], n);
  }
  return cudaGetLastError ();
}

extern "C" cudaError_t
ee_k_copy (const void *src, EeKDType src_dtype, EeKView src_view, void *dst,
           EeKDType dst_dtype, EeKView dst_view, cudaStream_t stream)
{
  cudaError_t err = cudaErrorInvalidValue;

  if (!src || !dst || !dtype_ok (src_dtype) || !dtype_ok (dst_dtype)
      || !view_ok (src_view) || !view_ok (dst_view)
      || !same_shape (src_view, dst_view))
    return cudaErrorInvalidValue;
  EEK_DISPATCH (
      src_dtype, S,
      EEK_DISPATCH (dst_dtype, D,
                    err = copy_launch<S, D> ((const S *)src, src_view, (D *)dst,
                                             dst_view, stream)));
  return err;
}

/* ---- nearest upsampling ---- */

template <typename T>
static __global__ void
upsample_kernel (const T *__restrict__ x, EeKView xv, T *__restrict__ y,
                 EeKView yv, unsigned f, bool cl, unsigned n)
{
  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x) {
    Idx4 o = split (i, yv, cl);

    y[at (yv, o.n, o.c, o.h, o.w)] = x[at (xv, o.n, o.c, o.h / f, o.w / f)];
  }
}

extern "C" cudaError_t
ee_k_upsample_nearest (const void *x, EeKView x_view, void *y, EeKView y_view,
                       int factor, EeKDType dtype, cudaStream_t stream)
{
  unsigned n;

  if (!x || !y || factor < 1 || !dtype_ok (dtype) || !view_ok (x_view)
      || !view_ok (y_view) || y_view.shape[0] != x_view.shape[0]
      || y_view.shape[1] != x_view.shape[1]
      || y_view.shape[2] != x_view.shape[2] * factor
      || y_view.shape[3] != x_view.shape[3] * factor)
    return cudaErrorInvalidValue;
  n = (unsigned)numel (y_view);
  EEK_DISPATCH (dtype, T,
                upsample_kernel<T><<<grid_for (n), kThreads, 0, stream>>> (
                    (const T *)x, x_view, (T *)y, y_view, (unsigned)factor,
                    channels_last (y_view), n));
  return cudaGetLastError ();
}

/* ---- patchify ---- */

template <typename T>
static __global__ void
patchify_kernel (const T *__restrict__ x, EeKView xv, T *__restrict__ y,
                 unsigned p, unsigned n)
{
  const unsigned c_n = (unsigned)xv.shape[1];
  const unsigned gw = (unsigned)xv.shape[3] / p;
  const unsigned tokens = ((unsigned)xv.shape[2] / p) * gw;
  const unsigned len = p * p * c_n;

  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x) {
    unsigned k = i % len, t = (i / len) % tokens, b = i / (len * tokens);
    unsigned c = k % c_n, px = (k / c_n) % p, py = k / (c_n * p);

    y[i] = x[at (xv, b, c, (t / gw) * p + py, (t % gw) * p + px)];
  }
}

extern "C" cudaError_t
ee_k_patchify (const void *x, EeKView x_view, void *y, int patch,
               EeKDType dtype, cudaStream_t stream)
{
  unsigned n;

  if (!x || !y || patch < 1 || !dtype_ok (dtype) || !view_ok (x_view)
      || x_view.shape[2] % patch || x_view.shape[3] % patch)
    return cudaErrorInvalidValue;
  n = (unsigned)numel (x_view);
  EEK_DISPATCH (dtype, T,
                patchify_kernel<T><<<grid_for (n), kThreads, 0, stream>>> (
                    (const T *)x, x_view, (T *)y, (unsigned)patch, n));
  return cudaGetLastError ();
}
