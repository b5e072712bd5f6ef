/* gst-earlyexit: every op of the CPU backend against PyTorch.
 *
 * Usage: test-ops [--precision fp32|bf16] [--expect-unsupported]
 *                 VECTORS.safetensors [CASE...]
 *
 * The vectors come from gen_ops.py: metadata "cases" lists, per case, the
 * input tensors, a sequence of ops (kind, parameters, inputs by value name or
 * as strided views) and the values to compare with PyTorch's float64 result.
 * Each case runs as a model would: op_new for all ops, upload, op_enqueue,
 * then EE_OP_REORDER for outputs left in a backend layout or not F32,
 * download, sync. One line per checked value gives its relative error,
 * max |got - expected| / max (max |expected|, 1e-6), which must stay within
 * 1e-5 in fp32 and 2e-2 in bf16 (8 significant bits, rounded at every
 * convolution). Values listed under "backend" must come out in a backend
 * layout, so the test knows blocked tensors really flowed between ops; in
 * bf16 they must also be BF16, so the test knows chains of convolutions
 * stayed bf16.
 *
 * A CPU oneDNN has no bf16 kernels for makes a bf16 instance
 * EE_ERROR_UNSUPPORTED: the run is then skipped (exit status 77), or passes
 * with --expect-unsupported, which fails if the instance is created. */
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ee-backend.h"
#include "ee-safetensors.h"

#define EXIT_SKIP 77

static double tolerance = 1e-5;
static gboolean bf16;

typedef struct
{
  EeTensorDesc desc;
  void *data; /* backend memory */
} Value;

typedef struct
{
  EeBackend *be;
  EeSafetensors *st;
  const char *name;   /* of the case */
  GHashTable *values; /* name -> Value */
  GPtrArray *ops;  /* alive until the end: outputs' layouts point into them */
  GPtrArray *mem;  /* backend allocations */
  GPtrArray *host; /* host buffers handed to uploads and downloads */
} Case;

static float *
load (Case *c, const char *name, EeTensorDesc *desc, GError **error)
{
  char *full = g_strdup_printf ("%s.%s", c->name, name);
  const EeStTensor *t = ee_safetensors_find (c->st, full);
  float *host;

  if (!t || t->ndim < 1 || t->ndim > EE_MAX_DIMS) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "tensor %s %s in the vectors file", full,
                 t ? "has an unusable rank" : "is missing");
    g_free (full);
    return NULL;
  }
  g_free (full);
  host = g_new (float, MAX (t->numel, 1));
  ee_st_tensor_to_f32 (t, host);
  if (desc)
    *desc = ee_tensor_desc_plain (EE_DTYPE_F32, t->ndim, t->shape);
  return host;
}

static void *
backend_alloc (Case *c, size_t nbytes, GError **error)
{
  void *p = ee_backend_alloc (c->be, nbytes, error);

  if (p)
    g_ptr_array_add (c->mem, p);
  return p;
}

static gboolean
add_input (Case *c, const char *name, GError **error)
{
  Value *v = g_new0 (Value, 1);
  float *host = load (c, name, &v->desc, error);

  g_hash_table_insert (c->values, g_strdup (name), v);
  if (!host)
    return FALSE;
  g_ptr_array_add (c->host, host);
  v->data = backend_alloc (c, v->desc.nbytes, error);
  return v->data
         && ee_backend_upload (c->be, v->data, host, v->desc.nbytes, error);
}

static gboolean
int_pair (JsonObject *spec, const char *key, int *dst)
{
  JsonArray *a;

  if (!json_object_has_member (spec, key))
    return TRUE;
  a = json_object_get_array_member (spec, key);
  if (!a || json_array_get_length (a) != 2)
    return FALSE;
  dst[0] = (int)json_array_get_int_element (a, 0);
  dst[1] = (int)json_array_get_int_element (a, 1);
  return TRUE;
}

/* An op input: a value by name, or {"of", "shape", "stride", "offset"}, a
 * strided view of a plain contiguous value. */
static gboolean
resolve (Case *c, JsonNode *node, EeTensor *t, GError **error)
{
  JsonObject *o;
  JsonArray *shape, *stride;
  const Value *base;
  int64_t offset, last;

  if (JSON_NODE_HOLDS_VALUE (node)) {
    const char *name = json_node_get_string (node);
    const Value *v = name ? g_hash_table_lookup (c->values, name) : NULL;

    if (!v) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "no value %s",
                   name ? name : "?");
      return FALSE;
    }
    t->desc = v->desc;
    t->data = v->data;
    return TRUE;
  }
  o = json_node_get_object (node);
  base = o ? g_hash_table_lookup (c->values,
                                  json_object_get_string_member (o, "of"))
           : NULL;
  shape = base ? json_object_get_array_member (o, "shape") : NULL;
  stride = shape ? json_object_get_array_member (o, "stride") : NULL;
  if (!stride || json_array_get_length (shape) != json_array_get_length (stride)
      || !ee_tensor_desc_is_contiguous (&base->desc)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "bad view (needs of, shape, stride of a plain value)");
    return FALSE;
  }
  memset (t, 0, sizeof *t);
  t->desc.dtype = EE_DTYPE_F32;
  t->desc.layout = EE_LAYOUT_PLAIN;
  t->desc.ndim = (int)json_array_get_length (shape);
  offset = json_object_get_int_member_with_default (o, "offset", 0);
  t->data = (float *)base->data + offset;
  last = offset;
  for (int i = 0; i < t->desc.ndim; i++) {
    t->desc.shape[i] = json_array_get_int_element (shape, i);
    t->desc.stride[i] = json_array_get_int_element (stride, i);
    last += (t->desc.shape[i] - 1) * t->desc.stride[i];
  }
  t->desc.nbytes = (size_t)(last - offset + 1) * sizeof (float);
  return TRUE;
}

static gboolean
kind_of (const char *name, EeOpKind *kind)
{
  for (int k = 0; k < EE_OP_N_KINDS; k++) {
    if (g_strcmp0 (name, ee_op_kind_name (k)) == 0) {
      *kind = k;
      return TRUE;
    }
  }
  return FALSE;
}

/* Host parameter `key` of spec, or NULL when the op has none. */
static gboolean
param (Case *c, JsonObject *spec, const char *key, float **dst,
       EeTensorDesc *desc, GPtrArray *owned, GError **error)
{
  const char *name
      = json_object_get_string_member_with_default (spec, key, NULL);

  *dst = NULL;
  if (!name)
    return TRUE;
  *dst = load (c, name, desc, error);
  if (*dst)
    g_ptr_array_add (owned, *dst);
  return *dst != NULL;
}

static gboolean
run_op (Case *c, JsonObject *spec, GError **error)
{
  const char *out_name = json_object_get_string_member (spec, "out");
  const char *act
      = json_object_get_string_member_with_default (spec, "act", "none");
  JsonArray *ins = json_object_get_array_member (spec, "in");
  int n_in = ins ? (int)json_array_get_length (ins) : 0;
  g_autoptr (GPtrArray) owned = g_ptr_array_new_with_free_func (g_free);
  EeTensor *in = g_new0 (EeTensor, MAX (n_in, 1));
  const EeTensorDesc **in_desc = g_new0 (const EeTensorDesc *, MAX (n_in, 1));
  const EeTensor **in_t = g_new0 (const EeTensor *, MAX (n_in, 1));
  EeTensorDesc wdesc = { 0 };
  float *weight, *bias, *mean, *var;
  EeOpKind kind;
  EeOpDesc d;
  EeOp *op = NULL;
  EeTensor out = { 0 };
  Value *v;
  gboolean ok = FALSE;

  if (!out_name
      || !kind_of (json_object_get_string_member (spec, "kind"), &kind)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "op without out or kind");
    goto done;
  }
  d = ee_op_desc_init (kind);
  d.act = g_str_equal (act, "relu")   ? EE_ACT_RELU
          : g_str_equal (act, "gelu") ? EE_ACT_GELU
                                      : EE_ACT_NONE;
  if (!int_pair (spec, "kernel", d.kernel)
      || !int_pair (spec, "stride", d.stride) || !int_pair (spec, "pad", d.pad)
      || !int_pair (spec, "dilation", d.dilation)) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "op %s: bad int pair",
                 out_name);
    goto done;
  }
  d.ceil_mode
      = json_object_get_boolean_member_with_default (spec, "ceil_mode", FALSE);
  d.count_include_pad = json_object_get_boolean_member_with_default (
      spec, "count_include_pad", TRUE);
  d.patch = (int)json_object_get_int_member_with_default (spec, "patch", 1);
  d.factor = (int)json_object_get_int_member_with_default (spec, "factor", 1);
  d.eps = (float)json_object_get_double_member_with_default (spec, "eps", 1e-5);
  d.alpha
      = (float)json_object_get_double_member_with_default (spec, "alpha", 1.0);
  if (!param (c, spec, "weight", &weight, &wdesc, owned, error)
      || !param (c, spec, "bias", &bias, NULL, owned, error)
      || !param (c, spec, "mean", &mean, NULL, owned, error)
      || !param (c, spec, "var", &var, NULL, owned, error))
    goto done;
  d.weight = weight;
  d.bias = bias;
  d.mean = mean;
  d.var = var;
  if (weight && (kind == EE_OP_CONV2D || kind == EE_OP_LINEAR))
    d.out_features = wdesc.shape[0];
  if (weight && kind == EE_OP_CONV2D) {
    d.kernel_size[0] = (int)wdesc.shape[2];
    d.kernel_size[1] = (int)wdesc.shape[3];
  }
  for (int i = 0; i < n_in; i++) {
    if (!resolve (c, json_array_get_element (ins, i), &in[i], error))
      goto done;
    in_desc[i] = &in[i].desc;
    in_t[i] = &in[i];
  }

  op = ee_backend_op_new (c->be, &d, in_desc, n_in, &out.desc, error);
  if (!op)
    goto done;
  g_ptr_array_add (c->ops, op);
  out.data = backend_alloc (c, out.desc.nbytes, error);
  if (!out.data || !ee_backend_op_enqueue (c->be, op, in_t, n_in, &out, error))
    goto done;
  v = g_new0 (Value, 1);
  v->desc = out.desc;
  v->data = out.data;
  g_hash_table_insert (c->values, g_strdup (out_name), v);
  ok = TRUE;
done:
  if (!ok && error && *error)
    g_prefix_error (error, "op %s: ", out_name ? out_name : "?");
  g_free (in);
  g_free (in_desc);
  g_free (in_t);
  return ok;
}

/* Downloads value `name` as plain floats, through a reorder op when it is in a
 * backend layout or another data type. */
static float *
fetch (Case *c, const char *name, EeTensorDesc *desc, GError **error)
{
  const Value *v = g_hash_table_lookup (c->values, name);
  EeTensor src, plain;
  const EeTensor *srcp = &src;
  const EeTensorDesc *srcd = &src.desc;
  EeOpDesc d = ee_op_desc_init (EE_OP_REORDER);
  float *host;
  EeOp *op;

  if (!v) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "no value %s", name);
    return NULL;
  }
  src.desc = v->desc;
  src.data = v->data;
  plain = src;
  if (v->desc.layout == EE_LAYOUT_BACKEND || v->desc.dtype != EE_DTYPE_F32) {
    op = ee_backend_op_new (c->be, &d, &srcd, 1, &plain.desc, error);
    if (!op)
      return NULL;
    g_ptr_array_add (c->ops, op);
    if (plain.desc.layout != EE_LAYOUT_PLAIN
        || plain.desc.dtype != EE_DTYPE_F32) {
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                   "reorder of %s gave %s %s, expected plain F32", name,
                   plain.desc.layout == EE_LAYOUT_PLAIN ? "plain" : "backend",
                   ee_dtype_name (plain.desc.dtype));
      return NULL;
    }
    plain.data = backend_alloc (c, plain.desc.nbytes, error);
    if (!plain.data
        || !ee_backend_op_enqueue (c->be, op, &srcp, 1, &plain, error))
      return NULL;
  }
  host = g_new (float, ee_tensor_desc_numel (&plain.desc));
  g_ptr_array_add (c->host, host);
  if (!ee_backend_download (c->be, host, plain.data, plain.desc.nbytes, error))
    return NULL;
  *desc = plain.desc;
  return host;
}

static gboolean
same_shape (const EeTensorDesc *a, const EeTensorDesc *b)
{
  if (a->ndim != b->ndim)
    return FALSE;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i])
      return FALSE;
  return TRUE;
}

static gboolean
contains (JsonArray *a, const char *s)
{
  for (guint i = 0; a && i < json_array_get_length (a); i++)
    if (g_strcmp0 (json_array_get_string_element (a, i), s) == 0)
      return TRUE;
  return FALSE;
}

/* Runs one case; prints a line per checked value; FALSE on any failure. */
static gboolean
run_case (EeBackend *be, EeSafetensors *st, JsonObject *spec, double *worst)
{
  Case c = { 0 };
  JsonArray *inputs = json_object_get_array_member (spec, "inputs");
  JsonArray *ops = json_object_get_array_member (spec, "ops");
  JsonArray *check = json_object_get_array_member (spec, "check");
  JsonArray *backend = json_object_get_array_member (spec, "backend");
  GPtrArray *got = g_ptr_array_new ();
  GArray *got_desc = g_array_new (FALSE, FALSE, sizeof (EeTensorDesc));
  GError *error = NULL;
  gboolean ok = TRUE;

  c.be = be;
  c.st = st;
  c.name = json_object_get_string_member (spec, "name");
  c.values = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  c.ops = g_ptr_array_new ();
  c.mem = g_ptr_array_new ();
  c.host = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; ok && inputs && i < json_array_get_length (inputs); i++)
    ok = add_input (&c, json_array_get_string_element (inputs, i), &error);
  for (guint i = 0; ok && ops && i < json_array_get_length (ops); i++)
    ok = run_op (&c, json_array_get_object_element (ops, i), &error);
  for (guint i = 0; ok && check && i < json_array_get_length (check); i++) {
    EeTensorDesc desc;
    float *host
        = fetch (&c, json_array_get_string_element (check, i), &desc, &error);

    ok = host != NULL;
    g_ptr_array_add (got, host);
    g_array_append_val (got_desc, desc);
  }
  /* Downloads are enqueued copies: valid only after a sync. */
  ok = ok && ee_backend_sync (be, &error);
  if (!ok) {
    printf ("FAIL %s: %s\n", c.name, error ? error->message : "?");
    g_clear_error (&error);
  }

  for (guint i = 0; ok && i < got->len; i++) {
    const char *name = json_array_get_string_element (check, i);
    const Value *v = g_hash_table_lookup (c.values, name);
    const EeTensorDesc *gd = &g_array_index (got_desc, EeTensorDesc, i);
    const float *g = got->pdata[i];
    EeTensorDesc ed;
    float *e = load (&c, name, &ed, &error);
    double max_diff = 0.0, max_exp = 0.0, rel;
    gboolean want_backend = contains (backend, name);
    gboolean is_backend = v->desc.layout == EE_LAYOUT_BACKEND
                          && (!bf16 || v->desc.dtype == EE_DTYPE_BF16);
    const char *dtype = ee_dtype_name (v->desc.dtype);
    char shape[64];

    if (!e || !same_shape (gd, &ed)) {
      printf ("FAIL %s/%s: %s\n", c.name, name,
              e ? "shape differs from "
                  "PyTorch's"
                : error->message);
      g_clear_error (&error);
      g_free (e);
      ok = FALSE;
      break;
    }
    for (int64_t k = 0; k < ee_tensor_desc_numel (&ed); k++) {
      double diff = fabs ((double)g[k] - (double)e[k]);

      /* NaN compares false: count it as an infinite difference. */
      if (!(diff <= max_diff))
        max_diff = isnan (diff) ? INFINITY : diff;
      max_exp = MAX (max_exp, fabs ((double)e[k]));
    }
    rel = max_diff / MAX (max_exp, 1e-6);
    *worst = MAX (*worst, rel);
    ee_tensor_desc_shape_str (gd, shape, sizeof shape);
    if (rel > tolerance || (want_backend && !is_backend)) {
      printf ("FAIL %-24s %-12s %-14s %-7s %-4s rel err %.2e%s\n", c.name, name,
              shape, v->desc.layout == EE_LAYOUT_BACKEND ? "backend" : "plain",
              dtype, rel,
              rel > tolerance ? " > tolerance"
              : bf16          ? ", expected a BF16 backend layout"
                              : ", expected a backend layout");
      ok = FALSE;
    } else {
      printf ("ok   %-24s %-12s %-14s %-7s %-4s rel err %.2e\n", c.name, name,
              shape, v->desc.layout == EE_LAYOUT_BACKEND ? "backend" : "plain",
              dtype, rel);
    }
    g_free (e);
  }

  for (guint i = 0; i < c.ops->len; i++)
    ee_backend_op_free (be, c.ops->pdata[i]);
  for (guint i = 0; i < c.mem->len; i++)
    ee_backend_dealloc (be, c.mem->pdata[i]);
  g_ptr_array_unref (c.ops);
  g_ptr_array_unref (c.mem);
  g_ptr_array_unref (c.host);
  g_hash_table_unref (c.values);
  g_ptr_array_unref (got);
  g_array_unref (got_desc);
  return ok;
}

/* op_new must refuse bad arguments with an error, not a crash. */
static gboolean
expect_error (EeBackend *be, const char *what, const EeOpDesc *d,
              const EeTensorDesc *const *in, int n_in, EeErrorCode code,
              int *n_checks)
{
  EeTensorDesc out;
  GError *error = NULL;
  EeOp *op = ee_backend_op_new (be, d, in, n_in, &out, &error);
  gboolean ok = !op && g_error_matches (error, EE_ERROR, code);

  (*n_checks)++;
  printf ("%s errors: %-26s %s\n", ok ? "ok  " : "FAIL", what,
          error ? error->message : "(accepted)");
  ee_backend_op_free (be, op);
  g_clear_error (&error);
  return ok;
}

static int
run_error_cases (EeBackend *be)
{
  static const float w[4 * 4 * 5 * 5] = { 0 };
  const int64_t s3[3] = { 2, 4, 8 }, s_kn[3] = { 2, 7, 5 };
  const int64_t s_gamma[2] = { 1, 5 }, s_ok[2] = { 1, 4 };
  EeTensorDesc x = ee_tensor_desc_nchw (1, 4, 8, 12);
  EeTensorDesc small = ee_tensor_desc_nchw (1, 4, 2, 2);
  EeTensorDesc other = ee_tensor_desc_nchw (1, 4, 9, 12);
  EeTensorDesc t3 = ee_tensor_desc_plain (EE_DTYPE_F32, 3, s3);
  EeTensorDesc kn = ee_tensor_desc_plain (EE_DTYPE_F32, 3, s_kn);
  EeTensorDesc gamma = ee_tensor_desc_plain (EE_DTYPE_F32, 2, s_gamma);
  EeTensorDesc beta = ee_tensor_desc_plain (EE_DTYPE_F32, 2, s_ok);
  EeTensorDesc half = ee_tensor_desc_plain (EE_DTYPE_F16, 3, s3);
  EeTensorDesc brain = ee_tensor_desc_plain (EE_DTYPE_BF16, 3, s3);
  const EeTensorDesc *px = &x, *p3 = &t3, *psmall = &small, *phalf = &half;
  const EeTensorDesc *pbrain = &brain;
  const EeTensorDesc *mm[2] = { &t3, &kn }, *film[3] = { &x, &gamma, &beta };
  const EeTensorDesc *pair[2] = { &x, &other };
  EeOpDesc d;
  int failed = 0, n = 0;

  d = ee_op_desc_init (EE_OP_CONV2D);
  d.weight = w;
  d.out_features = 4;
  d.kernel_size[0] = d.kernel_size[1] = 5;
  failed += !expect_error (be, "conv2d on 3 dims", &d, &p3, 1,
                           EE_ERROR_ARGUMENT, &n);
  failed += !expect_error (be, "conv2d input < kernel", &d, &psmall, 1,
                           EE_ERROR_ARGUMENT, &n);
  d.weight = NULL;
  failed += !expect_error (be, "conv2d without weight", &d, &px, 1,
                           EE_ERROR_ARGUMENT, &n);
  d = ee_op_desc_init (EE_OP_PATCHIFY);
  d.patch = 3;
  failed += !expect_error (be, "patch not dividing W", &d, &px, 1,
                           EE_ERROR_ARGUMENT, &n);
  d = ee_op_desc_init (EE_OP_MAXPOOL);
  d.kernel[0] = d.kernel[1] = 2;
  d.pad[0] = d.pad[1] = 2;
  failed += !expect_error (be, "pool pad > kernel/2", &d, &px, 1,
                           EE_ERROR_ARGUMENT, &n);
  d = ee_op_desc_init (EE_OP_MATMUL);
  failed += !expect_error (be, "matmul K mismatch", &d, mm, 2,
                           EE_ERROR_ARGUMENT, &n);
  d = ee_op_desc_init (EE_OP_FILM);
  failed += !expect_error (be, "film gamma of 5 channels", &d, film, 3,
                           EE_ERROR_ARGUMENT, &n);
  d = ee_op_desc_init (EE_OP_ADD);
  failed += !expect_error (be, "add of unequal shapes", &d, pair, 2,
                           EE_ERROR_ARGUMENT, &n);
  failed += !expect_error (be, "add with one input", &d, pair, 1,
                           EE_ERROR_ARGUMENT, &n);
  d = ee_op_desc_init (EE_OP_CONCAT);
  failed += !expect_error (be, "concat of unequal H", &d, pair, 2,
                           EE_ERROR_ARGUMENT, &n);
  d = ee_op_desc_init (EE_OP_UPSAMPLE_NEAREST);
  d.factor = 0;
  failed += !expect_error (be, "upsample factor 0", &d, &px, 1,
                           EE_ERROR_ARGUMENT, &n);
  d = ee_op_desc_init (EE_OP_LINEAR);
  d.weight = w;
  failed += !expect_error (be, "linear out_features 0", &d, &p3, 1,
                           EE_ERROR_ARGUMENT, &n);
  d = ee_op_desc_init (EE_OP_RELU);
  failed += !expect_error (be, "relu on F16", &d, &phalf, 1,
                           EE_ERROR_UNSUPPORTED, &n);
  if (!bf16)
    failed += !expect_error (be, "relu on BF16 in fp32", &d, &pbrain, 1,
                             EE_ERROR_UNSUPPORTED, &n);
  printf ("%d error checks, %d failed\n", n, failed);
  return failed;
}

static gboolean
selected (const char *name, int argc, char **argv)
{
  if (argc <= 2)
    return TRUE;
  for (int i = 2; i < argc; i++)
    if (g_str_equal (argv[i], name))
      return TRUE;
  return FALSE;
}

/* The backend, or NULL with *status the exit status to return. */
static EeBackend *
backend_new (EePrecision precision, gboolean expect_unsupported, int *status)
{
  GError *error = NULL;
  EeBackend *be = ee_backend_cpu_new_full (0, precision, &error);

  if (be && expect_unsupported) {
    fprintf (stderr,
             "test-ops: a %s backend was created, expected "
             "EE_ERROR_UNSUPPORTED\n",
             ee_precision_name (precision));
    ee_backend_free (be);
    *status = 1;
    return NULL;
  }
  if (be)
    return be;
  if (g_error_matches (error, EE_ERROR, EE_ERROR_UNSUPPORTED)) {
    printf ("%s: %s\n", expect_unsupported ? "refused as expected" : "SKIP",
            error->message);
    *status = expect_unsupported ? 0 : EXIT_SKIP;
  } else {
    fprintf (stderr, "test-ops: %s\n", error->message);
    *status = 1;
  }
  g_error_free (error);
  return NULL;
}

int
main (int argc, char **argv)
{
  char *precision_name = NULL;
  gboolean expect_unsupported = FALSE;
  GOptionEntry entries[]
      = { { "precision", 0, 0, G_OPTION_ARG_STRING, &precision_name,
            "fp32 (default) or bf16", "P" },
          { "expect-unsupported", 0, 0, G_OPTION_ARG_NONE, &expect_unsupported,
            "Pass only if the backend refuses the precision", NULL },
          { NULL } };
  GOptionContext *ctx = g_option_context_new ("VECTORS [CASE...]");
  EePrecision precision = EE_PRECISION_FP32;
  GError *error = NULL;
  EeSafetensors *st;
  EeBackend *be;
  JsonParser *parser;
  JsonArray *cases;
  const char *meta;
  int n_run = 0, n_failed = 0, status = 1;
  double worst = 0.0;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || argc < 2
      || (precision_name
          && (!ee_precision_from_string (precision_name, &precision)
              || (precision != EE_PRECISION_FP32
                  && precision != EE_PRECISION_BF16)))) {
    fprintf (stderr,
             "usage: %s [--precision fp32|bf16] [--expect-unsupported] "
             "VECTORS.safetensors [CASE...]%s%s\n",
             argv[0], error ? "\n" : "", error ? error->message : "");
    return 2;
  }
  g_option_context_free (ctx);
  g_free (precision_name);
  bf16 = precision == EE_PRECISION_BF16;
  if (bf16)
    tolerance = 2e-2;

  st = ee_safetensors_open (argv[1], &error);
  if (!st) {
    fprintf (stderr, "test-ops: %s\n", error->message);
    return 1;
  }
  meta = ee_safetensors_metadata (st, "cases");
  parser = json_parser_new ();
  if (!meta || !json_parser_load_from_data (parser, meta, -1, &error)
      || !JSON_NODE_HOLDS_ARRAY (json_parser_get_root (parser))) {
    fprintf (stderr, "test-ops: %s: metadata \"cases\" %s\n", argv[1],
             error ? error->message : "missing or not a list");
    return 1;
  }
  cases = json_node_get_array (json_parser_get_root (parser));
  be = backend_new (precision, expect_unsupported, &status);
  if (!be) {
    g_object_unref (parser);
    ee_safetensors_free (st);
    return status;
  }

  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *spec = json_array_get_object_element (cases, i);

    if (!selected (json_object_get_string_member (spec, "name"), argc, argv))
      continue;
    n_run++;
    if (!run_case (be, st, spec, &worst))
      n_failed++;
  }

  if (argc <= 2)
    n_failed += run_error_cases (be);
  printf ("%s: %d cases, %d failed, worst relative error %.2e (tolerance "
          "%.0e)\n",
          ee_precision_name (precision), n_run, n_failed, worst, tolerance);
  ee_backend_free (be);
  g_object_unref (parser);
  ee_safetensors_free (st);
  return n_failed || !n_run ? 1 : 0;
}
