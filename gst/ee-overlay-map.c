/* gst-earlyexit: heatmap and region outlines for earlyexitoverlay
 * (ee-overlay-map.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "ee-overlay-map.h"

#include <math.h>
#include <string.h>

#include "earlyexit-meta.h"
#include "ee-overlay-text.h"

/* ------------------------------------------------------------ colours */

static double
srgb_gamma (double c)
{
  return c <= 0.0031308 ? 12.92 * c : 1.055 * pow (c, 1 / 2.4) - 0.055;
}

/* OKLab (L, a, b) to linear sRGB (Ottosson's matrices). */
static void
oklab_to_linear (double L, double a, double b, double rgb[3])
{
  double l = L + 0.3963377774 * a + 0.2158037573 * b;
  double m = L - 0.1055613458 * a - 0.0638541728 * b;
  double s = L - 0.0894841775 * a - 1.2914855480 * b;

  l = l * l * l;
  m = m * m * m;
  s = s * s * s;
  rgb[0] = 4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s;
  rgb[1] = -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s;
  rgb[2] = -0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s;
}

static gboolean
in_gamut (const double rgb[3])
{
  for (int k = 0; k < 3; k++)
    if (rgb[k] < -1e-9 || rgb[k] > 1 + 1e-9)
      return FALSE;
  return TRUE;
}

static guint8 colormap[256][3];

static void
make_colormap (void)
{
  for (int i = 0; i < 256; i++) {
    double t = i / 255.0;
    double L = 0.16 + 0.80 * t;
    double hue = (290.0 + 170.0 * t) * G_PI / 180.0;
    double chroma = 0.22 * sin (G_PI * (0.05 + 0.85 * t));
    double rgb[3], lo = 0, hi = chroma;

    /* the largest chroma (down to grey) that stays inside sRGB */
    oklab_to_linear (L, chroma * cos (hue), chroma * sin (hue), rgb);
    if (!in_gamut (rgb)) {
      for (int k = 0; k < 30; k++) {
        double c = 0.5 * (lo + hi);
        oklab_to_linear (L, c * cos (hue), c * sin (hue), rgb);
        if (in_gamut (rgb))
          lo = c;
        else
          hi = c;
      }
      oklab_to_linear (L, lo * cos (hue), lo * sin (hue), rgb);
    }
    for (int k = 0; k < 3; k++)
      colormap[i][k] = (guint8)CLAMP (
          lround (255 * srgb_gamma (CLAMP (rgb[k], 0, 1))), 0, 255);
  }
}

const guint8 (*ee_overlay_colormap (void))[3]
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    make_colormap ();
    g_once_init_leave (&done, 1);
  }
  return (const guint8 (*)[3])colormap;
}

void
ee_overlay_color (const GstVideoFrame *frame, const guint8 rgb[3],
                  guint8 out[3])
{
  double r = rgb[0], g = rgb[1], b = rgb[2];

  if (!GST_VIDEO_FORMAT_INFO_IS_YUV (frame->info.finfo)) {
    memcpy (out, rgb, 3);
    return;
  }
  out[0]
      = (guint8)lround (16 + 219 * (0.299 * r + 0.587 * g + 0.114 * b) / 255);
  out[1] = (guint8)lround (
      128 + 224 * (-0.168736 * r - 0.331264 * g + 0.5 * b) / 255);
  out[2] = (guint8)lround (
      128 + 224 * (0.5 * r - 0.418688 * g - 0.081312 * b) / 255);
}

/* ------------------------------------------------------------ heatmap */

static gboolean
yuv_subsampled (const GstVideoFormatInfo *finfo)
{
  for (int c = 0; c < 3; c++)
    if (GST_VIDEO_FORMAT_INFO_W_SUB (finfo, c)
        || GST_VIDEO_FORMAT_INFO_H_SUB (finfo, c))
      return TRUE;
  return FALSE;
}

void
ee_heatmap_scratch_clear (EeHeatmapScratch *s)
{
  g_clear_pointer (&s->index, g_free);
  g_clear_pointer (&s->rows, g_free);
  s->index_size = s->rows_size = 0;
}

void
ee_overlay_heatmap_draw (GstVideoFrame *frame, const gfloat *map, int map_w,
                         int map_h, double x0, double y0, double cell_w,
                         double cell_h, double vmax, double opacity,
                         EeHeatmapScratch *scratch)
{
  const guint8 (*cmap)[3] = ee_overlay_colormap ();
  const GstVideoFormatInfo *finfo = frame->info.finfo;
  int W = GST_VIDEO_FRAME_WIDTH (frame), H = GST_VIDEO_FRAME_HEIGHT (frame);
  guint8 col[3][256];
  int alpha[256], IW, IH;
  double scale;

  if (!map || map_w < 1 || map_h < 1 || cell_w <= 0 || cell_h <= 0
      || opacity <= 0 || W < 1 || H < 1)
    return;
  if (vmax <= 0) {
    for (int k = 0; k < map_w * map_h; k++)
      vmax = MAX (vmax, map[k]);
    if (vmax <= 0)
      return; /* nothing above zero: nothing to show */
  }
  /* colormap indices per 2x2 pixels: the map is smooth at that scale (a
   * cell spans 8 pixels or more), and it quarters the work */
  IW = (W + 1) / 2;
  IH = (H + 1) / 2;
  if (scratch->index_size < (gsize)IW * IH) {
    g_free (scratch->index);
    scratch->index_size = (gsize)IW * IH;
    scratch->index = g_new (guint8, scratch->index_size);
  }
  if (scratch->rows_size < (gsize)IW * map_h) {
    g_free (scratch->rows);
    scratch->rows_size = (gsize)IW * map_h;
    scratch->rows = g_new (gfloat, scratch->rows_size);
  }

  /* the map's rows at the blocks' columns (a block's centre: 2 x + 1) */
  for (int x = 0; x < IW; x++) {
    double u = CLAMP ((2 * x + 1 - x0) / cell_w - 0.5, 0.0, map_w - 1.0);
    int i0 = (int)u, i1 = MIN (i0 + 1, map_w - 1);
    float f = (float)(u - i0);
    for (int r = 0; r < map_h; r++) {
      const gfloat *m = map + (gsize)r * map_w;
      scratch->rows[(gsize)r * IW + x] = m[i0] + (m[i1] - m[i0]) * f;
    }
  }
  /* between the rows, to colormap indices */
  scale = 255.0 / vmax;
  for (int y = 0; y < IH; y++) {
    double v = CLAMP ((2 * y + 1 - y0) / cell_h - 0.5, 0.0, map_h - 1.0);
    int j0 = (int)v, j1 = MIN (j0 + 1, map_h - 1);
    float g = (float)(v - j0), s = (float)scale;
    const gfloat *r0 = scratch->rows + (gsize)j0 * IW;
    const gfloat *r1 = scratch->rows + (gsize)j1 * IW;
    guint8 *out = scratch->index + (gsize)y * IW;
    for (int x = 0; x < IW; x++) {
      float t = (r0[x] + (r1[x] - r0[x]) * g) * s;
      out[x] = t <= 0 ? 0 : t >= 255 ? 255 : (guint8)(t + 0.5f);
    }
  }

  for (int i = 0; i < 256; i++) {
    guint8 c[3];
    ee_overlay_color (frame, cmap[i], c);
    for (int k = 0; k < 3; k++)
      col[k][i] = c[k];
    alpha[i] = (int)lround (256 * CLAMP (opacity, 0, 1) * MIN (1.0, i / 64.0));
  }
  if (GST_VIDEO_FORMAT_INFO_N_PLANES (finfo) == 1 && !yuv_subsampled (finfo)) {
    /* packed (RGB, RGBx, ...): the three components of a pixel at once */
    guint8 *d0 = GST_VIDEO_FRAME_COMP_DATA (frame, 0);
    guint8 *d1 = GST_VIDEO_FRAME_COMP_DATA (frame, 1);
    guint8 *d2 = GST_VIDEO_FRAME_COMP_DATA (frame, 2);
    int stride = GST_VIDEO_FRAME_COMP_STRIDE (frame, 0);
    int ps = GST_VIDEO_FRAME_COMP_PSTRIDE (frame, 0);

    for (int y = 0; y < H; y++) {
      const guint8 *idx = scratch->index + (gsize)(y >> 1) * IW;
      gsize row = (gsize)y * stride;
      for (int x = 0; x < W; x++) {
        int i = idx[x >> 1], a = alpha[i];
        gsize o = row + (gsize)x * ps;
        if (!a)
          continue;
        d0[o] = (guint8)(d0[o] + (((col[0][i] - d0[o]) * a) >> 8));
        d1[o] = (guint8)(d1[o] + (((col[1][i] - d1[o]) * a) >> 8));
        d2[o] = (guint8)(d2[o] + (((col[2][i] - d2[o]) * a) >> 8));
      }
    }
    return;
  }
  for (int c = 0; c < 3; c++) {
    EeOverlayPlane pl = ee_overlay_plane (frame, c);
    int cw = GST_VIDEO_FRAME_COMP_WIDTH (frame, c);
    int ch = GST_VIDEO_FRAME_COMP_HEIGHT (frame, c);
    const guint8 *cc = col[c];

    for (int py = 0; py < ch; py++) {
      const guint8 *idx
          = scratch->index + (gsize)(MIN (py << pl.hs, H - 1) >> 1) * IW;
      guint8 *p = pl.data + (gsize)py * pl.stride;
      for (int px = 0; px < cw; px++, p += pl.pstride) {
        int i = idx[MIN (px << pl.ws, W - 1) >> 1], a = alpha[i];
        if (a)
          *p = (guint8)(*p + (((cc[i] - *p) * a) >> 8));
      }
    }
  }
}

/* ------------------------------------------------------------ outlines */

/* A square of side `size` centred at frame pixel (x, y). */
static void
put_square (GstVideoFrame *frame, int x, int y, int size, const guint8 v[3])
{
  int W = GST_VIDEO_FRAME_WIDTH (frame), H = GST_VIDEO_FRAME_HEIGHT (frame);
  int xa = MAX (x - size / 2, 0), xb = MIN (x - size / 2 + size, W);
  int ya = MAX (y - size / 2, 0), yb = MIN (y - size / 2 + size, H);

  if (xa >= xb || ya >= yb)
    return;
  for (int c = 0; c < 3; c++) {
    EeOverlayPlane pl = ee_overlay_plane (frame, c);

    for (int py = ya >> pl.hs; py <= (yb - 1) >> pl.hs; py++)
      for (int px = xa >> pl.ws; px <= (xb - 1) >> pl.ws; px++)
        pl.data[(gsize)py * pl.stride + (gsize)px * pl.pstride] = v[c];
  }
}

void
ee_overlay_polygon_draw (GstVideoFrame *frame, const double *xy, int n,
                         const guint8 rgb[3], int thickness)
{
  int W = GST_VIDEO_FRAME_WIDTH (frame), H = GST_VIDEO_FRAME_HEIGHT (frame);
  guint8 v[3];

  if (n < 2 || thickness < 1)
    return;
  ee_overlay_color (frame, rgb, v);
  for (int i = 0; i < n; i++) {
    double ax = xy[2 * i], ay = xy[2 * i + 1];
    double bx = xy[2 * ((i + 1) % n)], by = xy[2 * ((i + 1) % n) + 1];
    /* clip the segment to a margin around the frame: no long walks outside
     * it */
    double t0 = 0, t1 = 1, dx = bx - ax, dy = by - ay;
    const double lo[2] = { -thickness, -thickness };
    const double hi[2] = { W + thickness, H + thickness };
    const double p[2] = { ax, ay }, d[2] = { dx, dy };
    gboolean visible = TRUE;
    int steps;

    for (int k = 0; k < 2 && visible; k++) {
      if (fabs (d[k]) < 1e-12) {
        visible = p[k] >= lo[k] && p[k] <= hi[k];
        continue;
      }
      double ta = (lo[k] - p[k]) / d[k], tb = (hi[k] - p[k]) / d[k];
      t0 = MAX (t0, MIN (ta, tb));
      t1 = MIN (t1, MAX (ta, tb));
      visible = t0 <= t1;
    }
    if (!visible)
      continue;
    steps = (int)ceil (MAX (fabs (dx), fabs (dy)) * (t1 - t0)) + 1;
    for (int s = 0; s <= steps; s++) {
      double t = t0 + (t1 - t0) * s / steps;
      put_square (frame, (int)lround (ax + t * dx), (int)lround (ay + t * dy),
                  thickness, v);
    }
  }
}

/* ------------------------------------------------------------ a result */

static const guint8 outline_rgb[3] = { 255, 255, 255 };
static const guint8 alert_rgb[3] = { 220, 30, 40 };

void
ee_overlay_result_draw_map (GstVideoFrame *frame, const GstStructure *r,
                            double opacity, double vmax, int scale,
                            EeHeatmapScratch *scratch)
{
  int W = GST_VIDEO_FRAME_WIDTH (frame), H = GST_VIDEO_FRAME_HEIGHT (frame);
  const gfloat *map;
  gint mw, mh;
  double gx, gy, cw, ch;
  guint n;

  map = earlyexit_result_get_density_map (r, &mw, &mh);
  if (map && earlyexit_result_get_density_map_grid (r, &gx, &gy, &cw, &ch))
    ee_overlay_heatmap_draw (frame, map, mw, mh, gx * W, gy * H, cw * W, ch * H,
                             vmax, opacity, scratch);

  n = earlyexit_result_get_n_regions (r);
  for (guint i = 0; i < n; i++) {
    const GValue *list = gst_structure_get_value (r, "regions");
    const GstStructure *s
        = gst_value_get_structure (gst_value_array_get_value (list, i));
    const GValue *poly = gst_structure_get_value (s, "polygon");
    gdouble count;
    gboolean alert;
    const gchar *name = earlyexit_result_get_region (r, i, &count, &alert);
    guint np = poly && GST_VALUE_HOLDS_ARRAY (poly)
                   ? gst_value_array_get_size (poly) / 2
                   : 0;
    double *xy, top_x = 0, top_y = G_MAXDOUBLE;
    gchar label[64], num[32];

    if (np < 3)
      continue;
    xy = g_new (double, 2 * np);
    for (guint k = 0; k < 2 * np; k++) {
      const GValue *v = gst_value_array_get_value (poly, k);
      xy[k] = (G_VALUE_HOLDS_DOUBLE (v) ? g_value_get_double (v) : 0)
              * (k % 2 ? H : W);
    }
    for (guint k = 0; k < np; k++)
      if (xy[2 * k + 1] < top_y) {
        top_y = xy[2 * k + 1];
        top_x = xy[2 * k];
      }
    ee_overlay_polygon_draw (
        frame, xy, (int)np, alert ? alert_rgb : outline_rgb,
        alert ? 2 * MAX (scale / 2, 1) + 1 : MAX (scale / 2, 1) + 1);
    if (isfinite (count))
      g_snprintf (num, sizeof num, "%.1f", count);
    else
      g_strlcpy (num, "-", sizeof num);
    g_snprintf (label, sizeof label, "%s %s%s", name ? name : "?", num,
                alert ? " alert" : "");
    /* under the region's top corner */
    ee_overlay_text_draw_label (frame, label, (int)lround (top_x) + 2 * scale,
                                (int)lround (top_y) + 3 * scale, scale,
                                alert ? alert_rgb : NULL);
    g_free (xy);
  }
}
