/* gst-earlyexit: embedding avcrowdcount in a C application.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Builds a pipeline around avcrowdcount, reads the result meta of every
 * buffer that reaches the sink (earlyexit-meta.h, header only) and prints one
 * JSON object per frame on stdout; the element's statistics go to stderr at
 * the end.
 *
 *   embed-example [OPTIONS] MODEL [MEDIA]
 *
 * MEDIA is a file with a video and an audio track (anything decodebin plays);
 * without it, 4 s of videotestsrc + audiotestsrc. The plugin is found through
 * GST_PLUGIN_PATH (the build's gst/ folder when running uninstalled).
 */
#include <gst/gst.h>
#include <math.h>
#include <stdio.h>

#include "earlyexit-meta.h"

typedef struct
{
  guint64 frames;
} State;

/* One JSON line per buffer. Strings come from the element (exit names) and
 * need no escaping. */
static void
on_handoff (GstElement *sink, GstBuffer *buf, GstPad *pad, gpointer user_data)
{
  State *st = user_data;
  const GstStructure *r = gst_buffer_get_earlyexit_result (buf);
  GstClockTime pts = GST_BUFFER_PTS (buf);

  if (!r) {
    g_printerr ("frame %" G_GUINT64_FORMAT " has no result meta\n", st->frames);
    st->frames++;
    return;
  }
  g_print ("{\"frame\": %" G_GUINT64_FORMAT ", \"pts\": %.3f, "
           "\"count\": %.3f, \"exit\": \"%s\", \"exit_index\": %d, "
           "\"n_exits\": %d, \"fresh\": %s, \"audio_coverage\": %.3f, "
           "\"audio_used\": %s, \"deadline_ms\": %.3f, "
           "\"inference_ms\": %.3f, \"deadline_missed\": %s, "
           "\"unique_id\": %u}\n",
           st->frames,
           GST_CLOCK_TIME_IS_VALID (pts) ? (double)pts / GST_SECOND : -1.0,
           earlyexit_result_get_count (r), earlyexit_result_get_exit (r),
           earlyexit_result_get_exit_index (r),
           earlyexit_result_get_n_exits (r),
           earlyexit_result_is_fresh (r) ? "true" : "false",
           earlyexit_result_get_audio_coverage (r),
           earlyexit_result_get_audio_used (r) ? "true" : "false",
           earlyexit_result_get_deadline (r) / 1e6,
           earlyexit_result_get_inference_time (r) / 1e6,
           earlyexit_result_get_deadline_missed (r) ? "true" : "false",
           earlyexit_result_get_unique_id (r));
  st->frames++;
}

static gchar *
pipeline_description (const gchar *model, const gchar *media,
                      const gchar *props)
{
  gchar *model_q = g_strescape (model, NULL), *media_q;
  gchar *desc, *sources;

  if (media) {
    /* queues: frames wait for the audio half a window ahead (see
     * pipelines/file-pipeline.sh) */
    media_q = g_strescape (media, NULL);
    sources = g_strdup_printf (
        "filesrc location=\"%s\" ! decodebin name=d "
        "d. ! queue max-size-buffers=0 max-size-bytes=0 "
        "max-size-time=2000000000 ! videoconvert ! c.video "
        "d. ! queue max-size-buffers=0 max-size-bytes=0 "
        "max-size-time=2000000000 ! audioconvert ! audioresample ! "
        "audio/x-raw,format=F32LE,rate=16000,channels=1 ! c.audio",
        media_q);
    g_free (media_q);
  } else {
    sources = g_strdup (
        "videotestsrc num-buffers=100 pattern=ball ! "
        "video/x-raw,width=320,height=240,framerate=25/1 ! c.video "
        "audiotestsrc num-buffers=40 samplesperbuffer=1600 wave=pink-noise ! "
        "audio/x-raw,format=F32LE,rate=16000,channels=1 ! c.audio");
  }
  desc = g_strdup_printf ("avcrowdcount name=c model-file=\"%s\" %s ! "
                          "fakesink name=sink sync=false signal-handoffs=true "
                          "%s",
                          model_q, props, sources);
  g_free (model_q);
  g_free (sources);
  return desc;
}

int
main (int argc, char **argv)
{
  gchar *deadline = NULL, *policy = NULL, *device = NULL;
  gint interval = 1, max_exit = -2;
  GOptionEntry entries[] = {
    { "deadline", 0, 0, G_OPTION_ARG_STRING, &deadline,
      "Per-frame budget in ns (0 = one frame)", "NS" },
    { "policy", 0, 0, G_OPTION_ARG_STRING, &policy, "anytime, fixed or full",
      "POLICY" },
    { "max-exit", 0, 0, G_OPTION_ARG_INT, &max_exit,
      "Last exit that may run (policy fixed: the exit that runs; -1 = the "
      "final one)",
      "N" },
    { "interval", 0, 0, G_OPTION_ARG_INT, &interval,
      "Run the network on every Nth frame", "N" },
    { "device", 0, 0, G_OPTION_ARG_STRING, &device, "auto, cpu, cuda[:N]",
      "DEVICE" },
    { NULL },
  };
  GOptionContext *ctx
      = g_option_context_new ("MODEL [MEDIA] - print avcrowdcount results "
                              "as JSON lines");
  GError *err = NULL;
  GstElement *pipeline, *sink, *counter;
  GstBus *bus;
  GString *props = g_string_new (NULL);
  gchar *desc;
  State st = { 0 };
  gboolean ok = TRUE, done = FALSE;
  GstStructure *stats = NULL;

  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_group (ctx, gst_init_get_option_group ());
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || argc < 2
      || argc > 3) {
    g_printerr ("%s\n", err ? err->message
                            : "usage: embed-example [OPTIONS] MODEL [MEDIA]");
    return 2;
  }
  g_option_context_free (ctx);

  if (deadline)
    g_string_append_printf (props, " deadline=%s", deadline);
  if (policy)
    g_string_append_printf (props, " policy=%s", policy);
  if (device)
    g_string_append_printf (props, " device=%s", device);
  if (max_exit != -2)
    g_string_append_printf (props, " max-exit=%d", max_exit);
  g_string_append_printf (props, " interval=%d", interval);
  desc = pipeline_description (argv[1], argc > 2 ? argv[2] : NULL, props->str);
  pipeline = gst_parse_launch (desc, &err);
  if (!pipeline) {
    g_printerr ("cannot build the pipeline: %s\n(is GST_PLUGIN_PATH set to "
                "the build's gst/ folder?)\n",
                err->message);
    return 1;
  }
  sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  counter = gst_bin_get_by_name (GST_BIN (pipeline), "c");
  g_signal_connect (sink, "handoff", G_CALLBACK (on_handoff), &st);

  bus = gst_element_get_bus (pipeline);
  if (gst_element_set_state (pipeline, GST_STATE_PLAYING)
      == GST_STATE_CHANGE_FAILURE)
    ok = FALSE;
  while (!done) {
    GstMessage *msg = gst_bus_timed_pop_filtered (
        bus, GST_CLOCK_TIME_NONE, GST_MESSAGE_EOS | GST_MESSAGE_ERROR);
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      gchar *dbg = NULL;
      g_clear_error (&err);
      gst_message_parse_error (msg, &err, &dbg);
      g_printerr ("error from %s: %s\n%s\n", GST_OBJECT_NAME (msg->src),
                  err->message, dbg ? dbg : "");
      g_free (dbg);
      ok = FALSE;
    }
    done = TRUE;
    gst_message_unref (msg);
  }
  g_object_get (counter, "stats", &stats, NULL);
  if (stats) {
    gchar *s = gst_structure_to_string (stats);
    g_printerr ("%s\n", s);
    g_free (s);
    gst_structure_free (stats);
  }
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (bus);
  gst_object_unref (sink);
  gst_object_unref (counter);
  gst_object_unref (pipeline);
  g_string_free (props, TRUE);
  g_free (desc);
  g_free (deadline);
  g_free (policy);
  g_free (device);
  g_clear_error (&err);
  return ok && st.frames > 0 ? 0 : 1;
}
