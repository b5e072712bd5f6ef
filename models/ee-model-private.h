/* gst-earlyexit: what model builders (audiocsrnet.c, ...) share with
 * ee-model.c. */
#ifndef EE_MODEL_PRIVATE_H
#define EE_MODEL_PRIVATE_H

#include <json-glib/json-glib.h>

#include "ee-features.h"
#include "ee-model.h"
#include "ee-safetensors.h"

G_BEGIN_DECLS

struct _EeModel
{
  char *path;
  char *arch;
  char *config_json;
  char *source; /* metadata "source" (free text), or NULL */
  EeTask task;
  int width, height;
  EePreprocess pre;
  EeSafetensors *st;  /* open while building only */
  GHashTable *used;   /* tensor names read while building */
  GPtrArray *scratch; /* host f32 copies, freed after building */
  EeRunner *runner;
  int batch;        /* frames per run: the first dimension of every input */
  EeCursor *cursor; /* for ee_model_set_* and run_sync, made on first use */
  int image_input, audio_input; /* graph values; -1 when absent */
  guint32 audio_exits;
  int version;   /* format_version of the file */
  char **labels; /* class names (metadata "labels"), or NULL */
  int n_labels;
  gboolean has_features; /* the image input is computed from audio */
  EeFeatureParams features;
};

/* Host f32 copy of tensor `name`, checked against `shape`; freed after the
 * build. NULL (with error) if missing, of another shape, or unreadable. */
float *ee_model_tensor (EeModel *m, const char *name, int ndim,
                        const int64_t *shape, GError **error);
gboolean ee_model_has_tensor (EeModel *m, const char *name);
/* A scratch host buffer of n floats (zeroed) freed after the build. */
float *ee_model_scratch (EeModel *m, gsize n);

/* Config readers: each sets an error naming the key when it is missing or of
 * the wrong type / out of range. */
gboolean ee_json_int (JsonObject *o, const char *what, const char *key,
                      gint64 lo, gint64 hi, gint64 *out, GError **error);
gboolean ee_json_double (JsonObject *o, const char *what, const char *key,
                         double *out, GError **error);
gboolean ee_json_bool (JsonObject *o, const char *what, const char *key,
                       gboolean *out, GError **error);
const char *ee_json_string (JsonObject *o, const char *what, const char *key,
                            const char *const *allowed, GError **error);
JsonArray *ee_json_array (JsonObject *o, const char *what, const char *key,
                          GError **error);
JsonObject *ee_json_object (JsonObject *o, const char *what, const char *key,
                            GError **error);
/* n numbers into out (as float). */
gboolean ee_json_floats (JsonObject *o, const char *what, const char *key,
                         int n, float *out, GError **error);
/* Refuses a member not in `allowed` (NULL-terminated): a file written for
 * another configuration must not load as if the key were not there. */
gboolean ee_json_check_keys (JsonObject *o, const char *what,
                             const char *const *allowed, GError **error);
/* The "preprocess" object into m->pre. */
gboolean ee_model_parse_preprocess (EeModel *m, JsonObject *cfg,
                                    GError **error);

/* Architecture builders: fill m (task, size, preprocess, runner segments). */
gboolean ee_audiocsrnet_build (EeModel *m, JsonObject *config, GError **error);
gboolean ee_resnet152_build (EeModel *m, JsonObject *config, GError **error);
gboolean ee_densenet201_build (EeModel *m, JsonObject *config, GError **error);
gboolean ee_inceptionv3_build (EeModel *m, JsonObject *config, GError **error);

G_END_DECLS
#endif /* EE_MODEL_PRIVATE_H */
