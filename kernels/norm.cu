/* gst-earlyexit: row-wise kernels over contiguous rows: layer norm and
 * softmax. One block per row; rows are short (token embeddings, class
 * scores), so each pass re-reads the row from cache rather than holding it
 * in registers. */
#include "ee-kernels-private.cuh"

using namespace eek;

static unsigned
threads_for (int64_t dim)
{
  int64_t t = (dim + 31) / 32 * 32;

  return (unsigned)(t < 256 ? t : 256);
}

static bool
rows_ok (const void *x, const void *y, int64_t rows, int64_t dim,
         EeKDType dtype)
{
  return x && y && rows >= 1 && dim >= 1 && rows < INT32_MAX
         && rows * dim < EE_K_MAX_NUMEL && dtype_ok (dtype);
}

/* ---- layer norm ---- */

template <typename T>
static __global__ void
layernorm_kernel (const T *__restrict__ x, T *__restrict__ y, unsigned dim,
                  const T *__restrict__ gamma, const T *__restrict__ beta,
                  float eps)
{
  __shared__ float scratch[32];
  const T *xr = x + (size_t)blockIdx.x * dim;
  T *yr = y + (size_t)blockIdx.x * dim;
  float mean, var = 0.0f, s = 0.0f, rstd;

  /* Two passes (mean, then squared deviations): one-pass sums of squares
   * cancel badly when the mean is large against the spread. */
  for (unsigned i = threadIdx.x; i < dim; i += blockDim.x)
    s += to_f (xr[i]);
  mean = block_sum (s, scratch) / (float)dim;
  for (unsigned i = threadIdx.x; i < dim; i += blockDim.x) {
    float d = to_f (xr[i]) - mean;
    var += d * d;
  }
  rstd = 1.0f / sqrtf (block_sum (var, scratch) / (float)dim + eps);
  for (unsigned i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = (to_f (xr[i]) - mean) * rstd;

    if (gamma)
      v *= to_f (gamma[i]);
    if (beta)
      v += to_f (beta[i]);
    yr[i] = from_f<T> (v);
  }
}

extern "C" cudaError_t
ee_k_layernorm (const void *x, void *y, int64_t rows, int64_t dim,
                const void *gamma, const void *beta, float eps, EeKDType dtype,
                cudaStream_t stream)
{
  if (!rows_ok (x, y, rows, dim, dtype) || !(eps >= 0.0f))
    return cudaErrorInvalidValue;
  EEK_DISPATCH (dtype, T,
                layernorm_kernel<T>
                <<<(unsigned)rows, threads_for (dim), 0, stream>>> (
                    (const T *)x, (T *)y, (unsigned)dim, (const T *)gamma,
                    (const T *)beta, eps));
  return cudaGetLastError ();
}

/* ---- softmax ---- */

template <typename T>
static __global__ void
softmax_kernel (const T *__restrict__ x, T *__restrict__ y, unsigned dim)
{
  __shared__ float scratch[32];
  const T *xr = x + (size_t)blockIdx.x * dim;
  T *yr = y + (size_t)blockIdx.x * dim;
  float m = -INFINITY, s = 0.0f, inv;

  for (unsigned i = threadIdx.x; i < dim; i += blockDim.x)
    m = fmaxf (m, to_f (xr[i]));
  m = block_max (m, scratch);
  for (unsigned i = threadIdx.x; i < dim; i += blockDim.x)
    s += expf (to_f (xr[i]) - m);
  inv = 1.0f / block_sum (s, scratch);
  for (unsigned i = threadIdx.x; i < dim; i += blockDim.x)
    yr[i] = from_f<T> (expf (to_f (xr[i]) - m) * inv);
}

extern "C" cudaError_t
ee_k_softmax (const void *x, void *y, int64_t rows, int64_t dim, EeKDType dtype,
              cudaStream_t stream)
{
  if (!rows_ok (x, y, rows, dim, dtype))
    return cudaErrorInvalidValue;
  EEK_DISPATCH (dtype, T,
                softmax_kernel<T>
                <<<(unsigned)rows, threads_for (dim), 0, stream>>> (
                    (const T *)x, (T *)y, (unsigned)dim));
  return cudaGetLastError ();
}
