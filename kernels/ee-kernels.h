/* gst-earlyexit: CUDA kernels that cuDNN and cuBLAS do not provide.
 *
 * A plain C interface for the CUDA backend (nn/ee-backend-cuda*.c) and, for
 * image preprocessing, the elements. Every entry enqueues on the stream it is
 * given and returns at once; the result is a launch status (argument checks
 * report cudaErrorInvalidValue), never an abort. Execution errors surface at
 * the next synchronising call, as with any CUDA launch.
 *
 * Tensors are addressed through EeKView: four logical dimensions, in
 * elements, so one kernel reads plain NCHW, NHWC (the backend layout of
 * convolutions) and strided views (a transposed matrix, an attention head)
 * alike. Lower ranks use leading dimensions of size 1. Element types are
 * float, __half and __nv_bfloat16; arithmetic is in float, reductions
 * accumulate in float (double in ee_k_sum). */
#ifndef EE_KERNELS_H
#define EE_KERNELS_H

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The same numbering as EeDType. */
typedef enum
{
  EE_K_F32 = 0,
  EE_K_F16 = 1,
  EE_K_BF16 = 2,
} EeKDType;

typedef enum
{
  EE_K_ACT_NONE = 0,
  EE_K_ACT_RELU = 1,
  EE_K_ACT_GELU = 2, /* exact: 0.5 x (1 + erf (x / sqrt 2)) */
} EeKAct;

typedef struct
{
  int64_t shape[4];
  int64_t stride[4]; /* elements; any value where shape is 1 */
} EeKView;

/* The largest element count a kernel indexes: they decompose indices in 32
 * bits, which keeps the division off the 64-bit path. */
#define EE_K_MAX_NUMEL ((int64_t)1 << 31)

/* ---- copy.cu: data movement ---- */

/* dst = src over the common shape, converting the element type; any strides
 * on either side (dst must not overlap itself). */
cudaError_t ee_k_copy (const void *src, EeKDType src_dtype, EeKView src_view,
                       void *dst, EeKDType dst_dtype, EeKView dst_view,
                       cudaStream_t stream);

/* y (N,C,H*f,W*f) = x (N,C,H,W) repeated f x f. */
cudaError_t ee_k_upsample_nearest (const void *x, EeKView x_view, void *y,
                                   EeKView y_view, int factor, EeKDType dtype,
                                   cudaStream_t stream);

/* y (N, (H/P)(W/P), P*P*C) contiguous from x (N,C,H,W): token t is patch
 * (t / (W/P), t % (W/P)); within a token, element (py*P + px)*C + c. */
cudaError_t ee_k_patchify (const void *x, EeKView x_view, void *y, int patch,
                           EeKDType dtype, cudaStream_t stream);

/* ---- eltwise.cu: elementwise ---- */

/* y = act (x), RELU or GELU. y may alias x when both views are equal. */
cudaError_t ee_k_unary (EeKAct act, const void *x, EeKView x_view, void *y,
                        EeKView y_view, EeKDType dtype, cudaStream_t stream);

typedef enum
{
  EE_K_ADD,
  EE_K_MUL,
} EeKBinary;

/* y = a op b, all of one shape. y may alias a when both views are equal. */
cudaError_t ee_k_binary (EeKBinary op, const void *a, EeKView a_view,
                         const void *b, EeKView b_view, void *y, EeKView y_view,
                         EeKDType dtype, cudaStream_t stream);

/* y[n,c,h,w] = act (x[n,c,h,w] * scale[n*param_n + c*param_c]
 *                   + shift[n*param_n + c*param_c]):
 * FiLM (gamma, beta per batch item and channel) and batch norm (param_n 0).
 * shift may be NULL (0). y may alias x when both views are equal. */
cudaError_t ee_k_channel_affine (const void *x, EeKView x_view,
                                 const void *scale, const void *shift,
                                 int64_t param_n, int64_t param_c, EeKAct act,
                                 void *y, EeKView y_view, EeKDType dtype,
                                 cudaStream_t stream);

/* In place on a dense y of numel elements: y[i] = act (y[i] + bias[c]),
 * c = (i / inner) % channels; bias may be NULL (0). The epilogue of a
 * convolution (inner = H*W for NCHW, 1 for NHWC) or a linear layer. */
cudaError_t ee_k_bias_act (void *y, int64_t numel, int64_t channels,
                           int64_t inner, const void *bias, EeKAct act,
                           EeKDType dtype, cudaStream_t stream);

/* ---- norm.cu: row-wise normalisation of contiguous rows ---- */

/* y = (x - mean) / sqrt (var + eps) * gamma + beta over each row of dim;
 * gamma/beta NULL = 1/0. */
cudaError_t ee_k_layernorm (const void *x, void *y, int64_t rows, int64_t dim,
                            const void *gamma, const void *beta, float eps,
                            EeKDType dtype, cudaStream_t stream);

/* y = softmax (x) over each row of dim. */
cudaError_t ee_k_softmax (const void *x, void *y, int64_t rows, int64_t dim,
                          EeKDType dtype, cudaStream_t stream);

/* ---- reduce.cu ---- */

/* Blocks per batch item of ee_k_sum; `partial` holds N times this many
 * doubles. */
int ee_k_sum_blocks (int64_t per_item);

/* y[n] = alpha * sum of x[n,...] (view dim 0 is the batch item), in double
 * and in a fixed order: the same input gives the same bits. */
cudaError_t ee_k_sum (const void *x, EeKView x_view, float alpha,
                      double *partial, void *y, EeKDType dtype,
                      cudaStream_t stream);

/* y (N,C) contiguous = mean of x (N,C,H,W) over H and W. */
cudaError_t ee_k_global_avgpool (const void *x, EeKView x_view, void *y,
                                 EeKDType dtype, cudaStream_t stream);

/* ---- pool.cu ---- */

typedef struct
{
  int kernel[2]; /* [0] height, [1] width */
  int stride[2];
  int pad[2];            /* symmetric; windows may run past it (ceil) */
  int max;               /* 1: max, 0: average */
  int count_include_pad; /* average: divide by the window clipped to
                          * input + padding, else to the input */
} EeKPool;

/* Max or average pooling with PyTorch's rules at the edges; the output
 * shape (y_view) is the caller's. */
cudaError_t ee_k_pool (const void *x, EeKView x_view, void *y, EeKView y_view,
                       const EeKPool *pool, EeKDType dtype,
                       cudaStream_t stream);

/* ---- preprocess.cu: 8-bit frames to network input ---- */

typedef enum
{
  EE_K_PIXEL_RGB = 0,  /* 3 bytes: R G B */
  EE_K_PIXEL_RGBX = 1, /* 4 bytes: R G B x */
  EE_K_PIXEL_BGRX = 2, /* 4 bytes: B G R x */
} EeKPixel;

typedef struct
{
  EeKPixel format;
  int width, height;  /* of the frame */
  int64_t row_stride; /* bytes from one row to the next */
  int out_width, out_height;
  float scale;           /* applied to the 0..255 values first */
  float mean[3], std[3]; /* per output channel R, G, B */
} EeKPreprocess;

/* dst (3, out_height, out_width) contiguous, channels R, G, B:
 * ((bilinear (src) * scale) - mean[c]) / std[c]. The resize follows
 * PyTorch's interpolate (bilinear, align_corners=False, no antialias): half-
 * pixel centres, source coordinates below 0 clamped to 0. src is device
 * memory. */
cudaError_t ee_k_preprocess (const uint8_t *src, const EeKPreprocess *p,
                             void *dst, EeKDType dtype, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
#endif /* EE_KERNELS_H */
