/* gst-earlyexit: GstCheck tests of the avcrowdcount element (CPU backend,
 * a small random-weight model from $EE_TEST_MODEL).
 *
 * The harness tests feed the `video` and `audio` pads from two harnesses and
 * keep at most one buffer waiting on each pad, so they behave the same
 * whether the aggregator treats the harness as live or not. */
#include <gst/check/gstcheck.h>
#include <gst/check/gstharness.h>
#include <gst/audio/audio.h>
#include <glib/gstdio.h>
#include <math.h>

#include "earlyexit-meta.h"

#define VIDEO_CAPS "video/x-raw,format=RGB,width=32,height=24,framerate=25/1"
#define AUDIO_CAPS                                                             \
  "audio/x-raw,format=F32LE,rate=16000,channels=1,"                            \
  "layout=interleaved"
#define FRAME (GST_SECOND / 25)
#define MS GST_MSECOND
#define RATE 16000
/* A deadline no exit of the test model comes near. */
#define GENEROUS (10 * GST_SECOND)

/* The test model's exits, in anytime order; v1 is the visual-only one. */
#define N_EXITS 4
#define EXIT_V1 0
#define EXIT_AV1 1
#define EXIT_AV2 2
#define EXIT_FINAL 3

static const gchar *
model_path (void)
{
  const gchar *p = g_getenv ("EE_TEST_MODEL");

  fail_unless (p != NULL, "EE_TEST_MODEL is not set (run through meson test)");
  return p;
}

/* An avcrowdcount with the test model and the given properties (NULL
 * terminated name/value pairs). */
static GstElement *
make_element (const gchar *first, ...)
{
  GstElement *e = gst_element_factory_make ("avcrowdcount", NULL);
  va_list ap;

  fail_unless (e != NULL, "avcrowdcount not found: is GST_PLUGIN_PATH set?");
  /* device=auto would try CUDA first (about a second each time); the
   * harness tests decide themselves when a pad gets data, however slowly
   * the machine runs them: no input-timeout there */
  g_object_set (e, "model-file", model_path (), "deadline", GENEROUS, "device",
                "cpu", "input-timeout", G_MAXUINT64, NULL);
  va_start (ap, first);
  if (first)
    g_object_set_valist (G_OBJECT (e), first, ap);
  va_end (ap);
  return e;
}

/* Ramp audio (see ramp_value) an element has had: the samples at running
 * time [start, end) / 16000 s, the one at i holding ramp_value (i + offset).
 */
typedef struct
{
  gint64 start, end, offset;
} Ramp;

typedef struct
{
  GstElement *e;
  GstHarness *v; /* feeds `video`, pulls `src` */
  GstHarness *a; /* feeds `audio` */
  GstBus *bus;
  GstClockTime audio_end; /* where the audio pushed so far ends */
  gboolean audio_eos;     /* EOS sent on `audio` */
  guint video_in;         /* frames pushed */
  Ramp ramp;              /* ramp audio pushed */
  guint ramp_chunks;
} Fx;

static void
fx_start (Fx *f, GstElement *e)
{
  memset (f, 0, sizeof *f);
  f->e = e;
  f->bus = gst_bus_new ();
  gst_element_set_bus (e, f->bus);
  f->v = gst_harness_new_with_element (e, "video", "src");
  f->a = gst_harness_new_with_element (e, "audio", NULL);
  gst_harness_set_src_caps_str (f->v, VIDEO_CAPS);
  gst_harness_set_src_caps_str (f->a, AUDIO_CAPS);
}

static void
fx_stop (Fx *f)
{
  gst_harness_teardown (f->a);
  gst_harness_teardown (f->v);
  gst_element_set_bus (f->e, NULL);
  gst_object_unref (f->bus);
  gst_object_unref (f->e);
}

static GstBuffer *
video_buffer (GstClockTime t)
{
  GstBuffer *buf = gst_buffer_new_allocate (NULL, 32 * 24 * 3, NULL);

  gst_buffer_memset (buf, 0, (guint8)(t / FRAME * 7), 32 * 24 * 3);
  GST_BUFFER_PTS (buf) = t;
  GST_BUFFER_DURATION (buf) = FRAME;
  return buf;
}

static void
push_video (Fx *f, GstClockTime t)
{
  fail_unless_equals_int (gst_harness_push (f->v, video_buffer (t)),
                          GST_FLOW_OK);
  f->video_in++;
}

/* A 440 Hz tone over [t, t + dur). */
static GstBuffer *
audio_buffer (GstClockTime t, GstClockTime dur)
{
  gsize n = gst_util_uint64_scale_round (dur, RATE, GST_SECOND);
  guint64 first = gst_util_uint64_scale_round (t, RATE, GST_SECOND);
  GstBuffer *buf = gst_buffer_new_allocate (NULL, n * sizeof (float), NULL);
  GstMapInfo map;

  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (gsize i = 0; i < n; i++)
    ((float *)map.data)[i]
        = 0.3f * (float)sin (2 * G_PI * 440.0 * (first + i) / RATE);
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = t;
  GST_BUFFER_DURATION (buf) = dur;
  return buf;
}

static void
push_audio (Fx *f, GstClockTime t, GstClockTime dur)
{
  fail_unless_equals_int (gst_harness_push (f->a, audio_buffer (t, dur)),
                          GST_FLOW_OK);
  f->audio_end = t + dur;
}

/* Pushes 100 ms chunks from the current audio end up to `until`. */
static void
push_audio_until (Fx *f, GstClockTime until)
{
  while (f->audio_end < until) {
    GstClockTime dur = MIN (100 * MS, until - f->audio_end);
    push_audio (f, f->audio_end, dur);
  }
}

static void
push_audio_eos (Fx *f)
{
  fail_unless (gst_harness_push_event (f->a, gst_event_new_eos ()));
  f->audio_eos = TRUE;
}

static void
push_audio_gap (Fx *f, GstClockTime t, GstClockTime dur)
{
  fail_unless (gst_harness_push_event (f->a, gst_event_new_gap (t, dur)));
  f->audio_end = t + dur;
}

/* The result of the next output buffer (a copy; the buffer is dropped). */
static GstStructure *
pull_result (Fx *f)
{
  GstBuffer *buf = gst_harness_pull (f->v);
  const GstStructure *r;
  GstStructure *copy;

  fail_unless (buf != NULL, "no output buffer");
  r = gst_buffer_get_earlyexit_result (buf);
  fail_unless (r != NULL, "output buffer without the result meta");
  copy = gst_structure_copy (r);
  gst_buffer_unref (buf);
  return copy;
}

/* Nothing comes out within 100 ms. */
static void
assert_no_output (Fx *f)
{
  GstBuffer *buf;

  g_usleep (100 * 1000);
  buf = gst_harness_try_pull (f->v);
  fail_unless (buf == NULL, "a frame came out before its audio");
}

static void
assert_coverage (const GstStructure *r, double expected)
{
  double c = earlyexit_result_get_audio_coverage (r);

  fail_unless (fabs (c - expected) < 1e-3, "audio-coverage %f, expected %f", c,
               expected);
}

static void
assert_exit (const GstStructure *r, int expected)
{
  fail_unless_equals_int (earlyexit_result_get_exit_index (r), expected);
}

/* One frame at t with audio already sent up to its window end. */
static GstStructure *
run_frame (Fx *f, GstClockTime t)
{
  push_video (f, t);
  push_audio_until (f, t + GST_SECOND / 2);
  return pull_result (f);
}

/* Ends both streams and checks that every frame pushed came out, once. */
static void
assert_all_frames_out (Fx *f)
{
  GstEvent *ev;
  gboolean eos = FALSE;

  if (!f->audio_eos)
    push_audio_eos (f);
  fail_unless (gst_harness_push_event (f->v, gst_event_new_eos ()));
  while (!eos && (ev = gst_harness_pull_event (f->v))) {
    eos = GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
    gst_event_unref (ev);
  }
  fail_unless (eos, "no EOS at the end");
  fail_unless_equals_int (gst_harness_buffers_received (f->v), f->video_in);
}

static GstStructure *
get_stats (GstElement *e)
{
  GstStructure *s = NULL;

  g_object_get (e, "stats", &s, NULL);
  fail_unless (s != NULL);
  return s;
}

static guint64
stats_u64 (const GstStructure *s, const gchar *field)
{
  guint64 v = 0;

  fail_unless (gst_structure_get_uint64 (s, field, &v), "stats lack %s", field);
  return v;
}

/* ------------------------------------------------------------ sync */

GST_START_TEST (test_audio_late)
{
  Fx f;
  GstStructure *r;

  fx_start (&f, make_element (NULL));
  push_video (&f, 0);
  assert_no_output (&f);
  push_audio_until (&f, 400 * MS);
  assert_no_output (&f);
  push_audio_until (&f, 500 * MS);
  r = pull_result (&f);
  /* [-0.5 s, 0.5 s]: nothing exists before running time 0 */
  assert_coverage (r, 0.5);
  fail_unless (earlyexit_result_is_fresh (r));
  fail_unless (earlyexit_result_get_audio_used (r));
  fail_unless_equals_uint64 (earlyexit_result_get_window_start (r), 0);
  fail_unless_equals_uint64 (earlyexit_result_get_window_end (r), 500 * MS);
  gst_structure_free (r);

  push_video (&f, FRAME);
  assert_no_output (&f);
  push_audio_until (&f, 600 * MS);
  r = pull_result (&f);
  assert_coverage (r, 0.54);
  gst_structure_free (r);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_audio_early)
{
  Fx f;
  GstStructure *r;

  fx_start (&f, make_element (NULL));
  /* all the audio is there before any frame */
  push_audio (&f, 0, 1500 * MS);
  push_video (&f, 200 * MS);
  r = pull_result (&f);
  assert_coverage (r, 0.7);
  gst_structure_free (r);
  push_video (&f, 600 * MS);
  r = pull_result (&f);
  assert_coverage (r, 1.0);
  gst_structure_free (r);
  push_video (&f, 1000 * MS);
  r = pull_result (&f);
  assert_coverage (r, 1.0);
  assert_exit (r, EXIT_FINAL);
  gst_structure_free (r);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_audio_missing)
{
  Fx f;
  GstStructure *r;

  fx_start (&f, make_element (NULL));
  push_audio_eos (&f);
  for (int i = 0; i < 3; i++) {
    push_video (&f, i * FRAME);
    r = pull_result (&f);
    assert_coverage (r, 0.0);
    fail_if (earlyexit_result_get_audio_used (r));
    /* only the visual exit can run */
    assert_exit (r, EXIT_V1);
    fail_unless_equals_string (earlyexit_result_get_exit (r), "v1");
    gst_structure_free (r);
  }
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_audio_gap)
{
  Fx f;
  GstStructure *r;

  fx_start (&f, make_element (NULL));
  push_video (&f, 1000 * MS);
  push_audio_until (&f, 500 * MS);
  push_audio_gap (&f, 500 * MS, 300 * MS);
  assert_no_output (&f);
  push_audio_until (&f, 1500 * MS);
  r = pull_result (&f);
  /* window [0.5, 1.5]: the gap [0.5, 0.8) is uncovered */
  assert_coverage (r, 0.7);
  fail_unless (earlyexit_result_get_audio_used (r));
  gst_structure_free (r);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_audio_discont)
{
  Fx f;
  GstStructure *r;
  GstBuffer *buf;

  fx_start (&f, make_element (NULL));
  push_video (&f, 1000 * MS);
  push_audio_until (&f, 500 * MS);
  /* timestamps jump by 300 ms without a gap event */
  buf = audio_buffer (800 * MS, 100 * MS);
  GST_BUFFER_FLAG_SET (buf, GST_BUFFER_FLAG_DISCONT);
  fail_unless_equals_int (gst_harness_push (f.a, buf), GST_FLOW_OK);
  f.audio_end = 900 * MS;
  push_audio_until (&f, 1500 * MS);
  r = pull_result (&f);
  assert_coverage (r, 0.7);
  gst_structure_free (r);

  /* 5 ms of timestamp jitter continues the stream exactly: window
   * [0.6, 1.6] misses only [0.6, 0.8) */
  push_video (&f, 1100 * MS);
  fail_unless_equals_int (
      gst_harness_push (f.a, audio_buffer (1505 * MS, 100 * MS)), GST_FLOW_OK);
  r = pull_result (&f);
  assert_coverage (r, 0.8);
  gst_structure_free (r);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_audio_eos_mid_window)
{
  Fx f;
  GstStructure *r;

  fx_start (&f, make_element (NULL));
  push_video (&f, 1000 * MS);
  push_audio_until (&f, 1200 * MS);
  assert_no_output (&f);
  /* the audio ends inside the window: the frame goes with what there is */
  push_audio_eos (&f);
  r = pull_result (&f);
  assert_coverage (r, 0.7);
  assert_exit (r, EXIT_FINAL);
  gst_structure_free (r);
  /* later frames do not wait either */
  push_video (&f, 1400 * MS);
  r = pull_result (&f);
  assert_coverage (r, 0.3);
  gst_structure_free (r);
  push_video (&f, 1800 * MS);
  r = pull_result (&f);
  assert_coverage (r, 0.0);
  assert_exit (r, EXIT_V1);
  gst_structure_free (r);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_video_eos)
{
  Fx f;
  GstStructure *r;
  GstEvent *ev;
  gboolean eos = FALSE;

  fx_start (&f, make_element (NULL));
  r = run_frame (&f, 0);
  gst_structure_free (r);
  fail_unless (gst_harness_push_event (f.v, gst_event_new_eos ()));
  /* the audio goes on: the element ends anyway */
  push_audio (&f, 500 * MS, 100 * MS);
  while ((ev = gst_harness_pull_event (f.v))) {
    eos = GST_EVENT_TYPE (ev) == GST_EVENT_EOS;
    gst_event_unref (ev);
    if (eos)
      break;
  }
  fail_unless (eos, "no EOS after video EOS");
  fx_stop (&f);
}

GST_END_TEST;

/* What a flushing seek sends down both branches. */
static void
flush_both (Fx *f)
{
  guint32 seqnum = gst_util_seqnum_next ();
  GstHarness *hs[2] = { f->v, f->a };
  GstSegment seg;

  gst_segment_init (&seg, GST_FORMAT_TIME);
  for (int i = 0; i < 2; i++) {
    GstEvent *ev = gst_event_new_flush_start ();
    gst_event_set_seqnum (ev, seqnum);
    fail_unless (gst_harness_push_event (hs[i], ev));
  }
  for (int i = 0; i < 2; i++) {
    GstEvent *ev = gst_event_new_flush_stop (TRUE);
    gst_event_set_seqnum (ev, seqnum);
    fail_unless (gst_harness_push_event (hs[i], ev));
  }
  for (int i = 0; i < 2; i++) {
    GstEvent *ev = gst_event_new_segment (&seg);
    gst_event_set_seqnum (ev, seqnum);
    fail_unless (gst_harness_push_event (hs[i], ev));
  }
}

GST_START_TEST (test_flush_clears_state)
{
  Fx f;
  GstStructure *r;

  fx_start (&f, make_element ("interval", 2, NULL));
  r = run_frame (&f, 0);
  fail_unless (earlyexit_result_is_fresh (r));
  gst_structure_free (r);
  /* outside live pipelines the aggregator calls the element only while both
   * pads have data */
  push_audio_until (&f, 600 * MS);
  push_video (&f, FRAME);
  r = pull_result (&f);
  fail_if (earlyexit_result_is_fresh (r));
  gst_structure_free (r);

  /* flushing seek upstream: the audio and the last result are forgotten */
  flush_both (&f);
  /* the frame after the flush is fresh again and does not see old audio */
  push_video (&f, 2 * FRAME);
  f.audio_end = 400 * MS;
  push_audio_until (&f, 580 * MS);
  r = pull_result (&f);
  fail_unless (earlyexit_result_is_fresh (r));
  assert_coverage (r, 0.18);
  gst_structure_free (r);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_live_timeout)
{
  Fx f;
  GstStructure *r;
  GstTestClock *clock;
  GstClockID id;

  fx_start (&f, make_element (NULL));
  /* no audio at all in a live pipeline: the frame waits for the
   * aggregator's timeout, not forever */
  push_video (&f, 0);
  clock = GST_TEST_CLOCK (gst_element_get_clock (f.e));
  fail_unless (clock != NULL);
  gst_test_clock_wait_for_next_pending_id (clock, &id);
  gst_clock_id_unref (id);
  assert_no_output (&f);
  gst_test_clock_crank (clock);
  r = pull_result (&f);
  assert_coverage (r, 0.0);
  assert_exit (r, EXIT_V1);
  gst_structure_free (r);
  gst_object_unref (clock);
  fx_stop (&f);
}

GST_END_TEST;

/* ------------------------------------------------------------ exact sync */

/* Audio that says where it is: sample i (at running time i / 16000 s) has the
 * value (i + 1) / 65536, exact in a float below 2^24 samples, so a sample
 * read back gives its index, and 0 means no audio. */
static float
ramp_value (gint64 index)
{
  return (float)(index + 1) / 65536.0f;
}

/* The sample nearest to running time t, a tie going to the later one. */
static gint64
sample_at (GstClockTime t)
{
  return (gint64)((t * RATE + GST_SECOND / 2) / GST_SECOND);
}

/* Pushes ramp audio from f->ramp.end up to at least sample `until`, but not
 * past `stop`, in buffers of changing sizes (so that some end inside a
 * window and some reach past it). */
static void
push_ramp (Fx *f, gint64 until, gint64 stop)
{
  static const gint64 sizes[] = { 1000, 1601, 333, 4000, 77, 2999 };

  while (f->ramp.end < MIN (until, stop)) {
    gint64 size = sizes[f->ramp_chunks++ % G_N_ELEMENTS (sizes)];
    gint64 n = MIN (size, stop - f->ramp.end);
    GstBuffer *buf = gst_buffer_new_allocate (NULL, n * sizeof (float), NULL);
    GstMapInfo map;

    gst_buffer_map (buf, &map, GST_MAP_WRITE);
    for (gint64 i = 0; i < n; i++)
      ((float *)map.data)[i] = ramp_value (f->ramp.end + i);
    gst_buffer_unmap (buf, &map);
    GST_BUFFER_PTS (buf)
        = gst_util_uint64_scale_int (f->ramp.end, GST_SECOND, RATE);
    GST_BUFFER_DURATION (buf)
        = gst_util_uint64_scale_int (f->ramp.end + n, GST_SECOND, RATE)
          - GST_BUFFER_PTS (buf);
    fail_unless_equals_int (gst_harness_push (f->a, buf), GST_FLOW_OK);
    f->ramp.end += n;
  }
}

/* What the window reads at running-time sample i: 0 without audio. */
static float
expected_sample (const Ramp *ramp, gint64 i)
{
  return i >= ramp->start && i < ramp->end ? ramp_value (i + ramp->offset)
                                           : 0.0f;
}

/* The running-time sample a window value came from; -1 for no audio. */
static gint64
sample_of (const Ramp *ramp, gdouble v)
{
  return v > 0 ? (gint64)(v * 65536.0) - 1 - ramp->offset : -1;
}

/* `r`, the result of the frame at running time t, was computed on exactly
 * the `window` around t: its times, its first and last samples (as the
 * features got them) and how many of its samples had audio. */
static void
check_window (const Ramp *ramp, const GstStructure *r, GstClockTime t,
              GstClockTime window)
{
  gint64 n = sample_at (window);
  gint64 first = sample_at (t) - n / 2, last = first + n - 1;
  gint64 covered
      = MAX (0, MIN (last + 1, ramp->end) - MAX (first, ramp->start));
  gdouble v0 = -1, v1 = -1, coverage = earlyexit_result_get_audio_coverage (r);

  fail_unless_equals_uint64 (earlyexit_result_get_window_start (r),
                             t > window / 2 ? t - window / 2 : 0);
  fail_unless_equals_uint64 (earlyexit_result_get_window_end (r),
                             t + window / 2);
  fail_unless (gst_structure_get_double (r, "window-first-sample", &v0)
               && gst_structure_get_double (r, "window-last-sample", &v1));
  /* a sample's value names its position: the message says which came */
  fail_unless (v0 == expected_sample (ramp, first),
               "frame %" GST_TIME_FORMAT ": first sample %" G_GINT64_FORMAT
               ", expected %" G_GINT64_FORMAT " (-1: none)",
               GST_TIME_ARGS (t), sample_of (ramp, v0),
               sample_of (ramp, expected_sample (ramp, first)));
  fail_unless (v1 == expected_sample (ramp, last),
               "frame %" GST_TIME_FORMAT ": last sample %" G_GINT64_FORMAT
               ", expected %" G_GINT64_FORMAT " (-1: none)",
               GST_TIME_ARGS (t), sample_of (ramp, v1),
               sample_of (ramp, expected_sample (ramp, last)));
  fail_unless (fabs (coverage * n - covered) < 0.01,
               "frame %" GST_TIME_FORMAT ": %.2f samples covered, expected "
               "%" G_GINT64_FORMAT,
               GST_TIME_ARGS (t), coverage * n, covered);
}

/* Feeds frames at `pts` (n of them, increasing) with ramp audio over samples
 * [audio_first, audio_stop), EOS after it, and checks every frame's window. */
static void
check_sync (const gchar *video_caps, GstClockTime window,
            const GstClockTime *pts, guint n, gint64 audio_first,
            gint64 audio_stop)
{
  Fx f;

  GstElement *e = make_element ("diagnostics", TRUE, "window", window,
                                "max-exit", EXIT_AV1, NULL);

  /* exit av1 reads the audio and is cheap */
  gst_util_set_object_arg (G_OBJECT (e), "policy", "fixed");
  fx_start (&f, e);
  gst_harness_set_src_caps_str (f.v, video_caps);
  f.ramp.start = f.ramp.end = audio_first;
  for (guint i = 0; i < n; i++) {
    GstStructure *r;

    push_video (&f, pts[i]);
    push_ramp (&f, sample_at (pts[i]) + sample_at (window) / 2, audio_stop);
    if (f.ramp.end == audio_stop && !f.audio_eos)
      push_audio_eos (&f);
    r = pull_result (&f);
    check_window (&f.ramp, r, pts[i], window);
    assert_exit (r, EXIT_AV1);
    gst_structure_free (r);
  }
  assert_all_frames_out (&f);
  fx_stop (&f);
}

/* Frames [0, 2 s) at fps_n/fps_d, timestamped as videotestsrc does. */
static guint
frame_times (gint fps_n, gint fps_d, GstClockTime *pts, guint max)
{
  guint n = 0;

  for (; n < max; n++) {
    pts[n] = gst_util_uint64_scale (n, fps_d * GST_SECOND, fps_n);
    if (pts[n] >= 2 * GST_SECOND)
      break;
  }
  return n;
}

GST_START_TEST (test_sync_exact_window)
{
  GstClockTime pts[64];
  guint n;

  /* 2 s of audio and video: the first and the last frames' windows reach
   * outside the audio */
  n = frame_times (25, 1, pts, G_N_ELEMENTS (pts));
  fail_unless_equals_int (n, 50);
  check_sync (VIDEO_CAPS, GST_SECOND, pts, n, 0, 2 * RATE);
  n = frame_times (30000, 1001, pts, G_N_ELEMENTS (pts));
  fail_unless_equals_int (n, 60);
  check_sync ("video/x-raw,format=RGB,width=32,height=24,"
              "framerate=30000/1001",
              GST_SECOND, pts, n, 0, 2 * RATE);
}

GST_END_TEST;

GST_START_TEST (test_sync_arbitrary_pts)
{
  /* between samples, on them, half a sample off (the tie), near the ends */
  static const GstClockTime pts[] = {
    0,          1,          31250,      62499,     123456789,
    499968750,  500000000,  500031249,  987654321, 1499999999,
    1500031250, 1777777777, 1999937500,
  };

  check_sync (VIDEO_CAPS, GST_SECOND, pts, G_N_ELEMENTS (pts), 0, 2 * RATE);
  /* a shorter window is the same window, smaller */
  check_sync (VIDEO_CAPS, 300 * MS, pts, G_N_ELEMENTS (pts), 0, 2 * RATE);
}

GST_END_TEST;

GST_START_TEST (test_sync_audio_starts_late)
{
  GstClockTime pts[64];
  guint n = frame_times (25, 1, pts, G_N_ELEMENTS (pts));

  /* the audio begins 0.3 s and one sample after the video */
  check_sync (VIDEO_CAPS, GST_SECOND, pts, n, 4801, 2 * RATE);
}

GST_END_TEST;

/* ------------------------------------------------------------ policies */

/* The exit index of 3 frames with full audio under `policy`. */
static void
check_policy (const gchar *policy, gint min_exit, gint max_exit,
              GstClockTime deadline, int expected)
{
  Fx f;

  fx_start (&f, make_element ("min-exit", min_exit, "max-exit", max_exit,
                              "deadline", deadline, NULL));
  gst_util_set_object_arg (G_OBJECT (f.e), "policy", policy);
  for (int i = 0; i < 3; i++) {
    GstStructure *r = run_frame (&f, 600 * MS + i * FRAME);
    fail_unless (earlyexit_result_get_exit_index (r) == expected,
                 "policy %s min %d max %d deadline %" GST_TIME_FORMAT
                 ": exit %d, "
                 "expected %d",
                 policy, min_exit, max_exit, GST_TIME_ARGS (deadline),
                 earlyexit_result_get_exit_index (r), expected);
    fail_unless_equals_int (earlyexit_result_get_n_exits (r), N_EXITS);
    fail_unless_equals_string (earlyexit_result_get_task (r), "count");
    fail_unless (isfinite (earlyexit_result_get_count (r)));
    fail_unless_equals_uint64 (earlyexit_result_get_deadline (r), deadline);
    gst_structure_free (r);
  }
  assert_all_frames_out (&f);
  fx_stop (&f);
}

GST_START_TEST (test_policy_anytime)
{
  check_policy ("anytime", -1, -1, GENEROUS, EXIT_FINAL);
  check_policy ("anytime", -1, EXIT_AV2, GENEROUS, EXIT_AV2);
  check_policy ("anytime", EXIT_AV1, EXIT_AV1, GENEROUS, EXIT_AV1);
}

GST_END_TEST;

GST_START_TEST (test_policy_fixed)
{
  check_policy ("fixed", -1, EXIT_AV1, GENEROUS, EXIT_AV1);
  check_policy ("fixed", -1, EXIT_V1, GENEROUS, EXIT_V1);
  /* fixed ignores the deadline */
  check_policy ("fixed", -1, -1, 1, EXIT_FINAL);
}

GST_END_TEST;

GST_START_TEST (test_policy_full)
{
  check_policy ("full", -1, -1, GENEROUS, EXIT_FINAL);
  check_policy ("full", -1, -1, 1, EXIT_FINAL);
  check_policy ("full", -1, EXIT_AV2, 1, EXIT_AV2);
}

GST_END_TEST;

GST_START_TEST (test_deadline_shorter_than_any_exit)
{
  Fx f;
  GstStructure *s;
  const GValue *taken;

  /* 1 ns: no exit fits; the first allowed exit still gives the result,
   * flagged as late */
  fx_start (&f, make_element ("deadline", (guint64)1, NULL));
  for (int i = 0; i < 3; i++) {
    GstStructure *r = run_frame (&f, 600 * MS + i * FRAME);
    assert_exit (r, EXIT_V1);
    fail_unless (earlyexit_result_get_deadline_missed (r));
    fail_unless (earlyexit_result_get_inference_time (r) > 1);
    gst_structure_free (r);
  }
  s = get_stats (f.e);
  fail_unless_equals_uint64 (stats_u64 (s, "frames"), 3);
  fail_unless_equals_uint64 (stats_u64 (s, "deadline-misses"), 3);
  taken = gst_structure_get_value (s, "exits-taken");
  fail_unless_equals_int (gst_value_array_get_size (taken), N_EXITS);
  fail_unless_equals_uint64 (
      g_value_get_uint64 (gst_value_array_get_value (taken, EXIT_V1)), 3);
  gst_structure_free (s);
  assert_all_frames_out (&f);
  fx_stop (&f);

  /* with min-exit the earliest result is that exit's */
  check_policy ("anytime", EXIT_AV1, -1, 1, EXIT_AV1);
}

GST_END_TEST;

GST_START_TEST (test_interval)
{
  Fx f;
  double fresh_count = 0;
  int fresh_exit = -1;

  fx_start (&f, make_element ("interval", 3, NULL));
  push_audio (&f, 0, 1500 * MS);
  for (int i = 0; i < 7; i++) {
    GstStructure *r;
    push_video (&f, 600 * MS + i * FRAME);
    r = pull_result (&f);
    if (i % 3 == 0) {
      fail_unless (earlyexit_result_is_fresh (r), "frame %d not fresh", i);
      fresh_count = earlyexit_result_get_count (r);
      fresh_exit = earlyexit_result_get_exit_index (r);
    } else {
      fail_if (earlyexit_result_is_fresh (r), "frame %d fresh", i);
      fail_unless (earlyexit_result_get_count (r) == fresh_count);
      fail_unless_equals_int (earlyexit_result_get_exit_index (r), fresh_exit);
    }
    gst_structure_free (r);
  }
  {
    GstStructure *s = get_stats (f.e);
    fail_unless_equals_uint64 (stats_u64 (s, "frames"), 7);
    fail_unless_equals_uint64 (stats_u64 (s, "fresh-frames"), 3);
    gst_structure_free (s);
  }
  fx_stop (&f);
}

GST_END_TEST;

/* ------------------------------------------------------------ latency, QoS */

static GstClockTime
query_min_latency (GstElement *e)
{
  GstQuery *q = gst_query_new_latency ();
  GstClockTime min, max;
  gboolean live;

  fail_unless (gst_element_query (e, q));
  gst_query_parse_latency (q, &live, &min, &max);
  gst_query_unref (q);
  fail_unless (live, "the harness is a live source");
  return min;
}

GST_START_TEST (test_latency_query)
{
  Fx f;

  fx_start (&f, make_element ("deadline", 20 * MS, NULL));
  fail_unless_equals_uint64 (query_min_latency (f.e), 520 * MS);
  /* a deadline change while playing updates it */
  g_object_set (f.e, "deadline", 30 * MS, NULL);
  fail_unless_equals_uint64 (query_min_latency (f.e), 530 * MS);
  fx_stop (&f);

  /* deadline 0: one frame (25 fps) */
  fx_start (&f,
            make_element ("deadline", (guint64)0, "window", 600 * MS, NULL));
  gst_structure_free (run_frame (&f, 0));
  fail_unless_equals_uint64 (query_min_latency (f.e), 340 * MS);
  fx_stop (&f);
}

GST_END_TEST;

static void
push_qos (Fx *f, GstClockTimeDiff diff, GstClockTime timestamp)
{
  gst_harness_push_upstream_event (
      f->v, gst_event_new_qos (GST_QOS_TYPE_UNDERFLOW, 1.5, diff, timestamp));
}

GST_START_TEST (test_qos)
{
  Fx f;
  GstStructure *r, *s;
  GstMessage *msg;
  GstClockTime t = 600 * MS;

  fx_start (&f, make_element (NULL));
  r = run_frame (&f, t);
  assert_exit (r, EXIT_FINAL);
  gst_structure_free (r);

  /* late by less than a quarter of the frame (40 ms): jitter, no change */
  push_qos (&f, 5 * MS, t);
  t += FRAME;
  r = run_frame (&f, t);
  assert_exit (r, EXIT_FINAL);
  gst_structure_free (r);

  /* downstream reports the frame late: the next one aims one exit lower
   * and a QoS message says so */
  push_qos (&f, 30 * MS, t);
  t += FRAME;
  r = run_frame (&f, t);
  assert_exit (r, EXIT_AV2);
  fail_unless (earlyexit_result_is_fresh (r));
  gst_structure_free (r);
  msg = gst_bus_pop_filtered (f.bus, GST_MESSAGE_QOS);
  fail_unless (msg != NULL, "no QoS message");
  fail_unless (GST_MESSAGE_SRC (msg) == GST_OBJECT (f.e));
  {
    GstFormat fmt;
    guint64 processed, dropped;
    gst_message_parse_qos_stats (msg, &fmt, &processed, &dropped);
    fail_unless_equals_uint64 (dropped, 0);
  }
  gst_message_unref (msg);

  /* a late report about a frame made before the change changes nothing */
  push_qos (&f, 30 * MS, t - FRAME);
  t += FRAME;
  r = run_frame (&f, t);
  assert_exit (r, EXIT_AV2);
  gst_structure_free (r);

  /* a late report about a frame after it lowers again */
  push_qos (&f, 30 * MS, t);
  t += FRAME;
  r = run_frame (&f, t);
  assert_exit (r, EXIT_AV1);
  gst_structure_free (r);

  /* on time for a while: one exit higher again */
  for (int i = 0; i < 25; i++)
    push_qos (&f, -10 * MS, t);
  t += FRAME;
  r = run_frame (&f, t);
  assert_exit (r, EXIT_AV2);
  gst_structure_free (r);

  s = get_stats (f.e);
  fail_unless_equals_uint64 (stats_u64 (s, "qos-lowered"), 2);
  gst_structure_free (s);
  fx_stop (&f);
}

GST_END_TEST;

/* ------------------------------------------------------------ caps */

static gboolean
accepts (GstElement *e, const gchar *pad_name, const gchar *caps_str)
{
  GstPad *pad = gst_element_get_static_pad (e, pad_name);
  GstCaps *caps = gst_caps_from_string (caps_str);
  gboolean ok = gst_pad_query_accept_caps (pad, caps);

  gst_caps_unref (caps);
  gst_object_unref (pad);
  return ok;
}

/* Sends caps `caps_str` through harness h and returns the element's error
 * message text (message and debug, owned); fails without one. */
static gchar *
caps_error (Fx *f, GstHarness *h, const gchar *caps_str)
{
  GstCaps *caps = gst_caps_from_string (caps_str);
  GstMessage *msg;
  GError *err = NULL;
  gchar *debug = NULL, *text;

  /* sticky: stored upstream even when refused, so no result to check */
  gst_harness_push_event (h, gst_event_new_caps (caps));
  gst_caps_unref (caps);
  /* the aggregator handles the event in its own thread */
  msg = gst_bus_timed_pop_filtered (f->bus, 30 * GST_SECOND, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error for caps %s", caps_str);
  gst_message_parse_error (msg, &err, &debug);
  fail_unless (err->domain == GST_CORE_ERROR
               && err->code == GST_CORE_ERROR_NEGOTIATION);
  text = g_strdup_printf ("%s\n%s", err->message, debug ? debug : "");
  g_error_free (err);
  g_free (debug);
  gst_message_unref (msg);
  return text;
}

GST_START_TEST (test_wrong_caps_refused)
{
  Fx f;
  gchar *text;

  fx_start (&f, make_element (NULL));
  /* the audio pad takes any raw audio */
  fail_unless (accepts (f.e, "audio", AUDIO_CAPS));
  fail_unless (accepts (f.e, "audio",
                        "audio/x-raw,format=S16LE,rate=16000,"
                        "channels=1,layout=interleaved"));
  fail_unless (accepts (f.e, "audio",
                        "audio/x-raw,format=F32LE,rate=44100,"
                        "channels=1,layout=interleaved"));
  fail_unless (accepts (f.e, "audio",
                        "audio/x-raw,format=S24_32BE,rate=48000,"
                        "channels=6,layout=non-interleaved"));
  fail_if (accepts (f.e, "audio", "audio/mpeg,mpegversion=4"));
  fail_if (accepts (f.e, "audio", VIDEO_CAPS));
  fail_unless (accepts (f.e, "video", VIDEO_CAPS));
  fail_unless (accepts (f.e, "video",
                        "video/x-raw,format=NV12,width=1920,"
                        "height=1080,framerate=30/1"));
  fail_if (accepts (f.e, "video", "audio/x-raw"));
  fail_if (accepts (f.e, "video", "image/jpeg,width=32,height=24"));

  /* raw video the element cannot read comes in, and is an error naming the
   * caps that came and those that would work, and the fix */
  text = caps_error (&f, f.v,
                     "video/x-raw,format=GRAY8,width=32,height=24,"
                     "framerate=25/1");
  fail_unless (strstr (text, "GRAY8") && strstr (text, "video/x-raw")
                   && strstr (text, "NV12") && strstr (text, "I420")
                   && strstr (text, "videoconvert"),
               "error: %s", text);
  g_free (text);

  /* audio caps without a usable format */
  text = caps_error (&f, f.a,
                     "audio/x-raw,format=F32LE,rate=0,channels=1,"
                     "layout=interleaved");
  fail_unless (strstr (text, "rate=(int)0") && strstr (text, "audio/x-raw")
                   && strstr (text, "any sample format"),
               "error: %s", text);
  g_free (text);
  fx_stop (&f);
}

GST_END_TEST;

/* ------------------------------------------------------------ errors */

/* Sets e to PAUSED, expects failure and returns the error (owned). */
static GError *
start_expecting_error (GstElement *e, gchar **debug)
{
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;

  gst_element_set_bus (e, bus);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
                          GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error message");
  gst_message_parse_error (msg, &err, debug);
  gst_message_unref (msg);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  return err;
}

static void
check_model_error (const gchar *path, gint code1, gint code2)
{
  GstElement *e = gst_element_factory_make ("avcrowdcount", NULL);
  GError *err;
  gchar *debug = NULL;

  if (path)
    g_object_set (e, "model-file", path, NULL);
  err = start_expecting_error (e, &debug);
  fail_unless (err->domain == GST_RESOURCE_ERROR, "domain %s",
               g_quark_to_string (err->domain));
  fail_unless (err->code == code1 || err->code == code2, "code %d: %s",
               err->code, err->message);
  if (path)
    fail_unless (strstr (err->message, path) != NULL,
                 "error does not name the file: %s", err->message);
  GST_INFO ("%s: %s (%s)", path, err->message, debug);
  g_error_free (err);
  g_free (debug);
  gst_object_unref (e);
}

static gchar *
write_temp (const gchar *name, const void *data, gsize size)
{
  gchar *path = g_build_filename (g_get_tmp_dir (), name, NULL);

  fail_unless (g_file_set_contents (path, data, size, NULL));
  return path;
}

GST_START_TEST (test_missing_model_file)
{
  check_model_error ("/nonexistent/avcrowdcount-model.safetensors",
                     GST_RESOURCE_ERROR_NOT_FOUND,
                     GST_RESOURCE_ERROR_NOT_FOUND);
  check_model_error (NULL, GST_RESOURCE_ERROR_NOT_FOUND,
                     GST_RESOURCE_ERROR_NOT_FOUND);
}

GST_END_TEST;

GST_START_TEST (test_corrupt_model_file)
{
  gchar *contents, *path, *name;
  gsize size;
  guint8 junk[512];

  for (gsize i = 0; i < sizeof junk; i++)
    junk[i] = (guint8)(i * 37 + 11);
  name = g_strdup_printf ("avcrowdcount-junk-%d.safetensors", getpid ());
  path = write_temp (name, junk, sizeof junk);
  check_model_error (path, GST_RESOURCE_ERROR_FAILED,
                     GST_RESOURCE_ERROR_OPEN_READ);
  g_unlink (path);
  g_free (path);
  g_free (name);

  name = g_strdup_printf ("avcrowdcount-empty-%d.safetensors", getpid ());
  path = write_temp (name, "", 0);
  check_model_error (path, GST_RESOURCE_ERROR_FAILED,
                     GST_RESOURCE_ERROR_OPEN_READ);
  g_unlink (path);
  g_free (path);
  g_free (name);

  /* the real model cut in half */
  fail_unless (g_file_get_contents (model_path (), &contents, &size, NULL));
  name = g_strdup_printf ("avcrowdcount-half-%d.safetensors", getpid ());
  path = write_temp (name, contents, size / 2);
  check_model_error (path, GST_RESOURCE_ERROR_FAILED,
                     GST_RESOURCE_ERROR_OPEN_READ);
  g_unlink (path);
  g_free (path);
  g_free (name);
  g_free (contents);
}

GST_END_TEST;

/* Starting with `device` and `precision` fails with `code`, the message
 * containing `needle`. FALSE (and no check) when it started: a machine with
 * a CUDA device runs device=cuda. */
static gboolean
check_settings_error (const gchar *device, const gchar *precision, gint code,
                      const gchar *needle)
{
  GstElement *e = make_element ("device", device, NULL);
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;

  gst_util_set_object_arg (G_OBJECT (e), "precision", precision);
  gst_element_set_bus (e, bus);
  if (gst_element_set_state (e, GST_STATE_PAUSED) != GST_STATE_CHANGE_FAILURE) {
    gst_element_set_state (e, GST_STATE_NULL);
    gst_element_set_bus (e, NULL);
    gst_object_unref (bus);
    gst_object_unref (e);
    return FALSE;
  }
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error message");
  gst_message_parse_error (msg, &err, NULL);
  fail_unless (err->domain == GST_RESOURCE_ERROR);
  fail_unless_equals_int (err->code, code);
  fail_unless (strstr (err->message, needle) != NULL, "%s", err->message);
  GST_INFO ("device=%s precision=%s: %s", device, precision, err->message);
  g_error_free (err);
  gst_message_unref (msg);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  gst_object_unref (e);
  return TRUE;
}

GST_START_TEST (test_device_and_precision_errors)
{
  if (!check_settings_error ("cuda", "fp32", GST_RESOURCE_ERROR_NOT_FOUND,
                             "CUDA backend is not available"))
    GST_INFO ("device=cuda works here: a CUDA device is present");
  check_settings_error ("cuda:7", "fp32", GST_RESOURCE_ERROR_NOT_FOUND,
                        "CUDA backend is not available");
  fail_unless (check_settings_error ("tpu", "fp32", GST_RESOURCE_ERROR_SETTINGS,
                                     "Unknown device"));
  fail_unless (check_settings_error ("cpu", "fp16", GST_RESOURCE_ERROR_SETTINGS,
                                     "Precision fp16"));
  fail_unless (check_settings_error ("cpu", "tf32", GST_RESOURCE_ERROR_SETTINGS,
                                     "Precision tf32"));
}

GST_END_TEST;

GST_START_TEST (test_device_cpu_and_auto)
{
  const gchar *devices[] = { "cpu", "auto" };

  for (guint i = 0; i < G_N_ELEMENTS (devices); i++) {
    GstElement *e = make_element ("device", devices[i], NULL);
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
                            GST_STATE_CHANGE_SUCCESS);
    fail_unless_equals_int (gst_element_set_state (e, GST_STATE_NULL),
                            GST_STATE_CHANGE_SUCCESS);
    gst_object_unref (e);
  }
}

GST_END_TEST;

/* ------------------------------------------------------------ pipeline */

static GstPadProbeReturn
count_metas (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  guint *counts = user_data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  const GstStructure *r = gst_buffer_get_earlyexit_result (buf);

  counts[0]++;
  if (r && earlyexit_result_get_task (r)
      && earlyexit_result_get_n_exits (r) == N_EXITS)
    counts[1]++;
  return GST_PAD_PROBE_OK;
}

/* Runs a real pipeline (test sources, videoconvert and videoscale after the
 * element) to EOS; returns the number of element messages from it. */
static guint
run_pipeline (gboolean post_messages, guint *counts)
{
  gchar *desc = g_strdup_printf (
      "avcrowdcount name=c model-file=\"%s\" "
      "post-messages=%s deadline=10000000000 ! videoconvert ! videoscale ! "
      "video/x-raw,format=I420,width=16,height=12 ! fakesink name=s sync=false "
      "videotestsrc num-buffers=10 ! "
      "video/x-raw,format=BGRx,width=64,height=48,framerate=25/1 ! c.video "
      "audiotestsrc num-buffers=5 samplesperbuffer=4000 ! "
      "audio/x-raw,format=F32LE,rate=16000,channels=1 ! c.audio",
      model_path (), post_messages ? "true" : "false");
  GError *err = NULL;
  GstElement *pipe = gst_parse_launch (desc, &err), *sink, *c;
  GstBus *bus;
  GstPad *pad;
  guint n_messages = 0;
  gboolean done = FALSE;

  fail_unless (pipe != NULL, "%s", err ? err->message : "");
  sink = gst_bin_get_by_name (GST_BIN (pipe), "s");
  c = gst_bin_get_by_name (GST_BIN (pipe), "c");
  pad = gst_element_get_static_pad (sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_metas, counts, NULL);
  bus = gst_element_get_bus (pipe);
  fail_unless (gst_element_set_state (pipe, GST_STATE_PLAYING)
               != GST_STATE_CHANGE_FAILURE);
  while (!done) {
    GstMessage *msg = gst_bus_timed_pop (bus, 30 * GST_SECOND);
    fail_unless (msg != NULL, "pipeline timed out");
    switch (GST_MESSAGE_TYPE (msg)) {
      case GST_MESSAGE_ELEMENT:
        if (GST_MESSAGE_SRC (msg) == GST_OBJECT (c)) {
          const GstStructure *s = gst_message_get_structure (msg);
          fail_unless (gst_structure_has_name (s, "avcrowdcount"));
          fail_unless (gst_structure_has_field (s, "running-time"));
          fail_unless (gst_structure_has_field (s, "stream-time"));
          fail_unless (gst_structure_has_field (s, "timestamp"));
          fail_unless (gst_structure_has_field (s, "duration"));
          fail_unless (isfinite (earlyexit_result_get_count (s)));
          n_messages++;
        }
        break;
      case GST_MESSAGE_ERROR: {
        GError *e = NULL;
        gst_message_parse_error (msg, &e, NULL);
        fail ("pipeline error: %s", e->message);
        break;
      }
      case GST_MESSAGE_EOS:
        done = TRUE;
        break;
      default:
        break;
    }
    gst_message_unref (msg);
  }
  {
    GstStructure *s = get_stats (c);
    fail_unless_equals_uint64 (stats_u64 (s, "frames"), 10);
    gst_structure_free (s);
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);
  gst_object_unref (c);
  gst_object_unref (bus);
  gst_object_unref (pipe);
  g_free (desc);
  return n_messages;
}

GST_START_TEST (test_meta_and_messages)
{
  guint counts[2] = { 0, 0 };

  /* every buffer has the meta, also after videoconvert and videoscale, and
   * every frame posts a message */
  fail_unless_equals_int (run_pipeline (TRUE, counts), 10);
  fail_unless_equals_int (counts[0], 10);
  fail_unless_equals_int (counts[1], 10);

  counts[0] = counts[1] = 0;
  fail_unless_equals_int (run_pipeline (FALSE, counts), 0);
  fail_unless_equals_int (counts[1], 10);
}

GST_END_TEST;

/* ------------------------------------------------------------ pipelines */

/* A pipeline from a printf-style launch line. */
static GstElement *
launch (const gchar *format, ...)
{
  va_list ap;
  gchar *desc;
  GError *err = NULL;
  GstElement *pipe;

  va_start (ap, format);
  desc = g_strdup_vprintf (format, ap);
  va_end (ap);
  pipe = gst_parse_launch (desc, &err);
  fail_unless (pipe != NULL && err == NULL, "%s: %s", desc,
               err ? err->message : "");
  g_free (desc);
  return pipe;
}

/* The next element message, EOS or error from `bus` (owned); fails on an
 * error and after 30 s without any. */
static GstMessage *
next_message (GstBus *bus)
{
  GstMessage *msg = gst_bus_timed_pop_filtered (
      bus, 30 * GST_SECOND,
      GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS | GST_MESSAGE_ERROR);

  fail_unless (msg != NULL, "the pipeline stalled");
  if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
    GError *err = NULL;
    gchar *debug = NULL;

    gst_message_parse_error (msg, &err, &debug);
    fail ("pipeline error: %s (%s)", err->message, debug);
  }
  return msg;
}

static gboolean
is_result_from (GstMessage *msg, GstElement *e)
{
  return GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT
         && GST_MESSAGE_SRC (msg) == GST_OBJECT (e);
}

static guint64
stats_exit_u64 (const GstStructure *s, const gchar *field, int exit)
{
  const GValue *array = gst_structure_get_value (s, field);

  fail_unless (array != NULL, "stats lack %s", field);
  return g_value_get_uint64 (gst_value_array_get_value (array, exit));
}

#define CYCLES 20
#define CYCLE_FRAMES 8

GST_START_TEST (test_state_cycles)
{
  GstElement *pipe
      = launch ("avcrowdcount name=c model-file=\"%s\" device=cpu "
                "deadline=10000000000 ! fakesink sync=false "
                "videotestsrc num-buffers=%d ! " VIDEO_CAPS " ! c.video "
                "audiotestsrc samplesperbuffer=1600 ! " AUDIO_CAPS " ! c.audio",
                model_path (), CYCLE_FRAMES);
  GstElement *c = gst_bin_get_by_name (GST_BIN (pipe), "c");
  GstBus *bus = gst_element_get_bus (pipe);

  for (int cycle = 0; cycle < CYCLES; cycle++) {
    /* even cycles play to the end, odd ones stop after the first frame */
    gboolean to_eos = cycle % 2 == 0, done = FALSE;
    guint frames = 0;

    fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING)
             == GST_STATE_CHANGE_FAILURE);
    while (!done) {
      GstMessage *msg = next_message (bus);

      if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS) {
        done = TRUE;
      } else if (is_result_from (msg, c)) {
        const GstStructure *r = gst_message_get_structure (msg);
        GstClockTime rt = GST_CLOCK_TIME_NONE;

        /* every cycle starts afresh: running time 0, half the window
         * before the stream, no audio or result left from the last one */
        if (frames == 0) {
          fail_unless (gst_structure_get_clock_time (r, "running-time", &rt));
          fail_unless_equals_uint64 (rt, 0);
          fail_unless (earlyexit_result_is_fresh (r));
          assert_coverage (r, 0.5);
          assert_exit (r, EXIT_FINAL);
        }
        frames++;
        done = !to_eos;
      }
      gst_message_unref (msg);
    }
    if (to_eos) {
      GstStructure *s = get_stats (c);

      fail_unless_equals_int (frames, CYCLE_FRAMES);
      fail_unless_equals_uint64 (stats_u64 (s, "frames"), CYCLE_FRAMES);
      gst_structure_free (s);
    }
    fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
                            GST_STATE_CHANGE_SUCCESS);
    /* drop what the stopped cycle left on the bus */
    gst_bus_set_flushing (bus, TRUE);
    gst_bus_set_flushing (bus, FALSE);
  }
  gst_object_unref (bus);
  gst_object_unref (c);
  gst_object_unref (pipe);
}

GST_END_TEST;

/* Copies the test model to a file of its own (owned path). */
static gchar *
copy_model (void)
{
  gchar *contents, *name, *path;
  gsize size;

  fail_unless (g_file_get_contents (model_path (), &contents, &size, NULL));
  name = g_strdup_printf ("avcrowdcount-copy-%d.safetensors", getpid ());
  path = write_temp (name, contents, size);
  g_free (contents);
  g_free (name);
  return path;
}

GST_START_TEST (test_two_elements)
{
  gchar *second_model = copy_model ();
  GstElement *pipe = launch (
      "videotestsrc num-buffers=10 ! " VIDEO_CAPS " ! tee name=vt "
      "audiotestsrc num-buffers=20 samplesperbuffer=1600 ! " AUDIO_CAPS
      " ! tee name=at "
      "avcrowdcount name=a model-file=\"%s\" device=cpu "
      "deadline=10000000000 unique-id=1 policy=fixed max-exit=%d "
      "! fakesink sync=false "
      "avcrowdcount name=b model-file=\"%s\" device=cpu "
      "deadline=10000000000 unique-id=2 interval=2 ! fakesink sync=false "
      "vt. ! queue ! a.video at. ! queue ! a.audio "
      "vt. ! queue ! b.video at. ! queue ! b.audio",
      model_path (), EXIT_AV1, second_model);
  GstElement *e[2] = { gst_bin_get_by_name (GST_BIN (pipe), "a"),
                       gst_bin_get_by_name (GST_BIN (pipe), "b") };
  GstBus *bus = gst_element_get_bus (pipe);
  guint frames[2] = { 0, 0 };
  gboolean done = FALSE;

  fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING)
           == GST_STATE_CHANGE_FAILURE);
  while (!done) {
    GstMessage *msg = next_message (bus);

    done = GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;
    for (int i = 0; i < 2; i++) {
      const GstStructure *r = gst_message_get_structure (msg);
      guint id = 0;

      if (!is_result_from (msg, e[i]))
        continue;
      /* each element has its own settings and its own model */
      fail_unless (gst_structure_get_uint (r, "unique-id", &id));
      fail_unless_equals_int (id, i + 1);
      assert_exit (r, i == 0 ? EXIT_AV1 : EXIT_FINAL);
      fail_unless (earlyexit_result_is_fresh (r)
                   == (i == 0 || frames[i] % 2 == 0));
      frames[i]++;
    }
    gst_message_unref (msg);
  }
  for (int i = 0; i < 2; i++) {
    GstStructure *s = get_stats (e[i]);

    fail_unless_equals_int (frames[i], 10);
    fail_unless_equals_uint64 (stats_u64 (s, "frames"), 10);
    fail_unless_equals_uint64 (stats_u64 (s, "fresh-frames"), i == 0 ? 10 : 5);
    fail_unless_equals_uint64 (
        stats_exit_u64 (s, "exits-taken", i == 0 ? EXIT_AV1 : EXIT_FINAL),
        i == 0 ? 10 : 5);
    gst_structure_free (s);
  }
  fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
                          GST_STATE_CHANGE_SUCCESS);
  g_unlink (second_model);
  g_free (second_model);
  gst_object_unref (bus);
  gst_object_unref (e[0]);
  gst_object_unref (e[1]);
  gst_object_unref (pipe);
}

GST_END_TEST;

/* A WAV file (float, 16 kHz, mono) of n ramp samples: sample i holds
 * ramp_value (i). Returns its path (owned). */
static gchar *
write_ramp_wav (guint32 n)
{
  GByteArray *wav = g_byte_array_new ();
  gchar *name, *path;

#define PUT32(v)                                                               \
  G_STMT_START                                                                 \
  {                                                                            \
    guint32 le = GUINT32_TO_LE (v);                                            \
    g_byte_array_append (wav, (const guint8 *)&le, 4);                         \
  }                                                                            \
  G_STMT_END
#define PUT16(v)                                                               \
  G_STMT_START                                                                 \
  {                                                                            \
    guint16 le = GUINT16_TO_LE (v);                                            \
    g_byte_array_append (wav, (const guint8 *)&le, 2);                         \
  }                                                                            \
  G_STMT_END

  g_byte_array_append (wav, (const guint8 *)"RIFF", 4);
  PUT32 (36 + n * 4);
  g_byte_array_append (wav, (const guint8 *)"WAVEfmt ", 8);
  PUT32 (16);
  PUT16 (3); /* IEEE float */
  PUT16 (1);
  PUT32 (RATE);
  PUT32 (RATE * 4);
  PUT16 (4);
  PUT16 (32);
  g_byte_array_append (wav, (const guint8 *)"data", 4);
  PUT32 (n * 4);
  for (guint32 i = 0; i < n; i++) {
    union
    {
      float f;
      guint32 u;
    } v = { .f = ramp_value (i) };
    PUT32 (v.u);
  }
#undef PUT32
#undef PUT16

  name = g_strdup_printf ("avcrowdcount-ramp-%d.wav", getpid ());
  path = write_temp (name, wav->data, wav->len);
  g_byte_array_unref (wav);
  g_free (name);
  return path;
}

static GstPadProbeReturn
count_after_seek (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  if (GST_BUFFER_PTS (GST_PAD_PROBE_INFO_BUFFER (info)) >= 2 * GST_SECOND)
    g_atomic_int_inc ((gint *)user_data);
  return GST_PAD_PROBE_OK;
}

GST_START_TEST (test_flushing_seek)
{
  gchar *wav = write_ramp_wav (4 * RATE);
  GstElement *pipe = launch (
      "avcrowdcount name=c model-file=\"%s\" device=cpu "
      "deadline=10000000000 diagnostics=true policy=fixed max-exit=%d "
      "! fakesink name=s sync=true "
      "videotestsrc ! " VIDEO_CAPS " ! c.video "
      "filesrc location=\"%s\" ! wavparse ! c.audio",
      model_path (), EXIT_AV1, wav);
  GstElement *c = gst_bin_get_by_name (GST_BIN (pipe), "c");
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), "s");
  GstPad *sinkpad = gst_element_get_static_pad (sink, "sink");
  GstBus *bus = gst_element_get_bus (pipe);
  /* after the seek, running time 0 is stream time 2 s (sample 32000) and
   * the audio stops at 2.6 s */
  Ramp ramp = { 0, 6 * RATE / 10, 2 * RATE };
  gint after_seek_out = 0;
  guint before = 0, after = 0;
  gboolean done = FALSE;

  gst_pad_add_probe (sinkpad, GST_PAD_PROBE_TYPE_BUFFER, count_after_seek,
                     &after_seek_out, NULL);
  fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING)
           == GST_STATE_CHANGE_FAILURE);
  while (!done) {
    GstMessage *msg = next_message (bus);
    GstClockTime st = 0, rt = 0;
    const GstStructure *r = gst_message_get_structure (msg);

    done = GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;
    if (is_result_from (msg, c)) {
      fail_unless (gst_structure_get_clock_time (r, "stream-time", &st)
                   && gst_structure_get_clock_time (r, "running-time", &rt));
      if (st < 2 * GST_SECOND) {
        /* what the running pipeline made before the seek */
        fail_unless (after == 0, "a frame from before the seek came after");
        if (++before == 5)
          fail_unless (gst_element_seek (
              pipe, 1.0, GST_FORMAT_TIME,
              GST_SEEK_FLAG_FLUSH | GST_SEEK_FLAG_ACCURATE, GST_SEEK_TYPE_SET,
              2 * GST_SECOND, GST_SEEK_TYPE_SET, 2600 * MS));
      } else {
        /* the flush left no audio nor result behind: each window holds
         * exactly the new audio around its frame */
        fail_unless_equals_uint64 (rt, st - 2 * GST_SECOND);
        fail_unless (earlyexit_result_is_fresh (r));
        check_window (&ramp, r, rt, GST_SECOND);
        after++;
      }
    }
    gst_message_unref (msg);
  }
  fail_unless (before >= 5);
  /* frames 2.00 s to 2.56 s, each once */
  fail_unless_equals_int (after, 15);
  fail_unless_equals_int (g_atomic_int_get (&after_seek_out), 15);

  fail_unless_equals_int (gst_element_set_state (pipe, GST_STATE_NULL),
                          GST_STATE_CHANGE_SUCCESS);
  g_unlink (wav);
  g_free (wav);
  gst_object_unref (bus);
  gst_object_unref (sinkpad);
  gst_object_unref (sink);
  gst_object_unref (c);
  gst_object_unref (pipe);
}

GST_END_TEST;

/* ------------------------------------------------------------ documentation */

/* `word` occurs in `text` on its own (not inside a longer name). */
static gboolean
has_word (const gchar *text, const gchar *word)
{
  gsize len = strlen (word);

  for (const gchar *p = strstr (text, word); p; p = strstr (p + 1, word)) {
    gboolean open = p == text || !(g_ascii_isalnum (p[-1]) || p[-1] == '-');
    gboolean close = !(g_ascii_isalnum (p[len]) || p[len] == '-');
    if (open && close)
      return TRUE;
  }
  return FALSE;
}

/* gst-inspect-1.0's page on avcrowdcount, the plugin found through
 * GST_PLUGIN_PATH (owned). */
static gchar *
inspect_page (void)
{
  const gchar *argv[]
      = { "gst-inspect-1.0", "--no-colors", "avcrowdcount", NULL };
  gchar **env = g_get_environ ();
  gchar *out = NULL, *err_out = NULL;
  gint status;
  GError *err = NULL;

  fail_unless (g_getenv ("GST_PLUGIN_PATH_1_0") != NULL);
  env = g_environ_setenv (env, "GST_PLUGIN_PATH",
                          g_getenv ("GST_PLUGIN_PATH_1_0"), TRUE);
  env = g_environ_unsetenv (env, "GST_PLUGIN_PATH_1_0");
  fail_unless (g_spawn_sync (NULL, (gchar **)argv, env, G_SPAWN_SEARCH_PATH,
                             NULL, NULL, &out, &err_out, &status, &err),
               "gst-inspect-1.0: %s", err ? err->message : "");
  fail_unless (g_spawn_check_wait_status (status, &err),
               "gst-inspect-1.0 avcrowdcount: %s\n%s", err->message, err_out);
  g_strfreev (env);
  g_free (err_out);
  return out;
}

GST_START_TEST (test_inspect_documents_everything)
{
  Fx f;
  GstMessage *msg;
  const GstStructure *s;
  gchar *page, *desc, **lines;
  GParamSpec **props;
  guint n_props;

  fx_start (&f, make_element ("diagnostics", TRUE, NULL));
  gst_structure_free (run_frame (&f, 600 * MS));
  page = inspect_page ();
  /* the description names the meta, the message and every field they
   * really carry */
  lines = g_strsplit (page, "\n", -1);
  desc = NULL;
  for (gchar **l = lines; *l && !desc; l++)
    if (g_str_has_prefix (*l, "  Description "))
      desc = g_strdup (*l);
  g_strfreev (lines);
  fail_unless (desc != NULL, "no description:\n%s", page);
  fail_unless (has_word (desc, EARLYEXIT_RESULT_META_NAME)
                   && has_word (desc, EARLYEXIT_RESULT_NAME)
                   && has_word (desc, "avcrowdcount"),
               "%s", desc);

  msg = gst_bus_pop_filtered (f.bus, GST_MESSAGE_ELEMENT);
  fail_unless (msg != NULL);
  s = gst_message_get_structure (msg);
  for (gint i = 0; i < gst_structure_n_fields (s); i++)
    fail_unless (has_word (desc, gst_structure_nth_field_name (s, i)),
                 "the description does not mention field %s",
                 gst_structure_nth_field_name (s, i));

  /* every property, inherited ones too, with a blurb that says more than
   * its name */
  props = g_object_class_list_properties (G_OBJECT_GET_CLASS (f.e), &n_props);
  for (guint i = 0; i < n_props; i++) {
    const gchar *name = g_param_spec_get_name (props[i]);
    const gchar *blurb = g_param_spec_get_blurb (props[i]);
    gchar *line;

    fail_unless (blurb && *blurb, "property %s has no blurb", name);
    line = g_strdup_printf ("\n  %-20s: %s\n", name, blurb);
    fail_unless (strstr (page, line) != NULL,
                 "gst-inspect-1.0 does not show %s: %s", name, blurb);
    g_free (line);
    /* the element's own */
    if (props[i]->owner_type != G_OBJECT_TYPE (f.e))
      continue;
    fail_unless (strlen (blurb) > 30
                     && strcmp (blurb, g_param_spec_get_nick (props[i])) != 0,
                 "property %s: blurb \"%s\" says too little", name, blurb);
  }
  g_free (props);
  gst_message_unref (msg);
  fx_stop (&f);
  g_free (desc);
  g_free (page);
}

GST_END_TEST;

/* ------------------------------------------------------------ overlay */

GST_START_TEST (test_overlay_draws_result)
{
  GstHarness *h = gst_harness_new ("earlyexitoverlay");
  GstBuffer *in, *out, *plain;
  GstCustomMeta *meta;
  GstMapInfo a, b;
  gsize stride = 160 * 3, changed_inside = 0, changed_outside = 0;

  gst_harness_set_src_caps_str (
      h, "video/x-raw,format=RGB,width=160,height=120,framerate=25/1");
  in = gst_buffer_new_allocate (NULL, 160 * 120 * 3, NULL);
  gst_buffer_memset (in, 0, 90, 160 * 120 * 3);
  plain = gst_buffer_copy (in);
  meta = gst_buffer_add_custom_meta (in, EARLYEXIT_RESULT_META_NAME);
  fail_unless (meta != NULL, "the plugin registers the meta");
  gst_structure_set (gst_custom_meta_get_structure (meta), "count",
                     G_TYPE_DOUBLE, 12.5, "exit", G_TYPE_STRING, "av2", "fresh",
                     G_TYPE_BOOLEAN, TRUE, "audio-used", G_TYPE_BOOLEAN, TRUE,
                     "audio-coverage", G_TYPE_DOUBLE, 0.7, NULL);
  out = gst_harness_push_and_pull (h, in);
  gst_buffer_map (out, &a, GST_MAP_READ);
  gst_buffer_map (plain, &b, GST_MAP_READ);
  for (gsize y = 0; y < 120; y++)
    for (gsize x = 0; x < stride; x++) {
      gboolean diff = a.data[y * stride + x] != b.data[y * stride + x];
      if (y < 40 && x < 120 * 3)
        changed_inside += diff;
      else
        changed_outside += diff;
    }
  fail_unless (changed_inside > 1000, "nothing drawn");
  fail_unless_equals_int (changed_outside, 0);
  gst_buffer_unmap (out, &a);
  gst_buffer_unref (out);

  /* no meta: untouched */
  out = gst_harness_push_and_pull (h, gst_buffer_copy (plain));
  gst_buffer_map (out, &a, GST_MAP_READ);
  fail_unless (memcmp (a.data, b.data, a.size) == 0);
  gst_buffer_unmap (out, &a);
  gst_buffer_unmap (plain, &b);
  gst_buffer_unref (out);
  gst_buffer_unref (plain);
  gst_harness_teardown (h);
}

GST_END_TEST;

/* ------------------------------------------------------------ any audio */

/* An audio buffer of n frames from frame `first` at `rate` Hz, `channels`
 * channels in `format` (S16LE interleaved or F32LE non-interleaved with an
 * audio meta): silence before `step` (frames), 0.5 from there on. */
static GstBuffer *
step_buffer (const GstAudioInfo *info, guint64 first, gsize n, guint64 step)
{
  int ch = GST_AUDIO_INFO_CHANNELS (info), rate = GST_AUDIO_INFO_RATE (info);
  GstBuffer *buf
      = gst_buffer_new_allocate (NULL, n * GST_AUDIO_INFO_BPF (info), NULL);
  GstMapInfo map;

  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (gsize i = 0; i < n; i++)
    for (int c = 0; c < ch; c++) {
      gboolean on = first + i >= step;
      if (GST_AUDIO_INFO_FORMAT (info) == GST_AUDIO_FORMAT_S16LE)
        ((gint16 *)map.data)[i * ch + c] = GINT16_TO_LE (on ? 16384 : 0);
      else
        ((float *)map.data)[c * n + i] = on ? 0.5f : 0.0f;
    }
  gst_buffer_unmap (buf, &map);
  if (GST_AUDIO_INFO_LAYOUT (info) == GST_AUDIO_LAYOUT_NON_INTERLEAVED)
    gst_buffer_add_audio_meta (buf, info, n, NULL);
  GST_BUFFER_PTS (buf) = gst_util_uint64_scale_int (first, GST_SECOND, rate);
  GST_BUFFER_DURATION (buf) = gst_util_uint64_scale_int (n, GST_SECOND, rate);
  return buf;
}

/* Raw audio at another rate, format, channel count and layout goes in
 * as it is: converted to 16 kHz mono inside, on the same sample grid (with
 * `step`, for downsampling: a step at 1 s lands at 16 kHz sample 16000, to
 * the sample), every window covered, the resampler's held-back tail drained
 * at EOS. */
static void
check_converted_audio (const gchar *caps_str, gsize chunk, gboolean step)
{
  GstCaps *caps = gst_caps_from_string (caps_str);
  GstAudioInfo info;
  GstClockTime frames[]
      = { 500 * MS, 1000 * MS, 1500 * MS, 2000 * MS, 2500 * MS };
  guint64 pos = 0, end;
  GstStructure *r;
  double first, last;
  Fx f;

  fail_unless (gst_audio_info_from_caps (&info, caps));
  gst_caps_unref (caps);
  end = 3 * (guint64)GST_AUDIO_INFO_RATE (&info);
  fx_start (&f, make_element ("diagnostics", TRUE, NULL));
  gst_harness_set_src_caps_str (f.a, caps_str);
  for (guint k = 0; k < G_N_ELEMENTS (frames); k++) {
    /* the audio up to just past the window (odd chunk sizes: windows end
     * inside buffers; past it, as the resampler holds back its last few
     * samples), the last window's tail only with EOS; not more, as the
     * harness keeps few buffers waiting on a pad */
    guint64 want = MIN (end, gst_util_uint64_scale (frames[k] + 510 * MS,
                                                    GST_AUDIO_INFO_RATE (&info),
                                                    GST_SECOND));
    push_video (&f, frames[k]);
    while (pos < want) {
      gsize n = MIN (chunk, end - pos);
      fail_unless_equals_int (
          gst_harness_push (
              f.a, step_buffer (&info, pos, n, GST_AUDIO_INFO_RATE (&info))),
          GST_FLOW_OK);
      pos += n;
    }
    if (pos == end)
      push_audio_eos (&f);
    r = pull_result (&f);
    fail_unless (earlyexit_result_get_audio_used (r));
    /* the last window ends at 3 s, with the audio: covered too, since the
     * held-back samples come out at EOS */
    assert_coverage (r, 1.0);
    fail_unless (gst_structure_get_double (r, "window-first-sample", &first));
    fail_unless (gst_structure_get_double (r, "window-last-sample", &last));
    if (!step)
      ;
    else if (frames[k] == 500 * MS) {
      fail_unless (fabs (first) < 0.01, "%s: before the step: %f", caps_str,
                   first);
    } else if (frames[k] == 1500 * MS) {
      /* the window starts at 1 s: the resampled step's midpoint (about
       * 0.33 for these filters; a sample earlier is under 0.05, a sample
       * later over 0.45) */
      fail_unless (first > 0.15 && first < 0.45,
                   "%s: window start not on the step: %f", caps_str, first);
      fail_unless (fabs (last - 0.5) < 0.01, "%s: %f", caps_str, last);
    } else if (frames[k] == 2000 * MS) {
      /* (the last window's last sample rings with the end of the audio) */
      fail_unless (fabs (first - 0.5) < 0.01 && fabs (last - 0.5) < 0.01,
                   "%s: after the step: %f %f", caps_str, first, last);
    }
    gst_structure_free (r);
  }
  fx_stop (&f);
}

GST_START_TEST (test_audio_any_format)
{
  check_converted_audio ("audio/x-raw,format=S16LE,rate=48000,channels=2,"
                         "layout=interleaved",
                         4410, TRUE);
  check_converted_audio ("audio/x-raw,format=F32LE,rate=44100,channels=2,"
                         "layout=non-interleaved",
                         1001, TRUE);
  check_converted_audio ("audio/x-raw,format=S16LE,rate=8000,channels=1,"
                         "layout=interleaved",
                         333, FALSE);
}

GST_END_TEST;

/* Everything a pipeline posted up to EOS: the avcrowdcount results and the
 * warnings' text; fails on an error or when the pipeline stalls (nothing
 * for 60 s). */
typedef struct
{
  GPtrArray *results;
  GString *warnings;
  guint n_warnings;
} Run;

static void
run_to_eos (GstElement *pipe, const gchar *result_name, Run *run)
{
  GstBus *bus = gst_element_get_bus (pipe);
  gboolean eos = FALSE;

  run->results
      = g_ptr_array_new_with_free_func ((GDestroyNotify)gst_structure_free);
  run->warnings = g_string_new (NULL);
  run->n_warnings = 0;
  fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING)
           == GST_STATE_CHANGE_FAILURE);
  while (!eos) {
    GstMessage *msg = gst_bus_timed_pop_filtered (
        bus, 60 * GST_SECOND,
        GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS | GST_MESSAGE_ERROR
            | GST_MESSAGE_WARNING);
    GError *err = NULL;
    gchar *debug = NULL;

    fail_unless (msg != NULL, "the pipeline stalled");
    switch (GST_MESSAGE_TYPE (msg)) {
      case GST_MESSAGE_ERROR:
        gst_message_parse_error (msg, &err, &debug);
        fail ("pipeline error: %s (%s)", err->message, debug);
        break;
      case GST_MESSAGE_WARNING:
        gst_message_parse_warning (msg, &err, &debug);
        g_string_append_printf (run->warnings, "%s: %s (%s)\n",
                                GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)),
                                err->message, debug);
        run->n_warnings++;
        g_clear_error (&err);
        g_free (debug);
        break;
      case GST_MESSAGE_ELEMENT:
        if (gst_message_has_name (msg, result_name))
          g_ptr_array_add (run->results, gst_structure_copy (
                                             gst_message_get_structure (msg)));
        break;
      default:
        eos = TRUE;
        break;
    }
    gst_message_unref (msg);
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
}

static void
run_clear (Run *run)
{
  g_ptr_array_unref (run->results);
  g_string_free (run->warnings, TRUE);
}

/* Writes `launch_line` (a pipeline ending in filesink location=%s) to a
 * temporary file; returns its path (owned). */
static gchar *
make_media (const gchar *name, const gchar *launch_line)
{
  gchar *path = g_build_filename (g_get_tmp_dir (), name, NULL);
  GstElement *pipe = launch (launch_line, path);
  Run run;

  run_to_eos (pipe, "none", &run);
  run_clear (&run);
  gst_object_unref (pipe);
  return path;
}

/* uridecodebin's pads straight to avcrowdcount's pads of the same media
 * type: no converter between the decoders and the element. */
static void
link_by_media (GstElement *decodebin, GstPad *pad, gpointer user_data)
{
  GstElement *c = user_data;
  GstCaps *caps = gst_pad_get_current_caps (pad);
  const gchar *media;
  GstPad *sink;

  if (!caps)
    caps = gst_pad_query_caps (pad, NULL);
  media = gst_structure_get_name (gst_caps_get_structure (caps, 0));
  sink = gst_element_get_static_pad (
      c, g_str_has_prefix (media, "video/") ? "video" : "audio");
  fail_unless_equals_int (gst_pad_link (pad, sink), GST_PAD_LINK_OK);
  gst_object_unref (sink);
  gst_caps_unref (caps);
}

/* uridecodebin uri=file://path, its pads linked to avcrowdcount c; with
 * audio=FALSE its audio pad (if any) goes to a fakesink, leaving c's audio
 * pad unlinked. */
static GstElement *
decode_into_avcrowdcount (const gchar *path, const gchar *props)
{
  gchar *uri = gst_filename_to_uri (path, NULL);
  GstElement *pipe = launch ("uridecodebin name=d uri=%s "
                             "avcrowdcount name=c model-file=\"%s\" "
                             "device=cpu deadline=10000000000 %s ! "
                             "fakesink sync=false",
                             uri, model_path (), props);
  GstElement *d = gst_bin_get_by_name (GST_BIN (pipe), "d");
  GstElement *c = gst_bin_get_by_name (GST_BIN (pipe), "c");

  g_signal_connect (d, "pad-added", G_CALLBACK (link_by_media), c);
  gst_object_unref (d);
  gst_object_unref (c);
  g_free (uri);
  return pipe;
}

#define MEDIA_FRAMES 25

/* Acceptance: a Matroska file with JPEG video and 48 kHz stereo Vorbis
 * audio, decoded by uridecodebin straight into avcrowdcount: one result per
 * frame, every one with audio. */
GST_START_TEST (test_compressed_file)
{
  gchar *path = make_media (
      "avcrowdcount-test-48k.mkv",
      "videotestsrc num-buffers=25 ! video/x-raw,width=64,height=48,"
      "framerate=25/1 ! jpegenc ! mux. "
      "audiotestsrc num-buffers=80 samplesperbuffer=1024 ! "
      "audio/x-raw,rate=48000,channels=2 ! vorbisenc ! mux. "
      "matroskamux name=mux ! filesink location=%s");
  GstElement *pipe = decode_into_avcrowdcount (path, "");
  Run run;

  run_to_eos (pipe, "avcrowdcount", &run);
  fail_unless_equals_int (run.results->len, MEDIA_FRAMES);
  for (guint i = 0; i < run.results->len; i++) {
    const GstStructure *r = g_ptr_array_index (run.results, i);
    double coverage = earlyexit_result_get_audio_coverage (r);

    fail_unless (earlyexit_result_get_audio_used (r), "frame %u: no audio", i);
    /* the first frames' windows begin before the stream (half a window at
     * frame 0); from 0.5 s the whole window has audio (the audio lasts
     * 1.7 s, the last window ends at 1.46 s) */
    fail_unless (coverage > 0.45, "frame %u: coverage %f", i, coverage);
    if (i >= 13)
      fail_unless (coverage > 0.99, "frame %u: coverage %f", i, coverage);
  }
  fail_unless_equals_int (run.n_warnings, 0);
  run_clear (&run);
  gst_object_unref (pipe);
  g_unlink (path);
  g_free (path);
}

GST_END_TEST;

/* Acceptance: a file without audio, the audio pad left unlinked: after
 * input-timeout a warning names the pad and the fix, then every frame gets
 * a video-only (v1) result, and EOS. */
GST_START_TEST (test_audio_pad_unlinked)
{
  gchar *path = make_media (
      "avcrowdcount-test-video.mkv",
      "videotestsrc num-buffers=25 ! video/x-raw,width=64,height=48,"
      "framerate=25/1 ! jpegenc ! matroskamux ! filesink location=%s");
  GstElement *pipe = decode_into_avcrowdcount (path, "input-timeout=200000000");
  Run run;

  run_to_eos (pipe, "avcrowdcount", &run);
  fail_unless_equals_int (run.n_warnings, 1);
  fail_unless (strstr (run.warnings->str, "\"audio\" pad")
                   && strstr (run.warnings->str, "not linked")
                   && strstr (run.warnings->str, "c.audio")
                   && strstr (run.warnings->str, "input-timeout"),
               "warning: %s", run.warnings->str);
  fail_unless_equals_int (run.results->len, MEDIA_FRAMES);
  for (guint i = 0; i < run.results->len; i++) {
    const GstStructure *r = g_ptr_array_index (run.results, i);
    fail_if (earlyexit_result_get_audio_used (r));
    assert_exit (r, EXIT_V1);
  }
  run_clear (&run);
  gst_object_unref (pipe);
  g_unlink (path);
  g_free (path);
}

GST_END_TEST;

/* Audio and no video, live and not: after input-timeout a warning names the
 * video pad, and the stream ends (EOS) instead of hanging. */
GST_START_TEST (test_audio_without_video)
{
  for (int live = 0; live < 2; live++) {
    GstElement *pipe
        = launch ("avcrowdcount name=c model-file=\"%s\" device=cpu "
                  "input-timeout=200000000 ! fakesink "
                  "audiotestsrc is-live=%s samplesperbuffer=1600 ! c.audio",
                  model_path (), live ? "true" : "false");
    Run run;

    run_to_eos (pipe, "avcrowdcount", &run);
    fail_unless_equals_int (run.n_warnings, 1);
    fail_unless (strstr (run.warnings->str, "\"video\" pad")
                     && strstr (run.warnings->str, "ending the stream"),
                 "warning: %s", run.warnings->str);
    fail_unless_equals_int (run.results->len, 0);
    run_clear (&run);
    gst_object_unref (pipe);
  }
}

GST_END_TEST;

/* A frame without timestamp does not end the stream: before any result it
 * gets the visual exits' result, later the last result carried; both
 * flagged untimed, and one warning for all. */
GST_START_TEST (test_untimed_frame)
{
  GstStructure *r;
  GstBuffer *buf;
  GstMessage *msg;
  gboolean untimed = FALSE, fresh = TRUE;
  Fx f;

  fx_start (&f, make_element (NULL));
  buf = video_buffer (0);
  GST_BUFFER_PTS (buf) = GST_CLOCK_TIME_NONE;
  fail_unless_equals_int (gst_harness_push (f.v, buf), GST_FLOW_OK);
  f.video_in++;
  /* the aggregator runs once every pad has data */
  push_audio (&f, 0, 100 * MS);
  r = pull_result (&f);
  fail_unless (gst_structure_get_boolean (r, "untimed", &untimed) && untimed);
  fail_unless (gst_structure_get_boolean (r, "fresh", &fresh) && fresh);
  fail_if (earlyexit_result_get_audio_used (r));
  assert_exit (r, EXIT_V1);
  fail_if (gst_structure_has_field (r, "window-start"));
  gst_structure_free (r);

  r = run_frame (&f, 0);
  fail_if (gst_structure_has_field (r, "untimed"));
  fail_unless (earlyexit_result_get_audio_used (r));
  gst_structure_free (r);

  for (int k = 0; k < 2; k++) {
    buf = video_buffer (FRAME);
    GST_BUFFER_PTS (buf) = GST_CLOCK_TIME_NONE;
    fail_unless_equals_int (gst_harness_push (f.v, buf), GST_FLOW_OK);
    f.video_in++;
    push_audio (&f, f.audio_end, 100 * MS);
    r = pull_result (&f);
    fail_unless (gst_structure_get_boolean (r, "untimed", &untimed) && untimed);
    fail_unless (gst_structure_get_boolean (r, "fresh", &fresh) && !fresh);
    fail_unless (earlyexit_result_get_audio_used (r));
    gst_structure_free (r);
  }

  /* the stream goes on, with its timestamps */
  r = run_frame (&f, 2 * FRAME);
  fail_if (gst_structure_has_field (r, "untimed"));
  fail_unless (gst_structure_get_boolean (r, "fresh", &fresh) && fresh);
  gst_structure_free (r);
  assert_all_frames_out (&f);

  msg = gst_bus_pop_filtered (f.bus, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL, "no warning");
  gst_message_unref (msg);
  msg = gst_bus_pop_filtered (f.bus, GST_MESSAGE_WARNING);
  fail_unless (msg == NULL, "warned more than once");
  fx_stop (&f);
}

GST_END_TEST;

static gint deadline_thread_stop;

/* Sets the deadline (which re-reports the latency while running) until
 * told to stop. */
static gpointer
set_deadlines (gpointer data)
{
  GstElement *e = data;
  guint64 d = 0;

  while (!g_atomic_int_get (&deadline_thread_stop)) {
    g_object_set (e, "deadline", GENEROUS + (d++ % 7) * MS, NULL);
    g_thread_yield ();
  }
  return NULL;
}

/* The deadline set from another thread while the element starts and stops:
 * whether the element runs (so the latency must be re-reported) is read
 * and written under the object lock; ThreadSanitizer had seen the engine
 * state, written at start without the lock, read by set_property. (Under
 * TSan, GLib 2.74's GMutex is a futex it cannot see, so it also reports
 * accesses that both hold the object lock; look for ones that do not.) The
 * test itself checks that starting and stopping while the deadline changes
 * neither fails nor deadlocks. */
GST_START_TEST (test_deadline_set_while_starting)
{
  GstElement *e = make_element (NULL);
  GThread *t;

  g_atomic_int_set (&deadline_thread_stop, FALSE);
  t = g_thread_new ("deadline", set_deadlines, e);
  for (int i = 0; i < 4; i++) {
    fail_unless (gst_element_set_state (e, GST_STATE_PAUSED)
                 != GST_STATE_CHANGE_FAILURE);
    fail_unless (gst_element_set_state (e, GST_STATE_READY)
                 == GST_STATE_CHANGE_SUCCESS);
  }
  g_atomic_int_set (&deadline_thread_stop, TRUE);
  g_thread_join (t);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_object_unref (e);
}

GST_END_TEST;

static Suite *
avcrowdcount_suite (void)
{
  Suite *s = suite_create ("avcrowdcount");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_audio_late);
  tcase_add_test (tc, test_audio_early);
  tcase_add_test (tc, test_audio_missing);
  tcase_add_test (tc, test_audio_gap);
  tcase_add_test (tc, test_audio_discont);
  tcase_add_test (tc, test_audio_eos_mid_window);
  tcase_add_test (tc, test_video_eos);
  tcase_add_test (tc, test_flush_clears_state);
  tcase_add_test (tc, test_live_timeout);
  tcase_add_test (tc, test_sync_exact_window);
  tcase_add_test (tc, test_sync_arbitrary_pts);
  tcase_add_test (tc, test_sync_audio_starts_late);
  tcase_add_test (tc, test_policy_anytime);
  tcase_add_test (tc, test_policy_fixed);
  tcase_add_test (tc, test_policy_full);
  tcase_add_test (tc, test_deadline_shorter_than_any_exit);
  tcase_add_test (tc, test_interval);
  tcase_add_test (tc, test_latency_query);
  tcase_add_test (tc, test_qos);
  tcase_add_test (tc, test_wrong_caps_refused);
  tcase_add_test (tc, test_missing_model_file);
  tcase_add_test (tc, test_corrupt_model_file);
  tcase_add_test (tc, test_device_and_precision_errors);
  tcase_add_test (tc, test_device_cpu_and_auto);
  tcase_add_test (tc, test_meta_and_messages);
  tcase_add_test (tc, test_state_cycles);
  tcase_add_test (tc, test_two_elements);
  tcase_add_test (tc, test_flushing_seek);
  tcase_add_test (tc, test_inspect_documents_everything);
  tcase_add_test (tc, test_overlay_draws_result);
  tcase_add_test (tc, test_audio_any_format);
  tcase_add_test (tc, test_compressed_file);
  tcase_add_test (tc, test_audio_pad_unlinked);
  tcase_add_test (tc, test_audio_without_video);
  tcase_add_test (tc, test_untimed_frame);
  tcase_add_test (tc, test_deadline_set_while_starting);
  return s;
}

GST_CHECK_MAIN (avcrowdcount);
