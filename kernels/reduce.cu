/* gst-earlyexit: reductions: the sum of each batch item (a density map's
 * count) and global average pooling. */
#include "ee-kernels-private.cuh"

using namespace eek;

/* ---- sum ---- */

/* Elements one block of the first pass adds; the second pass adds the
 * per-block partials. */
static const int64_t kSumChunk = 8 * kThreads;

extern "C" int
ee_k_sum_blocks (int64_t per_item)
{
  int64_t b = (per_item + kSumChunk - 1) / kSumChunk;

  return (int)(b < 1 ? 1 : b > 1024 ? 1024 : b);
}

template <typename T>
static __global__ void
sum_partial_kernel (const T *__restrict__ x, EeKView xv, unsigned per,
                    double *__restrict__ partial)
{
  __shared__ double scratch[32];
  const unsigned n = blockIdx.y;
  const unsigned s2 = (unsigned)xv.shape[2], s3 = (unsigned)xv.shape[3];
  double acc = 0.0;

  for (unsigned j = blockIdx.x * blockDim.x + threadIdx.x; j < per;
       j += gridDim.x * blockDim.x) {
    unsigned w = j % s3, h = (j / s3) % s2, c = j / (s3 * s2);

    acc += to_f (x[at (xv, n, c, h, w)]);
  }
  acc = block_sum (acc, scratch);
  if (threadIdx.x == 0)
    partial[(size_t)n * gridDim.x + blockIdx.x] = acc;
}

template <typename T>
static __global__ void
sum_final_kernel (const double *__restrict__ partial, unsigned blocks,
                  float alpha, T *__restrict__ y)
{
  __shared__ double scratch[32];
  double acc = 0.0;

  for (unsigned b = threadIdx.x; b < blocks; b += blockDim.x)
    acc += partial[(size_t)blockIdx.x * blocks + b];
  acc = block_sum (acc, scratch);
  if (threadIdx.x == 0)
    y[blockIdx.x] = from_f<T> ((float)(acc * alpha));
}

extern "C" cudaError_t
ee_k_sum (const void *x, EeKView x_view, float alpha, double *partial, void *y,
          EeKDType dtype, cudaStream_t stream)
{
  int64_t per = x_view.shape[1] * x_view.shape[2] * x_view.shape[3];
  int blocks = ee_k_sum_blocks (per);
  cudaError_t err;
  dim3 grid ((unsigned)blocks, (unsigned)x_view.shape[0]);

  if (!x || !y || !partial || !dtype_ok (dtype) || !view_ok (x_view)
      || x_view.shape[0] > 65535)
    return cudaErrorInvalidValue;
  EEK_DISPATCH (dtype, T,
                sum_partial_kernel<T><<<grid, kThreads, 0, stream>>> (
                    (const T *)x, x_view, (unsigned)per, partial));
  err = cudaGetLastError ();
  if (err != cudaSuccess)
    return err;
  EEK_DISPATCH (dtype, T,
                sum_final_kernel<T>
                <<<(unsigned)x_view.shape[0], kThreads, 0, stream>>> (
                    partial, (unsigned)blocks, alpha, (T *)y));
  return cudaGetLastError ();
}

/* ---- global average pooling ---- */

/* Channels innermost: a block takes 32 channels of one item, its 8 rows of
 * threads split the pixels, so each warp reads 32 consecutive channels. */
template <typename T>
static __global__ void
gap_cl_kernel (const T *__restrict__ x, EeKView xv, T *__restrict__ y)
{
  __shared__ float part[8][33];
  const unsigned c = blockIdx.x * 32 + threadIdx.x, n = blockIdx.y;
  const unsigned w_n = (unsigned)xv.shape[3];
  const unsigned pixels = (unsigned)xv.shape[2] * w_n;
  float acc = 0.0f;

  if (c < xv.shape[1])
    for (unsigned p = threadIdx.y; p < pixels; p += blockDim.y)
      acc += to_f (x[at (xv, n, c, p / w_n, p % w_n)]);
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads ();
  if (threadIdx.y == 0 && c < xv.shape[1]) {
    for (unsigned r = 1; r < blockDim.y; r++)
      acc += part[r][threadIdx.x];
    y[(size_t)n * xv.shape[1] + c] = from_f<T> (acc / (float)pixels);
  }
}

/* Otherwise one block per (item, channel), threads over the pixels. */
template <typename T>
static __global__ void
gap_kernel (const T *__restrict__ x, EeKView xv, T *__restrict__ y)
{
  __shared__ float scratch[32];
  const unsigned c = blockIdx.x, n = blockIdx.y;
  const unsigned w_n = (unsigned)xv.shape[3];
  const unsigned pixels = (unsigned)xv.shape[2] * w_n;
  float acc = 0.0f;

  for (unsigned p = threadIdx.x; p < pixels; p += blockDim.x)
    acc += to_f (x[at (xv, n, c, p / w_n, p % w_n)]);
  acc = block_sum (acc, scratch);
  if (threadIdx.x == 0)
    y[(size_t)n * xv.shape[1] + c] = from_f<T> (acc / (float)pixels);
}

extern "C" cudaError_t
ee_k_global_avgpool (const void *x, EeKView x_view, void *y, EeKDType dtype,
                     cudaStream_t stream)
{
  if (!x || !y || !dtype_ok (dtype) || !view_ok (x_view)
      || x_view.shape[0] > 65535)
    return cudaErrorInvalidValue;
  if (channels_last (x_view)) {
    dim3 grid ((unsigned)((x_view.shape[1] + 31) / 32),
               (unsigned)x_view.shape[0]);

    EEK_DISPATCH (dtype, T,
                  gap_cl_kernel<T><<<grid, dim3 (32, 8), 0, stream>>> (
                      (const T *)x, x_view, (T *)y));
  } else {
    dim3 grid ((unsigned)x_view.shape[1], (unsigned)x_view.shape[0]);

    EEK_DISPATCH (dtype, T,
                  gap_kernel<T><<<grid, kThreads, 0, stream>>> (
                      (const T *)x, x_view, (T *)y));
  }
  return cudaGetLastError ();
}
