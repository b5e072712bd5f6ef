/* gst-earlyexit: loading a model file into a runnable multi-exit model.
 *
 * ee_model_load() reads the model file (docs/model-format.md), checks every
 * tensor against the architecture, builds the op graph on the given backend in
 * anytime order and cuts it into segments (nn/ee-runner.h). The weights live
 * in the graph's prepared ops; frames run through cursors (nn/ee-runner.h),
 * each with its own activation memory, so one EeModel serves any number of
 * streams through an engine (nn/ee-engine.h). */
#ifndef EE_MODEL_H
#define EE_MODEL_H

#include "ee-features.h"
#include "ee-engine.h"
#include "ee-runner.h"

G_BEGIN_DECLS

typedef struct _EeModel EeModel;

typedef enum
{
  EE_TASK_COUNT,    /* crowd counting: each exit gives 1 value */
  EE_TASK_CLASSIFY, /* classification: each exit gives class logits */
} EeTask;

/* How an 8-bit RGB image becomes the network input:
 * x[c] = (pixel[c] * scale - mean[c]) / std[c], in `channel_order`. */
typedef struct
{
  float scale;
  float mean[3];
  float std[3];
  gboolean bgr; /* channel 0 of the input is blue */
} EePreprocess;

/* plan = FALSE skips the activation arena (enough for `earlyexit info`). */
EeModel *ee_model_load (const char *path, EeBackend *be, gboolean plan,
                        GError **error);
/* The same with `batch` frames per run: every input and output gets a first
 * dimension of `batch` (frame k's input at 1/batch of the bytes, offset k:
 * ee_graph_upload_slot); the engine's batched steps run such a graph. */
EeModel *ee_model_load_batch (const char *path, EeBackend *be, gboolean plan,
                              int batch, GError **error);
void ee_model_free (EeModel *m);

const char *ee_model_path (const EeModel *m);
const char *ee_model_arch (const EeModel *m);
EeTask ee_model_task (const EeModel *m);
void ee_model_input_size (const EeModel *m, int *width, int *height);
const EePreprocess *ee_model_preprocess (const EeModel *m);
/* The model's configuration (the `config` metadata), owned by the model. */
const char *ee_model_config_json (const EeModel *m);
/* Where the weights came from (the free-text `source` metadata, e.g. what a
 * model was trained on), or NULL when the file has none. */
const char *ee_model_source (const EeModel *m);

/* Classification: the name of class `class_id` from the file's "labels", or
 * NULL when the file has none (or the id is out of range). */
const char *ee_model_label (const EeModel *m, int class_id);

/* An exit's decision from its logits: the top class and its softmax
 * probability (the confidence an anytime policy compares), with its label. */
typedef struct
{
  int label_id;
  float confidence;
  const char *label; /* NULL without labels */
} EeClassification;

void ee_model_classify (const EeModel *m, const float *logits, int64_t n,
                        EeClassification *out);

/* Policy CONFIDENCE's test for classifiers (an EeStopFunc, nn/ee-engine.h):
 * TRUE when the top class's softmax probability reaches the threshold
 * *(const double *) `threshold`. A threshold of 1 or more never stops (a
 * probability can round to 1). */
gboolean ee_model_confident (gpointer threshold, int exit_index,
                             const float *logits, int64_t n);

/* TRUE when the image input is computed from audio (audio classification,
 * docs/models.md 1.2, 1.3): *params (may be NULL) then says how, output size
 * included. Feed the features through ee_model_set_image. */
gboolean ee_model_audio_features (const EeModel *m, EeFeatureParams *params);

EeRunner *ee_model_runner (EeModel *m);

/* The engine's loader (EeEngineLoadFunc) for model files: ee_model_load,
 * the model becoming the engine's owner (ee_engine_owner returns it). */
EeRunner *ee_model_engine_load (EeBackend *be, const char *path, int batch,
                                gpointer user_data, gpointer *owner,
                                GDestroyNotify *owner_free, GError **error);
/* Exits (bit i = exit i) that read the audio input; with no audio, run the
 * others. */
guint32 ee_model_audio_exits (const EeModel *m);

/* Graph value ids of the inputs (for nn/ee-runner.h cursors and the
 * engine): the image, and the audio log-mel (-1 when the model has none). */
int ee_model_image_input (const EeModel *m);
int ee_model_audio_input (const EeModel *m);

/* Inputs, preprocessed, float32: image (1,3,H,W) (or the audio features of
 * an audio classifier); audio log-mel (1,1,96,64).
 * Enqueued uploads: the buffers must stay valid until the run has finished.
 * Inputs keep their arena bytes for the whole graph, so a frame may be run
 * again, or continued exit by exit, without setting them again. */
gboolean ee_model_set_image (EeModel *m, const float *image, GError **error);
gboolean ee_model_set_audio (EeModel *m, const float *logmel, GError **error);
/* Runs the requested exits to completion (a convenience for tools and tests)
 * on the model's own cursor. */
gboolean ee_model_run_sync (EeModel *m, guint32 exit_mask, GError **error);
/* Exit `exit_index`'s result of the last ee_model_run_sync (NULL before). */
const EeExitResult *ee_model_result (EeModel *m, int exit_index);

G_END_DECLS
#endif /* EE_MODEL_H */
