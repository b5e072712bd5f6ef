/* gst-earlyexit: loading a model file for an element (ee-gstmodel.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "ee-gstmodel.h"

GST_DEBUG_CATEGORY_STATIC (ee_gst_model_debug);
#define GST_CAT_DEFAULT ee_gst_model_debug

/* What an element of each task wants, for the messages. */
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

EeModel *
ee_gst_model_load (GstElement *element, EeBackend *be, const gchar *path,
                   EeTask task, int max_exits, gchar ***exit_names,
                   int *n_exits)
{
  static gsize debug_once = 0;
  GError *err = NULL;
  EeModel *model;
  EeRunner *runner;
  gchar *msg;
  int n;

  if (g_once_init_enter (&debug_once)) {
    GST_DEBUG_CATEGORY_INIT (ee_gst_model_debug, "earlyexit-model", 0,
                             "earlyexit elements: model loading");
    g_once_init_leave (&debug_once, 1);
  }
  if (!path || !*path) {
    GST_ELEMENT_ERROR (
        element, RESOURCE, NOT_FOUND,
        ("No model file set. Set the model-file property to %s.",
         task_model (task)),
        ("write one with %s (see --help)", task_converter (task)));
    return NULL;
  }
  if (!g_file_test (path, G_FILE_TEST_EXISTS)) {
    GST_ELEMENT_ERROR (
        element, RESOURCE, NOT_FOUND,
        ("Model file \"%s\" does not exist. Check the model-file property.",
         path),
        (NULL));
    return NULL;
  }

  model = ee_model_load (path, be, TRUE, &err);
  if (!model) {
    if (g_error_matches (err, EE_ERROR, EE_ERROR_FILE))
      GST_ELEMENT_ERROR (
          element, RESOURCE, OPEN_READ,
          ("Could not read model file \"%s\": %s", path, err->message), (NULL));
    else
      GST_ELEMENT_ERROR (
          element, RESOURCE, FAILED,
          ("Model file \"%s\" cannot be used: %s", path, err->message),
          ("regenerate it with %s", task_converter (task)));
    g_clear_error (&err);
    return NULL;
  }
  if (ee_model_task (model) != task) {
    if (task == EE_TASK_COUNT)
      msg = g_strdup_printf ("Model file \"%s\" is a %s classification model, "
                             "not a crowd-counting model. Use %s.",
                             path, ee_model_arch (model), task_model (task));
    else
      msg = g_strdup_printf (
          "Model file \"%s\" is a crowd-counting model (%s), not a "
          "classification model. Use a model file written by %s (or the "
          "avcrowdcount element).",
          path, ee_model_arch (model), task_converter (task));
    GST_ELEMENT_ERROR (element, RESOURCE, FAILED, ("%s", msg), (NULL));
    g_free (msg);
    ee_model_free (model);
    return NULL;
  }
  runner = ee_model_runner (model);
  n = ee_runner_n_exits (runner);
  if (n < 1 || n > max_exits) {
    GST_ELEMENT_ERROR (element, RESOURCE, FAILED,
                       ("Model file \"%s\" has %d exits; expected 1 to %d.",
                        path, n, max_exits),
                       (NULL));
    ee_model_free (model);
    return NULL;
  }
  GST_INFO_OBJECT (element, "model \"%s\": %s", path,
                   ee_model_source (model) ? ee_model_source (model)
                                           : "(no source metadata)");
  *n_exits = n;
  *exit_names = g_new0 (gchar *, n + 1);
  for (int i = 0; i < n; i++)
    (*exit_names)[i] = g_strdup (ee_runner_result (runner, i)->name);
  return model;
}
