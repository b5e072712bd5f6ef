/* gst-earlyexit: unit tests of the element helpers: the audio ring and video
 * preprocessing (the scheduler's tests are tests/engine/test-engine.c). */
#include <gst/check/gstcheck.h>
#include <math.h>

#include "ee-audioring.h"
#include "ee-model.h"
#include "ee-videoprep.h"

/* ------------------------------------------------------------ audio ring */

static gsize
read_covered (EeAudioRing *r, gint64 pos, gsize n, float *out)
{
  return ee_audio_ring_read (r, pos, n, out);
}

GST_START_TEST (test_ring_write_read)
{
  EeAudioRing *r = ee_audio_ring_new (100);
  float in[30], out[50];

  for (int i = 0; i < 30; i++)
    in[i] = (float)(i + 1);
  fail_unless (ee_audio_ring_is_empty (r));
  ee_audio_ring_write (r, 10, in, 30);
  fail_unless_equals_int64 (ee_audio_ring_end (r), 40);
  /* [0, 50): 30 covered, zeros around them */
  fail_unless_equals_int (read_covered (r, 0, 50, out), 30);
  fail_unless (out[9] == 0.0f && out[10] == 1.0f && out[39] == 30.0f
               && out[40] == 0.0f);

  /* a hole stays uncovered */
  ee_audio_ring_write (r, 50, in, 10);
  fail_unless_equals_int (read_covered (r, 35, 20, out), 10);
  fail_unless (out[4] == 30.0f && out[5] == 0.0f && out[15] == 1.0f);

  /* a gap is uncovered even where data was */
  ee_audio_ring_write (r, 20, NULL, 5);
  fail_unless_equals_int (read_covered (r, 20, 5, out), 0);
  fail_unless (out[0] == 0.0f);

  /* negative positions are outside the stream */
  ee_audio_ring_reset (r);
  ee_audio_ring_write (r, -5, in, 10);
  fail_unless_equals_int (read_covered (r, -5, 10, out), 5);
  fail_unless (out[5] == 6.0f);
  ee_audio_ring_free (r);
}

GST_END_TEST;

GST_START_TEST (test_ring_wrap_and_discard)
{
  EeAudioRing *r = ee_audio_ring_new (64);
  float in[40], out[64];

  for (int k = 0; k < 10; k++) {
    for (int i = 0; i < 40; i++)
      in[i] = (float)(k * 40 + i);
    ee_audio_ring_write (r, k * 40, in, 40);
  }
  /* only the newest 64 samples are kept */
  fail_unless_equals_int (read_covered (r, 336, 64, out), 64);
  for (int i = 0; i < 64; i++)
    fail_unless (out[i] == (float)(336 + i));
  fail_unless_equals_int (read_covered (r, 300, 36, out), 0);

  ee_audio_ring_discard_before (r, 380);
  fail_unless_equals_int (read_covered (r, 336, 64, out), 20);

  /* growing keeps the content */
  ee_audio_ring_reserve (r, 1000);
  fail_unless_equals_int (ee_audio_ring_capacity (r), 1000);
  fail_unless_equals_int (read_covered (r, 380, 20, out), 20);
  fail_unless (out[0] == 380.0f && out[19] == 399.0f);

  /* a write larger than the ring keeps its newest samples */
  {
    float big[1500];
    for (int i = 0; i < 1500; i++)
      big[i] = (float)i;
    ee_audio_ring_write (r, 1000, big, 1500);
    fail_unless_equals_int (read_covered (r, 1500, 1000, big), 1000);
    fail_unless (big[0] == 500.0f && big[999] == 1499.0f);
  }
  ee_audio_ring_free (r);
}

GST_END_TEST;

GST_START_TEST (test_ring_overwrite)
{
  EeAudioRing *r = ee_audio_ring_new (100);
  float a[20], b[10], out[20];

  for (int i = 0; i < 20; i++)
    a[i] = 1.0f;
  for (int i = 0; i < 10; i++)
    b[i] = 2.0f;
  ee_audio_ring_write (r, 0, a, 20);
  ee_audio_ring_write (r, 15, b, 10);
  fail_unless_equals_int64 (ee_audio_ring_end (r), 25);
  fail_unless_equals_int (read_covered (r, 10, 15, out), 15);
  fail_unless (out[4] == 1.0f && out[5] == 2.0f && out[14] == 2.0f);
  ee_audio_ring_free (r);
}

GST_END_TEST;

/* ------------------------------------------------------------ video prep */

static const EePreprocess plain = { 1.0f, { 0, 0, 0 }, { 1, 1, 1 }, FALSE };

/* A frame of `format` filled by `fill` (pixel x, y -> r, g, b). */
static GstBuffer *
make_frame (GstVideoInfo *info, GstVideoFormat format, int w, int h,
            void (*fill) (int x, int y, guint8 rgb[3]))
{
  GstVideoInfo rgb_info;
  GstBuffer *rgb, *out;
  GstVideoFrame src, dst;
  GstVideoConverter *conv;

  gst_video_info_set_format (&rgb_info, GST_VIDEO_FORMAT_RGB, w, h);
  rgb = gst_buffer_new_allocate (NULL, rgb_info.size, NULL);
  gst_video_frame_map (&src, &rgb_info, rgb, GST_MAP_WRITE);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      fill (x, y,
            (guint8 *)GST_VIDEO_FRAME_PLANE_DATA (&src, 0)
                + y * GST_VIDEO_FRAME_PLANE_STRIDE (&src, 0) + 3 * x);
  gst_video_frame_unmap (&src);

  gst_video_info_set_format (info, format, w, h);
  if (GST_VIDEO_INFO_IS_YUV (info))
    info->colorimetry.range = GST_VIDEO_COLOR_RANGE_0_255;
  out = gst_buffer_new_allocate (NULL, info->size, NULL);
  gst_video_frame_map (&src, &rgb_info, rgb, GST_MAP_READ);
  gst_video_frame_map (&dst, info, out, GST_MAP_WRITE);
  conv = gst_video_converter_new (&rgb_info, info, NULL);
  gst_video_converter_frame (conv, &src, &dst);
  gst_video_converter_free (conv);
  gst_video_frame_unmap (&dst);
  gst_video_frame_unmap (&src);
  gst_buffer_unref (rgb);
  return out;
}

static void
fill_uniform (int x, int y, guint8 rgb[3])
{
  rgb[0] = 200;
  rgb[1] = 100;
  rgb[2] = 50;
}

static void
fill_ramp (int x, int y, guint8 rgb[3])
{
  rgb[0] = (guint8)(x * 8);
  rgb[1] = (guint8)(y * 8);
  rgb[2] = 7;
}

static void
prep (GstVideoFormat format, int w, int h, int ow, int oh,
      const EePreprocess *pre, void (*fill) (int, int, guint8 *), float *out)
{
  GstVideoInfo info;
  GstBuffer *buf = make_frame (&info, format, w, h, fill);
  GstVideoFrame frame;
  EeVideoPrep *p = ee_video_prep_new (&info, ow, oh, pre);

  fail_unless (p != NULL);
  gst_video_frame_map (&frame, &info, buf, GST_MAP_READ);
  ee_video_prep_process (p, &frame, out);
  gst_video_frame_unmap (&frame);
  ee_video_prep_free (p);
  gst_buffer_unref (buf);
}

GST_START_TEST (test_prep_uniform_every_format)
{
  const GstVideoFormat formats[] = {
    GST_VIDEO_FORMAT_RGB,  GST_VIDEO_FORMAT_BGR,  GST_VIDEO_FORMAT_RGBx,
    GST_VIDEO_FORMAT_BGRx, GST_VIDEO_FORMAT_xRGB, GST_VIDEO_FORMAT_xBGR,
    GST_VIDEO_FORMAT_RGBA, GST_VIDEO_FORMAT_BGRA, GST_VIDEO_FORMAT_ARGB,
    GST_VIDEO_FORMAT_ABGR, GST_VIDEO_FORMAT_I420, GST_VIDEO_FORMAT_YV12,
    GST_VIDEO_FORMAT_NV12, GST_VIDEO_FORMAT_NV21, GST_VIDEO_FORMAT_Y42B,
    GST_VIDEO_FORMAT_Y444,
  };
  const EePreprocess pre
      = { 1.0f / 255, { 0.5f, 0.25f, 0.125f }, { 0.5f, 0.25f, 0.125f }, FALSE };
  const float rgb[3] = { 200, 100, 50 };
  float out[3 * 5 * 4];

  for (guint k = 0; k < G_N_ELEMENTS (formats); k++) {
    gboolean yuv
        = GST_VIDEO_FORMAT_INFO_IS_YUV (gst_video_format_get_info (formats[k]));
    fail_unless (ee_video_prep_supports (formats[k]));
    prep (formats[k], 40, 30, 5, 4, &pre, fill_uniform, out);
    for (int c = 0; c < 3; c++) {
      float want = (rgb[c] / 255 - pre.mean[c]) / pre.std[c];
      /* YUV round trips through 8-bit YUV: a few levels off */
      float tol = yuv ? 3.0f / 255 / pre.std[c] : 1e-4f;
      for (int i = 0; i < 20; i++)
        fail_unless (fabsf (out[c * 20 + i] - want) <= tol,
                     "%s channel %d: %f, expected %f",
                     gst_video_format_to_string (formats[k]), c,
                     out[c * 20 + i], want);
    }
  }
}

GST_END_TEST;

GST_START_TEST (test_prep_bilinear)
{
  /* 32x16 ramp (r = 8x, g = 8y) to 8x4: half-pixel centres, scale 4 */
  float out[3 * 8 * 4];

  prep (GST_VIDEO_FORMAT_RGB, 32, 16, 8, 4, &plain, fill_ramp, out);
  for (int y = 0; y < 4; y++)
    for (int x = 0; x < 8; x++) {
      float sx = (x + 0.5f) * 4 - 0.5f, sy = (y + 0.5f) * 4 - 0.5f;
      fail_unless (fabsf (out[y * 8 + x] - 8 * sx) < 1e-3);
      fail_unless (fabsf (out[32 + y * 8 + x] - 8 * sy) < 1e-3);
      fail_unless (fabsf (out[64 + y * 8 + x] - 7) < 1e-3);
    }

  /* upscaling clamps at the edges: 2x1 -> 4x1 */
  prep (GST_VIDEO_FORMAT_RGB, 2, 1, 4, 1, &plain, fill_ramp, out);
  fail_unless (fabsf (out[0] - 0) < 1e-4); /* clamped to pixel 0 */
  fail_unless (fabsf (out[1] - 2) < 1e-4); /* 0.25 of the way */
  fail_unless (fabsf (out[2] - 6) < 1e-4);
  fail_unless (fabsf (out[3] - 8) < 1e-4); /* clamped to pixel 1 */
}

GST_END_TEST;

GST_START_TEST (test_prep_bgr_order)
{
  const EePreprocess bgr = { 1.0f, { 0, 0, 0 }, { 1, 1, 1 }, TRUE };
  float out[3 * 2 * 2];

  prep (GST_VIDEO_FORMAT_RGBx, 4, 4, 2, 2, &bgr, fill_uniform, out);
  fail_unless (out[0] == 50.0f && out[4] == 100.0f && out[8] == 200.0f);
  fail_if (ee_video_prep_supports (GST_VIDEO_FORMAT_GRAY8));
}

GST_END_TEST;

static Suite *
helpers_suite (void)
{
  Suite *s = suite_create ("helpers");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_ring_write_read);
  tcase_add_test (tc, test_ring_wrap_and_discard);
  tcase_add_test (tc, test_ring_overwrite);
  tcase_add_test (tc, test_prep_uniform_every_format);
  tcase_add_test (tc, test_prep_bilinear);
  tcase_add_test (tc, test_prep_bgr_order);
  return s;
}

GST_CHECK_MAIN (helpers);
