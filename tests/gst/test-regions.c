/* gst-earlyexit: GstCheck tests of density maps, regions and alerts
 * (gst/ee-regions.h, avcrowdcount density-map, regions, alert-threshold) on
 * the CPU backend with the small random-weight model of $EE_TEST_MODEL.
 *
 * - every bad `regions` text is refused with a message naming the region and
 *   the fault, and a start with one fails with that message;
 * - the alert hysteresis on a scripted count sequence;
 * - through the element: the map sums to the count, regions covering the
 *   frame count it all, the alert messages are exactly the crossings of the
 *   published counts (one per crossing, none per frame), and an exit without
 *   a map says so. */
#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <math.h>

#include "earlyexit-meta.h"
#include "ee-regions.h"

static const gchar *
model_path (void)
{
  const gchar *p = g_getenv ("EE_TEST_MODEL");

  fail_unless (p != NULL, "EE_TEST_MODEL is not set (run through meson test)");
  return p;
}

/* ------------------------------------------------------------ parsing */

typedef struct
{
  const gchar *text;
  const gchar *words[3]; /* each must appear in the message */
} BadCase;

static const BadCase bad_cases[] = {
  { "0,0 1,0 1,1", { "region 1", "no name" } },
  { "a: 0,0 1,0 1,1; b c: 0,0 1,0 1,1", { "region 2", "\"b c\"", "name" } },
  { "frame: 0,0 1,0 1,1", { "region 1", "\"frame\"", "whole frame" } },
  { "door: 0,0 1,0", { "\"door\"", "2 points", "at least 3" } },
  { "door: 0,0 1,0 1;1", { "\"door\"", "point 3", "X,Y" } },
  { "door: 0,0 1,0 1,x", { "\"door\"", "point 3", "not two numbers" } },
  { "door: 0,0 1,0 1,1,2", { "\"door\"", "point 3", "X,Y" } },
  { "door: 0,0 1,0 3.5,0.2", { "\"door\"", "point 3", "outside the frame" } },
  { "door: 0,0 0.5,0.5 1,1", { "\"door\"", "no area" } },
  { "bow: 0,0 1,1 1,0 0,1", { "\"bow\"", "edges 1", "cross" } },
  { "door: 0,0 1,0 1,0 0,1", { "\"door\"", "points 2 and 3", "same" } },
  { "door: 0,0 1,0 1,1 alert=-3", { "\"door\"", "alert=-3", "above 0" } },
  { "door: 0,0 1,0 1,1 alert=ten", { "\"door\"", "alert=ten" } },
  { "door: 0,0 1,0 1,1 alert=10 clear=12",
    { "\"door\"", "clear=12", "above" } },
  { "door: 0,0 1,0 1,1 clear=5", { "\"door\"", "clear=5", "without alert" } },
  { "door: 0,0 1,0 1,1 size=4", { "\"door\"", "unknown option", "size" } },
  { "a: 0,0 1,0 1,1\na: 0,0 0,1 1,1", { "region 2", "\"a\"", "taken" } },
};

GST_START_TEST (test_bad_regions)
{
  for (guint i = 0; i < G_N_ELEMENTS (bad_cases); i++) {
    GError *err = NULL;
    EeRegions *rs = ee_regions_parse (bad_cases[i].text, &err);

    fail_unless (rs == NULL, "accepted bad regions \"%s\"", bad_cases[i].text);
    fail_unless (err != NULL);
    for (int k = 0; k < 3 && bad_cases[i].words[k]; k++)
      fail_unless (strstr (err->message, bad_cases[i].words[k]) != NULL,
                   "\"%s\": message \"%s\" lacks \"%s\"", bad_cases[i].text,
                   err->message, bad_cases[i].words[k]);
    g_clear_error (&err);
  }
}

GST_END_TEST;

GST_START_TEST (test_good_regions)
{
  GError *err = NULL;
  EeRegions *rs = ee_regions_parse (
      "# the demo's stage and exit\n"
      "stage: 0.1,0.5 0.5,0.5 0.5,0.95 0.1,0.95 alert=20 ; exit-B: 0.6,0 "
      "1.2,0 1.2,0.4 0.6,0.4 alert=5 clear=3\n"
      "\n"
      "u_shape:0,0 0.3,0 0.3,0.6 0.6,0.6 0.6,0 0.9,0 0.9,1 0,1  # concave\n",
      &err);
  const EeRegion *r;

  fail_unless (rs != NULL, "%s", err ? err->message : "");
  fail_unless_equals_int (ee_regions_n (rs), 3);
  r = ee_regions_get (rs, 0);
  fail_unless_equals_string (r->name, "stage");
  fail_unless_equals_int (r->n_points, 4);
  fail_unless_equals_float (r->alert, 20.0);
  fail_unless_equals_float (r->clear, 18.0); /* 0.9 x alert */
  r = ee_regions_get (rs, 1);
  fail_unless_equals_string (r->name, "exit-B");
  fail_unless_equals_float (r->xy[2], 1.2);
  fail_unless_equals_float (r->clear, 3.0);
  r = ee_regions_get (rs, 2);
  fail_unless_equals_int (r->n_points, 8);
  fail_unless_equals_float (r->alert, 0.0);
  ee_regions_unref (rs);

  /* nothing but blanks and comments: no regions, no error */
  rs = ee_regions_parse (" ; # none\n\n", &err);
  fail_unless (rs != NULL);
  fail_unless_equals_int (ee_regions_n (rs), 0);
  ee_regions_unref (rs);
}

GST_END_TEST;

/* ------------------------------------------------------------ hysteresis */

GST_START_TEST (test_hysteresis)
{
  /* threshold 10, clear 9: rises only above 10, clears only below 9 */
  static const struct
  {
    double count;
    EeAlertChange change;
  } script[] = {
    { 0, EE_ALERT_NONE },      { 9.5, EE_ALERT_NONE },
    { 10.0, EE_ALERT_NONE }, /* at the threshold: not above */
    { 10.5, EE_ALERT_RISING }, { 9.9, EE_ALERT_NONE },
    { 10.6, EE_ALERT_NONE },   { 9.2, EE_ALERT_NONE },
    { 9.0, EE_ALERT_NONE }, /* at the clear level: not below */
    { NAN, EE_ALERT_NONE },    { 8.9, EE_ALERT_CLEARING },
    { 9.5, EE_ALERT_NONE },    { 10.01, EE_ALERT_RISING },
    { 100, EE_ALERT_NONE },    { -1, EE_ALERT_CLEARING },
  };
  gboolean active = FALSE;
  guint changes = 0;

  /* a count wavering between the levels frame after frame: no change */
  for (int i = 0; i < 50; i++)
    fail_unless (ee_alert_update (&active, i % 2 ? 9.4 : 9.8, 10, 9)
                 == EE_ALERT_NONE);
  for (guint i = 0; i < G_N_ELEMENTS (script); i++) {
    EeAlertChange c = ee_alert_update (&active, script[i].count, 10, 9);
    fail_unless (c == script[i].change, "step %u (count %g): %s, expected %s",
                 i, script[i].count, ee_alert_change_name (c),
                 ee_alert_change_name (script[i].change));
    changes += c != EE_ALERT_NONE;
  }
  fail_unless_equals_int (changes, 4);
  fail_if (active);
}

GST_END_TEST;

/* ------------------------------------------------------------ element */

typedef struct
{
  GPtrArray *results; /* avcrowdcount messages' structures */
  GPtrArray *alerts;  /* earlyexit/alert structures */
  gchar *error;       /* first error message, if any */
} Run;

static void
run_clear (Run *run)
{
  g_ptr_array_unref (run->results);
  g_ptr_array_unref (run->alerts);
  g_free (run->error);
}

/* Runs avcrowdcount with `props` on `frames` frames of a moving ball and a
 * tone to the end, collecting its messages; FALSE when it failed (error
 * message in run->error). */
static gboolean
run_pipeline (const gchar *props, int frames, Run *run)
{
  gchar *desc = g_strdup_printf (
      "avcrowdcount name=c device=cpu deadline=10000000000 model-file=\"%s\" "
      "%s ! fakesink videotestsrc pattern=ball num-buffers=%d ! "
      "video/x-raw,width=64,height=32,framerate=25/1 ! c.video audiotestsrc "
      "num-buffers=%d samplesperbuffer=1600 ! "
      "audio/x-raw,rate=16000,channels=1 ! c.audio",
      model_path (), props, frames, frames / 4 + 12);
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch (desc, &err);
  GstBus *bus;
  gboolean done = FALSE;

  fail_unless (pipe != NULL, "%s", err ? err->message : "");
  run->results
      = g_ptr_array_new_with_free_func ((GDestroyNotify)gst_structure_free);
  run->alerts
      = g_ptr_array_new_with_free_func ((GDestroyNotify)gst_structure_free);
  run->error = NULL;
  bus = gst_element_get_bus (pipe);
  gst_element_set_state (pipe, GST_STATE_PLAYING);
  while (!done) {
    GstMessage *m = gst_bus_timed_pop (bus, GST_CLOCK_TIME_NONE);
    const GstStructure *s = gst_message_get_structure (m);

    switch (GST_MESSAGE_TYPE (m)) {
      case GST_MESSAGE_ELEMENT:
        if (gst_structure_has_name (s, "avcrowdcount"))
          g_ptr_array_add (run->results, gst_structure_copy (s));
        else if (gst_structure_has_name (s, "earlyexit/alert"))
          g_ptr_array_add (run->alerts, gst_structure_copy (s));
        break;
      case GST_MESSAGE_ERROR: {
        GError *e = NULL;
        gst_message_parse_error (m, &e, NULL);
        run->error = g_strdup (e->message);
        g_clear_error (&e);
        done = TRUE;
        break;
      }
      case GST_MESSAGE_EOS:
        done = TRUE;
        break;
      default:
        break;
    }
    gst_message_unref (m);
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_free (desc);
  return run->error == NULL;
}

static gdouble
map_sum (const GstStructure *r)
{
  gint w, h;
  const gfloat *m = earlyexit_result_get_density_map (r, &w, &h);
  gdouble sum = 0;

  fail_unless (m != NULL, "no density map in %" GST_PTR_FORMAT, r);
  for (int i = 0; i < w * h; i++)
    sum += m[i];
  return sum;
}

GST_START_TEST (test_map_and_region_counts)
{
  Run run;

  fail_unless (
      run_pipeline ("policy=full density-map=true regions=\"left: 0,0 0.5,0 "
                    "0.5,1 0,1; right: 0.5,0 1,0 1,1 0.5,1; all: -0.5,-0.5 "
                    "1.5,-0.5 1.5,1.5 -0.5,1.5\"",
                    12, &run),
      "%s", run.error);
  fail_unless_equals_int (run.results->len, 12);
  for (guint i = 0; i < run.results->len; i++) {
    const GstStructure *r = g_ptr_array_index (run.results, i);
    gdouble count = earlyexit_result_get_count (r), c[3], x, y, cw, ch;
    gdouble tol = 1e-4 * MAX (1.0, fabs (count));
    gint w, h;

    fail_unless (earlyexit_result_has_map (r));
    fail_unless_equals_string (earlyexit_result_get_exit (r), "final");
    fail_unless (fabs (map_sum (r) - count) <= tol, "map sum %g, count %g",
                 map_sum (r), count);
    /* the test model's 64x32 input: an 8x4 grid over the frame */
    earlyexit_result_get_density_map (r, &w, &h);
    fail_unless_equals_int (w, 8);
    fail_unless_equals_int (h, 4);
    fail_unless (earlyexit_result_get_density_map_grid (r, &x, &y, &cw, &ch));
    fail_unless_equals_float (x, 0.0);
    fail_unless_equals_float (y, 0.0);
    fail_unless_equals_float (cw, 1.0 / 8);
    fail_unless_equals_float (ch, 1.0 / 4);
    fail_unless_equals_int (earlyexit_result_get_n_regions (r), 3);
    for (guint k = 0; k < 3; k++)
      fail_unless (earlyexit_result_get_region (r, k, &c[k], NULL) != NULL);
    fail_unless (fabs (c[0] + c[1] - count) <= tol, "left %g + right %g != %g",
                 c[0], c[1], count);
    fail_unless (fabs (c[2] - count) <= tol, "all %g != %g", c[2], count);
    fail_unless_equals_string (gst_structure_get_string (r, "regions-exit"),
                               "final");
  }
  fail_unless_equals_int (run.alerts->len, 0);
  run_clear (&run);
}

GST_END_TEST;

/* The alert messages and fields are exactly the crossings of the published
 * counts replayed through the hysteresis. */
GST_START_TEST (test_alert_messages)
{
  Run run;
  gboolean frame_state = FALSE, left_state = FALSE;
  guint expected = 0, seen_frame = 0, seen_left = 0;
  gdouble mid;

  /* first the counts, to put the thresholds inside their range */
  fail_unless (
      run_pipeline ("policy=full regions=\"left: 0,0 0.5,0 0.5,1 0,1\"", 20,
                    &run),
      "%s", run.error);
  {
    gdouble lo = G_MAXDOUBLE, hi = -G_MAXDOUBLE;
    for (guint i = 0; i < run.results->len; i++) {
      gdouble c
          = earlyexit_result_get_count (g_ptr_array_index (run.results, i));
      lo = MIN (lo, c);
      hi = MAX (hi, c);
    }
    mid = lo + 0.5 * (hi - lo);
  }
  run_clear (&run);

  {
    gchar *props = g_strdup_printf (
        "policy=full alert-threshold=%.17g regions=\"left: 0,0 0.5,0 0.5,1 "
        "0,1 alert=1e-6 clear=1e-7\"",
        MAX (mid, 1e-3));
    fail_unless (run_pipeline (props, 20, &run), "%s", run.error);
    g_free (props);
  }
  for (guint i = 0; i < run.results->len; i++) {
    const GstStructure *r = g_ptr_array_index (run.results, i);
    gdouble count, lc;
    gboolean la;
    EeAlertChange c;
    const gchar *mark = gst_structure_get_string (r, "alert-change");

    fail_unless (gst_structure_get_double (r, "count", &count));
    c = ee_alert_update (&frame_state, count, MAX (mid, 1e-3),
                         0.9 * MAX (mid, 1e-3));
    expected += c != EE_ALERT_NONE;
    fail_unless_equals_int (earlyexit_result_get_alert (r), frame_state);
    if (c == EE_ALERT_NONE)
      fail_unless (mark == NULL, "frame %u marked %s without a crossing", i,
                   mark);
    else
      fail_unless_equals_string (mark, ee_alert_change_name (c));
    earlyexit_result_get_region (r, 0, &lc, &la);
    c = ee_alert_update (&left_state, lc, 1e-6, 1e-7);
    expected += c != EE_ALERT_NONE;
    fail_unless_equals_int (la, left_state);
  }
  for (guint i = 0; i < run.alerts->len; i++) {
    const GstStructure *a = g_ptr_array_index (run.alerts, i);
    const gchar *region = gst_structure_get_string (a, "region");
    fail_unless (gst_structure_has_field (a, "count"));
    fail_unless (gst_structure_has_field (a, "running-time"));
    fail_unless (
        g_strv_contains ((const gchar *[]){ "rising", "clearing", NULL },
                         gst_structure_get_string (a, "change")));
    seen_frame += !g_strcmp0 (region, "frame");
    seen_left += !g_strcmp0 (region, "left");
  }
  /* the frame's threshold lies inside the counts' range: it rose at least
   * once; one message per crossing, never one per frame */
  fail_unless (seen_frame >= 1);
  fail_unless_equals_int (run.alerts->len, expected);
  fail_unless (run.alerts->len < run.results->len);
  run_clear (&run);
}

GST_END_TEST;

GST_START_TEST (test_exit_without_map)
{
  Run run;

  /* v1, a paper SL-ViT exit: one number, no map */
  fail_unless (run_pipeline ("policy=fixed max-exit=0 density-map=true "
                             "regions=\"a: 0,0 1,0 1,1\"",
                             4, &run),
               "%s", run.error);
  for (guint i = 0; i < run.results->len; i++) {
    const GstStructure *r = g_ptr_array_index (run.results, i);
    gdouble c;

    fail_unless_equals_string (earlyexit_result_get_exit (r), "v1");
    fail_unless (gst_structure_has_field (r, "has-map"));
    fail_if (earlyexit_result_has_map (r));
    fail_unless (earlyexit_result_get_density_map (r, NULL, NULL) == NULL);
    fail_unless_equals_int (earlyexit_result_get_n_regions (r), 1);
    fail_unless_equals_string (earlyexit_result_get_region (r, 0, &c, NULL),
                               "a");
    fail_unless (isnan (c));
    fail_if (gst_structure_has_field (r, "regions-exit"));
  }
  run_clear (&run);
}

GST_END_TEST;

GST_START_TEST (test_start_with_bad_regions)
{
  Run run;
  gchar *path
      = g_build_filename (g_get_tmp_dir (), "ee-test-regions.txt", NULL);
  gchar *props;

  fail_if (run_pipeline ("regions=\"stage: 0,0 1,0\"", 4, &run));
  fail_unless (strstr (run.error, "\"stage\"")
                   && strstr (run.error, "2 points"),
               "%s", run.error);
  run_clear (&run);

  fail_unless (g_file_set_contents (path,
                                    "# zones\nok: 0,0 1,0 1,1\n"
                                    "bow: 0,0 1,1 1,0 0,1\n",
                                    -1, NULL));
  props = g_strdup_printf ("regions-file=\"%s\"", path);
  fail_if (run_pipeline (props, 4, &run));
  fail_unless (strstr (run.error, "\"bow\"") && strstr (run.error, "cross")
                   && strstr (run.error, path),
               "%s", run.error);
  run_clear (&run);
  g_free (props);
  g_unlink (path);

  fail_if (run_pipeline ("regions-file=/nonexistent/zones.txt", 4, &run));
  fail_unless (strstr (run.error, "zones.txt") != NULL, "%s", run.error);
  run_clear (&run);
  g_free (path);

  /* a good text after a bad one is taken, and reads back */
  {
    GstElement *e = gst_element_factory_make ("avcrowdcount", NULL);
    gchar *text;
    g_object_set (e, "regions", "a: 0,0 1,0 1,1", NULL);
    g_object_set (e, "regions", "b: nonsense", NULL);
    g_object_get (e, "regions", &text, NULL);
    fail_unless_equals_string (text, "a: 0,0 1,0 1,1");
    g_free (text);
    gst_object_unref (e);
  }
}

GST_END_TEST;

static Suite *
regions_suite (void)
{
  Suite *s = suite_create ("regions");
  TCase *tc = tcase_create ("general");

  tcase_set_timeout (tc, 120);
  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_bad_regions);
  tcase_add_test (tc, test_good_regions);
  tcase_add_test (tc, test_hysteresis);
  tcase_add_test (tc, test_map_and_region_counts);
  tcase_add_test (tc, test_alert_messages);
  tcase_add_test (tc, test_exit_without_map);
  tcase_add_test (tc, test_start_with_bad_regions);
  return s;
}

GST_CHECK_MAIN (regions);
