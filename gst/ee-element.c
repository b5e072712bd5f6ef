/* gst-earlyexit: what every earlyexit element shares (ee-element.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "ee-element.h"

#include <math.h>
#include <string.h>

#include "ee-backend-select.h"
#include "ee-result.h"

GST_DEBUG_CATEGORY_STATIC (ee_element_debug);
#define GST_CAT_DEFAULT ee_element_debug

/* Budget when deadline=0 and no frame duration or hop is known. */
#define FALLBACK_PERIOD (GST_SECOND / 25)

#define DEFAULT_MODEL_FILE NULL
#define DEFAULT_DEVICE "auto"
#define DEFAULT_PRECISION GST_EARLY_EXIT_PRECISION_FP32
#define DEFAULT_INSTANCE_ID NULL
#define DEFAULT_THREADS 0
#define DEFAULT_BATCH_SIZE 1
#define DEFAULT_DEADLINE 0
#define DEFAULT_DEADLINE_REFERENCE GST_EARLY_EXIT_DEADLINE_REFERENCE_PROCESSING
#define DEFAULT_POLICY GST_EARLY_EXIT_POLICY_ANYTIME
#define DEFAULT_MIN_EXIT -1
#define DEFAULT_MAX_EXIT -1
#define DEFAULT_CONFIDENCE_THRESHOLD 0.9
#define DEFAULT_LABELS_FILE NULL
#define DEFAULT_TOP_K 5
#define MAX_TOP_K 1000
#define DEFAULT_INTERVAL 1
#define DEFAULT_POST_MESSAGES TRUE
#define DEFAULT_UNIQUE_ID 0

GType
gst_early_exit_policy_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_EARLY_EXIT_POLICY_ANYTIME, "The newest exit finished by the deadline",
      "anytime" },
    { GST_EARLY_EXIT_POLICY_CONFIDENCE,
      "As anytime, stopping at the first exit whose confidence reaches "
      "confidence-threshold (classifiers)",
      "confidence" },
    { GST_EARLY_EXIT_POLICY_FIXED, "Always exit max-exit", "fixed" },
    { GST_EARLY_EXIT_POLICY_FULL, "Every exit up to max-exit, deadline ignored",
      "full" },
    { 0, NULL, NULL },
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type,
                       g_enum_register_static ("GstEarlyExitPolicy", values));
  return type;
}

GType
gst_early_exit_deadline_reference_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_EARLY_EXIT_DEADLINE_REFERENCE_PROCESSING,
      "From when the element can process the item", "processing" },
    { GST_EARLY_EXIT_DEADLINE_REFERENCE_CAPTURE,
      "From the item's capture (NTP reference timestamp meta, else the "
      "pipeline clock at its running time)",
      "capture" },
    { 0, NULL, NULL },
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (&type, g_enum_register_static (
                                  "GstEarlyExitDeadlineReference", values));
  return type;
}

GType
gst_early_exit_precision_get_type (void)
{
  static GType type = 0;
  static const GEnumValue values[] = {
    { GST_EARLY_EXIT_PRECISION_FP32, "32-bit float", "fp32" },
    { GST_EARLY_EXIT_PRECISION_TF32, "fp32 storage, TF32 tensor cores (CUDA)",
      "tf32" },
    { GST_EARLY_EXIT_PRECISION_FP16, "16-bit float storage (CUDA)", "fp16" },
    { GST_EARLY_EXIT_PRECISION_BF16, "bfloat16 storage (CPU and CUDA)",
      "bf16" },
    { GST_EARLY_EXIT_PRECISION_INT8,
      "int8 convolutions (CPU with VNNI, calibrated model file)", "int8" },
    { 0, NULL, NULL },
  };

  if (g_once_init_enter (&type))
    g_once_init_leave (
        &type, g_enum_register_static ("GstEarlyExitPrecision", values));
  return type;
}

/* ------------------------------------------------------------ properties */

/* Where a common property's value lives in the element's instance. */
#define FIELD(f) (info->offset + G_STRUCT_OFFSET (EeElement, f))

static GstStructure *stats_new_locked (EeElement *ee);

static void
stats_get (GObject *object, gpointer at, GValue *value)
{
  GST_OBJECT_LOCK (object);
  g_value_take_boxed (value, stats_new_locked (at));
  GST_OBJECT_UNLOCK (object);
}

void
ee_element_class_install (GObjectClass *klass, const EeElementInfo *info)
{
  static gsize debug_once = 0;

  if (g_once_init_enter (&debug_once)) {
    GST_DEBUG_CATEGORY_INIT (ee_element_debug, "earlyexit-element", 0,
                             "earlyexit elements: engine, properties, QoS");
    g_once_init_leave (&debug_once, 1);
  }
  ee_props_add_field (klass, FIELD (prop_model_file),
                      g_param_spec_string ("model-file", "Model File",
                                           info->model_blurb,
                                           DEFAULT_MODEL_FILE, EE_PARAM_READY));
  ee_props_add_field (
      klass, FIELD (prop_device),
      g_param_spec_string (
          "device", "Device",
          "Where inference runs: auto, cpu, cuda or cuda:N (auto: CUDA device "
          "0 when the CUDA backend loads and finds a device, else the CPU)",
          DEFAULT_DEVICE, EE_PARAM_READY));
  ee_props_add_field (
      klass, FIELD (prop_precision),
      g_param_spec_enum (
          "precision", "Precision",
          "Arithmetic precision of the network (fp32 everywhere, bf16 on CPU "
          "and CUDA, tf32 and fp16 on CUDA, int8 on the CPU with a model file "
          "calibrated by earlyexit calibrate)",
          GST_TYPE_EARLY_EXIT_PRECISION, DEFAULT_PRECISION, EE_PARAM_READY));
  ee_props_add_field (
      klass, FIELD (prop_instance_id),
      g_param_spec_string (
          "model-instance-id", "Model Instance ID",
          "Elements with the same id and the same model file, device, "
          "precision and batch size share one engine: one copy of the "
          "weights, one scheduler running all their frames by deadline "
          "(empty: a private engine)",
          DEFAULT_INSTANCE_ID, EE_PARAM_READY));
  ee_props_add_field (
      klass, FIELD (prop_threads),
      g_param_spec_int (
          "threads", "Threads",
          "CPU threads of the engine (0 = all cores); a shared engine keeps "
          "the value of the element that started it",
          0, 1024, DEFAULT_THREADS, EE_PARAM_READY));
  ee_props_add_field (
      klass, FIELD (prop_batch_size),
      g_param_spec_int (
          "batch-size", "Batch Size",
          "The most frames one batched call of the engine runs: frames of "
          "the elements sharing an engine that wait for the same step at once "
          "run it together (1 = every frame alone; pays on a GPU, not on the "
          "CPU); elements sharing an engine give the same value",
          1, 32, DEFAULT_BATCH_SIZE, EE_PARAM_READY));
  ee_props_add_field (
      klass, FIELD (deadline),
      g_param_spec_uint64 (
          "deadline", "Deadline",
          "Time budget per frame or window, from it being processable (or "
          "captured: deadline-reference) to its result (in nanoseconds; 0 = "
          "one frame duration or hop)",
          0, G_MAXUINT64, DEFAULT_DEADLINE, EE_PARAM_PLAYING));
  ee_props_add_field (
      klass, FIELD (deadline_reference),
      g_param_spec_enum (
          "deadline-reference", "Deadline Reference",
          "What the deadline counts from: processing (when the element can "
          "process the item) or capture (its NTP reference timestamp meta, "
          "else the pipeline clock at its running time; for live sources)",
          GST_TYPE_EARLY_EXIT_DEADLINE_REFERENCE, DEFAULT_DEADLINE_REFERENCE,
          EE_PARAM_PLAYING));
  ee_props_add_field (
      klass, FIELD (policy),
      g_param_spec_enum (
          "policy", "Policy",
          info->confidence
              ? "Which exit gives the result: anytime (newest finished by the "
                "deadline), confidence (anytime, stopping at the first exit "
                "whose confidence reaches confidence-threshold), fixed (always "
                "max-exit), full (all exits, deadline ignored)"
              : "Which exit gives the result: anytime (newest finished by the "
                "deadline), fixed (always max-exit), full (all exits, "
                "deadline ignored); confidence acts as anytime, a count has "
                "no confidence",
          GST_TYPE_EARLY_EXIT_POLICY, DEFAULT_POLICY, EE_PARAM_PLAYING));
  ee_props_add_field (
      klass, FIELD (min_exit),
      g_param_spec_int (
          "min-exit", "Minimum Exit",
          "Earliest exit (index, 0 = first) allowed to give a result; it "
          "always runs, even past the deadline (-1 = no minimum)",
          -1, EE_ELEMENT_MAX_EXITS - 1, DEFAULT_MIN_EXIT, EE_PARAM_PLAYING));
  ee_props_add_field (
      klass, FIELD (max_exit),
      g_param_spec_int (
          "max-exit", "Maximum Exit",
          "Last exit (index, 0 = first) allowed to run, the exit taken with "
          "policy=fixed (-1 = the last exit)",
          -1, EE_ELEMENT_MAX_EXITS - 1, DEFAULT_MAX_EXIT, EE_PARAM_PLAYING));
  if (info->confidence)
    ee_props_add_field (
        klass, FIELD (confidence_threshold),
        g_param_spec_double (
            "confidence-threshold", "Confidence Threshold",
            "policy=confidence: the top softmax probability at which an exit's "
            "answer is taken without running later exits",
            0.0, 1.0, DEFAULT_CONFIDENCE_THRESHOLD, EE_PARAM_PLAYING));
  if (info->task == EE_TASK_CLASSIFY) {
    /* the labels: a text file of class names, one per line in class order
     * (UTF-8, empty lines only at the end), its number of lines the model's
     * number of classes; NULL: the model file's labels, else the class
     * numbers */
    ee_props_add_field (
        klass, FIELD (prop_labels_file),
        g_param_spec_string (
            "labels-file", "Labels File",
            "Text file with one class name per line, in class order, "
            "replacing the model file's labels (NULL: the model's labels, "
            "else class numbers)",
            DEFAULT_LABELS_FILE, EE_PARAM_READY));
    /* the result's top-k list: parallel arrays top-labels, top-label-ids,
     * top-confidences, most probable first, at most the number of
     * classes; 0 leaves the list out */
    ee_props_add_field (
        klass, FIELD (top_k),
        g_param_spec_uint (
            "top-k", "Top K",
            "Number of most probable classes listed in every result "
            "(top-labels, top-label-ids, top-confidences; 0 = no list)",
            0, MAX_TOP_K, DEFAULT_TOP_K, EE_PARAM_PLAYING));
  }
  ee_props_add_field (
      klass, FIELD (interval),
      g_param_spec_uint (
          "interval", "Interval",
          "Run the network on every Nth frame or window (as DL Streamer's "
          "inference-interval; DeepStream's interval counts the frames "
          "skipped, N - 1); the others carry the last result marked not fresh",
          1, G_MAXUINT, DEFAULT_INTERVAL, EE_PARAM_PLAYING));
  ee_props_add_field (
      klass, FIELD (post_messages),
      g_param_spec_boolean ("post-messages", "Post Messages",
                            "Post an element message with every result",
                            DEFAULT_POST_MESSAGES, EE_PARAM_PLAYING));
  ee_props_add_field (
      klass, FIELD (unique_id),
      g_param_spec_uint ("unique-id", "Unique ID",
                         "Copied into every result to tell elements apart", 0,
                         G_MAXUINT, DEFAULT_UNIQUE_ID, EE_PARAM_PLAYING));
  ee_props_add (
      klass, info->offset,
      g_param_spec_boxed (
          "stats", "Statistics",
          "Statistics since the element started (see the element's "
          "documentation): items out, fresh ones, carried ones, deadline "
          "misses, QoS reactions and, per exit, names, results given, runs, "
          "mean and estimated time (nanoseconds)",
          GST_TYPE_STRUCTURE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS),
      NULL, stats_get);
  gst_type_mark_as_plugin_api (GST_TYPE_EARLY_EXIT_POLICY, 0);
  gst_type_mark_as_plugin_api (GST_TYPE_EARLY_EXIT_PRECISION, 0);
}

void
ee_element_init (EeElement *ee, GstElement *element, const EeElementInfo *info)
{
  ee->element = element;
  ee->info = info;
  ee->period = GST_CLOCK_TIME_NONE;
}

static void
array_append (GValue *array, GType type, gconstpointer v)
{
  GValue x = G_VALUE_INIT;

  g_value_init (&x, type);
  if (type == G_TYPE_STRING)
    g_value_set_string (&x, v);
  else
    g_value_set_uint64 (&x, *(const guint64 *)v);
  gst_value_array_append_and_take_value (array, &x);
}

/* Called with the object lock. */
static GstStructure *
stats_new_locked (EeElement *ee)
{
  GValue names = G_VALUE_INIT, taken = G_VALUE_INIT, runs = G_VALUE_INIT;
  GValue mean = G_VALUE_INIT, est = G_VALUE_INIT;
  EeStreamStats st = { .qos_max_exit = -1 };
  gchar *fresh = g_strdup_printf ("fresh-%s", ee->info->counted);
  GstElementFactory *factory = gst_element_get_factory (ee->element);
  gchar *name
      = ee->info->stats_name
            ? g_strdup (ee->info->stats_name)
            : g_strdup_printf ("%s-stats", factory ? GST_OBJECT_NAME (factory)
                                                   : "earlyexit");
  GstStructure *s;

  if (ee->stream)
    ee_stream_get_stats (ee->stream, &st);
  gst_value_array_init (&names, ee->n_exits);
  gst_value_array_init (&taken, ee->n_exits);
  gst_value_array_init (&runs, ee->n_exits);
  gst_value_array_init (&mean, ee->n_exits);
  gst_value_array_init (&est, ee->n_exits);
  for (int i = 0; i < ee->n_exits; i++) {
    guint64 m = st.runs[i] ? st.time[i] / st.runs[i] : 0;
    guint64 e = (guint64)MAX (st.estimate[i], 0);
    array_append (&names, G_TYPE_STRING, ee->exit_names[i]);
    array_append (&taken, G_TYPE_UINT64, &st.taken[i]);
    array_append (&runs, G_TYPE_UINT64, &st.runs[i]);
    array_append (&mean, G_TYPE_UINT64, &m);
    array_append (&est, G_TYPE_UINT64, &e);
  }
  s = gst_structure_new (
      name, ee->info->counted, G_TYPE_UINT64, ee->items, fresh, G_TYPE_UINT64,
      st.frames - st.carried, "carried", G_TYPE_UINT64, st.carried, "batched",
      G_TYPE_UINT64, st.batched, "deadline-misses", G_TYPE_UINT64, st.misses,
      "qos-lowered", G_TYPE_UINT64, st.qos_lowered, "qos-max-exit", G_TYPE_INT,
      st.qos_max_exit, "confident-stops", G_TYPE_UINT64, st.confident,
      "model-instance-id", G_TYPE_STRING,
      ee->engine ? ee_engine_instance_id (ee->engine) : "", "engine-streams",
      G_TYPE_INT, ee->engine ? ee_engine_n_streams (ee->engine) : 0, NULL);
  gst_structure_take_value (s, "exit-names", &names);
  gst_structure_take_value (s, "exits-taken", &taken);
  gst_structure_take_value (s, "exit-runs", &runs);
  gst_structure_take_value (s, "mean-inference-time", &mean);
  gst_structure_take_value (s, "estimated-time", &est);
  g_free (fresh);
  g_free (name);
  return s;
}

/* ------------------------------------------------------------ the engine */

static const char *
task_model (EeTask task)
{
  return task == EE_TASK_COUNT ? "an AudioCSRNet model file"
                               : "a classification model file";
}

static const char *
task_converter (EeTask task)
{
  return task == EE_TASK_COUNT ? "models/convert/audiocsrnet.py"
                               : "models/convert/classifier.py";
}

/* The engine's loader: ee_model_load, remembering a failure so that it can
 * be told from a backend's. */
typedef struct
{
  GError *model_error;
} LoadData;

static EeRunner *
load_model (EeBackend *be, const char *path, int batch, gpointer user_data,
            gpointer *owner, GDestroyNotify *owner_free, GError **error)
{
  LoadData *ld = user_data;
  EeRunner *r
      = ee_model_engine_load (be, path, batch, NULL, owner, owner_free, error);

  if (!r && error && *error)
    ld->model_error = g_error_copy (*error);
  return r;
}

/* Posts the element error for a failed acquire. */
static void
engine_error (EeElement *ee, const EeEngineConfig *cfg, GError *err,
              gboolean model_failed)
{
  GstElement *el = ee->element;
  const char *device = cfg->device && *cfg->device ? cfg->device : "auto";
  EeTask task = ee->info->task;

  if (model_failed && g_error_matches (err, EE_ERROR, EE_ERROR_FILE))
    GST_ELEMENT_ERROR (
        el, RESOURCE, OPEN_READ,
        ("Could not read model file \"%s\": %s", cfg->model_file, err->message),
        (NULL));
  else if (model_failed && cfg->precision == EE_PRECISION_INT8
           && g_error_matches (err, EE_ERROR, EE_ERROR_UNSUPPORTED))
    GST_ELEMENT_ERROR (el, RESOURCE, SETTINGS,
                       ("Model file \"%s\" cannot run in int8: %s",
                        cfg->model_file, err->message),
                       ("calibrate it with earlyexit calibrate, or use "
                        "precision=fp32 or bf16"));
  else if (model_failed)
    GST_ELEMENT_ERROR (
        el, RESOURCE, FAILED,
        ("Model file \"%s\" cannot be used: %s", cfg->model_file, err->message),
        ("regenerate it with %s", task_converter (task)));
  else if (g_error_matches (err, EE_ERROR, EE_ERROR_CONFLICT))
    GST_ELEMENT_ERROR (el, RESOURCE, SETTINGS, ("%s.", err->message), (NULL));
  else if (g_error_matches (err, EE_ERROR, EE_ERROR_ARGUMENT))
    GST_ELEMENT_ERROR (
        el, RESOURCE, SETTINGS,
        ("Unknown device \"%s\". Use auto, cpu, cuda or cuda:N.", device),
        ("%s", err->message));
  else if (g_str_has_prefix (device, "cuda"))
    GST_ELEMENT_ERROR (el, RESOURCE, NOT_FOUND,
                       ("The CUDA backend is not available (device=%s): %s. "
                        "Use device=cpu or device=auto.",
                        device, err->message),
                       (NULL));
  else if (g_error_matches (err, EE_ERROR, EE_ERROR_UNSUPPORTED))
    GST_ELEMENT_ERROR (el, RESOURCE, SETTINGS,
                       ("Precision %s is not available on the CPU backend. "
                        "Use precision=fp32 (or bf16).",
                        ee_precision_name (cfg->precision)),
                       ("%s", err->message));
  else
    GST_ELEMENT_ERROR (
        el, LIBRARY, INIT,
        ("Could not start the inference engine (device=%s).", device),
        ("%s", err->message));
}

/* Whether the engine's model suits the element; posts the error if not. */
static gboolean
check_model (EeElement *ee, EeModel *model, const char *path, int max_exits)
{
  EeTask task = ee->info->task;
  int n = ee_runner_n_exits (ee_model_runner (model));

  if (ee_model_task (model) != task) {
    if (task == EE_TASK_COUNT)
      GST_ELEMENT_ERROR (
          ee->element, RESOURCE, FAILED,
          ("Model file \"%s\" is a %s classification model, not a "
           "crowd-counting model. Use %s.",
           path, ee_model_arch (model), task_model (task)),
          (NULL));
    else
      GST_ELEMENT_ERROR (
          ee->element, RESOURCE, FAILED,
          ("Model file \"%s\" is a crowd-counting model (%s), not a "
           "classification model. Use a model file written by %s (or the "
           "avcrowdcount element).",
           path, ee_model_arch (model), task_converter (task)),
          (NULL));
    return FALSE;
  }
  if (n < 1 || n > max_exits) {
    GST_ELEMENT_ERROR (ee->element, RESOURCE, FAILED,
                       ("Model file \"%s\" has %d exits; expected 1 to %d.",
                        path, n, max_exits),
                       (NULL));
    return FALSE;
  }
  return TRUE;
}

/* Says in the element's debug category which backend device=auto chose
 * and why: no GPU is no fault (INFO); a precision the CPU lacks, run in
 * fp32 instead, is a WARNING. */
static void
log_backend (EeElement *ee, const EeEngineConfig *cfg)
{
  EeBackend *be = ee_engine_backend (ee->engine);
  gchar *reason;

  if (cfg->device && *cfg->device && strcmp (cfg->device, "auto") != 0) {
    GST_INFO_OBJECT (ee->element, "device %s: the %s backend", cfg->device,
                     be->vt->name);
    return;
  }
  if (ee_backend_is_cuda (be)) {
    GST_INFO_OBJECT (ee->element, "device auto: using CUDA device 0 in %s",
                     ee_precision_name (cfg->precision));
    return;
  }
  reason = ee_backend_auto_cpu_reason ();
  GST_INFO_OBJECT (ee->element, "No GPU, using the CPU (device auto: %s)",
                   reason ? reason : "CUDA not available");
  g_free (reason);
  if (cfg->precision != EE_PRECISION_FP32 && cfg->precision != EE_PRECISION_BF16
      && cfg->precision != EE_PRECISION_INT8)
    GST_WARNING_OBJECT (ee->element,
                        "precision %s needs CUDA: running in fp32 on the CPU",
                        ee_precision_name (cfg->precision));
}

static gboolean
open_engine (EeElement *ee, const EeEngineConfig *cfg, int max_exits)
{
  LoadData ld = { NULL };
  GError *err = NULL;
  const char *path = cfg->model_file;
  EeTask task = ee->info->task;
  EeRunner *r;
  gchar **names;

  if (!path || !*path) {
    GST_ELEMENT_ERROR (
        ee->element, RESOURCE, NOT_FOUND,
        ("No model file set. Set the model-file property to %s.",
         task_model (task)),
        ("write one with %s (see --help)", task_converter (task)));
    return FALSE;
  }
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    GST_ELEMENT_ERROR (
        ee->element, RESOURCE, NOT_FOUND,
        ("Model file \"%s\" does not exist. Check the model-file property.",
         path),
        (NULL));
    return FALSE;
  }
  ee->engine = ee_engine_acquire (cfg, load_model, &ld, &err);
  if (!ee->engine) {
    engine_error (ee, cfg, err, ld.model_error != NULL);
    g_clear_error (&err);
    g_clear_error (&ld.model_error);
    return FALSE;
  }
  ee->model = ee_engine_owner (ee->engine);
  if (!check_model (ee, ee->model, path, max_exits))
    return FALSE;
  ee->stream = ee_stream_new (ee->engine, &err);
  if (!ee->stream) {
    GST_ELEMENT_ERROR (ee->element, RESOURCE, NO_SPACE_LEFT,
                       ("Not enough memory for one more stream of model "
                        "\"%s\".",
                        path),
                       ("%s", err->message));
    g_clear_error (&err);
    return FALSE;
  }
  r = ee_model_runner (ee->model);
  names = g_new0 (gchar *, ee_runner_n_exits (r) + 1);
  for (int i = 0; i < ee_runner_n_exits (r); i++)
    names[i] = g_strdup (ee_runner_exit_name (r, i));
  /* the stats getter reads them from other threads */
  GST_OBJECT_LOCK (ee->element);
  ee->n_exits = ee_runner_n_exits (r);
  ee->exit_names = names;
  ee->frame_cost = (GstClockTime)ee_engine_frame_cost (ee->engine);
  ee->running = TRUE;
  GST_OBJECT_UNLOCK (ee->element);

  log_backend (ee, cfg);
  GST_INFO_OBJECT (ee->element, "model \"%s\": %s", path,
                   ee_model_source (ee->model) ? ee_model_source (ee->model)
                                               : "(no source metadata)");
  GST_INFO_OBJECT (ee->element,
                   "engine \"%s\" on the %s backend, %d stream(s), %.1f MB of "
                   "activations each",
                   ee_engine_instance_id (ee->engine),
                   ee_engine_backend (ee->engine)->vt->name,
                   ee_engine_n_streams (ee->engine),
                   ee_engine_stream_bytes (ee->engine) / 1e6);
  for (int i = 0; i < ee->n_exits; i++)
    GST_INFO_OBJECT (ee->element,
                     "exit %d %s: estimated %" GST_TIME_FORMAT " from scratch",
                     i, ee->exit_names[i],
                     GST_TIME_ARGS (ee_engine_exit_cost (ee->engine, i)));
  return TRUE;
}

gboolean
ee_element_start (EeElement *ee, int max_exits)
{
  EeEngineConfig cfg = ee_engine_default_config ();
  gchar *path, *device, *instance;
  gboolean ok;

  GST_OBJECT_LOCK (ee->element);
  path = g_strdup (ee->prop_model_file);
  device = g_strdup (ee->prop_device);
  instance = g_strdup (ee->prop_instance_id);
  cfg.precision = (EePrecision)ee->prop_precision;
  cfg.threads = ee->prop_threads;
  cfg.batch_size = ee->prop_batch_size;
  ee->items = 0;
  GST_OBJECT_UNLOCK (ee->element);
  ee->checked_exits = FALSE;
  ee->invalid = 0;

  cfg.model_file = path;
  cfg.device = device;
  cfg.instance_id = instance;
  ok = open_engine (ee, &cfg, max_exits);
  g_free (path);
  g_free (device);
  g_free (instance);
  if (!ok)
    ee_element_stop (ee);
  ee_element_reset (ee);
  return ok;
}

gpointer
ee_element_input_alloc (EeElement *ee, gsize bytes)
{
  GError *err = NULL;
  gpointer p;

  g_return_val_if_fail (ee->engine && ee->n_inputs < EE_ELEMENT_MAX_INPUTS,
                        NULL);
  p = ee_backend_host_alloc (ee_engine_backend (ee->engine), bytes, &err);
  if (!p) {
    GST_ELEMENT_ERROR (ee->element, RESOURCE, NO_SPACE_LEFT,
                       ("Not enough memory for the model inputs."),
                       ("%s", err->message));
    g_clear_error (&err);
    return NULL;
  }
  memset (p, 0, bytes);
  ee->inputs[ee->n_inputs++] = p;
  return p;
}

void
ee_element_stop (EeElement *ee)
{
  EeStream *stream = ee->stream;
  EeEngine *engine = ee->engine;
  gchar **names = ee->exit_names;

  GST_OBJECT_LOCK (ee->element);
  ee->running = FALSE;
  ee->stream = NULL;
  ee->engine = NULL;
  ee->model = NULL;
  ee->exit_names = NULL;
  ee->n_exits = 0;
  ee->period = GST_CLOCK_TIME_NONE;
  GST_OBJECT_UNLOCK (ee->element);
  ee_stream_free (stream);
  for (int i = 0; i < ee->n_inputs; i++)
    ee_backend_host_free (ee_engine_backend (engine), ee->inputs[i]);
  ee->n_inputs = 0;
  ee_engine_release (engine);
  g_strfreev (names);
  ee_element_reset (ee);
}

GstClockTime
ee_element_latency (EeElement *ee)
{
  GstClockTime budget = ee_element_budget (ee, GST_CLOCK_TIME_NONE), cost;

  if (budget < EE_ELEMENT_NO_DEADLINE)
    return budget;
  GST_OBJECT_LOCK (ee->element);
  cost = ee->running ? 2 * ee->frame_cost : budget;
  GST_OBJECT_UNLOCK (ee->element);
  return cost;
}

gboolean
ee_element_running (EeElement *ee)
{
  gboolean running;

  /* any thread (set_property): the flag, not the fields start fills in */
  GST_OBJECT_LOCK (ee->element);
  running = ee->running;
  GST_OBJECT_UNLOCK (ee->element);
  return running;
}

/* ------------------------------------------------------------ streaming */

GstClockTime
ee_element_budget (EeElement *ee, GstClockTime natural)
{
  GstClockTime budget;

  GST_OBJECT_LOCK (ee->element);
  if (ee->deadline >= EE_ELEMENT_NO_DEADLINE)
    budget = EE_ELEMENT_NO_DEADLINE;
  else if (ee->deadline > 0)
    budget = ee->deadline;
  else if (GST_CLOCK_TIME_IS_VALID (natural) && natural > 0)
    budget = natural;
  else if (GST_CLOCK_TIME_IS_VALID (ee->period) && ee->period > 0)
    budget = ee->period;
  else
    budget = FALLBACK_PERIOD;
  GST_OBJECT_UNLOCK (ee->element);
  return budget;
}

void
ee_element_set_period (EeElement *ee, GstClockTime period)
{
  GST_OBJECT_LOCK (ee->element);
  ee->period = period;
  GST_OBJECT_UNLOCK (ee->element);
}

gboolean
ee_element_next_turn (EeElement *ee)
{
  guint interval;

  GST_OBJECT_LOCK (ee->element);
  interval = ee->interval;
  GST_OBJECT_UNLOCK (ee->element);
  return !ee->last_result || ee->index % interval == 0;
}

gboolean
ee_element_take_turn (EeElement *ee)
{
  gboolean fresh = ee_element_next_turn (ee);

  ee->index++;
  return fresh;
}

/* Warns once per setting when min-exit and max-exit do not name a range of
 * the model's exits, saying what runs instead (the engine's rule: max-exit
 * past the last exit is the last; min-exit past max-exit is max-exit). */
static void
check_exit_range (EeElement *ee, int min_exit, int max_exit)
{
  int n = ee->n_exits, hi, lo;
  gchar *what;

  if (ee->checked_exits && min_exit == ee->checked_min_exit
      && max_exit == ee->checked_max_exit)
    return;
  ee->checked_exits = TRUE;
  ee->checked_min_exit = min_exit;
  ee->checked_max_exit = max_exit;
  if (min_exit < n && max_exit < n
      && (min_exit < 0 || max_exit < 0 || min_exit <= max_exit))
    return;
  hi = max_exit >= 0 ? MIN (max_exit, n - 1) : n - 1;
  lo = min_exit >= 0 ? MIN (min_exit, hi) : 0;
  what = lo == hi
             ? g_strdup_printf ("Only exit %d (%s) will run", hi,
                                ee->exit_names[hi])
             : g_strdup_printf ("Exits %d (%s) to %d (%s) will run", lo,
                                ee->exit_names[lo], hi, ee->exit_names[hi]);
  if (min_exit >= n || max_exit >= n)
    GST_ELEMENT_WARNING (
        ee->element, RESOURCE, SETTINGS,
        ("min-exit %d, max-exit %d: model \"%s\" has exits 0 to %d only. "
         "%s; set min-exit and max-exit within 0 to %d (or -1).",
         min_exit, max_exit, ee_model_path (ee->model), n - 1, what, n - 1),
        (NULL));
  else
    GST_ELEMENT_WARNING (ee->element, RESOURCE, SETTINGS,
                         ("min-exit %d is greater than max-exit %d. %s; set "
                          "min-exit to max-exit or less.",
                          min_exit, max_exit, what),
                         (NULL));
  g_free (what);
}

static void
post_qos (EeElement *ee, const EeFrameResult *res, const GstSegment *segment,
          GstClockTime pts, GstClockTime duration)
{
  GstMessage *msg;
  guint64 processed;

  GST_OBJECT_LOCK (ee->element);
  processed = ee->items;
  GST_OBJECT_UNLOCK (ee->element);
  GST_INFO_OBJECT (ee->element, "downstream is late: aiming at exit %d",
                   res->qos_max_exit);
  msg = gst_message_new_qos (
      GST_OBJECT (ee->element), FALSE,
      gst_segment_to_running_time (segment, GST_FORMAT_TIME, pts),
      gst_segment_to_stream_time (segment, GST_FORMAT_TIME, pts), pts,
      duration);
  gst_message_set_qos_values (
      msg, 0, 1.0, (gint)(1000000.0 * (res->qos_max_exit + 1) / ee->n_exits));
  gst_message_set_qos_stats (msg, GST_FORMAT_BUFFERS, processed, 0);
  gst_element_post_message (ee->element, msg);
}

/* NTP time (ns since 1900) of the Unix epoch. */
#define NTP_UNIX_OFFSET (G_GUINT64_CONSTANT (2208988800) * GST_SECOND)

gint64
ee_element_item_begin (EeElement *ee, GstBuffer *buffer,
                       GstClockTime running_time)
{
  static GstCaps *ntp_caps;
  gint64 now = ee_now (), real = g_get_real_time () * 1000, age = 0;
  GstReferenceTimestampMeta *meta = NULL;
  GstClock *clock;

  if (g_once_init_enter (&ntp_caps))
    g_once_init_leave (&ntp_caps,
                       gst_caps_new_empty_simple ("timestamp/x-ntp"));
  ee->have_capture = FALSE;
  if (buffer)
    meta = gst_buffer_get_reference_timestamp_meta (buffer, ntp_caps);
  if (meta && meta->timestamp > NTP_UNIX_OFFSET) {
    age = real - (gint64)(meta->timestamp - NTP_UNIX_OFFSET);
    ee->have_capture = TRUE;
  } else if (GST_CLOCK_TIME_IS_VALID (running_time)
             && (clock = gst_element_get_clock (ee->element))) {
    GstClockTime base = gst_element_get_base_time (ee->element);

    if (GST_CLOCK_TIME_IS_VALID (base)) {
      age = GST_CLOCK_DIFF (base + running_time, gst_clock_get_time (clock));
      ee->have_capture = TRUE;
    }
    gst_object_unref (clock);
  }
  /* a capture in the future: a file played faster than real time */
  age = MAX (age, 0);
  ee->capture_at = now - age;
  ee->capture_utc = (guint64)MAX (real - age, 0);
  return now;
}

gboolean
ee_element_run (EeElement *ee, guint32 allowed, gint64 processable,
                GstClockTime budget, const GstSegment *segment,
                GstClockTime pts, GstClockTime duration, EeStopFunc stop,
                gpointer stop_data, EeFrameResult *res)
{
  EeFrameParams p = { 0 };
  GError *err = NULL;

  GST_OBJECT_LOCK (ee->element);
  p.policy = (EePolicy)ee->policy;
  p.min_exit = ee->min_exit;
  p.max_exit = ee->max_exit;
  if (ee->deadline_reference == GST_EARLY_EXIT_DEADLINE_REFERENCE_CAPTURE
      && ee->have_capture)
    processable = ee->capture_at;
  GST_OBJECT_UNLOCK (ee->element);
  check_exit_range (ee, p.min_exit, p.max_exit);
  p.allowed = allowed;
  /* saturating: a budget of EE_ELEMENT_NO_DEADLINE (a deadline of 2^63 - 1
   * ns or more) is no limit, not a sum that wraps into the past */
  p.deadline = budget >= (GstClockTime)(G_MAXINT64 - MAX (processable, 0))
                   ? G_MAXINT64
                   : processable + (gint64)budget;
  p.position
      = (gint64)gst_segment_to_running_time (segment, GST_FORMAT_TIME, pts);
  p.stop = stop;
  p.stop_data = stop_data;

  if (!ee_stream_run (ee->stream, &p, res, &err))
    goto failed;
  if (res->qos_lowered)
    post_qos (ee, res, segment, pts, duration);
  if (res->exit < 0 && !res->carried) {
    g_set_error (&err, EE_ERROR, EE_ERROR_ARGUMENT,
                 "no exit could run (min-exit %d, max-exit %d)", p.min_exit,
                 p.max_exit);
    goto failed;
  }
  return TRUE;

failed:
  GST_ELEMENT_ERROR (ee->element, STREAM, FAILED,
                     ("Inference failed on a %s with model \"%s\".",
                      ee->info->item, ee_model_path (ee->model)),
                     ("%s", err->message));
  g_clear_error (&err);
  return FALSE;
}

GstStructure *
ee_element_result_new (const char *task)
{
  return gst_structure_new (EARLYEXIT_RESULT_NAME, "task", G_TYPE_STRING, task,
                            NULL);
}

/* Whether the exit's output has a NaN or an infinity. */
static gboolean
output_finite (const EeFrameResult *res)
{
  for (int64_t i = 0; i < res->n_out; i++)
    if (!isfinite (res->value[i]))
      return FALSE;
  return TRUE;
}

/* A result from a non-finite output: the element's fields (all but task)
 * are dropped rather than published as numbers, and valid=FALSE says so. */
static void
invalidate (EeElement *ee, GstStructure *result, const EeFrameResult *res)
{
  guint64 n;

  while (gst_structure_n_fields (result) > 1) {
    const gchar *name = gst_structure_nth_field_name (result, 0);
    if (strcmp (name, "task") == 0)
      name = gst_structure_nth_field_name (result, 1);
    gst_structure_remove_field (result, name);
  }
  gst_structure_set (result, "valid", G_TYPE_BOOLEAN, FALSE, NULL);
  n = ++ee->invalid;
  GST_WARNING_OBJECT (ee->element,
                      "exit %s gave a NaN or infinite output: result marked "
                      "invalid (%" G_GUINT64_FORMAT " since start)",
                      ee->exit_names[res->exit], n);
  if (n == 1)
    GST_ELEMENT_WARNING (
        ee->element, STREAM, FAILED,
        ("Exit %s of model \"%s\" gave a NaN or infinite output: the %s's "
         "result is published with valid=false and without its values. "
         "Check the input for NaN or infinite samples, and the model.",
         ee->exit_names[res->exit], ee_model_path (ee->model), ee->info->item),
        ("further such results are logged at WARNING level in the "
         "earlyexit-element debug category"));
}

/* capture-time (UTC, ns since 1970) and age (capture to `published`) of
 * the item in hand, when its capture is known. */
static void
set_capture (EeElement *ee, GstStructure *result, gint64 published)
{
  if (!ee->have_capture)
    return;
  gst_structure_set (result, "capture-time", G_TYPE_UINT64, ee->capture_utc,
                     "age", G_TYPE_UINT64,
                     (guint64)MAX (published - ee->capture_at, 0), NULL);
}

void
ee_element_result_finish (EeElement *ee, GstStructure *result,
                          const EeFrameResult *res, gint64 processable,
                          GstClockTime budget)
{
  guint unique_id;

  if (!output_finite (res))
    invalidate (ee, result, res);
  GST_OBJECT_LOCK (ee->element);
  unique_id = ee->unique_id;
  GST_OBJECT_UNLOCK (ee->element);
  gst_structure_set (result, "exit", G_TYPE_STRING, ee->exit_names[res->exit],
                     "exit-index", G_TYPE_INT, res->exit, "n-exits", G_TYPE_INT,
                     ee->n_exits, "fresh", G_TYPE_BOOLEAN, TRUE, "deadline",
                     G_TYPE_UINT64, budget, "inference-time", G_TYPE_UINT64,
                     (guint64)MAX (res->published - processable, 0),
                     "deadline-missed", G_TYPE_BOOLEAN, res->missed,
                     "unique-id", G_TYPE_UINT, unique_id, NULL);
  set_capture (ee, result, res->published);
}

GstStructure *
ee_element_carry (EeElement *ee, const EeFrameResult *res, gint64 processable,
                  GstClockTime budget)
{
  GstStructure *result;
  guint unique_id;

  if (!ee->last_result)
    return NULL;
  GST_OBJECT_LOCK (ee->element);
  unique_id = ee->unique_id;
  GST_OBJECT_UNLOCK (ee->element);
  result = gst_structure_copy (ee->last_result);
  gst_structure_set (result, "fresh", G_TYPE_BOOLEAN, FALSE, "unique-id",
                     G_TYPE_UINT, unique_id, NULL);
  if (res)
    gst_structure_set (result, "deadline", G_TYPE_UINT64, budget,
                       "inference-time", G_TYPE_UINT64,
                       (guint64)MAX (res->published - processable, 0),
                       "deadline-missed", G_TYPE_BOOLEAN, res->missed, NULL);
  /* the item's capture, not that of the result carried */
  gst_structure_remove_fields (result, "capture-time", "age", NULL);
  set_capture (ee, result, res ? res->published : ee_now ());
  return result;
}

void
ee_element_publish (EeElement *ee, GstBuffer *buffer, const GstSegment *segment,
                    GstClockTime pts, GstClockTime duration,
                    GstStructure *result)
{
  gboolean post, fresh = FALSE;

  /* what later turns without a run carry */
  if (gst_structure_get_boolean (result, "fresh", &fresh) && fresh) {
    gst_clear_structure (&ee->last_result);
    ee->last_result = gst_structure_copy (result);
  }
  GST_OBJECT_LOCK (ee->element);
  post = ee->post_messages;
  ee->items++;
  GST_OBJECT_UNLOCK (ee->element);

  if (buffer)
    ee_result_meta_attach (buffer, result);
  if (post)
    gst_element_post_message (
        ee->element, ee_result_message_new_full (ee->element, segment, pts,
                                                 duration, result));
  gst_structure_free (result);
}

void
ee_element_qos (EeElement *ee, GstEvent *event)
{
  GstQOSType type;
  gdouble proportion;
  GstClockTimeDiff diff, tolerance = 0;
  GstClockTime timestamp;

  if (!ee->stream)
    return;
  gst_event_parse_qos (event, &type, &proportion, &diff, &timestamp);
  /* a frame late by less than a quarter of the period is the sink's
   * scheduling jitter, not a pipeline falling behind: aiming lower for it
   * would cost deeper exits for nothing (docs/avcrowdcount.md, "Latency and
   * QoS") */
  GST_OBJECT_LOCK (ee->element);
  if (GST_CLOCK_TIME_IS_VALID (ee->period))
    tolerance = (GstClockTimeDiff)(ee->period / 4);
  GST_OBJECT_UNLOCK (ee->element);
  ee_stream_report_qos (ee->stream, diff > tolerance,
                        GST_CLOCK_TIME_IS_VALID (timestamp) ? (gint64)timestamp
                                                            : -1);
}

void
ee_element_reset (EeElement *ee)
{
  ee->index = 0;
  gst_clear_structure (&ee->last_result);
  if (ee->stream)
    ee_stream_reset (ee->stream);
}
