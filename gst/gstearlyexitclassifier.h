/* gst-earlyexit: base class of the classification elements.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef __GST_EARLY_EXIT_CLASSIFIER_H__
#define __GST_EARLY_EXIT_CLASSIFIER_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>

#include "ee-deadline.h"
#include "ee-model.h"

G_BEGIN_DECLS

#define GST_TYPE_EARLY_EXIT_CLASSIFIER (gst_early_exit_classifier_get_type ())
#define GST_EARLY_EXIT_CLASSIFIER(obj)                                         \
  (G_TYPE_CHECK_INSTANCE_CAST ((obj), GST_TYPE_EARLY_EXIT_CLASSIFIER,          \
                               GstEarlyExitClassifier))
#define GST_EARLY_EXIT_CLASSIFIER_CLASS(klass)                                 \
  (G_TYPE_CHECK_CLASS_CAST ((klass), GST_TYPE_EARLY_EXIT_CLASSIFIER,           \
                            GstEarlyExitClassifierClass))
#define GST_EARLY_EXIT_CLASSIFIER_GET_CLASS(obj)                               \
  (G_TYPE_INSTANCE_GET_CLASS ((obj), GST_TYPE_EARLY_EXIT_CLASSIFIER,           \
                              GstEarlyExitClassifierClass))
#define GST_IS_EARLY_EXIT_CLASSIFIER(obj)                                      \
  (G_TYPE_CHECK_INSTANCE_TYPE ((obj), GST_TYPE_EARLY_EXIT_CLASSIFIER))

typedef struct _GstEarlyExitClassifier GstEarlyExitClassifier;
typedef struct _GstEarlyExitClassifierClass GstEarlyExitClassifierClass;

/**
 * GstEarlyExitClassifierPolicy:
 * @GST_EARLY_EXIT_CLASSIFIER_POLICY_ANYTIME: the newest exit finished by the
 *   deadline
 * @GST_EARLY_EXIT_CLASSIFIER_POLICY_CONFIDENCE: as anytime, but stop at the
 *   first exit whose top softmax probability reaches confidence-threshold
 * @GST_EARLY_EXIT_CLASSIFIER_POLICY_FIXED: always exit max-exit (the last exit
 *   when -1)
 * @GST_EARLY_EXIT_CLASSIFIER_POLICY_FULL: every exit up to max-exit, deadline
 *   ignored
 */
typedef enum
{
  GST_EARLY_EXIT_CLASSIFIER_POLICY_ANYTIME,
  GST_EARLY_EXIT_CLASSIFIER_POLICY_CONFIDENCE,
  GST_EARLY_EXIT_CLASSIFIER_POLICY_FIXED,
  GST_EARLY_EXIT_CLASSIFIER_POLICY_FULL,
} GstEarlyExitClassifierPolicy;

/**
 * GstEarlyExitClassifierPrecision:
 * @GST_EARLY_EXIT_CLASSIFIER_PRECISION_FP32: 32-bit float storage and
 *   arithmetic
 * @GST_EARLY_EXIT_CLASSIFIER_PRECISION_TF32: fp32 storage, TF32 tensor cores
 *   (CUDA)
 * @GST_EARLY_EXIT_CLASSIFIER_PRECISION_FP16: 16-bit float storage (CUDA)
 * @GST_EARLY_EXIT_CLASSIFIER_PRECISION_BF16: bfloat16 storage (CPU and CUDA)
 */
typedef enum
{
  GST_EARLY_EXIT_CLASSIFIER_PRECISION_FP32,
  GST_EARLY_EXIT_CLASSIFIER_PRECISION_TF32,
  GST_EARLY_EXIT_CLASSIFIER_PRECISION_FP16,
  GST_EARLY_EXIT_CLASSIFIER_PRECISION_BF16,
} GstEarlyExitClassifierPrecision;

#define GST_EARLY_EXIT_CLASSIFIER_MAX_EXITS EE_RUNNER_MAX_SEGMENTS

struct _GstEarlyExitClassifier
{
  GstBaseTransform parent;

  /* properties, protected by the object lock; prop_* are READY-only and
   * latched at start (READY->PAUSED) */
  gchar *prop_model_file;
  gchar *prop_labels_file;
  gchar *prop_device;
  GstEarlyExitClassifierPrecision prop_precision;
  GstClockTime deadline;
  GstEarlyExitClassifierPolicy policy;
  gint min_exit, max_exit;
  gdouble confidence_threshold;
  guint top_k;
  guint interval;
  gboolean post_messages;
  guint unique_id;

  /* latched at start, then fixed until stop: read by the streaming thread
   * without locking (exit_names also by the stats getter, set under the
   * object lock) */
  EeBackend *backend;
  EeModel *model;
  EeDeadline *sched;
  int n_exits;
  gchar **exit_names;
  int n_classes;
  gchar **labels;     /* n_classes names (labels-file, else the model's) */
  float *input;       /* the network input (1, 3, H, W), host memory */
  gsize input_floats; /* 3 * H * W */
  int in_width, in_height;

  /* streaming state: the streaming thread only */
  guint64 index;             /* frames or windows since start or flush */
  GstStructure *last_result; /* the last fresh result */

  /* the natural period (frame duration, hop) and the latency answered; object
   * lock */
  GstClockTime period;
  GstClockTime latency;

  /* statistics, protected by the object lock */
  guint64 stat_items, stat_fresh, stat_misses, stat_confident;
  guint64 stat_taken[GST_EARLY_EXIT_CLASSIFIER_MAX_EXITS];
  guint64 stat_runs[GST_EARLY_EXIT_CLASSIFIER_MAX_EXITS];
  guint64 stat_time[GST_EARLY_EXIT_CLASSIFIER_MAX_EXITS];     /* ns, summed */
  guint64 stat_estimate[GST_EARLY_EXIT_CLASSIFIER_MAX_EXITS]; /* ns */
};

/**
 * GstEarlyExitClassifierClass:
 * @parent_class: the parent class
 * @input_name: what one network run classifies ("frame", "window"), for
 *   messages
 * @model_ready: called at start once the model has loaded (before the
 *   warm-up): checks that the model suits the element and prepares what the
 *   element needs; FALSE after posting an error
 * @model_unload: called at stop (and after a failed start) to free what
 *   model_ready made
 */
struct _GstEarlyExitClassifierClass
{
  GstBaseTransformClass parent_class;

  const gchar *input_name;
  gboolean (*model_ready) (GstEarlyExitClassifier *self);
  void (*model_unload) (GstEarlyExitClassifier *self);
};

GType gst_early_exit_classifier_get_type (void);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GstEarlyExitClassifier, gst_object_unref)

/* For subclasses, on the streaming thread. */

/* The budget of one frame or window: the deadline property, else `natural`
 * (its duration), else the period set below, else 40 ms. */
GstClockTime gst_early_exit_classifier_budget (GstEarlyExitClassifier *self,
                                               GstClockTime natural);

/* The natural period of the input (frame duration, hop): the budget when
 * deadline is 0, and so the latency the element adds. */
void gst_early_exit_classifier_set_period (GstEarlyExitClassifier *self,
                                           GstClockTime period);

/* Whether the next frame or window runs the network (interval); counts it. */
gboolean gst_early_exit_classifier_take_turn (GstEarlyExitClassifier *self);

/* Runs the network on self->input, filled by the caller, with `budget` ns
 * from `processable` (ee_deadline_now() time); returns the result (owned)
 * with the classification fields, or NULL after posting an error. */
GstStructure *gst_early_exit_classifier_classify (GstEarlyExitClassifier *self,
                                                  gint64 processable,
                                                  GstClockTime budget);

/* The last fresh result marked not fresh (owned); NULL before the first. */
GstStructure *gst_early_exit_classifier_carry (GstEarlyExitClassifier *self);

/* Attaches `result` to `buffer` (writable; NULL: message only) and, with
 * post-messages, posts it as the element message of the span [pts, pts +
 * duration); a fresh result is kept for carrying. Frees `result`. */
void gst_early_exit_classifier_publish (GstEarlyExitClassifier *self,
                                        GstBuffer *buffer, GstClockTime pts,
                                        GstClockTime duration,
                                        GstStructure *result);

/* Forgets the carried result and the interval count (flush, new stream). */
void gst_early_exit_classifier_reset (GstEarlyExitClassifier *self);

G_END_DECLS
#endif /* __GST_EARLY_EXIT_CLASSIFIER_H__ */
