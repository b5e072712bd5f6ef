/* Graph planning and execution: a pre-norm multi-head attention block built
 * from backend ops and strided views, checked against PyTorch; the arena must
 * reuse memory; running in two ranges must equal running all at once. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ee-graph.h"
#include "ee-safetensors.h"

static const char *case_path;

static float *
tensor_f32 (EeSafetensors *st, const char *name)
{
  const EeStTensor *t = ee_safetensors_find (st, name);
  float *out;

  g_assert_nonnull (t);
  out = g_new (float, t->numel);
  ee_st_tensor_to_f32 (t, out);
  return out;
}

static double
max_rel_err (const float *got, const float *exp, gsize n)
{
  double err = 0, scale = 1e-6;

  for (gsize i = 0; i < n; i++) {
    err = MAX (err, fabs ((double)got[i] - exp[i]));
    scale = MAX (scale, fabs ((double)exp[i]));
  }
  return err / scale;
}

typedef struct
{
  EeGraph *g;
  int x, y, z, stage1_end;
  GPtrArray *params; /* host weights, freed after building */
} Block;

static int
linear (Block *b, EeSafetensors *st, const char *name, int in, int64_t out,
        EeActivation act, GError **error)
{
  EeOpDesc d = ee_op_desc_init (EE_OP_LINEAR);
  char *w = g_strdup_printf ("%s.weight", name),
       *bias = g_strdup_printf ("%s.bias", name);
  int id;

  d.out_features = out;
  d.act = act;
  d.weight = tensor_f32 (st, w);
  d.bias = tensor_f32 (st, bias);
  g_ptr_array_add (b->params, (gpointer)d.weight);
  g_ptr_array_add (b->params, (gpointer)d.bias);
  id = ee_graph_op (b->g, name, &d, &in, 1, error);
  g_free (w);
  g_free (bias);
  return id;
}

static void
build_block (Block *b, EeBackend *be, EeSafetensors *st)
{
  GError *error = NULL;
  int64_t n = atoi (ee_safetensors_metadata (st, "n"));
  int64_t d = atoi (ee_safetensors_metadata (st, "d"));
  int64_t h = atoi (ee_safetensors_metadata (st, "heads"));
  int64_t e = atoi (ee_safetensors_metadata (st, "e"));
  int64_t x_shape[2] = { n, d };
  EeOpDesc ln = ee_op_desc_init (EE_OP_LAYERNORM);
  EeOpDesc mm = ee_op_desc_init (EE_OP_MATMUL);
  EeOpDesc sm = ee_op_desc_init (EE_OP_SOFTMAX);
  EeOpDesc add = ee_op_desc_init (EE_OP_ADD);
  EeOpDesc cp = ee_op_desc_init (EE_OP_REORDER);
  int xn, q, k, v, qh, kt, vh, scores, probs, att, att_t, att_c, att_2d, proj,
      in2[2];

  b->params = g_ptr_array_new_with_free_func (g_free);
  b->g = ee_graph_new (be);
  b->x = ee_graph_input (b->g, "x", 2, x_shape);

  ln.eps = 1e-6f;
  ln.weight = tensor_f32 (st, "ln.weight");
  ln.bias = tensor_f32 (st, "ln.bias");
  g_ptr_array_add (b->params, (gpointer)ln.weight);
  g_ptr_array_add (b->params, (gpointer)ln.bias);
  xn = ee_graph_op (b->g, "ln", &ln, &b->x, 1, &error);
  g_assert_no_error (error);
  q = linear (b, st, "q", xn, h * d, EE_ACT_NONE, &error);
  k = linear (b, st, "k", xn, h * d, EE_ACT_NONE, &error);
  v = linear (b, st, "v", xn, h * d, EE_ACT_NONE, &error);
  g_assert_no_error (error);

  /* heads as strided views of (n, h*d): head j of token i at i*h*d + j*d */
  {
    int64_t hs[3] = { h, n, d }, hst[3] = { d, h * d, 1 };
    int64_t ks[3] = { h, d, n }, kst[3] = { d, 1, h * d };
    qh = ee_graph_view (b->g, q, 3, hs, hst, 0, &error);
    kt = ee_graph_view (b->g, k, 3, ks, kst, 0, &error);
    vh = ee_graph_view (b->g, v, 3, hs, hst, 0, &error);
    g_assert_no_error (error);
  }
  mm.alpha = 1.0f / sqrtf ((float)d);
  in2[0] = qh;
  in2[1] = kt;
  scores = ee_graph_op (b->g, "scores", &mm, in2, 2, &error);
  g_assert_no_error (error);
  probs = ee_graph_op (b->g, "softmax", &sm, &scores, 1, &error);
  mm.alpha = 1.0f;
  in2[0] = probs;
  in2[1] = vh;
  att = ee_graph_op (b->g, "att", &mm, in2, 2, &error);
  g_assert_no_error (error);
  /* (h, n, d) -> (n, h, d): transpose view, then a contiguous copy */
  {
    int64_t ts[3] = { n, h, d }, tst[3] = { d, n * d, 1 }, s2[2] = { n, h * d };
    att_t = ee_graph_view (b->g, att, 3, ts, tst, 0, &error);
    g_assert_no_error (error);
    att_c = ee_graph_op (b->g, "heads", &cp, &att_t, 1, &error);
    g_assert_no_error (error);
    att_2d = ee_graph_reshape (b->g, att_c, 2, s2, &error);
    g_assert_no_error (error);
  }
  proj = linear (b, st, "o", att_2d, d, EE_ACT_NONE, &error);
  g_assert_no_error (error);
  in2[0] = b->x;
  in2[1] = proj;
  b->y = ee_graph_op (b->g, "residual", &add, in2, 2, &error);
  g_assert_no_error (error);
  b->y = ee_graph_mark_output (b->g, b->y, &error);
  g_assert_no_error (error);
  b->stage1_end = ee_graph_n_ops (b->g);
  b->z = linear (b, st, "fc", b->y, e, EE_ACT_RELU, &error);
  g_assert_no_error (error);
  b->z = ee_graph_mark_output (b->g, b->z, &error);
  g_assert_no_error (error);

  g_assert_true (ee_graph_plan (b->g, &error));
  g_assert_no_error (error);
  g_ptr_array_unref (b->params);
}

static void
test_attention_block (void)
{
  GError *error = NULL;
  EeBackend *be = ee_backend_cpu_new (0, &error);
  EeSafetensors *st;
  Block b = { 0 };
  float *x, *ey, *ez, *y, *z;
  int64_t ny, nz;
  double ry, rz;

  g_assert_no_error (error);
  st = ee_safetensors_open (case_path, &error);
  g_assert_no_error (error);
  build_block (&b, be, st);

  ny = ee_tensor_desc_numel (ee_graph_desc (b.g, b.y));
  nz = ee_tensor_desc_numel (ee_graph_desc (b.g, b.z));
  x = tensor_f32 (st, "x");
  ey = tensor_f32 (st, "expected.y");
  ez = tensor_f32 (st, "expected.z");
  y = g_new0 (float, ny);
  z = g_new0 (float, nz);

  /* all at once */
  g_assert_true (ee_graph_upload (b.g, NULL, b.x, x, &error));
  g_assert_true (ee_graph_run (b.g, NULL, 0, ee_graph_n_ops (b.g), &error));
  g_assert_true (ee_graph_download (b.g, NULL, b.y, y, &error));
  g_assert_true (ee_graph_download (b.g, NULL, b.z, z, &error));
  g_assert_true (ee_backend_sync (be, &error));
  g_assert_no_error (error);
  ry = max_rel_err (y, ey, (gsize)ny);
  rz = max_rel_err (z, ez, (gsize)nz);
  g_print ("attention block: rel err y %.2e z %.2e, arena %zu bytes (%zu "
           "unshared), %d ops\n",
           ry, rz, ee_graph_arena_bytes (b.g), ee_graph_unshared_bytes (b.g),
           ee_graph_n_ops (b.g));
  g_assert_cmpfloat (ry, <=, 1e-5);
  g_assert_cmpfloat (rz, <=, 1e-5);

  /* two stages, as the multi-exit runner does: identical results */
  memset (y, 0, sizeof (float) * ny);
  memset (z, 0, sizeof (float) * nz);
  g_assert_true (ee_graph_upload (b.g, NULL, b.x, x, &error));
  g_assert_true (ee_graph_run (b.g, NULL, 0, b.stage1_end, &error));
  g_assert_true (ee_graph_download (b.g, NULL, b.y, y, &error));
  g_assert_true (
      ee_graph_run (b.g, NULL, b.stage1_end, ee_graph_n_ops (b.g), &error));
  g_assert_true (ee_graph_download (b.g, NULL, b.z, z, &error));
  g_assert_true (ee_backend_sync (be, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (max_rel_err (y, ey, (gsize)ny), <=, 1e-5);
  g_assert_cmpfloat (max_rel_err (z, ez, (gsize)nz), <=, 1e-5);

  /* values that are dead reuse memory: the arena is smaller than the sum */
  g_assert_cmpuint (ee_graph_arena_bytes (b.g), <,
                    ee_graph_unshared_bytes (b.g));

  g_free (x);
  g_free (ey);
  g_free (ez);
  g_free (y);
  g_free (z);
  ee_graph_free (b.g);
  ee_safetensors_free (st);
  ee_backend_free (be);
}

static void
test_bad_arguments (void)
{
  GError *error = NULL;
  EeBackend *be = ee_backend_cpu_new (1, &error);
  EeGraph *g = ee_graph_new (be);
  int64_t s[2] = { 4, 6 }, big[2] = { 5, 6 }, st2[2] = { 6, 1 };
  int x = ee_graph_input (g, "x", 2, s);

  g_assert_cmpint (ee_graph_reshape (g, x, 2, big, &error), ==, -1);
  g_assert_error (error, EE_ERROR, EE_ERROR_ARGUMENT);
  g_clear_error (&error);
  g_assert_cmpint (ee_graph_view (g, x, 2, big, st2, 0, &error), ==, -1);
  g_assert_error (error, EE_ERROR, EE_ERROR_ARGUMENT);
  g_clear_error (&error);
  ee_graph_free (g);
  ee_backend_free (be);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (argc < 2) {
    g_printerr ("usage: test-graph CASE.safetensors\n");
    return 2;
  }
  case_path = argv[1];
  g_test_add_func ("/graph/attention-block", test_attention_block);
  g_test_add_func ("/graph/bad-arguments", test_bad_arguments);
  return g_test_run ();
}
