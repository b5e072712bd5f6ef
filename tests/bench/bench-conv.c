/* gst-earlyexit: the VGG-16 front end of AudioCSRNet (conv1_1..conv4_3,
 * 3x3 pad 1 + bias + ReLU, input 1024x576) on the CPU backend, next to
 * PyTorch's conv2d with the same thread count.
 *
 * Usage: bench-conv [-i ITERATIONS] [-t THREADS] [--channels-last] [--no-torch]
 *
 * Each distinct layer shape runs once to warm up, then ITERATIONS times; the
 * table gives the median. Our convolution reads its input in the layout the
 * previous layer leaves (a 1x1 convolution with the same channels produces
 * it), as it does inside the network; PyTorch gets NCHW tensors, as in eager
 * mode, or NHWC ones with --channels-last. PyTorch runs in a child process:
 * $EE_PYTHON, else the Python meson found (scripts/find-python.sh). Layers that
 * occur twice (conv3_2/3_3, conv4_2/4_3) count twice in the total. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "ee-backend.h"

typedef struct
{
  const char *name;
  int cin, cout, h, w;
  int count; /* layers of this shape in the front end */
} Layer;

static const Layer layers[] = {
  { "conv1_1", 3, 64, 576, 1024, 1 },   { "conv1_2", 64, 64, 576, 1024, 1 },
  { "conv2_1", 64, 128, 288, 512, 1 },  { "conv2_2", 128, 128, 288, 512, 1 },
  { "conv3_1", 128, 256, 144, 256, 1 }, { "conv3_2/3", 256, 256, 144, 256, 2 },
  { "conv4_1", 256, 512, 72, 128, 1 },  { "conv4_2/3", 512, 512, 72, 128, 2 },
};

#define N_LAYERS G_N_ELEMENTS (layers)

/* Prepares a conv of `in` into `out` (descriptions; out allocated here). */
static EeOp *
conv_new (EeBackend *be, const EeTensorDesc *in, int cout, int k,
          const float *w, const float *b, EeTensor *out, GError **error)
{
  EeOpDesc d = ee_op_desc_init (EE_OP_CONV2D);

  d.out_features = cout;
  d.kernel_size[0] = d.kernel_size[1] = k;
  d.pad[0] = d.pad[1] = k / 2;
  d.weight = w;
  d.bias = b;
  d.act = EE_ACT_RELU;
  return ee_backend_op_new (be, &d, &in, 1, &out->desc, error);
}

/* Median milliseconds of one layer on our backend; its FLOPs in *flops. */
static gboolean
time_ours (EeBackend *be, const Layer *l, int iterations, GRand *rand,
           double *ms, double *flops, GError **error)
{
  size_t in_numel = (size_t)l->cin * l->h * l->w;
  float *x = bench_random_floats (rand, in_numel, 1.0);
  float *w0 = bench_random_floats (rand, (size_t)l->cin * l->cin, 1.0 / l->cin);
  float *b0 = bench_random_floats (rand, (size_t)l->cin, 0.1);
  float *w = bench_random_floats (rand, (size_t)l->cout * l->cin * 9,
                                  1.0 / sqrt (l->cin * 9.0));
  float *b = bench_random_floats (rand, (size_t)l->cout, 0.1);
  EeTensor plain = { 0 }, in = { 0 }, out = { 0 };
  const EeTensor *ip;
  const EeTensorDesc *ind;
  EeOp *producer = NULL, *op = NULL;
  EeEvent *start = NULL, *end = NULL;
  EeOpDesc fd = ee_op_desc_init (EE_OP_CONV2D);
  double *t = g_new (double, iterations);
  gboolean ok = FALSE;

  plain.desc = ee_tensor_desc_nchw (1, l->cin, l->h, l->w);
  plain.data = ee_backend_alloc (be, plain.desc.nbytes, error);
  if (!plain.data
      || !ee_backend_upload (be, plain.data, x, plain.desc.nbytes, error))
    goto done;
  /* The first layer reads the image as it is; the others read what a
   * convolution leaves. */
  if (l->cin == 3) {
    in = plain;
  } else {
    producer = conv_new (be, &plain.desc, l->cin, 1, w0, b0, &in, error);
    if (!producer)
      goto done;
    in.data = ee_backend_alloc (be, in.desc.nbytes, error);
    ip = &plain;
    if (!in.data || !ee_backend_op_enqueue (be, producer, &ip, 1, &in, error))
      goto done;
  }
  ind = &in.desc;
  op = conv_new (be, ind, l->cout, 3, w, b, &out, error);
  if (!op)
    goto done;
  out.data = ee_backend_alloc (be, out.desc.nbytes, error);
  start = be->vt->event_new (be, error);
  end = start ? be->vt->event_new (be, error) : NULL;
  if (!out.data || !end)
    goto done;
  fd.kernel_size[0] = fd.kernel_size[1] = 3;
  fd.bias = b;
  *flops = ee_op_flops (&fd, &ind, 1, &out.desc);
  ip = &in;
  for (int i = -1; i < iterations; i++) {
    if (!be->vt->event_record (be, start, error)
        || !ee_backend_op_enqueue (be, op, &ip, 1, &out, error)
        || !be->vt->event_record (be, end, error)
        || !be->vt->event_sync (be, end, error))
      goto done;
    if (i >= 0 && !be->vt->event_elapsed_ms (be, start, end, &t[i], error))
      goto done;
  }
  *ms = bench_median (t, iterations);
  ok = ee_backend_sync (be, error);
done:
  if (start)
    be->vt->event_free (be, start);
  if (end)
    be->vt->event_free (be, end);
  ee_backend_op_free (be, op);
  ee_backend_op_free (be, producer);
  if (out.data)
    ee_backend_dealloc (be, out.data);
  if (in.data && in.data != plain.data)
    ee_backend_dealloc (be, in.data);
  if (plain.data)
    ee_backend_dealloc (be, plain.data);
  g_free (x);
  g_free (w0);
  g_free (b0);
  g_free (w);
  g_free (b);
  g_free (t);
  return ok;
}

/* Median milliseconds of layer l in PyTorch, from a bench_conv_torch.py
 * child process. */
static gboolean
time_torch (const Layer *l, int threads, int iterations, gboolean channels_last,
            double *ms, GError **error)
{
  const char *python = bench_python ();
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);
  char *out = NULL;
  unsigned idx;
  int status;
  gboolean ok;

  g_ptr_array_add (argv, g_strdup (python));
  g_ptr_array_add (argv, g_strdup (BENCH_CONV_TORCH));
  g_ptr_array_add (argv, g_strdup_printf ("--threads=%d", threads));
  g_ptr_array_add (argv, g_strdup_printf ("--iterations=%d", iterations));
  if (channels_last)
    g_ptr_array_add (argv, g_strdup ("--channels-last"));
  g_ptr_array_add (
      argv, g_strdup_printf ("%d,%d,%d,%d", l->cin, l->cout, l->h, l->w));
  g_ptr_array_add (argv, NULL);
  ok = g_spawn_sync (NULL, (char **)argv->pdata, NULL,
                     G_SPAWN_SEARCH_PATH | G_SPAWN_CHILD_INHERITS_STDIN, NULL,
                     NULL, &out, NULL, &status, error)
       && g_spawn_check_wait_status (status, error);
  g_ptr_array_unref (argv);
  if (ok && sscanf (out, "conv %u %lf", &idx, ms) != 2) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "%s printed no timing line",
                 BENCH_CONV_TORCH);
    ok = FALSE;
  }
  g_free (out);
  return ok;
}

static void
print_row (const char *name, const char *shape, double gflop, double ours,
           double torch)
{
  printf ("%-10s %-22s %8.1f %9.1f %8.1f %9.1f %8.1f %6.2f\n", name, shape,
          gflop, ours, gflop / ours * 1e3, torch, gflop / torch * 1e3,
          torch / ours);
}

int
main (int argc, char **argv)
{
  int iterations = 3, threads = 0;
  gboolean no_torch = FALSE, channels_last = FALSE;
  GOptionEntry entries[]
      = { { "iterations", 'i', 0, G_OPTION_ARG_INT, &iterations,
            "Timed runs per layer after one warm-up (default 3)", "N" },
          { "threads", 't', 0, G_OPTION_ARG_INT, &threads,
            "Threads for both backends (default: all cores)", "N" },
          { "channels-last", 0, 0, G_OPTION_ARG_NONE, &channels_last,
            "Give PyTorch NHWC (channels_last) tensors", NULL },
          { "no-torch", 0, 0, G_OPTION_ARG_NONE, &no_torch,
            "Do not run the PyTorch comparison", NULL },
          { NULL } };
  GOptionContext *ctx = g_option_context_new ("- VGG-16 front end convs, "
                                              "CPU backend vs PyTorch");
  GError *error = NULL;
  EeBackend *be;
  GRand *rand;
  double ours[N_LAYERS], torch[N_LAYERS], gflop[N_LAYERS];
  double tot_gflop = 0.0, tot_ours = 0.0, tot_torch = 0.0;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || iterations < 1) {
    fprintf (stderr, "bench-conv: %s\n",
             error ? error->message : "--iterations must be at least 1");
    return 2;
  }
  g_option_context_free (ctx);
  if (threads <= 0)
    threads = (int)g_get_num_processors ();

  be = ee_backend_cpu_new (threads, &error);
  if (!be) {
    fprintf (stderr, "bench-conv: %s\n", error->message);
    return 1;
  }
  rand = g_rand_new_with_seed (1);
  /* Ours and PyTorch's alternate layer by layer, so that a machine whose
   * speed drifts (shared cores, clocks) biases neither side. */
  for (guint i = 0; i < N_LAYERS; i++) {
    double flops;

    if (!time_ours (be, &layers[i], iterations, rand, &ours[i], &flops,
                    &error)) {
      fprintf (stderr, "bench-conv: %s: %s\n", layers[i].name, error->message);
      return 1;
    }
    gflop[i] = flops / 1e9;
    torch[i] = NAN;
    if (!no_torch
        && !time_torch (&layers[i], threads, iterations, channels_last,
                        &torch[i], &error)) {
      fprintf (stderr, "bench-conv: PyTorch comparison failed: %s\n",
               error->message);
      g_clear_error (&error);
      no_torch = TRUE;
    }
  }
  g_rand_free (rand);
  ee_backend_free (be);

  printf (
      "VGG-16 front end at 1024x576, batch 1, 3x3 pad 1 + bias + ReLU, "
      "%d threads, median of %d runs; per layer, the total counts (x2) twice\n",
      threads, iterations);
  printf ("PyTorch eager: torch.nn.functional.conv2d + relu_ on %s tensors\n",
          channels_last ? "NHWC" : "NCHW");
  printf ("%-10s %-22s %8s %9s %8s %9s %8s %6s\n", "layer", "shape (C->O HxW)",
          "GFLOP", "ms ours", "GFLOP/s", "ms torch", "GFLOP/s", "ratio");
  for (guint i = 0; i < N_LAYERS; i++) {
    const Layer *l = &layers[i];
    char shape[64];

    snprintf (shape, sizeof shape, "%d->%d %dx%d%s", l->cin, l->cout, l->h,
              l->w, l->count > 1 ? " (x2)" : "");
    print_row (l->name, shape, gflop[i], ours[i], torch[i]);
    tot_gflop += gflop[i] * l->count;
    tot_ours += ours[i] * l->count;
    tot_torch += torch[i] * l->count;
  }
  print_row ("total", "13 convs", tot_gflop, tot_ours, tot_torch);
  printf ("ratio = ms torch / ms ours (above 1: the CPU backend is faster)\n");
  return 0;
}
