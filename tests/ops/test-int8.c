/* gst-earlyexit: the CPU backend's int8 convolutions and calibration
 * against gen_int8.py's references.
 *
 * Usage: test-int8 [--expect-unsupported] VECTORS.safetensors
 *
 * "ops": int8 convolutions (s8 and u8 sources, u8 and float outputs, ReLU,
 * stride, dilation, zero weights) and int8 max pooling, chained in a graph
 * as a model would chain them, with the calibrated ranges set on each op;
 * every value is compared with the same quantised arithmetic done by
 * PyTorch and numpy: within one int8 unit of its output (1 / s_y) for u8
 * outputs, and for float outputs (bf16 where oneDNN has a bf16 output for
 * int8, else fp32) within one bf16 unit of each value, or float rounding in
 * fp32. Their data types are checked too (u8 between the convolutions, after
 * pooling; BF16 or F32 out of the others). "calib": histogram thresholds
 * against numpy's (percentile exact, entropy within one bin).
 *
 * A CPU without VNNI refuses the int8 instance (EE_ERROR_UNSUPPORTED): the
 * test is then skipped (77), or with --expect-unsupported passes, failing
 * if the instance is created. */
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ee-backend-cpu-calib.h"
#include "ee-graph.h"
#include "ee-safetensors.h"

#define EXIT_SKIP 77

static float *
tensor (EeSafetensors *st, const char *name, const EeStTensor **out)
{
  const EeStTensor *t = ee_safetensors_find (st, name);
  float *d;

  if (!t)
    g_error ("vectors: no tensor %s", name);
  d = g_new (float, t->numel);
  ee_st_tensor_to_f32 (t, d);
  if (out)
    *out = t;
  return d;
}

static gboolean
check_ops (EeSafetensors *st, EeBackend *be)
{
  JsonParser *p = json_parser_new ();
  JsonArray *ops;
  EeGraph *g = ee_graph_new (be);
  GHashTable *ids = g_hash_table_new (g_str_hash, g_str_equal);
  GPtrArray *keep = g_ptr_array_new_with_free_func (g_free);
  GArray *outs = g_array_new (FALSE, FALSE, sizeof (int));
  GError *error = NULL;
  gboolean ok = TRUE;
  const char *inputs[] = { "x1", "x2" };
  int in_ids[2];
  gboolean bf16_out[2] = { FALSE, FALSE }; /* of a and d */

  if (!json_parser_load_from_data (p, ee_safetensors_metadata (st, "ops"), -1,
                                   &error))
    g_error ("vectors: %s", error->message);
  ops = json_node_get_array (json_parser_get_root (p));
  for (int i = 0; i < 2; i++) {
    const EeStTensor *t;
    float *d = tensor (st, inputs[i], &t);

    g_ptr_array_add (keep, d);
    in_ids[i] = ee_graph_input (g, inputs[i], t->ndim, t->shape);
    g_hash_table_insert (ids, (gpointer)inputs[i], GINT_TO_POINTER (in_ids[i]));
  }
  for (guint i = 0; i < json_array_get_length (ops); i++) {
    JsonObject *o = json_array_get_object_element (ops, i);
    const char *name = json_object_get_string_member (o, "name");
    int x = GPOINTER_TO_INT (
        g_hash_table_lookup (ids, json_object_get_string_member (o, "input")));
    EeOpDesc d;
    int y;

    if (json_object_has_member (o, "kind")) {
      d = ee_op_desc_init (EE_OP_MAXPOOL);
      d.kernel[0] = d.kernel[1] = d.stride[0] = d.stride[1]
          = (int)json_object_get_int_member (o, "k");
    } else {
      JsonArray *r = json_object_get_array_member (o, "in");
      char *wn = g_strdup_printf ("%s.weight", name);
      char *bn = g_strdup_printf ("%s.bias", name);
      float *w = tensor (st, wn, NULL), *b = tensor (st, bn, NULL);

      g_ptr_array_add (keep, w);
      g_ptr_array_add (keep, b);
      g_free (wn);
      g_free (bn);
      d = ee_op_desc_init (EE_OP_CONV2D);
      d.out_features = json_object_get_int_member (o, "out");
      d.kernel_size[0] = d.kernel_size[1]
          = (int)json_object_get_int_member (o, "k");
      d.stride[0] = d.stride[1] = (int)json_object_get_int_member (o, "stride");
      d.pad[0] = d.pad[1] = (int)json_object_get_int_member (o, "pad");
      d.dilation[0] = d.dilation[1]
          = (int)json_object_get_int_member (o, "dil");
      d.act = json_object_get_boolean_member (o, "relu") ? EE_ACT_RELU
                                                         : EE_ACT_NONE;
      d.weight = w;
      d.bias = b;
      d.in_min = (float)json_array_get_double_element (r, 0);
      d.in_max = (float)json_array_get_double_element (r, 1);
      d.out_max = (float)json_array_get_double_element (r, 2);
    }
    y = ee_graph_op (g, name, &d, &x, 1, &error);
    if (y < 0)
      g_error ("op %s: %s", name, error->message);
    g_hash_table_insert (ids, (gpointer)name, GINT_TO_POINTER (y));
  }
  /* data types that flowed: u8 out of ReLU convolutions with a range and out
   * of pooling them; float out of the others */
  {
    const char *u8[] = { "b", "pool", "c" }, *f[] = { "a", "d" };

    for (int i = 0; i < 3; i++) {
      const EeTensorDesc *t = ee_graph_desc (
          g, GPOINTER_TO_INT (g_hash_table_lookup (ids, u8[i])));
      if (t->dtype != EE_DTYPE_U8) {
        printf ("FAIL %s is %s, expected U8\n", u8[i],
                ee_dtype_name (t->dtype));
        ok = FALSE;
      }
    }
    for (int i = 0; i < 2; i++) {
      const EeTensorDesc *t = ee_graph_desc (
          g, GPOINTER_TO_INT (g_hash_table_lookup (ids, f[i])));
      if (t->dtype != EE_DTYPE_F32 && t->dtype != EE_DTYPE_BF16) {
        printf ("FAIL %s is %s, expected BF16 (or F32 where oneDNN has no "
                "bf16 output)\n",
                f[i], ee_dtype_name (t->dtype));
        ok = FALSE;
      }
      bf16_out[i] = t->dtype == EE_DTYPE_BF16;
    }
  }
  {
    const char *names[] = { "a", "b", "pool", "c", "d" };
    /* tolerance in output units: one int8 step for u8 outputs; float
     * outputs: their fp32 rounding, well inside a step of the input */
    const double unit[] = { 1e-4, 4.0 / 255, 4.0 / 255, 6.0 / 255, 1e-4 };
    int out_ids[5];

    for (int i = 0; i < 5; i++) {
      out_ids[i] = ee_graph_mark_output (
          g, GPOINTER_TO_INT (g_hash_table_lookup (ids, names[i])), &error);
      if (out_ids[i] < 0)
        g_error ("%s", error->message);
    }
    if (!ee_graph_plan (g, &error)
        || !ee_graph_upload (g, NULL, in_ids[0], keep->pdata[0], &error)
        || !ee_graph_upload (g, NULL, in_ids[1], keep->pdata[1], &error)
        || !ee_graph_run (g, NULL, 0, ee_graph_n_ops (g), &error))
      g_error ("%s", error->message);
    for (int i = 0; i < 5; i++) {
      char *en = g_strdup_printf ("expect.%s", names[i]);
      const EeStTensor *t;
      float *want = tensor (st, en, &t);
      float *got = g_new (float, t->numel);
      double worst = 0.0, scale = 0.0, tol;
      int64_t at = 0;

      if (!ee_graph_download (g, NULL, out_ids[i], got, &error)
          || !ee_backend_sync (be, &error))
        g_error ("%s", error->message);
      /* a and d are float outputs (i 0 and 4); bf16 ones are held to one
       * bf16 unit of each value: the error as a share of that unit */
      gboolean bf16 = (i == 0 && bf16_out[0]) || (i == 4 && bf16_out[1]);

      for (int64_t k = 0; k < t->numel; k++) {
        double e = fabs ((double)got[k] - want[k]);

        if (bf16)
          e /= want[k] != 0.0f ? ldexp (1.0, ilogb (want[k]) - 7) : 1e-30;
        scale = MAX (scale, fabs (want[k]));
        if (e > worst) {
          worst = e;
          at = k;
        }
      }
      /* float outputs: relative to their largest value */
      tol = bf16             ? 1.0
            : unit[i] < 1e-3 ? unit[i] * MAX (scale, 1.0)
                             : unit[i] * 1.0001;
      printf ("%s %-5s max |got - expected|%s %.3g (tolerance %.3g; at "
              "%" G_GINT64_FORMAT ": %g vs %g)\n",
              worst <= tol ? "ok  " : "FAIL", names[i],
              bf16 ? " in bf16 units" : "", worst, tol, at, got[at], want[at]);
      ok &= worst <= tol;
      g_free (en);
      g_free (want);
      g_free (got);
    }
  }
  ee_graph_free (g);
  g_hash_table_unref (ids);
  g_ptr_array_unref (keep);
  g_array_unref (outs);
  g_object_unref (p);
  return ok;
}

static gboolean
check_calib (EeSafetensors *st)
{
  JsonParser *p = json_parser_new ();
  JsonArray *cases;
  GError *error = NULL;
  gboolean ok = TRUE;

  if (!json_parser_load_from_data (p, ee_safetensors_metadata (st, "calib"), -1,
                                   &error))
    g_error ("vectors: %s", error->message);
  cases = json_node_get_array (json_parser_get_root (p));
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *o = json_array_get_object_element (cases, i);
    const char *name = json_object_get_string_member (o, "name");
    int levels = (int)json_object_get_int_member (o, "levels");
    char *tn = g_strdup_printf ("calib.%s", name);
    const EeStTensor *t;
    float *x = tensor (st, tn, &t);
    EeCalibHist *h = g_new (EeCalibHist, 1);
    double pc, pc99, en, bin;

    /* in three pieces, so that the range grows between them */
    ee_calib_hist_init (h);
    ee_calib_hist_add (h, x, t->numel / 3);
    ee_calib_hist_add (h, x + t->numel / 3, t->numel / 3);
    ee_calib_hist_add (h, x + 2 * (t->numel / 3),
                       t->numel - 2 * (t->numel / 3));
    pc = ee_calib_threshold (h, EE_CALIB_PERCENTILE, 0.9999, levels);
    pc99 = ee_calib_threshold (h, EE_CALIB_PERCENTILE, 0.99, levels);
    en = ee_calib_threshold (h, EE_CALIB_ENTROPY, 0, levels);
    bin = h->range / EE_CALIB_BINS;
    {
      double want_pc = json_object_get_double_member (o, "percentile");
      double want_pc99 = json_object_get_double_member (o, "percentile99");
      double want_en = json_object_get_double_member (o, "entropy");
      gboolean good = pc == want_pc && pc99 == want_pc99
                      && fabs (en - want_en) <= bin * 1.0001;

      printf ("%s calib %-6s percentile 99.99 %g (numpy %g), 99 %g (numpy %g), "
              "entropy %g (numpy %g, bin %g)\n",
              good ? "ok  " : "FAIL", name, pc, want_pc, pc99, want_pc99, en,
              want_en, bin);
      ok &= good;
    }
    g_free (h);
    g_free (x);
    g_free (tn);
  }
  g_object_unref (p);
  return ok;
}

int
main (int argc, char **argv)
{
  gboolean expect_unsupported = FALSE;
  GError *error = NULL;
  EeSafetensors *st;
  EeBackend *be;
  gboolean ok;

  if (argc > 1 && !strcmp (argv[1], "--expect-unsupported")) {
    expect_unsupported = TRUE;
    argv++;
    argc--;
  }
  if (argc != 2) {
    fprintf (stderr, "usage: test-int8 [--expect-unsupported] VECTORS\n");
    return 2;
  }
  be = ee_backend_cpu_new_full (1, EE_PRECISION_INT8, &error);
  if (expect_unsupported) {
    if (be || !g_error_matches (error, EE_ERROR, EE_ERROR_UNSUPPORTED)) {
      printf ("FAIL: the int8 instance was %s\n",
              be ? "created" : error->message);
      return 1;
    }
    printf ("ok   refused: %s\n", error->message);
    return 0;
  }
  if (!be) {
    printf ("skip: %s\n", error->message);
    return g_error_matches (error, EE_ERROR, EE_ERROR_UNSUPPORTED) ? EXIT_SKIP
                                                                   : 1;
  }
  st = ee_safetensors_open (argv[1], &error);
  if (!st)
    g_error ("%s", error->message);
  ok = check_calib (st);
  ok &= check_ops (st, be);
  ee_safetensors_free (st);
  ee_backend_free (be);
  return ok ? 0 : 1;
}
