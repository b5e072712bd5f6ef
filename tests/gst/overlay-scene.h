/* gst-earlyexit: a fixed scene for the heatmap overlay's golden picture
 * (tests/gst/heatmap-render.c) and its per-frame cost (tests/bench/
 * bench-overlay.c): a 32x18 density map with two crowds (Gaussian blobs, 60
 * people in all), a frame background of gradients and a checkerboard, and two
 * regions, "stage" (alert=20: raised) and the concave "bar" (no alert).
 * Header only; needs ee-result.h. */
#ifndef OVERLAY_SCENE_H
#define OVERLAY_SCENE_H

#include <math.h>
#include <string.h>

#include <gst/video/video.h>

#include "ee-overlay-map.h"
#include "ee-result.h"

#define SCENE_MAP_W 32
#define SCENE_MAP_H 18
#define SCENE_REGIONS                                                          \
  "stage: 0.05,0.40 0.45,0.40 0.45,0.95 0.05,0.95 alert=20; "                  \
  "bar: 0.55,0.15 0.95,0.15 0.95,0.70 0.75,0.45 0.55,0.70"

/* The map: a dense crowd left of centre, a looser one top right. */
static inline void
scene_map (float *map)
{
  double sum = 0;

  for (int y = 0; y < SCENE_MAP_H; y++)
    for (int x = 0; x < SCENE_MAP_W; x++) {
      double a = exp (-(pow (x - 8.5, 2) + pow (y - 12.0, 2)) / 8.0);
      double b
          = 0.35 * exp (-(pow (x - 25.0, 2) / 18.0 + pow (y - 5.0, 2) / 6.0));
      map[y * SCENE_MAP_W + x] = (float)(a + b);
      sum += a + b;
    }
  for (int i = 0; i < SCENE_MAP_W * SCENE_MAP_H; i++)
    map[i] = (float)(map[i] * 60.0 / sum);
}

static void
scene_alert (gpointer user_data, const char *region, EeAlertChange change,
             double count, double threshold, double clear)
{
  (*(guint *)user_data)++;
}

/* The result avcrowdcount would publish for the scene (final exit, alerts
 * stepped once: "stage" holds about 44 people, above its 20); owned. */
static inline GstStructure *
scene_result (const float *map, EeRegions *regions, EeAlertState *alerts)
{
  double count = 0;
  guint crossings = 0;
  GstStructure *r;

  for (int i = 0; i < SCENE_MAP_W * SCENE_MAP_H; i++)
    count += map[i];
  r = gst_structure_new (
      "earlyexit/result", "task", G_TYPE_STRING, "count", "count",
      G_TYPE_DOUBLE, count, "exit", G_TYPE_STRING, "final", "exit-index",
      G_TYPE_INT, 3, "n-exits", G_TYPE_INT, 4, "fresh", G_TYPE_BOOLEAN, TRUE,
      "inference-time", G_TYPE_UINT64, (guint64)4100000, "deadline-missed",
      G_TYPE_BOOLEAN, FALSE, "audio-coverage", G_TYPE_DOUBLE, 1.0, "audio-used",
      G_TYPE_BOOLEAN, TRUE, NULL);
  ee_result_add_map (r, map, SCENE_MAP_W, SCENE_MAP_H, TRUE, regions, "final");
  ee_result_update_alerts (alerts, r, regions, 0, 0, scene_alert, &crossings);
  return r;
}

/* Gradients and a checkerboard (so that the overlay's translucency shows),
 * any 8-bit RGB or YUV frame, through the colour conversion of
 * ee-overlay-map.h. */
static inline void
scene_background (GstVideoFrame *frame)
{
  int W = GST_VIDEO_FRAME_WIDTH (frame), H = GST_VIDEO_FRAME_HEIGHT (frame);

  for (int c = 0; c < 3; c++) {
    EeOverlayPlane pl = ee_overlay_plane (frame, c);

    for (int y = 0; y < GST_VIDEO_FRAME_COMP_HEIGHT (frame, c); y++)
      for (int x = 0; x < GST_VIDEO_FRAME_COMP_WIDTH (frame, c); x++) {
        int fx = MIN (x << pl.ws, W - 1), fy = MIN (y << pl.hs, H - 1);
        gboolean dark = ((fx / 40) + (fy / 40)) % 2;
        guint8 rgb[3], v[3];
        rgb[0] = (guint8)(60 + 100 * fx / W - (dark ? 30 : 0));
        rgb[1] = (guint8)(90 + 80 * fy / H - (dark ? 30 : 0));
        rgb[2] = (guint8)(110 - (dark ? 30 : 0));
        ee_overlay_color (frame, rgb, v);
        pl.data[(gsize)y * pl.stride + (gsize)x * pl.pstride] = v[c];
      }
  }
}

#endif /* OVERLAY_SCENE_H */
