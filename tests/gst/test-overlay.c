/* gst-earlyexit: GstCheck tests of the earlyexitoverlay element and of its
 * text (gst/ee-overlay-text.h): what is written for a count, a label and an
 * unknown task, never NaN, and that the element draws that text where it
 * says. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <math.h>
#include <string.h>

#include "earlyexit-meta.h"
#include "ee-overlay-text.h"

#define W 320
#define H 120
#define CAPS "video/x-raw,format=RGB,width=320,height=120,framerate=25/1"

static GstStructure *
result (const gchar *first, ...)
{
  GstStructure *s = gst_structure_new_empty (EARLYEXIT_RESULT_NAME);
  va_list ap;

  va_start (ap, first);
  gst_structure_set_valist (s, first, ap);
  va_end (ap);
  return s;
}

static EeOverlayText
text_of (GstStructure *r)
{
  EeOverlayText t;

  ee_overlay_text_from_result (r, &t);
  gst_structure_free (r);
  return t;
}

static void
check_lines (const EeOverlayText *t, const gchar *const *want)
{
  guint n = g_strv_length ((gchar **)want);

  fail_unless_equals_int (t->n_lines, n);
  for (guint i = 0; i < n; i++)
    fail_unless_equals_string (t->lines[i], want[i]);
  for (int i = 0; i < t->n_lines; i++)
    fail_if (strstr (t->lines[i], "NAN") || strstr (t->lines[i], "INF"),
             "line %d: %s", i, t->lines[i]);
}

/* ------------------------------------------------------------ text */

GST_START_TEST (test_text_count)
{
  EeOverlayText t;

  t = text_of (result ("task", G_TYPE_STRING, "count", "count", G_TYPE_DOUBLE,
                       12.34, "exit", G_TYPE_STRING, "av2", "fresh",
                       G_TYPE_BOOLEAN, TRUE, "inference-time", G_TYPE_UINT64,
                       (guint64)4100000, "audio-used", G_TYPE_BOOLEAN, TRUE,
                       "audio-coverage", G_TYPE_DOUBLE, 0.7, NULL));
  check_lines (&t, (const gchar *[]){ "COUNT 12.3", "EXIT AV2 4.1 MS",
                                      "AUDIO 70%", NULL });

  /* carried, late, no audio; no task field (results of older versions) */
  t = text_of (result ("count", G_TYPE_DOUBLE, 3.0, "exit", G_TYPE_STRING, "v1",
                       "fresh", G_TYPE_BOOLEAN, FALSE, "deadline-missed",
                       G_TYPE_BOOLEAN, TRUE, "audio-used", G_TYPE_BOOLEAN,
                       FALSE, NULL));
  check_lines (&t, (const gchar *[]){ "COUNT 3.0", "EXIT V1 0.0 MS LATE",
                                      "NO AUDIO CARRIED", NULL });

  /* not finite, absent or flagged invalid: never NAN */
  t = text_of (result ("task", G_TYPE_STRING, "count", "count", G_TYPE_DOUBLE,
                       NAN, "exit", G_TYPE_STRING, "final", "fresh",
                       G_TYPE_BOOLEAN, TRUE, "audio-used", G_TYPE_BOOLEAN, TRUE,
                       "audio-coverage", G_TYPE_DOUBLE, INFINITY, NULL));
  check_lines (
      &t, (const gchar *[]){ "COUNT -", "EXIT FINAL 0.0 MS", "AUDIO -", NULL });
  t = text_of (result ("task", G_TYPE_STRING, "count", "valid", G_TYPE_BOOLEAN,
                       FALSE, "exit", G_TYPE_STRING, "final", "fresh",
                       G_TYPE_BOOLEAN, TRUE, NULL));
  check_lines (&t, (const gchar *[]){ "COUNT INVALID", "EXIT FINAL 0.0 MS",
                                      "NO AUDIO", NULL });
}

GST_END_TEST;

GST_START_TEST (test_text_label)
{
  EeOverlayText t;

  /* exitclassify: label and confidence, then the exit */
  t = text_of (result (
      "task", G_TYPE_STRING, "label", "label", G_TYPE_STRING, "cat", "label-id",
      G_TYPE_INT, 3, "confidence", G_TYPE_DOUBLE, 0.873, "exit", G_TYPE_STRING,
      "b2", "exit-index", G_TYPE_INT, 1, "fresh", G_TYPE_BOOLEAN, TRUE,
      "inference-time", G_TYPE_UINT64, (guint64)12345678, NULL));
  check_lines (&t, (const gchar *[]){ "CAT 87%", "EXIT B2 12.3 MS", NULL });

  /* audioexitclassify: the audio coverage; carried and late marks; a long
   * label with characters the font lacks keeps its confidence */
  t = text_of (result ("task", G_TYPE_STRING, "label", "label", G_TYPE_STRING,
                       "_silence_ \xc3\xa9t\xc3\xa9 and a very long label name",
                       "confidence", G_TYPE_DOUBLE, 1.0, "exit", G_TYPE_STRING,
                       "final", "fresh", G_TYPE_BOOLEAN, FALSE,
                       "deadline-missed", G_TYPE_BOOLEAN, TRUE,
                       "audio-coverage", G_TYPE_DOUBLE, 0.25, "audio-used",
                       G_TYPE_BOOLEAN, TRUE, NULL));
  check_lines (&t, (const gchar *[]){ "_SILENCE_ ?T? AND A VERY L 100%",
                                      "EXIT FINAL 0.0 MS LATE CARRIED",
                                      "AUDIO 25%", NULL });
  fail_unless_equals_int (strlen (t.lines[0]), EE_OVERLAY_MAX_CHARS - 1);

  /* confidence NaN, or the result flagged invalid */
  t = text_of (result ("task", G_TYPE_STRING, "label", "label", G_TYPE_STRING,
                       "dog", "confidence", G_TYPE_DOUBLE, NAN, "exit",
                       G_TYPE_STRING, "final", "fresh", G_TYPE_BOOLEAN, TRUE,
                       NULL));
  check_lines (&t, (const gchar *[]){ "DOG -", "EXIT FINAL 0.0 MS", NULL });
  t = text_of (result ("task", G_TYPE_STRING, "label", "valid", G_TYPE_BOOLEAN,
                       FALSE, "exit", G_TYPE_STRING, "final", "fresh",
                       G_TYPE_BOOLEAN, TRUE, NULL));
  check_lines (&t,
               (const gchar *[]){ "LABEL INVALID", "EXIT FINAL 0.0 MS", NULL });
}

GST_END_TEST;

GST_START_TEST (test_text_unknown_task)
{
  GValue arr = G_VALUE_INIT, v = G_VALUE_INIT;
  GstStructure *r;
  EeOverlayText t;

  r = result ("task", G_TYPE_STRING, "depth", "mean-depth", G_TYPE_DOUBLE, NAN,
              "objects", G_TYPE_INT, 4, "near", G_TYPE_BOOLEAN, TRUE, "exit",
              G_TYPE_STRING, "e1", "fresh", G_TYPE_BOOLEAN, TRUE, "unique-id",
              G_TYPE_UINT, 7u, "scale", G_TYPE_DOUBLE, 0.125, NULL);
  gst_value_array_init (&arr, 2);
  g_value_init (&v, G_TYPE_DOUBLE);
  g_value_set_double (&v, NAN);
  gst_value_array_append_value (&arr, &v);
  gst_value_array_append_value (&arr, &v);
  g_value_unset (&v);
  gst_structure_take_value (r, "values", &arr);
  t = text_of (r);
  check_lines (&t, (const gchar *[]){ "TASK DEPTH", "EXIT E1 0.0 MS",
                                      "MEAN-DEPTH -", "OBJECTS 4", "NEAR YES",
                                      "SCALE 0.125", NULL });

  /* no task and nothing known: the fields, up to six lines */
  t = text_of (result ("a", G_TYPE_UINT64, (guint64)1, "b", G_TYPE_STRING, "x",
                       "c", G_TYPE_INT, -2, "d", G_TYPE_FLOAT, 1.5f, "e",
                       G_TYPE_INT64, (gint64)-5, "f", G_TYPE_INT, 6, NULL));
  check_lines (&t, (const gchar *[]){ "TASK -", "A 1", "B X", "C -2", "D 1.5",
                                      "E -5", NULL });
}

GST_END_TEST;

/* ------------------------------------------------------------ drawing */

/* Pushes a grey frame carrying `r` (owned) through the overlay; returns the
 * frame that comes out. */
static GstBuffer *
overlay (GstHarness *h, GstStructure *r)
{
  GstBuffer *in = gst_buffer_new_allocate (NULL, W * H * 3, NULL);

  gst_buffer_memset (in, 0, 90, W * H * 3);
  if (r) {
    GstCustomMeta *meta
        = gst_buffer_add_custom_meta (in, EARLYEXIT_RESULT_META_NAME);
    GstStructure *s;

    fail_unless (meta != NULL, "the plugin registers the meta");
    s = gst_custom_meta_get_structure (meta);
    for (gint i = 0; i < gst_structure_n_fields (r); i++) {
      const gchar *name = gst_structure_nth_field_name (r, i);
      gst_structure_set_value (s, name, gst_structure_get_value (r, name));
    }
    gst_structure_free (r);
  }
  return gst_harness_push_and_pull (h, in);
}

/* The element's frame equals the text's own drawing on the same grey frame:
 * lit font pixels white, the rest of the box darkened to a third, nothing
 * outside the box touched. */
static void
check_drawn (GstBuffer *out, const EeOverlayText *t, int scale)
{
  GstMapInfo map;
  int x0, y0, x1, y1;
  guint lit = 0;

  ee_overlay_text_box (t, scale, W, H, &x0, &y0, &x1, &y1);
  fail_unless (x1 > x0 && y1 > y0);
  gst_buffer_map (out, &map, GST_MAP_READ);
  for (int y = 0; y < H; y++)
    for (int x = 0; x < W; x++) {
      const guint8 *p = map.data + (y * W + x) * 3;
      gboolean in_box = x >= x0 && x < x1 && y >= y0 && y < y1;
      gboolean on = ee_overlay_text_pixel (t, scale, x, y);
      guint8 want = on ? 255 : in_box ? 30 : 90;

      fail_if (on && !in_box, "text outside its box at %d,%d", x, y);
      fail_unless (p[0] == want && p[1] == want && p[2] == want,
                   "pixel %d,%d is %u, expected %u", x, y, p[0], want);
      lit += on;
    }
  gst_buffer_unmap (out, &map);
  /* every line drew something: at least a few pixels per character */
  for (int i = 0; i < t->n_lines; i++)
    fail_unless (strlen (t->lines[i]) > 0);
  fail_unless (lit > 10 * strlen (t->lines[0]), "%u pixels lit", lit);
}

GST_START_TEST (test_overlay_draws_label)
{
  GstHarness *h = gst_harness_new ("earlyexitoverlay");
  GstStructure *r = result (
      "task", G_TYPE_STRING, "label", "label", G_TYPE_STRING, "truck",
      "label-id", G_TYPE_INT, 9, "confidence", G_TYPE_DOUBLE, 0.5, "exit",
      G_TYPE_STRING, "b1", "fresh", G_TYPE_BOOLEAN, TRUE, NULL);
  EeOverlayText t;
  GstBuffer *out;

  ee_overlay_text_from_result (r, &t);
  check_lines (&t, (const gchar *[]){ "TRUCK 50%", "EXIT B1 0.0 MS", NULL });
  gst_harness_set_src_caps_str (h, CAPS);
  /* auto scale: one font pixel per 120 rows */
  out = overlay (h, r);
  check_drawn (out, &t, 1);
  gst_buffer_unref (out);

  /* scale 2: the same text, twice as big */
  g_object_set (h->element, "scale", 2, NULL);
  out = overlay (h, result ("task", G_TYPE_STRING, "label", "label",
                            G_TYPE_STRING, "truck", "confidence", G_TYPE_DOUBLE,
                            0.5, "exit", G_TYPE_STRING, "b1", "fresh",
                            G_TYPE_BOOLEAN, TRUE, NULL));
  check_drawn (out, &t, 2);
  gst_buffer_unref (out);

  /* no meta: untouched */
  out = overlay (h, NULL);
  {
    GstMapInfo map;
    gst_buffer_map (out, &map, GST_MAP_READ);
    for (gsize i = 0; i < map.size; i++)
      fail_unless (map.data[i] == 90);
    gst_buffer_unmap (out, &map);
  }
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* An unknown task and a NaN count are drawn as their text, never NAN. */
GST_START_TEST (test_overlay_draws_unknown_and_nan)
{
  GstHarness *h = gst_harness_new ("earlyexitoverlay");
  GstStructure *r;
  EeOverlayText t;
  GstBuffer *out;

  gst_harness_set_src_caps_str (h, CAPS);
  r = result ("task", G_TYPE_STRING, "pose", "keypoints", G_TYPE_INT, 17,
              "score", G_TYPE_DOUBLE, NAN, NULL);
  ee_overlay_text_from_result (r, &t);
  check_lines (
      &t, (const gchar *[]){ "TASK POSE", "KEYPOINTS 17", "SCORE -", NULL });
  out = overlay (h, r);
  check_drawn (out, &t, 1);
  gst_buffer_unref (out);

  r = result ("task", G_TYPE_STRING, "count", "count", G_TYPE_DOUBLE, NAN,
              "exit", G_TYPE_STRING, "v1", "fresh", G_TYPE_BOOLEAN, TRUE, NULL);
  ee_overlay_text_from_result (r, &t);
  fail_unless_equals_string (t.lines[0], "COUNT -");
  out = overlay (h, r);
  check_drawn (out, &t, 1);
  gst_buffer_unref (out);
  gst_harness_teardown (h);
}

GST_END_TEST;

static Suite *
overlay_suite (void)
{
  Suite *s = suite_create ("earlyexitoverlay");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_text_count);
  tcase_add_test (tc, test_text_label);
  tcase_add_test (tc, test_text_unknown_task);
  tcase_add_test (tc, test_overlay_draws_label);
  tcase_add_test (tc, test_overlay_draws_unknown_and_nan);
  return s;
}

GST_CHECK_MAIN (overlay);
