/* gst-earlyexit: audio classification with early exits.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/* clang-format off */
/**
 * SECTION:element-audioexitclassify
 * @title: audioexitclassify
 *
 * Classifies windows of audio with a multi-exit classifier whose input is
 * computed from audio: Speech Commands features (1 s at 16 kHz) or GTZAN
 * features (3 s at 22050 Hz), as the model file's `audio_features` say
 * (`models/convert/classifier.py --audio-features sc|gtzan`). The audio
 * passes through untouched; each window's result is attached as a meta to
 * the audio buffer that completes the window and, with
 * #GstEarlyExitClassifier:post-messages, posted as an element message.
 *
 * Caps: any raw audio (`audio/x-raw`, every sample format, rate, channel
 * count and layout), the same on both pads. The audio passes through as it
 * came; for the features the element averages the channels and resamples
 * to the model's rate (16000 or 22050 Hz) itself, with GstAudioConverter at
 * #GstAudioExitClassify:audio-resample-quality. Windows are counted in
 * samples at the model's rate.
 *
 * ## Windows
 *
 * Windows are the feature window long (1 s SC, 3 s GTZAN) and start every
 * #GstAudioExitClassify:hop (default: one window, so they do not overlap; a
 * shorter hop overlaps them, a longer one skips the audio between them). The
 * first window starts at the first sample after start, a flush or a new
 * stream; samples are placed by their buffer timestamps: a jump of up to 40
 * ms is taken as jitter and ignored, a gap of up to one window is filled with
 * zeros (counted as missing in `audio-coverage`), and a longer gap or a jump
 * back drops the unfinished window and starts the windows afresh at the new
 * timestamp. GAP buffers count as missing audio.
 *
 * A window is classified as soon as the buffer that completes it arrives (at
 * another rate than the model's, the resampler holds back a few samples,
 * 120 at 48 kHz to 16 kHz: the window is then complete with the next buffer,
 * or at EOS, where the held-back samples come out); its result goes as a
 * meta on that buffer (a buffer completing several windows
 * carries one meta: the first window's result, the later ones in its
 * `more-results` array, oldest first) and in one message per window.
 * At EOS, a window holding audio that no classified window covered (the
 * stream's tail, or a stream shorter than one window) is zero-padded and
 * classified; its `audio-coverage` says how much of it was audio, and as no
 * buffer follows, its result is only posted as a message.
 *
 * ## Deadline and policies
 *
 * A window's budget is #GstEarlyExitClassifier:deadline (0: the hop), counted
 * from the window's completion, feature extraction included. Policies as
 * exitclassify: anytime (newest exit finished by the deadline), confidence
 * (first exit whose top softmax probability reaches confidence-threshold,
 * else as anytime), fixed (always max-exit), full (every exit up to
 * max-exit). The first allowed exit always runs, so a deadline shorter than
 * any exit gives its result flagged `deadline-missed`. The element's latency
 * is one budget: the buffer completing a window is held while it is
 * classified.
 *
 * ## Properties
 *
 * - `model-file` (string, READY only): the audio classification model file;
 *   a missing or bad file, a crowd-counting model or an image classifier is
 *   an error naming the file, and the change to PAUSED fails.
 * - `labels-file` (string, READY only, default NULL): one class name per
 *   line, replacing the model file's labels; its number of names must equal
 *   the number of classes. Without either, labels are the class numbers.
 * - `hop` (guint64 ns, READY only, default 0 = one window): time from one
 *   window's start to the next; otherwise at least 10 ms (a shorter hop is
 *   raised to 10 ms with a warning at start).
 * - `audio-resample-quality` (int 0 to 10, READY only, default 5): the
 *   quality of the resampler to the model's rate (audioresample's scale); 5
 *   gave the features closest to the reference pipeline's
 *   (docs/features.md).
 * - `device` (string, READY only, default "auto"): auto, cpu, cuda or cuda:N.
 * - `precision` (enum, READY only, default fp32): fp32, tf32, fp16, bf16,
 *   int8 (CPU with VNNI, a model file calibrated by earlyexit calibrate).
 * - `deadline` (guint64 ns, default 0 = the hop).
 * - `policy` (enum, default anytime): anytime, confidence, fixed, full.
 * - `min-exit`, `max-exit` (int, default -1 = none): the range of exits, by
 *   index in anytime order, that may run.
 * - `confidence-threshold` (double 0 to 1, default 0.9): for
 *   policy=confidence (0: the first exit; 1: never early).
 * - `top-k` (uint, default 5, 0 = none): length of the top-k list.
 * - `interval` (uint, default 1): run the network on every Nth window; the
 *   others carry the last result with `fresh` FALSE.
 * - `post-messages` (boolean, default TRUE): post an element message per
 *   window.
 * - `unique-id` (uint, default 0): copied into every result.
 * - `stats` (GstStructure, read only): results, fresh-results,
 *   deadline-misses, confident-stops, and per exit exit-names, exits-taken,
 *   exit-runs, mean-inference-time and estimated-time (ns).
 * - `processing-latency` (guint64 ns, read only): the latency the element
 *   adds (one budget).
 * - `qos` (boolean, default TRUE): downstream lateness lowers the exit aimed
 *   for; FALSE passes QoS events upstream untouched.
 *
 * ## Result fields (meta and message)
 *
 * The meta is the custom meta `EarlyExitResultMeta` holding a #GstStructure
 * named `earlyexit/result` (read it with `earlyexit-meta.h`):
 *
 * - `task` (string): "label".
 * - `label` (string), `label-id` (int), `confidence` (double): the top class
 *   (its name from labels-file, else the model's labels, else its number) and
 *   its softmax probability.
 * - `top-labels` (array of strings), `top-label-ids` (array of ints),
 *   `top-confidences` (array of doubles): the top-k classes as parallel
 *   arrays, most probable first (absent with top-k=0).
 * - `exit` (string), `exit-index` (int), `n-exits` (int): the exit that gave
 *   the result, its index in anytime order and the model's number of exits.
 * - `fresh` (boolean): FALSE when carried over from an earlier window
 *   (interval); every other field then describes the window it was computed
 *   on.
 * - `window-start`, `window-end` (#GstClockTime): running time of the
 *   window's first sample and of its end.
 * - `audio-coverage` (double): fraction of the window that was audio (less
 *   than 1 after gaps and for the zero-padded window at EOS).
 * - `deadline` (guint64): the window's budget in nanoseconds.
 * - `inference-time` (guint64): nanoseconds from the window's completion to
 *   its result.
 * - `deadline-missed` (boolean): the result came after the deadline.
 * - `unique-id` (uint): the unique-id property.
 *
 * The element message is named `audioexitclassify` and has, before the fields
 * above, `timestamp` (the window's first sample), `stream-time`,
 * `running-time` and `duration` (the window's length), #GstClockTime.
 *
 * ## Example launch line
 *
 * From the source tree after `meson setup build && ninja -C build` (the build
 * writes a small random-weight Speech Commands demo model, so the labels are
 * meaningless):
 * |[
 * GST_PLUGIN_PATH=build/gst gst-launch-1.0 -m \
 *   audiotestsrc num-buffers=40 ! audio/x-raw,rate=44100,channels=2 ! \
 *   audioexitclassify model-file=build/pipelines/demo-sc-classifier.safetensors \
 *     device=cpu hop=500000000 ! fakesink
 * ]|
 * Debug output: `GST_DEBUG=audioexitclassify:5,earlyexitclassifier:5`.
 */
/* clang-format on */

#include <string.h>

#include "gstaudioexitclassify.h"
#include "ee-props.h"

GST_DEBUG_CATEGORY_STATIC (gst_audio_exit_classify_debug);
#define GST_CAT_DEFAULT gst_audio_exit_classify_debug

/* Timestamps within this of the expected position continue the previous
 * buffer (as GstAudioStreamAlign's default threshold). */
#define ALIGN_THRESHOLD (40 * GST_MSECOND)
#define MAX_HOP (60 * GST_SECOND)
/* a shorter hop (but 0) is raised to this: 100 windows a second at most */
#define MIN_HOP (10 * GST_MSECOND)

#define DEFAULT_HOP 0
#define DEFAULT_RESAMPLE_QUALITY EE_AUDIO_CONV_DEFAULT_QUALITY

/* any raw audio: passed through, converted to mono float at the model's
 * rate inside (ee-audioconv.c) */
#define AUDIO_CAPS EE_AUDIO_CONV_CAPS

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (AUDIO_CAPS));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (AUDIO_CAPS));

#define gst_audio_exit_classify_parent_class parent_class
G_DEFINE_TYPE (GstAudioExitClassify, gst_audio_exit_classify,
               GST_TYPE_EARLY_EXIT_CLASSIFIER);
GST_ELEMENT_REGISTER_DEFINE (audioexitclassify, "audioexitclassify",
                             GST_RANK_NONE, GST_TYPE_AUDIO_EXIT_CLASSIFY);

static gboolean
gst_audio_exit_classify_model_ready (GstEarlyExitClassifier *base);
static void gst_audio_exit_classify_model_unload (GstEarlyExitClassifier *base);
static GstCaps *
gst_audio_exit_classify_transform_caps (GstBaseTransform *trans,
                                        GstPadDirection direction,
                                        GstCaps *caps, GstCaps *filter);
static gboolean gst_audio_exit_classify_accept_caps (GstBaseTransform *trans,
                                                     GstPadDirection direction,
                                                     GstCaps *caps);
static gboolean gst_audio_exit_classify_set_caps (GstBaseTransform *trans,
                                                  GstCaps *incaps,
                                                  GstCaps *outcaps);
static gboolean gst_audio_exit_classify_sink_event (GstBaseTransform *trans,
                                                    GstEvent *event);
static GstFlowReturn
gst_audio_exit_classify_transform_ip (GstBaseTransform *trans, GstBuffer *buf);

static void
gst_audio_exit_classify_class_init (GstAudioExitClassifyClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstEarlyExitClassifierClass *base_class
      = GST_EARLY_EXIT_CLASSIFIER_CLASS (klass);

  /**
   * GstAudioExitClassify:hop:
   *
   * Time from one window's start to the next, in nanoseconds; 0 means one
   * window (1 s for Speech Commands features, 3 s for GTZAN), i.e. windows
   * that neither overlap nor leave audio out. Otherwise at least 10 ms: a
   * shorter hop is raised to 10 ms with a warning when the element starts.
   * Rounded to whole samples.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstAudioExitClassify, prop_hop),
      g_param_spec_uint64 (
          "hop", "Hop",
          "Time from one audio window's start to the next (in nanoseconds; "
          "0 = one window: 1 s for Speech Commands models, 3 s for GTZAN; "
          "else at least 10 ms, a shorter hop is raised to 10 ms)",
          0, MAX_HOP, DEFAULT_HOP, EE_PARAM_READY));

  /**
   * GstAudioExitClassify:audio-resample-quality:
   *
   * Quality (0 to 10) of the Kaiser-windowed sinc resampler that brings
   * audio at other rates to the model's rate (GstAudioResampler's scale, as
   * audioresample's `quality`). The default, 5, gave the log-mel features
   * closest to the reference pipeline's resampy `kaiser_best`
   * (docs/features.md, "Resampling in the elements").
   */
  ee_props_add_field (
      gobject_class,
      G_STRUCT_OFFSET (GstAudioExitClassify, prop_resample_quality),
      g_param_spec_int (
          "audio-resample-quality", "Audio Resample Quality",
          "Quality of the resampler that brings audio at other rates to the "
          "model's rate (0 to 10, as audioresample's quality; 5 is closest "
          "to the reference features)",
          GST_AUDIO_RESAMPLER_QUALITY_MIN, GST_AUDIO_RESAMPLER_QUALITY_MAX,
          DEFAULT_RESAMPLE_QUALITY, EE_PARAM_READY));

  GST_DEBUG_CATEGORY_INIT (gst_audio_exit_classify_debug, "audioexitclassify",
                           0, "Audio classification with early exits");

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Early-exit audio classifier", "Filter/Analyzer/Audio",
      "Classifies windows of audio (1 s Speech Commands or 3 s GTZAN "
      "features, as the model says; hop configurable) with a multi-exit "
      "network, publishing the exit chosen by the policy within a per-window "
      "deadline; the audio passes through untouched. The buffer completing "
      "a window carries the meta EarlyExitResultMeta, a structure "
      "earlyexit/result with task, label, label-id, confidence, top-labels, "
      "top-label-ids, top-confidences, exit, exit-index, n-exits, fresh, "
      "window-start, window-end, audio-coverage, deadline, inference-time, "
      "deadline-missed and unique-id (valid=false when the network gave a "
      "NaN or infinite output; capture-time and age when the window's "
      "capture time is known); post-messages=true posts the same "
      "fields, after timestamp, stream-time, running-time and duration of "
      "the window, in an element message named audioexitclassify",
      "gst-earlyexit");

  trans_class->transform_caps
      = GST_DEBUG_FUNCPTR (gst_audio_exit_classify_transform_caps);
  trans_class->accept_caps
      = GST_DEBUG_FUNCPTR (gst_audio_exit_classify_accept_caps);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_audio_exit_classify_set_caps);
  trans_class->sink_event
      = GST_DEBUG_FUNCPTR (gst_audio_exit_classify_sink_event);
  trans_class->transform_ip
      = GST_DEBUG_FUNCPTR (gst_audio_exit_classify_transform_ip);
  base_class->input_name = "window";
  base_class->model_ready
      = GST_DEBUG_FUNCPTR (gst_audio_exit_classify_model_ready);
  base_class->model_unload
      = GST_DEBUG_FUNCPTR (gst_audio_exit_classify_model_unload);
}

static void
gst_audio_exit_classify_init (GstAudioExitClassify *self)
{
  ee_props_init (G_OBJECT (self), GST_TYPE_AUDIO_EXIT_CLASSIFY);
}

/* ------------------------------------------------------------ model */

static void
reset_stream (GstAudioExitClassify *self)
{
  self->started = FALSE;
  self->acc_len = 0;
  self->acc_start = self->next_start = self->done_end = 0;
  ee_audio_conv_restart (self->conv, 0);
  gst_early_exit_classifier_reset (GST_EARLY_EXIT_CLASSIFIER (self));
}

/* The model must compute its input from audio; sets up the features, the
 * window and the hop. */
static gboolean
gst_audio_exit_classify_model_ready (GstEarlyExitClassifier *base)
{
  GstAudioExitClassify *self = GST_AUDIO_EXIT_CLASSIFY (base);
  EeFeatureParams fp;
  GError *err = NULL;
  GstClockTime hop;
  int64_t shape[4];

  if (!ee_model_audio_features (base->model, &fp)) {
    GST_ELEMENT_ERROR (
        self, RESOURCE, FAILED,
        ("Model file \"%s\" classifies images, not audio. Use it with "
         "exitclassify, or give audioexitclassify a model written with "
         "classifier.py --audio-features sc or gtzan.",
         ee_model_path (base->model)),
        (NULL));
    return FALSE;
  }
  self->fx = ee_feature_extractor_new (&fp, &err);
  if (!self->fx) {
    GST_ELEMENT_ERROR (
        self, RESOURCE, FAILED,
        ("Model file \"%s\": its audio features cannot be computed: %s",
         ee_model_path (base->model), err->message),
        (NULL));
    g_clear_error (&err);
    return FALSE;
  }
  ee_feature_extractor_shape (self->fx, shape);
  if ((gsize)(shape[0] * shape[1] * shape[2] * shape[3])
      != base->input_floats) {
    GST_ELEMENT_ERROR (
        self, RESOURCE, FAILED,
        ("Model file \"%s\": its %s features are %" G_GINT64_FORMAT
         "x%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
         " but the network takes 3x%dx%d. Regenerate it with "
         "models/convert/classifier.py.",
         ee_model_path (base->model), ee_feature_kind_to_string (fp.kind),
         shape[1], shape[2], shape[3], base->in_height, base->in_width),
        (NULL));
    return FALSE;
  }
  self->rate = ee_feature_extractor_sample_rate (self->fx);
  self->window = ee_feature_extractor_window (self->fx);
  GST_OBJECT_LOCK (self);
  hop = self->prop_hop;
  self->resample_quality = self->prop_resample_quality;
  GST_OBJECT_UNLOCK (self);
  if (hop > 0 && hop < MIN_HOP) {
    GST_ELEMENT_WARNING (
        self, RESOURCE, SETTINGS,
        ("hop=%" G_GUINT64_FORMAT " ns is below the 10 ms minimum: windows "
         "start every 10 ms instead.",
         hop),
        ("a hop of a few samples would classify a window per sample"));
    hop = MIN_HOP;
  }
  self->hop
      = hop > 0
            ? MAX (gst_util_uint64_scale_round (hop, self->rate, GST_SECOND), 1)
            : self->window;
  self->samples = g_new0 (float, self->window);
  self->acc_cap = 2 * MAX (self->window, self->hop);
  self->acc = g_new (float, self->acc_cap);
  self->acc_covered = g_new (guint8, self->acc_cap);
  reset_stream (self);
  GST_INFO_OBJECT (self,
                   "%s features: windows of %" G_GSIZE_FORMAT
                   " samples at %d Hz every %" G_GSIZE_FORMAT " samples",
                   ee_feature_kind_to_string (fp.kind), self->window,
                   self->rate, self->hop);
  gst_early_exit_classifier_set_period (
      base, gst_util_uint64_scale_int (self->hop, GST_SECOND, self->rate));
  return TRUE;
}

static void
gst_audio_exit_classify_model_unload (GstEarlyExitClassifier *base)
{
  GstAudioExitClassify *self = GST_AUDIO_EXIT_CLASSIFY (base);

  g_clear_pointer (&self->fx, ee_feature_extractor_free);
  g_clear_pointer (&self->samples, g_free);
  g_clear_pointer (&self->acc, g_free);
  g_clear_pointer (&self->acc_covered, g_free);
  self->acc_cap = 0;
  g_clear_pointer (&self->conv, ee_audio_conv_free);
  reset_stream (self);
}

/* ------------------------------------------------------------ caps */

/* Passthrough caps: the audio goes out as it came. */
static GstCaps *
gst_audio_exit_classify_transform_caps (GstBaseTransform *trans,
                                        GstPadDirection direction,
                                        GstCaps *caps, GstCaps *filter)
{
  if (filter)
    return gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);
  return gst_caps_ref (caps);
}

/* Accept-caps as the base class answers it. Upstream only learns
 * not-negotiated from a refusal, so the log says what the pad takes. */
static gboolean
gst_audio_exit_classify_accept_caps (GstBaseTransform *trans,
                                     GstPadDirection direction, GstCaps *caps)
{
  GstAudioExitClassify *self = GST_AUDIO_EXIT_CLASSIFY (trans);
  GstCaps *templ, *allowed;

  if (GST_BASE_TRANSFORM_CLASS (parent_class)
          ->accept_caps (trans, direction, caps))
    return TRUE;
  templ = gst_static_pad_template_get_caps (&sink_template);
  allowed
      = gst_audio_exit_classify_transform_caps (trans, direction, templ, NULL);
  GST_WARNING_OBJECT (self,
                      "refusing caps %" GST_PTR_FORMAT
                      ": audioexitclassify takes %" GST_PTR_FORMAT
                      " (raw audio: put a decoder in front)",
                      caps, allowed);
  gst_caps_unref (allowed);
  gst_caps_unref (templ);
  return FALSE;
}

static void append_converted (gpointer data, gint64 pos, const float *samples,
                              gsize n);

/* A converter from the caps to mono float at the model's rate. On new caps
 * mid-stream the audio the old converter holds back goes in first, and the
 * grid goes on. */
static gboolean
gst_audio_exit_classify_set_caps (GstBaseTransform *trans, GstCaps *incaps,
                                  GstCaps *outcaps)
{
  GstAudioExitClassify *self = GST_AUDIO_EXIT_CLASSIFY (trans);

  return ee_audio_conv_set_caps (
      &self->conv, GST_ELEMENT (self), "audioexitclassify", incaps, self->rate,
      self->resample_quality, append_converted, self);
}

/* ------------------------------------------------------------ windows */

/* Sample position of `pts` on the grid (sample 0 at base_pts). */
static gint64
to_index (GstAudioExitClassify *self, GstClockTime pts)
{
  if (pts >= self->base_pts)
    return (gint64)gst_util_uint64_scale_round (pts - self->base_pts,
                                                self->rate, GST_SECOND);
  return -(gint64)gst_util_uint64_scale_round (self->base_pts - pts, self->rate,
                                               GST_SECOND);
}

/* PTS of sample `index` on the grid. */
static GstClockTime
to_pts (GstAudioExitClassify *self, gint64 index)
{
  if (index >= 0)
    return self->base_pts
           + gst_util_uint64_scale_int_round (index, GST_SECOND, self->rate);
  return self->base_pts
         - MIN (self->base_pts, gst_util_uint64_scale_int_round (
                                    -index, GST_SECOND, self->rate));
}

/* Room for n more samples. */
static void
reserve (GstAudioExitClassify *self, gsize n)
{
  if (self->acc_len + n <= self->acc_cap)
    return;
  self->acc_cap = MAX (2 * self->acc_cap, self->acc_len + n);
  self->acc = g_renew (float, self->acc, self->acc_cap);
  self->acc_covered = g_renew (guint8, self->acc_covered, self->acc_cap);
}

/* Appends n mono samples (NULL: zeros) at grid position pos, which is the
 * end of acc when acc holds samples. */
static void
append (GstAudioExitClassify *self, gint64 pos, const float *data, gsize n,
        gboolean covered)
{
  reserve (self, n);
  if (self->acc_len == 0)
    self->acc_start = pos;
  if (data)
    memcpy (self->acc + self->acc_len, data, n * sizeof (float));
  else
    memset (self->acc + self->acc_len, 0, n * sizeof (float));
  memset (self->acc_covered + self->acc_len, covered ? 1 : 0, n);
  self->acc_len += n;
}

/* The converter's sink: converted samples at grid position pos. */
static void
append_converted (gpointer data, gint64 pos, const float *samples, gsize n)
{
  append (data, pos, samples, n, TRUE);
}

/* Appends n zeros (missing audio) after the converter's run, which ends
 * first. */
static void
append_gap (GstAudioExitClassify *self, gsize n)
{
  gint64 pos;

  ee_audio_conv_finish (self->conv);
  pos = ee_audio_conv_next (self->conv);
  append (self, pos, NULL, n, FALSE);
  ee_audio_conv_restart (self->conv, pos + (gint64)n);
}

/* Drops the samples before the next window's start. */
static void
trim (GstAudioExitClassify *self)
{
  gsize k;

  if (self->acc_len > 0 && self->acc_start > self->next_start) {
    /* cannot happen on a continuous grid; resynchronise rather than stall */
    GST_WARNING_OBJECT (self, "window start behind the audio: resyncing");
    self->next_start = self->acc_start;
  }
  if (self->acc_start >= self->next_start)
    return;
  k = (gsize)MIN ((gint64)self->acc_len, self->next_start - self->acc_start);
  memmove (self->acc, self->acc + k, (self->acc_len - k) * sizeof (float));
  memmove (self->acc_covered, self->acc_covered + k, self->acc_len - k);
  self->acc_len -= k;
  self->acc_start += k;
}

/* Classifies the window at acc[0] (callers check that acc starts at
 * next_start; window samples, the tail zero-padded when fewer) and publishes
 * the result on `buf` (NULL: message only). */
static gboolean
classify_window (GstAudioExitClassify *self, GstBuffer *buf)
{
  GstEarlyExitClassifier *base = GST_EARLY_EXIT_CLASSIFIER (self);
  GstClockTime start = to_pts (self, self->next_start);
  GstClockTime duration
      = gst_util_uint64_scale_int_round (self->window, GST_SECOND, self->rate);
  /* a window is captured once its last sample is */
  gint64 processable = ee_element_item_begin (
      &base->ee, buf,
      gst_segment_to_running_time (&GST_BASE_TRANSFORM (self)->segment,
                                   GST_FORMAT_TIME, start + duration));
  GstStructure *result;

  if (gst_early_exit_classifier_take_turn (base)) {
    GstClockTime budget
        = gst_early_exit_classifier_budget (base, GST_CLOCK_TIME_NONE);
    const GstSegment *seg = &GST_BASE_TRANSFORM (self)->segment;
    gsize n = MIN (self->acc_len, self->window), covered = 0;
    GError *err = NULL;
    gboolean fresh = FALSE;

    memcpy (self->samples, self->acc, n * sizeof (float));
    memset (self->samples + n, 0, (self->window - n) * sizeof (float));
    for (gsize i = 0; i < n; i++)
      covered += self->acc_covered[i];
    if (!ee_feature_extractor_compute (self->fx, self->samples, self->window,
                                       base->input, &err)) {
      GST_ELEMENT_ERROR (self, STREAM, FAILED,
                         ("Could not compute the audio features."),
                         ("%s", err->message));
      g_clear_error (&err);
      return FALSE;
    }
    result = gst_early_exit_classifier_classify (base, processable, budget,
                                                 start, duration);
    if (!result)
      return FALSE;
    /* a carried result keeps the window it was computed on */
    if (gst_structure_get_boolean (result, "fresh", &fresh) && fresh)
      gst_structure_set (
          result, "window-start", G_TYPE_UINT64,
          gst_segment_to_running_time (seg, GST_FORMAT_TIME, start),
          "window-end", G_TYPE_UINT64,
          gst_segment_to_running_time (seg, GST_FORMAT_TIME, start + duration),
          "audio-coverage", G_TYPE_DOUBLE, (gdouble)covered / self->window,
          NULL);
  } else {
    result = gst_early_exit_classifier_carry (base);
  }
  gst_early_exit_classifier_publish (base, buf, start, duration, result);
  self->done_end = self->next_start + (gint64)self->window;
  self->next_start += (gint64)self->hop;
  trim (self);
  return TRUE;
}

/* Places a buffer starting at PTS `pts` on the sample grid: jitter is
 * ignored, a short gap filled with zeros, and after a long gap or a jump back
 * the unfinished window is dropped and the grid restarts at `pts`. */
static void
place (GstAudioExitClassify *self, GstClockTime pts)
{
  gint64 idx, diff, threshold;

  if (!self->started) {
    self->started = TRUE;
    self->base_pts = GST_CLOCK_TIME_IS_VALID (pts) ? pts : 0;
    self->acc_len = 0;
    self->acc_start = self->next_start = self->done_end = 0;
    ee_audio_conv_restart (self->conv, 0);
    return;
  }
  if (!GST_CLOCK_TIME_IS_VALID (pts))
    return;
  idx = to_index (self, pts);
  diff = idx - ee_audio_conv_next (self->conv);
  threshold = (gint64)gst_util_uint64_scale_round (ALIGN_THRESHOLD, self->rate,
                                                   GST_SECOND);
  if (ABS (diff) <= threshold)
    return;
  if (diff > 0 && diff <= (gint64)self->window) {
    GST_DEBUG_OBJECT (self,
                      "audio gap of %" G_GINT64_FORMAT " samples: "
                      "filled with zeros",
                      diff);
    append_gap (self, (gsize)diff);
    return;
  }
  GST_DEBUG_OBJECT (self,
                    "audio jumps by %" G_GINT64_FORMAT " samples: "
                    "dropping the unfinished window, restarting there",
                    diff);
  ee_audio_conv_restart (self->conv, idx);
  self->acc_len = 0;
  self->acc_start = self->next_start = self->done_end = idx;
}

/* Classifies every window the samples so far complete; `buf` carries the
 * results (NULL: messages only). */
static gboolean
classify_complete (GstAudioExitClassify *self, GstBuffer *buf)
{
  trim (self);
  while (self->acc_len >= self->window && self->acc_start == self->next_start)
    if (!classify_window (self, buf))
      return FALSE;
  return TRUE;
}

static GstFlowReturn
gst_audio_exit_classify_transform_ip (GstBaseTransform *trans, GstBuffer *buf)
{
  GstAudioExitClassify *self = GST_AUDIO_EXIT_CLASSIFY (trans);
  const GstAudioInfo *info;

  if (!self->conv) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
                       ("audio buffer before audio caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }
  info = ee_audio_conv_in_info (self->conv);
  place (self, GST_BUFFER_PTS (buf));
  if (GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_GAP)) {
    GstAudioMeta *meta = gst_buffer_get_audio_meta (buf);
    gsize frames = meta ? meta->samples
                        : gst_buffer_get_size (buf) / GST_AUDIO_INFO_BPF (info);
    append_gap (self, gst_util_uint64_scale_int_round (
                          frames, self->rate, GST_AUDIO_INFO_RATE (info)));
  } else if (!ee_audio_conv_write (self->conv, buf)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED,
                       ("Could not read an audio buffer."),
                       ("mapping or converting the buffer failed"));
    return GST_FLOW_ERROR;
  }
  return classify_complete (self, buf) ? GST_FLOW_OK : GST_FLOW_ERROR;
}

static gboolean
gst_audio_exit_classify_sink_event (GstBaseTransform *trans, GstEvent *event)
{
  GstAudioExitClassify *self = GST_AUDIO_EXIT_CLASSIFY (trans);

  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_EOS:
      /* the samples the resampler held back, the windows they complete,
       * then the tail no classified window covered, zero-padded */
      if (self->started) {
        ee_audio_conv_finish (self->conv);
        classify_complete (self, NULL);
      }
      if (self->started && self->acc_len > 0
          && self->acc_start == self->next_start
          && self->acc_start + (gint64)self->acc_len > self->done_end) {
        GST_DEBUG_OBJECT (self,
                          "EOS: classifying the last %" G_GSIZE_FORMAT
                          " samples, zero-padded to a window",
                          self->acc_len);
        classify_window (self, NULL);
      }
      reset_stream (self);
      break;
    case GST_EVENT_FLUSH_STOP:
    case GST_EVENT_STREAM_START:
      reset_stream (self);
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}
