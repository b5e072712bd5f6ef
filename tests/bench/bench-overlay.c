/* gst-earlyexit: the per-frame cost of density maps, regions, alerts and the
 * heatmap overlay, for the compact model (a 32x18 map) on 640x360 frames.
 *
 *   bench-overlay [-i ITERATIONS]
 *
 * Times, per frame, medians of ITERATIONS (default 300) runs, on one thread:
 * - result: ee_result_add_map (the map copied into the result, the two
 *   regions of tests/gst/overlay-scene.h counted) and ee_result_update_alerts,
 *   as avcrowdcount does for each frame with density-map=true and regions;
 * - overlay: what earlyexitoverlay draws (heatmap, region outlines and
 *   labels, text box), on a 640x360 frame in RGB and in I420;
 * and their sum. The map's download from the network is one more output of
 * 576 floats of the final exit (its values exist anyway: they are what the
 * count sums), not timed here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "ee-overlay-text.h"
#include "overlay-scene.h"

static double
now_ms (void)
{
  return g_get_monotonic_time () / 1000.0;
}

static double
time_overlay (const char *format, const GstStructure *r, int iters)
{
  GstVideoInfo info;
  GstBuffer *buf;
  GstVideoFrame frame;
  EeHeatmapScratch scratch = { 0 };
  EeOverlayText t;
  double *ms = g_new (double, iters), med;

  gst_video_info_set_format (&info, gst_video_format_from_string (format), 640,
                             360);
  buf = gst_buffer_new_allocate (NULL, info.size, NULL);
  gst_video_frame_map (&frame, &info, buf, GST_MAP_READWRITE);
  scene_background (&frame);
  for (int i = -3; i < iters; i++) {
    double t0 = now_ms ();
    /* the element's transform: map and regions, then the text box */
    ee_overlay_result_draw_map (&frame, r, 0.55, 0, 3, &scratch);
    ee_overlay_text_from_result (r, &t);
    ee_overlay_text_draw (&frame, &t, 3);
    if (i >= 0)
      ms[i] = now_ms () - t0;
  }
  gst_video_frame_unmap (&frame);
  gst_buffer_unref (buf);
  ee_heatmap_scratch_clear (&scratch);
  med = bench_median (ms, iters);
  g_free (ms);
  return med;
}

static void
count_alert (gpointer user_data, const char *region, EeAlertChange change,
             double count, double threshold, double clear)
{
  (*(guint *)user_data)++;
}

int
main (int argc, char **argv)
{
  int iters = 300;
  float map[SCENE_MAP_W * SCENE_MAP_H];
  EeAlertState alerts = { 0 };
  EeRegions *regions;
  GError *err = NULL;
  GstStructure *r = NULL;
  double *ms, result_ms, rgb_ms, i420_ms;
  guint crossings = 0;

  gst_init (&argc, &argv);
  for (int i = 1; i < argc; i++)
    if (!strcmp (argv[i], "-i") && i + 1 < argc)
      iters = MAX (atoi (argv[++i]), 1);
  regions = ee_regions_parse (SCENE_REGIONS, &err);
  g_assert_no_error (err);
  scene_map (map);

  ms = g_new (double, iters);
  for (int i = -3; i < iters; i++) {
    GstStructure *s = gst_structure_new (
        "earlyexit/result", "task", G_TYPE_STRING, "count", "count",
        G_TYPE_DOUBLE, 60.0, "exit", G_TYPE_STRING, "final", NULL);
    double t1 = now_ms ();
    ee_result_add_map (s, map, SCENE_MAP_W, SCENE_MAP_H, TRUE, regions,
                       "final");
    ee_result_update_alerts (&alerts, s, regions, 50, 45, count_alert,
                             &crossings);
    if (i >= 0)
      ms[i] = now_ms () - t1;
    if (r)
      gst_structure_free (r);
    r = s;
  }
  result_ms = bench_median (ms, iters);
  g_free (ms);
  rgb_ms = time_overlay ("RGB", r, iters);
  i420_ms = time_overlay ("I420", r, iters);

  printf ("Density map, regions and overlay per frame (compact model: 32x18 "
          "map, 2 regions; 640x360; median of %d; one thread)\n",
          iters);
  printf ("  %-44s %8.3f ms\n", "map into the result, region counts, alerts",
          result_ms);
  printf ("  %-44s %8.3f ms\n", "overlay RGB (heatmap, regions, text)", rgb_ms);
  printf ("  %-44s %8.3f ms\n", "overlay I420 (heatmap, regions, text)",
          i420_ms);
  printf ("  %-44s %8.3f ms (RGB) %8.3f ms (I420)\n", "total",
          result_ms + rgb_ms, result_ms + i420_ms);
  gst_structure_free (r);
  ee_alert_state_clear (&alerts);
  ee_regions_unref (regions);
  return 0;
}
