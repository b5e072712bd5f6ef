/* gst-earlyexit: base class of the classification elements.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/* clang-format off */
/**
 * SECTION:gstearlyexitclassifier
 * @title: GstEarlyExitClassifier
 * @short_description: base class of exitclassify and audioexitclassify
 *
 * An abstract #GstBaseTransform working in place: buffers pass through with
 * their data untouched, and results are added as the custom meta
 * `EarlyExitResultMeta` and posted as element messages. It owns what the two
 * classifiers share: the properties below, loading the classification model
 * (ResNet152, DenseNet201 or InceptionV3 with early exits,
 * docs/model-format.md section 6) and its labels at the READY to PAUSED
 * change, and through gst/ee-element.h what every earlyexit element shares:
 * the engine (nn/ee-engine.h) with the policies anytime, confidence, fixed
 * and full, the result fields, the statistics, QoS and the budget; and the
 * latency. A subclass fills the network input (a preprocessed video frame,
 * the features of an audio window) and says when to run.
 *
 * Properties (every subclass has them): model-file, labels-file, device,
 * precision, model-instance-id, threads, batch-size (READY only), deadline,
 * policy,
 * min-exit, max-exit, confidence-threshold, top-k, interval, post-messages,
 * unique-id, and the read-only stats and processing-latency; see each
 * element's page.
 */
/* clang-format on */

#include <math.h>
#include <string.h>

#include "gstearlyexitclassifier.h"
#include "ee-props.h"
#include "ee-backend-select.h"
#include "ee-result.h"

GST_DEBUG_CATEGORY_STATIC (gst_early_exit_classifier_debug);
#define GST_CAT_DEFAULT gst_early_exit_classifier_debug

static const EeElementInfo element_info = {
  .task = EE_TASK_CLASSIFY,
  .model_blurb = "Path of the classification model file (.safetensors), "
                 "loaded when the element goes from READY to PAUSED",
  .item = "frame or window",
  .stats_name = NULL, /* the factory's name + "-stats", set at init */
  .counted = "results",
  .confidence = TRUE,
  .offset = G_STRUCT_OFFSET (GstEarlyExitClassifier, ee),
};

#define gst_early_exit_classifier_parent_class parent_class
G_DEFINE_ABSTRACT_TYPE (GstEarlyExitClassifier, gst_early_exit_classifier,
                        GST_TYPE_BASE_TRANSFORM);

static void gst_early_exit_classifier_finalize (GObject *object);
static void processing_latency_get (GObject *object, gpointer at,
                                    GValue *value);
static void qos_set (GObject *object, gpointer at, const GValue *value);
static void qos_get (GObject *object, gpointer at, GValue *value);
static void deadline_changed (GObject *object, GParamSpec *pspec,
                              gpointer user_data);
static gboolean gst_early_exit_classifier_start (GstBaseTransform *trans);
static gboolean gst_early_exit_classifier_stop (GstBaseTransform *trans);
static gboolean gst_early_exit_classifier_query (GstBaseTransform *trans,
                                                 GstPadDirection direction,
                                                 GstQuery *query);
static gboolean gst_early_exit_classifier_src_event (GstBaseTransform *trans,
                                                     GstEvent *event);

static void
gst_early_exit_classifier_class_init (GstEarlyExitClassifierClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gobject_class->finalize = gst_early_exit_classifier_finalize;

  /* model-file, device, precision, model-instance-id, threads, deadline,
   * policy, min-exit, max-exit, confidence-threshold, interval,
   * post-messages, unique-id, labels-file, top-k, stats: gst/ee-element.h */
  ee_element_class_install (gobject_class, &element_info);

  /**
   * GstEarlyExitClassifier:processing-latency:
   *
   * The latency the element adds, in nanoseconds: the budget of one frame
   * or window (deadline, or the period when 0), which a buffer may be held
   * for. Also answered to latency queries (added to upstream's). 0 before
   * the element has started. (Not avcrowdcount's `latency`, GstAggregator's
   * writable extra wait for live sources.)
   */
  ee_props_add (
      gobject_class, 0,
      g_param_spec_uint64 (
          "processing-latency", "Processing Latency",
          "Latency the element adds, read only (in nanoseconds): the budget "
          "of one frame or audio window, added to upstream's in latency "
          "queries; 0 before the element has started",
          0, G_MAXUINT64, 0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS),
      NULL, processing_latency_get);

  /**
   * GstEarlyExitClassifier:qos:
   *
   * GstBaseTransform's property, with this element's meaning and default:
   * whether downstream lateness (QoS events) lowers the exit aimed for, as
   * on avcrowdcount. Buffers are never dropped. FALSE: QoS events are
   * passed upstream untouched.
   */
  ee_props_add (
      gobject_class, 0,
      g_param_spec_boolean (
          "qos", "QoS",
          "Lower the exit aimed for when downstream reports lateness (QoS "
          "events), as avcrowdcount does; buffers are never dropped",
          TRUE, G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS),
      qos_set, qos_get);

  GST_DEBUG_CATEGORY_INIT (gst_early_exit_classifier_debug,
                           "earlyexitclassifier", 0,
                           "Base class of the early-exit classifiers");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_early_exit_classifier_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_early_exit_classifier_stop);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_early_exit_classifier_query);
  trans_class->src_event
      = GST_DEBUG_FUNCPTR (gst_early_exit_classifier_src_event);
  klass->input_name = "frame";

  gst_type_mark_as_plugin_api (GST_TYPE_EARLY_EXIT_CLASSIFIER, 0);
}

static void
gst_early_exit_classifier_init (GstEarlyExitClassifier *self)
{
  GstBaseTransform *trans = GST_BASE_TRANSFORM (self);

  /* in place and not passthrough: the base class makes each buffer writable
   * (a shallow copy when shared) so the meta can be added; the data is never
   * written */
  gst_base_transform_set_in_place (trans, TRUE);
  gst_base_transform_set_passthrough (trans, FALSE);
  /* GstBaseTransform's qos property: whether downstream lateness lowers the
   * exit aimed for (the base class itself never drops: the QoS events stop
   * here) */
  gst_base_transform_set_qos_enabled (trans, TRUE);

  ee_element_init (&self->ee, GST_ELEMENT (self), &element_info);
  ee_props_init (G_OBJECT (self), GST_TYPE_EARLY_EXIT_CLASSIFIER);
  g_signal_connect (self, "notify::deadline", G_CALLBACK (deadline_changed),
                    NULL);
  self->latency = GST_CLOCK_TIME_NONE;
}

static void
gst_early_exit_classifier_finalize (GObject *object)
{
  ee_props_finalize (object, GST_TYPE_EARLY_EXIT_CLASSIFIER);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

/* Recomputes the latency (the budget of one period) while running; posts a
 * latency message when it changed, so that the pipeline asks again. */
static void
update_latency (GstEarlyExitClassifier *self)
{
  GstClockTime latency;
  gboolean changed;

  if (!ee_element_running (&self->ee))
    return;
  latency = ee_element_latency (&self->ee);
  GST_OBJECT_LOCK (self);
  changed = latency != self->latency;
  self->latency = latency;
  GST_OBJECT_UNLOCK (self);

  if (changed) {
    GST_INFO_OBJECT (self, "latency %" GST_TIME_FORMAT,
                     GST_TIME_ARGS (latency));
    gst_element_post_message (GST_ELEMENT (self),
                              gst_message_new_latency (GST_OBJECT (self)));
  }
}

static void
deadline_changed (GObject *object, GParamSpec *pspec, gpointer user_data)
{
  update_latency (GST_EARLY_EXIT_CLASSIFIER (object));
}

/* GstBaseTransform keeps qos; this element gives it its own meaning (the
 * class documentation) and default. */
static void
qos_set (GObject *object, gpointer at, const GValue *value)
{
  gst_base_transform_set_qos_enabled (GST_BASE_TRANSFORM (object),
                                      g_value_get_boolean (value));
}

static void
qos_get (GObject *object, gpointer at, GValue *value)
{
  g_value_set_boolean (
      value, gst_base_transform_is_qos_enabled (GST_BASE_TRANSFORM (object)));
}

static void
processing_latency_get (GObject *object, gpointer at, GValue *value)
{
  GstEarlyExitClassifier *self = GST_EARLY_EXIT_CLASSIFIER (object);

  GST_OBJECT_LOCK (self);
  g_value_set_uint64 (
      value, GST_CLOCK_TIME_IS_VALID (self->latency) ? self->latency : 0);
  GST_OBJECT_UNLOCK (self);
}

/* ------------------------------------------------------------ model */

static void
unload_model (GstEarlyExitClassifier *self)
{
  GstEarlyExitClassifierClass *klass
      = GST_EARLY_EXIT_CLASSIFIER_GET_CLASS (self);

  if (klass->model_unload)
    klass->model_unload (self);
  ee_element_stop (&self->ee);
  g_strfreev (self->labels);
  self->model = NULL;
  self->input = NULL;
  self->input_floats = 0;
  self->labels = NULL;
  self->n_classes = 0;
  GST_OBJECT_LOCK (self);
  self->latency = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (self);
}

/* Reads a labels file: one name per line, no empty line before the last
 * name. Posts an error and returns FALSE when it cannot be used. */
static gboolean
load_labels_file (GstEarlyExitClassifier *self, const gchar *path)
{
  gchar *contents = NULL, **lines;
  gsize size;
  GError *err = NULL;
  int n = 0;

  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    GST_ELEMENT_ERROR (
        self, RESOURCE, NOT_FOUND,
        ("Labels file \"%s\" does not exist. Check the labels-file property.",
         path),
        (NULL));
    return FALSE;
  }
  if (!g_file_get_contents (path, &contents, &size, &err)) {
    GST_ELEMENT_ERROR (
        self, RESOURCE, OPEN_READ,
        ("Could not read labels file \"%s\": %s", path, err->message), (NULL));
    g_clear_error (&err);
    return FALSE;
  }
  if (!g_utf8_validate (contents, size, NULL) || memchr (contents, 0, size)) {
    GST_ELEMENT_ERROR (
        self, RESOURCE, FAILED,
        ("Labels file \"%s\" is not UTF-8 text. Give one class name per "
         "line.",
         path),
        (NULL));
    g_free (contents);
    return FALSE;
  }
  lines = g_strsplit (contents, "\n", -1);
  g_free (contents);
  /* names end at the last non-empty line; "\r\n" endings are accepted */
  for (int i = 0; lines[i]; i++) {
    gsize len = strlen (lines[i]);
    if (len > 0 && lines[i][len - 1] == '\r')
      lines[i][len - 1] = '\0';
    if (lines[i][0])
      n = i + 1;
  }
  for (int i = 0; i < n; i++)
    if (!lines[i][0]) {
      GST_ELEMENT_ERROR (
          self, RESOURCE, FAILED,
          ("Labels file \"%s\": line %d is empty. Give one class name per "
           "line, in class order.",
           path, i + 1),
          (NULL));
      g_strfreev (lines);
      return FALSE;
    }
  if (n != self->n_classes) {
    GST_ELEMENT_ERROR (
        self, RESOURCE, FAILED,
        ("Labels file \"%s\" has %d labels, but model \"%s\" has %d classes. "
         "Give one class name per line, in class order.",
         path, n, ee_model_path (self->model), self->n_classes),
        (NULL));
    g_strfreev (lines);
    return FALSE;
  }
  g_free (lines[n]);
  lines[n] = NULL;
  for (int i = n + 1; lines[i]; i++)
    g_clear_pointer (&lines[i], g_free);
  self->labels = lines;
  return TRUE;
}

/* The labels: the file's, else the model's, else the class numbers. */
static gboolean
load_labels (GstEarlyExitClassifier *self, const gchar *labels_path)
{
  if (labels_path && *labels_path)
    return load_labels_file (self, labels_path);
  self->labels = g_new0 (gchar *, self->n_classes + 1);
  for (int i = 0; i < self->n_classes; i++) {
    const char *l = ee_model_label (self->model, i);
    self->labels[i] = l ? g_strdup (l) : g_strdup_printf ("%d", i);
  }
  return TRUE;
}

static gboolean
prepare_model (GstEarlyExitClassifier *self, const gchar *labels_path)
{
  GstEarlyExitClassifierClass *klass
      = GST_EARLY_EXIT_CLASSIFIER_GET_CLASS (self);
  EeRunner *runner;

  self->model = self->ee.model;
  runner = ee_model_runner (self->model);
  /* every exit gives one logit per class */
  self->n_classes
      = (int)ee_runner_segment (
            runner,
            ee_runner_exit_segment (runner, ee_runner_n_exits (runner) - 1))
            ->n_out;
  if (!load_labels (self, labels_path))
    return FALSE;

  ee_model_input_size (self->model, &self->in_width, &self->in_height);
  self->input_floats = (gsize)3 * self->in_width * self->in_height;
  self->input
      = ee_element_input_alloc (&self->ee, sizeof (float) * self->input_floats);
  if (!self->input)
    return FALSE;
  ee_stream_set_input (self->ee.stream, ee_model_image_input (self->model),
                       self->input);
  return !klass->model_ready || klass->model_ready (self);
}

/* Latches the READY-only properties and opens the engine; FALSE after
 * posting an error. */
static gboolean
gst_early_exit_classifier_start (GstBaseTransform *trans)
{
  GstEarlyExitClassifier *self = GST_EARLY_EXIT_CLASSIFIER (trans);
  gchar *labels;
  gboolean ok;

  GST_OBJECT_LOCK (self);
  labels = g_strdup (self->ee.prop_labels_file);
  GST_OBJECT_UNLOCK (self);

  ok = ee_element_start (&self->ee, GST_EARLY_EXIT_CLASSIFIER_MAX_EXITS)
       && prepare_model (self, labels);
  g_free (labels);
  if (!ok) {
    unload_model (self);
    return FALSE;
  }
  update_latency (self);
  return TRUE;
}

static gboolean
gst_early_exit_classifier_stop (GstBaseTransform *trans)
{
  unload_model (GST_EARLY_EXIT_CLASSIFIER (trans));
  return TRUE;
}

/* Latency: upstream's plus the budget a buffer may be held for. */
static gboolean
gst_early_exit_classifier_query (GstBaseTransform *trans,
                                 GstPadDirection direction, GstQuery *query)
{
  GstEarlyExitClassifier *self = GST_EARLY_EXIT_CLASSIFIER (trans);

  if (direction == GST_PAD_SRC && GST_QUERY_TYPE (query) == GST_QUERY_LATENCY) {
    gboolean live;
    GstClockTime min, max, ours;

    if (!gst_pad_peer_query (GST_BASE_TRANSFORM_SINK_PAD (trans), query))
      return FALSE;
    gst_query_parse_latency (query, &live, &min, &max);
    GST_OBJECT_LOCK (self);
    ours = GST_CLOCK_TIME_IS_VALID (self->latency) ? self->latency : 0;
    GST_OBJECT_UNLOCK (self);
    /* saturating: a deadline of no limit is a budget of 2^63 - 1 ns */
    min = min > G_MAXUINT64 - 1 - ours ? G_MAXUINT64 - 1 : min + ours;
    if (GST_CLOCK_TIME_IS_VALID (max))
      max = max >= G_MAXUINT64 - 1 - ours ? GST_CLOCK_TIME_NONE : max + ours;
    GST_DEBUG_OBJECT (self, "latency: adding %" GST_TIME_FORMAT,
                      GST_TIME_ARGS (ours));
    gst_query_set_latency (query, live, min, max);
    return TRUE;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)
      ->query (trans, direction, query);
}

/* With qos=true (the default), downstream lateness lowers the exit aimed for
 * (as avcrowdcount does) instead of dropping buffers; the event is not
 * forwarded upstream, where it would make elements drop frames. With
 * qos=false the element ignores it and passes it on. */
static gboolean
gst_early_exit_classifier_src_event (GstBaseTransform *trans, GstEvent *event)
{
  GstEarlyExitClassifier *self = GST_EARLY_EXIT_CLASSIFIER (trans);

  if (GST_EVENT_TYPE (event) == GST_EVENT_QOS
      && gst_base_transform_is_qos_enabled (trans)) {
    ee_element_qos (&self->ee, event);
    gst_event_unref (event);
    return TRUE;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)->src_event (trans, event);
}

/* ------------------------------------------------------------ streaming */

GstClockTime
gst_early_exit_classifier_budget (GstEarlyExitClassifier *self,
                                  GstClockTime natural)
{
  return ee_element_budget (&self->ee, natural);
}

void
gst_early_exit_classifier_set_period (GstEarlyExitClassifier *self,
                                      GstClockTime period)
{
  ee_element_set_period (&self->ee, period);
  update_latency (self);
}

gboolean
gst_early_exit_classifier_take_turn (GstEarlyExitClassifier *self)
{
  return ee_element_take_turn (&self->ee);
}

void
gst_early_exit_classifier_reset (GstEarlyExitClassifier *self)
{
  ee_element_reset (&self->ee);
}

/* log-sum-exp of the logits, shifted by their maximum so nothing overflows:
 * the softmax probability of class i is exp (logits[i] - *top - lse). */
static double
log_sum_exp (const float *logits, int64_t n, float *top)
{
  float m = logits[0];
  double sum = 0.0;

  for (int64_t i = 1; i < n; i++)
    m = MAX (m, logits[i]);
  for (int64_t i = 0; i < n; i++)
    sum += exp ((double)logits[i] - m);
  *top = m;
  return log (sum);
}

/* Sets label, label-id, confidence and the top-k arrays from the logits. */
static void
set_classification (GstEarlyExitClassifier *self, GstStructure *s,
                    const float *logits, int64_t n, guint top_k)
{
  float top;
  double lse = log_sum_exp (logits, n, &top);
  GValue labels = G_VALUE_INIT, ids = G_VALUE_INIT, conf = G_VALUE_INIT;
  GValue v = G_VALUE_INIT;
  guint k = (guint)MIN ((int64_t)top_k, n);
  int *order = g_newa (int, MAX (k, 1));
  int best = 0;

  for (int64_t i = 1; i < n; i++)
    if (logits[i] > logits[best])
      best = (int)i;
  gst_structure_set (s, "label", G_TYPE_STRING,
                     best < self->n_classes ? self->labels[best] : "?",
                     "label-id", G_TYPE_INT, best, "confidence", G_TYPE_DOUBLE,
                     exp ((double)logits[best] - top - lse), NULL);
  if (k == 0)
    return;

  /* the k largest, most probable first (ties: the lower class first), by
   * insertion into the sorted list kept so far */
  for (int64_t i = 0, have = 0; i < n; i++) {
    int64_t j = MIN (have, (int64_t)k - 1);
    if (have == (int64_t)k && logits[i] <= logits[order[k - 1]])
      continue;
    for (; j > 0 && logits[order[j - 1]] < logits[i]; j--)
      order[j] = order[j - 1];
    order[j] = (int)i;
    have = MIN (have + 1, (int64_t)k);
  }
  gst_value_array_init (&labels, k);
  gst_value_array_init (&ids, k);
  gst_value_array_init (&conf, k);
  for (guint j = 0; j < k; j++) {
    g_value_init (&v, G_TYPE_STRING);
    g_value_set_string (&v, order[j] < self->n_classes ? self->labels[order[j]]
                                                       : "?");
    gst_value_array_append_value (&labels, &v);
    g_value_unset (&v);
    g_value_init (&v, G_TYPE_INT);
    g_value_set_int (&v, order[j]);
    gst_value_array_append_value (&ids, &v);
    g_value_unset (&v);
    g_value_init (&v, G_TYPE_DOUBLE);
    g_value_set_double (&v, exp ((double)logits[order[j]] - top - lse));
    gst_value_array_append_value (&conf, &v);
    g_value_unset (&v);
  }
  gst_structure_take_value (s, "top-labels", &labels);
  gst_structure_take_value (s, "top-label-ids", &ids);
  gst_structure_take_value (s, "top-confidences", &conf);
}

GstStructure *
gst_early_exit_classifier_classify (GstEarlyExitClassifier *self,
                                    gint64 processable, GstClockTime budget,
                                    GstClockTime pts, GstClockTime duration)
{
  EeFrameResult res;
  gdouble threshold;
  GstStructure *result;
  guint top_k;
  int n = self->ee.n_exits;
  guint32 all = (n >= 32) ? G_MAXUINT32 : ((1u << n) - 1);

  GST_OBJECT_LOCK (self);
  threshold = self->ee.confidence_threshold;
  top_k = self->ee.top_k;
  GST_OBJECT_UNLOCK (self);

  if (!ee_element_run (&self->ee, all, processable, budget,
                       &GST_BASE_TRANSFORM (self)->segment, pts, duration,
                       ee_model_confident, &threshold, &res))
    return NULL;
  if (res.carried)
    return ee_element_carry (&self->ee, &res, processable, budget);

  result = ee_element_result_new ("label");
  set_classification (self, result, res.value, res.n_out, top_k);
  ee_element_result_finish (&self->ee, result, &res, processable, budget);
  GST_LOG_OBJECT (
      self, "%s: exit %s: %s (%.3f), %" G_GINT64_FORMAT " us%s%s",
      GST_EARLY_EXIT_CLASSIFIER_GET_CLASS (self)->input_name,
      self->ee.exit_names[res.exit], gst_structure_get_string (result, "label"),
      earlyexit_result_get_confidence (result),
      (res.published - processable) / 1000,
      res.stopped_early ? " (confident)" : "", res.missed ? " (missed)" : "");
  return result;
}

GstStructure *
gst_early_exit_classifier_carry (GstEarlyExitClassifier *self)
{
  return ee_element_carry (&self->ee, NULL, 0, 0);
}

void
gst_early_exit_classifier_publish (GstEarlyExitClassifier *self,
                                   GstBuffer *buffer, GstClockTime pts,
                                   GstClockTime duration, GstStructure *result)
{
  ee_element_publish (&self->ee, buffer, &GST_BASE_TRANSFORM (self)->segment,
                      pts, duration, result);
}
