/* gst-earlyexit: helpers shared by the GstCheck tests of exitclassify and
 * audioexitclassify (tests/gst/test-exitclassify.c,
 * test-audioexitclassify.c). Static inline so that each test uses what it
 * needs.
 *
 * Models (paths in the environment, set by tests/gst/meson.build): the demo
 * classifiers of pipelines/meson.build, DenseNet201 at 32x32 with exits b1,
 * b2 and final (3 exits), random weights, labels stored in the files:
 * EE_TEST_IMAGE_MODEL (10 CIFAR-10 classes), EE_TEST_SC_MODEL (Speech
 * Commands features, 12 keywords), EE_TEST_GTZAN_MODEL (GTZAN features, 10
 * genres); EE_TEST_COUNT_MODEL is the crowd-counting test model. */
#ifndef CLASSIFY_CHECK_H
#define CLASSIFY_CHECK_H

#include <gst/check/gstcheck.h>
#include <glib/gstdio.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "earlyexit-meta.h"

#define MS GST_MSECOND
/* A deadline no exit of the test models comes near. */
#define GENEROUS (10 * GST_SECOND)
/* The test models' exits, in anytime order. */
#define N_EXITS 3
#define EXIT_B1 0
#define EXIT_B2 1
#define EXIT_FINAL 2

static inline const gchar *
env_path (const gchar *var)
{
  const gchar *p = g_getenv (var);

  fail_unless (p != NULL, "%s is not set (run through meson test)", var);
  return p;
}

/* A `factory` element with `model` (an environment variable naming the
 * file), device=cpu, a generous deadline and the given properties (NULL
 * terminated name/value pairs). */
static inline GstElement *
make_classifier (const gchar *factory, const gchar *model_var,
                 const gchar *first, ...)
{
  GstElement *e = gst_element_factory_make (factory, NULL);
  va_list ap;

  fail_unless (e != NULL, "%s not found: is GST_PLUGIN_PATH set?", factory);
  /* device=auto would try CUDA first */
  g_object_set (e, "model-file", env_path (model_var), "deadline",
                (guint64)GENEROUS, "device", "cpu", NULL);
  va_start (ap, first);
  if (first)
    g_object_set_valist (G_OBJECT (e), first, ap);
  va_end (ap);
  return e;
}

static inline gchar *
write_temp (const gchar *name, const void *data, gsize size)
{
  gchar *unique = g_strdup_printf ("%d-%s", getpid (), name);
  gchar *path = g_build_filename (g_get_tmp_dir (), unique, NULL);

  fail_unless (g_file_set_contents (path, data, size, NULL));
  g_free (unique);
  return path;
}

/* Sets e to PAUSED, expects failure and returns the error (owned); e is
 * back in NULL. */
static inline GError *
start_expecting_error (GstElement *e, gchar **debug)
{
  GstBus *bus = gst_bus_new ();
  GstMessage *msg;
  GError *err = NULL;

  gst_element_set_bus (e, bus);
  fail_unless_equals_int (gst_element_set_state (e, GST_STATE_PAUSED),
                          GST_STATE_CHANGE_FAILURE);
  msg = gst_bus_pop_filtered (bus, GST_MESSAGE_ERROR);
  fail_unless (msg != NULL, "no error message");
  gst_message_parse_error (msg, &err, debug);
  gst_message_unref (msg);
  gst_element_set_state (e, GST_STATE_NULL);
  gst_element_set_bus (e, NULL);
  gst_object_unref (bus);
  return err;
}

/* Starting `factory` with `prop` = `value` (a string property) fails with
 * a RESOURCE error of code `code` whose message contains `needle1` and
 * `needle2` (either may be NULL). */
static inline void
check_start_error (const gchar *factory, const gchar *model_var,
                   const gchar *prop, const gchar *value, gint code,
                   const gchar *needle1, const gchar *needle2)
{
  GstElement *e = make_classifier (factory, model_var, NULL);
  GError *err;
  gchar *debug = NULL;

  if (prop && value)
    gst_util_set_object_arg (G_OBJECT (e), prop, value);
  else if (prop)
    g_object_set (e, prop, NULL, NULL);
  err = start_expecting_error (e, &debug);
  fail_unless (err->domain == GST_RESOURCE_ERROR, "domain %s: %s",
               g_quark_to_string (err->domain), err->message);
  fail_unless_equals_int (err->code, code);
  fail_unless (!needle1 || strstr (err->message, needle1), "\"%s\" not in: %s",
               needle1, err->message);
  fail_unless (!needle2 || strstr (err->message, needle2), "\"%s\" not in: %s",
               needle2, err->message);
  GST_INFO ("%s %s=%s: %s (%s)", factory, prop, value, err->message, debug);
  g_error_free (err);
  g_free (debug);
  gst_object_unref (e);
}

/* A pipeline from a printf-style launch line. */
static inline GstElement *
launch (const gchar *format, ...)
{
  va_list ap;
  gchar *desc;
  GError *err = NULL;
  GstElement *pipe;

  va_start (ap, format);
  desc = g_strdup_vprintf (format, ap);
  va_end (ap);
  pipe = gst_parse_launch (desc, &err);
  fail_unless (pipe != NULL && err == NULL, "%s: %s", desc,
               err ? err->message : "");
  g_free (desc);
  return pipe;
}

/* The next element message, EOS or error from `bus` (owned); fails after
 * 30 s without any. */
static inline GstMessage *
next_message (GstBus *bus)
{
  GstMessage *msg = gst_bus_timed_pop_filtered (
      bus, 30 * GST_SECOND,
      GST_MESSAGE_ELEMENT | GST_MESSAGE_EOS | GST_MESSAGE_ERROR);

  fail_unless (msg != NULL, "the pipeline stalled");
  return msg;
}

/* Plays `pipe` to EOS; returns copies of the results element `name` posted,
 * in order (free with g_ptr_array_unref). Fails on an error. */
static inline GPtrArray *
play_collect (GstElement *pipe, const gchar *name)
{
  GstElement *e = gst_bin_get_by_name (GST_BIN (pipe), name);
  GstBus *bus = gst_element_get_bus (pipe);
  GPtrArray *results
      = g_ptr_array_new_with_free_func ((GDestroyNotify)gst_structure_free);
  gboolean done = FALSE;

  fail_unless (e != NULL);
  fail_if (gst_element_set_state (pipe, GST_STATE_PLAYING)
           == GST_STATE_CHANGE_FAILURE);
  while (!done) {
    GstMessage *msg = next_message (bus);

    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR) {
      GError *err = NULL;
      gchar *debug = NULL;
      gst_message_parse_error (msg, &err, &debug);
      fail ("pipeline error: %s (%s)", err->message, debug);
    }
    done = GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;
    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ELEMENT
        && GST_MESSAGE_SRC (msg) == GST_OBJECT (e))
      g_ptr_array_add (results,
                       gst_structure_copy (gst_message_get_structure (msg)));
    gst_message_unref (msg);
  }
  gst_object_unref (bus);
  gst_object_unref (e);
  return results;
}

/* Plays `pipe` and returns the error it posts (owned); fails when it
 * reaches EOS instead. */
static inline GError *
play_expecting_error (GstElement *pipe)
{
  GstBus *bus = gst_element_get_bus (pipe);
  GError *err = NULL;

  gst_element_set_state (pipe, GST_STATE_PLAYING);
  for (;;) {
    GstMessage *msg = next_message (bus);
    gboolean eos = GST_MESSAGE_TYPE (msg) == GST_MESSAGE_EOS;

    if (GST_MESSAGE_TYPE (msg) == GST_MESSAGE_ERROR)
      gst_message_parse_error (msg, &err, NULL);
    gst_message_unref (msg);
    fail_if (eos, "expected an error, got EOS");
    if (err)
      break;
  }
  gst_element_set_state (pipe, GST_STATE_NULL);
  gst_object_unref (bus);
  return err;
}

static inline GstStructure *
get_stats (GstElement *e)
{
  GstStructure *s = NULL;

  g_object_get (e, "stats", &s, NULL);
  fail_unless (s != NULL);
  return s;
}

static inline guint64
stats_u64 (const GstStructure *s, const gchar *field)
{
  guint64 v = 0;

  fail_unless (gst_structure_get_uint64 (s, field, &v), "stats lack %s", field);
  return v;
}

static inline guint64
stats_exit_u64 (const GstStructure *s, const gchar *field, int exit)
{
  const GValue *array = gst_structure_get_value (s, field);

  fail_unless (array != NULL, "stats lack %s", field);
  return g_value_get_uint64 (gst_value_array_get_value (array, exit));
}

/* The checks every classification result passes: the fields and their
 * ranges, the top-k list sorted and led by the label, `n_classes` classes
 * named as in `labels` (NULL-terminated; NULL: not checked). */
static inline void
check_result (const GstStructure *r, guint top_k, int n_classes,
              const gchar *const *labels)
{
  gint id = earlyexit_result_get_label_id (r);
  gdouble conf = earlyexit_result_get_confidence (r), prev = 1.0;
  guint k = earlyexit_result_get_top_k_size (r);
  const gchar *label = earlyexit_result_get_label (r);

  fail_unless_equals_string (earlyexit_result_get_task (r), "label");
  fail_unless (label != NULL);
  fail_unless (id >= 0 && id < n_classes, "label-id %d", id);
  if (labels)
    fail_unless_equals_string (label, labels[id]);
  fail_unless (conf >= 1.0 / n_classes - 1e-9 && conf <= 1.0, "confidence %f",
               conf);
  fail_unless (earlyexit_result_get_exit (r) != NULL);
  fail_unless (earlyexit_result_get_exit_index (r) >= 0
               && earlyexit_result_get_exit_index (r) < N_EXITS);
  fail_unless_equals_int (earlyexit_result_get_n_exits (r), N_EXITS);
  fail_unless (gst_structure_has_field (r, "fresh"));
  fail_unless (gst_structure_has_field (r, "deadline"));
  fail_unless (gst_structure_has_field (r, "inference-time"));
  fail_unless (gst_structure_has_field (r, "deadline-missed"));
  fail_unless (gst_structure_has_field (r, "unique-id"));
  fail_unless_equals_int (k, MIN (top_k, (guint)n_classes));
  for (guint i = 0; i < k; i++) {
    gint kid;
    gdouble kp;
    const gchar *kl = earlyexit_result_get_top_k (r, i, &kid, &kp);

    fail_unless (kl != NULL && kid >= 0 && kid < n_classes);
    if (labels)
      fail_unless_equals_string (kl, labels[kid]);
    fail_unless (kp <= prev + 1e-12, "top-k not sorted");
    prev = kp;
    if (i == 0) {
      fail_unless_equals_int (kid, id);
      fail_unless (fabs (kp - conf) < 1e-12);
    }
  }
  fail_unless (earlyexit_result_get_top_k (r, k, NULL, NULL) == NULL);
}

/* Warnings of one debug category, collected while capture_warnings is on. */
static GString *captured;
static const gchar *captured_category;

static inline void
capture_log (GstDebugCategory *category, GstDebugLevel level, const gchar *file,
             const gchar *function, gint line, GObject *object,
             GstDebugMessage *message, gpointer user_data)
{
  if (level == GST_LEVEL_WARNING
      && strcmp (gst_debug_category_get_name (category), captured_category)
             == 0)
    g_string_append_printf (captured, "%s\n", gst_debug_message_get (message));
}

/* Asks `e`'s sink pad whether it accepts `caps_str`; *log (may be NULL) gets
 * the warnings `category` logged meanwhile (owned). */
static inline gboolean
accepts_logged (GstElement *e, const gchar *category, const gchar *caps_str,
                gchar **log)
{
  GstPad *pad = gst_element_get_static_pad (e, "sink");
  GstCaps *caps = gst_caps_from_string (caps_str);
  gboolean ok;

  captured = g_string_new (NULL);
  captured_category = category;
  gst_debug_set_threshold_for_name (category, GST_LEVEL_WARNING);
  gst_debug_add_log_function (capture_log, NULL, NULL);
  ok = gst_pad_query_accept_caps (pad, caps);
  gst_debug_remove_log_function (capture_log);
  gst_debug_unset_threshold_for_name (category);
  if (log)
    *log = g_string_free (captured, FALSE);
  else
    g_string_free (captured, TRUE);
  captured = NULL;
  gst_caps_unref (caps);
  gst_object_unref (pad);
  return ok;
}

static inline int
exit_of (const GstStructure *r)
{
  return earlyexit_result_get_exit_index (r);
}

/* `word` occurs in `text` on its own (not inside a longer name). */
static inline gboolean
has_word (const gchar *text, const gchar *word)
{
  gsize len = strlen (word);

  for (const gchar *p = strstr (text, word); p; p = strstr (p + 1, word)) {
    gboolean open = p == text || !(g_ascii_isalnum (p[-1]) || p[-1] == '-');
    gboolean close = !(g_ascii_isalnum (p[len]) || p[len] == '-');
    if (open && close)
      return TRUE;
  }
  return FALSE;
}

/* gst-inspect-1.0's page on `factory`, the plugin found through
 * GST_PLUGIN_PATH (owned). */
static inline gchar *
inspect_page (const gchar *factory)
{
  const gchar *argv[] = { "gst-inspect-1.0", "--no-colors", factory, NULL };
  gchar **env = g_get_environ ();
  gchar *out = NULL, *err_out = NULL;
  gint status;
  GError *err = NULL;

  fail_unless (g_getenv ("GST_PLUGIN_PATH_1_0") != NULL);
  env = g_environ_setenv (env, "GST_PLUGIN_PATH",
                          g_getenv ("GST_PLUGIN_PATH_1_0"), TRUE);
  env = g_environ_unsetenv (env, "GST_PLUGIN_PATH_1_0");
  fail_unless (g_spawn_sync (NULL, (gchar **)argv, env, G_SPAWN_SEARCH_PATH,
                             NULL, NULL, &out, &err_out, &status, &err),
               "gst-inspect-1.0: %s", err ? err->message : "");
  fail_unless (g_spawn_check_wait_status (status, &err),
               "gst-inspect-1.0 %s: %s\n%s", factory, err->message, err_out);
  g_strfreev (env);
  g_free (err_out);
  return out;
}

/* The element's gst-inspect-1.0 page: the description names the meta, the
 * result structure, the message and every field of `message` (a real
 * result message); every property is shown with a blurb that says more
 * than its name. */
static inline void
check_inspect_page (GstElement *e, const gchar *factory,
                    const GstStructure *message)
{
  gchar *page = inspect_page (factory), *desc = NULL, **lines;
  GParamSpec **props;
  guint n_props;

  lines = g_strsplit (page, "\n", -1);
  for (gchar **l = lines; *l && !desc; l++)
    if (g_str_has_prefix (*l, "  Description "))
      desc = g_strdup (*l);
  g_strfreev (lines);
  fail_unless (desc != NULL, "no description:\n%s", page);
  fail_unless (has_word (desc, EARLYEXIT_RESULT_META_NAME)
                   && has_word (desc, EARLYEXIT_RESULT_NAME)
                   && has_word (desc, factory),
               "%s", desc);
  for (gint i = 0; i < gst_structure_n_fields (message); i++)
    fail_unless (has_word (desc, gst_structure_nth_field_name (message, i)),
                 "the description does not mention field %s",
                 gst_structure_nth_field_name (message, i));

  props = g_object_class_list_properties (G_OBJECT_GET_CLASS (e), &n_props);
  for (guint i = 0; i < n_props; i++) {
    const gchar *name = g_param_spec_get_name (props[i]);
    const gchar *blurb = g_param_spec_get_blurb (props[i]);
    gchar *line;

    fail_unless (blurb && *blurb, "property %s has no blurb", name);
    line = g_strdup_printf ("\n  %-20s: %s\n", name, blurb);
    fail_unless (strstr (page, line) != NULL,
                 "gst-inspect-1.0 does not show %s: %s", name, blurb);
    g_free (line);
    /* ours, not GstBaseTransform's or GstObject's */
    if (!g_type_is_a (props[i]->owner_type,
                      g_type_from_name ("GstEarlyExitClassifier")))
      continue;
    fail_unless (strlen (blurb) > 30
                     && strcmp (blurb, g_param_spec_get_nick (props[i])) != 0,
                 "property %s: blurb \"%s\" says too little", name, blurb);
  }
  g_free (props);
  g_free (desc);
  g_free (page);
}

#endif /* CLASSIFY_CHECK_H */
