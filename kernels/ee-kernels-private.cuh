/* gst-earlyexit: device helpers shared by the kernels in this folder. */
#ifndef EE_KERNELS_PRIVATE_CUH
#define EE_KERNELS_PRIVATE_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#include "ee-kernels.h"

namespace eek {

/* Element loads and stores go through float: every kernel computes in it. */
static __device__ __forceinline__ float
to_f (float v)
{
  return v;
}

static __device__ __forceinline__ float
to_f (__half v)
{
  return __half2float (v);
}

static __device__ __forceinline__ float
to_f (__nv_bfloat16 v)
{
  return __bfloat162float (v);
}

template <typename T> static __device__ __forceinline__ T from_f (float v);

template <>
__device__ __forceinline__ float
from_f<float> (float v)
{
  return v;
}

template <>
__device__ __forceinline__ __half
from_f<__half> (float v)
{
  return __float2half_rn (v);
}

template <>
__device__ __forceinline__ __nv_bfloat16
from_f<__nv_bfloat16> (float v)
{
  return __float2bfloat16_rn (v);
}

static __device__ __forceinline__ float
activate (float x, EeKAct act)
{
  switch (act) {
    case EE_K_ACT_RELU:
      return x > 0.0f ? x : 0.0f;
    case EE_K_ACT_GELU:
      return 0.5f * x * (1.0f + erff (x * 0.70710678118654752f));
    case EE_K_ACT_NONE:
      break;
  }
  return x;
}

/* The offset of logical element i (row-major over the view's shape). */
static __device__ __forceinline__ int64_t
offset_of (const EeKView &v, unsigned i)
{
  unsigned w = i % (unsigned)v.shape[3];
  unsigned r = i / (unsigned)v.shape[3];
  unsigned h = r % (unsigned)v.shape[2];
  unsigned q = r / (unsigned)v.shape[2];
  unsigned c = q % (unsigned)v.shape[1];
  unsigned n = q / (unsigned)v.shape[1];

  return n * v.stride[0] + c * v.stride[1] + h * v.stride[2] + w * v.stride[3];
}

struct Idx4
{
  unsigned n, c, h, w;
};

/* Logical index i of an (N,C,H,W) shape, walked in the order its memory
 * is laid out in: (n, h, w, c) when channels are innermost (NHWC), else
 * (n, c, h, w). Consecutive threads then touch consecutive addresses. */
static __device__ __forceinline__ Idx4
split (unsigned i, const EeKView &v, bool channels_last)
{
  Idx4 r;

  if (channels_last) {
    r.c = i % (unsigned)v.shape[1];
    i /= (unsigned)v.shape[1];
    r.w = i % (unsigned)v.shape[3];
    i /= (unsigned)v.shape[3];
    r.h = i % (unsigned)v.shape[2];
    r.n = i / (unsigned)v.shape[2];
  } else {
    r.w = i % (unsigned)v.shape[3];
    i /= (unsigned)v.shape[3];
    r.h = i % (unsigned)v.shape[2];
    i /= (unsigned)v.shape[2];
    r.c = i % (unsigned)v.shape[1];
    r.n = i / (unsigned)v.shape[1];
  }
  return r;
}

static __device__ __forceinline__ int64_t
at (const EeKView &v, unsigned n, unsigned c, unsigned h, unsigned w)
{
  return n * v.stride[0] + c * v.stride[1] + h * v.stride[2] + w * v.stride[3];
}

struct SumOp
{
  template <typename A> __device__ A operator() (A a, A b) const
  {
    return a + b;
  }
};

struct MaxOp
{
  __device__ float operator() (float a, float b) const { return fmaxf (a, b); }
};

/* Reduces v over the block; every thread gets the result. blockDim.x is a
 * multiple of 32, at most 1024; `scratch` holds 32 values. Only warp 0
 * reads the per-warp partials, so its lane 0 may overwrite scratch[0]
 * without racing the other warps. */
template <typename A, typename Op>
static __device__ __forceinline__ A
block_reduce (A v, A identity, Op op, A *scratch)
{
  const unsigned lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const unsigned n_warps = blockDim.x / 32;

  for (int o = 16; o > 0; o /= 2)
    v = op (v, __shfl_down_sync (0xffffffffu, v, o));
  __syncthreads (); /* the result of a last call may still be read */
  if (lane == 0)
    scratch[warp] = v;
  __syncthreads ();
  if (warp == 0) {
    v = lane < n_warps ? scratch[lane] : identity;
    for (int o = 16; o > 0; o /= 2)
      v = op (v, __shfl_down_sync (0xffffffffu, v, o));
    if (lane == 0)
      scratch[0] = v;
  }
  __syncthreads ();
  return scratch[0];
}

template <typename A>
static __device__ __forceinline__ A
block_sum (A v, A *scratch)
{
  return block_reduce (v, A (0), SumOp (), scratch);
}

static __device__ __forceinline__ float
block_max (float v, float *scratch)
{
  return block_reduce (v, -INFINITY, MaxOp (), scratch);
}

/* Threads per block of the elementwise kernels, and their grid: enough
 * blocks to fill the device several times over, each thread then striding
 * through the rest. */
constexpr int kThreads = 256;

static inline unsigned
grid_for (int64_t n)
{
  int64_t blocks = (n + kThreads - 1) / kThreads;

  return (unsigned)(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

static inline bool
dtype_ok (EeKDType d)
{
  return d == EE_K_F32 || d == EE_K_F16 || d == EE_K_BF16;
}

static inline int64_t
numel (const EeKView &v)
{
  return v.shape[0] * v.shape[1] * v.shape[2] * v.shape[3];
}

static inline bool
view_ok (const EeKView &v)
{
  for (int i = 0; i < 4; i++)
    if (v.shape[i] < 1 || v.stride[i] < 0)
      return false;
  return numel (v) < EE_K_MAX_NUMEL;
}

static inline bool
same_shape (const EeKView &a, const EeKView &b)
{
  for (int i = 0; i < 4; i++)
    if (a.shape[i] != b.shape[i])
      return false;
  return true;
}

/* Equal strides wherever the size is not 1 (same memory order). */
static inline bool
same_layout (const EeKView &a, const EeKView &b)
{
  if (!same_shape (a, b))
    return false;
  for (int i = 0; i < 4; i++)
    if (a.shape[i] != 1 && a.stride[i] != b.stride[i])
      return false;
  return true;
}

/* The view covers numel consecutive elements exactly once, in some order of
 * its dimensions: then element i of the view's memory is simply data[i]. */
static inline bool
is_dense (const EeKView &v)
{
  int order[4] = { 0, 1, 2, 3 };
  int64_t expect = 1;

  for (int i = 1; i < 4; i++) /* insertion sort by stride, ascending */
    for (int j = i; j > 0 && v.stride[order[j]] < v.stride[order[j - 1]]; j--) {
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  for (int i = 0; i < 4; i++) {
    int d = order[i];

    if (v.shape[d] == 1)
      continue;
    if (v.stride[d] != expect)
      return false;
    expect *= v.shape[d];
  }
  return true;
}

/* Channels innermost: the split order of a view's memory. */
static inline bool
channels_last (const EeKView &v)
{
  return v.shape[1] > 1 && v.stride[1] == 1;
}

/* Reorders the dimensions of views[0..n) alike so that views[0] is walked
 * outermost to innermost stride (size-1 dimensions first): a kernel that
 * splits indices row-major then writes views[0] in memory order. */
static inline void
order_by_first (EeKView *views, int n)
{
  for (int i = 1; i < 4; i++)
    for (int j = i; j > 0; j--) {
      const EeKView &k = views[0];
      bool a1 = k.shape[j - 1] == 1, b1 = k.shape[j] == 1;
      bool swap = (b1 && !a1) || (!a1 && !b1 && k.stride[j] > k.stride[j - 1]);

      if (!swap)
        break;
      for (int v = 0; v < n; v++) {
        int64_t s = views[v].shape[j], t = views[v].stride[j];

        views[v].shape[j] = views[v].shape[j - 1];
        views[v].stride[j] = views[v].stride[j - 1];
        views[v].shape[j - 1] = s;
        views[v].stride[j - 1] = t;
      }
    }
}

/* Runs body<T> for the element type of `dtype`. */
#define EEK_DISPATCH(dtype, T, ...)                                            \
  do {                                                                         \
    switch (dtype) {                                                           \
      case EE_K_F32: {                                                         \
        using T = float;                                                       \
        __VA_ARGS__;                                                           \
      } break;                                                                 \
      case EE_K_F16: {                                                         \
        using T = __half;                                                      \
        __VA_ARGS__;                                                           \
      } break;                                                                 \
      case EE_K_BF16: {                                                        \
        using T = __nv_bfloat16;                                               \
        __VA_ARGS__;                                                           \
      } break;                                                                 \
    }                                                                          \
  } while (0)

} /* namespace eek */

#endif /* EE_KERNELS_PRIVATE_CUH */
