/* gst-earlyexit: image classification of video frames with early exits.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/* clang-format off */
/**
 * SECTION:element-exitclassify
 * @title: exitclassify
 *
 * Classifies every video frame with a multi-exit image classifier (ResNet152,
 * DenseNet201 or InceptionV3 with SL-ViT or CNN early exits, written by
 * `models/convert/classifier.py`) and publishes, by a per-frame deadline, the
 * result of an exit chosen by #GstEarlyExitClassifier:policy. The video passes
 * through untouched (the element works in place and never writes the data);
 * every output buffer carries the result as a meta and, with
 * #GstEarlyExitClassifier:post-messages, the same result goes on the bus as
 * an element message.
 *
 * Caps: raw 8-bit RGB or YUV video at any size (RGB, BGR, RGBx, BGRx, xRGB,
 * xBGR, RGBA, BGRA, ARGB, ABGR, I420, YV12, NV12, NV21, Y42B, Y444), the same
 * on both pads; put `videoconvert` in front for anything else. Each frame is
 * converted, resized bilinearly to the model's input size and normalised as
 * the model file says, on the CPU, inside the budget. Models whose input is
 * computed from audio belong to audioexitclassify and are refused.
 *
 * ## Deadline and policies
 *
 * A frame's budget is #GstEarlyExitClassifier:deadline (0: the frame duration,
 * from the buffer, else the caps, else 40 ms), counted from the frame's
 * arrival, preprocessing included. The element keeps a cost estimate per
 * network segment (measured at start-up, then a moving average).
 *
 * - `anytime`: does not start an exit that is not expected to finish in time;
 *   the result is the newest exit finished by the deadline.
 * - `confidence`: as anytime, but stops at the first exit whose top softmax
 *   probability is at least #GstEarlyExitClassifier:confidence-threshold
 *   (0: the first exit; 1: never early).
 * - `fixed`: always exit max-exit (the last when -1), deadline ignored.
 * - `full`: every exit up to max-exit, deadline ignored; the last one's result.
 *
 * The first exit allowed by min-exit always runs, so a deadline shorter than
 * any exit still gives a result: that exit's, flagged `deadline-missed`. A
 * deadline of 2^63 - 1 ns or more (deadline=-1 on a gst-launch-1.0 line is
 * 2^64 - 1) is no limit: every allowed exit runs and no result is late. A
 * min-exit above max-exit, or an exit index past the model's last, is
 * warned about with what runs instead (max-exit's exit; the last exit). The
 * element's latency is one budget.
 *
 * ## Properties
 *
 * - `model-file` (string, READY only): the classification model file; a
 *   missing or bad file, or a crowd-counting or audio model, is an error
 *   naming the file, and the change to PAUSED fails.
 * - `labels-file` (string, READY only, default NULL): one class name per
 *   line, replacing the model file's labels; its number of names must equal
 *   the number of classes. Without either, labels are the class numbers.
 * - `device` (string, READY only, default "auto"): auto, cpu, cuda or cuda:N.
 * - `precision` (enum, READY only, default fp32): fp32, tf32, fp16, bf16,
 *   int8; a precision the backend lacks is an error (the CPU has fp32, bf16,
 *   and int8 with VNNI and a model file calibrated by earlyexit calibrate).
 * - `deadline` (guint64 ns, default 0 = one frame duration; 2^63 - 1 or
 *   more = no limit).
 * - `deadline-reference` (enum, default processing): what the deadline
 *   counts from: processing (the frame's arrival) or capture (its capture
 *   time, for live sources).
 * - `policy` (enum, default anytime): anytime, confidence, fixed, full.
 * - `min-exit`, `max-exit` (int, default -1 = none): the range of exits, by
 *   index in anytime order, that may run.
 * - `confidence-threshold` (double 0 to 1, default 0.9): for
 *   policy=confidence.
 * - `top-k` (uint, default 5, 0 = none): length of the top-k list.
 * - `interval` (uint, default 1): run the network on every Nth frame; the
 *   others carry the last result with `fresh` FALSE.
 * - `post-messages` (boolean, default TRUE): post an element message per
 *   frame.
 * - `unique-id` (uint, default 0): copied into every result.
 * - `stats` (GstStructure, read only): results, fresh-results,
 *   deadline-misses, confident-stops, and per exit exit-names, exits-taken,
 *   exit-runs, mean-inference-time and estimated-time (ns).
 * - `processing-latency` (guint64 ns, read only): the latency the element
 *   adds (one budget), also added to upstream's in latency queries.
 * - `qos` (boolean, default TRUE): downstream lateness (QoS events) lowers
 *   the exit aimed for; FALSE passes QoS events upstream untouched. No
 *   buffer is ever dropped.
 *
 * ## Result fields (meta and message)
 *
 * The meta is the custom meta `EarlyExitResultMeta` (no tags, so it survives
 * videoconvert and videoscale) holding a #GstStructure named
 * `earlyexit/result`; C applications read it with `earlyexit-meta.h`
 * (`gst_buffer_get_earlyexit_result()`, `earlyexit_result_get_label()`,
 * `earlyexit_result_get_top_k()`, ...).
 *
 * - `task` (string): "label".
 * - `label` (string): the top class's name (labels-file, else the model's
 *   labels, else its number).
 * - `label-id` (int): the top class's index.
 * - `confidence` (double): its softmax probability.
 * - `top-labels` (array of strings), `top-label-ids` (array of ints),
 *   `top-confidences` (array of doubles): the top-k classes as parallel
 *   arrays, most probable first (absent with top-k=0).
 * - `exit` (string): name of the exit that produced the result (the model's
 *   exit names in anytime order, then "final").
 * - `exit-index` (int): its index in anytime order, 0 = earliest.
 * - `n-exits` (int): the model's number of exits.
 * - `fresh` (boolean): FALSE when carried over from an earlier frame
 *   (interval); every other field then describes the frame it was computed
 *   on.
 * - `deadline` (guint64): the frame's budget in nanoseconds.
 * - `inference-time` (guint64): nanoseconds from the frame's arrival to its
 *   result.
 * - `deadline-missed` (boolean): the result came after the deadline.
 * - `unique-id` (uint): the unique-id property.
 * - `valid` (boolean, only when FALSE): the exit's output had a NaN or an
 *   infinity; `label`, `label-id`, `confidence` and the top-k arrays are
 *   then left out (the element warns once).
 * - `capture-time`, `age` (guint64 ns, when the frame's capture time is
 *   known: its NTP reference timestamp meta, else the pipeline clock at its
 *   running time): the capture in UTC (ns since 1970) and the time from it
 *   to the result; see the `deadline-reference` property.
 *
 * The element message is named `exitclassify` and has, before the fields
 * above, `timestamp`, `stream-time`, `running-time` and `duration`
 * (#GstClockTime) of the frame.
 *
 * ## Example launch line
 *
 * From the source tree after `meson setup build && ninja -C build` (the build
 * writes a small random-weight demo model, so the labels are meaningless):
 * |[
 * GST_PLUGIN_PATH=build/gst gst-launch-1.0 -m \
 *   videotestsrc num-buffers=50 ! video/x-raw,width=320,height=240,framerate=25/1 ! \
 *   exitclassify model-file=build/pipelines/demo-classifier.safetensors device=cpu ! fakesink
 * ]|
 * Debug output: `GST_DEBUG=exitclassify:5,earlyexitclassifier:5`.
 */
/* clang-format on */

#include "gstexitclassify.h"

GST_DEBUG_CATEGORY_STATIC (gst_exit_classify_debug);
#define GST_CAT_DEFAULT gst_exit_classify_debug

#define VIDEO_CAPS                                                             \
  GST_VIDEO_CAPS_MAKE (                                                        \
      "{ RGB, BGR, RGBx, BGRx, xRGB, xBGR, "                                   \
      "RGBA, BGRA, ARGB, ABGR, I420, YV12, NV12, NV21, Y42B, Y444 }")

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIDEO_CAPS));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIDEO_CAPS));

#define gst_exit_classify_parent_class parent_class
G_DEFINE_TYPE (GstExitClassify, gst_exit_classify,
               GST_TYPE_EARLY_EXIT_CLASSIFIER);
GST_ELEMENT_REGISTER_DEFINE (exitclassify, "exitclassify", GST_RANK_NONE,
                             GST_TYPE_EXIT_CLASSIFY);

static gboolean gst_exit_classify_model_ready (GstEarlyExitClassifier *base);
static gboolean gst_exit_classify_stop (GstBaseTransform *trans);
static gboolean gst_exit_classify_set_caps (GstBaseTransform *trans,
                                            GstCaps *incaps, GstCaps *outcaps);
static gboolean gst_exit_classify_accept_caps (GstBaseTransform *trans,
                                               GstPadDirection direction,
                                               GstCaps *caps);
static gboolean gst_exit_classify_sink_event (GstBaseTransform *trans,
                                              GstEvent *event);
static GstFlowReturn gst_exit_classify_transform_ip (GstBaseTransform *trans,
                                                     GstBuffer *buf);

static void
gst_exit_classify_class_init (GstExitClassifyClass *klass)
{
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstEarlyExitClassifierClass *base_class
      = GST_EARLY_EXIT_CLASSIFIER_CLASS (klass);

  GST_DEBUG_CATEGORY_INIT (gst_exit_classify_debug, "exitclassify", 0,
                           "Video frame classification with early exits");

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Early-exit image classifier", "Filter/Analyzer/Video",
      "Classifies video frames with a multi-exit network (ResNet152, "
      "DenseNet201 or InceptionV3 with early exits), publishing the exit "
      "chosen by the policy within a per-frame deadline; the video passes "
      "through untouched. Every output buffer carries the meta "
      "EarlyExitResultMeta, a structure earlyexit/result with task, label, "
      "label-id, confidence, top-labels, top-label-ids, top-confidences, "
      "exit, exit-index, n-exits, fresh, deadline, inference-time, "
      "deadline-missed and unique-id (valid=false, without the label "
      "fields, when the network's output was not finite; capture-time and "
      "age when the frame's capture time is known); post-messages=true "
      "posts the same "
      "fields, after timestamp, stream-time, running-time and duration, in "
      "an element message named exitclassify",
      "gst-earlyexit");

  trans_class->stop = GST_DEBUG_FUNCPTR (gst_exit_classify_stop);
  trans_class->set_caps = GST_DEBUG_FUNCPTR (gst_exit_classify_set_caps);
  trans_class->accept_caps = GST_DEBUG_FUNCPTR (gst_exit_classify_accept_caps);
  trans_class->sink_event = GST_DEBUG_FUNCPTR (gst_exit_classify_sink_event);
  trans_class->transform_ip
      = GST_DEBUG_FUNCPTR (gst_exit_classify_transform_ip);
  base_class->input_name = "frame";
  base_class->model_ready = GST_DEBUG_FUNCPTR (gst_exit_classify_model_ready);
}

static void
gst_exit_classify_init (GstExitClassify *self)
{
}

/* The model must classify images, not audio features. */
static gboolean
gst_exit_classify_model_ready (GstEarlyExitClassifier *base)
{
  EeFeatureParams fp;

  if (ee_model_audio_features (base->model, &fp)) {
    GST_ELEMENT_ERROR (
        base, RESOURCE, FAILED,
        ("Model file \"%s\" classifies audio (%s features), not images. Use "
         "it with audioexitclassify, or give exitclassify an image model.",
         ee_model_path (base->model), ee_feature_kind_to_string (fp.kind)),
        (NULL));
    return FALSE;
  }
  return TRUE;
}

static gboolean
gst_exit_classify_stop (GstBaseTransform *trans)
{
  GstExitClassify *self = GST_EXIT_CLASSIFY (trans);

  g_clear_pointer (&self->prep, ee_video_prep_free);
  return GST_BASE_TRANSFORM_CLASS (parent_class)->stop (trans);
}

static gboolean
gst_exit_classify_set_caps (GstBaseTransform *trans, GstCaps *incaps,
                            GstCaps *outcaps)
{
  GstExitClassify *self = GST_EXIT_CLASSIFY (trans);
  GstEarlyExitClassifier *base = GST_EARLY_EXIT_CLASSIFIER (trans);
  GstVideoInfo info;

  if (!gst_video_info_from_caps (&info, incaps)) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
                       ("invalid video caps %" GST_PTR_FORMAT, incaps));
    return FALSE;
  }
  g_clear_pointer (&self->prep, ee_video_prep_free);
  self->prep = ee_video_prep_new (&info, base->in_width, base->in_height,
                                  ee_model_preprocess (base->model));
  if (!self->prep) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
                       ("unsupported video caps %" GST_PTR_FORMAT, incaps));
    return FALSE;
  }
  self->vinfo = info;
  GST_DEBUG_OBJECT (self, "video %dx%d %s -> network %dx%d",
                    GST_VIDEO_INFO_WIDTH (&info), GST_VIDEO_INFO_HEIGHT (&info),
                    GST_VIDEO_INFO_NAME (&info), base->in_width,
                    base->in_height);
  gst_early_exit_classifier_set_period (
      base, info.fps_n > 0 && info.fps_d > 0
                ? gst_util_uint64_scale_int (GST_SECOND, info.fps_d, info.fps_n)
                : GST_CLOCK_TIME_NONE);
  return TRUE;
}

/* Accept-caps as the base class answers it. Upstream only learns
 * not-negotiated from a refusal, so the log says what the pad takes. */
static gboolean
gst_exit_classify_accept_caps (GstBaseTransform *trans,
                               GstPadDirection direction, GstCaps *caps)
{
  GstCaps *templ;

  if (GST_BASE_TRANSFORM_CLASS (parent_class)
          ->accept_caps (trans, direction, caps))
    return TRUE;
  templ = gst_static_pad_template_get_caps (&sink_template);
  GST_WARNING_OBJECT (trans,
                      "refusing caps %" GST_PTR_FORMAT
                      ": exitclassify takes %" GST_PTR_FORMAT
                      " (put videoconvert in front)",
                      caps, templ);
  gst_caps_unref (templ);
  return FALSE;
}

static gboolean
gst_exit_classify_sink_event (GstBaseTransform *trans, GstEvent *event)
{
  switch (GST_EVENT_TYPE (event)) {
    case GST_EVENT_FLUSH_STOP:
    case GST_EVENT_STREAM_START:
      gst_early_exit_classifier_reset (GST_EARLY_EXIT_CLASSIFIER (trans));
      break;
    default:
      break;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->sink_event (trans, event);
}

static GstFlowReturn
gst_exit_classify_transform_ip (GstBaseTransform *trans, GstBuffer *buf)
{
  GstExitClassify *self = GST_EXIT_CLASSIFY (trans);
  GstEarlyExitClassifier *base = GST_EARLY_EXIT_CLASSIFIER (trans);
  gint64 processable = ee_element_item_begin (
      &base->ee, buf,
      gst_segment_to_running_time (&trans->segment, GST_FORMAT_TIME,
                                   GST_BUFFER_PTS (buf)));
  GstStructure *result;

  if (!self->prep) {
    GST_ELEMENT_ERROR (self, CORE, NEGOTIATION, (NULL),
                       ("video frame before video caps"));
    return GST_FLOW_NOT_NEGOTIATED;
  }

  if (gst_early_exit_classifier_take_turn (base)) {
    GstClockTime budget
        = gst_early_exit_classifier_budget (base, GST_BUFFER_DURATION (buf));
    GstVideoFrame frame;

    if (!gst_video_frame_map (&frame, &self->vinfo, buf, GST_MAP_READ)) {
      GST_ELEMENT_ERROR (self, STREAM, FAILED,
                         ("Could not read a video frame."),
                         ("gst_video_frame_map failed"));
      return GST_FLOW_ERROR;
    }
    ee_video_prep_process (self->prep, &frame, base->input);
    gst_video_frame_unmap (&frame);
    result = gst_early_exit_classifier_classify (base, processable, budget,
                                                 GST_BUFFER_PTS (buf),
                                                 GST_BUFFER_DURATION (buf));
    if (!result)
      return GST_FLOW_ERROR;
  } else {
    result = gst_early_exit_classifier_carry (base);
  }
  gst_early_exit_classifier_publish (base, buf, GST_BUFFER_PTS (buf),
                                     GST_BUFFER_DURATION (buf), result);
  return GST_FLOW_OK;
}
