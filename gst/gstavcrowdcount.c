/* gst-earlyexit: audiovisual crowd counting with early exits.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/* clang-format off */
/**
 * SECTION:element-avcrowdcount
 * @title: avcrowdcount
 *
 * Counts the people in each video frame with a multi-exit AudioCSRNet model
 * that hears the ambient sound around the frame, and publishes, by a per-frame
 * deadline, the result of the newest exit that has finished (anytime
 * prediction). Video passes through unchanged; the result is attached to every
 * output buffer as a meta and, when #GstAvCrowdCount:post-messages is TRUE,
 * posted as an element message.
 *
 * Pads: `video` (raw 8-bit RGB or YUV at any size: converted, resized
 * bilinearly and normalised to the model input inside the element), `audio`
 * (any raw audio: every sample format, rate, channel count and layout; the
 * channels are averaged and the audio resampled to the model's 16 kHz inside
 * the element, at #GstAvCrowdCount:audio-resample-quality, so a decoder can
 * link to it directly) and `src` (the video). Raw caps the element cannot
 * use are an error that names them and the caps that work.
 *
 * ## Synchronisation
 *
 * A frame at running time t uses the audio of [t - window/2, t + window/2]:
 * the window * 16000 samples from the sample nearest to t - window/2 (at
 * running time x the sample is x * 16000; a tie goes to the later one). It
 * is processed once audio has arrived up to the window's end, or the audio pad
 * is EOS, or (live pipelines) the aggregator timed out; parts of the window
 * without audio (not arrived, GAP events, discontinuities, before running time
 * 0) are zeros and lower `audio-coverage`. The log-mel features always see 1 s
 * (16000 samples); a shorter #GstAvCrowdCount:window sits centred in it with
 * zeros around (the padding does not count as missing audio). When the window
 * has no audio at all, only the exits that do not read audio run (exit "v1")
 * and `audio-used` is FALSE. The resampler holds back a few samples (120
 * at 48 kHz); they come out with the next buffer or at the end of the audio,
 * and are placed on the same grid, so the pairing stays exact to the sample.
 *
 * ## Stalls and untimed frames
 *
 * Outside live pipelines the element needs data on both pads. When the
 * `audio` pad has had no audio #GstAvCrowdCount:input-timeout after the
 * first video frame (unlinked, not negotiated or stalled), the element posts
 * a warning naming the pad and the fix and goes on video-only (exit v1, as
 * without audio). When the `video` pad has had no frame that long after the
 * first audio, it warns and ends the stream (EOS): there is nothing to
 * count. A video frame without timestamp gets the last result carried over
 * (before the first, the visual exits' result on it alone), flagged
 * `untimed`, and one warning.
 *
 * ## Deadline
 *
 * A frame's budget is #GstAvCrowdCount:deadline (one frame duration when 0)
 * from the moment the frame became processable (preprocessing included). With
 * policy=anytime the element keeps a cost estimate per network segment
 * (measured at start-up, then a moving average) and does not start an exit
 * that is not expected to finish in time; the result is the newest exit
 * finished by the deadline. The first exit allowed by min-exit always runs,
 * so a deadline shorter than any exit still gives a result: that exit's,
 * flagged `deadline-missed`. Downstream lateness (QoS events) lowers the exit
 * the element aims for by one and posts a QoS message instead of dropping
 * frames (the QoS event is not forwarded upstream, where it would make
 * elements drop frames); after 25 on-time reports it tries one exit higher
 * again. Policies fixed and full do not change their exit.
 *
 * The element's latency is window/2 + the deadline budget.
 *
 * ## Properties
 *
 * - `model-file` (string, READY only): the AudioCSRNet model file
 *   (.safetensors), loaded at the READY to PAUSED change; a missing or bad
 *   file is an error naming the file, and the change fails.
 * - `device` (string, READY only, default "auto"): auto, cpu, cuda or cuda:N.
 *   auto takes CUDA device 0 when the CUDA backend loads and finds a device,
 *   else the CPU (logged); cuda without a usable CUDA backend is an error.
 * - `precision` (enum, READY only, default fp32): fp32, tf32, fp16, bf16,
 *   int8; a precision the backend lacks is an error (the CPU has fp32, bf16,
 *   and int8 with VNNI and a model file calibrated by earlyexit calibrate).
 * - `model-instance-id` (string, READY only, default empty): elements with
 *   the same id and the same model file, device, precision and batch-size
 *   share one engine: one copy of the weights and one scheduler running all
 *   their frames earliest deadline first (docs/engine.md). Empty: a private
 *   engine. The same id with another file, device, precision or batch size
 *   is an error.
 * - `threads` (int, READY only, default 0 = all cores): CPU threads of the
 *   engine (a shared engine keeps the first element's).
 * - `batch-size` (int 1 to 32, READY only, default 1): the most frames one
 *   batched call of a shared engine runs; frames of its elements waiting for
 *   the same step at once run it together (docs/engine.md, "Batched
 *   steps").
 * - `window` (guint64 ns, READY only, 100 ms to 1 s, default 1 s): the audio
 *   window centred on each frame.
 * - `audio-resample-quality` (int 0 to 10, READY only, default 5): the
 *   quality of the resampler to 16 kHz (audioresample's scale); 5 gave the
 *   features closest to the reference pipeline's (docs/features.md).
 * - `input-timeout` (guint64 ns, READY only, default 5 s, at least 1 ms):
 *   how long one sink pad may go without data while the other has some
 *   before the element stops waiting for it (above).
 * - `deadline` (guint64 ns, default 0 = one frame duration): the budget of a
 *   frame from becoming processable (or captured) to its result; 2^63 - 1 ns
 *   or more (deadline=-1) is no limit.
 * - `deadline-reference` (enum, default processing): what the deadline
 *   counts from: processing (the frame became processable, its audio window
 *   having arrived) or capture (its NTP reference timestamp meta, as rtpbin
 *   add-reference-timestamp-meta=true gives it, else the pipeline clock at
 *   its running time). Under capture, the wait for window/2 of audio is part
 *   of the budget (docs/deploying.md).
 * - `policy` (enum, default anytime): anytime (the newest exit finished by
 *   the deadline), fixed (always exit max-exit), full (every exit up to
 *   max-exit, deadline ignored); confidence acts as anytime (a count has no
 *   confidence).
 * - `min-exit`, `max-exit` (int, default -1 = none): the range of exits, by
 *   index in anytime order, that may run.
 * - `interval` (uint, default 1): run the network on every Nth frame; the
 *   others carry the last result with `fresh` FALSE and do not wait for
 *   audio.
 * - `post-messages` (boolean, default TRUE): post an element message per
 *   frame.
 * - `density-map` (boolean, default FALSE): attach the published exit's
 *   density map to the result (`density-map` and its geometry fields below);
 *   a result whose exit has none says so (`has-map` FALSE).
 * - `regions` (string, default none): named polygons of the frame, each
 *   result then carrying their counts (`regions` below). The form, the same
 *   on a gst-launch-1.0 line and in a file: regions separated by `;` or new
 *   lines, each `NAME: X,Y X,Y X,Y ... [alert=N] [clear=M]`, the points in
 *   fractions of the frame (0,0 top left, 1,1 bottom right; a polygon may be
 *   concave and reach outside the frame), `alert=N` an alert when the
 *   region's count goes above N that clears below M (default 0.9 N), `#`
 *   starting a comment. A bad text is refused at once (the regions before it
 *   stay) and its fault, naming the region, logged; a start with it fails
 *   with that message, and a running element posts it as a warning.
 * - `regions-file` (string, default none): read `regions` from this file.
 * - `alert-threshold` (double, default 0 = none): the whole frame's alert,
 *   raised when the count goes above it; `alert-clear` (double, default -1 =
 *   0.9 x alert-threshold): the count it clears below. Each crossing (a
 *   region's or the frame's) posts one `earlyexit/alert` element message;
 *   a count wavering between the two levels posts nothing.
 * - `unique-id` (uint, default 0): copied into every result.
 * - `diagnostics` (boolean, default FALSE): add `window-first-sample` and
 *   `window-last-sample` to every fresh result.
 * - `stats` (GstStructure, read only): `frames`, `fresh-frames` (network
 *   results), `carried` (frames that carried the last result because the
 *   engine was behind), `deadline-misses`, `qos-lowered`, `qos-max-exit`,
 *   `model-instance-id`, `engine-streams` (streams on the engine), and per
 *   exit `exit-names`, `exits-taken`, `exit-runs`, `mean-inference-time` and
 *   `estimated-time` (ns).
 *
 * ## Result fields (meta and message)
 *
 * The meta is the custom meta `EarlyExitResultMeta` (no tags, so it survives
 * videoconvert and videoscale) holding a #GstStructure named
 * `earlyexit/result`; C applications read it with the getters of
 * `earlyexit-meta.h` (`gst_buffer_get_earlyexit_result()`, ...).
 *
 * - `task` (string): "count".
 * - `count` (double): the estimated number of people.
 * - `exit` (string): name of the exit that produced it ("v1", "av1", "av2",
 *   "final").
 * - `exit-index` (int): its index in anytime order, 0 = earliest.
 * - `n-exits` (int): the model's number of exits.
 * - `fresh` (boolean): FALSE when carried over from an earlier frame
 *   (#GstAvCrowdCount:interval); every other field then describes the frame
 *   it was computed on.
 * - `audio-coverage` (double): fraction of the audio window that had audio.
 * - `audio-used` (boolean): FALSE when there was no audio at all and only
 *   visual exits ran.
 * - `window-start`, `window-end` (#GstClockTime): running time of the audio
 *   window (the start clamped at 0).
 * - `deadline` (guint64): the frame's budget in nanoseconds.
 * - `inference-time` (guint64): nanoseconds from the frame becoming
 *   processable to its result (preprocessing included).
 * - `deadline-missed` (boolean): the result came after the deadline.
 * - `unique-id` (uint): #GstAvCrowdCount:unique-id.
 * - `capture-time` (guint64, when the frame's capture is known): ns since
 *   1970 UTC (#GstAvCrowdCount:deadline-reference says how it is known).
 * - `age` (guint64, with capture-time): ns from capture to the result.
 * - `valid` (boolean, only when FALSE): the exit gave a NaN or infinite
 *   output; `count` is then absent.
 * - `untimed` (boolean, only on frames without timestamp): TRUE; the result
 *   is carried over, or before the first one computed without audio.
 * - `has-map` (boolean, with density-map or regions): whether the published
 *   exit has a map (the final exit of AudioCSRNet; the paper's early exits
 *   end in one number and have none: no map, no region counts).
 * - `density-map` (GBytes, with density-map and a map): the map, row-major
 *   `density-map-height` x `density-map-width` (int) 32-bit floats in the
 *   machine's byte order, summing to `count`; the grid lies in the frame
 *   from `density-map-x`, `density-map-y` in cells of
 *   `density-map-cell-width` x `density-map-cell-height` (double, fractions
 *   of the frame's width and height, like the regions, so they hold after
 *   scaling; this element scales the whole frame: 0, 0, 1/width,
 *   1/height).
 * - `regions` (array of `region` structures, with regions): per region
 *   `name`, `polygon` (array of doubles x0, y0, x1, y1 ..., fractions of
 *   the frame), `count` (double, only when the exit has a map: the map summed
 *   over the region, cells weighted by the share of their area inside it),
 *   and with an alert `alert-threshold`, `alert-clear`, `alert` (boolean:
 *   raised now) and on the frame that crossed `alert-change` ("rising" or
 *   "clearing"). `regions-exit` (string): the exit whose map gave the
 *   counts, when there are counts.
 * - `alert` (boolean, with alert-threshold): the whole frame's alert is
 *   raised; `alert-change` ("rising" or "clearing") on the frame that
 *   crossed.
 * - `window-first-sample`, `window-last-sample` (double, only with
 *   #GstAvCrowdCount:diagnostics): the first and last audio samples of the
 *   window as given to the feature extractor, 0 where the window had no
 *   audio. With a test signal whose samples encode their position (sample
 *   value = a function of the sample index) they show which audio the frame
 *   was paired with, to the sample.
 *
 * The element message is named `avcrowdcount` and has, before the fields
 * above, `timestamp`, `stream-time`, `running-time` and `duration`
 * (#GstClockTime) of the frame.
 *
 * ## Alert messages
 *
 * An alert crossing posts an element message `earlyexit/alert`: `region`
 * (string: the region's name, or "frame" for the whole frame), `change`
 * ("rising" or "clearing"), `count` (double), `alert-threshold`,
 * `alert-clear` (double), `exit` (string), and the frame's `timestamp`,
 * `stream-time` and `running-time` (#GstClockTime). Only crossings post: a
 * raised alert posts nothing more until it clears.
 *
 * ## Example launch line
 *
 * From the source tree after `meson setup build && ninja -C build` (the build
 * writes a small random-weight demo model, so the counts are meaningless):
 * |[
 * GST_PLUGIN_PATH=build/gst gst-launch-1.0 -m \
 *   avcrowdcount name=c model-file=build/pipelines/demo-model.safetensors ! fakesink \
 *   videotestsrc num-buffers=50 ! video/x-raw,width=320,height=240,framerate=25/1 ! c.video \
 *   audiotestsrc num-buffers=20 ! audio/x-raw,rate=48000,channels=2 ! c.audio
 * ]|
 * Debug output: `GST_DEBUG=avcrowdcount:5`.
 */
/* clang-format on */

#include <string.h>

#include <gst/audio/audio.h>

#include "gstavcrowdcount.h"
#include "ee-props.h"
#include "ee-backend-select.h"
#include "ee-result.h"

GST_DEBUG_CATEGORY_STATIC (gst_av_crowd_count_debug);
#define GST_CAT_DEFAULT gst_av_crowd_count_debug

#define AUDIO_RATE 16000
/* The log-mel input is 1 s of audio. */
#define FEATURE_SAMPLES AUDIO_RATE
/* Audio buffer timestamps within this of the expected position continue the
 * previous buffer (as GstAudioStreamAlign's default threshold). */
#define ALIGN_THRESHOLD (40 * GST_MSECOND)

#define DEFAULT_WINDOW GST_SECOND
#define MIN_WINDOW (100 * GST_MSECOND)
#define DEFAULT_DENSITY_MAP FALSE
#define DEFAULT_ALERT_THRESHOLD 0.0
#define DEFAULT_ALERT_CLEAR (-1.0)
#define DEFAULT_ALERT_CLEAR_RATIO 0.9
#define DEFAULT_DIAGNOSTICS FALSE
#define DEFAULT_RESAMPLE_QUALITY EE_AUDIO_CONV_DEFAULT_QUALITY
#define DEFAULT_INPUT_TIMEOUT (5 * GST_SECOND)
#define MIN_INPUT_TIMEOUT GST_MSECOND

/* stall_id[]: which pad an input-timeout watch waits for */
enum
{
  WAIT_AUDIO,
  WAIT_VIDEO,
};

#define VIDEO_CAPS                                                             \
  GST_VIDEO_CAPS_MAKE (                                                        \
      "{ RGB, BGR, RGBx, BGRx, xRGB, xBGR, "                                   \
      "RGBA, BGRA, ARGB, ABGR, I420, YV12, NV12, NV21, Y42B, Y444 }")
/* any raw audio: converted to 16 kHz mono float inside (ee-audioconv.c) */
#define AUDIO_CAPS EE_AUDIO_CONV_CAPS
#define VIDEO_FORMATS_TEXT                                                     \
  "RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, ARGB, ABGR, I420, YV12, "     \
  "NV12, NV21, Y42B or Y444"

static GstStaticPadTemplate video_template = GST_STATIC_PAD_TEMPLATE (
    "video", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIDEO_CAPS));

static GstStaticPadTemplate audio_template = GST_STATIC_PAD_TEMPLATE (
    "audio", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (AUDIO_CAPS));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIDEO_CAPS));

static const EeElementInfo element_info = {
  .task = EE_TASK_COUNT,
  .model_blurb = "Path of the AudioCSRNet model file (.safetensors), loaded "
                 "when the element goes from READY to PAUSED",
  .item = "frame",
  .stats_name = "avcrowdcount-stats",
  .counted = "frames",
  .confidence = FALSE,
  .offset = G_STRUCT_OFFSET (GstAvCrowdCount, ee),
};

#define gst_av_crowd_count_parent_class parent_class
G_DEFINE_TYPE (GstAvCrowdCount, gst_av_crowd_count, GST_TYPE_AGGREGATOR);
GST_ELEMENT_REGISTER_DEFINE (avcrowdcount, "avcrowdcount", GST_RANK_NONE,
                             GST_TYPE_AVCROWDCOUNT);

static void gst_av_crowd_count_finalize (GObject *object);
static void regions_set (GObject *object, gpointer at, const GValue *value);
static void regions_file_set (GObject *object, gpointer at,
                              const GValue *value);
static void deadline_changed (GObject *object, GParamSpec *pspec,
                              gpointer user_data);
static GstStateChangeReturn
gst_av_crowd_count_change_state (GstElement *element,
                                 GstStateChange transition);
static GstFlowReturn gst_av_crowd_count_aggregate (GstAggregator *agg,
                                                   gboolean timeout);
static gboolean gst_av_crowd_count_sink_event (GstAggregator *agg,
                                               GstAggregatorPad *pad,
                                               GstEvent *event);
static gboolean gst_av_crowd_count_sink_query (GstAggregator *agg,
                                               GstAggregatorPad *pad,
                                               GstQuery *query);
static gboolean gst_av_crowd_count_src_event (GstAggregator *agg,
                                              GstEvent *event);
static gboolean gst_av_crowd_count_src_query (GstAggregator *agg,
                                              GstQuery *query);
static GstBuffer *gst_av_crowd_count_clip (GstAggregator *agg,
                                           GstAggregatorPad *pad,
                                           GstBuffer *buffer);
static GstFlowReturn gst_av_crowd_count_flush (GstAggregator *agg);
static gboolean gst_av_crowd_count_start (GstAggregator *agg);
static gboolean gst_av_crowd_count_stop (GstAggregator *agg);
static GstClockTime gst_av_crowd_count_get_next_time (GstAggregator *agg);

static void
gst_av_crowd_count_class_init (GstAvCrowdCountClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstAggregatorClass *agg_class = GST_AGGREGATOR_CLASS (klass);

  gobject_class->finalize = gst_av_crowd_count_finalize;

  /* model-file, device, precision, model-instance-id, threads, deadline,
   * policy, min-exit, max-exit, interval, post-messages, unique-id, stats:
   * gst/ee-element.h; documented in the SECTION block above */
  ee_element_class_install (gobject_class, &element_info);

  /**
   * GstAvCrowdCount:window:
   *
   * Length of the audio window centred on each frame, in nanoseconds (100 ms
   * to 1 s). The features always see 1 s: a shorter window is centred in it
   * and padded with zeros; it lowers the latency by waiting less for future
   * audio.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstAvCrowdCount, prop_window),
      g_param_spec_uint64 (
          "window", "Audio Window",
          "Length of the audio window centred on each frame (in nanoseconds; "
          "the features always see 1 s, a shorter window is zero-padded)",
          MIN_WINDOW, GST_SECOND, DEFAULT_WINDOW, EE_PARAM_READY));

  /**
   * GstAvCrowdCount:density-map:
   *
   * Attach the published exit's density map to the result (`density-map`,
   * its size and its grid in the frame); a result whose exit has no map has
   * `has-map` FALSE.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstAvCrowdCount, density_map),
      g_param_spec_boolean (
          "density-map", "Density Map",
          "Attach the published exit's density map to the result (has-map "
          "says whether the exit has one)",
          DEFAULT_DENSITY_MAP, EE_PARAM_PLAYING));

  /**
   * GstAvCrowdCount:regions:
   *
   * Named polygons whose counts each result carries: `NAME: X,Y X,Y X,Y
   * [alert=N] [clear=M]`, separated by `;` or new lines, coordinates in
   * fractions of the frame. A bad text is refused with a message naming the
   * region and its fault (a start with it fails).
   */
  ee_props_add (
      gobject_class, G_STRUCT_OFFSET (GstAvCrowdCount, regions_text),
      g_param_spec_string (
          "regions", "Regions",
          "Regions counted on the density map: \"NAME: X,Y X,Y X,Y "
          "[alert=N] [clear=M]; ...\", points in fractions of the frame",
          NULL, EE_PARAM_PLAYING),
      regions_set, NULL);

  /**
   * GstAvCrowdCount:regions-file:
   *
   * A file holding the regions (the #GstAvCrowdCount:regions form, one
   * region per line if liked, `#` comments), read when set.
   */
  ee_props_add (
      gobject_class, G_STRUCT_OFFSET (GstAvCrowdCount, regions_file),
      g_param_spec_string (
          "regions-file", "Regions File",
          "File with the regions (the form of the regions property), read "
          "when set",
          NULL, EE_PARAM_PLAYING),
      regions_file_set, NULL);

  /**
   * GstAvCrowdCount:alert-threshold:
   *
   * The whole frame's alert: raised when the count goes above this (an
   * `earlyexit/alert` message, `alert` in the result); 0: none.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstAvCrowdCount, alert_threshold),
      g_param_spec_double (
          "alert-threshold", "Alert Threshold",
          "Raise the whole frame's alert when the count goes above this (0 = "
          "no alert)",
          0.0, G_MAXDOUBLE, DEFAULT_ALERT_THRESHOLD, EE_PARAM_PLAYING));

  /**
   * GstAvCrowdCount:alert-clear:
   *
   * The count the whole frame's alert clears below (hysteresis); -1: 0.9 x
   * #GstAvCrowdCount:alert-threshold.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstAvCrowdCount, alert_clear),
      g_param_spec_double (
          "alert-clear", "Alert Clear",
          "Clear the whole frame's alert when the count falls below this (-1 = "
          "0.9 x alert-threshold)",
          -1.0, G_MAXDOUBLE, DEFAULT_ALERT_CLEAR, EE_PARAM_PLAYING));

  /**
   * GstAvCrowdCount:diagnostics:
   *
   * Add `window-first-sample` and `window-last-sample` to every fresh
   * result: the first and last audio samples of the window as handed to the
   * feature extractor (0 where the window had no audio). Feeding audio whose
   * samples encode their own position (a ramp) shows whether the element
   * pairs each frame with exactly the audio around it.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstAvCrowdCount, diagnostics),
      g_param_spec_boolean (
          "diagnostics", "Diagnostics",
          "Add window-first-sample and window-last-sample (the first and last "
          "audio samples given to the features) to every fresh result, to "
          "check audio/video synchronisation with a test signal",
          DEFAULT_DIAGNOSTICS, EE_PARAM_PLAYING));

  /**
   * GstAvCrowdCount:audio-resample-quality:
   *
   * Quality (0 to 10) of the Kaiser-windowed sinc resampler that brings
   * audio at other rates to the model's 16 kHz (GstAudioResampler's scale,
   * as audioresample's `quality`). The default, 5, gave the log-mel features
   * closest to the reference pipeline's resampy `kaiser_best` on 48 kHz and
   * 44.1 kHz test signals (docs/features.md, "Resampling in the elements").
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstAvCrowdCount, prop_resample_quality),
      g_param_spec_int (
          "audio-resample-quality", "Audio Resample Quality",
          "Quality of the resampler that brings audio at other rates to 16 "
          "kHz (0 to 10, as audioresample's quality; 5 is closest to the "
          "reference features)",
          GST_AUDIO_RESAMPLER_QUALITY_MIN, GST_AUDIO_RESAMPLER_QUALITY_MAX,
          DEFAULT_RESAMPLE_QUALITY, EE_PARAM_READY));

  /**
   * GstAvCrowdCount:input-timeout:
   *
   * How long, in nanoseconds, one sink pad may go without any data while
   * the other has some, before the element stops waiting for it: after the
   * first video frame, an `audio` pad without audio (unlinked, not
   * negotiated or stalled) gets a warning naming it and is then treated as
   * ended (video-only, exit v1); after the first audio, a `video` pad
   * without frames gets a warning and the element ends the stream (EOS),
   * since there is nothing to count. Measured on the system clock.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstAvCrowdCount, input_timeout),
      g_param_spec_uint64 (
          "input-timeout", "Input Timeout",
          "How long a sink pad may stay without data while the other has "
          "some (in nanoseconds): then a warning, and no audio means "
          "video-only (exit v1), no video means EOS",
          MIN_INPUT_TIMEOUT, G_MAXUINT64, DEFAULT_INPUT_TIMEOUT,
          EE_PARAM_READY));

  GST_DEBUG_CATEGORY_INIT (gst_av_crowd_count_debug, "avcrowdcount", 0,
                           "Audiovisual crowd counting with early exits");

  gst_element_class_add_static_pad_template_with_gtype (
      element_class, &video_template, GST_TYPE_AGGREGATOR_PAD);
  gst_element_class_add_static_pad_template_with_gtype (
      element_class, &audio_template, GST_TYPE_AGGREGATOR_PAD);
  gst_element_class_add_static_pad_template_with_gtype (
      element_class, &src_template, GST_TYPE_AGGREGATOR_PAD);
  gst_element_class_set_static_metadata (
      element_class, "Audiovisual crowd counting",
      "Filter/Analyzer/Video/Audio",
      "Counts people in video frames with a multi-exit audiovisual network "
      "(raw video, and raw audio of any format, converted to 16 kHz mono "
      "inside), publishing the newest exit "
      "finished by a per-frame deadline. Every output buffer carries the meta "
      "EarlyExitResultMeta, a structure earlyexit/result with task, count, "
      "exit, exit-index, n-exits, fresh, audio-coverage, audio-used, "
      "window-start, window-end, deadline, inference-time, deadline-missed "
      "and unique-id (with diagnostics=true also window-first-sample and "
      "window-last-sample; valid=false when the network gave a NaN or "
      "infinite output; untimed=true on frames without timestamp; "
      "capture-time and age when the frame's capture time is known); "
      "post-messages=true posts the same fields, after "
      "timestamp, stream-time, running-time and duration, in an element "
      "message named avcrowdcount",
      "gst-earlyexit");

  element_class->change_state
      = GST_DEBUG_FUNCPTR (gst_av_crowd_count_change_state);

  agg_class->aggregate = GST_DEBUG_FUNCPTR (gst_av_crowd_count_aggregate);
  agg_class->sink_event = GST_DEBUG_FUNCPTR (gst_av_crowd_count_sink_event);
  agg_class->sink_query = GST_DEBUG_FUNCPTR (gst_av_crowd_count_sink_query);
  agg_class->src_event = GST_DEBUG_FUNCPTR (gst_av_crowd_count_src_event);
  agg_class->src_query = GST_DEBUG_FUNCPTR (gst_av_crowd_count_src_query);
  agg_class->clip = GST_DEBUG_FUNCPTR (gst_av_crowd_count_clip);
  agg_class->flush = GST_DEBUG_FUNCPTR (gst_av_crowd_count_flush);
  agg_class->start = GST_DEBUG_FUNCPTR (gst_av_crowd_count_start);
  agg_class->stop = GST_DEBUG_FUNCPTR (gst_av_crowd_count_stop);
  agg_class->get_next_time
      = GST_DEBUG_FUNCPTR (gst_av_crowd_count_get_next_time);
  /* the output caps are the video caps, set from sink_event */
  agg_class->negotiate = NULL;
}

static GstAggregatorPad *
add_sink_pad (GstAvCrowdCount *self, GstStaticPadTemplate *static_templ)
{
  GstPadTemplate *templ = gst_static_pad_template_get (static_templ);
  GstAggregatorPad *pad = g_object_new (
      GST_TYPE_AGGREGATOR_PAD, "name", static_templ->name_template, "direction",
      GST_PAD_SINK, "template", templ, NULL);

  gst_object_unref (templ);
  gst_element_add_pad (GST_ELEMENT_CAST (self), GST_PAD_CAST (pad));
  return pad;
}

static GstPadProbeReturn seen_probe (GstPad *pad, GstPadProbeInfo *info,
                                     gpointer user_data);

static void
gst_av_crowd_count_init (GstAvCrowdCount *self)
{
  self->video_pad = add_sink_pad (self, &video_template);
  self->audio_pad = add_sink_pad (self, &audio_template);
  /* the input-timeout watch learns here when data first reaches a pad */
  gst_pad_add_probe (GST_PAD (self->video_pad),
                     GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST
                         | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
                     seen_probe, self, NULL);
  gst_pad_add_probe (GST_PAD (self->audio_pad),
                     GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST
                         | GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM,
                     seen_probe, self, NULL);

  ee_element_init (&self->ee, GST_ELEMENT (self), &element_info);
  ee_props_init (G_OBJECT (self), GST_TYPE_AVCROWDCOUNT);
  g_signal_connect (self, "notify::deadline", G_CALLBACK (deadline_changed),
                    NULL);

  self->window = DEFAULT_WINDOW;
  self->frame_duration = GST_CLOCK_TIME_NONE;
  self->latency = GST_CLOCK_TIME_NONE;
}

static void
gst_av_crowd_count_finalize (GObject *object)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (object);

  ee_props_finalize (object, GST_TYPE_AVCROWDCOUNT);
  g_clear_pointer (&self->regions, ee_regions_unref);
  g_clear_error (&self->regions_error);
  ee_alert_state_clear (&self->alerts);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

/* Reports half window + budget as our latency when it changed. */
static void
update_latency (GstAvCrowdCount *self)
{
  GstClockTime latency, window;

  GST_OBJECT_LOCK (self);
  window = self->window;
  GST_OBJECT_UNLOCK (self);
  latency = window / 2 + ee_element_latency (&self->ee);
  GST_OBJECT_LOCK (self);
  if (latency == self->latency) {
    GST_OBJECT_UNLOCK (self);
    return;
  }
  self->latency = latency;
  GST_OBJECT_UNLOCK (self);

  GST_INFO_OBJECT (self, "latency %" GST_TIME_FORMAT, GST_TIME_ARGS (latency));
  gst_aggregator_set_latency (GST_AGGREGATOR (self), latency, latency);
}

/* Keeps the regions in use and remembers the fault `err` (taken): a start
 * then fails with it; a running element posts it as a warning. Called with
 * the object lock, which it releases to post. */
static void
refuse_regions (GstAvCrowdCount *self, GError *err)
{
  GST_ERROR_OBJECT (self, "regions refused: %s", err->message);
  g_clear_error (&self->regions_error);
  self->regions_error = err;
  if (self->running) {
    gchar *msg = g_strdup (err->message);
    GST_OBJECT_UNLOCK (self);
    GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS,
                         ("Bad regions: %s. The previous regions stay.", msg),
                         (NULL));
    g_free (msg);
    GST_OBJECT_LOCK (self);
  }
}

/* Takes `text` (the regions, from the property or a file) when it parses;
 * otherwise refuses it (refuse_regions). Called with the object lock. */
static void
set_regions (GstAvCrowdCount *self, const gchar *text, const gchar *file)
{
  GError *err = NULL;
  EeRegions *rs = ee_regions_parse (text, &err);

  if (!rs) {
    if (file)
      g_prefix_error (&err, "%s: ", file);
    refuse_regions (self, err);
    return;
  }
  g_clear_error (&self->regions_error);
  g_free (self->regions_text);
  self->regions_text = g_strdup (text);
  g_clear_pointer (&self->regions, ee_regions_unref);
  if (ee_regions_n (rs) > 0)
    self->regions = rs;
  else
    ee_regions_unref (rs);
}

/* Reads the regions file `path` (object lock held, released to post). */
static void
set_regions_file (GstAvCrowdCount *self, const gchar *path)
{
  GError *err = NULL;
  gchar *text = NULL;

  g_free (self->regions_file);
  self->regions_file = g_strdup (path);
  if (!path || !*path) {
    set_regions (self, NULL, NULL);
    return;
  }
  if (!g_file_get_contents (path, &text, NULL, &err)) {
    g_prefix_error (&err, "regions-file: ");
    refuse_regions (self, err);
    return;
  }
  set_regions (self, text, path);
  g_free (text);
}

/* The regions property: parsed when set. */
static void
regions_set (GObject *object, gpointer at, const GValue *value)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (object);

  GST_OBJECT_LOCK (self);
  set_regions (self, g_value_get_string (value), NULL);
  GST_OBJECT_UNLOCK (self);
}

/* The regions-file property: read and parsed when set. */
static void
regions_file_set (GObject *object, gpointer at, const GValue *value)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (object);

  GST_OBJECT_LOCK (self);
  set_regions_file (self, g_value_get_string (value));
  GST_OBJECT_UNLOCK (self);
}

/* The latency is ours to report only while running (the flag, not the
 * engine, which the state change sets up without the lock). */
static void
deadline_changed (GObject *object, GParamSpec *pspec, gpointer user_data)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (object);
  gboolean running;

  GST_OBJECT_LOCK (self);
  running = self->running;
  GST_OBJECT_UNLOCK (self);
  if (running)
    update_latency (self);
}

/* ------------------------------------------------------------ model */

static void cancel_stall_watch (GstAvCrowdCount *self);

static void
unload_model (GstAvCrowdCount *self)
{
  GST_OBJECT_LOCK (self);
  self->running = FALSE;
  GST_OBJECT_UNLOCK (self);
  cancel_stall_watch (self);
  ee_element_stop (&self->ee);
  ee_feature_extractor_free (self->fx);
  g_free (self->samples);
  ee_audio_ring_free (self->ring);
  g_clear_pointer (&self->conv, ee_audio_conv_free);
  self->fx = NULL;
  self->image = self->samples = self->logmel = NULL;
  self->ring = NULL;
}

/* The inputs: host buffers (ee_element_input_alloc) that the engine reads
 * when a frame starts. */
static gboolean
prepare_inputs (GstAvCrowdCount *self)
{
  GError *err = NULL;
  EeFeatureParams fp = ee_feature_default_params (EE_FEATURES_VGGISH);
  EeModel *model = self->ee.model;
  int64_t shape[4];
  gsize image_bytes, logmel_bytes;

  self->audio_exits = ee_model_audio_exits (model);
  self->fx = ee_feature_extractor_new (&fp, &err);
  if (!self->fx) {
    GST_ELEMENT_ERROR (self, LIBRARY, INIT,
                       ("Could not set up the audio feature extractor."),
                       ("%s", err->message));
    g_clear_error (&err);
    return FALSE;
  }
  ee_feature_extractor_shape (self->fx, shape);
  ee_model_input_size (model, &self->in_width, &self->in_height);
  image_bytes = sizeof (float) * 3 * self->in_width * self->in_height;
  logmel_bytes = sizeof (float) * shape[0] * shape[1] * shape[2] * shape[3];
  self->samples = g_new0 (float, FEATURE_SAMPLES);
  self->image = ee_element_input_alloc (&self->ee, image_bytes);
  self->logmel
      = self->image ? ee_element_input_alloc (&self->ee, logmel_bytes) : NULL;
  if (!self->logmel)
    return FALSE;
  ee_stream_set_input (self->ee.stream, ee_model_image_input (model),
                       self->image);
  for (int i = 0; i < self->ee.n_exits; i++)
    GST_INFO_OBJECT (self, "exit %d %s%s", i, self->ee.exit_names[i],
                     (self->audio_exits >> i) & 1 ? " (reads audio)" : "");
  return TRUE;
}

/* Latches the READY-only properties and opens the engine; FALSE after
 * posting an error. */
static gboolean
start_model (GstAvCrowdCount *self)
{
  gboolean ok;
  gchar *regions_fault = NULL;

  GST_OBJECT_LOCK (self);
  self->window = self->prop_window;
  self->resample_quality = self->prop_resample_quality;
  if (self->regions_error)
    regions_fault = g_strdup (self->regions_error->message);
  GST_OBJECT_UNLOCK (self);
  if (regions_fault) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("Bad regions: %s. Correct the regions (or "
                        "regions-file) property.",
                        regions_fault),
                       (NULL));
    g_free (regions_fault);
    return FALSE;
  }

  self->window_samples
      = gst_util_uint64_scale_round (self->window, AUDIO_RATE, GST_SECOND);
  self->ring = ee_audio_ring_new (self->window_samples + 2 * AUDIO_RATE);
  ok = ee_element_start (&self->ee, GST_AVCROWDCOUNT_MAX_EXITS)
       && prepare_inputs (self);
  if (!ok) {
    unload_model (self);
    return FALSE;
  }
  GST_OBJECT_LOCK (self);
  self->running = TRUE;
  self->video_seen = self->audio_seen = FALSE;
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

static GstStateChangeReturn
gst_av_crowd_count_change_state (GstElement *element, GstStateChange transition)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (element);
  GstStateChangeReturn ret;

  switch (transition) {
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (!start_model (self))
        return GST_STATE_CHANGE_FAILURE;
      update_latency (self);
      break;
    default:
      break;
  }

  ret = GST_ELEMENT_CLASS (parent_class)->change_state (element, transition);

  switch (transition) {
    case GST_STATE_CHANGE_PAUSED_TO_READY:
      /* the streaming thread has stopped */
      unload_model (self);
      GST_OBJECT_LOCK (self);
      self->latency = GST_CLOCK_TIME_NONE;
      GST_OBJECT_UNLOCK (self);
      break;
    case GST_STATE_CHANGE_READY_TO_PAUSED:
      if (ret == GST_STATE_CHANGE_FAILURE)
        unload_model (self);
      break;
    default:
      break;
  }
  return ret;
}

/* ------------------------------------------------------------ events */

static void
reset_stream (GstAvCrowdCount *self)
{
  if (self->ring)
    ee_audio_ring_reset (self->ring);
  ee_audio_conv_restart (self->conv, 0);
  self->audio_discont = TRUE;
  gst_clear_buffer (&self->stored_audio);
  ee_element_reset (&self->ee);
  /* a new stream starts with its alerts lowered */
  ee_alert_state_reset (&self->alerts);
}

static gboolean
gst_av_crowd_count_start (GstAggregator *agg)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (agg);

  reset_stream (self);
  self->untimed_warned = FALSE;
  return TRUE;
}

/* ------------------------------------------------------------ stalls */

/* The input-timeout watch: once data reaches one sink pad, a single-shot
 * system clock entry checks, input-timeout later, that the other pad has had
 * some too; if not, the element warns and stops waiting for that pad by
 * ending it (an EOS sent into the pad). The aggregator would otherwise wait
 * for it forever outside live pipelines. One watch per pad and run. */

static gboolean
stall_fired (GstClock *clock, GstClockTime time, GstClockID id,
             gpointer user_data)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (user_data);
  gboolean seen = TRUE, linked;
  GstClockTime timeout = 0;
  int side = -1;
  GstPad *pad;

  GST_OBJECT_LOCK (self);
  for (int i = 0; i < 2; i++)
    if (self->stall_id[i] == id)
      side = i;
  if (side >= 0 && self->running) {
    seen = side == WAIT_AUDIO ? self->audio_seen : self->video_seen;
    timeout = self->input_timeout;
  }
  GST_OBJECT_UNLOCK (self);
  if (seen)
    return TRUE;

  pad = GST_PAD (side == WAIT_AUDIO ? self->audio_pad : self->video_pad);
  linked = gst_pad_is_linked (pad);
  if (side == WAIT_AUDIO)
    GST_ELEMENT_WARNING (
        self, STREAM, DEMUX,
        ("No audio reached avcrowdcount's \"audio\" pad %" GST_TIME_FORMAT
         " after the first video frame (the pad is %s). Counting on video "
         "only (exit v1) from now on. Link raw audio to the audio pad (for "
         "example d. ! queue ! c.audio), or raise input-timeout if the "
         "audio comes later.",
         GST_TIME_ARGS (timeout),
         linked ? "linked but got no audio: not negotiated or stalled"
                : "not linked"),
        ("input-timeout %" GST_TIME_FORMAT " expired on pad audio",
         GST_TIME_ARGS (timeout)));
  else
    GST_ELEMENT_WARNING (
        self, STREAM, DEMUX,
        ("No video reached avcrowdcount's \"video\" pad %" GST_TIME_FORMAT
         " after the first audio (the pad is %s). There is nothing to "
         "count: ending the stream. Link raw video to the video pad (for "
         "example d. ! queue ! c.video), or raise input-timeout if the video "
         "comes later.",
         GST_TIME_ARGS (timeout),
         linked ? "linked but got no frame: not negotiated or stalled"
                : "not linked"),
        ("input-timeout %" GST_TIME_FORMAT " expired on pad video",
         GST_TIME_ARGS (timeout)));
  /* the aggregator now treats the pad as ended and goes on */
  gst_pad_send_event (pad, gst_event_new_eos ());
  return TRUE;
}

/* Starts the watch on the pad `side` waits for, unless it runs already or
 * that pad has had data. Object lock held. */
static void
arm_stall_watch (GstAvCrowdCount *self, int side)
{
  GstClock *clock;
  GstClockTime now;

  if (!self->running || self->stall_id[side]
      || (side == WAIT_AUDIO ? self->audio_seen : self->video_seen))
    return;
  clock = gst_system_clock_obtain ();
  now = gst_clock_get_time (clock);
  /* saturating at G_MAXINT64 (the clock compares signed differences): a
   * huge timeout means practically never */
  self->stall_id[side] = gst_clock_new_single_shot_id (
      clock, self->input_timeout > (GstClockTime)G_MAXINT64 - now
                 ? (GstClockTime)G_MAXINT64
                 : now + self->input_timeout);
  gst_object_unref (clock);
  if (gst_clock_id_wait_async (self->stall_id[side], stall_fired,
                               gst_object_ref (self), gst_object_unref)
      != GST_CLOCK_OK)
    GST_WARNING_OBJECT (self, "could not start the input-timeout watch");
}

static void
cancel_stall_watch (GstAvCrowdCount *self)
{
  GstClockID ids[2];

  GST_OBJECT_LOCK (self);
  for (int i = 0; i < 2; i++) {
    ids[i] = self->stall_id[i];
    self->stall_id[i] = NULL;
  }
  GST_OBJECT_UNLOCK (self);
  for (int i = 0; i < 2; i++)
    if (ids[i]) {
      gst_clock_id_unschedule (ids[i]);
      gst_clock_id_unref (ids[i]);
    }
}

/* Data (a buffer, GAP or EOS) reached a sink pad: start the watch on the
 * other pad if it has had none. */
static GstPadProbeReturn
seen_probe (GstPad *pad, GstPadProbeInfo *info, gpointer user_data)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (user_data);
  gboolean video = pad == GST_PAD (self->video_pad);

  if (GST_PAD_PROBE_INFO_TYPE (info) & GST_PAD_PROBE_TYPE_EVENT_DOWNSTREAM) {
    GstEventType type = GST_EVENT_TYPE (GST_PAD_PROBE_INFO_EVENT (info));
    if (type != GST_EVENT_EOS && type != GST_EVENT_GAP)
      return GST_PAD_PROBE_OK;
  }
  GST_OBJECT_LOCK (self);
  if (video && !self->video_seen) {
    self->video_seen = TRUE;
    arm_stall_watch (self, WAIT_AUDIO);
  } else if (!video && !self->audio_seen) {
    self->audio_seen = TRUE;
    arm_stall_watch (self, WAIT_VIDEO);
  }
  GST_OBJECT_UNLOCK (self);
  return GST_PAD_PROBE_OK;
}

static gboolean
gst_av_crowd_count_stop (GstAggregator *agg)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (agg);

  reset_stream (self);
  g_clear_pointer (&self->prep, ee_video_prep_free);
  GST_OBJECT_LOCK (self);
  self->frame_duration = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (self);
  return TRUE;
}

static GstFlowReturn
gst_av_crowd_count_flush (GstAggregator *agg)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (agg);

  GST_DEBUG_OBJECT (self, "flushing: forgetting audio and the last result");
  reset_stream (self);
  GST_AGGREGATOR_PAD (agg->srcpad)->segment.position = GST_CLOCK_TIME_NONE;
  return GST_FLOW_OK;
}

static gboolean
set_video_caps (GstAvCrowdCount *self, GstCaps *caps)
{
  GstVideoInfo info;

  gboolean ok = gst_video_info_from_caps (&info, caps);

  g_clear_pointer (&self->prep, ee_video_prep_free);
  if (ok)
    self->prep = ee_video_prep_new (&info, self->in_width, self->in_height,
                                    ee_model_preprocess (self->ee.model));
  if (!self->prep) {
    gchar *got = gst_caps_to_string (caps);
    GST_ELEMENT_ERROR (
        self, CORE, NEGOTIATION,
        ("avcrowdcount's video pad cannot take the caps %s: it takes raw "
         "8-bit video (video/x-raw) in format %s, any size and frame rate. "
         "Put videoconvert in front.",
         got, VIDEO_FORMATS_TEXT),
        ("refused caps %" GST_PTR_FORMAT, caps));
    g_free (got);
    return FALSE;
  }
  self->vinfo = info;
  GST_OBJECT_LOCK (self);
  self->frame_duration
      = info.fps_n > 0 && info.fps_d > 0
            ? gst_util_uint64_scale_int (GST_SECOND, info.fps_d, info.fps_n)
            : GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (self);
  ee_element_set_period (&self->ee, self->frame_duration);
  GST_DEBUG_OBJECT (self, "video %dx%d %s -> network %dx%d",
                    GST_VIDEO_INFO_WIDTH (&info), GST_VIDEO_INFO_HEIGHT (&info),
                    GST_VIDEO_INFO_NAME (&info), self->in_width,
                    self->in_height);
  update_latency (self);
  gst_aggregator_set_src_caps (GST_AGGREGATOR (self), caps);
  return TRUE;
}

static void ring_write (gpointer data, gint64 pos, const float *samples,
                        gsize n);

/* New audio caps: a converter from them to 16 kHz mono float. The audio of
 * the old caps still held by the old converter goes into the ring first. */
static gboolean
set_audio_caps (GstAvCrowdCount *self, GstCaps *caps)
{
  return ee_audio_conv_set_caps (&self->conv, GST_ELEMENT (self),
                                 "avcrowdcount's audio pad", caps, AUDIO_RATE,
                                 self->resample_quality, ring_write, self);
}

static gboolean
gst_av_crowd_count_sink_event (GstAggregator *agg, GstAggregatorPad *pad,
                               GstEvent *event)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (agg);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_CAPS: {
      GstCaps *caps;
      gst_event_parse_caps (event, &caps);
      if (!(pad == self->video_pad ? set_video_caps (self, caps)
                                   : set_audio_caps (self, caps))) {
        gst_event_unref (event);
        return FALSE;
      }
      break;
    }
    case GST_EVENT_SEGMENT:
      if (pad == self->video_pad) {
        const GstSegment *segment;
        gst_event_parse_segment (event, &segment);
        if (segment->format != GST_FORMAT_TIME) {
          GST_ELEMENT_ERROR (self, STREAM, FORMAT, (NULL),
                             ("video segment is not in time format"));
          gst_event_unref (event);
          return FALSE;
        }
        gst_aggregator_update_segment (agg, segment);
      } else {
        /* running times of the audio may jump */
        self->audio_discont = TRUE;
      }
      break;
    case GST_EVENT_STREAM_START:
      if (pad == self->audio_pad)
        self->audio_discont = TRUE;
      break;
    default:
      break;
  }
  return GST_AGGREGATOR_CLASS (parent_class)->sink_event (agg, pad, event);
}

/* Answers caps queries with the template intersected with `filter`. */
static gboolean
answer_template_caps (GstQuery *query, GstStaticPadTemplate *templ)
{
  GstCaps *caps = gst_static_pad_template_get_caps (templ), *filter;

  gst_query_parse_caps (query, &filter);
  if (filter) {
    GstCaps *tmp
        = gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (caps);
    caps = tmp;
  }
  gst_query_set_caps_result (query, caps);
  gst_caps_unref (caps);
  return TRUE;
}

/* Caps query through the element: the peer's answer within our template. */
static gboolean
proxy_caps_query (GstPad *peer_side, GstQuery *query,
                  GstStaticPadTemplate *templ)
{
  GstCaps *filter, *templ_caps, *peer, *result;

  gst_query_parse_caps (query, &filter);
  templ_caps = gst_static_pad_template_get_caps (templ);
  peer = gst_pad_peer_query_caps (peer_side, filter);
  result = gst_caps_intersect_full (peer, templ_caps, GST_CAPS_INTERSECT_FIRST);
  gst_query_set_caps_result (query, result);
  gst_caps_unref (result);
  gst_caps_unref (peer);
  gst_caps_unref (templ_caps);
  return TRUE;
}

/* Accept-caps as the base class answers it, except that fixed raw caps of
 * the pad's media type in system memory are accepted: their CAPS event then
 * arrives, and caps the element cannot use become an element error that
 * says which caps came and which would work (set_video_caps,
 * set_audio_caps). Caps queries still offer only what works, so negotiation
 * picks that. For other refusals the log says what the pad takes. */
static gboolean
accept_caps (GstAvCrowdCount *self, GstAggregatorPad *pad, GstQuery *query)
{
  GstCaps *caps, *allowed;
  gboolean accepted;

  gst_query_parse_accept_caps (query, &caps);
  if (gst_caps_is_fixed (caps)
      && gst_structure_has_name (gst_caps_get_structure (caps, 0),
                                 pad == self->audio_pad ? "audio/x-raw"
                                                        : "video/x-raw")
      && gst_caps_features_is_equal (gst_caps_get_features (caps, 0),
                                     GST_CAPS_FEATURES_MEMORY_SYSTEM_MEMORY)) {
    gst_query_set_accept_caps_result (query, TRUE);
    return TRUE;
  }

  if (!GST_AGGREGATOR_CLASS (parent_class)
           ->sink_query (GST_AGGREGATOR (self), pad, query))
    return FALSE;
  gst_query_parse_accept_caps_result (query, &accepted);
  if (accepted)
    return TRUE;
  allowed = gst_pad_query_caps (GST_PAD (pad), NULL);
  GST_WARNING_OBJECT (pad,
                      "refusing caps %" GST_PTR_FORMAT
                      ": this pad takes %" GST_PTR_FORMAT " (put %s in front)",
                      caps, allowed,
                      pad == self->audio_pad ? "a decoder" : "videoconvert");
  gst_caps_unref (allowed);
  return TRUE;
}

static gboolean
gst_av_crowd_count_sink_query (GstAggregator *agg, GstAggregatorPad *pad,
                               GstQuery *query)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (agg);

  if (GST_QUERY_TYPE (query) == GST_QUERY_ACCEPT_CAPS)
    return accept_caps (self, pad, query);
  if (pad == self->video_pad) {
    switch (GST_QUERY_TYPE (query)) {
      case GST_QUERY_CAPS:
        return proxy_caps_query (agg->srcpad, query, &video_template);
      case GST_QUERY_ALLOCATION:
      case GST_QUERY_POSITION:
      case GST_QUERY_DURATION:
      case GST_QUERY_URI:
        return gst_pad_peer_query (agg->srcpad, query);
      default:
        break;
    }
  } else if (GST_QUERY_TYPE (query) == GST_QUERY_CAPS) {
    return answer_template_caps (query, &audio_template);
  }
  return GST_AGGREGATOR_CLASS (parent_class)->sink_query (agg, pad, query);
}

static gboolean
gst_av_crowd_count_src_query (GstAggregator *agg, GstQuery *query)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (agg);

  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_CAPS:
      return proxy_caps_query (GST_PAD (self->video_pad), query, &src_template);
    case GST_QUERY_POSITION:
    case GST_QUERY_DURATION:
    case GST_QUERY_URI:
      return gst_pad_peer_query (GST_PAD (self->video_pad), query);
    default:
      return GST_AGGREGATOR_CLASS (parent_class)->src_query (agg, query);
  }
}

/* Downstream lateness lowers the exit aimed for (acted on in aggregate);
 * on-time reports slowly raise it again. */
static gboolean
gst_av_crowd_count_src_event (GstAggregator *agg, GstEvent *event)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (agg);

  if (GST_EVENT_TYPE (event) == GST_EVENT_QOS) {
    ee_element_qos (&self->ee, event);
    /* handled here by degrading, not forwarded: upstream would react by
     * dropping frames */
    gst_event_unref (event);
    return TRUE;
  }
  return GST_AGGREGATOR_CLASS (parent_class)->src_event (agg, event);
}

static GstBuffer *
gst_av_crowd_count_clip (GstAggregator *agg, GstAggregatorPad *pad,
                         GstBuffer *buffer)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (agg);
  GstClockTime pts = GST_BUFFER_PTS (buffer);

  if (pad == self->audio_pad) {
    /* GAP buffers without data keep their time span as they are */
    if (gst_buffer_get_size (buffer) == 0 || !self->conv)
      return buffer;
    return gst_audio_buffer_clip (
        buffer, &pad->segment,
        GST_AUDIO_INFO_RATE (ee_audio_conv_in_info (self->conv)),
        GST_AUDIO_INFO_BPF (ee_audio_conv_in_info (self->conv)));
  }

  if (GST_CLOCK_TIME_IS_VALID (pts) && pad->segment.format == GST_FORMAT_TIME) {
    GstClockTime dur = GST_BUFFER_DURATION (buffer);
    GstClockTime stop = GST_CLOCK_TIME_IS_VALID (dur) ? pts + dur : pts + 1;
    if (!gst_segment_clip (&pad->segment, GST_FORMAT_TIME, pts, stop, NULL,
                           NULL)) {
      GST_LOG_OBJECT (self, "dropping video frame outside the segment");
      gst_buffer_unref (buffer);
      return NULL;
    }
  }
  return buffer;
}

static gint64
to_samples (GstClockTime t)
{
  return (gint64)gst_util_uint64_scale_round (t, AUDIO_RATE, GST_SECOND);
}

/* Live pipelines: when to stop waiting for the head frame's audio. The base
 * class times out at this + our latency (window/2 + budget) + the upstream
 * latency, i.e. once the window's audio should have arrived, leaving the
 * budget for processing. Frames that need no more audio (carried results,
 * a covered window) and the end of the video go at once. */
static GstClockTime
gst_av_crowd_count_get_next_time (GstAggregator *agg)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (agg);
  GstBuffer *buf = gst_aggregator_pad_peek_buffer (self->video_pad);
  GstClockTime t, budget;

  if (!buf)
    return gst_aggregator_pad_is_eos (self->video_pad) ? 0
                                                       : GST_CLOCK_TIME_NONE;
  t = gst_segment_to_running_time (&self->video_pad->segment, GST_FORMAT_TIME,
                                   GST_BUFFER_PTS (buf));
  budget = ee_element_budget (&self->ee, GST_BUFFER_DURATION (buf));
  gst_buffer_unref (buf);
  if (!GST_CLOCK_TIME_IS_VALID (t))
    return 0;
  if (!ee_element_next_turn (&self->ee))
    return 0;
  if (self->ring && !ee_audio_ring_is_empty (self->ring)
      && ee_audio_ring_end (self->ring)
             >= to_samples (t) + (gint64)self->window_samples / 2)
    return 0;
  return t > budget ? t - budget : 0;
}

/* ------------------------------------------------------------ streaming */

/* Audio goes into the ring through the converter (any raw format to 16 kHz
 * mono float) in runs of contiguous buffers. A run starts at its first
 * buffer's running time (a ring position: ee_audio_conv_restart); its output
 * sample k is at that position + k, and the run ends
 * (ee_audio_conv_finish: the samples the resampler held back) at a
 * discontinuity, a GAP, new caps or the end of the audio. */

/* The converter's sink: n samples (NULL: uncovered) at ring position pos. */
static void
ring_write (gpointer data, gint64 pos, const float *samples, gsize n)
{
  GstAvCrowdCount *self = data;

  ee_audio_ring_reserve (self->ring, self->window_samples + n + AUDIO_RATE);
  ee_audio_ring_write (self->ring, pos, samples, n);
}

/* Where audio buffer `buf` goes: ring position *pos, spanning *n ring
 * samples; *continues: it continues the current run. FALSE when it has no
 * samples, no caps before it, or no timestamp and nothing to follow. */
static gboolean
audio_span (GstAvCrowdCount *self, GstBuffer *buf, gint64 *pos, gint64 *n,
            gboolean *continues)
{
  GstAggregatorPad *pad = self->audio_pad;
  gsize size = gst_buffer_get_size (buf);
  GstClockTime rt = GST_CLOCK_TIME_NONE;
  const GstAudioInfo *info;
  gint sign = 0;

  *continues = FALSE;
  if (!self->conv)
    return FALSE;
  info = ee_audio_conv_in_info (self->conv);
  if (size > 0) {
    GstAudioMeta *meta = gst_buffer_get_audio_meta (buf);
    gsize frames = meta ? meta->samples : size / GST_AUDIO_INFO_BPF (info);
    if (frames == 0)
      return FALSE;
    *n = (gint64)gst_util_uint64_scale_int_round (frames, AUDIO_RATE,
                                                  GST_AUDIO_INFO_RATE (info));
  } else if (GST_BUFFER_DURATION_IS_VALID (buf)) {
    *n = to_samples (GST_BUFFER_DURATION (buf));
    if (*n == 0)
      return FALSE;
  } else {
    return FALSE;
  }

  if (GST_BUFFER_PTS_IS_VALID (buf))
    sign = gst_segment_to_running_time_full (&pad->segment, GST_FORMAT_TIME,
                                             GST_BUFFER_PTS (buf), &rt);
  if (sign == 0) {
    if (self->audio_discont)
      return FALSE;
    *pos = ee_audio_conv_next (self->conv);
    *continues = TRUE;
    return TRUE;
  }
  *pos = sign > 0 ? to_samples (rt) : -to_samples (rt);
  /* small timestamp jitter continues the run exactly */
  if (!self->audio_discont && !GST_BUFFER_IS_DISCONT (buf)
      && ABS (*pos - ee_audio_conv_next (self->conv))
             < to_samples (ALIGN_THRESHOLD)) {
    *pos = ee_audio_conv_next (self->conv);
    *continues = TRUE;
  }
  return TRUE;
}

/* Puts one audio buffer into the ring at its running time (GAP buffers as
 * uncovered samples). */
static void
store_audio (GstAvCrowdCount *self, GstBuffer *buf, gint64 pos, gint64 n,
             gboolean continues)
{
  if (!continues) {
    ee_audio_conv_finish (self->conv);
    if (!ee_audio_ring_is_empty (self->ring)
        && pos != ee_audio_ring_end (self->ring))
      GST_DEBUG_OBJECT (self,
                        "audio discontinuity: %" G_GINT64_FORMAT " samples",
                        pos - ee_audio_ring_end (self->ring));
    ee_audio_conv_restart (self->conv, pos);
  }
  self->audio_discont = FALSE;
  if (GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_GAP)
      || gst_buffer_get_size (buf) == 0) {
    ee_audio_conv_finish (self->conv);
    ring_write (self, pos, NULL, n);
    ee_audio_conv_restart (self->conv, pos + n);
  } else if (!ee_audio_conv_write (self->conv, buf)) {
    GST_WARNING_OBJECT (self, "could not map or convert an audio buffer: "
                              "counted as missing audio");
    ring_write (self, pos, NULL, n);
    ee_audio_conv_restart (self->conv, pos + n);
  }
}

/* Moves the audio that starts before `window_end` (samples) into the ring;
 * TRUE when audio covers the window end (or a later run is waiting).
 * all: take every queued buffer.
 *
 * A buffer reaching past the window end is converted into the ring but left
 * queued on the pad (remembered in stored_audio): the aggregator calls
 * aggregate only while every pad has data, so the next frame, whose window
 * it may already cover, gets processed without waiting for more audio. A
 * buffer continuing the run is converted even when it starts after the
 * window end: the resampler holds back the run's last few samples until
 * more input (or the end of the run) pushes them out. */
static gboolean
collect_audio (GstAvCrowdCount *self, gint64 window_end, gboolean all)
{
  GstAggregatorPad *pad = self->audio_pad;
  GstBuffer *buf;

  while ((buf = gst_aggregator_pad_peek_buffer (pad))) {
    gint64 pos = 0, n = 0;
    gboolean continues = FALSE;
    gboolean usable = buf == self->stored_audio
                      || audio_span (self, buf, &pos, &n, &continues);

    if (!all && usable && buf != self->stored_audio && !continues
        && pos >= window_end) {
      /* a later run: the current one ends before it */
      ee_audio_conv_finish (self->conv);
      gst_buffer_unref (buf);
      return TRUE;
    }
    if (buf != self->stored_audio) {
      if (usable)
        store_audio (self, buf, pos, n, continues);
      else
        GST_DEBUG_OBJECT (self, "audio buffer without samples, caps or "
                                "timestamp: dropped");
      gst_buffer_replace (&self->stored_audio, buf);
    }
    if (!all && usable && !ee_audio_ring_is_empty (self->ring)
        && ee_audio_ring_end (self->ring) > window_end) {
      gst_buffer_unref (buf);
      return TRUE;
    }
    gst_aggregator_pad_drop_buffer (pad);
    gst_clear_buffer (&self->stored_audio);
    gst_buffer_unref (buf);
  }
  /* the end of the audio ends the run */
  if (gst_aggregator_pad_is_eos (pad))
    ee_audio_conv_finish (self->conv);
  return !ee_audio_ring_is_empty (self->ring)
         && ee_audio_ring_end (self->ring) >= window_end;
}

/* ------------------------------------------------------------ maps, regions,
 * alerts */

/* A fresh result's has-map, density map and region counts (density-map,
 * regions). */
static void
add_map_fields (GstAvCrowdCount *self, GstStructure *result,
                const EeFrameResult *res)
{
  gboolean want_map;
  EeRegions *rs;

  GST_OBJECT_LOCK (self);
  want_map = self->density_map;
  rs = self->regions ? ee_regions_ref (self->regions) : NULL;
  GST_OBJECT_UNLOCK (self);
  ee_result_add_map (result, res->map, (int)res->map_w, (int)res->map_h,
                     want_map, rs, self->ee.exit_names[res->exit]);
  g_clear_pointer (&rs, ee_regions_unref);
}

typedef struct
{
  GstAvCrowdCount *self;
  const GstStructure *result;
  const GstSegment *segment;
  GstClockTime pts;
} AlertPost;

/* An alert crossing: one earlyexit/alert element message. */
static void
post_alert (gpointer user_data, const gchar *region, EeAlertChange change,
            gdouble count, gdouble threshold, gdouble clear)
{
  AlertPost *a = user_data;
  const gchar *exit = earlyexit_result_get_exit (a->result);
  gboolean timed = GST_CLOCK_TIME_IS_VALID (a->pts);
  GstStructure *s = gst_structure_new (
      "earlyexit/alert", "region", G_TYPE_STRING, region, "change",
      G_TYPE_STRING, ee_alert_change_name (change), "count", G_TYPE_DOUBLE,
      count, "alert-threshold", G_TYPE_DOUBLE, threshold, "alert-clear",
      G_TYPE_DOUBLE, clear, "exit", G_TYPE_STRING, exit ? exit : "",
      "timestamp", G_TYPE_UINT64, a->pts, "stream-time", G_TYPE_UINT64,
      timed ? gst_segment_to_stream_time (a->segment, GST_FORMAT_TIME, a->pts)
            : GST_CLOCK_TIME_NONE,
      "running-time", G_TYPE_UINT64,
      timed ? gst_segment_to_running_time (a->segment, GST_FORMAT_TIME, a->pts)
            : GST_CLOCK_TIME_NONE,
      NULL);

  GST_INFO_OBJECT (
      a->self, "alert %s %s: count %.2f (threshold %.2f, clear %.2f)", region,
      ee_alert_change_name (change), count, threshold, clear);
  gst_element_post_message (GST_ELEMENT (a->self),
                            gst_message_new_element (GST_OBJECT (a->self), s));
}

/* Steps the alerts on the result published for a frame, fresh or carried
 * (ee_result_update_alerts), posting a message per crossing. */
static void
update_alerts (GstAvCrowdCount *self, GstStructure *result,
               const GstSegment *segment, GstClockTime pts)
{
  EeRegions *rs;
  gdouble threshold, clear;
  AlertPost post = { self, result, segment, pts };

  GST_OBJECT_LOCK (self);
  rs = self->regions ? ee_regions_ref (self->regions) : NULL;
  threshold = self->alert_threshold;
  clear = self->alert_clear;
  GST_OBJECT_UNLOCK (self);
  if (threshold > 0 && clear < 0)
    clear = DEFAULT_ALERT_CLEAR_RATIO * threshold;
  ee_result_update_alerts (&self->alerts, result, rs, threshold,
                           MIN (clear, threshold), post_alert, &post);
  g_clear_pointer (&rs, ee_regions_unref);
}

/* Runs the network on one frame; returns the result structure (owned), or
 * NULL after posting an error. */
static GstStructure *
process_frame (GstAvCrowdCount *self, GstBuffer *buf, GstClockTime running_time,
               gint64 processable, GstClockTime budget)
{
  gboolean timed = GST_CLOCK_TIME_IS_VALID (running_time);
  GstVideoFrame frame;
  EeFrameResult res;
  GstStructure *result;
  gint64 t = timed ? to_samples (running_time) : 0;
  gint64 wstart = t - (gint64)self->window_samples / 2;
  gsize covered, pad_front = (FEATURE_SAMPLES - self->window_samples) / 2;
  gboolean audio_used, diagnostics;
  int n_exits = self->ee.n_exits;
  guint32 allowed, all = (n_exits >= 32) ? G_MAXUINT32 : ((1u << n_exits) - 1);
  GError *err = NULL;

  if (!gst_video_frame_map (&frame, &self->vinfo, buf, GST_MAP_READ)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, (NULL),
                       ("could not map a video frame"));
    return NULL;
  }
  ee_video_prep_process (self->prep, &frame, self->image);
  gst_video_frame_unmap (&frame);

  /* a frame without timestamp has no audio window: visual exits only */
  if (timed)
    covered = ee_audio_ring_read (self->ring, wstart, self->window_samples,
                                  self->samples + pad_front);
  else
    covered = 0;
  audio_used = covered > 0;
  allowed = audio_used ? all : all & ~self->audio_exits;
  if (!allowed) {
    GST_DEBUG_OBJECT (self, "no visual exit: running on silence");
    allowed = all;
  }
  if ((allowed & self->audio_exits)
      && !ee_feature_extractor_compute (self->fx, self->samples,
                                        FEATURE_SAMPLES, self->logmel, &err)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
                       ("Could not compute the audio features."),
                       ("%s", err->message));
    g_clear_error (&err);
    return NULL;
  }
  ee_stream_set_input (self->ee.stream, ee_model_audio_input (self->ee.model),
                       (allowed & self->audio_exits) ? self->logmel : NULL);

  if (!ee_element_run (&self->ee, allowed, processable, budget,
                       &self->video_pad->segment, GST_BUFFER_PTS (buf),
                       GST_BUFFER_DURATION (buf), NULL, NULL, &res))
    return NULL;
  if (timed)
    ee_audio_ring_discard_before (self->ring, wstart);
  if (res.carried) {
    GST_LOG_OBJECT (self,
                    "frame %" GST_TIME_FORMAT ": no exit fits, "
                    "carrying the last result",
                    GST_TIME_ARGS (running_time));
    return ee_element_carry (&self->ee, &res, processable, budget);
  }

  GST_LOG_OBJECT (self,
                  "frame %" GST_TIME_FORMAT ": exit %s count %.2f, "
                  "coverage %.2f, %" G_GINT64_FORMAT " us%s",
                  GST_TIME_ARGS (running_time), self->ee.exit_names[res.exit],
                  res.value[0], (double)covered / self->window_samples,
                  (res.published - processable) / 1000,
                  res.missed ? " (missed)" : "");
  result = ee_element_result_new ("count");
  gst_structure_set (result, "count", G_TYPE_DOUBLE, (gdouble)res.value[0],
                     NULL);
  ee_element_result_finish (&self->ee, result, &res, processable, budget);
  add_map_fields (self, result, &res);
  gst_structure_set (result, "audio-coverage", G_TYPE_DOUBLE,
                     (gdouble)covered / self->window_samples, "audio-used",
                     G_TYPE_BOOLEAN, audio_used, NULL);
  if (timed)
    gst_structure_set (
        result, "window-start", G_TYPE_UINT64,
        running_time > self->window / 2 ? running_time - self->window / 2 : 0,
        "window-end", G_TYPE_UINT64, running_time + self->window / 2, NULL);
  GST_OBJECT_LOCK (self);
  diagnostics = self->diagnostics;
  GST_OBJECT_UNLOCK (self);
  if (diagnostics)
    gst_structure_set (
        result, "window-first-sample", G_TYPE_DOUBLE,
        (gdouble)self->samples[pad_front], "window-last-sample", G_TYPE_DOUBLE,
        (gdouble)self->samples[pad_front + self->window_samples - 1], NULL);
  return result;
}

/* A frame without timestamp cannot be paired with audio. It gets the last
 * result carried over (fresh FALSE), or before the first result one of the
 * visual exits run on it alone (audio-used FALSE, no window), either with
 * `untimed` TRUE; the stream goes on. The first one is warned about. */
static GstFlowReturn
untimed_frame (GstAvCrowdCount *self, GstBuffer *buf)
{
  GstAggregator *agg = GST_AGGREGATOR (self);
  GstStructure *result;
  gint64 processable;

  if (!self->untimed_warned) {
    self->untimed_warned = TRUE;
    GST_ELEMENT_WARNING (
        self, STREAM, FORMAT, ("Video frame without timestamp."),
        ("avcrowdcount pairs frames with audio by timestamp; a frame without "
         "one gets the last result carried over (or, before the first "
         "result, the visual exits' result) with untimed=true. Use a parser "
         "or do-timestamp=true on the source. Warned once."));
  }
  gst_aggregator_pad_drop_buffer (self->video_pad);
  processable = ee_element_item_begin (&self->ee, buf, GST_CLOCK_TIME_NONE);
  result = ee_element_carry (&self->ee, NULL, 0, 0);
  if (!result) {
    result = process_frame (
        self, buf, GST_CLOCK_TIME_NONE, processable,
        ee_element_budget (&self->ee, GST_BUFFER_DURATION (buf)));
    if (!result) {
      gst_buffer_unref (buf);
      return GST_FLOW_ERROR;
    }
  }
  gst_structure_set (result, "untimed", G_TYPE_BOOLEAN, TRUE, NULL);
  update_alerts (self, result, &self->video_pad->segment, GST_CLOCK_TIME_NONE);
  buf = gst_buffer_make_writable (buf);
  ee_element_publish (&self->ee, buf, &self->video_pad->segment,
                      GST_CLOCK_TIME_NONE, GST_BUFFER_DURATION (buf), result);
  /* frames carrying this result later are not untimed themselves */
  if (self->ee.last_result)
    gst_structure_remove_field (self->ee.last_result, "untimed");
  gst_aggregator_selected_samples (agg, GST_CLOCK_TIME_NONE,
                                   GST_BUFFER_DTS (buf),
                                   GST_BUFFER_DURATION (buf), NULL);
  return gst_aggregator_finish_buffer (agg, buf);
}

static GstFlowReturn
gst_av_crowd_count_aggregate (GstAggregator *agg, gboolean timeout)
{
  GstAvCrowdCount *self = GST_AVCROWDCOUNT (agg);
  GstAggregatorPad *vpad = self->video_pad;
  GstBuffer *buf;
  GstClockTime pts, running_time, budget;
  GstStructure *result;
  gboolean fresh;
  gint64 processable;

  buf = gst_aggregator_pad_peek_buffer (vpad);
  if (!buf) {
    if (gst_aggregator_pad_is_eos (vpad)) {
      GST_DEBUG_OBJECT (self, "video is EOS: forgetting the stream");
      reset_stream (self);
      return GST_FLOW_EOS;
    }
    /* live, no frame: keep the audio flowing into the ring */
    if (timeout && self->ring)
      collect_audio (self, 0, TRUE);
    return GST_FLOW_OK;
  }

  pts = GST_BUFFER_PTS (buf);
  if (!self->prep) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
                       ("video frame before video caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  if (!GST_CLOCK_TIME_IS_VALID (pts))
    return untimed_frame (self, buf);
  running_time
      = gst_segment_to_running_time (&vpad->segment, GST_FORMAT_TIME, pts);
  if (!GST_CLOCK_TIME_IS_VALID (running_time)) {
    GST_LOG_OBJECT (self, "frame outside the segment, dropping");
    gst_aggregator_pad_drop_buffer (vpad);
    gst_buffer_unref (buf);
    return GST_FLOW_OK;
  }

  budget = ee_element_budget (&self->ee, GST_BUFFER_DURATION (buf));
  fresh = ee_element_next_turn (&self->ee);

  /* a frame to run on waits for the audio after it, unless the audio has
   * ended or a live pipeline gave up waiting */
  if (fresh) {
    gint64 wend = to_samples (running_time) + self->window_samples / 2;
    if (!collect_audio (self, wend, FALSE) && !timeout
        && !gst_aggregator_pad_is_eos (self->audio_pad)) {
      GST_LOG_OBJECT (self, "frame %" GST_TIME_FORMAT " waits for audio",
                      GST_TIME_ARGS (running_time));
      gst_buffer_unref (buf);
      return GST_FLOW_OK;
    }
  }
  processable = ee_element_item_begin (&self->ee, buf, running_time);
  gst_aggregator_pad_drop_buffer (vpad);
  ee_element_take_turn (&self->ee);

  result = fresh ? process_frame (self, buf, running_time, processable, budget)
                 : ee_element_carry (&self->ee, NULL, 0, 0);
  if (!result) {
    gst_buffer_unref (buf);
    return GST_FLOW_ERROR;
  }

  update_alerts (self, result, &vpad->segment, pts);
  buf = gst_buffer_make_writable (buf);
  ee_element_publish (&self->ee, buf, &vpad->segment, GST_BUFFER_PTS (buf),
                      GST_BUFFER_DURATION (buf), result);

  gst_aggregator_selected_samples (agg, GST_BUFFER_PTS (buf),
                                   GST_BUFFER_DTS (buf),
                                   GST_BUFFER_DURATION (buf), NULL);
  GST_AGGREGATOR_PAD (agg->srcpad)->segment.position
      = GST_BUFFER_DURATION_IS_VALID (buf) ? pts + GST_BUFFER_DURATION (buf)
                                           : pts;
  return gst_aggregator_finish_buffer (agg, buf);
}
