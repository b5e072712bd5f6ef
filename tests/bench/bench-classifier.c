/* gst-earlyexit: the classification backbones per exit on the CPU backend next
 * to torchvision in PyTorch eager (same weights, same thread count), in the
 * same run.
 *
 * Usage: bench-classifier [MODEL...] [-i ITERATIONS] [-t THREADS] [--no-torch]
 *                         [--keep DIR]
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
 * weights. */
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "ee-model.h"

static const char *const paper_archs[]
    = { "resnet152", "densenet201", "inceptionv3" };

static const char *
python (void)
{
  const char *py = g_getenv ("EE_PYTHON");

  return py && *py ? py : EE_PYTHON_DEFAULT;
}

static gboolean
spawn (const char *const *argv, char **out, GError **error)
{
  gint status;

  return g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                       NULL, out, NULL, &status, error)
         && g_spawn_check_wait_status (status, error);
}

/* Writes the paper's configuration of `arch` at 224x224 to dir. */
static char *
write_model (const char *dir, const char *arch, GError **error)
{
  char *path = g_strdup_printf ("%s/%s-224.safetensors", dir, arch);
  const char *argv[] = { python (),   BENCH_CLASSIFIER_CONVERTER,
                         "--arch",    arch,
                         "--random",  "--seed",
                         "1",         "--classes",
                         "10",        "--classifier",
                         "two_layer", "--exit-list",
                         "b1,b2",     "--input-size",
                         "224x224",   "--out",
                         path,        NULL };
  char *out = NULL;

  if (g_file_test (path, G_FILE_TEST_EXISTS))
    return path;
  fprintf (stderr, "writing %s\n", path);
  if (!spawn (argv, &out, error))
    g_clear_pointer (&path, g_free);
  g_free (out);
  return path;
}

/* Reads "exit NAME MS" lines of the PyTorch script into ms[exit index]. */
static gboolean
torch_times (const char *model, int threads, int iters, EeRunner *r, double *ms,
             GError **error)
{
  char *t = g_strdup_printf ("%d", threads), *i = g_strdup_printf ("%d", iters);
  const char *argv[] = { python (), BENCH_CLASSIFIER_TORCH, model, "--threads",
                         t,         "--iterations",         i,     NULL };
  char *out = NULL;
  gboolean ok = spawn (argv, &out, error);

  if (ok) {
    char **lines = g_strsplit (out, "\n", -1);
    for (char **l = lines; *l; l++) {
      char name[64];
      double v;
      if (sscanf (*l, "exit %63s %lf", name, &v) == 2) {
        int k = ee_runner_find_exit (r, name);
        if (k >= 0)
          ms[k] = v;
      }
    }
    g_strfreev (lines);
  }
  g_free (out);
  g_free (t);
  g_free (i);
  return ok;
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
             GError **error)
{
  EeBackend *be = ee_backend_cpu_new (threads, error);
  EeModel *m = be ? ee_model_load (path, be, TRUE, error) : NULL;
  EeRunner *r;
  double ours[EE_RUNNER_MAX_SEGMENTS], torch[EE_RUNNER_MAX_SEGMENTS], *samples;
  float *image;
  int w, h, n_exits;
  gboolean ok = FALSE;

  if (!m)
    goto out;
  r = ee_model_runner (m);
  n_exits = ee_runner_n_exits (r);
  ee_model_input_size (m, &w, &h);
  image = g_new (float, (gsize)3 * w * h);
  for (gsize k = 0; k < (gsize)3 * w * h; k++)
    image[k] = (float)((k * 2654435761u) % 1000) / 500.0f - 1.0f;

  samples = g_new (double, MAX (iters, 1));
  for (int e = 0; e < n_exits; e++) {
    torch[e] = -1;
    for (int it = -1; it < iters; it++) {
      gint64 t0;
      /* a run may reuse the input's memory: upload before every run */
      if (!ee_model_set_image (m, image, error))
        goto out_image;
      t0 = g_get_monotonic_time ();
      if (!ee_model_run_sync (m, 1u << e, error))
        goto out_image;
      if (it >= 0)
        samples[it] = (g_get_monotonic_time () - t0) / 1000.0;
    }
    ours[e] = bench_median (samples, iters);
  }
  if (!no_torch && !torch_times (path, threads, iters, r, torch, error))
    goto out_samples;

  printf ("\n%s %dx%d (%s), %d threads, median of %d runs, ms to the exit's "
          "result when only it is wanted\n\n",
          ee_model_arch (m), w, h, path, threads, iters);
  printf ("| exit  | tap                        | GFLOP | ours ms | GFLOP/s | "
          "PyTorch ms | ours / PyTorch |\n");
  printf ("|-------|----------------------------|------:|--------:|--------:|"
          "-----------:|---------------:|\n");
  for (int e = 0; e < n_exits; e++) {
    const EeSegment *s = ee_runner_segment (r, ee_runner_exit_segment (r, e));
    char *tap = exit_tap (m, s->name);
    printf ("| %-5s | %-26s | %5.2f | %7.1f | %7.1f |", s->name,
            *tap ? tap : "(whole backbone)", s->flops_total / 1e9, ours[e],
            s->flops_total / 1e6 / ours[e]);
    if (torch[e] > 0)
      printf (" %10.1f | %14.2f |\n", torch[e], ours[e] / torch[e]);
    else
      printf (" %10s | %14s |\n", "-", "-");
    g_free (tap);
  }

  /* one anytime frame: when does each result become available? */
  if (!ee_model_set_image (m, image, error)
      || !ee_model_run_sync (m, (1u << n_exits) - 1, error))
    goto out_samples;
  printf ("\nOne frame, all exits in anytime order: result available at");
  for (int e = 0; e < n_exits; e++)
    printf ("%s %s %.1f ms", e ? "," : "", ee_runner_exit_name (r, e),
            ee_model_result (m, e)->time_ms);
  printf ("\n");
  fflush (stdout);
  ok = TRUE;

out_samples:
out_image:
  g_free (samples);
  g_free (image);
out:
  ee_model_free (m);
  ee_backend_free (be);
  return ok;
}

int
main (int argc, char **argv)
{
  int iters = 3, threads = 0, status = 1;
  gboolean no_torch = FALSE;
  char *keep = NULL, *dir = NULL;
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
          { NULL } };
  GOptionContext *ctx = g_option_context_new ("[MODEL...]");
  GError *error = NULL;
  GPtrArray *models = g_ptr_array_new_with_free_func (g_free);

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || iters < 1)
    goto out;
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
      if (!path)
        goto out;
      g_ptr_array_add (models, path);
    }
  }
  printf ("CPU backend (oneDNN, fp32) vs PyTorch %s eager (fp32), %d "
          "threads\n",
          no_torch ? "(skipped)" : "", threads);
  for (guint k = 0; k < models->len; k++)
    if (!bench_model (g_ptr_array_index (models, k), threads, iters, no_torch,
                      &error))
      goto out;
  status = 0;

out:
  if (error)
    g_printerr ("bench-classifier: %s\n", error->message);
  else if (status)
    g_printerr ("usage: bench-classifier [MODEL...] [-i N] [-t N] "
                "[--no-torch] [--keep DIR]\n");
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
  g_option_context_free (ctx);
  return status;
}
