/* gst-earlyexit: GstCheck tests of the audioexitclassify element (CPU
 * backend, the demo Speech Commands and GTZAN classifiers from
 * $EE_TEST_SC_MODEL and $EE_TEST_GTZAN_MODEL; see classify-check.h). */
#include <gst/check/gstharness.h>

#include "classify-check.h"

#define RATE 16000
#define SC_CAPS                                                                \
  "audio/x-raw,format=F32LE,rate=16000,channels=1,layout=interleaved"
#define SC_CLASSES 12
#define GTZAN_RATE 22050
#define GTZAN_CLASSES 10

static const gchar *const keywords[]
    = { "yes", "no",   "up", "down",      "left",      "right", "on",
        "off", "stop", "go", "_silence_", "_unknown_", NULL };
static const gchar *const genres[]
    = { "blues", "classical", "country", "disco", "hiphop", "jazz",
        "metal", "pop",       "reggae",  "rock",  NULL };

static GstElement *
make_element (const gchar *first, ...)
{
  GstElement *e
      = make_classifier ("audioexitclassify", "EE_TEST_SC_MODEL", NULL);
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
  GPtrArray *metas; /* results pulled, in order */
  GPtrArray *on;    /* per result: [PTS, end) of the buffer carrying it */
} Fx;

static void
fx_start_caps (Fx *f, GstElement *e, const gchar *caps)
{
  f->e = e;
  f->bus = gst_bus_new ();
  gst_element_set_bus (e, f->bus);
  f->h = gst_harness_new_with_element (e, "sink", "src");
  gst_harness_set_src_caps_str (f->h, caps);
  f->metas
      = g_ptr_array_new_with_free_func ((GDestroyNotify)gst_structure_free);
  f->on = g_ptr_array_new_with_free_func (g_free);
}

static void
fx_start (Fx *f, GstElement *e)
{
  fx_start_caps (f, e, SC_CAPS);
}

static void
fx_stop (Fx *f)
{
  gst_harness_teardown (f->h);
  gst_element_set_bus (f->e, NULL);
  gst_object_unref (f->bus);
  gst_object_unref (f->e);
  g_ptr_array_unref (f->metas);
  g_ptr_array_unref (f->on);
}

/* A 440 Hz tone over [t, t + dur) at 16 kHz, F32 mono. */
static GstBuffer *
tone (GstClockTime t, GstClockTime dur)
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

/* Pushes `buf`, pulls it back (data unchanged) and keeps its results. */
static void
push (Fx *f, GstBuffer *buf)
{
  GstBuffer *ref = gst_buffer_copy_deep (buf), *out;
  gpointer state = NULL;
  const GstStructure *r;
  guint before = f->metas->len;
  GstMapInfo a, b;

  fail_unless_equals_int (gst_harness_push (f->h, buf), GST_FLOW_OK);
  out = gst_harness_pull (f->h);
  fail_unless (out != NULL);
  gst_buffer_map (out, &a, GST_MAP_READ);
  gst_buffer_map (ref, &b, GST_MAP_READ);
  fail_unless (a.size == b.size && memcmp (a.data, b.data, a.size) == 0,
               "the element changed the audio");
  gst_buffer_unmap (out, &a);
  gst_buffer_unmap (ref, &b);
  while ((r = gst_buffer_iterate_earlyexit_results (out, &state))) {
    GstClockTime *span = g_new (GstClockTime, 2);

    g_ptr_array_add (f->metas, gst_structure_copy (r));
    span[0] = GST_BUFFER_PTS (out);
    span[1] = GST_BUFFER_PTS (out) + GST_BUFFER_DURATION (out);
    g_ptr_array_add (f->on, span);
  }
  /* the first is the one gst_buffer_get_earlyexit_result gives */
  if (f->metas->len > before)
    fail_unless (gst_structure_is_equal (gst_buffer_get_earlyexit_result (out),
                                         g_ptr_array_index (f->metas, before)));
  gst_buffer_unref (out);
  gst_buffer_unref (ref);
}

/* Pushes the tone over [from, until) in `chunk` pieces. */
static void
push_tone (Fx *f, GstClockTime from, GstClockTime until, GstClockTime chunk)
{
  for (GstClockTime t = from; t < until; t += chunk)
    push (f, tone (t, MIN (chunk, until - t)));
}

static void
push_eos (Fx *f)
{
  fail_unless (gst_harness_push_event (f->h, gst_event_new_eos ()));
}

/* The element messages posted so far (owned copies, in order). */
static GPtrArray *
messages (Fx *f)
{
  GPtrArray *out
      = g_ptr_array_new_with_free_func ((GDestroyNotify)gst_structure_free);
  GstMessage *msg;

  while ((msg = gst_bus_pop_filtered (f->bus, GST_MESSAGE_ELEMENT))) {
    g_ptr_array_add (out, gst_structure_copy (gst_message_get_structure (msg)));
    gst_message_unref (msg);
  }
  return out;
}

static GstStructure *
meta_at (Fx *f, guint i)
{
  fail_unless (i < f->metas->len, "only %u results", f->metas->len);
  return g_ptr_array_index (f->metas, i);
}

static void
check_window (const GstStructure *r, GstClockTime start, GstClockTime end,
              gdouble coverage)
{
  fail_unless_equals_uint64 (earlyexit_result_get_window_start (r), start);
  fail_unless_equals_uint64 (earlyexit_result_get_window_end (r), end);
  fail_unless (fabs (earlyexit_result_get_audio_coverage (r) - coverage) < 1e-4,
               "coverage %f, expected %f",
               earlyexit_result_get_audio_coverage (r), coverage);
}

/* ------------------------------------------------------------ windows */

GST_START_TEST (test_windows_and_hop)
{
  Fx f;
  GPtrArray *msgs;

  fx_start (&f, make_element ("hop", (guint64)(500 * MS), NULL));
  push_tone (&f, 0, 2500 * MS, 100 * MS);
  /* windows [0, 1), [0.5, 1.5), [1, 2), [1.5, 2.5), each on the buffer that
   * completes it */
  fail_unless_equals_int (f.metas->len, 4);
  for (guint i = 0; i < 4; i++) {
    const GstStructure *r = meta_at (&f, i);
    const GstClockTime *on = g_ptr_array_index (f.on, i);

    check_result (r, 5, SC_CLASSES, keywords);
    check_window (r, i * 500 * MS, i * 500 * MS + GST_SECOND, 1.0);
    fail_unless_equals_uint64 (on[1], i * 500 * MS + GST_SECOND);
    fail_unless (earlyexit_result_is_fresh (r));
    fail_unless_equals_uint64 (earlyexit_result_get_deadline (r), GENEROUS);
  }
  /* the message: the window's times */
  msgs = messages (&f);
  fail_unless_equals_int (msgs->len, 4);
  for (guint i = 0; i < 4; i++) {
    const GstStructure *m = g_ptr_array_index (msgs, i);
    GstClockTime t;

    fail_unless (gst_structure_has_name (m, "audioexitclassify"));
    fail_unless (gst_structure_get_clock_time (m, "timestamp", &t));
    fail_unless_equals_uint64 (t, i * 500 * MS);
    fail_unless (gst_structure_get_clock_time (m, "running-time", &t));
    fail_unless_equals_uint64 (t, i * 500 * MS);
    fail_unless (gst_structure_get_clock_time (m, "stream-time", &t));
    fail_unless (gst_structure_get_clock_time (m, "duration", &t));
    fail_unless_equals_uint64 (t, GST_SECOND);
    check_result (m, 5, SC_CLASSES, keywords);
  }
  g_ptr_array_unref (msgs);
  /* the stream ends where the last window did: nothing left for EOS */
  push_eos (&f);
  msgs = messages (&f);
  fail_unless_equals_int (msgs->len, 0);
  g_ptr_array_unref (msgs);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_many_windows_in_one_buffer)
{
  Fx f;

  fx_start (&f, make_element ("hop", (guint64)(250 * MS), NULL));
  push (&f, tone (0, 2 * GST_SECOND));
  /* five windows, oldest first, all on that buffer */
  fail_unless_equals_int (f.metas->len, 5);
  for (guint i = 0; i < 5; i++)
    check_window (meta_at (&f, i), i * 250 * MS, i * 250 * MS + GST_SECOND,
                  1.0);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_hop_longer_than_window)
{
  Fx f;
  guint64 latency = 0;

  /* the audio between windows is skipped */
  fx_start (&f, make_element ("hop", (guint64)(1500 * MS), "deadline",
                              (guint64)0, NULL));
  push_tone (&f, 0, 4 * GST_SECOND, 100 * MS);
  fail_unless_equals_int (f.metas->len, 3);
  check_window (meta_at (&f, 0), 0, GST_SECOND, 1.0);
  check_window (meta_at (&f, 1), 1500 * MS, 2500 * MS, 1.0);
  check_window (meta_at (&f, 2), 3 * GST_SECOND, 4 * GST_SECOND, 1.0);
  /* deadline 0: the budget and the latency are one hop */
  fail_unless_equals_uint64 (earlyexit_result_get_deadline (meta_at (&f, 0)),
                             1500 * MS);
  g_object_get (f.e, "processing-latency", &latency, NULL);
  fail_unless_equals_uint64 (latency, 1500 * MS);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_eos_partial_window)
{
  Fx f;
  GPtrArray *msgs;
  const GstStructure *m;
  GstClockTime t;

  /* shorter than a window: one zero-padded result at EOS, as a message */
  fx_start (&f, make_element (NULL));
  push_tone (&f, 0, 400 * MS, 100 * MS);
  fail_unless_equals_int (f.metas->len, 0);
  msgs = messages (&f);
  fail_unless_equals_int (msgs->len, 0);
  g_ptr_array_unref (msgs);
  push_eos (&f);
  msgs = messages (&f);
  fail_unless_equals_int (msgs->len, 1);
  m = g_ptr_array_index (msgs, 0);
  check_result (m, 5, SC_CLASSES, keywords);
  check_window (m, 0, GST_SECOND, 0.4);
  fail_unless (gst_structure_get_clock_time (m, "timestamp", &t));
  fail_unless_equals_uint64 (t, 0);
  g_ptr_array_unref (msgs);
  fx_stop (&f);

  /* 1.3 s: the first window on its buffer, the tail [1, 2) at EOS */
  fx_start (&f, make_element (NULL));
  push_tone (&f, 0, 1300 * MS, 100 * MS);
  fail_unless_equals_int (f.metas->len, 1);
  check_window (meta_at (&f, 0), 0, GST_SECOND, 1.0);
  push_eos (&f);
  msgs = messages (&f);
  fail_unless_equals_int (msgs->len, 2);
  check_window (g_ptr_array_index (msgs, 1), GST_SECOND, 2 * GST_SECOND, 0.3);
  g_ptr_array_unref (msgs);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_gaps_and_jumps)
{
  Fx f;

  fx_start (&f, make_element (NULL));
  /* 0.2 s missing inside the first window: zeros, coverage 0.8 */
  push_tone (&f, 0, 300 * MS, 100 * MS);
  push_tone (&f, 500 * MS, 1200 * MS, 100 * MS);
  fail_unless_equals_int (f.metas->len, 1);
  check_window (meta_at (&f, 0), 0, GST_SECOND, 0.8);
  /* a GAP buffer counts as missing */
  {
    GstBuffer *gap = tone (1200 * MS, 100 * MS);
    GST_BUFFER_FLAG_SET (gap, GST_BUFFER_FLAG_GAP);
    push (&f, gap);
  }
  /* 10 ms of timestamp jitter is ignored */
  push (&f, tone (1310 * MS, 100 * MS));
  push_tone (&f, 1410 * MS, 2010 * MS, 100 * MS);
  fail_unless_equals_int (f.metas->len, 2);
  check_window (meta_at (&f, 1), GST_SECOND, 2 * GST_SECOND, 0.9);
  /* a jump of more than a window drops the unfinished one and restarts the
   * windows at the new timestamp */
  push_tone (&f, 2010 * MS, 2510 * MS, 100 * MS);
  push_tone (&f, 5 * GST_SECOND, 6 * GST_SECOND, 100 * MS);
  fail_unless_equals_int (f.metas->len, 3);
  check_window (meta_at (&f, 2), 5 * GST_SECOND, 6 * GST_SECOND, 1.0);
  /* and back in time */
  push_tone (&f, 3 * GST_SECOND, 4 * GST_SECOND, 100 * MS);
  fail_unless_equals_int (f.metas->len, 4);
  check_window (meta_at (&f, 3), 3 * GST_SECOND, 4 * GST_SECOND, 1.0);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_flush_restarts_windows)
{
  Fx f;

  fx_start (&f, make_element (NULL));
  push_tone (&f, 0, 700 * MS, 100 * MS);
  fail_unless (gst_harness_push_event (f.h, gst_event_new_flush_start ()));
  fail_unless (gst_harness_push_event (f.h, gst_event_new_flush_stop (TRUE)));
  {
    GstSegment seg;
    gst_segment_init (&seg, GST_FORMAT_TIME);
    fail_unless (gst_harness_push_event (f.h, gst_event_new_segment (&seg)));
  }
  /* the windows start at the first buffer after the flush */
  push_tone (&f, 2 * GST_SECOND, 3 * GST_SECOND, 100 * MS);
  fail_unless_equals_int (f.metas->len, 1);
  check_window (meta_at (&f, 0), 2 * GST_SECOND, 3 * GST_SECOND, 1.0);
  fx_stop (&f);
}

GST_END_TEST;

/* ------------------------------------------------------------ formats */

/* The first window's result (owned) for 1 s of a constant signal at
 * `caps`: every frame (all channels) equal to `frame`, `bytes` long. */
static GstStructure *
first_result (const gchar *caps, const guint8 *frame, gsize bytes)
{
  Fx f;
  GstBuffer *buf = gst_buffer_new_allocate (NULL, bytes * RATE, NULL);
  GstMapInfo map;
  GstStructure *r;

  gst_buffer_map (buf, &map, GST_MAP_WRITE);
  for (gsize i = 0; i < RATE; i++)
    memcpy (map.data + i * bytes, frame, bytes);
  gst_buffer_unmap (buf, &map);
  GST_BUFFER_PTS (buf) = 0;
  GST_BUFFER_DURATION (buf) = GST_SECOND;
  fx_start_caps (&f, make_element (NULL), caps);
  gst_util_set_object_arg (G_OBJECT (f.e), "policy", "fixed");
  push (&f, buf);
  fail_unless_equals_int (f.metas->len, 1);
  r = gst_structure_copy (meta_at (&f, 0));
  fx_stop (&f);
  return r;
}

GST_START_TEST (test_s16_stereo_is_averaged)
{
  /* S16 stereo (8192, 16384) is the mono float 0.375 */
  gint16 s16[2] = { GINT16_TO_LE (8192), GINT16_TO_LE (16384) };
  float f32 = 0.375f;
  GstStructure *a = first_result (
      "audio/x-raw,format=S16LE,rate=16000,channels=2,layout=interleaved,"
      "channel-mask=(bitmask)0x3",
      (const guint8 *)s16, sizeof s16);
  GstStructure *b = first_result (SC_CAPS, (const guint8 *)&f32, sizeof f32);

  fail_unless_equals_int (earlyexit_result_get_label_id (a),
                          earlyexit_result_get_label_id (b));
  fail_unless (fabs (earlyexit_result_get_confidence (a)
                     - earlyexit_result_get_confidence (b))
                   < 1e-9,
               "%f vs %f", earlyexit_result_get_confidence (a),
               earlyexit_result_get_confidence (b));
  gst_structure_free (a);
  gst_structure_free (b);
}

GST_END_TEST;

/* ------------------------------------------------------------ policies */

/* The result of one 1 s window. */
static const GstStructure *
one_window (Fx *f)
{
  static GstClockTime t = 0;

  push (f, tone (t, GST_SECOND));
  t += GST_SECOND;
  return meta_at (f, f->metas->len - 1);
}

GST_START_TEST (test_policies)
{
  Fx f;
  const GstStructure *r;
  GstStructure *s;
  guint n = 0;

  fx_start (&f, make_element (NULL));
  r = one_window (&f), n++;
  fail_unless_equals_int (exit_of (r), EXIT_FINAL);

  gst_util_set_object_arg (G_OBJECT (f.e), "policy", "fixed");
  g_object_set (f.e, "max-exit", EXIT_B1, NULL);
  r = one_window (&f), n++;
  fail_unless_equals_int (exit_of (r), EXIT_B1);

  gst_util_set_object_arg (G_OBJECT (f.e), "policy", "full");
  g_object_set (f.e, "max-exit", EXIT_B2, NULL);
  r = one_window (&f), n++;
  fail_unless_equals_int (exit_of (r), EXIT_B2);

  gst_util_set_object_arg (G_OBJECT (f.e), "policy", "confidence");
  g_object_set (f.e, "max-exit", -1, "confidence-threshold", 0.0, NULL);
  r = one_window (&f), n++;
  fail_unless_equals_int (exit_of (r), EXIT_B1);
  g_object_set (f.e, "confidence-threshold", 1.0, NULL);
  r = one_window (&f), n++;
  fail_unless_equals_int (exit_of (r), EXIT_FINAL);

  /* a deadline shorter than any exit: the first exit, flagged */
  g_object_set (f.e, "deadline", (guint64)1, NULL);
  r = one_window (&f), n++;
  fail_unless_equals_int (exit_of (r), EXIT_B1);
  fail_unless (earlyexit_result_get_deadline_missed (r));
  gst_util_set_object_arg (G_OBJECT (f.e), "policy", "anytime");
  r = one_window (&f), n++;
  fail_unless_equals_int (exit_of (r), EXIT_B1);
  fail_unless (earlyexit_result_get_deadline_missed (r));

  s = get_stats (f.e);
  fail_unless_equals_uint64 (stats_u64 (s, "results"), n);
  fail_unless_equals_uint64 (stats_u64 (s, "deadline-misses"), 2);
  fail_unless_equals_uint64 (stats_u64 (s, "confident-stops"), 1);
  gst_structure_free (s);
  fx_stop (&f);
}

GST_END_TEST;

GST_START_TEST (test_interval)
{
  Fx f;

  fx_start (&f, make_element ("interval", 2, NULL));
  push_tone (&f, 0, 4 * GST_SECOND, 250 * MS);
  fail_unless_equals_int (f.metas->len, 4);
  for (guint i = 0; i < 4; i++) {
    const GstStructure *r = meta_at (&f, i);
    fail_unless (earlyexit_result_is_fresh (r) == (i % 2 == 0));
    /* a carried result describes the window it was computed on */
    check_window (r, (i - i % 2) * GST_SECOND, (i - i % 2 + 1) * GST_SECOND,
                  1.0);
  }
  fx_stop (&f);
}

GST_END_TEST;

/* ------------------------------------------------------------ pipelines */

static GstPadProbeReturn
count_metas (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  if (gst_buffer_get_earlyexit_result (GST_PAD_PROBE_INFO_BUFFER (info)))
    g_atomic_int_inc ((gint *)user_data);
  return GST_PAD_PROBE_OK;
}

/* audiotestsrc at 48 kHz: audioconvert and audioresample in front pass it
 * through, as the element takes any raw audio and resamples it to the
 * model's 16 kHz itself. */
GST_START_TEST (test_sc_pipeline)
{
  GstElement *pipe = launch (
      "audiotestsrc num-buffers=25 samplesperbuffer=9600 wave=pink-noise ! "
      "audio/x-raw,rate=48000,channels=2 ! audioconvert ! audioresample ! "
      "audioexitclassify name=c model-file=\"%s\" device=cpu "
      "deadline=10000000000 hop=1000000000 ! fakesink name=s",
      env_path ("EE_TEST_SC_MODEL"));
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipe), "s");
  GstPad *pad = gst_element_get_static_pad (sink, "sink");
  gint with_meta = 0;
  GPtrArray *results;

  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, count_metas, &with_meta,
                     NULL);
  results = play_collect (pipe, "c");
  /* 5 s: five windows, the last one complete at the end of the stream.
   * The resampler holds back a few samples, so a window is complete with
   * the buffer after the one its end falls in, and the last one at EOS,
   * where no buffer follows to carry its meta (its message is there) */
  fail_unless_equals_int (results->len, 5);
  fail_unless_equals_int (g_atomic_int_get (&with_meta), 4);
  for (guint i = 0; i < results->len; i++) {
    check_result (g_ptr_array_index (results, i), 5, SC_CLASSES, keywords);
    check_window (g_ptr_array_index (results, i), i * GST_SECOND,
                  (i + 1) * GST_SECOND, 1.0);
  }
  g_ptr_array_unref (results);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (pad);
  gst_object_unref (sink);
  gst_object_unref (pipe);
}

GST_END_TEST;

/* A WAV file: 16-bit mono (a tone) or stereo (a chord) at `rate`,
 * `seconds` long. Returns its path (owned). */
static gchar *
write_wav (guint32 rate, guint16 channels, gdouble seconds)
{
  guint32 n = (guint32)(rate * seconds);
  GByteArray *wav = g_byte_array_new ();
  gchar *path;
  guint32 u32;
  guint16 u16;

#define PUT32(v)                                                               \
  (u32 = GUINT32_TO_LE (v), g_byte_array_append (wav, (const guint8 *)&u32, 4))
#define PUT16(v)                                                               \
  (u16 = GUINT16_TO_LE (v), g_byte_array_append (wav, (const guint8 *)&u16, 2))
  g_byte_array_append (wav, (const guint8 *)"RIFF", 4);
  PUT32 (36 + n * 2 * channels);
  g_byte_array_append (wav, (const guint8 *)"WAVEfmt ", 8);
  PUT32 (16);
  PUT16 (1); /* PCM */
  PUT16 (channels);
  PUT32 (rate);
  PUT32 (rate * 2 * channels);
  PUT16 (2 * channels);
  PUT16 (16);
  g_byte_array_append (wav, (const guint8 *)"data", 4);
  PUT32 (n * 2 * channels);
  for (guint32 i = 0; i < n; i++) {
    double t = (double)i / rate;
    PUT16 ((guint16)(gint16)(8000 * sin (2 * G_PI * 220 * t)));
    if (channels == 2)
      PUT16 ((guint16)(gint16)(8000 * sin (2 * G_PI * 330 * t)));
  }
#undef PUT32
#undef PUT16
  path = write_temp ("clip.wav", wav->data, wav->len);
  g_byte_array_unref (wav);
  return path;
}

/* A GTZAN model on a WAV file through decodebin: 3.5 s gives the window
 * [0, 3) and, at EOS, [3, 6) zero-padded (a sixth of it audio). */
GST_START_TEST (test_gtzan_wav_decodebin)
{
  gchar *wav = write_wav (44100, 2, 3.5);
  GstElement *pipe = launch (
      "filesrc location=\"%s\" ! decodebin ! audioconvert ! audioresample ! "
      "audioexitclassify name=c model-file=\"%s\" device=cpu "
      "deadline=10000000000 top-k=3 ! fakesink",
      wav, env_path ("EE_TEST_GTZAN_MODEL"));
  GPtrArray *results = play_collect (pipe, "c");
  guint64 latency = 0;
  GstElement *c = gst_bin_get_by_name (GST_BIN (pipe), "c");

  fail_unless_equals_int (results->len, 2);
  check_result (g_ptr_array_index (results, 0), 3, GTZAN_CLASSES, genres);
  check_window (g_ptr_array_index (results, 0), 0, 3 * GST_SECOND, 1.0);
  check_result (g_ptr_array_index (results, 1), 3, GTZAN_CLASSES, genres);
  check_window (g_ptr_array_index (results, 1), 3 * GST_SECOND, 6 * GST_SECOND,
                0.5 / 3);
  g_object_get (c, "processing-latency", &latency, NULL);
  fail_unless_equals_uint64 (latency, 10 * GST_SECOND);
  g_ptr_array_unref (results);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (c);
  gst_object_unref (pipe);
  g_unlink (wav);
  g_free (wav);
}

GST_END_TEST;

/* uridecodebin's source pad straight to the element's sink pad. */
static void
link_to_classifier (GstElement *decodebin, GstPad *pad, gpointer user_data)
{
  GstPad *sink = gst_element_get_static_pad (GST_ELEMENT (user_data), "sink");

  fail_unless_equals_int (gst_pad_link (pad, sink), GST_PAD_LINK_OK);
  gst_object_unref (sink);
}

/* Acceptance: a 44.1 kHz mono S16LE WAV decoded by uridecodebin straight
 * into audioexitclassify (no converter in between) with the 16 kHz Speech
 * Commands model: 3.5 s give the windows [0, 1), [1, 2), [2, 3) and, at EOS,
 * [3, 4) half audio, on the model's sample grid. */
GST_START_TEST (test_wav_44100_mono_s16)
{
  gchar *wav = write_wav (44100, 1, 3.5);
  gchar *uri = gst_filename_to_uri (wav, NULL);
  GstElement *pipe = launch ("uridecodebin name=d uri=%s "
                             "audioexitclassify name=c model-file=\"%s\" "
                             "device=cpu deadline=10000000000 ! fakesink",
                             uri, env_path ("EE_TEST_SC_MODEL"));
  GstElement *d = gst_bin_get_by_name (GST_BIN (pipe), "d");
  GstElement *c = gst_bin_get_by_name (GST_BIN (pipe), "c");
  GPtrArray *results;

  g_signal_connect (d, "pad-added", G_CALLBACK (link_to_classifier), c);
  results = play_collect (pipe, "c");
  fail_unless_equals_int (results->len, 4);
  for (guint i = 0; i < 4; i++) {
    check_result (g_ptr_array_index (results, i), 5, SC_CLASSES, keywords);
    check_window (g_ptr_array_index (results, i), i * GST_SECOND,
                  (i + 1) * GST_SECOND, i < 3 ? 1.0 : 0.5);
  }
  g_ptr_array_unref (results);
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (d);
  gst_object_unref (c);
  gst_object_unref (pipe);
  g_unlink (wav);
  g_free (wav);
  g_free (uri);
}

GST_END_TEST;

/* hop=1 (1 ns) would classify a window per sample: it is raised to 10 ms,
 * with a warning. */
GST_START_TEST (test_hop_minimum)
{
  GstMessage *msg;
  GPtrArray *msgs;
  Fx f;

  fx_start (&f, make_element ("hop", (guint64)1, NULL));
  msg = gst_bus_pop_filtered (f.bus, GST_MESSAGE_WARNING);
  fail_unless (msg != NULL, "no warning about the hop");
  gst_message_unref (msg);
  push_tone (&f, 0, GST_SECOND + 100 * GST_MSECOND, 100 * GST_MSECOND);
  msgs = messages (&f);
  /* windows starting at 0, 10 ms, ..., 100 ms */
  fail_unless_equals_int (msgs->len, 11);
  check_window (g_ptr_array_index (msgs, 1), 10 * GST_MSECOND,
                GST_SECOND + 10 * GST_MSECOND, 1.0);
  g_ptr_array_unref (msgs);
  fx_stop (&f);
}

GST_END_TEST;

/* ------------------------------------------------------------ caps */

static gboolean
accepts (GstElement *e, const gchar *caps_str)
{
  return accepts_logged (e, "audioexitclassify", caps_str, NULL);
}

GST_START_TEST (test_wrong_caps)
{
  GstElement *e = make_element (NULL);
  gchar *log;

  /* any raw audio, also once the model is loaded: converted inside */
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
                          GST_STATE_CHANGE_SUCCESS);
  fail_unless (accepts (e, SC_CAPS));
  fail_unless (accepts (e, "audio/x-raw,format=S16LE,rate=16000,channels=1,"
                           "layout=interleaved"));
  fail_unless (accepts (e, "audio/x-raw,format=F32LE,rate=44100,channels=1,"
                           "layout=interleaved"));
  fail_unless (accepts (e, "audio/x-raw,format=U8,rate=8000,channels=6,"
                           "layout=non-interleaved"));
  /* not raw audio: refused, and the log says what the element takes */
  fail_if (accepts_logged (e, "audioexitclassify", "audio/mpeg,mpegversion=4",
                           &log));
  fail_unless (strstr (log, "audio/mpeg") && strstr (log, "audio/x-raw"),
               "refusal log: %s", log);
  g_free (log);
  fail_if (accepts (e, "video/x-raw"));
  gst_element_set_state (e, GST_STATE_NULL);
  gst_object_unref (e);
}

GST_END_TEST;

/* ------------------------------------------------------------ errors */

GST_START_TEST (test_model_errors)
{
  gchar *path;

  check_start_error ("audioexitclassify", "EE_TEST_SC_MODEL", "model-file",
                     "/nonexistent/sc.safetensors",
                     GST_RESOURCE_ERROR_NOT_FOUND, "does not exist", NULL);
  check_start_error ("audioexitclassify", "EE_TEST_SC_MODEL", "model-file",
                     env_path ("EE_TEST_IMAGE_MODEL"),
                     GST_RESOURCE_ERROR_FAILED, "exitclassify", "images");
  check_start_error ("audioexitclassify", "EE_TEST_SC_MODEL", "model-file",
                     env_path ("EE_TEST_COUNT_MODEL"),
                     GST_RESOURCE_ERROR_FAILED, "crowd-counting", NULL);
  path = write_temp ("junk.safetensors", "\x10\0\0\0\0\0\0\0{\"a\":", 14);
  check_start_error ("audioexitclassify", "EE_TEST_SC_MODEL", "model-file",
                     path, GST_RESOURCE_ERROR_FAILED, path, NULL);
  g_unlink (path);
  g_free (path);
  check_start_error ("audioexitclassify", "EE_TEST_SC_MODEL", "labels-file",
                     "/nonexistent/keywords.txt", GST_RESOURCE_ERROR_NOT_FOUND,
                     "keywords.txt", NULL);
  path = write_temp ("keywords.txt", "yes\nno\n", 7);
  check_start_error ("audioexitclassify", "EE_TEST_SC_MODEL", "labels-file",
                     path, GST_RESOURCE_ERROR_FAILED, "has 2 labels",
                     "12 classes");
  g_unlink (path);
  g_free (path);
}

GST_END_TEST;

/* ------------------------------------------------------------ docs */

GST_START_TEST (test_inspect_documents_everything)
{
  Fx f;
  GPtrArray *msgs;

  fx_start (&f, make_element (NULL));
  push (&f, tone (0, GST_SECOND));
  msgs = messages (&f);
  fail_unless_equals_int (msgs->len, 1);
  check_inspect_page (f.e, "audioexitclassify", g_ptr_array_index (msgs, 0));
  g_ptr_array_unref (msgs);
  fx_stop (&f);
}

GST_END_TEST;

static Suite *
audioexitclassify_suite (void)
{
  Suite *s = suite_create ("audioexitclassify");
  TCase *tc = tcase_create ("general");

  suite_add_tcase (s, tc);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_windows_and_hop);
  tcase_add_test (tc, test_many_windows_in_one_buffer);
  tcase_add_test (tc, test_hop_longer_than_window);
  tcase_add_test (tc, test_eos_partial_window);
  tcase_add_test (tc, test_gaps_and_jumps);
  tcase_add_test (tc, test_flush_restarts_windows);
  tcase_add_test (tc, test_s16_stereo_is_averaged);
  tcase_add_test (tc, test_policies);
  tcase_add_test (tc, test_interval);
  tcase_add_test (tc, test_sc_pipeline);
  tcase_add_test (tc, test_gtzan_wav_decodebin);
  tcase_add_test (tc, test_wav_44100_mono_s16);
  tcase_add_test (tc, test_hop_minimum);
  tcase_add_test (tc, test_wrong_caps);
  tcase_add_test (tc, test_model_errors);
  tcase_add_test (tc, test_inspect_documents_everything);
  return s;
}

GST_CHECK_MAIN (audioexitclassify);
