/* Renders the overlay scene (overlay-scene.h) through earlyexitoverlay at
 * 640x360 RGB with its default properties and writes the frame as raw RGB,
 * for the golden-picture test tests/gst/test_heatmap_golden.py.
 *
 *   heatmap-render OUT.rgb [FORMAT]   (FORMAT: a GstVideoFormat name, RGB by
 *                                      default; the frame is written as is)
 *
 * Needs GST_PLUGIN_PATH to reach the plugin. */
#include <stdio.h>

#include <gst/check/gstharness.h>

#include "overlay-scene.h"

int
main (int argc, char **argv)
{
  const gchar *format = argc > 2 ? argv[2] : "RGB";
  gchar *caps = g_strdup_printf (
      "video/x-raw,format=%s,width=640,height=360,framerate=25/1", format);
  float map[SCENE_MAP_W * SCENE_MAP_H];
  EeAlertState alerts = { 0 };
  GError *err = NULL;
  EeRegions *regions;
  GstHarness *h;
  GstBuffer *buf, *out;
  GstVideoInfo info;
  GstVideoFrame frame;
  GstStructure *r;
  GstMapInfo m;
  FILE *f;

  gst_init (&argc, &argv);
  if (argc < 2) {
    fprintf (stderr, "usage: %s OUT.rgb [FORMAT]\n", argv[0]);
    return 1;
  }
  h = gst_harness_new ("earlyexitoverlay"); /* loads the plugin: the meta */
  gst_harness_set_caps_str (h, caps, caps);
  regions = ee_regions_parse (SCENE_REGIONS, &err);
  g_assert_no_error (err);
  scene_map (map);
  r = scene_result (map, regions, &alerts);

  gst_video_info_from_caps (&info, gst_caps_from_string (caps));
  buf = gst_buffer_new_allocate (NULL, info.size, NULL);
  gst_video_frame_map (&frame, &info, buf, GST_MAP_WRITE);
  scene_background (&frame);
  gst_video_frame_unmap (&frame);
  ee_result_meta_attach (buf, r);
  out = gst_harness_push_and_pull (h, buf);
  g_assert (out != NULL);

  gst_buffer_map (out, &m, GST_MAP_READ);
  f = fopen (argv[1], "wb");
  if (!f || fwrite (m.data, 1, m.size, f) != m.size) {
    fprintf (stderr, "cannot write %s\n", argv[1]);
    return 1;
  }
  fclose (f);
  gst_buffer_unmap (out, &m);
  gst_buffer_unref (out);
  gst_structure_free (r);
  ee_alert_state_clear (&alerts);
  ee_regions_unref (regions);
  gst_harness_teardown (h);
  g_free (caps);
  return 0;
}
