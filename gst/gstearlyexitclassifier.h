/* gst-earlyexit: base class of the classification elements.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef __GST_EARLY_EXIT_CLASSIFIER_H__
#define __GST_EARLY_EXIT_CLASSIFIER_H__

#include <gst/gst.h>
#include <gst/base/gstbasetransform.h>

#include "ee-element.h"

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

#define GST_EARLY_EXIT_CLASSIFIER_MAX_EXITS EE_ELEMENT_MAX_EXITS

struct _GstEarlyExitClassifier
{
  GstBaseTransform parent;

  /* the common properties, the engine and its stream, stats, QoS */
  EeElement ee;

  /* latched at start, then fixed until stop: read by the streaming thread
   * without locking */
  EeModel *model; /* ee.model */
  int n_classes;
  gchar **labels;     /* n_classes names (labels-file, else the model's) */
  float *input;       /* the network input (1, 3, H, W), host memory */
  gsize input_floats; /* 3 * H * W */
  int in_width, in_height;

  /* the latency answered (the budget of one period); object lock */
  GstClockTime latency;
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
 * from `processable` (ee_now() time), for the span [pts, pts + duration);
 * returns the result (owned) with the classification fields (the last
 * result, not fresh, when the engine could not fit a run), or NULL after
 * posting an error. */
GstStructure *gst_early_exit_classifier_classify (GstEarlyExitClassifier *self,
                                                  gint64 processable,
                                                  GstClockTime budget,
                                                  GstClockTime pts,
                                                  GstClockTime duration);

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
