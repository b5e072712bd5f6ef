/* gst-earlyexit: the classification backbones per exit on the CPU backend next
 * to torchvision in PyTorch eager (same weights, same thread count), in the
 * same run.
 *
 * Usage: bench-classifier [MODEL...] [-i ITERATIONS] [-t THREADS] [--no-torch]
 *                         [--keep DIR] [--precision LIST] [--agreement N]
 *
 * Without MODEL it writes the paper's configurations at 224x224 with random
 * weights (models/convert/classifier.py --arch A --random --classes 10
 * --classifier two_layer --exit-list b1,b2: SL-ViT exits at the paper's taps,
 * docs/models.md 3.3) for ResNet152, DenseNet201 and InceptionV3 into a
 * temporary folder (or DIR, where they are kept) and benchmarks them; this
 * takes about 15 s and 1 GB of memory per model.
 *
 * For each exit, the runner is asked for that exit alone, so the table gives
 * the time to that exit's result when only it is wanted (the backbone up to its
 * tap plus its branch); "final" is the whole backbone and its classifier.
 * Then one anytime run of all exits gives the time at which each result became
 * available within a single frame. Medians over ITERATIONS after one warm-up.
 * PyTorch runs in a child process (tests/bench/bench_classifier_torch.py with
 * $EE_PYTHON or the build's Python), torchvision's own model with the file's
 * weights.
 *
 * LIST: the engine's precisions, comma-separated (fp32 by default, bf16,
 * int8), timed in the same run with their iterations interleaved; the last
 * one's time is divided by the one before's per exit. int8 needs a
 * calibrated model: the models written here are calibrated with `earlyexit
 * calibrate --data random:16` (random pixels, as their weights are random);
 * a MODEL given must carry its scales. --agreement N: for every precision
 * but fp32, the share of N generated inputs (random pixels, seeded) whose
 * top-1 class at each exit is fp32's (reported, no pass line). */
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "ee-model.h"

#define MAX_PRECISIONS 3

static const char *const paper_archs[]
    = { "resnet152", "densenet201", "inceptionv3" };

/* Writes the paper's configuration of `arch` at 224x224 to dir. */
static char *
write_model (const char *dir, const char *arch, GError **error)
{
  char *path = g_strdup_printf ("%s/%s-224.safetensors", dir, arch);
  const char *argv[] = { bench_python (),
                         BENCH_CLASSIFIER_CONVERTER,
                         "--arch",
                         arch,
                         "--random",
                         "--seed",
                         "1",
                         "--classes",
                         "10",
                         "--classifier",
                         "two_layer",
                         "--exit-list",
                         "b1,b2",
                         "--input-size",
                         "224x224",
                         "--out",
                         path,
                         NULL };
  char *out = NULL;

  if (g_file_test (path, G_FILE_TEST_EXISTS))
    return path;
  fprintf (stderr, "writing %s\n", path);
  if (!bench_spawn (argv, &out, error))
    g_clear_pointer (&path, g_free);
  g_free (out);
  return path;
}

/* Writes `path` with int8 scales from random pixels, in place. */
static gboolean
calibrate (const char *path, int threads, GError **error)
{
  char *t = g_strdup_printf ("%d", threads);
  const char *argv[]
      = { BENCH_EARLYEXIT, "calibrate", path,        "--data", "random:16",
          "--out",         path,        "--threads", t,        NULL };
  char *out = NULL;
  gboolean ok;

  fprintf (stderr, "calibrating %s\n", path);
  ok = bench_spawn (argv, &out, error);
  g_free (out);
  g_free (t);
  return ok;
}

/* Top-1 class of every exit of m on its input. */
static gboolean
top1 (EeModel *m, int *classes, GError **error)
{
  EeRunner *r = ee_model_runner (m);
  int n = ee_runner_n_exits (r);

  if (!ee_model_run_sync (m, (1u << n) - 1, error))
    return FALSE;
  for (int e = 0; e < n; e++) {
    const EeExitResult *res = ee_model_result (m, e);
    EeClassification c;

    ee_model_classify (m, res->value, res->n_out, &c);
    classes[e] = c.label_id;
  }
  return TRUE;
}

/* The tap an exit reads, from the model's configuration ("" for final). */
static char *
exit_tap (EeModel *m, const char *name)
{
  JsonParser *parser = json_parser_new ();
  char *tap = NULL;

  if (json_parser_load_from_data (parser, ee_model_config_json (m), -1, NULL)) {
    JsonObject *cfg = json_node_get_object (json_parser_get_root (parser));
    JsonArray *exits = json_object_get_array_member (cfg, "exits");
    for (guint k = 0; exits && k < json_array_get_length (exits) && !tap; k++) {
      JsonObject *e = json_array_get_object_element (exits, k);
      if (g_strcmp0 (json_object_get_string_member (e, "name"), name) == 0)
        tap = g_strdup (json_object_get_string_member (e, "tap"));
    }
  }
  g_object_unref (parser);
  return tap ? tap : g_strdup ("");
}

static gboolean
bench_model (const char *path, int threads, int iters, gboolean no_torch,
             const EePrecision *prec, int n_prec, int agreement, GError **error)
{
  EeBackend *be[MAX_PRECISIONS] = { NULL };
  EeModel *m[MAX_PRECISIONS] = { NULL };
  EeRunner *r;
  double ours[MAX_PRECISIONS][EE_RUNNER_MAX_SEGMENTS];
  double torch[EE_RUNNER_MAX_SEGMENTS];
  double *samples[MAX_PRECISIONS] = { NULL };
  int agree[MAX_PRECISIONS][EE_RUNNER_MAX_SEGMENTS] = { { 0 } };
  int ref_class[EE_RUNNER_MAX_SEGMENTS], cls[EE_RUNNER_MAX_SEGMENTS];
  float *image = NULL;
  int w, h, n_exits, p32 = -1;
  gboolean ok = FALSE;

  for (int p = 0; p < n_prec; p++) {
    if (!(be[p] = ee_backend_cpu_new_full (threads, prec[p], error))
        || !(m[p] = ee_model_load (path, be[p], TRUE, error)))
      goto out;
    if (prec[p] == EE_PRECISION_FP32)
      p32 = p;
    samples[p] = g_new (double, MAX (iters, 1));
  }
  r = ee_model_runner (m[0]);
  n_exits = ee_runner_n_exits (r);
  ee_model_input_size (m[0], &w, &h);
  image = g_new (float, (gsize)3 * w * h);
  for (gsize k = 0; k < (gsize)3 * w * h; k++)
    image[k] = (float)((k * 2654435761u) % 1000) / 500.0f - 1.0f;

  for (int e = 0; e < n_exits; e++) {
    torch[e] = -1;
    for (int it = -1; it < iters; it++) {
      for (int p = 0; p < n_prec; p++) {
        gint64 t0;
        /* a run may reuse the input's memory: upload before every run */
        if (!ee_model_set_image (m[p], image, error))
          goto out;
        t0 = g_get_monotonic_time ();
        if (!ee_model_run_sync (m[p], 1u << e, error))
          goto out;
        if (it >= 0)
          samples[p][it] = (g_get_monotonic_time () - t0) / 1000.0;
      }
    }
    for (int p = 0; p < n_prec; p++)
      ours[p][e] = bench_median (samples[p], iters);
  }
  if (!no_torch
      && !bench_torch_times (BENCH_CLASSIFIER_TORCH, path, threads, iters, r,
                             torch, error))
    goto out;

  /* top-1 agreement with fp32 on generated inputs (pixels 0..255,
   * preprocessed as the model says) */
  if (agreement > 0 && p32 >= 0) {
    const EePreprocess *pre = ee_model_preprocess (m[0]);
    GRand *rand = g_rand_new_with_seed (7);

    for (int k = 0; k < agreement; k++) {
      for (int c = 0; c < 3; c++)
        for (gsize i = 0; i < (gsize)w * h; i++)
          image[c * (gsize)w * h + i]
              = ((float)g_rand_int_range (rand, 0, 256) * pre->scale
                 - pre->mean[c])
                / pre->std[c];
      if (!ee_model_set_image (m[p32], image, error)
          || !top1 (m[p32], ref_class, error))
        break;
      for (int p = 0; p < n_prec; p++) {
        if (p == p32)
          continue;
        if (!ee_model_set_image (m[p], image, error)
            || !top1 (m[p], cls, error))
          break;
        for (int e = 0; e < n_exits; e++)
          agree[p][e] += cls[e] == ref_class[e];
      }
      if (error && *error)
        break;
    }
    g_rand_free (rand);
    if (error && *error)
      goto out;
  }

  printf ("\n%s %dx%d (%s), %d threads, median of %d runs, ms to the exit's "
          "result when only it is wanted\n\n",
          ee_model_arch (m[0]), w, h, path, threads, iters);
  printf ("| exit  | tap                        | GFLOP |");
  bench_print_precision_columns (prec, n_prec);
  printf (" PyTorch ms | %s / PyTorch |", ee_precision_name (prec[0]));
  if (agreement > 0 && p32 >= 0)
    for (int p = 0; p < n_prec; p++)
      if (p != p32)
        printf (" %s top-1 = fp32 |", ee_precision_name (prec[p]));
  printf ("\n|-------|----------------------------|------:|");
  for (int p = 0; p < n_prec; p++)
    printf ("------:|-----------:|");
  if (n_prec > 1)
    printf ("------------:|");
  printf ("-----------:|---------------:|");
  if (agreement > 0 && p32 >= 0)
    for (int p = 0; p < n_prec; p++)
      if (p != p32)
        printf ("--------------:|");
  printf ("\n");
  for (int e = 0; e < n_exits; e++) {
    const EeSegment *s = ee_runner_segment (r, ee_runner_exit_segment (r, e));
    char *tap = exit_tap (m[0], s->name);

    printf ("| %-5s | %-26s | %5.2f |", s->name,
            *tap ? tap : "(whole backbone)", s->flops_total / 1e9);
    for (int p = 0; p < n_prec; p++)
      printf (" %7.1f | %10.1f |", ours[p][e],
              s->flops_total / 1e6 / ours[p][e]);
    if (n_prec > 1)
      printf (" %11.2f |", ours[n_prec - 1][e] / ours[n_prec - 2][e]);
    if (torch[e] > 0)
      printf (" %10.1f | %14.2f |", torch[e], ours[0][e] / torch[e]);
    else
      printf (" %10s | %14s |", "-", "-");
    if (agreement > 0 && p32 >= 0)
      for (int p = 0; p < n_prec; p++)
        if (p != p32)
          printf (" %5.1f%% of %4d |", 100.0 * agree[p][e] / agreement,
                  agreement);
    printf ("\n");
    g_free (tap);
  }

  /* one anytime frame per precision: when does each result become
   * available? */
  for (int p = 0; p < n_prec; p++) {
    if (!ee_model_set_image (m[p], image, error)
        || !ee_model_run_sync (m[p], (1u << n_exits) - 1, error))
      goto out;
    printf ("\nOne frame in %s, all exits in anytime order: result available "
            "at",
            ee_precision_name (prec[p]));
    for (int e = 0; e < n_exits; e++)
      printf ("%s %s %.1f ms", e ? "," : "", ee_runner_exit_name (r, e),
              ee_model_result (m[p], e)->time_ms);
  }
  printf ("\n");
  fflush (stdout);
  ok = TRUE;

out:
  for (int p = 0; p < MAX_PRECISIONS; p++) {
    ee_model_free (m[p]);
    ee_backend_free (be[p]);
    g_free (samples[p]);
  }
  g_free (image);
  return ok;
}

int
main (int argc, char **argv)
{
  int iters = 3, threads = 0, status = 1, agreement = 0, n_prec = 0;
  gboolean no_torch = FALSE, int8 = FALSE;
  char *keep = NULL, *dir = NULL, *precision_list = NULL;
  EePrecision prec[MAX_PRECISIONS];
  GOptionEntry entries[]
      = { { "iterations", 'i', 0, G_OPTION_ARG_INT, &iters,
            "Timed runs (median)", "N" },
          { "threads", 't', 0, G_OPTION_ARG_INT, &threads,
            "Threads (default: all cores)", "N" },
          { "no-torch", 0, 0, G_OPTION_ARG_NONE, &no_torch, "Skip PyTorch",
            NULL },
          { "keep", 0, 0, G_OPTION_ARG_FILENAME, &keep,
            "Write the default models to DIR and keep them (reused when there)",
            "DIR" },
          { "precision", 0, 0, G_OPTION_ARG_STRING, &precision_list,
            "The engine's precisions: fp32 (default), bf16, int8, "
            "comma-separated",
            "LIST" },
          { "agreement", 0, 0, G_OPTION_ARG_INT, &agreement,
            "Top-1 agreement with fp32 on N generated inputs", "N" },
          { NULL } };
  GOptionContext *ctx = g_option_context_new ("[MODEL...]");
  GError *error = NULL;
  GPtrArray *models = g_ptr_array_new_with_free_func (g_free);

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || iters < 1
      || agreement < 0
      || !bench_parse_precisions (precision_list, prec, MAX_PRECISIONS,
                                  &n_prec))
    goto out;
  for (int p = 0; p < n_prec; p++)
    int8 |= prec[p] == EE_PRECISION_INT8;
  if (threads <= 0)
    threads = (int)g_get_num_processors ();
  for (int k = 1; k < argc; k++)
    g_ptr_array_add (models, g_strdup (argv[k]));
  if (models->len == 0) {
    dir = keep ? g_strdup (keep)
               : g_dir_make_tmp ("bench-classifier-XXXXXX", &error);
    if (!dir || g_mkdir_with_parents (dir, 0755) != 0)
      goto out;
    for (guint a = 0; a < G_N_ELEMENTS (paper_archs); a++) {
      char *path = write_model (dir, paper_archs[a], &error);
      if (!path || (int8 && !calibrate (path, threads, &error))) {
        g_free (path);
        goto out;
      }
      g_ptr_array_add (models, path);
    }
  }
  printf ("CPU backend (oneDNN, %s) vs PyTorch %s eager (fp32), %d "
          "threads\n",
          precision_list ? precision_list : "fp32", no_torch ? "(skipped)" : "",
          threads);
  for (guint k = 0; k < models->len; k++)
    if (!bench_model (g_ptr_array_index (models, k), threads, iters, no_torch,
                      prec, n_prec, agreement, &error))
      goto out;
  status = 0;

out:
  if (error)
    g_printerr ("bench-classifier: %s\n", error->message);
  else if (status)
    g_printerr ("usage: bench-classifier [MODEL...] [-i N] [-t N] "
                "[--no-torch] [--keep DIR] [--precision fp32,bf16,int8] "
                "[--agreement N]\n");
  /* temporary models go; kept ones stay */
  if (dir && !keep)
    for (guint k = 0; k < models->len; k++)
      g_unlink (g_ptr_array_index (models, k));
  if (dir && !keep)
    g_rmdir (dir);
  g_clear_error (&error);
  g_ptr_array_unref (models);
  g_free (dir);
  g_free (keep);
  g_free (precision_list);
  g_option_context_free (ctx);
  return status;
}
