/* gst-earlyexit: the 13 convolutions of VGG-16 (3x3 pad 1 + bias + ReLU,
 * input 1024x576) on the CUDA backend, per precision, next to PyTorch eager
 * on the same GPU.
 *
 * Usage: bench-cuda [-i ITERATIONS] [-p fp32|tf32|fp16|bf16|all] [-d cuda:N]
 *                   [--no-torch]
 *
 * Each layer is prepared (algorithm chosen) and run three times to warm up,
 * then ITERATIONS times between CUDA events; the table gives the median.
 * Our convolution reads its input in the layout the previous layer leaves
 * (a 1x1 convolution produces it: NHWC in tf32/fp16/bf16, NCHW in fp32), as
 * inside the network; the first layer reads the F32 NCHW image and converts
 * it. PyTorch runs F.conv2d + relu_ on channels_last tensors in the same
 * precision (cuDNN benchmark mode, TF32 only in tf32), in a child process:
 * bench_cuda_torch.py under $EE_PYTHON, else the Python meson found. Layers
 * that occur several times count that often in the total.
 *
 * Without a usable CUDA device it says so and exits with 77. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench-util.h"
#include "ee-backend-select.h"

#define WARMUP 3

typedef struct
{
  const char *name;
  int cin, cout, h, w;
  int count; /* layers of this shape in VGG-16 */
} Layer;

static const Layer layers[] = {
  { "conv1_1", 3, 64, 576, 1024, 1 },
  { "conv1_2", 64, 64, 576, 1024, 1 },
  { "conv2_1", 64, 128, 288, 512, 1 },
  { "conv2_2", 128, 128, 288, 512, 1 },
  { "conv3_1", 128, 256, 144, 256, 1 },
  { "conv3_2/3", 256, 256, 144, 256, 2 },
  { "conv4_1", 256, 512, 72, 128, 1 },
  { "conv4_2/3", 512, 512, 72, 128, 2 },
  { "conv5_1/2/3", 512, 512, 36, 64, 3 },
};

#define N_LAYERS G_N_ELEMENTS (layers)

static EeOp *
conv_new (EeBackend *be, const EeTensorDesc *in, int cout, int k,
          const float *w, const float *b, EeTensorDesc *out, GError **error)
{
  EeOpDesc d = ee_op_desc_init (EE_OP_CONV2D);

  d.out_features = cout;
  d.kernel_size[0] = d.kernel_size[1] = k;
  d.pad[0] = d.pad[1] = k / 2;
  d.weight = w;
  d.bias = b;
  d.act = EE_ACT_RELU;
  return ee_backend_op_new (be, &d, &in, 1, out, error);
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
  EeTensor image = { 0 }, in = { 0 }, out = { 0 };
  const EeTensor *ip;
  const EeTensorDesc *ind;
  EeOp *producer = NULL, *op = NULL;
  EeEvent **ev = g_new0 (EeEvent *, iterations + 1);
  EeOpDesc fd = ee_op_desc_init (EE_OP_CONV2D);
  double *t = g_new (double, iterations);
  gboolean ok = FALSE;

  image.desc = ee_tensor_desc_nchw (1, l->cin, l->h, l->w);
  image.data = ee_backend_alloc (be, image.desc.nbytes, error);
  if (!image.data
      || !ee_backend_upload (be, image.data, x, image.desc.nbytes, error))
    goto done;
  if (l->cin == 3) {
    in = image;
  } else {
    producer = conv_new (be, &image.desc, l->cin, 1, w0, b0, &in.desc, error);
    if (!producer)
      goto done;
    in.data = ee_backend_alloc (be, in.desc.nbytes, error);
    ip = &image;
    if (!in.data || !ee_backend_op_enqueue (be, producer, &ip, 1, &in, error))
      goto done;
  }
  ind = &in.desc;
  op = conv_new (be, ind, l->cout, 3, w, b, &out.desc, error);
  if (!op)
    goto done;
  out.data = ee_backend_alloc (be, out.desc.nbytes, error);
  if (!out.data)
    goto done;
  for (int i = 0; i <= iterations; i++)
    if (!(ev[i] = be->vt->event_new (be, error)))
      goto done;
  fd.kernel_size[0] = fd.kernel_size[1] = 3;
  fd.bias = b;
  *flops = ee_op_flops (&fd, &ind, 1, &out.desc);
  ip = &in;
  for (int i = 0; i < WARMUP; i++)
    if (!ee_backend_op_enqueue (be, op, &ip, 1, &out, error))
      goto done;
  /* Back to back, an event between runs: the GPU never waits for us. */
  if (!be->vt->event_record (be, ev[0], error))
    goto done;
  for (int i = 0; i < iterations; i++)
    if (!ee_backend_op_enqueue (be, op, &ip, 1, &out, error)
        || !be->vt->event_record (be, ev[i + 1], error))
      goto done;
  if (!ee_backend_sync (be, error))
    goto done;
  for (int i = 0; i < iterations; i++)
    if (!be->vt->event_elapsed_ms (be, ev[i], ev[i + 1], &t[i], error))
      goto done;
  *ms = bench_median (t, iterations);
  ok = TRUE;
done:
  for (int i = 0; i <= iterations; i++)
    if (ev[i])
      be->vt->event_free (be, ev[i]);
  ee_backend_op_free (be, op);
  ee_backend_op_free (be, producer);
  if (out.data)
    ee_backend_dealloc (be, out.data);
  if (in.data && in.data != image.data)
    ee_backend_dealloc (be, in.data);
  if (image.data)
    ee_backend_dealloc (be, image.data);
  g_free (ev);
  g_free (x);
  g_free (w0);
  g_free (b0);
  g_free (w);
  g_free (b);
  g_free (t);
  return ok;
}

/* Median milliseconds of every layer in PyTorch, from one
 * bench_cuda_torch.py child; FALSE with a reason when it cannot run. */
static gboolean
time_torch (EePrecision precision, int device, int iterations, double *ms,
            GError **error)
{
  const char *python = bench_python ();
  GPtrArray *argv = g_ptr_array_new_with_free_func (g_free);
  char *out = NULL, *err = NULL, **lines;
  int status, found = 0;
  gboolean ok;

  g_ptr_array_add (argv, g_strdup (python));
  g_ptr_array_add (argv, g_strdup (BENCH_CUDA_TORCH));
  g_ptr_array_add (
      argv, g_strdup_printf ("--precision=%s", ee_precision_name (precision)));
  g_ptr_array_add (argv, g_strdup_printf ("--device=%d", device));
  g_ptr_array_add (argv, g_strdup_printf ("--iterations=%d", iterations));
  for (guint i = 0; i < N_LAYERS; i++)
    g_ptr_array_add (argv, g_strdup_printf ("%d,%d,%d,%d", layers[i].cin,
                                            layers[i].cout, layers[i].h,
                                            layers[i].w));
  g_ptr_array_add (argv, NULL);
  ok = g_spawn_sync (NULL, (char **)argv->pdata, NULL, G_SPAWN_SEARCH_PATH,
                     NULL, NULL, &out, &err, &status, error)
       && g_spawn_check_wait_status (status, error);
  g_ptr_array_unref (argv);
  if (!ok) {
    /* The script says why on stderr (no torch, no CUDA in torch). */
    if (err && *err)
      g_prefix_error (error, "%s: ", g_strstrip (err));
    g_free (out);
    g_free (err);
    return FALSE;
  }
  lines = g_strsplit (out, "\n", -1);
  for (char **l = lines; *l; l++) {
    unsigned idx;
    double v;

    if (sscanf (*l, "conv %u %lf", &idx, &v) == 2 && idx < N_LAYERS) {
      ms[idx] = v;
      found++;
    }
  }
  g_strfreev (lines);
  g_free (out);
  g_free (err);
  if (found != (int)N_LAYERS) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s printed %d of %u timings", BENCH_CUDA_TORCH, found,
                 (unsigned)N_LAYERS);
    return FALSE;
  }
  return TRUE;
}

static void
print_row (const char *name, const char *shape, double gflop, double ours,
           double torch)
{
  printf ("%-12s %-24s %7.1f %8.3f %7.1f %9.3f %7.1f %6.2f\n", name, shape,
          gflop, ours, gflop / ours, torch, gflop / torch, torch / ours);
}

static gboolean
bench_precision (EePrecision precision, int device, int iterations,
                 gboolean *torch_ok, GError **error)
{
  char dev[32];
  EeBackend *be;
  GRand *rand = g_rand_new_with_seed (1);
  double ours[N_LAYERS], torch[N_LAYERS], gflop[N_LAYERS];
  double tot_gflop = 0.0, tot_ours = 0.0, tot_torch = 0.0;
  GError *terr = NULL;

  snprintf (dev, sizeof dev, "cuda:%d", device);
  be = ee_backend_new_full (dev, 0, precision, error);
  if (!be) {
    g_rand_free (rand);
    return FALSE;
  }
  for (guint i = 0; i < N_LAYERS; i++) {
    double flops = 0.0;

    if (!time_ours (be, &layers[i], iterations, rand, &ours[i], &flops,
                    error)) {
      g_prefix_error (error, "%s: ", layers[i].name);
      ee_backend_free (be);
      g_rand_free (rand);
      return FALSE;
    }
    gflop[i] = flops / 1e9;
    torch[i] = NAN;
  }
  ee_backend_free (be);
  g_rand_free (rand);
  /* After ours, so the two never share the GPU. */
  if (*torch_ok && !time_torch (precision, device, iterations, torch, &terr)) {
    fprintf (stderr, "bench-cuda: no PyTorch comparison: %s\n", terr->message);
    g_clear_error (&terr);
    *torch_ok = FALSE;
    for (guint i = 0; i < N_LAYERS; i++)
      torch[i] = NAN;
  }

  printf ("\n%s: median of %d runs, per layer; the total counts repeated "
          "layers (xN) N times\n",
          ee_precision_name (precision), iterations);
  printf ("%-12s %-24s %7s %8s %7s %9s %7s %6s\n", "layer", "shape (C->O HxW)",
          "GFLOP", "ms ours", "TFLOP/s", "ms torch", "TFLOP/s", "ratio");
  for (guint i = 0; i < N_LAYERS; i++) {
    const Layer *l = &layers[i];
    char shape[64];

    snprintf (shape, sizeof shape, "%d->%d %dx%d", l->cin, l->cout, l->h, l->w);
    if (l->count > 1)
      snprintf (shape + strlen (shape), sizeof shape - strlen (shape), " (x%d)",
                l->count);
    print_row (l->name, shape, gflop[i], ours[i], torch[i]);
    tot_gflop += gflop[i] * l->count;
    tot_ours += ours[i] * l->count;
    tot_torch += torch[i] * l->count;
  }
  print_row ("total", "13 convs", tot_gflop, tot_ours, tot_torch);
  return TRUE;
}

int
main (int argc, char **argv)
{
  int iterations = 20, device = 0, count = 0;
  char *precision = NULL;
  gboolean no_torch = FALSE, torch_ok;
  GOptionEntry entries[]
      = { { "iterations", 'i', 0, G_OPTION_ARG_INT, &iterations,
            "Timed runs per layer after three warm-up runs (default 20)", "N" },
          { "precision", 'p', 0, G_OPTION_ARG_STRING, &precision,
            "fp32, tf32, fp16, bf16 or all (default)", "P" },
          { "device", 'd', 0, G_OPTION_ARG_INT, &device,
            "CUDA device index (default 0)", "N" },
          { "no-torch", 0, 0, G_OPTION_ARG_NONE, &no_torch,
            "Do not run the PyTorch comparison", NULL },
          { NULL } };
  GOptionContext *ctx = g_option_context_new (
      "- VGG-16 convs at 1024x576, CUDA backend vs PyTorch");
  GError *error = NULL;
  EePrecision only = EE_PRECISION_FP32;
  gboolean all = TRUE;
  cudaError_t st;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || iterations < 1) {
    fprintf (stderr, "bench-cuda: %s\n",
             error ? error->message : "--iterations must be at least 1");
    return 2;
  }
  g_option_context_free (ctx);
  if (precision && strcmp (precision, "all") != 0) {
    if (!ee_precision_from_string (precision, &only)) {
      fprintf (stderr, "bench-cuda: unknown precision %s\n", precision);
      return 2;
    }
    all = FALSE;
  }
  st = cudaGetDeviceCount (&count);
  if (st != cudaSuccess || count == 0) {
    printf ("bench-cuda: no usable CUDA device (%s), nothing to measure\n",
            st != cudaSuccess ? cudaGetErrorString (st) : "none found");
    return 77;
  }

  printf ("VGG-16 convolutions at 1024x576, batch 1, 3x3 pad 1 + bias + ReLU, "
          "CUDA device %d\n",
          device);
  printf ("PyTorch eager: F.conv2d + relu_ on channels_last tensors, same "
          "precision; ratio = ms torch / ms ours (above 1: ours is faster)\n");
  torch_ok = !no_torch;
  for (int p = EE_PRECISION_FP32; p <= EE_PRECISION_BF16; p++) {
    if (!all && p != (int)only)
      continue;
    if (!bench_precision ((EePrecision)p, device, iterations, &torch_ok,
                          &error)) {
      fprintf (stderr, "bench-cuda: %s: %s\n",
               ee_precision_name ((EePrecision)p), error->message);
      return 1;
    }
  }
  g_free (precision);
  return 0;
}
