/* gst-earlyexit: max and average pooling with PyTorch's edge rules, for the
 * windows cuDNN cannot express: in ceil mode the last window may run past
 * the padding, and average pooling then divides by the part of the window
 * inside input + padding (count_include_pad) or inside the input. */
#include "ee-kernels-private.cuh"

using namespace eek;

template <typename T>
static __global__ void
pool_kernel (const T *__restrict__ x, EeKView xv, T *__restrict__ y, EeKView yv,
             EeKPool p, bool cl, unsigned n)
{
  const int in_h = (int)xv.shape[2], in_w = (int)xv.shape[3];

  for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += gridDim.x * blockDim.x) {
    Idx4 o = split (i, yv, cl);
    int h0 = (int)o.h * p.stride[0] - p.pad[0];
    int w0 = (int)o.w * p.stride[1] - p.pad[1];
    int h1 = min (h0 + p.kernel[0], in_h + p.pad[0]);
    int w1 = min (w0 + p.kernel[1], in_w + p.pad[1]);
    int count = (h1 - h0) * (w1 - w0);
    float acc = p.max ? -INFINITY : 0.0f;

    h0 = max (h0, 0);
    w0 = max (w0, 0);
    h1 = min (h1, in_h);
    w1 = min (w1, in_w);
    for (int h = h0; h < h1; h++)
      for (int w = w0; w < w1; w++) {
        float v = to_f (x[at (xv, o.n, o.c, (unsigned)h, (unsigned)w)]);

        if (!p.max)
          acc += v;
        else if (v > acc || isnan (v))
          acc = v;
      }
    if (!p.max)
      acc /= (float)(p.count_include_pad ? count : (h1 - h0) * (w1 - w0));
    y[at (yv, o.n, o.c, o.h, o.w)] = from_f<T> (acc);
  }
}

extern "C" cudaError_t
ee_k_pool (const void *x, EeKView x_view, void *y, EeKView y_view,
           const EeKPool *pool, EeKDType dtype, cudaStream_t stream)
{
  unsigned n;

  if (!x || !y || !pool || !dtype_ok (dtype) || !view_ok (x_view)
      || !view_ok (y_view) || x_view.shape[0] != y_view.shape[0]
      || x_view.shape[1] != y_view.shape[1])
    return cudaErrorInvalidValue;
  for (int i = 0; i < 2; i++)
    if (pool->kernel[i] < 1 || pool->stride[i] < 1 || pool->pad[i] < 0
        || 2 * pool->pad[i] > pool->kernel[i]
        || x_view.shape[2 + i] > INT32_MAX)
      return cudaErrorInvalidValue;
  n = (unsigned)numel (y_view);
  EEK_DISPATCH (dtype, T,
                pool_kernel<T><<<grid_for (n), kThreads, 0, stream>>> (
                    (const T *)x, x_view, (T *)y, y_view, *pool,
                    channels_last (y_view), n));
  return cudaGetLastError ();
}
