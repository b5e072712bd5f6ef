/* gst-earlyexit: the CUDA backend's runtime behaviour: selection errors,
 * out-of-memory errors, events, downloads into pageable and page-locked
 * memory, layouts refused across instances, two instances running at once
 * on one device, and image preprocessing against a host reference.
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

static EeBackend *
cuda_new (EePrecision precision)
{
  GError *error = NULL;
  EeBackend *be = ee_backend_new_full ("cuda", 0, precision, &error);

  g_assert_no_error (error);
  g_assert_nonnull (be);
  return be;
}

static void
test_select_errors (void)
{
  GError *error = NULL;

  g_assert_null (ee_backend_new ("cuda:99", 1, &error));
  g_assert_error (error, EE_ERROR, EE_ERROR_BACKEND);
  g_assert_nonnull (strstr (error->message, "no usable CUDA device"));
  g_clear_error (&error);
  g_assert_null (ee_backend_new ("gpu", 1, &error));
  g_assert_error (error, EE_ERROR, EE_ERROR_ARGUMENT);
  g_clear_error (&error);
}

static void
test_out_of_memory (void)
{
  EeBackend *be = cuda_new (EE_PRECISION_FP32);
  GError *error = NULL;
  const size_t huge = (size_t)1 << 50;
  char *size = g_strdup_printf ("%zu bytes", huge);
  void *p;

  g_assert_null (ee_backend_alloc (be, huge, &error));
  g_assert_error (error, EE_ERROR, EE_ERROR_NO_MEMORY);
  g_assert_nonnull (strstr (error->message, size));
  g_clear_error (&error);
  /* The failure leaves the backend usable. */
  p = ee_backend_alloc (be, 1024, &error);
  g_assert_no_error (error);
  g_assert_true (ee_backend_sync (be, &error));
  ee_backend_dealloc (be, p);
  g_free (size);
  ee_backend_free (be);
}

/* Uploads n floats, downloads them into pageable and page-locked memory. */
static void
test_copies_and_events (void)
{
  EeBackend *be = cuda_new (EE_PRECISION_FP32);
  const size_t n = 1 << 20;
  float *src = g_new (float, n), *pageable = g_new0 (float, n);
  float *pinned;
  EeEvent *start, *end;
  GError *error = NULL;
  double ms = -1.0;
  void *dev;

  for (size_t i = 0; i < n; i++)
    src[i] = (float)i;
  pinned = ee_backend_host_alloc (be, n * sizeof (float), &error);
  g_assert_no_error (error);
  dev = ee_backend_alloc (be, n * sizeof (float), &error);
  g_assert_no_error (error);
  start = be->vt->event_new (be, &error);
  end = be->vt->event_new (be, &error);
  g_assert_no_error (error);

  g_assert_true (be->vt->event_record (be, start, &error));
  g_assert_true (ee_backend_upload (be, dev, src, n * sizeof (float), &error));
  g_assert_true (
      ee_backend_download (be, pageable, dev, n * sizeof (float), &error));
  g_assert_true (
      ee_backend_download (be, pinned, dev, n * sizeof (float), &error));
  g_assert_true (be->vt->event_record (be, end, &error));
  g_assert_true (be->vt->event_sync (be, end, &error));
  g_assert_no_error (error);
  g_assert_true (be->vt->event_query (be, end));
  g_assert_true (be->vt->event_elapsed_ms (be, start, end, &ms, &error));
  g_assert_cmpfloat (ms, >=, 0.0);
  /* The event completes only after the staged copy reached pageable. */
  g_assert_cmpmem (pageable, n * sizeof (float), src, n * sizeof (float));
  g_assert_cmpmem (pinned, n * sizeof (float), src, n * sizeof (float));

  be->vt->event_free (be, start);
  be->vt->event_free (be, end);
  ee_backend_dealloc (be, dev);
  ee_backend_host_free (be, pinned);
  g_free (src);
  g_free (pageable);
  ee_backend_free (be);
}

/* A tensor in one instance's NHWC layout means nothing to another. */
static void
test_foreign_layout (void)
{
  EeBackend *a = cuda_new (EE_PRECISION_FP16),
            *b = cuda_new (EE_PRECISION_FP16);
  EeOpDesc conv = ee_op_desc_init (EE_OP_CONV2D);
  EeOpDesc relu = ee_op_desc_init (EE_OP_RELU);
  EeTensorDesc x = ee_tensor_desc_nchw (1, 4, 8, 8), y, z;
  const EeTensorDesc *in = &x;
  float w[8 * 4 * 9] = { 0 };
  GError *error = NULL;
  EeOp *op;

  conv.out_features = 8;
  conv.kernel_size[0] = conv.kernel_size[1] = 3;
  conv.pad[0] = conv.pad[1] = 1;
  conv.weight = w;
  op = ee_backend_op_new (a, &conv, &in, 1, &y, &error);
  g_assert_no_error (error);
  g_assert_cmpint (y.layout, ==, EE_LAYOUT_BACKEND);
  in = &y;
  g_assert_null (ee_backend_op_new (b, &relu, &in, 1, &z, &error));
  g_assert_error (error, EE_ERROR, EE_ERROR_ARGUMENT);
  g_clear_error (&error);
  ee_backend_op_free (a, op);
  ee_backend_free (a);
  ee_backend_free (b);
}

/* ---- two instances on one device ---- */

#define CONC_RUNS 20

typedef struct
{
  float *out; /* 1x16x32x32 */
  GError *error;
} ConcJob;

static gpointer
conc_run (gpointer data)
{
  ConcJob *job = data;
  EeBackend *be
      = ee_backend_new_full ("cuda", 0, EE_PRECISION_FP16, &job->error);
  const int64_t shape[4] = { 1, 8, 32, 32 };
  GRand *rand = g_rand_new_with_seed (7);
  float *x = g_new (float, 8 * 32 * 32), *w = g_new (float, 16 * 8 * 9);
  EeOpDesc d = ee_op_desc_init (EE_OP_CONV2D);
  EeGraph *g;
  int in, y;
  gboolean ok;

  if (!be)
    return NULL;
  for (int i = 0; i < 8 * 32 * 32; i++)
    x[i] = (float)g_rand_double_range (rand, -1, 1);
  for (int i = 0; i < 16 * 8 * 9; i++)
    w[i] = (float)g_rand_double_range (rand, -0.1, 0.1);
  d.out_features = 16;
  d.kernel_size[0] = d.kernel_size[1] = 3;
  d.pad[0] = d.pad[1] = 1;
  d.weight = w;
  d.act = EE_ACT_RELU;
  g = ee_graph_new (be);
  in = ee_graph_input (g, "x", 4, shape);
  y = ee_graph_op (g, "conv", &d, &in, 1, &job->error);
  y = y < 0 ? -1 : ee_graph_mark_output (g, y, &job->error);
  ok = y >= 0 && ee_graph_plan (g, &job->error);
  for (int r = 0; ok && r < CONC_RUNS; r++)
    ok = ee_graph_upload (g, NULL, in, x, &job->error)
         && ee_graph_run (g, NULL, 0, ee_graph_n_ops (g), &job->error)
         && ee_graph_download (g, NULL, y, job->out, &job->error)
         && ee_backend_sync (be, &job->error);
  ee_graph_free (g);
  ee_backend_free (be);
  g_rand_free (rand);
  g_free (x);
  g_free (w);
  return NULL;
}

static void
test_two_instances (void)
{
  const size_t n = 16 * 32 * 32;
  ConcJob alone = { g_new (float, n) },
          jobs[2] = { { g_new (float, n) }, { g_new (float, n) } };
  GThread *t[2];

  conc_run (&alone);
  g_assert_no_error (alone.error);
  for (int i = 0; i < 2; i++)
    t[i] = g_thread_new ("instance", conc_run, &jobs[i]);
  for (int i = 0; i < 2; i++) {
    g_thread_join (t[i]);
    double err = 0.0, scale = 1e-6;

    g_assert_no_error (jobs[i].error);
    /* Each instance times its own convolution algorithms and may pick
     * another than the lone run: equal to fp16 rounding, not to the bit. */
    for (size_t k = 0; k < n; k++) {
      err = MAX (err, fabs (jobs[i].out[k] - alone.out[k]));
      scale = MAX (scale, fabs (alone.out[k]));
    }
    g_assert_cmpfloat (err / scale, <=, 1e-2);
    g_free (jobs[i].out);
  }
  g_free (alone.out);
}

/* ---- image preprocessing ---- */

/* PyTorch's bilinear interpolation (align_corners=False), in double. */
static double
sample (const guint8 *img, int w, int h, int64_t stride, int bpp, int byte,
        int ox, int oy, int ow, int oh)
{
  double sx = MAX ((ox + 0.5) * ((double)w / ow) - 0.5, 0.0);
  double sy = MAX ((oy + 0.5) * ((double)h / oh) - 0.5, 0.0);
  int x0 = (int)sx, y0 = (int)sy;
  int x1 = x0 + (x0 < w - 1), y1 = y0 + (y0 < h - 1);
  double lx = sx - x0, ly = sy - y0;
#define PX(x, y) ((double)img[(y)*stride + (x)*bpp + byte])

  return (1 - ly) * ((1 - lx) * PX (x0, y0) + lx * PX (x1, y0))
         + ly * ((1 - lx) * PX (x0, y1) + lx * PX (x1, y1));
#undef PX
}

static void
check_preprocess (EePrecision precision, EePixelFormat format, int ow, int oh,
                  double tol)
{
  EeBackend *be = cuda_new (precision);
  const int w = 37, h = 23, bpp = format == EE_PIXEL_RGB ? 3 : 4;
  const int64_t stride = w * bpp + 5, shape[4] = { 1, 3, oh, ow };
  EeImagePrep prep = { format,
                       w,
                       h,
                       stride,
                       1.0f / 255.0f,
                       { 0.485f, 0.456f, 0.406f },
                       { 0.229f, 0.224f, 0.225f } };
  GRand *rand = g_rand_new_with_seed (3);
  guint8 *frame = g_new (guint8, stride * h);
  float *got = g_new (float, 3 * ow * oh);
  EeTensor out = { 0 };
  EeOpDesc reorder = ee_op_desc_init (EE_OP_REORDER);
  EeTensor plain = { 0 };
  const EeTensor *in = &out;
  const EeTensorDesc *ind = &out.desc;
  GError *error = NULL;
  double err = 0.0, scale = 1e-6;
  EeOp *op;

  for (int64_t i = 0; i < stride * h; i++)
    frame[i] = (guint8)g_rand_int_range (rand, 0, 256);
  /* In the backend's dtype, made F32 by a reorder for the host. */
  out.desc
      = ee_tensor_desc_plain (precision == EE_PRECISION_FP16   ? EE_DTYPE_F16
                              : precision == EE_PRECISION_BF16 ? EE_DTYPE_BF16
                                                               : EE_DTYPE_F32,
                              4, shape);
  out.data = ee_backend_alloc (be, out.desc.nbytes, &error);
  g_assert_no_error (error);
  op = ee_backend_op_new (be, &reorder, &ind, 1, &plain.desc, &error);
  g_assert_no_error (error);
  plain.data = ee_backend_alloc (be, plain.desc.nbytes, &error);
  g_assert_true (ee_backend_preprocess_image (be, frame, &prep, &out, &error));
  g_assert_true (ee_backend_op_enqueue (be, op, &in, 1, &plain, &error));
  g_assert_true (
      ee_backend_download (be, got, plain.data, plain.desc.nbytes, &error));
  g_assert_true (ee_backend_sync (be, &error));
  g_assert_no_error (error);

  for (int c = 0; c < 3; c++) {
    int byte = format == EE_PIXEL_BGRX ? 2 - c : c;

    for (int y = 0; y < oh; y++)
      for (int x = 0; x < ow; x++) {
        double want
            = (sample (frame, w, h, stride, bpp, byte, x, y, ow, oh) / 255.0
               - prep.mean[c])
              / prep.std[c];

        err = MAX (err, fabs (got[(c * oh + y) * ow + x] - want));
        scale = MAX (scale, fabs (want));
      }
  }
  g_assert_cmpfloat (err / scale, <=, tol);

  ee_backend_op_free (be, op);
  ee_backend_dealloc (be, out.data);
  ee_backend_dealloc (be, plain.data);
  ee_backend_free (be);
  g_rand_free (rand);
  g_free (frame);
  g_free (got);
}

static void
test_preprocess (void)
{
  /* down and up in each direction, each pixel format */
  check_preprocess (EE_PRECISION_FP32, EE_PIXEL_RGB, 20, 16, 1e-5);
  check_preprocess (EE_PRECISION_FP32, EE_PIXEL_RGBX, 50, 11, 1e-5);
  check_preprocess (EE_PRECISION_FP32, EE_PIXEL_BGRX, 19, 31, 1e-5);
  check_preprocess (EE_PRECISION_FP16, EE_PIXEL_BGRX, 20, 16, 2e-2);
  check_preprocess (EE_PRECISION_BF16, EE_PIXEL_RGB, 20, 16, 2e-2);
}

int
main (int argc, char **argv)
{
  int count = 0;
  cudaError_t st = cudaGetDeviceCount (&count);

  if (st != cudaSuccess || count == 0) {
    printf ("SKIP: no usable CUDA device (%s)\n",
            st != cudaSuccess ? cudaGetErrorString (st) : "none found");
    return SKIP;
  }
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/cuda/select-errors", test_select_errors);
  g_test_add_func ("/cuda/out-of-memory", test_out_of_memory);
  g_test_add_func ("/cuda/copies-and-events", test_copies_and_events);
  g_test_add_func ("/cuda/foreign-layout", test_foreign_layout);
  g_test_add_func ("/cuda/two-instances", test_two_instances);
  g_test_add_func ("/cuda/preprocess", test_preprocess);
  return g_test_run ();
}
