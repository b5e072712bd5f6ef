/* gst-earlyexit: elements sharing one engine (model-instance-id):
 * - 2 and 4 avcrowdcount elements on one model give each frame the same
 *   result as private engines do, bit for bit, with one engine and a stream
 *   each;
 * - one element's state changes (leaving, joining again) while another
 *   plays on the same engine;
 * - the same id with another model file is refused with a clear error;
 * - with batch-size, frames of several elements run in batched steps and
 *   each still gets its own frame's count; another batch size on the same
 *   id is refused. */
#include <math.h>
#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <string.h>

#include "earlyexit-meta.h"

#define VIDEO_CAPS "video/x-raw,format=RGB,width=64,height=48,framerate=25/1"
#define AUDIO_CAPS "audio/x-raw,format=F32LE,rate=16000,channels=1"

static const gchar *
model_path (void)
{
  const gchar *p = g_getenv ("EE_TEST_MODEL");

  fail_unless (p != NULL, "EE_TEST_MODEL is not set");
  return p;
}

/* The counts of every frame, in order, collected at a fakesink. */
typedef struct
{
  GMutex lock;
  GArray *counts;
} Sink;

static GstPadProbeReturn
collect (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Sink *s = user_data;
  const GstStructure *r
      = gst_buffer_get_earlyexit_result (GST_PAD_PROBE_INFO_BUFFER (info));
  double c = r ? earlyexit_result_get_count (r) : -1.0;

  g_mutex_lock (&s->lock);
  g_array_append_val (s->counts, c);
  g_mutex_unlock (&s->lock);
  return GST_PAD_PROBE_OK;
}

static guint
sink_len (Sink *s)
{
  guint n;

  g_mutex_lock (&s->lock);
  n = s->counts->len;
  g_mutex_unlock (&s->lock);
  return n;
}

/* `n` elements counting the same test signal (policy full: every exit),
 * private engines when id is NULL, with `extra` properties (may be ""); the
 * counts of each in sinks[k]. */
static GstElement *
counting_pipeline_with (int n, const gchar *id, const gchar *extra, int frames,
                        gboolean live, Sink *sinks)
{
  GString *desc = g_string_new (NULL);
  GstElement *pipe;
  GError *err = NULL;

  g_string_append_printf (
      desc,
      "videotestsrc num-buffers=%d is-live=%d pattern=ball ! " VIDEO_CAPS
      " ! tee name=vt audiotestsrc num-buffers=%d is-live=%d "
      "samplesperbuffer=640 wave=sine ! " AUDIO_CAPS " ! tee name=at ",
      frames, live, frames + 13, live);
  for (int k = 0; k < n; k++)
    g_string_append_printf (
        desc,
        "avcrowdcount name=c%d model-file=\"%s\" device=cpu policy=full "
        "%s%s %s ! fakesink name=s%d sync=false vt. ! queue ! c%d.video at. ! "
        "queue ! c%d.audio ",
        k, model_path (), id ? "model-instance-id=" : "", id ? id : "", extra,
        k, k, k);
  pipe = gst_parse_launch (desc->str, &err);
  fail_unless (pipe != NULL, "%s", err ? err->message : "");
  g_string_free (desc, TRUE);
  for (int k = 0; k < n; k++) {
    gchar *name = g_strdup_printf ("s%d", k);
    GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), name);
    GstPad *pad = gst_element_get_static_pad (sink, "sink");

    g_mutex_init (&sinks[k].lock);
    sinks[k].counts = g_array_new (FALSE, FALSE, sizeof (double));
    gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, collect, &sinks[k],
                       NULL);
    gst_object_unref (pad);
    gst_object_unref (sink);
    g_free (name);
  }
  return pipe;
}

static GstElement *
counting_pipeline (int n, const gchar *id, int frames, gboolean live,
                   Sink *sinks)
{
  return counting_pipeline_with (n, id, "", frames, live, sinks);
}

static void
sinks_clear (Sink *sinks, int n)
{
  for (int k = 0; k < n; k++) {
    g_array_unref (sinks[k].counts);
    g_mutex_clear (&sinks[k].lock);
  }
}

static void
run_to_eos (GstElement *pipe)
{
  GstBus *bus = gst_element_get_bus (pipe);
  GstMessage *msg;

  fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING)
           == GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_timed_pop_filtered (bus, 120 * GST_SECOND,
                                    GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no EOS within 120 s");
  fail_unless (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS, "error: %s",
               GST_MESSAGE_TYPE_NAME (msg));
  gst_message_unref (msg);
  gst_object_unref (bus);
}

static GstStructure *
stats_of (GstElement *pipe, const gchar *name)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipe), name);
  GstStructure *s = NULL;

  g_object_get (e, "stats", &s, NULL);
  gst_object_unref (e);
  return s;
}

static void
check_shared (int n)
{
  Sink priv[1], shared[4];
  GstElement *pipe;
  const int frames = 12;

  /* the reference: one element on a private engine */
  pipe = counting_pipeline (1, NULL, frames, FALSE, priv);
  run_to_eos (pipe);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);
  fail_unless_equals_int (priv[0].counts->len, frames);

  pipe = counting_pipeline (n, "shared-test", frames, FALSE, shared);
  run_to_eos (pipe);
  for (int k = 0; k < n; k++) {
    gchar *name = g_strdup_printf ("c%d", k);
    GstStructure *s = stats_of (pipe, name);
    gint streams = 0;

    /* one engine, a stream per element */
    fail_unless (gst_structure_get_int (s, "engine-streams", &streams));
    fail_unless_equals_int (streams, n);
    fail_unless_equals_string (
        gst_structure_get_string (s, "model-instance-id"), "shared-test");
    gst_structure_free (s);
    g_free (name);
    fail_unless_equals_int (shared[k].counts->len, frames);
    /* bit for bit what a private engine gives */
    fail_unless (memcmp (shared[k].counts->data, priv[0].counts->data,
                         frames * sizeof (double))
                     == 0,
                 "element %d differs from a private engine", k);
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);
  sinks_clear (priv, 1);
  sinks_clear (shared, n);
}

GST_START_TEST (test_two_elements_share) { check_shared (2); }

GST_END_TEST;

GST_START_TEST (test_four_elements_share) { check_shared (4); }

GST_END_TEST;

GST_START_TEST (test_leave_and_join)
{
  Sink a[1], b[1];
  GstElement *pa = counting_pipeline (1, "leave-join", 300, TRUE, a);
  GstElement *pb = counting_pipeline (1, "leave-join", 1000, TRUE, b);
  guint before;

  fail_if (gst_element_set_state (pa, GST_STATE_PLAYING)
           == GST_STATE_CHANGE_FAILURE);
  for (int round = 0; round < 3; round++) {
    guint got_b = sink_len (&b[0]);

    /* b joins, runs a few frames, leaves; a goes on throughout */
    fail_if (gst_element_set_state (pb, GST_STATE_PLAYING)
             == GST_STATE_CHANGE_FAILURE);
    for (int i = 0; i < 100 && sink_len (&b[0]) < got_b + 3; i++)
      g_usleep (20000);
    fail_unless (sink_len (&b[0]) >= got_b + 3, "b got no frames");
    before = sink_len (&a[0]);
    fail_unless_equals_int (gst_element_set_state (pb, GST_STATE_NULL),
                            GST_STATE_CHANGE_SUCCESS);
    for (int i = 0; i < 100 && sink_len (&a[0]) < before + 3; i++)
      g_usleep (20000);
    fail_unless (sink_len (&a[0]) >= before + 3,
                 "a stopped when b left (round %d)", round);
  }
  gst_element_set_state (pa, GST_STATE_NULL);
  gst_object_unref (pa);
  gst_object_unref (pb);
  sinks_clear (a, 1);
  sinks_clear (b, 1);
}

GST_END_TEST;

GST_START_TEST (test_other_model_refused)
{
  Sink a[1];
  GstElement *pa = counting_pipeline (1, "refusal", 1000, TRUE, a);
  gchar *copy = g_build_filename (g_get_tmp_dir (), "ee-shared-copy.st", NULL);
  gchar *contents;
  gsize size;
  GstElement *other;
  GstBus *bus;
  GstMessage *msg;
  GError *err = NULL;
  gchar *debug = NULL;

  fail_unless (g_file_get_contents (model_path (), &contents, &size, NULL));
  fail_unless (g_file_set_contents (copy, contents, size, NULL));
  g_free (contents);
  fail_if (gst_element_set_state (pa, GST_STATE_PLAYING)
           == GST_STATE_CHANGE_FAILURE);

  other = gst_element_factory_make ("avcrowdcount", NULL);
  g_object_set (other, "model-file", copy, "device", "cpu", "model-instance-id",
                "refusal", NULL);
  bus = gst_bus_new ();
  gst_element_set_bus (other, bus);
  fail_unless_equals_int (gst_element_set_state (other, GST_STATE_PAUSED),
                          GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL);
  gst_message_parse_error (msg, &err, &debug);
  fail_unless (
      g_error_matches (err, GST_RESOURCE_ERROR, GST_RESOURCE_ERROR_SETTINGS));
  fail_unless (strstr (err->message, "model-instance-id \"refusal\"") != NULL
                   && strstr (err->message, copy) != NULL,
               "%s", err->message);
  g_clear_error (&err);
  g_free (debug);
  gst_message_unref (msg);
  gst_element_set_state (other, GST_STATE_NULL);
  /* the state-changed message left on the bus holds the element, which
   * holds the bus: break the cycle */
  gst_element_set_bus (other, NULL);
  gst_object_unref (other);
  gst_object_unref (bus);

  /* the first element is unaffected */
  {
    guint before = sink_len (&a[0]);
    for (int i = 0; i < 100 && sink_len (&a[0]) < before + 3; i++)
      g_usleep (20000);
    fail_unless (sink_len (&a[0]) >= before + 3);
  }
  gst_element_set_state (pa, GST_STATE_NULL);
  gst_object_unref (pa);
  sinks_clear (a, 1);
  g_unlink (copy);
  g_free (copy);
}

GST_END_TEST;

/* Four elements on one engine with batch-size 4: frames waiting for the
 * same step at once run it as one call, and every element still gets its
 * own frame's count (to float rounding: a batched convolution may sum in
 * another order). */
GST_START_TEST (test_batched_share)
{
  Sink priv[1], shared[4];
  GstElement *pipe;
  const int frames = 12;
  guint64 batched = 0;

  pipe = counting_pipeline (1, NULL, frames, FALSE, priv);
  run_to_eos (pipe);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);

  pipe = counting_pipeline_with (4, "batched-test", "batch-size=4", frames,
                                 FALSE, shared);
  run_to_eos (pipe);
  for (int k = 0; k < 4; k++) {
    gchar *name = g_strdup_printf ("c%d", k);
    GstStructure *s = stats_of (pipe, name);
    guint64 b = 0;

    fail_unless (gst_structure_get_uint64 (s, "batched", &b));
    batched += b;
    gst_structure_free (s);
    g_free (name);
    fail_unless_equals_int (shared[k].counts->len, frames);
    for (int f = 0; f < frames; f++) {
      double a = g_array_index (shared[k].counts, double, f);
      double r = g_array_index (priv[0].counts, double, f);

      fail_unless (fabs (a - r) <= 1e-4 * MAX (fabs (r), 1.0),
                   "element %d frame %d: %g batched, %g alone", k, f, a, r);
    }
  }
  /* four streams of frames arriving together: some ran batched */
  fail_unless (batched > 0);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);
  sinks_clear (priv, 1);
  sinks_clear (shared, 4);

  /* the same id with another batch size: refused */
  pipe = counting_pipeline_with (1, "batched-test", "batch-size=4", 1000, TRUE,
                                 priv);
  fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING)
           == GST_STATE_CHANGE_FAILURE);
  {
    GstElement *other = gst_element_factory_make ("avcrowdcount", NULL);
    GstBus *bus = gst_bus_new ();
    GstMessage *msg;
    GError *err = NULL;

    g_object_set (other, "model-file", model_path (), "device", "cpu",
                  "model-instance-id", "batched-test", "batch-size", 2, NULL);
    gst_element_set_bus (other, bus);
    fail_unless_equals_int (gst_element_set_state (other, GST_STATE_PAUSED),
                            GST_STATE_CHANGE_FAILURE);
    msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
    fail_unless (msg != NULL);
    gst_message_parse_error (msg, &err, NULL);
    fail_unless (strstr (err->message, "batch size") != NULL, "%s",
                 err->message);
    g_clear_error (&err);
    gst_message_unref (msg);
    gst_element_set_state (other, GST_STATE_NULL);
    gst_element_set_bus (other, NULL);
    gst_object_unref (other);
    gst_object_unref (bus);
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pipe);
  sinks_clear (priv, 1);
}

GST_END_TEST;

static Suite *
shared_engine_suite (void)
{
  Suite *s = suite_create ("shared-engine");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_two_elements_share);
  tcase_add_test (tc, test_four_elements_share);
  tcase_add_test (tc, test_leave_and_join);
  tcase_add_test (tc, test_other_model_refused);
  tcase_add_test (tc, test_batched_share);
  return s;
}

GST_CHECK_MAIN (shared_engine);
