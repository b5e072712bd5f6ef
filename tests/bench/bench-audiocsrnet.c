/* gst-earlyexit: AudioCSRNet per exit on the CPU backend next to PyTorch eager
 * (same weights, same thread count), in the same run.
 *
 * Usage: bench-audiocsrnet MODEL [-i ITERATIONS] [-t THREADS] [--no-torch]
 *                          [--precision fp32|bf16]
 *
 * PyTorch always runs in fp32, the reference the engine is held to. With
 * --precision bf16 the engine computes in bf16, and the same model also runs
 * once in fp32 on the same input, so the table can give each exit's error:
 * |bf16 - fp32| / max (1, |fp32|), counts of less than one person weighing as
 * one.
 *
 * For each exit, the runner is asked for that exit alone, so the table gives
 * the time to that exit's result when only it is wanted (the work it depends on
 * plus its branch); "final" is the whole backbone. Then one anytime run of all
 * exits gives the time at which each result became available within a single
 * frame. Medians over ITERATIONS after one warm-up. PyTorch runs in a child
 * process (tests/bench/bench_audiocsrnet_torch.py with $EE_PYTHON or the
 * build's Python). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "ee-model.h"

/* Every exit of m once: values[e] is exit e's first output. */
static gboolean
exit_values (EeModel *m, double *values, GError **error)
{
  EeRunner *r = ee_model_runner (m);
  int n = ee_runner_n_exits (r);

  if (!ee_model_run_sync (m, (1u << n) - 1, error))
    return FALSE;
  for (int e = 0; e < n; e++)
    values[e] = ee_model_result (m, e)->value[0];
  return TRUE;
}

/* The same model and input in fp32, for the errors of a bf16 run. */
static gboolean
fp32_values (const char *path, int threads, const float *image,
             const float *audio, double *values, GError **error)
{
  EeBackend *be = ee_backend_cpu_new_full (threads, EE_PRECISION_FP32, error);
  EeModel *m = be ? ee_model_load (path, be, TRUE, error) : NULL;
  gboolean ok = m && ee_model_set_image (m, image, error)
                && ee_model_set_audio (m, audio, error)
                && exit_values (m, values, error);

  ee_model_free (m);
  ee_backend_free (be);
  return ok;
}

/* Reads "exit NAME MS" lines of the PyTorch script into ms[exit index]. */
static gboolean
torch_times (const char *model, int threads, int iters, EeRunner *r, double *ms,
             GError **error)
{
  const char *py = g_getenv ("EE_PYTHON");
  char *t = g_strdup_printf ("%d", threads), *i = g_strdup_printf ("%d", iters);
  const char *argv[] = { py && *py ? py : EE_PYTHON_DEFAULT,
                         BENCH_AUDIOCSRNET_TORCH,
                         model,
                         "--threads",
                         t,
                         "--iterations",
                         i,
                         NULL };
  char *out = NULL;
  gint status;
  gboolean ok = g_spawn_sync (NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH,
                              NULL, NULL, &out, NULL, &status, error)
                && g_spawn_check_wait_status (status, error);

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

int
main (int argc, char **argv)
{
  int iters = 3, threads = 0;
  gboolean no_torch = FALSE;
  char *precision_name = NULL;
  GOptionEntry entries[]
      = { { "iterations", 'i', 0, G_OPTION_ARG_INT, &iters,
            "Timed runs (median)", "N" },
          { "threads", 't', 0, G_OPTION_ARG_INT, &threads,
            "Threads (default: all cores)", "N" },
          { "no-torch", 0, 0, G_OPTION_ARG_NONE, &no_torch, "Skip PyTorch",
            NULL },
          { "precision", 0, 0, G_OPTION_ARG_STRING, &precision_name,
            "The engine's precision: fp32 (default) or bf16", "P" },
          { NULL } };
  EePrecision precision = EE_PRECISION_FP32;
  gboolean bf16;
  GOptionContext *ctx = g_option_context_new ("MODEL");
  GError *error = NULL;
  EeBackend *be = NULL;
  EeModel *m = NULL;
  EeRunner *r;
  float *image = NULL, *audio = NULL;
  double ours[EE_RUNNER_MAX_SEGMENTS], torch[EE_RUNNER_MAX_SEGMENTS];
  double got[EE_RUNNER_MAX_SEGMENTS], ref[EE_RUNNER_MAX_SEGMENTS];
  double *samples;
  int w, h, n_exits, status = 1;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || argc != 2
      || (precision_name
          && (!ee_precision_from_string (precision_name, &precision)
              || (precision != EE_PRECISION_FP32
                  && precision != EE_PRECISION_BF16))))
    goto out;
  bf16 = precision == EE_PRECISION_BF16;
  if (threads <= 0)
    threads = (int)g_get_num_processors ();
  if (!(be = ee_backend_cpu_new_full (threads, precision, &error))
      || !(m = ee_model_load (argv[1], be, TRUE, &error)))
    goto out;
  r = ee_model_runner (m);
  n_exits = ee_runner_n_exits (r);
  ee_model_input_size (m, &w, &h);
  image = g_new (float, (gsize)3 * w * h);
  audio = g_new (float, 96 * 64);
  for (gsize k = 0; k < (gsize)3 * w * h; k++)
    image[k] = (float)((k * 2654435761u) % 1000) / 500.0f - 1.0f;
  for (gsize k = 0; k < 96 * 64; k++)
    audio[k] = (float)(k % 97) / 20.0f - 4.0f;
  if (!ee_model_set_image (m, image, &error)
      || !ee_model_set_audio (m, audio, &error))
    goto out;

  samples = g_new (double, MAX (iters, 1));
  for (int e = 0; e < n_exits; e++) {
    torch[e] = -1;
    for (int it = -1; it < iters; it++) {
      gint64 t0 = g_get_monotonic_time ();
      if (!ee_model_run_sync (m, 1u << e, &error))
        goto out;
      if (it >= 0)
        samples[it] = (g_get_monotonic_time () - t0) / 1000.0;
    }
    ours[e] = bench_median (samples, iters);
  }
  g_free (samples);
  if (!no_torch && !torch_times (argv[1], threads, iters, r, torch, &error))
    goto out;
  if (bf16
      && (!exit_values (m, got, &error)
          || !fp32_values (argv[1], threads, image, audio, ref, &error)))
    goto out;

  printf (
      "AudioCSRNet %dx%d, engine in %s, PyTorch in fp32, %d threads, median "
      "of %d runs (ms per frame to the exit, that exit alone)\n\n",
      w, h, ee_precision_name (precision), threads, iters);
  printf ("| exit  | GFLOP | ours ms | GFLOP/s | PyTorch ms | PyTorch / ours |"
          " ours / PyTorch |%s\n",
          bf16 ? " bf16 value | fp32 value | error |" : "");
  printf ("|-------|------:|--------:|--------:|-----------:|---------------:|"
          "---------------:|%s\n",
          bf16 ? "-----------:|-----------:|------:|" : "");
  for (int e = 0; e < n_exits; e++) {
    const EeSegment *s = ee_runner_segment (r, ee_runner_exit_segment (r, e));
    printf ("| %-5s | %5.1f | %7.1f | %7.1f |", s->name, s->flops_total / 1e9,
            ours[e], s->flops_total / 1e6 / ours[e]);
    if (torch[e] > 0)
      printf (" %10.1f | %14.2f | %14.2f |", torch[e], torch[e] / ours[e],
              ours[e] / torch[e]);
    else
      printf (" %10s | %14s | %14s |", "-", "-", "-");
    if (bf16)
      printf (" %10.4g | %10.4g | %5.2f%% |", got[e], ref[e],
              100.0 * fabs (got[e] - ref[e]) / MAX (1.0, fabs (ref[e])));
    printf ("\n");
  }

  /* one anytime frame: when does each result become available? */
  if (!ee_model_run_sync (m, (1u << n_exits) - 1, &error))
    goto out;
  printf ("\nOne frame, all exits in anytime order: result available at\n");
  for (int e = 0; e < n_exits; e++)
    printf ("  %-5s %8.1f ms\n", ee_runner_exit_name (r, e),
            ee_model_result (m, e)->time_ms);
  status = 0;

out:
  if (error)
    g_printerr ("bench-audiocsrnet: %s\n", error->message);
  else if (status)
    g_printerr ("usage: bench-audiocsrnet MODEL [-i N] [-t N] [--no-torch] "
                "[--precision fp32|bf16]\n");
  g_clear_error (&error);
  ee_model_free (m);
  ee_backend_free (be);
  g_free (image);
  g_free (audio);
  g_free (precision_name);
  g_option_context_free (ctx);
  return status;
}
