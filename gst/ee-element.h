/* gst-earlyexit: what every earlyexit element shares.
 *
 * The elements have different GStreamer parents (avcrowdcount is a
 * GstAggregator, the classifiers GstBaseTransforms), so what they share is a
 * struct each embeds, not a parent class, the way GstAudioStreamAlign or
 * GstVideoConverter serve many elements:
 *
 * - the common properties (installed by ee_element_class_install as fields
 *   of the embedded struct, gst/ee-props.h): model-file, device,
 *   precision, model-instance-id, threads, batch-size (READY only),
 *   deadline, policy,
 *   min-exit, max-exit, interval, post-messages, unique-id and the read-only
 *   stats; confidence-threshold where the element's results have a
 *   confidence; labels-file and top-k where they are classes;
 * - opening the engine (nn/ee-engine.h) at READY->PAUSED with every failure
 *   as an element error that says what to do, and letting it go at
 *   PAUSED->READY;
 * - a frame's budget, the interval turn, running a frame on the engine (QoS
 *   messages included), carrying the last result, the common result fields,
 *   attaching and posting a result, and QoS events from downstream.
 *
 * Locking: properties under the element's object lock; the fields latched at
 * start are read by the streaming thread without locking. */
#ifndef EE_ELEMENT_H
#define EE_ELEMENT_H

#include <gst/gst.h>

#include "ee-engine.h"
#include "ee-model.h"
#include "ee-props.h"

G_BEGIN_DECLS

/**
 * GstEarlyExitPolicy:
 * @GST_EARLY_EXIT_POLICY_ANYTIME: the newest exit finished by the deadline
 * @GST_EARLY_EXIT_POLICY_CONFIDENCE: as anytime, but stop at the first exit
 *   whose top softmax probability reaches confidence-threshold (classifiers)
 * @GST_EARLY_EXIT_POLICY_FIXED: always exit max-exit (the last exit when -1)
 * @GST_EARLY_EXIT_POLICY_FULL: every exit up to max-exit, deadline ignored
 */
typedef enum
{
  GST_EARLY_EXIT_POLICY_ANYTIME = EE_POLICY_ANYTIME,
  GST_EARLY_EXIT_POLICY_CONFIDENCE = EE_POLICY_CONFIDENCE,
  GST_EARLY_EXIT_POLICY_FIXED = EE_POLICY_FIXED,
  GST_EARLY_EXIT_POLICY_FULL = EE_POLICY_FULL,
} GstEarlyExitPolicy;

/**
 * GstEarlyExitPrecision:
 * @GST_EARLY_EXIT_PRECISION_FP32: 32-bit float storage and arithmetic
 * @GST_EARLY_EXIT_PRECISION_TF32: fp32 storage, TF32 tensor cores (CUDA)
 * @GST_EARLY_EXIT_PRECISION_FP16: 16-bit float storage (CUDA)
 * @GST_EARLY_EXIT_PRECISION_BF16: bfloat16 storage (CPU and CUDA)
 * @GST_EARLY_EXIT_PRECISION_INT8: int8 convolutions (CPU with VNNI; the model
 * file calibrated by earlyexit calibrate)
 */
typedef enum
{
  GST_EARLY_EXIT_PRECISION_FP32 = EE_PRECISION_FP32,
  GST_EARLY_EXIT_PRECISION_TF32 = EE_PRECISION_TF32,
  GST_EARLY_EXIT_PRECISION_FP16 = EE_PRECISION_FP16,
  GST_EARLY_EXIT_PRECISION_BF16 = EE_PRECISION_BF16,
  GST_EARLY_EXIT_PRECISION_INT8 = EE_PRECISION_INT8,
} GstEarlyExitPrecision;

/**
 * GstEarlyExitDeadlineReference:
 * @GST_EARLY_EXIT_DEADLINE_REFERENCE_PROCESSING: the budget counts from when
 *   the element can process the item
 * @GST_EARLY_EXIT_DEADLINE_REFERENCE_CAPTURE: the budget counts from the
 *   item's capture: its NTP reference timestamp (timestamp/x-ntp meta, as
 *   rtpjitterbuffer's add-reference-timestamp-meta gives it), else the
 *   pipeline clock at its running time
 */
typedef enum
{
  GST_EARLY_EXIT_DEADLINE_REFERENCE_PROCESSING,
  GST_EARLY_EXIT_DEADLINE_REFERENCE_CAPTURE,
} GstEarlyExitDeadlineReference;

GType gst_early_exit_policy_get_type (void);
GType gst_early_exit_deadline_reference_get_type (void);
#define GST_TYPE_EARLY_EXIT_DEADLINE_REFERENCE                                 \
  (gst_early_exit_deadline_reference_get_type ())
GType gst_early_exit_precision_get_type (void);
#define GST_TYPE_EARLY_EXIT_POLICY (gst_early_exit_policy_get_type ())
#define GST_TYPE_EARLY_EXIT_PRECISION (gst_early_exit_precision_get_type ())

#define EE_ELEMENT_MAX_EXITS EE_RUNNER_MAX_SEGMENTS
#define EE_ELEMENT_MAX_INPUTS 4

/* The budget of a deadline of 2^63 - 1 ns or more (the deadline property
 * is a guint64, and deadline=-1 from gst-launch-1.0 is 2^64 - 1): no limit,
 * every exit allowed runs and no result is late. Budgets are clamped to it
 * so that sums of a running time and a budget do not wrap. */
#define EE_ELEMENT_NO_DEADLINE ((GstClockTime)G_MAXINT64)

/* What differs between elements, for the properties and messages. */
typedef struct
{
  EeTask task;
  const char *model_blurb; /* model-file's blurb */
  const char *item;        /* "frame", "window": what one run is on */
  const char *stats_name;  /* the stats structure's name; NULL: the
                            * factory's name + "-stats" */
  const char *counted;     /* stats field of the items out: "frames" */
  gboolean confidence;     /* results have a confidence (the property) */
  gsize offset;            /* of the EeElement in the element's instance */
} EeElementInfo;

typedef struct
{
  GstElement *element;
  const EeElementInfo *info;

  /* properties, object lock; prop_* are READY only, latched at start */
  gchar *prop_model_file;
  gchar *prop_device;
  gchar *prop_instance_id;
  GstEarlyExitPrecision prop_precision;
  gint prop_threads;
  gint prop_batch_size;
  GstClockTime deadline;
  GstEarlyExitDeadlineReference deadline_reference;
  GstEarlyExitPolicy policy;
  gint min_exit, max_exit;
  gdouble confidence_threshold;
  gchar *prop_labels_file; /* classes: labels-file */
  guint top_k;             /* classes: top-k */
  guint interval;
  gboolean post_messages;
  guint unique_id;

  /* latched at start, then fixed until stop: the streaming thread reads them
   * without locking (exit_names also the stats getter, set under the object
   * lock) */
  EeEngine *engine;
  EeStream *stream;
  EeModel *model;
  int n_exits;
  gchar **exit_names;
  /* host buffers of the model inputs (ee_element_input_alloc) */
  gpointer inputs[EE_ELEMENT_MAX_INPUTS];
  int n_inputs;

  /* streaming thread only */
  guint64 index;             /* items since start or flush */
  GstStructure *last_result; /* the last fresh result */
  gboolean checked_exits;    /* min/max-exit below were checked (warned) */
  gint checked_min_exit, checked_max_exit;
  guint64 invalid; /* results with a non-finite output since start */
  /* the item in hand (ee_element_item_begin): its capture, when known, as
   * ee_now() time and as UTC (ns since 1970) */
  gboolean have_capture;
  gint64 capture_at;
  guint64 capture_utc;

  /* object lock */
  gboolean running;        /* started (the engine and stream are open) */
  GstClockTime frame_cost; /* estimated full run of a frame, at start */
  GstClockTime period;     /* natural period (frame duration, hop) */
  guint64 items;           /* items out */
} EeElement;

/* class_init: installs the common properties (gst/ee-props.h: the element
 * calls ee_props_init for its type after ee_element_init, and
 * ee_props_finalize). A change of the deadline is announced as
 * "notify::deadline" (the element may report a new latency). */
void ee_element_class_install (GObjectClass *klass, const EeElementInfo *info);
void ee_element_init (EeElement *ee, GstElement *element,
                      const EeElementInfo *info);

/* READY->PAUSED: opens (or joins) the engine and a stream on it; FALSE after
 * posting an element error. max_exits: the most exits the element takes. */
gboolean ee_element_start (EeElement *ee, int max_exits);
/* After ee_element_start: a zeroed host buffer of `bytes` for a model input
 * (page-locked on CUDA, so that uploads run asynchronously), freed by
 * ee_element_stop; NULL after posting an error. */
gpointer ee_element_input_alloc (EeElement *ee, gsize bytes);
/* PAUSED->READY (the streaming thread has stopped): frees the inputs, lets
 * the engine go and forgets the period. */
void ee_element_stop (EeElement *ee);
gboolean ee_element_running (EeElement *ee);

/* The budget of one item: the deadline property (at most
 * EE_ELEMENT_NO_DEADLINE), else `natural` (its duration), else the period,
 * else 40 ms. */
GstClockTime ee_element_budget (EeElement *ee, GstClockTime natural);
void ee_element_set_period (EeElement *ee, GstClockTime period);
/* The inference part of the latency to report: the budget, or with no
 * limit (EE_ELEMENT_NO_DEADLINE) twice the estimated full run of a frame
 * (measured at start), so that a live pipeline can still configure its
 * latency. */
GstClockTime ee_element_latency (EeElement *ee);
/* Whether the next item runs the network (interval); counts it. */
gboolean ee_element_take_turn (EeElement *ee);
/* The same without counting it. */
gboolean ee_element_next_turn (EeElement *ee);

/* An item arrives: returns its `processable` time (ee_now()), and notes when
 * it was captured: buffer's NTP reference timestamp meta (timestamp/x-ntp),
 * else the pipeline clock at `running_time` (GST_CLOCK_TIME_NONE: unknown).
 * A capture time in the future (a file played faster than real time) counts
 * as now. */
gint64 ee_element_item_begin (EeElement *ee, GstBuffer *buffer,
                              GstClockTime running_time);

/* Runs one item whose inputs were given with ee_stream_set_input:
 * `allowed` exits, `budget` from `processable` (ee_now() time), or from the
 * item's capture with deadline-reference=capture when it is known. Warns once
 * per setting when min-exit and max-exit name no range of the model's exits
 * (past the last exit, min above max) and says what runs. Posts a QoS
 * message when downstream lateness lowered the aim (for the item at pts in
 * `segment`), and an element error on failure (FALSE). stop/stop_data: the
 * CONFIDENCE test. */
gboolean ee_element_run (EeElement *ee, guint32 allowed, gint64 processable,
                         GstClockTime budget, const GstSegment *segment,
                         GstClockTime pts, GstClockTime duration,
                         EeStopFunc stop, gpointer stop_data,
                         EeFrameResult *res);

/* A new result: `task` first; the element adds its own fields (count,
 * label ...), then ee_element_result_finish the common ones (exit,
 * exit-index, n-exits, fresh, deadline, inference-time, deadline-missed,
 * unique-id, and capture-time and age when the capture is known), so that
 * every result reads in that order. When the exit's
 * output has a NaN or an infinity, result_finish drops the element's fields
 * and sets valid=FALSE (warning once per start, logging each). */
GstStructure *ee_element_result_new (const char *task);
void ee_element_result_finish (EeElement *ee, GstStructure *result,
                               const EeFrameResult *res, gint64 processable,
                               GstClockTime budget);
/* The last fresh result marked not fresh (owned); NULL before the first.
 * `res` (may be NULL): the item's run that carried it (its deadline fields
 * are the item's). */
GstStructure *ee_element_carry (EeElement *ee, const EeFrameResult *res,
                                gint64 processable, GstClockTime budget);
/* Attaches `result` to `buffer` (writable; NULL: message only) and, with
 * post-messages, posts it as the element message of [pts, pts + duration)
 * in `segment`; a fresh result is kept for carrying. Frees `result`. */
void ee_element_publish (EeElement *ee, GstBuffer *buffer,
                         const GstSegment *segment, GstClockTime pts,
                         GstClockTime duration, GstStructure *result);
/* A QoS event from downstream: a late report lowers the stream's aim. */
void ee_element_qos (EeElement *ee, GstEvent *event);
/* Forgets the carried result and the interval count (flush, new stream). */
void ee_element_reset (EeElement *ee);

G_END_DECLS
#endif /* EE_ELEMENT_H */
