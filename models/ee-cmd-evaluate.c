/* `earlyexit evaluate MODEL --data DIR [--deadline MS|uniform:LO:HI]
 *     [--policy LIST] [--threshold T] [--exit NAME] [--seed N] [--json]`:
 * anytime evaluation of a classifier. What does each way of using the exits
 * get right when every input comes with a deadline?
 *
 * Data: DIR/CLASS/FILE, CLASS a name from the model's labels (or a class
 * number when the file has none); FILE a PNG or JPEG, a .npy network input
 * (1,3,H,W), or for an audio classifier a WAV. Hidden files are skipped.
 *
 * Every input is run once with all its exits (each exit's accuracy and
 * finish time in anytime order), then once per policy through the anytime
 * engine (nn/ee-engine.h), the element's scheduler, with the deadline drawn
 * for it:
 *   full        every exit, the final one answering
 *   fixed       the --exit exit (default: the first) alone
 *   anytime     the newest exit finished by the deadline
 *   confidence  anytime, ending at the first exit whose confidence (softmax
 *               top-1) reaches --threshold
 * An answer whose exit finished after the deadline counts as wrong. The
 * engine does not start an exit it expects to miss the deadline, and a
 * deadline shorter than any exit still runs the first one (late). FLOPs are
 * those of the segments of the exits that finished.
 * Reported per policy: accuracy, the fraction answered, mean GFLOP and mean
 * time (ms) computed; per exit: accuracy without a deadline, GFLOP up to it
 * (alone) and mean finish time in anytime order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "ee-cmds.h"
#include "ee-inputs.h"

typedef struct
{
  double lo, hi; /* ms; lo == hi: fixed */
} Deadline;

/* One labelled input of DIR. */
typedef struct
{
  char *path;
  int label;
} Sample;

#define N_POLICIES (EE_POLICY_FULL + 1)

/* What one policy got over the data. */
typedef struct
{
  gboolean on;
  int correct, answered;
  double flops, time_ms;
} Tally;

static gboolean
parse_deadline (const char *s, Deadline *d, GError **error)
{
  char *end;

  if (g_str_has_prefix (s, "uniform:")) {
    d->lo = g_ascii_strtod (s + 8, &end);
    if (*end == ':') {
      d->hi = g_ascii_strtod (end + 1, &end);
      if (!*end && d->lo > 0 && d->hi >= d->lo)
        return TRUE;
    }
  } else {
    d->lo = d->hi = g_ascii_strtod (s, &end);
    if (!*end && end != s && d->lo > 0)
      return TRUE;
  }
  g_set_error (
      error, EE_ERROR, EE_ERROR_ARGUMENT,
      "--deadline \"%s\": give milliseconds (e.g. 40) or uniform:LO:HI with "
      "0 < LO <= HI",
      s);
  return FALSE;
}

static gboolean
parse_policies (const char *list, Tally *t, GError **error)
{
  char **names = g_strsplit (list, ",", -1);
  gboolean ok = TRUE;

  for (char **n = names; *n && ok; n++) {
    int p;
    for (p = 0; p < N_POLICIES; p++)
      if (!strcmp (g_strstrip (*n), ee_policy_name (p)))
        break;
    if (p == N_POLICIES) {
      g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                   "--policy: \"%s\" is not anytime, confidence, fixed or full",
                   *n);
      ok = FALSE;
    } else {
      t[p].on = TRUE;
    }
  }
  g_strfreev (names);
  return ok;
}

/* The class a folder of DIR names. */
static int
class_of (EeModel *m, int n_classes, const char *dir, const char *name,
          GError **error)
{
  char *end;
  gint64 id;

  if (ee_model_label (m, 0)) {
    for (int i = 0; i < n_classes; i++)
      if (!strcmp (ee_model_label (m, i), name))
        return i;
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s/%s: not a class of the model (its labels: %s, %s, ...)",
                 dir, name, ee_model_label (m, 0),
                 ee_model_label (m, MIN (1, n_classes - 1)));
    return -1;
  }
  id = g_ascii_strtoll (name, &end, 10);
  if (*end || end == name || id < 0 || id >= n_classes) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_ARGUMENT,
        "%s/%s: the model has no labels, so folders must be class numbers "
        "0..%d",
        dir, name, n_classes - 1);
    return -1;
  }
  return (int)id;
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

/* Sorted names of DIR's entries, hidden ones left out. */
static GPtrArray *
list_dir (const char *dir, GError **error)
{
  GDir *d = g_dir_open (dir, 0, error);
  GPtrArray *names;
  const char *n;

  if (!d)
    return NULL;
  names = g_ptr_array_new_with_free_func (g_free);
  while ((n = g_dir_read_name (d)))
    if (n[0] != '.')
      g_ptr_array_add (names, g_strdup (n));
  g_dir_close (d);
  g_ptr_array_sort (names, compare_strings);
  return names;
}

static GArray *
list_samples (EeModel *m, int n_classes, const char *dir, GError **error)
{
  static const char *const exts[] = { ".png", ".jpg", ".jpeg", ".npy", ".wav" };
  GArray *samples = g_array_new (FALSE, FALSE, sizeof (Sample));
  GPtrArray *classes = list_dir (dir, error);
  gboolean ok = classes != NULL;

  for (guint i = 0; ok && i < classes->len; i++) {
    const char *cls = g_ptr_array_index (classes, i);
    char *sub = g_build_filename (dir, cls, NULL);
    GPtrArray *files;
    int label;

    if (!g_file_test (sub, G_FILE_TEST_IS_DIR)) {
      g_free (sub);
      continue;
    }
    label = class_of (m, n_classes, dir, cls, error);
    files = label < 0 ? NULL : list_dir (sub, error);
    ok = files != NULL;
    for (guint k = 0; ok && k < files->len; k++) {
      Sample s = { g_build_filename (sub, g_ptr_array_index (files, k), NULL),
                   label };
      gboolean known = FALSE;
      for (gsize e = 0; e < G_N_ELEMENTS (exts); e++)
        known |= g_str_has_suffix (s.path, exts[e]);
      if (!known) {
        g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                     "%s: not a .png, .jpg, .npy or .wav file", s.path);
        g_free (s.path);
        ok = FALSE;
      } else {
        g_array_append_val (samples, s);
      }
    }
    if (files)
      g_ptr_array_unref (files);
    g_free (sub);
  }
  if (classes)
    g_ptr_array_unref (classes);
  if (ok && samples->len == 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s: no inputs (expected DIR/CLASS/FILE)", dir);
    ok = FALSE;
  }
  if (!ok) {
    for (guint i = 0; i < samples->len; i++)
      g_free (g_array_index (samples, Sample, i).path);
    g_array_unref (samples);
    return NULL;
  }
  return samples;
}

/* FLOPs of the segments exits `ran` needed. */
static double
flops_of (EeRunner *r, guint32 ran)
{
  guint32 segs = 0;
  double f = 0.0;

  for (int i = 0; i < ee_runner_n_exits (r); i++)
    if (ran & (1u << i))
      segs |= ee_runner_exit_needs (r, i);
  for (int s = 0; s < ee_runner_n_segments (r); s++)
    if (segs & (1u << s))
      f += ee_runner_segment (r, s)->flops;
  return f;
}

static float *
load_input (EeModel *m, const char *path, GError **error)
{
  EeFeatureParams features;
  double coverage;

  if (ee_model_audio_features (m, &features)
      && !g_str_has_suffix (path, ".npy"))
    return ee_input_audio (path, &features, &coverage, error);
  return ee_input_image (m, path, error);
}

/* Every exit on `input`, without a deadline: each exit's correctness and
 * finish time in anytime order. */
static gboolean
run_exits (EeModel *m, const float *input, int label, int *exit_correct,
           double *exit_time, GError **error)
{
  int n = ee_runner_n_exits (ee_model_runner (m));

  if (!ee_model_set_image (m, input, error)
      || !ee_model_run_sync (m, (1u << n) - 1, error))
    return FALSE;
  for (int i = 0; i < n; i++) {
    const EeExitResult *res = ee_model_result (m, i);
    EeClassification c;
    ee_model_classify (m, res->value, res->n_out, &c);
    exit_correct[i] += c.label_id == label;
    exit_time[i] += res->time_ms;
  }
  return TRUE;
}

/* One policy on the input the stream holds, with `deadline_ms`. */
static gboolean
run_policy (EeStream *s, EePolicy policy, int fixed, double *threshold,
            int label, double deadline_ms, Tally *t, GError **error)
{
  EeEngine *e = ee_stream_engine (s);
  EeModel *m = ee_engine_owner (e);
  EeRunner *r = ee_engine_runner (e);
  gint64 budget = (gint64)(deadline_ms * 1e6);
  EeFrameParams p = { .policy = policy,
                      .allowed = G_MAXUINT32,
                      .min_exit = -1,
                      .max_exit = policy == EE_POLICY_FIXED ? fixed : -1,
                      .position = -1,
                      .stop = ee_model_confident,
                      .stop_data = threshold };
  EeFrameResult res;
  EeClassification c;

  /* every input on its own: nothing to carry from the one before */
  ee_stream_reset (s);
  p.deadline = ee_now () + budget;
  if (!ee_stream_run (s, &p, &res, error))
    return FALSE;
  t->time_ms += MIN (res.published - res.start, budget) / 1e6;
  t->flops += flops_of (r, res.ran);
  if (res.exit < 0 || res.missed)
    return TRUE;
  ee_model_classify (m, res.value, res.n_out, &c);
  t->answered++;
  t->correct += c.label_id == label;
  return TRUE;
}

/* FLOPs of exit i alone (with what it needs). */
static double
exit_flops (EeRunner *r, int i)
{
  return ee_runner_segment (r, ee_runner_exit_segment (r, i))->flops_total;
}

static void
print_report (EeModel *m, const char *dir, int n, const Deadline *d,
              const Tally *tally, const int *exit_correct,
              const double *exit_time, int fixed, double threshold,
              gboolean json)
{
  EeRunner *r = ee_model_runner (m);
  int n_exits = ee_runner_n_exits (r);

  if (json) {
    JsonBuilder *b = json_builder_new ();
    JsonNode *root;
    char *text;

    json_builder_begin_object (b);
    json_builder_set_member_name (b, "model");
    json_builder_add_string_value (b, ee_model_path (m));
    json_builder_set_member_name (b, "data");
    json_builder_add_string_value (b, dir);
    json_builder_set_member_name (b, "samples");
    json_builder_add_int_value (b, n);
    json_builder_set_member_name (b, "deadline_ms");
    json_builder_begin_array (b);
    json_builder_add_double_value (b, d->lo);
    json_builder_add_double_value (b, d->hi);
    json_builder_end_array (b);
    json_builder_set_member_name (b, "threshold");
    json_builder_add_double_value (b, threshold);
    json_builder_set_member_name (b, "fixed_exit");
    json_builder_add_string_value (b, ee_runner_exit_name (r, fixed));
    json_builder_set_member_name (b, "exits");
    json_builder_begin_array (b);
    for (int i = 0; i < n_exits; i++) {
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "name");
      json_builder_add_string_value (b, ee_runner_exit_name (r, i));
      json_builder_set_member_name (b, "accuracy");
      json_builder_add_double_value (b, (double)exit_correct[i] / n);
      json_builder_set_member_name (b, "flops_to_exit");
      json_builder_add_double_value (b, exit_flops (r, i));
      json_builder_set_member_name (b, "mean_time_ms");
      json_builder_add_double_value (b, exit_time[i] / n);
      json_builder_end_object (b);
    }
    json_builder_end_array (b);
    json_builder_set_member_name (b, "policies");
    json_builder_begin_array (b);
    for (int p = 0; p < N_POLICIES; p++) {
      if (!tally[p].on)
        continue;
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "name");
      json_builder_add_string_value (b, ee_policy_name (p));
      json_builder_set_member_name (b, "accuracy");
      json_builder_add_double_value (b, (double)tally[p].correct / n);
      json_builder_set_member_name (b, "answered");
      json_builder_add_double_value (b, (double)tally[p].answered / n);
      json_builder_set_member_name (b, "mean_flops");
      json_builder_add_double_value (b, tally[p].flops / n);
      json_builder_set_member_name (b, "mean_time_ms");
      json_builder_add_double_value (b, tally[p].time_ms / n);
      json_builder_end_object (b);
    }
    json_builder_end_array (b);
    json_builder_end_object (b);
    root = json_builder_get_root (b);
    text = json_to_string (root, TRUE);
    printf ("%s\n", text);
    g_free (text);
    json_node_unref (root);
    g_object_unref (b);
    return;
  }
  printf ("model:    %s\ndata:     %s, %d inputs\n", ee_model_path (m), dir, n);
  if (d->lo == d->hi)
    printf ("deadline: %g ms\n", d->lo);
  else
    printf ("deadline: uniform %g..%g ms\n", d->lo, d->hi);
  printf ("\n  %-10s %9s %12s %14s\n", "exit", "accuracy", "GFLOP alone",
          "anytime t (ms)");
  for (int i = 0; i < n_exits; i++)
    printf ("  %-10s %9.4f %12.3f %14.2f\n", ee_runner_exit_name (r, i),
            (double)exit_correct[i] / n, exit_flops (r, i) / 1e9,
            exit_time[i] / n);
  printf ("\n  %-22s %9s %9s %11s %13s\n", "policy", "accuracy", "answered",
          "mean GFLOP", "mean time ms");
  for (int p = 0; p < N_POLICIES; p++) {
    char name[64];
    if (!tally[p].on)
      continue;
    if (p == EE_POLICY_CONFIDENCE)
      g_snprintf (name, sizeof name, "confidence >= %g", threshold);
    else if (p == EE_POLICY_FIXED)
      g_snprintf (name, sizeof name, "fixed %s",
                  ee_runner_exit_name (r, fixed));
    else
      g_strlcpy (name, ee_policy_name (p), sizeof name);
    printf ("  %-22s %9.4f %9.4f %11.3f %13.2f\n", name,
            (double)tally[p].correct / n, (double)tally[p].answered / n,
            tally[p].flops / n / 1e9, tally[p].time_ms / n);
  }
}

int
ee_cmd_evaluate (int argc, char **argv)
{
  char *data = NULL, *deadline_s = NULL, *policies = NULL, *fixed_s = NULL;
  double threshold = 0.9;
  int seed = 0, threads = 0;
  gboolean json = FALSE;
  GOptionEntry entries[] = {
    { "data", 0, 0, G_OPTION_ARG_FILENAME, &data,
      "Labelled inputs: DIR/CLASS/FILE (CLASS a label or class number)",
      "DIR" },
    { "deadline", 0, 0, G_OPTION_ARG_STRING, &deadline_s,
      "Per input, in ms: a number or uniform:LO:HI (default 1e9: none)", "D" },
    { "policy", 0, 0, G_OPTION_ARG_STRING, &policies,
      "Comma-separated: anytime,confidence,fixed,full (default: all)", "LIST" },
    { "threshold", 0, 0, G_OPTION_ARG_DOUBLE, &threshold,
      "Confidence policy: softmax top-1 that stops (default 0.9)", "T" },
    { "exit", 0, 0, G_OPTION_ARG_STRING, &fixed_s,
      "Fixed policy: the exit (default: the first)", "NAME" },
    { "seed", 0, 0, G_OPTION_ARG_INT, &seed, "Seed of the deadlines", "N" },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print one JSON object", NULL },
    { "threads", 0, 0, G_OPTION_ARG_INT, &threads,
      "CPU threads (default: all cores)", "N" },
    { NULL }
  };
  GOptionContext *ctx = g_option_context_new (
      "MODEL - anytime evaluation "
      "of a classifier on labelled inputs under deadlines");
  GError *error = NULL;
  EeEngineConfig cfg = ee_engine_default_config ();
  EeEngine *engine = NULL;
  EeStream *stream = NULL;
  EeModel *m = NULL;
  EeRunner *r;
  GArray *samples = NULL;
  GRand *rand = NULL;
  Deadline deadline = { 1e9, 1e9 };
  Tally tally[N_POLICIES] = { 0 };
  int fixed = 0, n_classes, status = 1;
  int exit_correct[32] = { 0 };
  double exit_time[32] = { 0 };

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    goto out;
  if (argc != 2 || !data) {
    g_printerr (
        "usage: earlyexit evaluate MODEL --data DIR [--deadline "
        "MS|uniform:LO:HI] [--policy LIST] [--threshold T] [--exit NAME] "
        "[--json]\n");
    status = 2;
    goto out;
  }
  if ((deadline_s && !parse_deadline (deadline_s, &deadline, &error))
      || !parse_policies (policies ? policies : "anytime,confidence,fixed,full",
                          tally, &error))
    goto out;
  cfg.model_file = argv[1];
  cfg.device = "cpu";
  cfg.threads = threads;
  if (!(engine = ee_engine_acquire (&cfg, ee_model_engine_load, NULL, &error)))
    goto out;
  m = ee_engine_owner (engine);
  if (ee_model_task (m) != EE_TASK_CLASSIFY) {
    g_set_error (
        &error, EE_ERROR, EE_ERROR_ARGUMENT,
        "%s: evaluate needs a classifier (its exits give class logits)",
        argv[1]);
    goto out;
  }
  r = ee_model_runner (m);
  n_classes = (int)ee_runner_segment (r, ee_runner_exit_segment (r, 0))->n_out;
  if (fixed_s && (fixed = ee_runner_find_exit (r, fixed_s)) < 0) {
    g_set_error (&error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "--exit: the model has no exit \"%s\"", fixed_s);
    goto out;
  }
  if (!(samples = list_samples (m, n_classes, data, &error))
      || !(stream = ee_stream_new (engine, &error)))
    goto out;
  rand = g_rand_new_with_seed ((guint32)seed);

  for (guint i = 0; i < samples->len; i++) {
    const Sample *s = &g_array_index (samples, Sample, i);
    float *input = load_input (m, s->path, &error);
    double d = g_rand_double_range (rand, deadline.lo, deadline.hi);
    gboolean ok;

    if (!input)
      goto out;
    ee_stream_set_input (stream, ee_model_image_input (m), input);
    ok = run_exits (m, input, s->label, exit_correct, exit_time, &error);
    for (int p = 0; p < N_POLICIES && ok; p++)
      ok = !tally[p].on
           || run_policy (stream, p, fixed, &threshold, s->label, d, &tally[p],
                          &error);
    g_free (input);
    if (!ok) {
      g_prefix_error (&error, "%s: ", s->path);
      goto out;
    }
  }
  print_report (m, data, (int)samples->len, &deadline, tally, exit_correct,
                exit_time, fixed, threshold, json);
  status = 0;

out:
  if (error)
    g_printerr ("earlyexit evaluate: %s\n", error->message);
  g_clear_error (&error);
  if (samples) {
    for (guint i = 0; i < samples->len; i++)
      g_free (g_array_index (samples, Sample, i).path);
    g_array_unref (samples);
  }
  if (rand)
    g_rand_free (rand);
  ee_stream_free (stream);
  ee_engine_release (engine);
  g_free (data);
  g_free (deadline_s);
  g_free (policies);
  g_free (fixed_s);
  g_option_context_free (ctx);
  return status;
}
