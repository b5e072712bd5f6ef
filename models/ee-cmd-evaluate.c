/* `earlyexit evaluate MODEL --data DIR [--deadline MS|uniform:LO:HI]
 *     [--policy LIST] [--threshold T] [--exit NAME] [--seed N] [--json]`:
 * anytime evaluation of a classifier. What does each way of using the exits
 * get right when every input comes with a deadline?
 *
 * Data: DIR/CLASS/FILE, CLASS a name from the model's labels (or a class
 * number when the file has none); FILE a PNG or JPEG, a .npy network input
 * (1,3,H,W), or for an audio classifier a WAV. Hidden files are skipped.
 *
 * Every input is run three times on this machine: all exits in anytime order
 * (each exit's logits and finish time), the final exit alone, and the --exit
 * exit alone. The deadline, drawn for each input, then applies to those
 * measured times, so every policy sees the same runs:
 *   full        the final exit, if it finishes by the deadline
 *   fixed       the --exit exit (default: the first) alone, if it finishes
 *   anytime     exits in order until the deadline; the newest finished one
 *   confidence  exits in order until one's confidence (softmax top-1) reaches
 *               --threshold; at the deadline, the newest finished one
 * No answer by the deadline counts as wrong. Computing stops at the answer
 * (anytime: at the last exit) or at the deadline, whichever comes first; the
 * work of a step cut by the deadline counts in proportion to the time it ran.
 * Reported per policy: accuracy, the fraction answered, mean GFLOP and mean
 * time (ms) computed; per exit: accuracy without a deadline, GFLOP up to it
 * (alone) and mean finish time in anytime order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "ee-cmds.h"
#include "ee-inputs.h"

typedef enum
{
  POLICY_ANYTIME,
  POLICY_CONFIDENCE,
  POLICY_FIXED,
  POLICY_FULL,
  N_POLICIES
} Policy;

static const char *const policy_names[N_POLICIES]
    = { "anytime", "confidence", "fixed", "full" };

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

/* What one policy got over the data. */
typedef struct
{
  gboolean on;
  int correct, answered;
  double flops, time_ms;
} Tally;

/* Measurements of one input, from which every policy's outcome follows. */
typedef struct
{
  int n;                  /* exits, final included */
  int top[32];            /* each exit's class */
  float conf[32];         /* and confidence */
  double t[32];           /* finish times in anytime order, ms */
  double t_full, t_fixed; /* the final exit alone, the fixed exit alone */
} Run;

/* FLOPs of the model, from its segments. */
typedef struct
{
  double anytime[32]; /* everything up to exit i in anytime order */
  double alone[32];   /* exit i and what it needs */
} Costs;

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
      if (!strcmp (g_strstrip (*n), policy_names[p]))
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

static void
costs_of (EeRunner *r, Costs *c)
{
  double sum = 0.0;
  int exit = 0;

  for (int i = 0; i < ee_runner_n_segments (r); i++) {
    const EeSegment *s = ee_runner_segment (r, i);
    sum += s->flops;
    if (s->is_exit) {
      c->anytime[exit] = sum;
      c->alone[exit] = s->flops_total;
      exit++;
    }
  }
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

/* One run of the exits in `mask`. The input is uploaded again each time: a
 * run may reuse its arena bytes once nothing reads it any more. */
static gboolean
run_once (EeModel *m, const float *input, guint32 mask, GError **error)
{
  return ee_model_set_image (m, input, error)
         && ee_model_run_sync (m, mask, error);
}

/* Runs the input three times (see the header) and records what counts. */
static gboolean
measure (EeModel *m, const float *input, int fixed, Run *run, GError **error)
{
  EeRunner *r = ee_model_runner (m);
  int last = ee_runner_n_exits (r) - 1;

  run->n = last + 1;
  /* The first exit, untimed: loading the input let the backend's threads
   * fall asleep, and waking them must not count against the first run. */
  if (!run_once (m, input, 1u, error)
      || !run_once (m, input, (1u << run->n) - 1, error))
    return FALSE;
  for (int i = 0; i < run->n; i++) {
    const EeExitResult *res = ee_model_result (m, i);
    EeClassification c;
    ee_model_classify (m, res->value, res->n_out, &c);
    run->top[i] = c.label_id;
    run->conf[i] = c.confidence;
    run->t[i] = res->time_ms;
  }
  if (!run_once (m, input, 1u << last, error))
    return FALSE;
  run->t_full = ee_model_result (m, last)->time_ms;
  if (!run_once (m, input, 1u << fixed, error))
    return FALSE;
  run->t_fixed = ee_model_result (m, fixed)->time_ms;
  return TRUE;
}

/* One computation that answers with `answer` at time t for `flops`, unless
 * the deadline cuts it. */
static void
tally_single (Tally *t, gboolean right, double time, double flops,
              double deadline)
{
  if (time <= deadline) {
    t->answered++;
    t->correct += right;
    t->time_ms += time;
    t->flops += flops;
  } else {
    t->time_ms += deadline;
    t->flops += flops * deadline / time;
  }
}

/* Exits in anytime order, stopping at exit `stop` (the answer) or at the
 * deadline, answering with the newest exit finished by then. */
static void
tally_sequence (Tally *t, const Run *run, const Costs *c, int label, int stop,
                double deadline)
{
  int j = -1;

  while (j < stop && run->t[j + 1] <= deadline)
    j++;
  if (j == stop) {
    t->time_ms += run->t[stop];
    t->flops += c->anytime[stop];
  } else {
    double t0 = j < 0 ? 0.0 : run->t[j], f0 = j < 0 ? 0.0 : c->anytime[j];
    double span = run->t[j + 1] - t0;
    t->time_ms += deadline;
    t->flops += f0
                + (c->anytime[j + 1] - f0)
                      * (span > 0 ? (deadline - t0) / span : 0.0);
  }
  if (j >= 0) {
    t->answered++;
    t->correct += run->top[j] == label;
  }
}

static void
tally_run (Tally *tally, const Run *run, const Costs *c, int label, int fixed,
           double threshold, double deadline)
{
  int last = run->n - 1, stop = last;

  for (int i = 0; i < run->n; i++)
    if (run->conf[i] >= threshold) {
      stop = i;
      break;
    }
  if (tally[POLICY_ANYTIME].on)
    tally_sequence (&tally[POLICY_ANYTIME], run, c, label, last, deadline);
  if (tally[POLICY_CONFIDENCE].on)
    tally_sequence (&tally[POLICY_CONFIDENCE], run, c, label, stop, deadline);
  if (tally[POLICY_FIXED].on)
    tally_single (&tally[POLICY_FIXED], run->top[fixed] == label, run->t_fixed,
                  c->alone[fixed], deadline);
  if (tally[POLICY_FULL].on)
    tally_single (&tally[POLICY_FULL], run->top[last] == label, run->t_full,
                  c->alone[last], deadline);
}

static void
print_report (EeModel *m, const char *dir, int n, const Deadline *d,
              const Tally *tally, const int *exit_correct,
              const double *exit_time, const Costs *c, int fixed,
              double threshold, gboolean json)
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
      json_builder_add_double_value (b, c->alone[i]);
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
      json_builder_add_string_value (b, policy_names[p]);
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
            (double)exit_correct[i] / n, c->alone[i] / 1e9, exit_time[i] / n);
  printf ("\n  %-22s %9s %9s %11s %13s\n", "policy", "accuracy", "answered",
          "mean GFLOP", "mean time ms");
  for (int p = 0; p < N_POLICIES; p++) {
    char name[64];
    if (!tally[p].on)
      continue;
    if (p == POLICY_CONFIDENCE)
      g_snprintf (name, sizeof name, "confidence >= %g", threshold);
    else if (p == POLICY_FIXED)
      g_snprintf (name, sizeof name, "fixed %s",
                  ee_runner_exit_name (r, fixed));
    else
      g_strlcpy (name, policy_names[p], sizeof name);
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
  EeBackend *be = NULL;
  EeModel *m = NULL;
  EeRunner *r;
  GArray *samples = NULL;
  GRand *rand = NULL;
  Deadline deadline = { 1e9, 1e9 };
  Tally tally[N_POLICIES] = { 0 };
  Costs costs;
  int fixed = 0, n_exits, n_classes, status = 1;
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
  if (!(be = ee_backend_cpu_new (threads, &error))
      || !(m = ee_model_load (argv[1], be, TRUE, &error)))
    goto out;
  if (ee_model_task (m) != EE_TASK_CLASSIFY) {
    g_set_error (
        &error, EE_ERROR, EE_ERROR_ARGUMENT,
        "%s: evaluate needs a classifier (its exits give class logits)",
        argv[1]);
    goto out;
  }
  r = ee_model_runner (m);
  n_exits = ee_runner_n_exits (r);
  n_classes = (int)ee_runner_segment (r, ee_runner_exit_segment (r, 0))->n_out;
  if (fixed_s && (fixed = ee_runner_find_exit (r, fixed_s)) < 0) {
    g_set_error (&error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "--exit: the model has no exit \"%s\"", fixed_s);
    goto out;
  }
  if (!(samples = list_samples (m, n_classes, data, &error)))
    goto out;
  costs_of (r, &costs);
  rand = g_rand_new_with_seed ((guint32)seed);

  for (guint i = 0; i < samples->len; i++) {
    const Sample *s = &g_array_index (samples, Sample, i);
    float *input = load_input (m, s->path, &error);
    double d = g_rand_double_range (rand, deadline.lo, deadline.hi);
    Run run;
    gboolean ok;

    if (!input)
      goto out;
    /* the first run pays for one-time setup inside the backend */
    ok = (i > 0 || measure (m, input, fixed, &run, &error))
         && measure (m, input, fixed, &run, &error);
    g_free (input);
    if (!ok) {
      g_prefix_error (&error, "%s: ", s->path);
      goto out;
    }
    for (int k = 0; k < n_exits; k++) {
      exit_correct[k] += run.top[k] == s->label;
      exit_time[k] += run.t[k];
    }
    tally_run (tally, &run, &costs, s->label, fixed, threshold, d);
  }
  print_report (m, data, (int)samples->len, &deadline, tally, exit_correct,
                exit_time, &costs, fixed, threshold, json);
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
  ee_model_free (m);
  ee_backend_free (be);
  g_free (data);
  g_free (deadline_s);
  g_free (policies);
  g_free (fixed_s);
  g_option_context_free (ctx);
  return status;
}
