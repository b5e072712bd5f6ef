/* gst-earlyexit: AudioCSRNet per exit on the CPU backend next to PyTorch eager
 * (same weights, same thread count), in the same run.
 *
 * Usage: bench-audiocsrnet MODEL [-i ITERATIONS] [-t THREADS] [--no-torch]
 *                          [--precision LIST]
 *
 * LIST: the engine's precisions, comma-separated, among fp32 (the default),
 * bf16 and int8; int8 needs a calibrated MODEL (earlyexit calibrate). All
 * run in the same process, their iterations interleaved (fp32, bf16, int8,
 * fp32, ...), so that their ratios hold under a changing load; the ratio of
 * the last precision to the one before is printed per exit (int8 / bf16 for
 * "fp32,bf16,int8"). PyTorch always runs in fp32, the reference the engine is
 * held to. Each precision's error is against the engine in fp32 on the same
 * input: |value - fp32| / max (1, |fp32|), counts of less than one person
 * weighing as one.
 *
 * For each exit, the runner is asked for that exit alone, so the table gives
 * the time to that exit's result when only it is wanted (the work it depends on
 * plus its branch); "final" is the whole backbone. Then one anytime run of all
 * exits per precision gives the time at which each result became available
 * within a single frame. Medians over ITERATIONS after one warm-up. PyTorch
 * runs in a child process (tests/bench/bench_audiocsrnet_torch.py with
 * $EE_PYTHON or the build's Python). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "ee-model.h"

#define MAX_PRECISIONS 3

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

int
main (int argc, char **argv)
{
  int iters = 3, threads = 0;
  gboolean no_torch = FALSE;
  char *precision_list = NULL;
  GOptionEntry entries[]
      = { { "iterations", 'i', 0, G_OPTION_ARG_INT, &iters,
            "Timed runs (median)", "N" },
          { "threads", 't', 0, G_OPTION_ARG_INT, &threads,
            "Threads (default: all cores)", "N" },
          { "no-torch", 0, 0, G_OPTION_ARG_NONE, &no_torch, "Skip PyTorch",
            NULL },
          { "precision", 0, 0, G_OPTION_ARG_STRING, &precision_list,
            "The engine's precisions: fp32 (default), bf16, int8, "
            "comma-separated",
            "LIST" },
          { NULL } };
  EePrecision prec[MAX_PRECISIONS];
  int n_prec = 0;
  GOptionContext *ctx = g_option_context_new ("MODEL");
  GError *error = NULL;
  EeBackend *be[MAX_PRECISIONS] = { NULL }, *be32 = NULL;
  EeModel *m[MAX_PRECISIONS] = { NULL }, *m32 = NULL;
  EeRunner *r;
  float *image = NULL, *audio = NULL;
  double ours[MAX_PRECISIONS][EE_RUNNER_MAX_SEGMENTS];
  double got[MAX_PRECISIONS][EE_RUNNER_MAX_SEGMENTS];
  double torch[EE_RUNNER_MAX_SEGMENTS], ref[EE_RUNNER_MAX_SEGMENTS];
  double *samples[MAX_PRECISIONS] = { NULL };
  int w, h, n_exits, status = 1;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || argc != 2
      || !bench_parse_precisions (precision_list, prec, MAX_PRECISIONS,
                                  &n_prec))
    goto out;
  if (threads <= 0)
    threads = (int)g_get_num_processors ();
  for (int p = 0; p < n_prec; p++)
    if (!(be[p] = ee_backend_cpu_new_full (threads, prec[p], &error))
        || !(m[p] = ee_model_load (argv[1], be[p], TRUE, &error)))
      goto out;
  r = ee_model_runner (m[0]);
  n_exits = ee_runner_n_exits (r);
  ee_model_input_size (m[0], &w, &h);
  image = g_new (float, (gsize)3 * w * h);
  audio = g_new (float, 96 * 64);
  for (gsize k = 0; k < (gsize)3 * w * h; k++)
    image[k] = (float)((k * 2654435761u) % 1000) / 500.0f - 1.0f;
  for (gsize k = 0; k < 96 * 64; k++)
    audio[k] = (float)(k % 97) / 20.0f - 4.0f;
  for (int p = 0; p < n_prec; p++) {
    if (!ee_model_set_image (m[p], image, &error)
        || !ee_model_set_audio (m[p], audio, &error))
      goto out;
    samples[p] = g_new (double, MAX (iters, 1));
  }

  for (int e = 0; e < n_exits; e++) {
    torch[e] = -1;
    for (int it = -1; it < iters; it++) {
      for (int p = 0; p < n_prec; p++) {
        gint64 t0 = g_get_monotonic_time ();
        if (!ee_model_run_sync (m[p], 1u << e, &error))
          goto out;
        if (it >= 0)
          samples[p][it] = (g_get_monotonic_time () - t0) / 1000.0;
      }
    }
    for (int p = 0; p < n_prec; p++)
      ours[p][e] = bench_median (samples[p], iters);
  }
  if (!no_torch
      && !bench_torch_times (BENCH_AUDIOCSRNET_TORCH, argv[1], threads, iters,
                             r, torch, &error))
    goto out;
  for (int p = 0; p < n_prec; p++)
    if (!exit_values (m[p], got[p], &error))
      goto out;
  /* the reference values: the engine in fp32, loaded for them when not
   * timed */
  {
    int p32 = -1;

    for (int p = 0; p < n_prec; p++)
      if (prec[p] == EE_PRECISION_FP32)
        p32 = p;
    if (p32 >= 0)
      memcpy (ref, got[p32], sizeof ref);
    else if (!(be32
               = ee_backend_cpu_new_full (threads, EE_PRECISION_FP32, &error))
             || !(m32 = ee_model_load (argv[1], be32, TRUE, &error))
             || !ee_model_set_image (m32, image, &error)
             || !ee_model_set_audio (m32, audio, &error)
             || !exit_values (m32, ref, &error))
      goto out;
  }

  printf ("AudioCSRNet %dx%d, engine in", w, h);
  for (int p = 0; p < n_prec; p++)
    printf ("%s %s", p ? "," : "", ee_precision_name (prec[p]));
  printf (", PyTorch in fp32, %d threads, median of %d runs (ms per frame to "
          "the exit, that exit alone; precisions interleaved)\n\n",
          threads, iters);
  printf ("| exit  | GFLOP |");
  bench_print_precision_columns (prec, n_prec);
  printf (" PyTorch ms | ours / PyTorch |");
  for (int p = 0; p < n_prec; p++)
    if (prec[p] != EE_PRECISION_FP32)
      printf (" %s value | %s error |", ee_precision_name (prec[p]),
              ee_precision_name (prec[p]));
  printf (" fp32 value |\n|-------|------:|");
  for (int p = 0; p < n_prec; p++)
    printf ("-------:|------------:|");
  if (n_prec > 1)
    printf ("------------:|");
  printf ("-----------:|---------------:|");
  for (int p = 0; p < n_prec; p++)
    if (prec[p] != EE_PRECISION_FP32)
      printf ("-----------:|---------:|");
  printf ("-----------:|\n");
  for (int e = 0; e < n_exits; e++) {
    const EeSegment *s = ee_runner_segment (r, ee_runner_exit_segment (r, e));
    double last = ours[n_prec - 1][e];

    printf ("| %-5s | %5.1f |", s->name, s->flops_total / 1e9);
    for (int p = 0; p < n_prec; p++)
      printf (" %7.1f | %11.1f |", ours[p][e],
              s->flops_total / 1e6 / ours[p][e]);
    if (n_prec > 1)
      printf (" %11.2f |", last / ours[n_prec - 2][e]);
    if (torch[e] > 0)
      printf (" %10.1f | %14.2f |", torch[e], last / torch[e]);
    else
      printf (" %10s | %14s |", "-", "-");
    for (int p = 0; p < n_prec; p++)
      if (prec[p] != EE_PRECISION_FP32)
        printf (" %10.4g | %7.2f%% |", got[p][e],
                100.0 * fabs (got[p][e] - ref[e]) / MAX (1.0, fabs (ref[e])));
    printf (" %10.4g |\n", ref[e]);
  }

  /* one anytime frame per precision: when does each result become
   * available? */
  for (int p = 0; p < n_prec; p++) {
    if (!ee_model_run_sync (m[p], (1u << n_exits) - 1, &error))
      goto out;
    printf ("\nOne frame in %s, all exits in anytime order: result available "
            "at\n",
            ee_precision_name (prec[p]));
    for (int e = 0; e < n_exits; e++)
      printf ("  %-5s %8.1f ms\n", ee_runner_exit_name (r, e),
              ee_model_result (m[p], e)->time_ms);
  }
  status = 0;

out:
  if (error)
    g_printerr ("bench-audiocsrnet: %s\n", error->message);
  else if (status)
    g_printerr ("usage: bench-audiocsrnet MODEL [-i N] [-t N] [--no-torch] "
                "[--precision fp32,bf16,int8]\n");
  g_clear_error (&error);
  for (int p = 0; p < MAX_PRECISIONS; p++) {
    ee_model_free (m[p]);
    ee_backend_free (be[p]);
    g_free (samples[p]);
  }
  ee_model_free (m32);
  ee_backend_free (be32);
  g_free (image);
  g_free (audio);
  g_free (precision_list);
  g_option_context_free (ctx);
  return status;
}
