/* gst-earlyexit: video frame -> network input on the CPU. */
#include "ee-videoprep.h"

#include <math.h>

struct _EeVideoPrep
{
  GstVideoInfo in;
  int out_w, out_h;
  gboolean yuv;
  int w_sub[3], h_sub[3]; /* chroma subsampling shifts per component */

  /* YUV -> RGB in 0..255: r = y + rv v, g = y - gu u - gv v, b = y + bu u,
   * with y = (Y - y_off) * y_mul, u = (U - 128) * c_mul, v likewise */
  float y_off, y_mul, c_mul, rv, gu, gv, bu;

  /* normalisation per network channel: x = v * a + b */
  float a[3], b[3];
  int rgb_index[3]; /* network channel -> 0 R, 1 G, 2 B */

  /* bilinear taps: source x0/x1 and weight of x1 for each output column,
   * same for rows */
  int *x0, *x1, *y0, *y1;
  float *wx, *wy;

  /* two horizontally interpolated source rows, RGB interleaved (out_w x 3) */
  float *rows[2];
  int row_y[2];
};

/* Component planes of the frame being processed. */
typedef struct
{
  const guint8 *data[3];
  int stride[3];
  int pstride[3];
} Planes;

gboolean
ee_video_prep_supports (GstVideoFormat format)
{
  switch (format) {
    case GST_VIDEO_FORMAT_RGB:
    case GST_VIDEO_FORMAT_BGR:
    case GST_VIDEO_FORMAT_RGBx:
    case GST_VIDEO_FORMAT_BGRx:
    case GST_VIDEO_FORMAT_xRGB:
    case GST_VIDEO_FORMAT_xBGR:
    case GST_VIDEO_FORMAT_RGBA:
    case GST_VIDEO_FORMAT_BGRA:
    case GST_VIDEO_FORMAT_ARGB:
    case GST_VIDEO_FORMAT_ABGR:
    case GST_VIDEO_FORMAT_I420:
    case GST_VIDEO_FORMAT_YV12:
    case GST_VIDEO_FORMAT_NV12:
    case GST_VIDEO_FORMAT_NV21:
    case GST_VIDEO_FORMAT_Y42B:
    case GST_VIDEO_FORMAT_Y444:
      return TRUE;
    default:
      return FALSE;
  }
}

/* Source coordinate of each output sample along one axis. */
static void
make_taps (int in, int out, int *i0, int *i1, float *w)
{
  double scale = (double)in / out;

  for (int i = 0; i < out; i++) {
    double s = (i + 0.5) * scale - 0.5;
    int k;

    if (s < 0)
      s = 0;
    k = (int)floor (s);
    if (k >= in - 1) {
      i0[i] = i1[i] = in - 1;
      w[i] = 0.0f;
    } else {
      i0[i] = k;
      i1[i] = k + 1;
      w[i] = (float)(s - k);
    }
  }
}

static void
setup_yuv (EeVideoPrep *p)
{
  gdouble kr, kb, kg;
  gint offset[GST_VIDEO_MAX_COMPONENTS], scale[GST_VIDEO_MAX_COMPONENTS];

  if (!gst_video_color_matrix_get_Kr_Kb (p->in.colorimetry.matrix, &kr, &kb)) {
    kr = 0.299;
    kb = 0.114;
  }
  kg = 1.0 - kr - kb;
  gst_video_color_range_offsets (p->in.colorimetry.range, p->in.finfo, offset,
                                 scale);
  p->y_off = (float)offset[0];
  p->y_mul = 255.0f / (float)scale[0];
  p->c_mul = 255.0f / (float)scale[1];
  p->rv = (float)(2.0 * (1.0 - kr));
  p->bu = (float)(2.0 * (1.0 - kb));
  p->gv = (float)(kr * 2.0 * (1.0 - kr) / kg);
  p->gu = (float)(kb * 2.0 * (1.0 - kb) / kg);
}

EeVideoPrep *
ee_video_prep_new (const GstVideoInfo *in, int out_width, int out_height,
                   const EePreprocess *pre)
{
  EeVideoPrep *p;

  if (!ee_video_prep_supports (GST_VIDEO_INFO_FORMAT (in)) || out_width <= 0
      || out_height <= 0 || GST_VIDEO_INFO_WIDTH (in) <= 0
      || GST_VIDEO_INFO_HEIGHT (in) <= 0)
    return NULL;

  p = g_new0 (EeVideoPrep, 1);
  p->in = *in;
  p->out_w = out_width;
  p->out_h = out_height;
  p->yuv = GST_VIDEO_INFO_IS_YUV (in);
  for (int c = 0; c < 3; c++) {
    p->w_sub[c] = GST_VIDEO_FORMAT_INFO_W_SUB (in->finfo, c);
    p->h_sub[c] = GST_VIDEO_FORMAT_INFO_H_SUB (in->finfo, c);
  }
  if (p->yuv)
    setup_yuv (p);

  for (int k = 0; k < 3; k++) {
    p->rgb_index[k] = pre->bgr ? 2 - k : k;
    p->a[k] = pre->scale / pre->std[k];
    p->b[k] = -pre->mean[k] / pre->std[k];
  }

  p->x0 = g_new (int, out_width);
  p->x1 = g_new (int, out_width);
  p->wx = g_new (float, out_width);
  p->y0 = g_new (int, out_height);
  p->y1 = g_new (int, out_height);
  p->wy = g_new (float, out_height);
  make_taps (GST_VIDEO_INFO_WIDTH (in), out_width, p->x0, p->x1, p->wx);
  make_taps (GST_VIDEO_INFO_HEIGHT (in), out_height, p->y0, p->y1, p->wy);
  p->rows[0] = g_new (float, (gsize)out_width * 3);
  p->rows[1] = g_new (float, (gsize)out_width * 3);
  return p;
}

void
ee_video_prep_free (EeVideoPrep *p)
{
  if (!p)
    return;
  g_free (p->x0);
  g_free (p->x1);
  g_free (p->wx);
  g_free (p->y0);
  g_free (p->y1);
  g_free (p->wy);
  g_free (p->rows[0]);
  g_free (p->rows[1]);
  g_free (p);
}

static inline float
sample (const Planes *pl, int c, int x, int y)
{
  return pl->data[c][(gsize)y * pl->stride[c] + (gsize)x * pl->pstride[c]];
}

static inline float
clamp255 (float v)
{
  return v < 0.0f ? 0.0f : (v > 255.0f ? 255.0f : v);
}

/* RGB (0..255) of source pixel (x, y). */
static inline void
fetch (const EeVideoPrep *p, const Planes *pl, int x, int y, float rgb[3])
{
  if (p->yuv) {
    float Y = (sample (pl, 0, x, y) - p->y_off) * p->y_mul;
    float U = (sample (pl, 1, x >> p->w_sub[1], y >> p->h_sub[1]) - 128.0f)
              * p->c_mul;
    float V = (sample (pl, 2, x >> p->w_sub[2], y >> p->h_sub[2]) - 128.0f)
              * p->c_mul;
    rgb[0] = clamp255 (Y + p->rv * V);
    rgb[1] = clamp255 (Y - p->gu * U - p->gv * V);
    rgb[2] = clamp255 (Y + p->bu * U);
  } else {
    rgb[0] = sample (pl, 0, x, y);
    rgb[1] = sample (pl, 1, x, y);
    rgb[2] = sample (pl, 2, x, y);
  }
}

/* Source row sy interpolated horizontally to the output width. */
static void
hrow (const EeVideoPrep *p, const Planes *pl, int sy, float *dst)
{
  for (int x = 0; x < p->out_w; x++) {
    float a[3], b[3], w = p->wx[x];

    fetch (p, pl, p->x0[x], sy, a);
    if (w != 0.0f) {
      fetch (p, pl, p->x1[x], sy, b);
      for (int c = 0; c < 3; c++)
        dst[3 * x + c] = a[c] + w * (b[c] - a[c]);
    } else {
      for (int c = 0; c < 3; c++)
        dst[3 * x + c] = a[c];
    }
  }
}

/* The interpolated row for source row sy, computed at most once per frame
 * while it is needed; never evicts row `keep`. */
static const float *
get_row (EeVideoPrep *p, const Planes *pl, int sy, int keep)
{
  int k;

  for (k = 0; k < 2; k++)
    if (p->row_y[k] == sy)
      return p->rows[k];
  k = p->row_y[0] == keep ? 1 : 0;
  hrow (p, pl, sy, p->rows[k]);
  p->row_y[k] = sy;
  return p->rows[k];
}

void
ee_video_prep_process (EeVideoPrep *p, const GstVideoFrame *frame, float *out)
{
  Planes pl;
  gsize plane = (gsize)p->out_w * p->out_h;

  for (int c = 0; c < 3; c++) {
    pl.data[c] = GST_VIDEO_FRAME_COMP_DATA (frame, c);
    pl.stride[c] = GST_VIDEO_FRAME_COMP_STRIDE (frame, c);
    pl.pstride[c] = GST_VIDEO_FRAME_COMP_PSTRIDE (frame, c);
  }
  p->row_y[0] = p->row_y[1] = -1;

  for (int y = 0; y < p->out_h; y++) {
    const float *r0 = get_row (p, &pl, p->y0[y], p->y1[y]);
    const float *r1 = get_row (p, &pl, p->y1[y], p->y0[y]);
    float w = p->wy[y];
    gsize row = (gsize)y * p->out_w;

    for (int x = 0; x < p->out_w; x++) {
      for (int k = 0; k < 3; k++) {
        int c = p->rgb_index[k];
        float v = r0[3 * x + c] + w * (r1[3 * x + c] - r0[3 * x + c]);
        out[k * plane + row + x] = v * p->a[k] + p->b[k];
      }
    }
  }
}
