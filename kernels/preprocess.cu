/* gst-earlyexit: image preprocessing: an 8-bit RGB/RGBx/BGRx frame to a
 * normalised, resized network input in planar (C,H,W) order, in one pass. */
#include "ee-kernels-private.cuh"

using namespace eek;

template <typename T>
static __global__ void
preprocess_kernel (const uint8_t *__restrict__ src, EeKPreprocess p,
                   T *__restrict__ dst)
{
  const int ox = blockIdx.x * blockDim.x + threadIdx.x;
  const int oy = blockIdx.y * blockDim.y + threadIdx.y;
  const int bpp = p.format == EE_K_PIXEL_RGB ? 3 : 4;
  const int red = p.format == EE_K_PIXEL_BGRX ? 2 : 0;
  const size_t plane = (size_t)p.out_width * p.out_height;
  float sx, sy, lx, ly;
  int x0, y0, x1, y1;
  const uint8_t *r0, *r1;

  if (ox >= p.out_width || oy >= p.out_height)
    return;
  /* Half-pixel centres; PyTorch clamps negative source coordinates. */
  sx = fmaxf (((float)ox + 0.5f) * ((float)p.width / p.out_width) - 0.5f, 0.0f);
  sy = fmaxf (((float)oy + 0.5f) * ((float)p.height / p.out_height) - 0.5f,
              0.0f);
  x0 = (int)sx;
  y0 = (int)sy;
  x1 = x0 + (x0 < p.width - 1);
  y1 = y0 + (y0 < p.height - 1);
  lx = sx - (float)x0;
  ly = sy - (float)y0;
  r0 = src + (int64_t)y0 * p.row_stride;
  r1 = src + (int64_t)y1 * p.row_stride;
  for (int c = 0; c < 3; c++) {
    /* Channel c of the output (R, G, B) is byte |red - c| of a pixel. */
    int b = red ? red - c : c;
    float top = (1.0f - lx) * r0[x0 * bpp + b] + lx * r0[x1 * bpp + b];
    float bot = (1.0f - lx) * r1[x0 * bpp + b] + lx * r1[x1 * bpp + b];
    float v = (1.0f - ly) * top + ly * bot;

    dst[c * plane + (size_t)oy * p.out_width + ox]
        = from_f<T> ((v * p.scale - p.mean[c]) / p.std[c]);
  }
}

extern "C" cudaError_t
ee_k_preprocess (const uint8_t *src, const EeKPreprocess *p, void *dst,
                 EeKDType dtype, cudaStream_t stream)
{
  dim3 block (32, 8), grid;

  if (!src || !p || !dst || !dtype_ok (dtype) || p->width < 1 || p->height < 1
      || p->out_width < 1 || p->out_height < 1
      || (p->format != EE_K_PIXEL_RGB && p->format != EE_K_PIXEL_RGBX
          && p->format != EE_K_PIXEL_BGRX)
      || p->row_stride
             < (int64_t)p->width * (p->format == EE_K_PIXEL_RGB ? 3 : 4)
      || (int64_t)p->out_width * p->out_height * 3 >= EE_K_MAX_NUMEL)
    return cudaErrorInvalidValue;
  for (int c = 0; c < 3; c++)
    if (p->std[c] == 0.0f)
      return cudaErrorInvalidValue;
  grid = dim3 ((unsigned)(p->out_width + block.x - 1) / block.x,
               (unsigned)(p->out_height + block.y - 1) / block.y);
  EEK_DISPATCH (dtype, T,
                preprocess_kernel<T>
                <<<grid, block, 0, stream>>> (src, *p, (T *)dst));
  return cudaGetLastError ();
}
