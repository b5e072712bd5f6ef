/* gst-earlyexit: GstCheck tests of the exitclassify element (CPU backend,
 * the demo DenseNet201 classifier at 32x32 from $EE_TEST_IMAGE_MODEL; see
 * classify-check.h). */
#include <gst/check/gstharness.h>

#include "classify-check.h"

#define VIDEO_CAPS "video/x-raw,format=RGB,width=32,height=24,framerate=25/1"
#define FRAME (GST_SECOND / 25)
#define FRAME_BYTES (32 * 24 * 3)
#define N_CLASSES 10

static const gchar *const cifar10[]
    = { "airplane", "automobile", "bird", "cat",   "deer", "dog",
        "frog",     "horse",      "ship", "truck", NULL };

static GstElement *
make_element (const gchar *first, ...)
{
  GstElement *e = make_classifier ("exitclassify", "EE_TEST_IMAGE_MODEL", NULL);
  va_list ap;

  va_start (ap, first);
  if (first)
    g_object_set_valist (G_OBJECT (e), first, ap);
  va_end (ap);
  return e;
}

typedef struct
{
  GstElement *e;
  GstHarness *h;
  GstBus *bus;
} Fx;

static void
fx_start (Fx *f, GstElement *e)
{
  f->e = e;
  f->bus = gst_bus_new ();
  gst_element_set_bus (e, f->bus);
  f->h = gst_harness_new_with_element (e, "sink", "src");
  gst_harness_set_src_caps_str (f->h, VIDEO_CAPS);
}

static void
fx_stop (Fx *f)
{
  gst_harness_teardown (f->h);
  gst_element_set_bus (f->e, NULL);
  gst_object_unref (f->bus);
  gst_object_unref (f->e);
}

/* The same picture every time (a colour ramp), so that each exit's result
 * is the same from frame to frame. */
static GstBuffer *
video_buffer (GstClockTime t)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, FRAME_BYTES, NULL);
  GstMapInfo map;

  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (gsize i = 0; i < FRAME_BYTES; i++)
    map.data[i] = (guint8)((i * 7) % 251);
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = t;
  GST_BUFFER_DURATION (buf) = FRAME;
  return buf;
}

/* Pushes frame k and returns the result of the frame that comes out (a
 * copy), checking that the pixels are untouched and a message was posted
 * for it. */
static GstStructure *
run_frame (Fx *f, guint k)
{
  GstBuffer *in = video_buffer (k * FRAME), *ref = gst_buffer_copy_deep (in);
  GstBuffer *out;
  GstMapInfo a, b;
  const GstStructure *r;
  GstStructure *copy;

  fail_unless_equals_int (gst_harness_push (f->h, in), GST_FLOW_OK);
  out = gst_harness_pull (f->h);
  fail_unless (out != NULL);
  fail_unless_equals_uint64 (GST_BUFFER_PTS (out), k * FRAME);
  gst_buffer_map (out, &a, GST_MAP_READ);
  gst_buffer_map (ref, &b, GST_MAP_READ);
  fail_unless (a.size == b.size && memcmp (a.data, b.data, a.size) == 0,
               "the element changed the pixels");
  gst_buffer_unmap (out, &a);
  gst_buffer_unmap (ref, &b);
  r = gst_buffer_get_earlyexit_result (out);
  fail_unless (r != NULL, "output buffer without the result meta");
  copy = gst_structure_copy (r);
  gst_buffer_unref (out);
  gst_buffer_unref (ref);
  return copy;
}

/* The element message of the last frame (owned); fails when there is none.
 */
static GstStructure *
pop_message (Fx *f)
{
  GstMessage *msg = gst_bus_pop_filtered (f->bus, GST_MESSAGE_ELEMENT);
  GstStructure *s;

  fail_unless (msg != NULL, "no element message");
  s = gst_structure_copy (gst_message_get_structure (msg));
  gst_message_unref (msg);
  return s;
}

/* ------------------------------------------------------------ results */

GST_START_TEST (test_result_fields)
{
  Fx f;

  fx_start (&f, make_element ("unique-id", 42, NULL));
  for (guint k = 0; k < 3; k++) {
    GstStructure *r = run_frame (&f, k), *m = pop_message (&f);
    GstClockTime t = GST_CLOCK_TIME_NONE;

    check_result (r, 5, N_CLASSES, cifar10);
    fail_unless (earlyexit_result_is_fresh (r));
    fail_unless_equals_int (exit_of (r), EXIT_FINAL);
    fail_unless_equals_string (earlyexit_result_get_exit (r), "final");
    fail_unless_equals_int (earlyexit_result_get_unique_id (r), 42);
    fail_if (earlyexit_result_get_deadline_missed (r));
    fail_unless_equals_uint64 (earlyexit_result_get_deadline (r), GENEROUS);
    fail_unless (earlyexit_result_get_inference_time (r) > 0);
    /* the message: the frame's times, then the meta's fields */
    fail_unless (gst_structure_has_name (m, "exitclassify"));
    fail_unless (gst_structure_get_clock_time (m, "timestamp", &t));
    fail_unless_equals_uint64 (t, k * FRAME);
    fail_unless (gst_structure_get_clock_time (m, "running-time", &t));
    fail_unless_equals_uint64 (t, k * FRAME);
    fail_unless (gst_structure_get_clock_time (m, "stream-time", &t));
    fail_unless (gst_structure_get_clock_time (m, "duration", &t));
    fail_unless_equals_uint64 (t, FRAME);
    check_result (m, 5, N_CLASSES, cifar10);
    fail_unless_equals_int (earlyexit_result_get_label_id (m),
                            earlyexit_result_get_label_id (r));
    gst_structure_free (r);
    gst_structure_free (m);
  }
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_top_k)
{
  Fx f;
  GstStructure *r;
  gdouble sum = 0;

  fx_start (&f, make_element ("top-k", 0, NULL));
  r = run_frame (&f, 0);
  check_result (r, 0, N_CLASSES, cifar10);
  fail_if (gst_structure_has_field (r, "top-labels"));
  gst_structure_free (r);

  /* more than the classes: every class, the probabilities summing to 1 */
  g_object_set (f.e, "top-k", 100, NULL);
  r = run_frame (&f, 1);
  check_result (r, 100, N_CLASSES, cifar10);
  for (guint i = 0; i < N_CLASSES; i++) {
    gdouble p;
    earlyexit_result_get_top_k (r, i, NULL, &p);
    sum += p;
  }
  fail_unless (fabs (sum - 1.0) < 1e-9, "probabilities sum to %f", sum);
  gst_structure_free (r);
  fx_stop (&f);
}

GST_END_TEST;

/* ------------------------------------------------------------ policies */

static void
set_policy (GstElement *e, const gchar *policy, gint min_exit, gint max_exit)
{
  gst_util_set_object_arg (G_OBJECT (e), "policy", policy);
  g_object_set (e, "min-exit", min_exit, "max-exit", max_exit, NULL);
}

GST_START_TEST (test_policies)
{
  Fx f;
  GstStructure *r, *s;

  /* one element, policies changed while playing */
  fx_start (&f, make_element (NULL));

  set_policy (f.e, "anytime", -1, -1);
  r = run_frame (&f, 0);
  fail_unless_equals_int (exit_of (r), EXIT_FINAL);
  gst_structure_free (r);

  set_policy (f.e, "fixed", -1, EXIT_B2);
  r = run_frame (&f, 1);
  fail_unless_equals_int (exit_of (r), EXIT_B2);
  fail_unless_equals_string (earlyexit_result_get_exit (r), "b2");
  gst_structure_free (r);

  set_policy (f.e, "fixed", -1, -1);
  r = run_frame (&f, 2);
  fail_unless_equals_int (exit_of (r), EXIT_FINAL);
  gst_structure_free (r);

  set_policy (f.e, "full", -1, EXIT_B2);
  r = run_frame (&f, 3);
  fail_unless_equals_int (exit_of (r), EXIT_B2);
  gst_structure_free (r);

  set_policy (f.e, "full", -1, -1);
  r = run_frame (&f, 4);
  fail_unless_equals_int (exit_of (r), EXIT_FINAL);
  gst_structure_free (r);

  set_policy (f.e, "anytime", EXIT_B2, EXIT_B2);
  r = run_frame (&f, 5);
  fail_unless_equals_int (exit_of (r), EXIT_B2);
  gst_structure_free (r);

  /* which exits ran: anytime all three, fixed only its exit, full every
   * exit up to max-exit, min-exit none before it */
  s = get_stats (f.e);
  fail_unless_equals_uint64 (stats_u64 (s, "results"), 6);
  fail_unless_equals_uint64 (stats_u64 (s, "fresh-results"), 6);
  fail_unless_equals_uint64 (stats_exit_u64 (s, "exit-runs", EXIT_B1), 3);
  fail_unless_equals_uint64 (stats_exit_u64 (s, "exit-runs", EXIT_B2), 5);
  fail_unless_equals_uint64 (stats_exit_u64 (s, "exit-runs", EXIT_FINAL), 3);
  fail_unless_equals_uint64 (stats_exit_u64 (s, "exits-taken", EXIT_B1), 0);
  fail_unless_equals_uint64 (stats_exit_u64 (s, "exits-taken", EXIT_B2), 3);
  fail_unless_equals_uint64 (stats_exit_u64 (s, "exits-taken", EXIT_FINAL), 3);
  gst_structure_free (s);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_policy_confidence)
{
  Fx f;
  GstStructure *r, *s;
  gdouble conf[N_EXITS];
  guint k = 0;

  fx_start (&f, make_element (NULL));
  /* each exit's confidence on the test picture */
  for (int i = 0; i < N_EXITS; i++) {
    set_policy (f.e, "fixed", -1, i);
    r = run_frame (&f, k++);
    fail_unless_equals_int (exit_of (r), i);
    conf[i] = earlyexit_result_get_confidence (r);
    GST_INFO ("exit %d: confidence %f", i, conf[i]);
    gst_structure_free (r);
  }

  /* threshold 0: the first exit is always confident */
  set_policy (f.e, "confidence", -1, -1);
  g_object_set (f.e, "confidence-threshold", 0.0, NULL);
  r = run_frame (&f, k++);
  fail_unless_equals_int (exit_of (r), EXIT_B1);
  fail_unless (fabs (earlyexit_result_get_confidence (r) - conf[0]) < 1e-6);
  gst_structure_free (r);

  /* at each exit's own confidence (a hair below: the stop test compares a
   * float probability, 6e-8 relative rounding, to the double threshold):
   * the first exit reaching it */
  for (int t = 0; t < N_EXITS; t++) {
    gdouble threshold = conf[t] * (1.0 - 1e-6);
    int expect = 0;
    while (conf[expect] < threshold)
      expect++;
    g_object_set (f.e, "confidence-threshold", threshold, NULL);
    r = run_frame (&f, k++);
    fail_unless_equals_int (exit_of (r), expect);
    gst_structure_free (r);
  }

  /* threshold 1: never confident before the end, the whole network runs */
  g_object_set (f.e, "confidence-threshold", 1.0, NULL);
  r = run_frame (&f, k++);
  fail_unless_equals_int (exit_of (r), EXIT_FINAL);
  gst_structure_free (r);

  /* min-exit: the exits before it are not asked */
  g_object_set (f.e, "confidence-threshold", 0.0, "min-exit", EXIT_B2, NULL);
  r = run_frame (&f, k++);
  fail_unless_equals_int (exit_of (r), EXIT_B2);
  gst_structure_free (r);

  s = get_stats (f.e);
  /* threshold 0 twice, plus each exit's own threshold below the last */
  fail_unless (stats_u64 (s, "confident-stops") >= 2);
  gst_structure_free (s);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_deadline_shorter_than_any_exit)
{
  Fx f;
  GstStructure *r, *s;
  const gchar *policies[] = { "anytime", "confidence" };
  guint k = 0;

  /* 1 ns: nothing fits, the first allowed exit runs and is flagged */
  fx_start (&f, make_element ("deadline", (guint64)1, "confidence-threshold",
                              1.0, NULL));
  for (guint i = 0; i < G_N_ELEMENTS (policies); i++) {
    set_policy (f.e, policies[i], -1, -1);
    for (int n = 0; n < 3; n++) {
      r = run_frame (&f, k++);
      fail_unless_equals_int (exit_of (r), EXIT_B1);
      fail_unless (earlyexit_result_get_deadline_missed (r));
      fail_unless_equals_uint64 (earlyexit_result_get_deadline (r), 1);
      gst_structure_free (r);
    }
  }
  set_policy (f.e, "anytime", EXIT_B2, -1);
  r = run_frame (&f, k++);
  fail_unless_equals_int (exit_of (r), EXIT_B2);
  fail_unless (earlyexit_result_get_deadline_missed (r));
  gst_structure_free (r);

  /* fixed and full ignore the deadline; the miss is still reported */
  set_policy (f.e, "full", -1, -1);
  r = run_frame (&f, k++);
  fail_unless_equals_int (exit_of (r), EXIT_FINAL);
  fail_unless (earlyexit_result_get_deadline_missed (r));
  gst_structure_free (r);

  s = get_stats (f.e);
  fail_unless_equals_uint64 (stats_u64 (s, "deadline-misses"), k);
  gst_structure_free (s);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_interval)
{
  Fx f;
  GstStructure *kept = NULL, *s;

  fx_start (&f, make_element ("interval", 3, "unique-id", 5, NULL));
  for (guint k = 0; k < 7; k++) {
    GstStructure *r = run_frame (&f, k);
    fail_unless (earlyexit_result_is_fresh (r) == (k % 3 == 0), "frame %u", k);
    fail_unless_equals_int (earlyexit_result_get_unique_id (r), 5);
    check_result (r, 5, N_CLASSES, cifar10);
    if (!kept)
      kept = gst_structure_copy (r);
    /* the carried result is the last fresh one */
    fail_unless_equals_int (earlyexit_result_get_label_id (r),
                            earlyexit_result_get_label_id (kept));
    gst_structure_free (r);
  }
  s = get_stats (f.e);
  fail_unless_equals_uint64 (stats_u64 (s, "results"), 7);
  fail_unless_equals_uint64 (stats_u64 (s, "fresh-results"), 3);
  gst_structure_free (s);
  gst_structure_free (kept);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_latency)
{
  Fx f;
  guint64 latency = 1;
  GstElement *e = make_element ("deadline", (guint64)0, NULL);

  /* read-only processing-latency; `latency` is avcrowdcount's
   * GstAggregator property (a writable extra wait), not ours */
  fail_if (g_object_class_find_property (G_OBJECT_GET_CLASS (e), "latency"));
  g_object_get (e, "processing-latency", &latency, NULL);
  fail_unless_equals_uint64 (latency, 0);
  /* deadline 0: one frame duration from the caps */
  fx_start (&f, e);
  gst_structure_free (run_frame (&f, 0));
  g_object_get (f.e, "processing-latency", &latency, NULL);
  fail_unless_equals_uint64 (latency, FRAME);
  g_object_set (f.e, "deadline", (guint64)(5 * MS), NULL);
  g_object_get (f.e, "processing-latency", &latency, NULL);
  fail_unless_equals_uint64 (latency, 5 * MS);
  fx_stop (&f);
}

GST_END_TEST;

/* A deadline of 2^63 - 1 ns or more is no limit (it used to wrap a signed
 * sum into the past: every frame got the first exit, flagged missed). */
GST_START_TEST (test_deadline_no_limit)
{
  static const gchar *const deadlines[]
      = { "18446744073709551615", "9223372036854775807", "-1",
          "9223372036854775808" };
  Fx f;
  guint k = 0;

  fx_start (&f, make_element (NULL));
  for (guint i = 0; i < G_N_ELEMENTS (deadlines); i++) {
    guint64 latency = 0;

    /* as gst-launch-1.0 sets it: deadline=-1 is 2^64 - 1 */
    gst_util_set_object_arg (G_OBJECT (f.e), "deadline", deadlines[i]);
    for (int n = 0; n < 2; n++) {
      GstStructure *r = run_frame (&f, k++);
      fail_unless_equals_int (exit_of (r), EXIT_FINAL);
      fail_if (earlyexit_result_get_deadline_missed (r), "deadline %s",
               deadlines[i]);
      fail_unless_equals_uint64 (earlyexit_result_get_deadline (r),
                                 (guint64)G_MAXINT64);
      gst_structure_free (r);
    }
    /* the latency reported is twice the estimated full run, so that a
     * live pipeline can configure it: finite, more than nothing */
    g_object_get (f.e, "processing-latency", &latency, NULL);
    fail_unless (latency > 0 && latency < 60 * GST_SECOND,
                 "processing-latency %" G_GUINT64_FORMAT, latency);
  }
  fx_stop (&f);

  /* the same code serves avcrowdcount: deadline=-1 on a launch line */
  {
    GstElement *pipe = launch (
        "videotestsrc num-buffers=3 ! "
        "video/x-raw,format=RGB,width=64,height=32,framerate=25/1 ! c.video "
        "audiotestsrc num-buffers=20 samplesperbuffer=1600 ! "
        "audio/x-raw,format=F32LE,rate=16000,channels=1 ! c.audio "
        "avcrowdcount name=c model-file=\"%s\" device=cpu deadline=-1 ! "
        "fakesink",
        env_path ("EE_TEST_COUNT_MODEL"));
    GPtrArray *results = play_collect (pipe, "c");

    fail_unless_equals_int (results->len, 3);
    for (guint i = 0; i < results->len; i++) {
      const GstStructure *r = g_ptr_array_index (results, i);
      fail_unless_equals_string (earlyexit_result_get_exit (r), "final");
      fail_if (earlyexit_result_get_deadline_missed (r));
      fail_unless_equals_uint64 (earlyexit_result_get_deadline (r),
                                 (guint64)G_MAXINT64);
    }
    g_ptr_array_unref (results);
    gst_element_set_state (pipe, GST_STATE_NULL);
    gst_object_unref (pipe);
  }
}

GST_END_TEST;

/* The next warning on the bus (owned error), or NULL. */
static GError *
pop_warning (Fx *f)
{
  GstMessage *msg = gst_bus_pop_filtered (f->bus, GST_MESSAGE_WARNING);
  GError *err = NULL;

  if (msg) {
    gst_message_parse_warning (msg, &err, NULL);
    gst_message_unref (msg);
  }
  return err;
}

/* min-exit above max-exit, or an exit past the model's last: a warning
 * that says what runs, once per setting. */
GST_START_TEST (test_exit_range_warnings)
{
  Fx f;
  GstStructure *r;
  GError *err;
  guint k = 0;

  fx_start (&f, make_element (NULL));
  set_policy (f.e, "full", -1, -1);
  r = run_frame (&f, k++);
  fail_unless_equals_int (exit_of (r), EXIT_FINAL);
  gst_structure_free (r);
  fail_if (pop_warning (&f), "a warning for the default exits");

  /* min above max: only max-exit's exit */
  g_object_set (f.e, "min-exit", EXIT_FINAL, "max-exit", EXIT_B2, NULL);
  for (int n = 0; n < 2; n++) {
    r = run_frame (&f, k++);
    fail_unless_equals_int (exit_of (r), EXIT_B2);
    gst_structure_free (r);
  }
  err = pop_warning (&f);
  fail_unless (err != NULL, "no warning for min-exit > max-exit");
  fail_unless (err->domain == GST_RESOURCE_ERROR
               && err->code == GST_RESOURCE_ERROR_SETTINGS);
  fail_unless (strstr (err->message, "min-exit 2 is greater than max-exit 1")
                   && strstr (err->message, "Only exit 1 (b2) will run"),
               "%s", err->message);
  g_error_free (err);
  fail_if (pop_warning (&f), "warned twice for one setting");

  /* past the last exit: clamped to it */
  g_object_set (f.e, "min-exit", -1, "max-exit", 7, NULL);
  r = run_frame (&f, k++);
  fail_unless_equals_int (exit_of (r), EXIT_FINAL);
  gst_structure_free (r);
  err = pop_warning (&f);
  fail_unless (err != NULL, "no warning for max-exit past the last exit");
  fail_unless (
      strstr (err->message, "has exits 0 to 2 only")
          && strstr (err->message, "Exits 0 (b1) to 2 (final) will run"),
      "%s", err->message);
  g_error_free (err);

  g_object_set (f.e, "min-exit", 5, "max-exit", -1, NULL);
  r = run_frame (&f, k++);
  fail_unless_equals_int (exit_of (r), EXIT_FINAL);
  gst_structure_free (r);
  err = pop_warning (&f);
  fail_unless (err != NULL && strstr (err->message, "min-exit 5")
                   && strstr (err->message, "Only exit 2 (final) will run"),
               "%s", err ? err->message : "no warning");
  g_error_free (err);

  /* a sound range again: no warning */
  g_object_set (f.e, "min-exit", EXIT_B1, "max-exit", EXIT_B2, NULL);
  r = run_frame (&f, k++);
  fail_unless_equals_int (exit_of (r), EXIT_B2);
  gst_structure_free (r);
  fail_if (pop_warning (&f), "a warning for a sound range");
  fx_stop (&f);
}

GST_END_TEST;

/* ------------------------------------------------------------ pipelines */

static GstPadProbeReturn
count_metas (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  guint *counts = user_data;
  const GstStructure *r
      = gst_buffer_get_earlyexit_result (GST_PAD_PROBE_INFO_BUFFER (info));

  counts[0]++;
  if (r && g_strcmp0 (earlyexit_result_get_task (r), "label") == 0)
    counts[1]++;
  return GST_PAD_PROBE_OK;
}

/* videotestsrc -> exitclassify -> videoconvert -> videoscale: every buffer
 * keeps the meta; returns the number of messages. */
static guint
run_pipeline (gboolean post_messages, guint *counts)
{
  GstElement *pipe = launch (
      "videotestsrc num-buffers=10 ! "
      "video/x-raw,format=BGRx,width=64,height=48,framerate=25/1 ! "
      "exitclassify name=c model-file=\"%s\" device=cpu post-messages=%s "
      "deadline=10000000000 ! videoconvert ! videoscale ! "
      "video/x-raw,format=I420,width=16,height=12 ! fakesink name=s",
      env_path ("EE_TEST_IMAGE_MODEL"), post_messages ? "true" : "false");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), "s");
  GstPad *pad = gst_element_get_static_pad (sink, "sink");
  GPtrArray *results;
  guint n;

  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_metas, counts, NULL);
  results = play_collect (pipe, "c");
  for (guint i = 0; i < results->len; i++) {
    const GstStructure *m = g_ptr_array_index (results, i);
    fail_unless (gst_structure_has_name (m, "exitclassify"));
    check_result (m, 5, N_CLASSES, cifar10);
  }
  n = results->len;
  g_ptr_array_unref (results);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);
  gst_object_unref (pipe);
  return n;
}

GST_START_TEST (test_pipeline_meta_and_messages)
{
  guint counts[2] = { 0, 0 };

  fail_unless_equals_int (run_pipeline (TRUE, counts), 10);
  fail_unless_equals_int (counts[0], 10);
  fail_unless_equals_int (counts[1], 10);
  counts[0] = counts[1] = 0;
  fail_unless_equals_int (run_pipeline (FALSE, counts), 0);
  fail_unless_equals_int (counts[1], 10);
}

GST_END_TEST;

/* A live source: the pipeline's latency includes one frame budget. */
GST_START_TEST (test_live_latency)
{
  GstElement *pipe = launch (
      "videotestsrc is-live=true num-buffers=5 ! " VIDEO_CAPS " ! "
      "exitclassify name=c model-file=\"%s\" device=cpu deadline=30000000 ! "
      "fakesink sync=true",
      env_path ("EE_TEST_IMAGE_MODEL"));
  GPtrArray *results = play_collect (pipe, "c");
  GstQuery *q = gst_query_new_latency ();
  gboolean live;
  GstClockTime min, max;

  fail_unless_equals_int (results->len, 5);
  fail_unless (gst_element_query (pipe, q));
  gst_query_parse_latency (q, &live, &min, &max);
  fail_unless (live);
  fail_unless (min >= 30 * MS, "latency %" GST_TIME_FORMAT,
               GST_TIME_ARGS (min));
  gst_query_unref (q);
  g_ptr_array_unref (results);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);
}

GST_END_TEST;

GST_START_TEST (test_state_cycles)
{
  GstElement *pipe = launch (
      "videotestsrc num-buffers=4 ! " VIDEO_CAPS " ! "
      "exitclassify name=c model-file=\"%s\" device=cpu interval=2 ! fakesink",
      env_path ("EE_TEST_IMAGE_MODEL"));
  GstBus *bus = gst_element_get_bus (pipe);

  for (int cycle = 0; cycle < 3; cycle++) {
    GPtrArray *results = play_collect (pipe, "c");

    /* each cycle starts afresh: no result carried over */
    fail_unless_equals_int (results->len, 4);
    fail_unless (earlyexit_result_is_fresh (g_ptr_array_index (results, 0)));
    fail_if (earlyexit_result_is_fresh (g_ptr_array_index (results, 1)));
    g_ptr_array_unref (results);
    fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
                            GST_STATE_CHANGE_SUCCESS);
    gst_bus_set_flushing (bus, TRUE);
    gst_bus_set_flushing (bus, FALSE);
  }
  gst_object_unref (bus);
  gst_object_unref (pipe);
}

GST_END_TEST;

/* ------------------------------------------------------------ caps */

static gboolean
accepts (GstElement *e, const gchar *caps_str)
{
  return accepts_logged (e, "exitclassify", caps_str, NULL);
}

GST_START_TEST (test_wrong_caps)
{
  GstElement *e = make_element (NULL), *pipe;
  GError *err;
  gchar *log;

  fail_unless (accepts (e, VIDEO_CAPS));
  fail_unless (accepts (e, "video/x-raw,format=NV12,width=1920,height=1080,"
                           "framerate=30/1"));
  fail_if (accepts (e, "audio/x-raw"));
  /* the log says what the element takes and what to put in front */
  fail_if (accepts_logged (e, "exitclassify",
                           "video/x-raw,format=GRAY8,width=32,height=24,"
                           "framerate=25/1",
                           &log));
  fail_unless (strstr (log, "GRAY8") && strstr (log, "NV12")
                   && strstr (log, "videoconvert"),
               "refusal log: %s", log);
  g_free (log);
  gst_object_unref (e);

  /* a source that can only give refused caps (set after linking, which
   * would refuse them): a negotiation error, no crash or stall */
  pipe = launch ("videotestsrc num-buffers=3 ! capsfilter name=f ! "
                 "exitclassify model-file=\"%s\" device=cpu ! fakesink",
                 env_path ("EE_TEST_IMAGE_MODEL"));
  {
    GstElement *filter = gst_bin_get_by_name (GST_BIN (pipe), "f");
    gst_util_set_object_arg (G_OBJECT (filter), "caps",
                             "video/x-raw,format=GRAY16_LE,width=32,height=24");
    gst_object_unref (filter);
  }
  err = play_expecting_error (pipe);
  GST_INFO ("GRAY16_LE: %s", err->message);
  fail_unless (err->domain == GST_STREAM_ERROR || err->domain == GST_CORE_ERROR,
               "%s", err->message);
  g_error_free (err);
  gst_object_unref (pipe);
}

GST_END_TEST;

/* ------------------------------------------------------------ errors */

GST_START_TEST (test_model_errors)
{
  gchar *contents, *path;
  gsize size;
  guint8 junk[512];

  check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "model-file",
                     "/nonexistent/classifier.safetensors",
                     GST_RESOURCE_ERROR_NOT_FOUND, "does not exist",
                     "/nonexistent/classifier.safetensors");
  check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "model-file", NULL,
                     GST_RESOURCE_ERROR_NOT_FOUND, "model-file", NULL);

  for (gsize i = 0; i < sizeof junk; i++)
    junk[i] = (guint8)(i * 37 + 11);
  path = write_temp ("junk.safetensors", junk, sizeof junk);
  check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "model-file", path,
                     GST_RESOURCE_ERROR_FAILED, path, NULL);
  g_unlink (path);
  g_free (path);

  path = write_temp ("empty.safetensors", "", 0);
  check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "model-file", path,
                     GST_RESOURCE_ERROR_FAILED, path, NULL);
  g_unlink (path);
  g_free (path);

  /* the real model cut short */
  fail_unless (g_file_get_contents (env_path ("EE_TEST_IMAGE_MODEL"), &contents,
                                    &size, NULL));
  path = write_temp ("half.safetensors", contents, size / 2);
  check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "model-file", path,
                     GST_RESOURCE_ERROR_FAILED, path, NULL);
  g_unlink (path);
  g_free (path);
  g_free (contents);

  /* models for other elements */
  check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "model-file",
                     env_path ("EE_TEST_COUNT_MODEL"),
                     GST_RESOURCE_ERROR_FAILED, "crowd-counting", NULL);
  check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "model-file",
                     env_path ("EE_TEST_SC_MODEL"), GST_RESOURCE_ERROR_FAILED,
                     "audioexitclassify", NULL);
}

GST_END_TEST;

GST_START_TEST (test_labels_file)
{
  static const gchar good[] = "zero\r\none\r\ntwo\nthree\nfour\nfive\nsix\n"
                              "seven\neight\nnine\n\n\n";
  static const gchar *const names[]
      = { "zero", "one",   "two",   "three", "four", "five",
          "six",  "seven", "eight", "nine",  NULL };
  gchar *path = write_temp ("labels.txt", good, strlen (good));
  GstStructure *r;
  Fx f;

  /* the file's names replace the model's; CRLF and trailing blank lines
   * are fine */
  fx_start (&f, make_element ("labels-file", path, NULL));
  r = run_frame (&f, 0);
  check_result (r, 5, N_CLASSES, names);
  gst_structure_free (r);
  fx_stop (&f);
  g_unlink (path);
  g_free (path);

  check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "labels-file",
                     "/nonexistent/labels.txt", GST_RESOURCE_ERROR_NOT_FOUND,
                     "/nonexistent/labels.txt", "labels-file");
  path = write_temp ("labels3.txt", "a\nb\nc\n", 6);
  check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "labels-file", path,
                     GST_RESOURCE_ERROR_FAILED, "has 3 labels", "10 classes");
  g_unlink (path);
  g_free (path);
  path = write_temp ("labels-hole.txt", "a\n\nc\n", 5);
  check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "labels-file", path,
                     GST_RESOURCE_ERROR_FAILED, "line 2 is empty", NULL);
  g_unlink (path);
  g_free (path);
  path = write_temp ("labels-bin.txt", "a\xff\xfe\nb\n", 6);
  check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "labels-file", path,
                     GST_RESOURCE_ERROR_FAILED, "not UTF-8", NULL);
  g_unlink (path);
  g_free (path);
}

GST_END_TEST;

/* A copy of the model in $`model_var` with the first element of tensor
 * `name` (of dtype `dtype`) replaced by `value` (`size` bytes, little
 * endian); the copy's path (owned). */
static gchar *
patched_model (const gchar *model_var, const gchar *name, const gchar *dtype,
               const void *value, gsize size, const gchar *file)
{
  gchar *contents, *key = g_strdup_printf ("\"%s\":{", name), *path;
  gchar *want = g_strdup_printf ("\"dtype\":\"%s\"", dtype);
  const gchar *at, *offsets;
  gsize len;
  guint64 header, start;

  fail_unless (
      g_file_get_contents (env_path (model_var), &contents, &len, NULL));
  memcpy (&header, contents, 8);
  header = GUINT64_FROM_LE (header);
  at = g_strstr_len (contents + 8, (gssize)header, key);
  fail_unless (at != NULL, "no tensor %s in %s", name, model_var);
  fail_unless (strstr (at, want) && strstr (at, want) < strchr (at, '}'),
               "tensor %s is not %s", name, dtype);
  offsets = strstr (at, "\"data_offsets\":[");
  fail_unless (offsets != NULL);
  start = g_ascii_strtoull (offsets + strlen ("\"data_offsets\":["), NULL, 10);
  fail_unless (8 + header + start + size <= len);
  memcpy (contents + 8 + header + start, value, size);
  path = write_temp (file, contents, len);
  g_free (contents);
  g_free (key);
  g_free (want);
  return path;
}

/* A model whose weights hold a NaN or an infinity is refused at load, the
 * error naming the tensor (it used to load, and give NaN confidences). */
GST_START_TEST (test_nonfinite_weights)
{
  static const struct
  {
    const gchar *tensor;
    guint16 half; /* F16, little endian on the machines we run on */
    const gchar *what;
  } cases[] = {
    { "classifier.bias", 0x7e00, "NaN" },
    { "exits.b1.pos", 0x7c00, "infinity" },
    { "exits.b2.proj.weight", 0xfc00, "infinity" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    guint16 half = GUINT16_TO_LE (cases[i].half);
    gchar *path = patched_model ("EE_TEST_IMAGE_MODEL", cases[i].tensor, "F16",
                                 &half, sizeof half, "nonfinite.safetensors");
    gchar *needle = g_strdup_printf ("tensor \"%s\" holds", cases[i].tensor);

    check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "model-file",
                       path, GST_RESOURCE_ERROR_FAILED, needle, cases[i].what);
    g_unlink (path);
    g_free (path);
    g_free (needle);
  }
}

GST_END_TEST;

/* A network output that is not finite is published as valid=false without
 * the task's fields, with one warning (ee-element.c, the same for every
 * element). Finite weights that overflow: the crowd-counting test model
 * with a huge output bias, whose density map sums to infinity. */
GST_START_TEST (test_nonfinite_result_flagged)
{
  guint32 bits = GUINT32_TO_LE (0x7f61b1e6); /* 3e38f */
  gchar *path = patched_model ("EE_TEST_COUNT_MODEL", "output.bias", "F32",
                               &bits, sizeof bits, "overflow.safetensors");
  GstElement *pipe = launch (
      "videotestsrc num-buffers=3 ! "
      "video/x-raw,format=RGB,width=64,height=32,framerate=25/1 ! c.video "
      "audiotestsrc num-buffers=20 samplesperbuffer=1600 ! "
      "audio/x-raw,format=F32LE,rate=16000,channels=1 ! c.audio "
      "avcrowdcount name=c model-file=\"%s\" device=cpu policy=fixed "
      "deadline=10000000000 ! fakesink",
      path);
  GstBus *bus = gst_element_get_bus (pipe);
  GError *warning = NULL;
  guint results = 0, warnings = 0;
  gboolean eos = FALSE;

  fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING)
           == GST_STATE_CHANGE_FAILURE);
  while (!eos) {
    GstMessage *msg = gst_bus_timed_pop_filtered (
        bus, 30 * GST_SECOND,
        GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS | GST_MESSAGE_ERROR
            | GST_MESSAGE_WARNING);
    const GstStructure *r;
    gboolean valid = TRUE;

    fail_unless (msg != NULL, "the pipeline stalled");
    switch (GST_MESSAGE_TYPE (msg)) {
      case GST_MESSAGE_ERROR:
        fail ("pipeline error");
        break;
      case GST_MESSAGE_WARNING:
        g_clear_error (&warning);
        gst_message_parse_warning (msg, &warning, NULL);
        warnings++;
        break;
      case GST_MESSAGE_EOS:
        eos = TRUE;
        break;
      default:
        r = gst_message_get_structure (msg);
        if (!gst_structure_has_name (r, "avcrowdcount"))
          break;
        results++;
        fail_unless (gst_structure_get_boolean (r, "valid", &valid) && !valid,
                     "frame %u: valid", results);
        fail_if (earlyexit_result_is_valid (r));
        fail_if (gst_structure_has_field (r, "count"),
                 "frame %u: a count of %f", results,
                 earlyexit_result_get_count (r));
        fail_unless_equals_string (earlyexit_result_get_task (r), "count");
        fail_unless_equals_string (earlyexit_result_get_exit (r), "final");
        break;
    }
    gst_message_unref (msg);
  }
  fail_unless_equals_int (results, 3);
  fail_unless_equals_int (warnings, 1);
  fail_unless (strstr (warning->message, "NaN or infinite")
                   && strstr (warning->message, "valid=false"),
               "%s", warning->message);
  g_error_free (warning);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_unlink (path);
  g_free (path);
}

GST_END_TEST;

GST_START_TEST (test_device_errors)
{
  check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "device", "tpu",
                     GST_RESOURCE_ERROR_SETTINGS, "Unknown device", NULL);
  check_start_error ("exitclassify", "EE_TEST_IMAGE_MODEL", "precision", "fp16",
                     GST_RESOURCE_ERROR_SETTINGS, "Precision fp16", NULL);
}

GST_END_TEST;

/* ------------------------------------------------------------ docs */

GST_START_TEST (test_inspect_documents_everything)
{
  Fx f;
  GstStructure *r, *m;

  fx_start (&f, make_element (NULL));
  r = run_frame (&f, 0);
  m = pop_message (&f);
  check_inspect_page (f.e, "exitclassify", m);
  gst_structure_free (r);
  gst_structure_free (m);
  fx_stop (&f);
}

GST_END_TEST;

static Suite *
exitclassify_suite (void)
{
  Suite *s = suite_create ("exitclassify");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_result_fields);
  tcase_add_test (tc, test_top_k);
  tcase_add_test (tc, test_policies);
  tcase_add_test (tc, test_policy_confidence);
  tcase_add_test (tc, test_deadline_shorter_than_any_exit);
  tcase_add_test (tc, test_interval);
  tcase_add_test (tc, test_latency);
  tcase_add_test (tc, test_deadline_no_limit);
  tcase_add_test (tc, test_exit_range_warnings);
  tcase_add_test (tc, test_pipeline_meta_and_messages);
  tcase_add_test (tc, test_live_latency);
  tcase_add_test (tc, test_state_cycles);
  tcase_add_test (tc, test_wrong_caps);
  tcase_add_test (tc, test_model_errors);
  tcase_add_test (tc, test_labels_file);
  tcase_add_test (tc, test_nonfinite_weights);
  tcase_add_test (tc, test_nonfinite_result_flagged);
  tcase_add_test (tc, test_device_errors);
  tcase_add_test (tc, test_inspect_documents_everything);
  return s;
}

GST_CHECK_MAIN (exitclassify);
