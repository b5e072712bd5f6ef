/* gst-earlyexit: loading a model file for an element, shared by the plugin's
 * elements: every failure becomes an element error that names the file and
 * says what to do. */
#ifndef EE_GSTMODEL_H
#define EE_GSTMODEL_H

#include <gst/gst.h>

#include "ee-model.h"

G_BEGIN_DECLS

/* Loads `path` onto `be` for `element`, which runs models of task `task`
 * (crowd counting or classification) with 1 to `max_exits` exits, and logs
 * the file's `source` metadata (INFO). On success *exit_names gets the exit
 * names (NULL-terminated, g_strfreev) and *n_exits their number. On failure
 * posts the element error (RESOURCE NOT_FOUND: no file set or no such file;
 * OPEN_READ: unreadable; FAILED: malformed, the other task, too many exits)
 * and returns NULL. */
EeModel *ee_gst_model_load (GstElement *element, EeBackend *be,
                            const gchar *path, EeTask task, int max_exits,
                            gchar ***exit_names, int *n_exits);

G_END_DECLS

#endif /* EE_GSTMODEL_H */
