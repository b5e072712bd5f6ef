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
 * change, the deadline scheduler (gst/ee-deadline.h) with the policies
 * anytime, confidence, fixed and full, the result fields, the statistics and
 * the latency. A subclass fills the network input (a preprocessed video frame,
 * the features of an audio window) and says when to run.
 *
 * Properties (every subclass has them): model-file, labels-file, device,
 * precision (READY only), deadline, policy, min-exit, max-exit,
 * confidence-threshold, top-k, interval, post-messages, unique-id, and the
 * read-only stats and latency; see each element's page.
 */
/* clang-format on */

#include <math.h>
#include <string.h>

#include "gstearlyexitclassifier.h"
#include "ee-backend-select.h"
#include "ee-gstmodel.h"
#include "ee-result.h"

GST_DEBUG_CATEGORY_STATIC (gst_early_exit_classifier_debug);
#define GST_CAT_DEFAULT gst_early_exit_classifier_debug

/* Budget when deadline=0 and no frame duration or hop is known. */
#define FALLBACK_PERIOD (GST_SECOND / 25)
/* Warm-up runs of the whole model at start-up. */
#define WARM_UP_RUNS 2

#define DEFAULT_MODEL_FILE NULL
#define DEFAULT_LABELS_FILE NULL
#define DEFAULT_DEVICE "auto"
#define DEFAULT_PRECISION GST_EARLY_EXIT_CLASSIFIER_PRECISION_FP32
#define DEFAULT_DEADLINE 0
#define DEFAULT_POLICY GST_EARLY_EXIT_CLASSIFIER_POLICY_ANYTIME
#define DEFAULT_MIN_EXIT -1
#define DEFAULT_MAX_EXIT -1
#define DEFAULT_CONFIDENCE_THRESHOLD 0.9
#define DEFAULT_TOP_K 5
#define MAX_TOP_K 1000
#define DEFAULT_INTERVAL 1
#define DEFAULT_POST_MESSAGES TRUE
#define DEFAULT_UNIQUE_ID 0

enum
{
  PROP_0,
  PROP_MODEL_FILE,
  PROP_LABELS_FILE,
  PROP_DEVICE,
  PROP_PRECISION,
  PROP_DEADLINE,
  PROP_POLICY,
  PROP_MIN_EXIT,
  PROP_MAX_EXIT,
  PROP_CONFIDENCE_THRESHOLD,
  PROP_TOP_K,
  PROP_INTERVAL,
  PROP_POST_MESSAGES,
  PROP_UNIQUE_ID,
  PROP_STATS,
  PROP_LATENCY,
};

#define GST_TYPE_EARLY_EXIT_CLASSIFIER_POLICY                                  \
  (gst_early_exit_classifier_policy_get_type ())
static GType
gst_early_exit_classifier_policy_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_EARLY_EXIT_CLASSIFIER_POLICY_ANYTIME,
      "Newest exit finished by the deadline", "anytime" },
    { GST_EARLY_EXIT_CLASSIFIER_POLICY_CONFIDENCE,
      "First exit reaching confidence-threshold (else as anytime)",
      "confidence" },
    { GST_EARLY_EXIT_CLASSIFIER_POLICY_FIXED, "Always exit max-exit", "fixed" },
    { GST_EARLY_EXIT_CLASSIFIER_POLICY_FULL,
      "Every exit up to max-exit, deadline ignored", "full" },
    { 0, NULL, NULL },
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (
        &type, g_enum_register_static ("GstEarlyExitClassifierPolicy", values));
  return type;
}

#define GST_TYPE_EARLY_EXIT_CLASSIFIER_PRECISION                               \
  (gst_early_exit_classifier_precision_get_type ())
static GType
gst_early_exit_classifier_precision_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_EARLY_EXIT_CLASSIFIER_PRECISION_FP32, "32-bit float", "fp32" },
    { GST_EARLY_EXIT_CLASSIFIER_PRECISION_TF32, "fp32 with TF32 tensor cores",
      "tf32" },
    { GST_EARLY_EXIT_CLASSIFIER_PRECISION_FP16, "16-bit float", "fp16" },
    { GST_EARLY_EXIT_CLASSIFIER_PRECISION_BF16, "bfloat16", "bf16" },
    { 0, NULL, NULL },
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static (
                                  "GstEarlyExitClassifierPrecision", values));
  return type;
}

#define gst_early_exit_classifier_parent_class parent_class
G_DEFINE_ABSTRACT_TYPE (GstEarlyExitClassifier, gst_early_exit_classifier,
                        GST_TYPE_BASE_TRANSFORM);

static void gst_early_exit_classifier_set_property (GObject *object,
                                                    guint prop_id,
                                                    const GValue *value,
                                                    GParamSpec *pspec);
static void gst_early_exit_classifier_get_property (GObject *object,
                                                    guint prop_id,
                                                    GValue *value,
                                                    GParamSpec *pspec);
static void gst_early_exit_classifier_finalize (GObject *object);
static gboolean gst_early_exit_classifier_start (GstBaseTransform *trans);
static gboolean gst_early_exit_classifier_stop (GstBaseTransform *trans);
static gboolean gst_early_exit_classifier_query (GstBaseTransform *trans,
                                                 GstPadDirection direction,
                                                 GstQuery *query);

static void
gst_early_exit_classifier_class_init (GstEarlyExitClassifierClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);

  gobject_class->set_property = gst_early_exit_classifier_set_property;
  gobject_class->get_property = gst_early_exit_classifier_get_property;
  gobject_class->finalize = gst_early_exit_classifier_finalize;

  /**
   * GstEarlyExitClassifier:model-file:
   *
   * The classification model file (.safetensors, docs/model-format.md
   * section 6), read at the READY to PAUSED change.
   */
  g_object_class_install_property (
      gobject_class, PROP_MODEL_FILE,
      g_param_spec_string (
          "model-file", "Model File",
          "Path of the classification model file (.safetensors: ResNet152, "
          "DenseNet201 or InceptionV3 with exits), loaded when the element "
          "goes from READY to PAUSED",
          DEFAULT_MODEL_FILE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_READY));

  /**
   * GstEarlyExitClassifier:labels-file:
   *
   * A text file of class names, one per line in class order (UTF-8, empty
   * lines only at the end), used in place of the model file's labels. Its
   * number of lines must equal the model's number of classes. NULL: the
   * model file's labels, else the class numbers.
   */
  g_object_class_install_property (
      gobject_class, PROP_LABELS_FILE,
      g_param_spec_string (
          "labels-file", "Labels File",
          "Text file with one class name per line, in class order, replacing "
          "the model file's labels (NULL: the model's labels, else class "
          "numbers)",
          DEFAULT_LABELS_FILE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_READY));

  /**
   * GstEarlyExitClassifier:device:
   *
   * Where inference runs: "auto", "cpu", "cuda" or "cuda:N". auto takes CUDA
   * device 0 when the CUDA backend loads and finds a device, else the CPU.
   */
  g_object_class_install_property (
      gobject_class, PROP_DEVICE,
      g_param_spec_string (
          "device", "Device",
          "Where inference runs: auto, cpu, cuda or cuda:N (auto picks the "
          "best backend built in)",
          DEFAULT_DEVICE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_READY));

  /**
   * GstEarlyExitClassifier:precision:
   *
   * Arithmetic precision of the network: fp32 on every backend; bf16 on the
   * CPU (oneDNN) and CUDA backends; tf32 and fp16 on CUDA only. Asking a
   * backend for one it lacks is an error.
   */
  g_object_class_install_property (
      gobject_class, PROP_PRECISION,
      g_param_spec_enum (
          "precision", "Precision",
          "Arithmetic precision of the network (fp32 everywhere, bf16 on CPU "
          "and CUDA, tf32 and fp16 on CUDA)",
          GST_TYPE_EARLY_EXIT_CLASSIFIER_PRECISION, DEFAULT_PRECISION,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_READY));

  /**
   * GstEarlyExitClassifier:deadline:
   *
   * Time budget per frame or window in nanoseconds, from the moment it can
   * be processed to its result; 0 means its natural period (the frame
   * duration; the hop for audio).
   */
  g_object_class_install_property (
      gobject_class, PROP_DEADLINE,
      g_param_spec_uint64 (
          "deadline", "Deadline",
          "Time budget per frame or audio window from being processable to "
          "its result (in nanoseconds; 0 = the frame duration, or the hop)",
          0, G_MAXUINT64, DEFAULT_DEADLINE,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstEarlyExitClassifier:policy:
   *
   * Which exit gives the result: anytime (the newest finished by the
   * deadline), confidence (as anytime, but stopping at the first exit whose
   * top softmax probability is at least confidence-threshold), fixed (always
   * max-exit) or full (every exit up to max-exit, deadline ignored).
   */
  g_object_class_install_property (
      gobject_class, PROP_POLICY,
      g_param_spec_enum (
          "policy", "Policy",
          "Which exit gives the result: anytime (newest finished by the "
          "deadline), confidence (first exit reaching confidence-threshold, "
          "within the deadline), fixed (always max-exit), full (all exits, "
          "deadline ignored)",
          GST_TYPE_EARLY_EXIT_CLASSIFIER_POLICY, DEFAULT_POLICY,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstEarlyExitClassifier:min-exit:
   *
   * Earliest exit (index in anytime order, 0 = first) that may give a
   * result; earlier exits are not run. It always runs, even past the
   * deadline. -1: none.
   */
  g_object_class_install_property (
      gobject_class, PROP_MIN_EXIT,
      g_param_spec_int (
          "min-exit", "Minimum Exit",
          "Earliest exit (index, 0 = first) allowed to give a result; it "
          "always runs, even past the deadline (-1 = no minimum)",
          -1, GST_EARLY_EXIT_CLASSIFIER_MAX_EXITS - 1, DEFAULT_MIN_EXIT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstEarlyExitClassifier:max-exit:
   *
   * Last exit (index in anytime order) that may run; with policy=fixed the
   * exit always taken. -1: the model's last exit ("final").
   */
  g_object_class_install_property (
      gobject_class, PROP_MAX_EXIT,
      g_param_spec_int (
          "max-exit", "Maximum Exit",
          "Last exit (index, 0 = first) allowed to run, the exit taken with "
          "policy=fixed (-1 = the last exit)",
          -1, GST_EARLY_EXIT_CLASSIFIER_MAX_EXITS - 1, DEFAULT_MAX_EXIT,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstEarlyExitClassifier:confidence-threshold:
   *
   * policy=confidence: an exit whose top class has a softmax probability of
   * at least this (0 to 1) ends the run. 0 stops at the first exit run; 1
   * never stops early (a probability that rounds to 1 does not count), so
   * the exits run on to max-exit within the deadline, as with anytime.
   */
  g_object_class_install_property (
      gobject_class, PROP_CONFIDENCE_THRESHOLD,
      g_param_spec_double (
          "confidence-threshold", "Confidence Threshold",
          "With policy=confidence, stop at the first exit whose top softmax "
          "probability is at least this (0 = first exit, 1 = never early)",
          0.0, 1.0, DEFAULT_CONFIDENCE_THRESHOLD,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstEarlyExitClassifier:top-k:
   *
   * Number of classes in the result's top-k list (parallel arrays
   * `top-labels`, `top-label-ids`, `top-confidences`, most probable first;
   * at most the number of classes). 0 leaves the list out.
   */
  g_object_class_install_property (
      gobject_class, PROP_TOP_K,
      g_param_spec_uint (
          "top-k", "Top K",
          "Number of most probable classes listed in every result "
          "(top-labels, top-label-ids, top-confidences; 0 = no list)",
          0, MAX_TOP_K, DEFAULT_TOP_K,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstEarlyExitClassifier:interval:
   *
   * Run the network on every Nth frame or window; the others carry the last
   * result with `fresh` FALSE.
   */
  g_object_class_install_property (
      gobject_class, PROP_INTERVAL,
      g_param_spec_uint (
          "interval", "Interval",
          "Run the network on every Nth frame or audio window; the others "
          "carry the last result marked not fresh",
          1, G_MAXUINT, DEFAULT_INTERVAL,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstEarlyExitClassifier:post-messages:
   *
   * Post an element message with every result.
   */
  g_object_class_install_property (
      gobject_class, PROP_POST_MESSAGES,
      g_param_spec_boolean (
          "post-messages", "Post Messages",
          "Post an element message with the result of every frame or audio "
          "window",
          DEFAULT_POST_MESSAGES,
          G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
              | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstEarlyExitClassifier:unique-id:
   *
   * Copied into every result, to tell several elements' results apart.
   */
  g_object_class_install_property (
      gobject_class, PROP_UNIQUE_ID,
      g_param_spec_uint ("unique-id", "Unique ID",
                         "Copied into every result to tell elements apart", 0,
                         G_MAXUINT, DEFAULT_UNIQUE_ID,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
                             | GST_PARAM_MUTABLE_PLAYING));

  /**
   * GstEarlyExitClassifier:stats:
   *
   * Statistics since the last READY to PAUSED change, a structure named
   * `<element>-stats` with: `results` (guint64, frames or windows given a
   * result), `fresh-results` (guint64, those the network ran on),
   * `deadline-misses` (guint64), `confident-stops` (guint64, runs that
   * policy=confidence ended early), and per exit, in anytime order, arrays
   * `exit-names` (strings), `exits-taken` (guint64, results given by the
   * exit), `exit-runs` (guint64, runs the exit finished in),
   * `mean-inference-time` (guint64 ns from being processable to the exit's
   * result, over its runs) and `estimated-time` (guint64 ns, the scheduler's
   * current estimate of the exit from scratch).
   */
  g_object_class_install_property (
      gobject_class, PROP_STATS,
      g_param_spec_boxed (
          "stats", "Statistics",
          "Statistics since the element started: results, fresh-results, "
          "deadline-misses, confident-stops and, per exit, exit-names, "
          "exits-taken, exit-runs, mean-inference-time and estimated-time "
          "(times in nanoseconds)",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  /**
   * GstEarlyExitClassifier:latency:
   *
   * The latency the element adds, in nanoseconds: the budget of one frame
   * or window (deadline, or the period when 0), which a buffer may be held
   * for. Also answered to latency queries (added to upstream's). 0 before
   * the element has started.
   */
  g_object_class_install_property (
      gobject_class, PROP_LATENCY,
      g_param_spec_uint64 (
          "latency", "Latency",
          "Latency the element adds (in nanoseconds): the budget of one frame "
          "or audio window; 0 before the element has started",
          0, G_MAXUINT64, 0, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS));

  GST_DEBUG_CATEGORY_INIT (gst_early_exit_classifier_debug,
                           "earlyexitclassifier", 0,
                           "Base class of the early-exit classifiers");

  trans_class->start = GST_DEBUG_FUNCPTR (gst_early_exit_classifier_start);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_early_exit_classifier_stop);
  trans_class->query = GST_DEBUG_FUNCPTR (gst_early_exit_classifier_query);
  klass->input_name = "frame";

  gst_type_mark_as_plugin_api (GST_TYPE_EARLY_EXIT_CLASSIFIER, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_EARLY_EXIT_CLASSIFIER_POLICY, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_EARLY_EXIT_CLASSIFIER_PRECISION, 0);
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

  self->prop_model_file = g_strdup (DEFAULT_MODEL_FILE);
  self->prop_labels_file = g_strdup (DEFAULT_LABELS_FILE);
  self->prop_device = g_strdup (DEFAULT_DEVICE);
  self->prop_precision = DEFAULT_PRECISION;
  self->deadline = DEFAULT_DEADLINE;
  self->policy = DEFAULT_POLICY;
  self->min_exit = DEFAULT_MIN_EXIT;
  self->max_exit = DEFAULT_MAX_EXIT;
  self->confidence_threshold = DEFAULT_CONFIDENCE_THRESHOLD;
  self->top_k = DEFAULT_TOP_K;
  self->interval = DEFAULT_INTERVAL;
  self->post_messages = DEFAULT_POST_MESSAGES;
  self->unique_id = DEFAULT_UNIQUE_ID;

  self->period = GST_CLOCK_TIME_NONE;
  self->latency = GST_CLOCK_TIME_NONE;
}

static void
gst_early_exit_classifier_finalize (GObject *object)
{
  GstEarlyExitClassifier *self = GST_EARLY_EXIT_CLASSIFIER (object);

  g_free (self->prop_model_file);
  g_free (self->prop_labels_file);
  g_free (self->prop_device);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

/* Called with the object lock. */
static GstClockTime
budget_locked (GstEarlyExitClassifier *self, GstClockTime natural)
{
  if (self->deadline > 0)
    return self->deadline;
  if (GST_CLOCK_TIME_IS_VALID (natural) && natural > 0)
    return natural;
  if (GST_CLOCK_TIME_IS_VALID (self->period) && self->period > 0)
    return self->period;
  return FALLBACK_PERIOD;
}

/* Recomputes the latency (the budget of one period) while running; posts a
 * latency message when it changed, so that the pipeline asks again. */
static void
update_latency (GstEarlyExitClassifier *self)
{
  GstClockTime latency;
  gboolean changed;

  GST_OBJECT_LOCK (self);
  if (!self->model) {
    GST_OBJECT_UNLOCK (self);
    return;
  }
  latency = budget_locked (self, GST_CLOCK_TIME_NONE);
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
gst_early_exit_classifier_set_property (GObject *object, guint prop_id,
                                        const GValue *value, GParamSpec *pspec)
{
  GstEarlyExitClassifier *self = GST_EARLY_EXIT_CLASSIFIER (object);
  gboolean latency_changed = FALSE;

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL_FILE:
      g_free (self->prop_model_file);
      self->prop_model_file = g_value_dup_string (value);
      break;
    case PROP_LABELS_FILE:
      g_free (self->prop_labels_file);
      self->prop_labels_file = g_value_dup_string (value);
      break;
    case PROP_DEVICE:
      g_free (self->prop_device);
      self->prop_device = g_value_dup_string (value);
      break;
    case PROP_PRECISION:
      self->prop_precision = g_value_get_enum (value);
      break;
    case PROP_DEADLINE:
      self->deadline = g_value_get_uint64 (value);
      latency_changed = TRUE;
      break;
    case PROP_POLICY:
      self->policy = g_value_get_enum (value);
      break;
    case PROP_MIN_EXIT:
      self->min_exit = g_value_get_int (value);
      break;
    case PROP_MAX_EXIT:
      self->max_exit = g_value_get_int (value);
      break;
    case PROP_CONFIDENCE_THRESHOLD:
      self->confidence_threshold = g_value_get_double (value);
      break;
    case PROP_TOP_K:
      self->top_k = g_value_get_uint (value);
      break;
    case PROP_INTERVAL:
      self->interval = g_value_get_uint (value);
      break;
    case PROP_POST_MESSAGES:
      self->post_messages = g_value_get_boolean (value);
      break;
    case PROP_UNIQUE_ID:
      self->unique_id = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);

  if (latency_changed)
    update_latency (self);
}

/* Called with the object lock. */
static GstStructure *
stats_new_locked (GstEarlyExitClassifier *self)
{
  GValue names = G_VALUE_INIT, taken = G_VALUE_INIT, runs = G_VALUE_INIT;
  GValue mean = G_VALUE_INIT, est = G_VALUE_INIT, v = G_VALUE_INIT;
  GstElementFactory *factory = gst_element_get_factory (GST_ELEMENT (self));
  gchar *name = g_strdup_printf ("%s-stats", factory ? GST_OBJECT_NAME (factory)
                                                     : "earlyexitclassifier");
  GstStructure *s;

  gst_value_array_init (&names, self->n_exits);
  gst_value_array_init (&taken, self->n_exits);
  gst_value_array_init (&runs, self->n_exits);
  gst_value_array_init (&mean, self->n_exits);
  gst_value_array_init (&est, self->n_exits);
  for (int i = 0; i < self->n_exits; i++) {
    g_value_init (&v, G_TYPE_STRING);
    g_value_set_string (&v, self->exit_names[i]);
    gst_value_array_append_value (&names, &v);
    g_value_unset (&v);
    g_value_init (&v, G_TYPE_UINT64);
    g_value_set_uint64 (&v, self->stat_taken[i]);
    gst_value_array_append_value (&taken, &v);
    g_value_set_uint64 (&v, self->stat_runs[i]);
    gst_value_array_append_value (&runs, &v);
    g_value_set_uint64 (
        &v, self->stat_runs[i] ? self->stat_time[i] / self->stat_runs[i] : 0);
    gst_value_array_append_value (&mean, &v);
    g_value_set_uint64 (&v, self->stat_estimate[i]);
    gst_value_array_append_value (&est, &v);
    g_value_unset (&v);
  }
  s = gst_structure_new (name, "results", G_TYPE_UINT64, self->stat_items,
                         "fresh-results", G_TYPE_UINT64, self->stat_fresh,
                         "deadline-misses", G_TYPE_UINT64, self->stat_misses,
                         "confident-stops", G_TYPE_UINT64, self->stat_confident,
                         NULL);
  gst_structure_take_value (s, "exit-names", &names);
  gst_structure_take_value (s, "exits-taken", &taken);
  gst_structure_take_value (s, "exit-runs", &runs);
  gst_structure_take_value (s, "mean-inference-time", &mean);
  gst_structure_take_value (s, "estimated-time", &est);
  g_free (name);
  return s;
}

static void
gst_early_exit_classifier_get_property (GObject *object, guint prop_id,
                                        GValue *value, GParamSpec *pspec)
{
  GstEarlyExitClassifier *self = GST_EARLY_EXIT_CLASSIFIER (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_MODEL_FILE:
      g_value_set_string (value, self->prop_model_file);
      break;
    case PROP_LABELS_FILE:
      g_value_set_string (value, self->prop_labels_file);
      break;
    case PROP_DEVICE:
      g_value_set_string (value, self->prop_device);
      break;
    case PROP_PRECISION:
      g_value_set_enum (value, self->prop_precision);
      break;
    case PROP_DEADLINE:
      g_value_set_uint64 (value, self->deadline);
      break;
    case PROP_POLICY:
      g_value_set_enum (value, self->policy);
      break;
    case PROP_MIN_EXIT:
      g_value_set_int (value, self->min_exit);
      break;
    case PROP_MAX_EXIT:
      g_value_set_int (value, self->max_exit);
      break;
    case PROP_CONFIDENCE_THRESHOLD:
      g_value_set_double (value, self->confidence_threshold);
      break;
    case PROP_TOP_K:
      g_value_set_uint (value, self->top_k);
      break;
    case PROP_INTERVAL:
      g_value_set_uint (value, self->interval);
      break;
    case PROP_POST_MESSAGES:
      g_value_set_boolean (value, self->post_messages);
      break;
    case PROP_UNIQUE_ID:
      g_value_set_uint (value, self->unique_id);
      break;
    case PROP_STATS:
      g_value_take_boxed (value, stats_new_locked (self));
      break;
    case PROP_LATENCY:
      g_value_set_uint64 (
          value, GST_CLOCK_TIME_IS_VALID (self->latency) ? self->latency : 0);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
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
  ee_deadline_free (self->sched);
  ee_model_free (self->model);
  if (self->backend && self->input)
    ee_backend_host_free (self->backend, self->input);
  ee_backend_free (self->backend);
  g_strfreev (self->labels);
  GST_OBJECT_LOCK (self);
  g_strfreev (self->exit_names);
  self->sched = NULL;
  self->model = NULL;
  self->backend = NULL;
  self->input = NULL;
  self->input_floats = 0;
  self->labels = NULL;
  self->exit_names = NULL;
  self->n_exits = 0;
  self->n_classes = 0;
  self->latency = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (self);
  gst_early_exit_classifier_reset (self);
}

/* device: "auto", "cpu", "cuda", "cuda:N" (nn/ee-backend-select.h). */
static gboolean
open_backend (GstEarlyExitClassifier *self, const gchar *device,
              GstEarlyExitClassifierPrecision precision)
{
  GError *err = NULL;
  EePrecision ep;
  GEnumValue *nick;

  switch (precision) {
    case GST_EARLY_EXIT_CLASSIFIER_PRECISION_TF32:
      ep = EE_PRECISION_TF32;
      break;
    case GST_EARLY_EXIT_CLASSIFIER_PRECISION_FP16:
      ep = EE_PRECISION_FP16;
      break;
    case GST_EARLY_EXIT_CLASSIFIER_PRECISION_BF16:
      ep = EE_PRECISION_BF16;
      break;
    default:
      ep = EE_PRECISION_FP32;
      break;
  }
  if (!device || !*device)
    device = "auto";

  self->backend = ee_backend_new_full (device, 0, ep, &err);
  if (self->backend) {
    GST_INFO_OBJECT (self, "device=%s: running on the %s backend", device,
                     self->backend->vt->name);
    return TRUE;
  }

  nick = g_enum_get_value (
      g_type_class_peek (GST_TYPE_EARLY_EXIT_CLASSIFIER_PRECISION), precision);
  if (g_error_matches (err, EE_ERROR, EE_ERROR_ARGUMENT))
    GST_ELEMENT_ERROR (
        self, RESOURCE, SETTINGS,
        ("Unknown device \"%s\". Use auto, cpu, cuda or cuda:N.", device),
        ("%s", err->message));
  else if (g_str_has_prefix (device, "cuda"))
    GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND,
                       ("The CUDA backend is not available (device=%s): %s. "
                        "Use device=cpu or device=auto.",
                        device, err->message),
                       (NULL));
  else if (g_error_matches (err, EE_ERROR, EE_ERROR_UNSUPPORTED))
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS,
                       ("Precision %s is not available on the CPU backend. "
                        "Use precision=fp32 (or bf16).",
                        nick ? nick->value_nick : "?"),
                       ("%s", err->message));
  else
    GST_ELEMENT_ERROR (
        self, LIBRARY, INIT,
        ("Could not start the inference backend (device=%s).", device),
        ("%s", err->message));
  g_clear_error (&err);
  return FALSE;
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

/* Warm-up input: zeros. */
static gboolean
upload_blank (gpointer user_data, GError **error)
{
  GstEarlyExitClassifier *self = user_data;

  return ee_model_set_image (self->model, self->input, error);
}

static gboolean
load_model (GstEarlyExitClassifier *self, const gchar *path,
            const gchar *labels_path)
{
  GstEarlyExitClassifierClass *klass
      = GST_EARLY_EXIT_CLASSIFIER_GET_CLASS (self);
  GError *err = NULL;
  EeRunner *runner;
  int n_exits;
  gchar **names;

  self->model = ee_gst_model_load (
      GST_ELEMENT (self), self->backend, path, EE_TASK_CLASSIFY,
      GST_EARLY_EXIT_CLASSIFIER_MAX_EXITS, &names, &n_exits);
  if (!self->model)
    return FALSE;
  runner = ee_model_runner (self->model);
  /* the stats getter reads them from other threads */
  GST_OBJECT_LOCK (self);
  self->n_exits = n_exits;
  self->exit_names = names;
  GST_OBJECT_UNLOCK (self);
  /* every exit gives one logit per class */
  self->n_classes = (int)ee_runner_result (runner, n_exits - 1)->n_out;
  if (!load_labels (self, labels_path))
    return FALSE;

  ee_model_input_size (self->model, &self->in_width, &self->in_height);
  self->input_floats = (gsize)3 * self->in_width * self->in_height;
  /* page-locked on CUDA, so uploads run asynchronously */
  self->input = ee_backend_host_alloc (
      self->backend, sizeof (float) * self->input_floats, &err);
  if (!self->input) {
    GST_ELEMENT_ERROR (self, RESOURCE, NO_SPACE_LEFT,
                       ("Not enough memory for the model input."),
                       ("%s", err->message));
    g_clear_error (&err);
    return FALSE;
  }
  memset (self->input, 0, sizeof (float) * self->input_floats);
  if (klass->model_ready && !klass->model_ready (self))
    return FALSE;

  /* measure every segment on a blank input before the first frame */
  self->sched = ee_deadline_new (runner, !ee_backend_is_cuda (self->backend));
  if (!ee_deadline_warm_up (self->sched, WARM_UP_RUNS, upload_blank, self,
                            &err)) {
    GST_ELEMENT_ERROR (self, LIBRARY, FAILED,
                       ("Could not run model \"%s\".", path),
                       ("%s", err->message));
    g_clear_error (&err);
    return FALSE;
  }
  GST_OBJECT_LOCK (self);
  for (int i = 0; i < self->n_exits; i++)
    self->stat_estimate[i] = ee_deadline_exit_cost (self->sched, i);
  GST_OBJECT_UNLOCK (self);
  for (int i = 0; i < self->n_exits; i++)
    GST_INFO_OBJECT (
        self, "exit %d %s: estimated %" GST_TIME_FORMAT " from scratch", i,
        self->exit_names[i], GST_TIME_ARGS (self->stat_estimate[i]));
  return TRUE;
}

/* Latches the READY-only properties and loads the model; FALSE after posting
 * an error. */
static gboolean
gst_early_exit_classifier_start (GstBaseTransform *trans)
{
  GstEarlyExitClassifier *self = GST_EARLY_EXIT_CLASSIFIER (trans);
  gchar *path, *labels, *device;
  GstEarlyExitClassifierPrecision precision;
  gboolean ok;

  GST_OBJECT_LOCK (self);
  path = g_strdup (self->prop_model_file);
  labels = g_strdup (self->prop_labels_file);
  device = g_strdup (self->prop_device);
  precision = self->prop_precision;
  self->stat_items = self->stat_fresh = self->stat_misses = 0;
  self->stat_confident = 0;
  memset (self->stat_taken, 0, sizeof self->stat_taken);
  memset (self->stat_runs, 0, sizeof self->stat_runs);
  memset (self->stat_time, 0, sizeof self->stat_time);
  memset (self->stat_estimate, 0, sizeof self->stat_estimate);
  GST_OBJECT_UNLOCK (self);

  ok = open_backend (self, device, precision)
       && load_model (self, path, labels);
  g_free (path);
  g_free (labels);
  g_free (device);
  if (!ok) {
    unload_model (self);
    return FALSE;
  }
  gst_early_exit_classifier_reset (self);
  update_latency (self);
  return TRUE;
}

static gboolean
gst_early_exit_classifier_stop (GstBaseTransform *trans)
{
  GstEarlyExitClassifier *self = GST_EARLY_EXIT_CLASSIFIER (trans);

  unload_model (self);
  GST_OBJECT_LOCK (self);
  self->period = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (self);
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
    min += ours;
    if (GST_CLOCK_TIME_IS_VALID (max))
      max += ours;
    GST_DEBUG_OBJECT (self, "latency: adding %" GST_TIME_FORMAT,
                      GST_TIME_ARGS (ours));
    gst_query_set_latency (query, live, min, max);
    return TRUE;
  }
  return GST_BASE_TRANSFORM_CLASS (parent_class)
      ->query (trans, direction, query);
}

/* ------------------------------------------------------------ streaming */

GstClockTime
gst_early_exit_classifier_budget (GstEarlyExitClassifier *self,
                                  GstClockTime natural)
{
  GstClockTime budget;

  GST_OBJECT_LOCK (self);
  budget = budget_locked (self, natural);
  GST_OBJECT_UNLOCK (self);
  return budget;
}

void
gst_early_exit_classifier_set_period (GstEarlyExitClassifier *self,
                                      GstClockTime period)
{
  GST_OBJECT_LOCK (self);
  self->period = period;
  GST_OBJECT_UNLOCK (self);
  update_latency (self);
}

gboolean
gst_early_exit_classifier_take_turn (GstEarlyExitClassifier *self)
{
  guint interval;
  gboolean fresh;

  GST_OBJECT_LOCK (self);
  interval = self->interval;
  GST_OBJECT_UNLOCK (self);
  fresh = !self->last_result || self->index % interval == 0;
  self->index++;
  return fresh;
}

void
gst_early_exit_classifier_reset (GstEarlyExitClassifier *self)
{
  self->index = 0;
  gst_clear_structure (&self->last_result);
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

typedef struct
{
  gdouble threshold;
} StopData;

/* policy=confidence: the top class's probability reaches the threshold. */
static gboolean
confident (gpointer user_data, int exit_index, const float *value,
           int64_t n_out)
{
  const StopData *sd = user_data;
  float top;
  double lse;

  /* 1 never stops early: a probability can round to 1 numerically */
  if (n_out < 1 || sd->threshold >= 1.0)
    return FALSE;
  lse = log_sum_exp (value, n_out, &top);
  return exp (-lse) >= sd->threshold;
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
                                    gint64 processable, GstClockTime budget)
{
  EeDeadlineParams p = { 0 };
  EeDeadlineResult res;
  StopData sd;
  GError *err = NULL;
  GstStructure *result;
  guint top_k, unique_id;
  guint32 all
      = (self->n_exits >= 32) ? G_MAXUINT32 : ((1u << self->n_exits) - 1);

  GST_OBJECT_LOCK (self);
  switch (self->policy) {
    case GST_EARLY_EXIT_CLASSIFIER_POLICY_CONFIDENCE:
      p.policy = EE_DEADLINE_CONFIDENCE;
      break;
    case GST_EARLY_EXIT_CLASSIFIER_POLICY_FIXED:
      p.policy = EE_DEADLINE_FIXED;
      break;
    case GST_EARLY_EXIT_CLASSIFIER_POLICY_FULL:
      p.policy = EE_DEADLINE_FULL;
      break;
    default:
      p.policy = EE_DEADLINE_ANYTIME;
      break;
  }
  p.min_exit = self->min_exit;
  p.max_exit = self->max_exit;
  sd.threshold = self->confidence_threshold;
  top_k = self->top_k;
  unique_id = self->unique_id;
  GST_OBJECT_UNLOCK (self);

  p.allowed = all;
  p.deadline = processable + (gint64)budget;
  p.stop = confident;
  p.stop_data = &sd;
  if (!ee_model_set_image (self->model, self->input, &err)
      || !ee_deadline_run (self->sched, &p, &res, &err))
    goto failed;
  if (res.exit < 0 || res.n_out < 1) {
    g_set_error (&err, EE_ERROR, EE_ERROR_ARGUMENT,
                 "no exit could run (min-exit %d, max-exit %d)", p.min_exit,
                 p.max_exit);
    goto failed;
  }

  GST_OBJECT_LOCK (self);
  self->stat_fresh++;
  self->stat_taken[res.exit]++;
  self->stat_misses += res.missed;
  self->stat_confident += res.stopped_early;
  for (int i = 0; i < self->n_exits; i++) {
    if (res.ran & (1u << i)) {
      self->stat_runs[i]++;
      self->stat_time[i] += res.finish[i] - processable;
    }
    self->stat_estimate[i] = ee_deadline_exit_cost (self->sched, i);
  }
  GST_OBJECT_UNLOCK (self);

  result = gst_structure_new (EARLYEXIT_RESULT_NAME, "task", G_TYPE_STRING,
                              "label", NULL);
  set_classification (self, result, res.value, res.n_out, top_k);
  gst_structure_set (
      result, "exit", G_TYPE_STRING, self->exit_names[res.exit], "exit-index",
      G_TYPE_INT, res.exit, "n-exits", G_TYPE_INT, self->n_exits, "fresh",
      G_TYPE_BOOLEAN, TRUE, "deadline", G_TYPE_UINT64, budget, "inference-time",
      G_TYPE_UINT64, (guint64)(res.published - processable), "deadline-missed",
      G_TYPE_BOOLEAN, res.missed, "unique-id", G_TYPE_UINT, unique_id, NULL);
  GST_LOG_OBJECT (
      self, "%s: exit %s: %s (%.3f), %" G_GINT64_FORMAT " us%s%s",
      GST_EARLY_EXIT_CLASSIFIER_GET_CLASS (self)->input_name,
      self->exit_names[res.exit], gst_structure_get_string (result, "label"),
      earlyexit_result_get_confidence (result),
      (res.published - processable) / 1000,
      res.stopped_early ? " (confident)" : "", res.missed ? " (missed)" : "");
  return result;

failed:
  GST_ELEMENT_ERROR (self, STREAM, FAILED,
                     ("Inference failed on a %s with model \"%s\".",
                      GST_EARLY_EXIT_CLASSIFIER_GET_CLASS (self)->input_name,
                      ee_model_path (self->model)),
                     ("%s", err->message));
  g_clear_error (&err);
  return NULL;
}

GstStructure *
gst_early_exit_classifier_carry (GstEarlyExitClassifier *self)
{
  GstStructure *result;
  guint unique_id;

  if (!self->last_result)
    return NULL;
  GST_OBJECT_LOCK (self);
  unique_id = self->unique_id;
  GST_OBJECT_UNLOCK (self);
  result = gst_structure_copy (self->last_result);
  gst_structure_set (result, "fresh", G_TYPE_BOOLEAN, FALSE, "unique-id",
                     G_TYPE_UINT, unique_id, NULL);
  return result;
}

void
gst_early_exit_classifier_publish (GstEarlyExitClassifier *self,
                                   GstBuffer *buffer, GstClockTime pts,
                                   GstClockTime duration, GstStructure *result)
{
  gboolean post, fresh = FALSE;

  /* what later turns without a run carry */
  if (gst_structure_get_boolean (result, "fresh", &fresh) && fresh) {
    gst_clear_structure (&self->last_result);
    self->last_result = gst_structure_copy (result);
  }
  GST_OBJECT_LOCK (self);
  post = self->post_messages;
  self->stat_items++;
  GST_OBJECT_UNLOCK (self);

  if (buffer)
    ee_result_meta_attach (buffer, result);
  if (post)
    gst_element_post_message (
        GST_ELEMENT (self),
        ee_result_message_new_full (GST_ELEMENT (self),
                                    &GST_BASE_TRANSFORM (self)->segment, pts,
                                    duration, result));
  gst_structure_free (result);
}
