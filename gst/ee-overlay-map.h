/* gst-earlyexit: what earlyexitoverlay draws besides text: a density map as a
 * translucent heatmap and region outlines, on any 8-bit RGB or YUV frame.
 *
 * Apart from the element so that tests and the per-frame cost bench
 * (tests/bench/bench-overlay.c) call them directly. */
#ifndef EE_OVERLAY_MAP_H
#define EE_OVERLAY_MAP_H

#include <gst/video/video.h>

G_BEGIN_DECLS

/* Component c of an 8-bit frame: its bytes, row and pixel strides, and its
 * subsampling (frame pixel x is component pixel x >> ws). */
typedef struct
{
  guint8 *data;
  int stride, pstride, ws, hs;
} EeOverlayPlane;

static inline EeOverlayPlane
ee_overlay_plane (GstVideoFrame *frame, int c)
{
  const GstVideoFormatInfo *finfo = frame->info.finfo;

  return (EeOverlayPlane){
    .data = GST_VIDEO_FRAME_COMP_DATA (frame, c),
    .stride = GST_VIDEO_FRAME_COMP_STRIDE (frame, c),
    .pstride = GST_VIDEO_FRAME_COMP_PSTRIDE (frame, c),
    .ws = GST_VIDEO_FORMAT_INFO_W_SUB (finfo, c),
    .hs = GST_VIDEO_FORMAT_INFO_H_SUB (finfo, c),
  };
}

/* The heatmap's colormap, 256 sRGB entries from low to high: an
 * inferno-like ramp (near black, purple, red, orange, pale yellow) made in
 * OKLab, a perceptual colour space, with lightness rising evenly from 0.16
 * to 0.96 and the hue turning from purple to yellow, each colour brought into
 * the sRGB gamut by lowering its chroma. Computed once, at first use. */
const guint8 (*ee_overlay_colormap (void))[3];

/* The frame's component values (RGB: as given; YUV: BT.601 limited range)
 * of the sRGB colour `rgb`. */
void ee_overlay_color (const GstVideoFrame *frame, const guint8 rgb[3],
                       guint8 out[3]);

/* Scratch memory the heatmap reuses from frame to frame. */
typedef struct
{
  guint8 *index; /* one colormap index per 2x2 frame pixels */
  gsize index_size;
  gfloat *rows; /* the map's rows interpolated to the frame's width */
  gsize rows_size;
} EeHeatmapScratch;

void ee_heatmap_scratch_clear (EeHeatmapScratch *s);

/* Blends map (map_w x map_h cells, row-major) onto the frame: the grid's
 * top-left corner at frame pixel (x0, y0), cells of cell_w x cell_h frame
 * pixels, values interpolated bilinearly between cell centres (at every
 * other pixel and row: the map is smooth at that scale). A value v
 * takes the colour at v / vmax (clamped to 0..1; vmax <= 0: the map's
 * largest value) with opacity `opacity` x min (1, 4 v / vmax), so that empty
 * parts (v <= 0) leave the picture as it is. */
void ee_overlay_heatmap_draw (GstVideoFrame *frame, const gfloat *map,
                              int map_w, int map_h, double x0, double y0,
                              double cell_w, double cell_h, double vmax,
                              double opacity, EeHeatmapScratch *scratch);

/* The closed polygon xy (n points, frame pixels) drawn as lines `thickness`
 * pixels wide in sRGB colour `rgb`, clipped to the frame. */
void ee_overlay_polygon_draw (GstVideoFrame *frame, const double *xy, int n,
                              const guint8 rgb[3], int thickness);

/* Everything of result `r` but its text box: the density map as a heatmap
 * (when the result has one; `opacity`, `vmax` as above, the grid where the
 * result puts it) and its regions, outlined and labelled `NAME COUNT` (`-`
 * without a count), in red with `ALERT` when their alert is raised; lines
 * and labels sized by `scale` (frame pixels per font pixel). A result
 * without map or regions (a classifier's) draws nothing. */
void ee_overlay_result_draw_map (GstVideoFrame *frame, const GstStructure *r,
                                 double opacity, double vmax, int scale,
                                 EeHeatmapScratch *scratch);

G_END_DECLS
#endif /* EE_OVERLAY_MAP_H */
