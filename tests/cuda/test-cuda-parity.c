/* gst-earlyexit: every op of the CUDA backend against the CPU backend.
 *
 * Usage: test-cuda-parity [--precision fp32|tf32|fp16|bf16|all] [CASE...]
 *
 * Each case is a small graph built twice from the same seed, so both
 * backends see the same random inputs and weights: once on the CPU backend
 * (the reference) and once on CUDA in the precision under test. Cases chain
 * ops the way models do, so NHWC tensors from convolutions flow into pooling,
 * FiLM, concat, patchify and reductions, and strided views into the matmuls.
 * One line per output gives max |cuda - cpu| / max (max |cpu|, 1e-6), which
 * must stay within 1e-4 in fp32 and 2e-2 in tf32, fp16 and bf16.
 *
 * Without a usable CUDA device the test prints why and exits with 77, which
 * meson reports as skipped. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ee-backend-select.h"
#include "ee-graph.h"

#define SKIP 77

typedef struct
{
  EeGraph *g;
  GRand *rand;
  GPtrArray *owned;      /* host arrays, freed with the builder */
  GArray *inputs;        /* graph ids of inputs */
  GPtrArray *input_data; /* their host data */
  GArray *outputs;       /* graph ids of outputs */
  GPtrArray *output_names;
  GError *error; /* the first failure; later calls do nothing */
} Builder;

typedef void (*CaseFunc) (Builder *b);

static float *
rnd (Builder *b, int64_t n, double scale)
{
  float *p = g_new (float, MAX (n, 1));

  for (int64_t i = 0; i < n; i++)
    p[i] = (float)(g_rand_double_range (b->rand, -1.0, 1.0) * scale);
  g_ptr_array_add (b->owned, p);
  return p;
}

/* Positive values (variances). */
static float *
rnd_pos (Builder *b, int64_t n)
{
  float *p = rnd (b, n, 1.0);

  for (int64_t i = 0; i < n; i++)
    p[i] = 0.5f + fabsf (p[i]);
  return p;
}

static int
input (Builder *b, int ndim, int64_t s0, int64_t s1, int64_t s2, int64_t s3)
{
  const int64_t shape[4] = { s0, s1, s2, s3 };
  int64_t n = 1;
  int id;

  if (b->error)
    return -1;
  for (int i = 0; i < ndim; i++)
    n *= shape[i];
  id = ee_graph_input (b->g, "x", ndim, shape);
  g_array_append_val (b->inputs, id);
  g_ptr_array_add (b->input_data, rnd (b, n, 1.0));
  return id;
}

static int
op (Builder *b, const EeOpDesc *d, const int *in, int n_in)
{
  if (b->error)
    return -1;
  return ee_graph_op (b->g, ee_op_kind_name (d->kind), d, in, n_in, &b->error);
}

static int
op1 (Builder *b, const EeOpDesc *d, int x)
{
  return op (b, d, &x, 1);
}

static int
view (Builder *b, int base, int ndim, const int64_t *shape,
      const int64_t *stride, int64_t offset)
{
  if (b->error)
    return -1;
  return ee_graph_view (b->g, base, ndim, shape, stride, offset, &b->error);
}

static void
output (Builder *b, int value, const char *name)
{
  int id;

  if (b->error)
    return;
  id = ee_graph_mark_output (b->g, value, &b->error);
  g_array_append_val (b->outputs, id);
  g_ptr_array_add (b->output_names, (gpointer)name);
}

static int
conv (Builder *b, int x, int64_t cin, int64_t cout, int k, int stride, int pad,
      int dilation, gboolean bias, EeActivation act)
{
  EeOpDesc d = ee_op_desc_init (EE_OP_CONV2D);

  d.out_features = cout;
  d.kernel_size[0] = d.kernel_size[1] = k;
  d.stride[0] = d.stride[1] = stride;
  d.pad[0] = d.pad[1] = pad;
  d.dilation[0] = d.dilation[1] = dilation;
  d.weight = rnd (b, cout * cin * k * k, 1.0 / sqrt ((double)cin * k * k));
  d.bias = bias ? rnd (b, cout, 0.5) : NULL;
  d.act = act;
  return op1 (b, &d, x);
}

static int
linear (Builder *b, int x, int64_t k, int64_t m, gboolean bias,
        EeActivation act)
{
  EeOpDesc d = ee_op_desc_init (EE_OP_LINEAR);

  d.out_features = m;
  d.weight = rnd (b, m * k, 1.0 / sqrt ((double)k));
  d.bias = bias ? rnd (b, m, 0.5) : NULL;
  d.act = act;
  return op1 (b, &d, x);
}

static int
pool (Builder *b, int x, EeOpKind kind, int k, int s, int pad,
      gboolean ceil_mode, gboolean include_pad)
{
  EeOpDesc d = ee_op_desc_init (kind);

  d.kernel[0] = d.kernel[1] = k;
  d.stride[0] = d.stride[1] = s;
  d.pad[0] = d.pad[1] = pad;
  d.ceil_mode = ceil_mode;
  d.count_include_pad = include_pad;
  return op1 (b, &d, x);
}

static int
simple (Builder *b, EeOpKind kind, int x)
{
  EeOpDesc d = ee_op_desc_init (kind);

  return op1 (b, &d, x);
}

static int
binary (Builder *b, EeOpKind kind, int x, int y)
{
  EeOpDesc d = ee_op_desc_init (kind);
  int in[2] = { x, y };

  return op (b, &d, in, 2);
}

/* ---- cases ---- */

/* The first layer of a CNN: an F32 NCHW image into a fused conv + ReLU. */
static void
case_conv (Builder *b)
{
  int x = input (b, 4, 2, 3, 17, 19);

  output (b, conv (b, x, 3, 8, 3, 1, 1, 1, TRUE, EE_ACT_RELU), "relu");
  output (b, conv (b, x, 3, 5, 1, 1, 0, 1, FALSE, EE_ACT_NONE), "1x1");
  output (b, conv (b, x, 3, 6, 3, 2, 2, 2, TRUE, EE_ACT_GELU), "gelu");
  output (b, conv (b, x, 3, 4, 5, 1, 0, 1, TRUE, EE_ACT_NONE), "5x5");
}

/* Convolutions feeding each other in the backend layout. */
static void
case_conv_chain (Builder *b)
{
  int x = input (b, 4, 1, 8, 24, 20);
  int y = conv (b, x, 8, 16, 3, 1, 1, 1, TRUE, EE_ACT_RELU);

  y = conv (b, y, 16, 16, 1, 1, 0, 1, FALSE, EE_ACT_NONE);
  y = pool (b, y, EE_OP_MAXPOOL, 2, 2, 0, FALSE, TRUE);
  output (b, conv (b, y, 16, 8, 3, 2, 2, 2, TRUE, EE_ACT_GELU), "out");
}

/* A strided plain input: the convolution copies it into its layout. */
static void
case_conv_view (Builder *b)
{
  int x = input (b, 4, 1, 4, 10, 24);
  const int64_t shape[4] = { 1, 4, 10, 12 }, stride[4] = { 960, 240, 24, 2 };
  int v = view (b, x, 4, shape, stride, 1);

  output (b, conv (b, v, 4, 8, 3, 1, 1, 1, TRUE, EE_ACT_RELU), "out");
}

static void
case_pool (Builder *b)
{
  /* With H = 14, ceil mode adds a window: those pools run in the kernel
   * with PyTorch's edge rules, the floor-mode ones in cuDNN. */
  int x = input (b, 4, 2, 6, 14, 11);
  int c = conv (b, x, 6, 8, 3, 1, 1, 1, TRUE, EE_ACT_NONE);

  output (b, pool (b, x, EE_OP_MAXPOOL, 3, 2, 1, TRUE, TRUE), "max-ceil");
  output (b, pool (b, x, EE_OP_AVGPOOL, 3, 2, 1, TRUE, TRUE), "avg-ceil-incl");
  output (b, pool (b, x, EE_OP_AVGPOOL, 3, 2, 1, TRUE, FALSE), "avg-ceil-excl");
  output (b, pool (b, x, EE_OP_AVGPOOL, 2, 2, 0, FALSE, FALSE), "avg-floor");
  output (b, pool (b, x, EE_OP_AVGPOOL, 3, 1, 1, FALSE, TRUE),
          "avg-floor-incl");
  output (b, pool (b, c, EE_OP_MAXPOOL, 2, 2, 0, FALSE, TRUE), "max-conv");
  output (b, pool (b, c, EE_OP_MAXPOOL, 3, 2, 0, TRUE, TRUE), "max-ceil-conv");
}

static void
case_reduce (Builder *b)
{
  int x = input (b, 4, 2, 5, 9, 7);
  int c = conv (b, x, 5, 40, 3, 1, 1, 1, TRUE, EE_ACT_RELU);
  int r = input (b, 3, 3, 4, 5, 0);
  EeOpDesc sum = ee_op_desc_init (EE_OP_SUM);

  output (b, simple (b, EE_OP_GLOBAL_AVGPOOL, x), "gap");
  output (b, simple (b, EE_OP_GLOBAL_AVGPOOL, c), "gap-conv");
  sum.alpha = 0.5f;
  output (b, op1 (b, &sum, x), "sum");
  output (b, op1 (b, &sum, c), "sum-conv");
  output (b, op1 (b, &sum, r), "sum-3d");
}

static void
case_batchnorm (Builder *b)
{
  int x = input (b, 4, 2, 6, 5, 7);
  int m = input (b, 2, 4, 6, 0, 0);
  int c = conv (b, x, 6, 6, 3, 1, 1, 1, FALSE, EE_ACT_NONE);
  EeOpDesc d = ee_op_desc_init (EE_OP_BATCHNORM);

  d.mean = rnd (b, 6, 0.5);
  d.var = rnd_pos (b, 6);
  d.weight = rnd (b, 6, 1.0);
  d.bias = rnd (b, 6, 0.5);
  d.act = EE_ACT_RELU;
  output (b, op1 (b, &d, x), "relu");
  d.act = EE_ACT_GELU;
  output (b, op1 (b, &d, c), "gelu-conv");
  d.act = EE_ACT_NONE;
  d.weight = d.bias = NULL;
  output (b, op1 (b, &d, m), "2d");
}

static void
case_linear (Builder *b)
{
  int x = input (b, 3, 2, 5, 24, 0);
  int y = input (b, 2, 7, 24, 0, 0);
  int t = input (b, 2, 24, 5, 0, 0);
  const int64_t shape[2] = { 5, 24 }, stride[2] = { 1, 5 };

  output (b, linear (b, x, 24, 16, TRUE, EE_ACT_GELU), "gelu");
  output (b, linear (b, y, 24, 10, FALSE, EE_ACT_RELU), "relu");
  output (
      b,
      linear (b, view (b, t, 2, shape, stride, 0), 24, 12, TRUE, EE_ACT_NONE),
      "transposed-input");
}

static void
case_matmul (Builder *b)
{
  int q = input (b, 3, 2, 6, 8, 0);
  int k = input (b, 3, 2, 6, 8, 0);
  int v = input (b, 3, 2, 6, 8, 0);
  int a = input (b, 2, 5, 7, 0, 0);
  int c = input (b, 2, 7, 3, 0, 0);
  int w = input (b, 2, 10, 14, 0, 0);
  const int64_t kt_shape[3] = { 2, 8, 6 }, kt_stride[3] = { 48, 1, 8 };
  const int64_t s_shape[2] = { 5, 7 }, s_stride[2] = { 28, 2 };
  EeOpDesc mm = ee_op_desc_init (EE_OP_MATMUL);
  int in[2], scores;

  in[0] = q;
  in[1] = view (b, k, 3, kt_shape, kt_stride, 0);
  mm.alpha = 0.35f;
  scores = op (b, &mm, in, 2);
  output (b, scores, "q-kt");
  in[0] = scores;
  in[1] = v;
  mm.alpha = 1.0f;
  output (b, op (b, &mm, in, 2), "s-v");
  in[0] = a;
  in[1] = c;
  output (b, op (b, &mm, in, 2), "2d");
  /* Neither stride is 1: cuBLAS cannot read it in place. */
  in[0] = view (b, w, 2, s_shape, s_stride, 0);
  output (b, op (b, &mm, in, 2), "strided");
}

static void
case_rows (Builder *b)
{
  int x = input (b, 3, 3, 5, 32, 0);
  int t = input (b, 2, 9, 6, 0, 0);
  const int64_t shape[2] = { 6, 9 }, stride[2] = { 1, 6 };
  EeOpDesc ln = ee_op_desc_init (EE_OP_LAYERNORM);

  ln.weight = rnd (b, 32, 1.0);
  ln.bias = rnd (b, 32, 0.5);
  ln.eps = 1e-6f;
  output (b, op1 (b, &ln, x), "layernorm");
  ln.weight = ln.bias = NULL;
  ln.eps = 1e-5f;
  output (b, op1 (b, &ln, x), "layernorm-plain");
  output (b, simple (b, EE_OP_SOFTMAX, x), "softmax");
  output (b, simple (b, EE_OP_SOFTMAX, view (b, t, 2, shape, stride, 0)),
          "softmax-view");
}

static void
case_eltwise (Builder *b)
{
  int x = input (b, 4, 2, 3, 5, 7);
  int y = input (b, 4, 2, 3, 5, 7);
  int z = input (b, 4, 2, 8, 3, 4);
  int t = input (b, 2, 4, 10, 0, 0);
  int c = conv (b, x, 3, 8, 3, 2, 1, 1, TRUE, EE_ACT_NONE);
  const int64_t shape[2] = { 10, 4 }, stride[2] = { 1, 10 };

  output (b, simple (b, EE_OP_GELU, x), "gelu");
  output (b, simple (b, EE_OP_RELU, x), "relu");
  output (b, simple (b, EE_OP_RELU, c), "relu-conv");
  output (b, simple (b, EE_OP_GELU, view (b, t, 2, shape, stride, 0)),
          "gelu-view");
  output (b, binary (b, EE_OP_ADD, x, y), "add");
  output (b, binary (b, EE_OP_MUL, x, y), "mul");
  /* NHWC plus NCHW, both ways round */
  output (b, binary (b, EE_OP_ADD, c, z), "add-conv-plain");
  output (b, binary (b, EE_OP_MUL, z, c), "mul-plain-conv");
}

static void
case_film (Builder *b)
{
  int x = input (b, 4, 2, 3, 6, 7);
  int e = input (b, 2, 2, 12, 0, 0);
  int gp = input (b, 2, 2, 8, 0, 0);
  int bp = input (b, 2, 2, 8, 0, 0);
  int c = conv (b, x, 3, 8, 3, 1, 1, 1, TRUE, EE_ACT_RELU);
  EeOpDesc d = ee_op_desc_init (EE_OP_FILM);
  int in[3];

  in[0] = c;
  in[1] = linear (b, e, 12, 8, TRUE, EE_ACT_NONE);
  in[2] = linear (b, e, 12, 8, TRUE, EE_ACT_NONE);
  d.act = EE_ACT_RELU;
  output (b, op (b, &d, in, 3), "conv-linear");
  in[0] = input (b, 4, 2, 8, 4, 5);
  in[1] = gp;
  in[2] = bp;
  d.act = EE_ACT_NONE;
  output (b, op (b, &d, in, 3), "plain");
}

static void
case_concat (Builder *b)
{
  int x = input (b, 4, 1, 3, 8, 9);
  int p = input (b, 4, 1, 5, 8, 9);
  int m = input (b, 2, 3, 4, 0, 0);
  int n = input (b, 2, 3, 6, 0, 0);
  EeOpDesc d = ee_op_desc_init (EE_OP_CONCAT);
  int in[3];

  in[0] = conv (b, x, 3, 8, 3, 1, 1, 1, TRUE, EE_ACT_RELU);
  in[1] = conv (b, x, 3, 4, 1, 1, 0, 1, TRUE, EE_ACT_NONE);
  in[2] = conv (b, x, 3, 2, 3, 1, 1, 1, FALSE, EE_ACT_NONE);
  output (b, op (b, &d, in, 3), "convs");
  in[1] = p;
  output (b, op (b, &d, in, 2), "conv-plain");
  in[0] = m;
  in[1] = n;
  output (b, op (b, &d, in, 2), "2d");
}

static void
case_patchify (Builder *b)
{
  int x = input (b, 4, 2, 3, 8, 12);
  EeOpDesc d = ee_op_desc_init (EE_OP_PATCHIFY);

  d.patch = 4;
  output (b, op1 (b, &d, x), "plain");
  output (b, op1 (b, &d, conv (b, x, 3, 6, 3, 1, 1, 1, TRUE, EE_ACT_NONE)),
          "conv");
}

static void
case_upsample (Builder *b)
{
  int x = input (b, 4, 1, 3, 5, 6);
  EeOpDesc d = ee_op_desc_init (EE_OP_UPSAMPLE_NEAREST);

  d.factor = 2;
  output (b, op1 (b, &d, x), "plain");
  d.factor = 3;
  output (b, op1 (b, &d, conv (b, x, 3, 4, 3, 1, 1, 1, TRUE, EE_ACT_RELU)),
          "conv");
}

/* Self-attention of one sequence, heads as the matmul batch. */
static void
case_attention (Builder *b)
{
  const int64_t t = 10, dm = 16, hd = 8;
  int x = input (b, 2, t, dm, 0, 0);
  int qkv = linear (b, x, dm, 3 * dm, TRUE, EE_ACT_NONE);
  const int64_t hs[3] = { 2, t, hd }, hstr[3] = { hd, 3 * dm, 1 };
  const int64_t ks[3] = { 2, hd, t }, kstr[3] = { hd, 1, 3 * dm };
  EeOpDesc mm = ee_op_desc_init (EE_OP_MATMUL);
  int in[2], p;

  in[0] = view (b, qkv, 3, hs, hstr, 0);
  in[1] = view (b, qkv, 3, ks, kstr, dm);
  mm.alpha = (float)(1.0 / sqrt ((double)hd));
  p = simple (b, EE_OP_SOFTMAX, op (b, &mm, in, 2));
  in[0] = p;
  in[1] = view (b, qkv, 3, hs, hstr, 2 * dm);
  mm.alpha = 1.0f;
  output (b, op (b, &mm, in, 2), "out");
}

static const struct
{
  const char *name;
  CaseFunc build;
} cases[] = {
  { "conv", case_conv },           { "conv-chain", case_conv_chain },
  { "conv-view", case_conv_view }, { "pool", case_pool },
  { "reduce", case_reduce },       { "batchnorm", case_batchnorm },
  { "linear", case_linear },       { "matmul", case_matmul },
  { "rows", case_rows },           { "eltwise", case_eltwise },
  { "film", case_film },           { "concat", case_concat },
  { "patchify", case_patchify },   { "upsample", case_upsample },
  { "attention", case_attention },
};

/* ---- running ---- */

typedef struct
{
  GPtrArray *values; /* float arrays, one per output */
  GArray *numel;     /* gint64 */
  GPtrArray *names;
} Result;

static void
result_clear (Result *r)
{
  if (r->values)
    g_ptr_array_unref (r->values);
  if (r->numel)
    g_array_unref (r->numel);
  if (r->names)
    g_ptr_array_unref (r->names);
}

/* Builds case c on be, runs it and downloads its outputs. */
static gboolean
run_case (EeBackend *be, int c, Result *r, GError **error)
{
  Builder b = { 0 };
  gboolean ok;

  b.g = ee_graph_new (be);
  b.rand = g_rand_new_with_seed (1234 + (guint32)c);
  b.owned = g_ptr_array_new_with_free_func (g_free);
  b.inputs = g_array_new (FALSE, FALSE, sizeof (int));
  b.input_data = g_ptr_array_new ();
  b.outputs = g_array_new (FALSE, FALSE, sizeof (int));
  b.output_names = g_ptr_array_new ();
  r->values = g_ptr_array_new_with_free_func (g_free);
  r->numel = g_array_new (FALSE, FALSE, sizeof (gint64));
  r->names = g_ptr_array_ref (b.output_names);

  cases[c].build (&b);
  ok = !b.error && ee_graph_plan (b.g, &b.error);
  for (guint i = 0; ok && i < b.inputs->len; i++)
    ok = ee_graph_upload (b.g, NULL, g_array_index (b.inputs, int, i),
                          g_ptr_array_index (b.input_data, i), &b.error);
  ok = ok && ee_graph_run (b.g, NULL, 0, ee_graph_n_ops (b.g), &b.error);
  for (guint i = 0; ok && i < b.outputs->len; i++) {
    int id = g_array_index (b.outputs, int, i);
    gint64 n = ee_tensor_desc_numel (ee_graph_desc (b.g, id));
    float *host = g_new (float, n);

    g_ptr_array_add (r->values, host);
    g_array_append_val (r->numel, n);
    ok = ee_graph_download (b.g, NULL, id, host, &b.error);
  }
  /* Inputs and outputs stay in use until the stream has run. */
  ok = ee_backend_sync (be, ok ? &b.error : NULL) && ok;
  if (!ok)
    g_propagate_error (error, b.error);
  ee_graph_free (b.g);
  g_rand_free (b.rand);
  g_ptr_array_unref (b.owned);
  g_array_unref (b.inputs);
  g_ptr_array_unref (b.input_data);
  g_array_unref (b.outputs);
  g_ptr_array_unref (b.output_names);
  return ok;
}

static double
rel_err (const float *got, const float *exp, gint64 n)
{
  double err = 0.0, scale = 1e-6;

  for (gint64 i = 0; i < n; i++) {
    double d = fabs ((double)got[i] - exp[i]);

    /* NaN compares false: count it as an infinite error. */
    err = d == d ? MAX (err, d) : INFINITY;
    scale = MAX (scale, fabs ((double)exp[i]));
  }
  return err / scale;
}

static int
check_precision (EeBackend *cpu, EePrecision precision, char **only)
{
  const double tol = precision == EE_PRECISION_FP32 ? 1e-4 : 2e-2;
  GError *error = NULL;
  EeBackend *gpu = ee_backend_new_full ("cuda", 0, precision, &error);
  int failures = 0;

  if (!gpu) {
    printf ("FAIL %s: %s\n", ee_precision_name (precision), error->message);
    g_error_free (error);
    return 1;
  }
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    Result want = { 0 }, got = { 0 };

    if (only && *only
        && !g_strv_contains ((const char *const *)only, cases[c].name))
      continue;
    if (!run_case (cpu, (int)c, &want, &error)
        || !run_case (gpu, (int)c, &got, &error)) {
      printf ("FAIL %s %s: %s\n", ee_precision_name (precision), cases[c].name,
              error->message);
      g_clear_error (&error);
      failures++;
    } else {
      for (guint i = 0; i < want.values->len; i++) {
        double e = rel_err (g_ptr_array_index (got.values, i),
                            g_ptr_array_index (want.values, i),
                            g_array_index (want.numel, gint64, i));
        gboolean ok = e <= tol;

        printf ("%s %s %s.%s: relative error %.3g (tolerance %.0e)\n",
                ok ? "ok  " : "FAIL", ee_precision_name (precision),
                cases[c].name, (const char *)g_ptr_array_index (want.names, i),
                e, tol);
        failures += !ok;
      }
    }
    result_clear (&want);
    result_clear (&got);
  }
  ee_backend_free (gpu);
  return failures;
}

int
main (int argc, char **argv)
{
  char *precision = NULL;
  GOptionEntry entries[]
      = { { "precision", 'p', 0, G_OPTION_ARG_STRING, &precision,
            "fp32, tf32, fp16, bf16 or all (default)", "P" },
          { NULL } };
  GOptionContext *ctx = g_option_context_new (
      "[CASE...] - CUDA backend ops against the CPU backend");
  GError *error = NULL;
  EeBackend *cpu;
  EePrecision p;
  int count = 0, failures = 0;
  cudaError_t st;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error)
      || (precision && strcmp (precision, "all") != 0
          && !ee_precision_from_string (precision, &p))) {
    fprintf (stderr, "test-cuda-parity: %s\n",
             error ? error->message : "unknown precision");
    return 2;
  }
  g_option_context_free (ctx);
  st = cudaGetDeviceCount (&count);
  if (st != cudaSuccess || count == 0) {
    printf ("SKIP: no usable CUDA device (%s)\n",
            st != cudaSuccess ? cudaGetErrorString (st) : "none found");
    return SKIP;
  }
  cpu = ee_backend_cpu_new (0, &error);
  if (!cpu) {
    fprintf (stderr, "test-cuda-parity: %s\n", error->message);
    return 1;
  }
  for (int i = EE_PRECISION_FP32; i <= EE_PRECISION_BF16; i++) {
    if (precision && strcmp (precision, "all") != 0 && i != (int)p)
      continue;
    failures += check_precision (cpu, (EePrecision)i, argv + 1);
  }
  ee_backend_free (cpu);
  g_free (precision);
  printf ("%d failure%s\n", failures, failures == 1 ? "" : "s");
  return failures ? 1 : 0;
}
