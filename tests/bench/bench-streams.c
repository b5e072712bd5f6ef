/* gst-earlyexit: N live camera streams through avcrowdcount in one process.
 *
 * Usage: bench-streams [--seconds S] [--settle S] [--streams 1,2,4,8]
 *                      [--modes private,shared,shared-1lane,shared-batch]
 *                      [--model PATH] [--threads N] [--batch N]
 *                      [--clip DIR] [--clip-seconds S]
 *
 * Each stream is its own pipeline, as an application watching N cameras
 * would build them:
 *
 *   appsrc (640x360 RGB, 25 fps, live) --------> avcrowdcount -> fakesink
 *   appsrc (16 kHz mono F32LE, 40 ms, live) ---/                 sync=true
 *
 * The media is the demo clip of the bundled model's generator
 * (models/synth/scenes.py clip --kind demo --fps 25), generated into a
 * temporary folder unless --clip names one that has it. Its 256x144 frames are
 * upscaled once, bilinearly, to 640x360 in memory (the element then scales
 * them back down, as it would a camera's frames); every stream's buffers wrap
 * that one read-only copy, so feeding costs no copy and the clip's memory is
 * a constant part of every RSS figure. Stream s starts s / 8 of the clip in,
 * and the clip loops.
 *
 * Pacing: one feeder thread per stream waits on the pipeline clock and pushes
 * frame k (PTS k * 40 ms) when the clock reaches its PTS, and the audio chunk
 * [k - 1, k) * 40 ms at the same moment: a microphone delivers a chunk once
 * its last sample is captured, so the audio source reports 40 ms of latency.
 *
 * Every (N, mode) runs for --settle seconds that are not counted, then
 * --seconds that are; a pad probe on each sink reads every buffer's result
 * meta (earlyexit-meta.h). Mode "private" gives every element its own engine;
 * "shared" sets model-instance-id to one value on all of them so that they
 * share one, when the plugin has that property; "shared-1lane" is "shared"
 * with an engine that runs one frame at a time (EE_ENGINE_LANES=1, the
 * design before lanes), for comparison; "shared-batch" is "shared" with
 * batch-size --batch (default 4): frames waiting for the same step run it as
 * one batched call. */
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>
#include <gst/app/gstappsrc.h>
#include <gst/base/gstbasesink.h>
#include <gst/gst.h>
#include <json-glib/json-glib.h>

#include "earlyexit-meta.h"

#define WIDTH 640
#define HEIGHT 360
#define FPS 25
#define FRAME_NS (GST_SECOND / FPS)
#define RATE 16000
#define CHUNK_SAMPLES (RATE / FPS)
/* Streams start this many evenly spaced offsets apart in the clip. */
#define OFFSET_SLOTS 8
#define MAX_EXITS 8
#define EXIT_NAME_LEN 16
#define SHARED_INSTANCE_ID "bench"

typedef struct
{
  guint8 *frames; /* n_frames x WIDTH x HEIGHT x 3, upscaled */
  float *audio;   /* n_frames x CHUNK_SAMPLES */
  double *truth;  /* people per frame */
  guint n_frames;
} Clip;

typedef struct
{
  guint64 frames, on_time, carried, no_meta;
  guint64 exits[MAX_EXITS];
  guint64 exit_sum;
  char exit_names[MAX_EXITS][EXIT_NAME_LEN];
  gint n_exits;
  double abs_err;
  guint64 n_err;
  gint64 max_lag;
  gboolean have_lag;
  guint64 n_lag, late;  /* buffers timed; those that reached the sink late */
  GstClockTime latency; /* the sinks' largest configured latency */
} Stats;

typedef struct
{
  guint offset; /* clip frame of PTS 0 */
  const Clip *clip;
  const gint *measuring;
  GstElement *pipeline, *vsrc, *asrc, *crowd, *sink;
  GThread *feeder;
  gint stop;
  GMutex lock; /* stats: written by the sink's streaming thread */
  Stats stats;
} Stream;

typedef struct
{
  gint seconds, settle, threads, batch;
  gchar *model;
  gboolean has_instance_id, has_threads;
} Config;

typedef enum
{
  MODE_PRIVATE,
  MODE_SHARED,
  MODE_SHARED_1LANE,
  MODE_SHARED_BATCH,
  N_MODES
} Mode;

static const char *const mode_names[N_MODES]
    = { "private", "shared", "shared-1lane", "shared-batch" };

typedef struct
{
  guint n;
  Mode mode;
  Stats total;
  double elapsed_s, rss_mb;
} Row;

/* ------------------------------------------------------------ machine */

static gchar *
cpu_model (void)
{
  gchar *text = NULL, *model = NULL;

  if (g_file_get_contents ("/proc/cpuinfo", &text, NULL, NULL)) {
    gchar **lines = g_strsplit (text, "\n", -1);
    for (gchar **l = lines; *l && !model; l++)
      if (g_str_has_prefix (*l, "model name") && strchr (*l, ':'))
        model = g_strdup (g_strstrip (strchr (*l, ':') + 1));
    g_strfreev (lines);
  }
  g_free (text);
  return model ? model : g_strdup ("unknown CPU");
}

/* VmRSS of this process in MB, or -1. */
static double
rss_mb (void)
{
  gchar *text = NULL, *line;
  double mb = -1;

  if (g_file_get_contents ("/proc/self/status", &text, NULL, NULL)
      && (line = strstr (text, "VmRSS:")))
    mb = g_ascii_strtod (line + 6, NULL) / 1024.0;
  g_free (text);
  return mb;
}

/* ------------------------------------------------------------ the clip */

static gboolean
generate_clip (const gchar *dir, gint seconds, GError **error)
{
  const gchar *py = g_getenv ("EE_PYTHON");
  gchar *secs = g_strdup_printf ("%d", seconds);
  const gchar *argv[] = { py && *py ? py : EE_PYTHON_DEFAULT,
                          BENCH_STREAMS_SCENES,
                          "clip",
                          "--kind",
                          "demo",
                          "--seed",
                          "1",
                          "--fps",
                          G_STRINGIFY (FPS),
                          "--seconds",
                          secs,
                          "--out",
                          dir,
                          NULL };
  gchar *out_text = NULL, *err_text = NULL;
  gint status;
  /* its summary line (every count) would only clutter the table */
  gboolean ok = g_spawn_sync (NULL, (gchar **)argv, NULL, G_SPAWN_SEARCH_PATH,
                              NULL, NULL, &out_text, &err_text, &status, error);

  if (ok && !g_spawn_check_wait_status (status, error)) {
    g_prefix_error (error, "%s: %s", BENCH_STREAMS_SCENES,
                    err_text ? err_text : "");
    ok = FALSE;
  }
  g_free (out_text);
  g_free (err_text);
  g_free (secs);
  return ok;
}

/* truth.json's per-frame counts; checks the geometry and the rate. */
static double *
load_truth (const gchar *dir, guint *n_frames, gint *w, gint *h, GError **error)
{
  gchar *path = g_build_filename (dir, "truth.json", NULL);
  JsonParser *parser = json_parser_new ();
  double *truth = NULL;

  if (json_parser_load_from_file (parser, path, error)) {
    JsonObject *o = json_node_get_object (json_parser_get_root (parser));
    JsonArray *frames = json_object_get_array_member (o, "frames");
    gint fps = (gint)json_object_get_int_member_with_default (o, "fps", 0);
    *w = (gint)json_object_get_int_member_with_default (o, "width", 0);
    *h = (gint)json_object_get_int_member_with_default (o, "height", 0);
    *n_frames = frames ? json_array_get_length (frames) : 0;
    if (fps != FPS || *w <= 0 || *h <= 0 || *n_frames == 0) {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                   "%s: need a %d fps clip with frames (fps %d, %dx%d, %u "
                   "frames)",
                   path, FPS, fps, *w, *h, *n_frames);
    } else {
      truth = g_new (double, *n_frames);
      for (guint k = 0; k < *n_frames; k++)
        truth[k] = json_object_get_double_member (
            json_array_get_object_element (frames, k), "count");
    }
  }
  g_object_unref (parser);
  g_free (path);
  return truth;
}

/* A file of exactly `size` bytes (or more, when `at_least`). */
static gchar *
load_file (const gchar *dir, const gchar *name, gsize size, gboolean at_least,
           GError **error)
{
  gchar *path = g_build_filename (dir, name, NULL), *data = NULL;
  gsize len;

  if (g_file_get_contents (path, &data, &len, error)
      && (at_least ? len < size : len != size)) {
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                 "%s: %" G_GSIZE_FORMAT " bytes, expected %s%" G_GSIZE_FORMAT,
                 path, len, at_least ? "at least " : "", size);
    g_clear_pointer (&data, g_free);
  }
  g_free (path);
  return data;
}

/* Bilinear, pixel centres aligned (as videoscale's bilinear method). */
static void
upscale (const guint8 *src, gint sw, gint sh, guint8 *dst)
{
  for (gint y = 0; y < HEIGHT; y++) {
    double fy = CLAMP ((y + 0.5) * sh / HEIGHT - 0.5, 0, sh - 1);
    gint y0 = (gint)fy, y1 = MIN (y0 + 1, sh - 1);
    double wy = fy - y0;
    for (gint x = 0; x < WIDTH; x++) {
      double fx = CLAMP ((x + 0.5) * sw / WIDTH - 0.5, 0, sw - 1);
      gint x0 = (gint)fx, x1 = MIN (x0 + 1, sw - 1);
      double wx = fx - x0;
      for (gint c = 0; c < 3; c++) {
        double a = src[(y0 * sw + x0) * 3 + c], b = src[(y0 * sw + x1) * 3 + c];
        double d = src[(y1 * sw + x0) * 3 + c], e = src[(y1 * sw + x1) * 3 + c];
        double v
            = (a * (1 - wx) + b * wx) * (1 - wy) + (d * (1 - wx) + e * wx) * wy;
        dst[(y * WIDTH + x) * 3 + c] = (guint8)(v + 0.5);
      }
    }
  }
}

static void
clip_clear (Clip *clip)
{
  g_free (clip->frames);
  g_free (clip->audio);
  g_free (clip->truth);
  memset (clip, 0, sizeof *clip);
}

/* Audio is cut to whole frames so that video and audio loop together. */
static gboolean
clip_load (const gchar *dir, Clip *clip, GError **error)
{
  gint w, h;
  guint n;
  gsize frame_in, frame_out = (gsize)WIDTH * HEIGHT * 3;
  gchar *rgb = NULL, *pcm = NULL;

  memset (clip, 0, sizeof *clip);
  if (!(clip->truth = load_truth (dir, &n, &w, &h, error)))
    return FALSE;
  clip->n_frames = n;
  frame_in = (gsize)w * h * 3;
  if (!(rgb = load_file (dir, "frames.rgb", frame_in * n, FALSE, error))
      || !(pcm = load_file (dir, "audio.f32",
                            (gsize)n * CHUNK_SAMPLES * sizeof (float), TRUE,
                            error))) {
    g_free (rgb);
    clip_clear (clip);
    return FALSE;
  }
  clip->frames = g_malloc (frame_out * n);
  for (guint k = 0; k < n; k++)
    upscale ((guint8 *)rgb + frame_in * k, w, h, clip->frames + frame_out * k);
  clip->audio = g_memdup2 (pcm, (gsize)n * CHUNK_SAMPLES * sizeof (float));
  g_free (rgb);
  g_free (pcm);
  return TRUE;
}

static void
remove_clip_dir (const gchar *dir)
{
  const gchar *names[] = { "frames.rgb", "audio.f32", "truth.json" };

  for (guint k = 0; k < G_N_ELEMENTS (names); k++) {
    gchar *p = g_build_filename (dir, names[k], NULL);
    g_unlink (p);
    g_free (p);
  }
  g_rmdir (dir);
}

/* ------------------------------------------------------------ a stream */

/* The clip frame a buffer was made from, from its PTS. */
static guint
clip_index (const Stream *s, GstClockTime pts)
{
  guint64 k = gst_util_uint64_scale_round (pts, FPS, GST_SECOND);

  return (guint)((k + s->offset) % s->clip->n_frames);
}

/* How late the buffer reached the sink against the moment it is due to be
 * rendered: base time + running time + the pipeline's latency (*latency). */
static gboolean
buffer_lag (GstPad *pad, Stream *s, GstBuffer *buf, gint64 *lag,
            GstClockTime *latency)
{
  GstEvent *ev = gst_pad_get_sticky_event (pad, GST_EVENT_SEGMENT, 0);
  GstClock *clock = gst_element_get_clock (s->sink);
  const GstSegment *seg;
  GstClockTime rt = GST_CLOCK_TIME_NONE;

  if (ev && clock) {
    gst_event_parse_segment (ev, &seg);
    rt = gst_segment_to_running_time (seg, GST_FORMAT_TIME,
                                      GST_BUFFER_PTS (buf));
  }
  *latency = gst_base_sink_get_latency (GST_BASE_SINK (s->sink));
  if (GST_CLOCK_TIME_IS_VALID (rt))
    *lag = GST_CLOCK_DIFF (gst_element_get_base_time (s->sink) + rt + *latency,
                           gst_clock_get_time (clock));
  if (ev)
    gst_event_unref (ev);
  if (clock)
    gst_object_unref (clock);
  return GST_CLOCK_TIME_IS_VALID (rt);
}

static void
stats_add_lag (Stats *st, gint64 lag, GstClockTime latency)
{
  if (!st->have_lag || lag > st->max_lag)
    st->max_lag = lag;
  st->have_lag = TRUE;
  st->n_lag++;
  if (lag > 0)
    st->late++;
  st->latency = MAX (st->latency, latency);
}

static void
stats_add_result (Stats *st, const Stream *s, const GstStructure *r,
                  GstClockTime pts)
{
  double count = earlyexit_result_get_count (r);
  gint e = earlyexit_result_get_exit_index (r);
  const gchar *name = earlyexit_result_get_exit (r);

  st->frames++;
  st->n_exits = MAX (st->n_exits, earlyexit_result_get_n_exits (r));
  if (!earlyexit_result_get_deadline_missed (r))
    st->on_time++;
  if (name && e >= 0 && e < MAX_EXITS && !st->exit_names[e][0])
    g_strlcpy (st->exit_names[e], name, EXIT_NAME_LEN);
  if (!earlyexit_result_is_fresh (r)) {
    st->carried++;
  } else if (e >= 0 && e < MAX_EXITS) {
    st->exits[e]++;
    st->exit_sum += (guint64)e;
  }
  if (!isnan (count) && GST_CLOCK_TIME_IS_VALID (pts)) {
    st->abs_err += fabs (count - s->clip->truth[clip_index (s, pts)]);
    st->n_err++;
  }
}

static GstPadProbeReturn
on_sink_buffer (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  Stream *s = user_data;
  GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER (info);
  const GstStructure *r;
  gint64 lag = 0;
  GstClockTime latency = 0;
  gboolean have_lag;

  if (!g_atomic_int_get (s->measuring))
    return GST_PAD_PROBE_OK;
  r = gst_buffer_get_earlyexit_result (buf);
  have_lag = buffer_lag (pad, s, buf, &lag, &latency);
  g_mutex_lock (&s->lock);
  if (r)
    stats_add_result (&s->stats, s, r, GST_BUFFER_PTS (buf));
  else
    s->stats.no_meta++;
  if (have_lag)
    stats_add_lag (&s->stats, lag, latency);
  g_mutex_unlock (&s->lock);
  return GST_PAD_PROBE_OK;
}

/* Sleeps until the clock reads `t` (at once when it is past). */
static void
wait_until (GstClock *clock, GstClockTime t)
{
  GstClockID id = gst_clock_new_single_shot_id (clock, t);

  gst_clock_id_wait (id, NULL);
  gst_clock_id_unref (id);
}

/* The frames and chunks wrap the clip's memory: nothing is copied. */
static GstFlowReturn
push_wrapped (GstElement *src, gpointer data, gsize size, guint64 k)
{
  GstBuffer *buf = gst_buffer_new_wrapped_full (GST_MEMORY_FLAG_READONLY, data,
                                                size, 0, size, NULL, NULL);

  GST_BUFFER_PTS (buf) = k * FRAME_NS;
  GST_BUFFER_DURATION (buf) = FRAME_NS;
  return gst_app_src_push_buffer (GST_APP_SRC (src), buf);
}

static gpointer
feed (gpointer user_data)
{
  Stream *s = user_data;
  const Clip *c = s->clip;
  GstClock *clock = gst_pipeline_get_clock (GST_PIPELINE (s->pipeline));
  GstClockTime base = gst_element_get_base_time (s->pipeline);
  gsize frame_size = (gsize)WIDTH * HEIGHT * 3;
  GstFlowReturn ret = clock ? GST_FLOW_OK : GST_FLOW_ERROR;

  for (guint64 k = 0; ret == GST_FLOW_OK && !g_atomic_int_get (&s->stop); k++) {
    guint idx = (guint)((k + s->offset) % c->n_frames);
    wait_until (clock, base + k * FRAME_NS);
    /* the chunk that ended now, then the frame that starts now */
    if (k > 0) {
      guint prev = (idx + c->n_frames - 1) % c->n_frames;
      ret = push_wrapped (s->asrc, c->audio + (gsize)prev * CHUNK_SAMPLES,
                          CHUNK_SAMPLES * sizeof (float), k - 1);
    }
    if (ret == GST_FLOW_OK)
      ret = push_wrapped (s->vsrc, c->frames + frame_size * idx, frame_size, k);
  }
  if (clock)
    gst_object_unref (clock);
  return NULL;
}

/* `factory`, added to the stream's pipeline; NULL when it does not exist. */
static GstElement *
add_element (Stream *s, const gchar *factory)
{
  GstElement *e = gst_element_factory_make (factory, NULL);

  if (e)
    gst_bin_add (GST_BIN (s->pipeline), e);
  return e;
}

/* appsrc with these caps: live, in time, `min_latency` from capture to push.
 * max-bytes 0 because a frame is larger than the default limit and the queued
 * buffers only wrap the shared clip. */
static GstElement *
add_appsrc (Stream *s, const gchar *caps_str, GstClockTime min_latency)
{
  GstElement *src = add_element (s, "appsrc");
  GstCaps *caps = gst_caps_from_string (caps_str);

  if (src)
    g_object_set (src, "caps", caps, "is-live", TRUE, "format", GST_FORMAT_TIME,
                  "min-latency", (gint64)min_latency, "max-latency", (gint64)-1,
                  "max-bytes", (guint64)0, NULL);
  gst_caps_unref (caps);
  return src;
}

static gboolean
stream_build (Stream *s, const Config *cfg, gboolean shared, gint batch,
              GError **error)
{
  GstPad *pad;

  s->pipeline = gst_pipeline_new (NULL);
  s->vsrc = add_appsrc (
      s,
      "video/x-raw,format=RGB,width=" G_STRINGIFY (
          WIDTH) ",height=" G_STRINGIFY (HEIGHT) ",framerate=" G_STRINGIFY (FPS) "/1",
      0);
  s->asrc = add_appsrc (s,
                        "audio/x-raw,format=F32LE,rate=" G_STRINGIFY (
                            RATE) ",channels=1,layout=interleaved",
                        FRAME_NS);
  s->crowd = add_element (s, "avcrowdcount");
  s->sink = add_element (s, "fakesink");
  if (!s->vsrc || !s->asrc || !s->crowd || !s->sink) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
                 "cannot make appsrc, avcrowdcount or fakesink");
    return FALSE;
  }
  /* results are read from the meta; unread bus messages would pile up */
  g_object_set (s->crowd, "model-file", cfg->model, "post-messages", FALSE,
                NULL);
  if (shared)
    g_object_set (s->crowd, "model-instance-id", SHARED_INSTANCE_ID, NULL);
  if (batch > 1)
    g_object_set (s->crowd, "batch-size", batch, NULL);
  if (cfg->threads > 0 && cfg->has_threads)
    g_object_set (s->crowd, "threads", cfg->threads, NULL);
  /* qos: the sink reports lateness as a video sink would, and the element
   * reacts to it */
  g_object_set (s->sink, "sync", TRUE, "qos", TRUE, NULL);
  if (!gst_element_link_pads (s->vsrc, "src", s->crowd, "video")
      || !gst_element_link_pads (s->asrc, "src", s->crowd, "audio")
      || !gst_element_link (s->crowd, s->sink)) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
                 "cannot link the stream's pipeline");
    return FALSE;
  }
  pad = gst_element_get_static_pad (s->sink, "sink");
  gst_pad_add_probe (pad, GST_PAD_PROBE_TYPE_BUFFER, on_sink_buffer, s, NULL);
  gst_object_unref (pad);
  return TRUE;
}

/* The first ERROR message on the pipeline's bus, as a GError; drops the
 * other messages (QoS, latency, state changes). */
static gboolean
check_bus (Stream *s, GError **error)
{
  GstBus *bus = gst_element_get_bus (s->pipeline);
  GstMessage *msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  gchar *dbg = NULL;

  if (msg) {
    gst_message_parse_error (msg, error, &dbg);
    g_prefix_error (error, "%s: ", GST_OBJECT_NAME (GST_MESSAGE_SRC (msg)));
    g_free (dbg);
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
  return msg == NULL;
}

static gboolean
check_buses (Stream *streams, guint n, GError **error)
{
  for (guint i = 0; i < n; i++)
    if (!check_bus (&streams[i], error))
      return FALSE;
  return TRUE;
}

/* Every pipeline to `state`; an error message is preferred to the bare
 * failure of the state change. */
static gboolean
set_states (Stream *streams, guint n, GstState state, GError **error)
{
  for (guint i = 0; i < n; i++)
    if (gst_element_set_state (streams[i].pipeline, state)
        == GST_STATE_CHANGE_FAILURE) {
      if (check_bus (&streams[i], error))
        g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_STATE_CHANGE,
                     "stream %u: cannot change to %s", i,
                     gst_element_state_get_name (state));
      return FALSE;
    }
  return TRUE;
}

/* Sleeps `seconds`, watching the buses. */
static gboolean
run_for (Stream *streams, guint n, gint seconds, GError **error)
{
  for (gint t = 0; t < seconds * 10; t++) {
    g_usleep (G_USEC_PER_SEC / 10);
    if (!check_buses (streams, n, error))
      return FALSE;
  }
  return TRUE;
}

/* Feeders stopped, EOS through every pipeline (so each drains as a camera
 * closing would), then NULL. */
static void
streams_stop (Stream *streams, guint n, gboolean playing)
{
  for (guint i = 0; i < n; i++) {
    g_atomic_int_set (&streams[i].stop, 1);
    if (streams[i].feeder)
      g_thread_join (streams[i].feeder);
    streams[i].feeder = NULL;
    if (playing) {
      gst_app_src_end_of_stream (GST_APP_SRC (streams[i].vsrc));
      gst_app_src_end_of_stream (GST_APP_SRC (streams[i].asrc));
    }
  }
  for (guint i = 0; i < n && streams[i].pipeline; i++) {
    GstBus *bus = gst_element_get_bus (streams[i].pipeline);
    GstMessage *msg
        = playing ? gst_bus_timed_pop_filtered (
              bus, 5 * GST_SECOND, GST_MESSAGE_EOS | GST_MESSAGE_ERROR)
                  : NULL;
    if (msg)
      gst_message_unref (msg);
    gst_object_unref (bus);
    gst_element_set_state (streams[i].pipeline, GST_STATE_NULL);
  }
}

static void
streams_free (Stream *streams, guint n)
{
  for (guint i = 0; i < n; i++) {
    if (streams[i].pipeline)
      gst_object_unref (streams[i].pipeline);
    g_mutex_clear (&streams[i].lock);
  }
  g_free (streams);
}

/* Exit names and count of `from` where `to` lacks them. */
static void
merge_exit_names (Stats *to, const Stats *from)
{
  to->n_exits = MAX (to->n_exits, from->n_exits);
  for (gint e = 0; e < MAX_EXITS; e++)
    if (!to->exit_names[e][0])
      memcpy (to->exit_names[e], from->exit_names[e], EXIT_NAME_LEN);
}

static void
stats_merge (Stats *total, const Stats *s)
{
  total->frames += s->frames;
  total->on_time += s->on_time;
  total->carried += s->carried;
  total->no_meta += s->no_meta;
  total->exit_sum += s->exit_sum;
  total->abs_err += s->abs_err;
  total->n_err += s->n_err;
  total->late += s->late;
  total->n_lag += s->n_lag;
  total->latency = MAX (total->latency, s->latency);
  for (gint e = 0; e < MAX_EXITS; e++)
    total->exits[e] += s->exits[e];
  merge_exit_names (total, s);
  if (s->have_lag && (!total->have_lag || s->max_lag > total->max_lag)) {
    total->max_lag = s->max_lag;
    total->have_lag = TRUE;
  }
}

/* The exit names from the element's stats (results only name the exits
 * they came from). */
static void
exit_names_from_element (GstElement *crowd, Stats *st)
{
  GstStructure *stats = NULL;
  const GValue *names;

  g_object_get (crowd, "stats", &stats, NULL);
  names = stats ? gst_structure_get_value (stats, "exit-names") : NULL;
  if (names && GST_VALUE_HOLDS_ARRAY (names)) {
    guint n = MIN (gst_value_array_get_size (names), MAX_EXITS);
    for (guint e = 0; e < n; e++) {
      const GValue *v = gst_value_array_get_value (names, e);
      if (G_VALUE_HOLDS_STRING (v) && g_value_get_string (v)
          && !st->exit_names[e][0])
        g_strlcpy (st->exit_names[e], g_value_get_string (v), EXIT_NAME_LEN);
    }
    st->n_exits = MAX (st->n_exits, (gint)n);
  }
  if (stats)
    gst_structure_free (stats);
}

/* One (N, mode): builds, settles, measures, stops. */
static gboolean
run_config (const Config *cfg, const Clip *clip, Row *row, GError **error)
{
  Stream *streams = g_new0 (Stream, row->n);
  gint measuring = 0;
  gint64 t0;
  gboolean ok = TRUE, playing;

  for (guint i = 0; i < row->n; i++) {
    g_mutex_init (&streams[i].lock);
    streams[i].clip = clip;
    streams[i].measuring = &measuring;
    streams[i].offset = i % OFFSET_SLOTS * clip->n_frames / OFFSET_SLOTS;
    ok = ok
         && stream_build (&streams[i], cfg, row->mode != MODE_PRIVATE,
                          row->mode == MODE_SHARED_BATCH ? cfg->batch : 1,
                          error);
  }
  /* models load at READY -> PAUSED: all of them before any stream starts */
  ok = ok && set_states (streams, row->n, GST_STATE_PAUSED, error)
       && set_states (streams, row->n, GST_STATE_PLAYING, error);
  playing = ok;
  for (guint i = 0; i < row->n && ok; i++)
    streams[i].feeder = g_thread_new ("feeder", feed, &streams[i]);
  ok = ok && run_for (streams, row->n, cfg->settle, error);
  g_atomic_int_set (&measuring, 1);
  t0 = g_get_monotonic_time ();
  ok = ok && run_for (streams, row->n, cfg->seconds, error);
  g_atomic_int_set (&measuring, 0);
  row->elapsed_s = (g_get_monotonic_time () - t0) / 1e6;
  row->rss_mb = rss_mb (); /* pipelines still exist */
  for (guint i = 0; i < row->n; i++) {
    g_mutex_lock (&streams[i].lock);
    stats_merge (&row->total, &streams[i].stats);
    g_mutex_unlock (&streams[i].lock);
  }
  if (ok)
    exit_names_from_element (streams[0].crowd, &row->total);
  streams_stop (streams, row->n, playing);
  streams_free (streams, row->n);
  /* give freed engines back to the system, so that the next row's RSS is
   * not inflated by this one's */
  malloc_trim (0);
  return ok;
}

/* ------------------------------------------------------------ the table */

static void
print_header (const Config *cfg, const Clip *clip, double gen_s)
{
  gchar *cpu = cpu_model (), *threads;

  printf ("avcrowdcount, N live streams in one process: %u cores (%s)\n",
          g_get_num_processors (), cpu);
  if (cfg->threads > 0 && cfg->has_threads)
    threads = g_strdup_printf ("%d (--threads)", cfg->threads);
  else if (cfg->threads > 0)
    threads = g_strdup ("element default (--threads ignored: the element "
                        "has no threads property)");
  else
    threads = g_strdup ("element default");
  printf ("model %s, deadline 0 (one frame: %u ms), window 1 s, threads %s, "
          "model-instance-id %s\n",
          cfg->model, (guint)(FRAME_NS / GST_MSECOND), threads,
          cfg->has_instance_id ? "supported" : "not supported");
  printf ("each stream: appsrc %dx%d RGB %d fps + 16 kHz mono F32LE in 40 ms "
          "chunks, live, paced by the clock -> avcrowdcount -> fakesink "
          "sync=true qos=true\n",
          WIDTH, HEIGHT, FPS);
  printf ("media: demo clip (scenes.py --kind demo --seed 1 --fps %d), %u "
          "frames (%.0f s, looped), upscaled bilinearly from 256x144 in "
          "memory (%.0f MB, shared by all streams, counted in RSS)%s\n",
          FPS, clip->n_frames, (double)clip->n_frames / FPS,
          clip->n_frames * (double)WIDTH * HEIGHT * 3 / 1048576.0,
          gen_s > 0 ? "" : ", from --clip");
  if (gen_s > 0)
    printf ("clip generated in %.1f s\n", gen_s);
  printf ("each row: %d s settle (not counted), then %d s measured\n\n",
          cfg->settle, cfg->seconds);
  printf ("  frames    results seen at the sinks, all streams\n"
          "  on-time   results with deadline-missed FALSE\n"
          "  carried   results with fresh FALSE (carried from an earlier "
          "frame)\n"
          "  exits     share of each exit among fresh results\n"
          "  mean-ex   mean exit index of fresh results (0 = earliest)\n"
          "  fps/str   results per second per stream (25 = real time)\n"
          "  lag ms    largest (arrival at the sink - (base time + running "
          "time + pipeline latency)); < 0: every buffer early by at least "
          "that\n"
          "  late      buffers that reached the sink after that time\n"
          "  RSS MB    VmRSS after the run, pipelines alive\n"
          "  +MB/str   (RSS - RSS of the fewest-streams row of the mode) / "
          "extra streams\n"
          "  MAE       mean |count - truth| over every result (carried "
          "included)\n\n");
  printf ("| streams | mode         | frames | on-time | carried | exits "
          "(fresh)                      | mean-ex | fps/str | lag ms |  late | "
          "RSS MB | +MB/str |   MAE |\n");
  printf ("|--------:|--------------|-------:|--------:|--------:|"
          "-----------------------------------|--------:|--------:|-------:|"
          "------:|-------:|--------:|------:|\n");
  fflush (stdout);
  g_free (threads);
  g_free (cpu);
}

static gchar *
exit_shares (const Stats *st)
{
  GString *s = g_string_new (NULL);
  guint64 fresh = st->frames - st->carried;

  for (gint e = 0; e < MIN (st->n_exits, MAX_EXITS); e++) {
    if (st->exit_names[e][0])
      g_string_append_printf (s, "%s%s", s->len ? " " : "", st->exit_names[e]);
    else
      g_string_append_printf (s, "%se%d", s->len ? " " : "", e);
    g_string_append_printf (s, " %.0f%%",
                            fresh ? 100.0 * st->exits[e] / fresh : 0.0);
  }
  return g_string_free (s, FALSE);
}

static void
print_row (const Row *row, const Row *base)
{
  const Stats *st = &row->total;
  guint64 fresh = st->frames - st->carried;
  double pct = st->frames ? 100.0 / st->frames : 0;
  gchar *exits = exit_shares (st), *inc;

  if (base && base->n < row->n)
    inc = g_strdup_printf ("%.1f",
                           (row->rss_mb - base->rss_mb) / (row->n - base->n));
  else
    inc = g_strdup ("-");
  printf ("| %7u | %-12s | %6" G_GUINT64_FORMAT " | %6.1f%% | %6.1f%% | %-33s "
          "| %7.2f | %7.2f | %6.0f | %4.1f%% | %6.0f | %7s | %5.2f |\n",
          row->n, mode_names[row->mode], st->frames, st->on_time * pct,
          st->carried * pct, exits, fresh ? (double)st->exit_sum / fresh : NAN,
          st->frames / row->elapsed_s / row->n,
          st->have_lag ? st->max_lag / 1e6 : NAN,
          st->n_lag ? 100.0 * st->late / st->n_lag : NAN, row->rss_mb, inc,
          st->n_err ? st->abs_err / st->n_err : NAN);
  if (st->no_meta)
    printf ("  (%" G_GUINT64_FORMAT " buffers without a result meta)\n",
            st->no_meta);
  fflush (stdout);
  g_free (exits);
  g_free (inc);
}

/* ------------------------------------------------------------ main */

/* Engine notes (g_message of domain "earlyexit", e.g. which device "auto"
 * took) come once per element: kept, each text once, and printed after the
 * table instead of between its rows. */
static GMutex notes_lock;
static GPtrArray *notes;

static void
keep_note (const gchar *domain, GLogLevelFlags level, const gchar *message,
           gpointer user_data)
{
  g_mutex_lock (&notes_lock);
  if (!g_ptr_array_find_with_equal_func (notes, message, g_str_equal, NULL))
    g_ptr_array_add (notes, g_strdup (message));
  g_mutex_unlock (&notes_lock);
}

static void
print_notes (void)
{
  for (guint k = 0; k < notes->len; k++)
    printf ("%s: %s\n", k ? "     " : "notes",
            (const gchar *)g_ptr_array_index (notes, k));
}

/* "1,2,4,8" -> values in 1..64; NULL when malformed. */
static GArray *
parse_streams (const gchar *text)
{
  gchar **parts = g_strsplit (text, ",", -1);
  GArray *a = g_array_new (FALSE, FALSE, sizeof (guint));

  for (gchar **p = parts; *p; p++) {
    guint64 v;
    guint n;
    if (!g_ascii_string_to_unsigned (g_strstrip (*p), 10, 1, 64, &v, NULL)) {
      g_clear_pointer (&a, g_array_unref);
      break;
    }
    n = (guint)v;
    g_array_append_val (a, n);
  }
  g_strfreev (parts);
  if (a && a->len == 0)
    g_clear_pointer (&a, g_array_unref);
  return a;
}

/* "private,shared" -> want[MODE_PRIVATE], want[MODE_SHARED]; FALSE when
 * malformed. */
static gboolean
parse_modes (const gchar *text, gboolean *want)
{
  gchar **parts = g_strsplit (text, ",", -1);
  gboolean ok = TRUE, any = FALSE;

  for (int m = 0; m < N_MODES; m++)
    want[m] = FALSE;
  for (gchar **p = parts; *p && ok; p++) {
    int m = 0;

    g_strstrip (*p);
    while (m < N_MODES && !g_str_equal (*p, mode_names[m]))
      m++;
    ok = m < N_MODES;
    if (ok)
      want[m] = any = TRUE;
  }
  g_strfreev (parts);
  return ok && any;
}

/* Which optional properties this build's avcrowdcount has. */
static gboolean
probe_element (Config *cfg, GError **error)
{
  GstElement *e = gst_element_factory_make ("avcrowdcount", NULL);
  GObjectClass *klass;

  if (!e) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN,
                 "no avcrowdcount element: set GST_PLUGIN_PATH to the build's "
                 "gst/ folder");
    return FALSE;
  }
  klass = G_OBJECT_GET_CLASS (e);
  cfg->has_instance_id
      = g_object_class_find_property (klass, "model-instance-id") != NULL;
  cfg->has_threads = g_object_class_find_property (klass, "threads") != NULL;
  gst_object_unref (e);
  return TRUE;
}

/* --clip DIR when it holds a clip, else a fresh one (in DIR or a temporary
 * folder, *tmp_dir then set so that it is removed). */
static gboolean
prepare_clip (const gchar *clip_dir, gint seconds, Clip *clip, gchar **tmp_dir,
              double *gen_s, GError **error)
{
  gchar *truth
      = clip_dir ? g_build_filename (clip_dir, "truth.json", NULL) : NULL;
  gboolean have = truth && g_file_test (truth, G_FILE_TEST_EXISTS);
  const gchar *dir = clip_dir;
  gint64 t0 = g_get_monotonic_time ();

  g_free (truth);
  *gen_s = 0;
  if (!have) {
    if (!dir
        && !(dir = *tmp_dir = g_dir_make_tmp ("bench-streams-XXXXXX", error)))
      return FALSE;
    if (!generate_clip (dir, seconds, error)) {
      g_prefix_error (error, "cannot make the clip: ");
      return FALSE;
    }
    *gen_s = (g_get_monotonic_time () - t0) / 1e6;
  }
  if (!clip_load (dir, clip, error)) {
    g_prefix_error (error, "cannot read the clip: ");
    return FALSE;
  }
  return TRUE;
}

/* Runs (N, mode) in order, printing each row as it is done. */
static gboolean
run_all (const Config *cfg, const Clip *clip, GArray *ns, const gboolean *want,
         GError **error)
{
  Row base[N_MODES] = { { 0 } };
  Stats names = { 0 };
  GstClockTime lat_min = GST_CLOCK_TIME_NONE, lat_max = 0;

  for (guint k = 0; k < ns->len; k++)
    for (Mode m = 0; m < N_MODES; m++) {
      Row row = { .n = g_array_index (ns, guint, k), .mode = m };
      gboolean ok;

      if (!want[m])
        continue;
      if (m != MODE_PRIVATE && !cfg->has_instance_id) {
        printf ("| %7u | shared: (model-instance-id not supported by this "
                "build) |\n",
                row.n);
        continue;
      }
      if (m == MODE_SHARED_1LANE)
        g_setenv ("EE_ENGINE_LANES", "1", TRUE);
      ok = run_config (cfg, clip, &row, error);
      if (m == MODE_SHARED_1LANE)
        g_unsetenv ("EE_ENGINE_LANES");
      if (!ok) {
        g_prefix_error (error, "%u streams, %s: ", row.n, mode_names[m]);
        return FALSE;
      }
      /* exits that no result of this row came from are named by others */
      merge_exit_names (&row.total, &names);
      merge_exit_names (&names, &row.total);
      print_row (&row, base[m].n ? &base[m] : NULL);
      lat_min = MIN (lat_min, row.total.latency);
      lat_max = MAX (lat_max, row.total.latency);
      if (!base[m].n || row.n < base[m].n)
        base[m] = row;
    }
  if (lat_max > 0)
    printf ("\npipeline latency at the sinks: %.0f to %.0f ms (audio chunk "
            "40 ms + avcrowdcount's window/2 + deadline)\n",
            lat_min / 1e6, lat_max / 1e6);
  return TRUE;
}

int
main (int argc, char **argv)
{
  Config cfg = { .seconds = 10, .settle = 2, .batch = 4 };
  gint clip_seconds = 8;
  gchar *streams_opt = NULL, *modes_opt = NULL, *clip_dir = NULL;
  GOptionEntry entries[]
      = { { "seconds", 0, 0, G_OPTION_ARG_INT, &cfg.seconds,
            "Measured seconds per row (default 10)", "S" },
          { "settle", 0, 0, G_OPTION_ARG_INT, &cfg.settle,
            "Seconds before measuring (default 2)", "S" },
          { "streams", 0, 0, G_OPTION_ARG_STRING, &streams_opt,
            "Stream counts (default 1,2,4,8)", "LIST" },
          { "modes", 0, 0, G_OPTION_ARG_STRING, &modes_opt,
            "private, shared, shared-1lane, shared-batch (default "
            "private,shared)",
            "LIST" },
          { "batch", 0, 0, G_OPTION_ARG_INT, &cfg.batch,
            "batch-size of mode shared-batch (default 4)", "N" },
          { "model", 0, 0, G_OPTION_ARG_FILENAME, &cfg.model,
            "Model file (default: the bundled SL-ViT model)", "PATH" },
          { "threads", 0, 0, G_OPTION_ARG_INT, &cfg.threads,
            "The element's threads property, when it has one (default: "
            "left alone)",
            "N" },
          { "clip", 0, 0, G_OPTION_ARG_FILENAME, &clip_dir,
            "Clip folder: used when it holds a clip, else generated there "
            "(default: a temporary folder)",
            "DIR" },
          { "clip-seconds", 0, 0, G_OPTION_ARG_INT, &clip_seconds,
            "Length of a generated clip (default 8)", "S" },
          { NULL } };
  GOptionContext *ctx = g_option_context_new ("- avcrowdcount on N live "
                                              "streams in one process");
  GError *error = NULL;
  GArray *ns = NULL;
  gboolean want[N_MODES] = { TRUE, TRUE, FALSE, FALSE };
  gchar *tmp_dir = NULL;
  Clip clip = { 0 };
  double gen_s = 0;
  int status = 1;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    goto out;
  if (!(ns = parse_streams (streams_opt ? streams_opt : "1,2,4,8"))
      || (modes_opt && !parse_modes (modes_opt, want)) || cfg.seconds < 1
      || cfg.settle < 0 || clip_seconds < 1 || cfg.batch < 1
      || cfg.batch > 32) {
    g_set_error (&error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                 "bad --streams, --modes, --seconds, --settle, --batch (1 to "
                 "32) or --clip-seconds (see --help)");
    goto out;
  }
  if (!cfg.model)
    cfg.model = g_strdup (BENCH_STREAMS_MODEL);
  if (!g_file_test (cfg.model, G_FILE_TEST_IS_REGULAR)) {
    g_set_error (&error, G_FILE_ERROR, G_FILE_ERROR_NOENT, "no model file %s",
                 cfg.model);
    goto out;
  }
  if (!probe_element (&cfg, &error)
      || !prepare_clip (clip_dir, clip_seconds, &clip, &tmp_dir, &gen_s,
                        &error))
    goto out;
  print_header (&cfg, &clip, gen_s);
  notes = g_ptr_array_new_with_free_func (g_free);
  g_log_set_handler ("earlyexit", G_LOG_LEVEL_MESSAGE, keep_note, NULL);
  if (run_all (&cfg, &clip, ns, want, &error))
    status = 0;
  print_notes ();

out:
  if (error)
    g_printerr ("bench-streams: %s\n", error->message);
  if (tmp_dir)
    remove_clip_dir (tmp_dir);
  clip_clear (&clip);
  if (ns)
    g_array_unref (ns);
  g_clear_error (&error);
  g_free (tmp_dir);
  g_free (streams_opt);
  g_free (modes_opt);
  g_free (clip_dir);
  g_free (cfg.model);
  if (notes)
    g_ptr_array_unref (notes);
  g_option_context_free (ctx);
  return status;
}
