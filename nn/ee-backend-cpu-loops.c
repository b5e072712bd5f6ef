/* gst-earlyexit: CPU backend ops oneDNN lacks, as OpenMP loops.
 *
 * The loops read plain tensors through their strides and oneDNN's
 * activation layouts (NHWC, nChw8c, nChw16c) directly, through a CpuView, so
 * a convolution's output needs no reorder before FiLM, patchify, upsampling
 * or a reduction. Reductions accumulate in double: a sum over a whole density
 * map must not depend on the order the threads add.
 *
 * bf16 inputs (a bf16 convolution's output) are read in place and computed
 * on in fp32. FiLM, which sits between two convolutions, writes the input's
 * data type; the others write fp32. */
#include "ee-backend-cpu-private.h"

#include <math.h>

/* Element i of a tensor of floats, or of bf16 values when bf16. */
static inline float
ld (const void *p, int64_t i, gboolean bf16)
{
  return bf16 ? cpu_bf16_to_f32 (((const uint16_t *)p)[i])
              : ((const float *)p)[i];
}

static inline void
st (void *p, int64_t i, gboolean bf16, float x)
{
  if (bf16)
    ((uint16_t *)p)[i] = cpu_f32_to_bf16 (x);
  else
    ((float *)p)[i] = x;
}

static inline int64_t
at (const CpuView *v, int64_t n, int64_t c, int64_t h, int64_t w)
{
  int64_t o = n * v->sn + h * v->sh + w * v->sw;

  /* The division is worth a branch: most tensors are not blocked. */
  if (v->block == 1)
    return o + c * v->sc;
  return o + (c / v->block) * v->sc + c % v->block;
}

static inline float
activate (float x, EeActivation act)
{
  switch (act) {
    case EE_ACT_RELU:
      return x > 0.0f ? x : 0.0f;
    case EE_ACT_GELU:
      return 0.5f * x * (1.0f + erff (x * (float)M_SQRT1_2));
    case EE_ACT_NONE:
      break;
  }
  return x;
}

/* The op's output as plain float. */
static void
out_dense (const EeOp *op, EeTensorDesc *out)
{
  *out = ee_tensor_desc_plain (EE_DTYPE_F32, op->head.out_ndim,
                               op->head.out_shape);
}

/* An op whose loop reads input x (inputs[0]) as cpu_loop_input makes it
 * readable and writes the plain float output: `loop`, or `loop_bf16` if
 * given when x is read as bf16. */
static gboolean
single_loop_new (CpuBackend *be, EeOp *op, const EeTensorDesc *x,
                 CpuLoopFunc loop, CpuLoopFunc loop_bf16, EeTensorDesc *out,
                 GError **error)
{
  if (!cpu_loop_input (be, op, 0, x, error))
    return FALSE;
  out_dense (op, out);
  op->loop = loop_bf16 && op->view[0].bf16 ? loop_bf16 : loop;
  return TRUE;
}

/* ---- FiLM: y = act (gamma[n,c] * x + beta[n,c]) ---- */

/* x and y in one data type, bf16 or float: the compiler specialises each
 * call, whose flag is a constant. gamma and beta are read as their views
 * say. */
static inline void
film_run (const EeOp *op, const void *const *in, void *out, gboolean bf16)
{
  const CpuView *x = &op->view[0], *g = &op->view[1], *b = &op->view[2];
  const CpuView *y = &op->out_view;
  const void *xd = in[0], *gd = in[1], *bd = in[2];
  const int64_t blk = x->block, nblk = x->cpad / blk;
  const EeActivation act = op->head.desc.act;

  /* gamma and beta are (N,C), viewed as (N,1,1,C): channel c at n*sn + c*sw */
  if (blk == 1 && x->sc == 1 && y->sc == 1) {
    /* Channels last (NHWC): channels innermost. */
#pragma omp parallel for collapse(3) schedule(static)
    for (int64_t n = 0; n < x->n; n++)
      for (int64_t h = 0; h < x->h; h++)
        for (int64_t w = 0; w < x->w; w++) {
          int64_t xo = n * x->sn + h * x->sh + w * x->sw;
          int64_t yo = n * y->sn + h * y->sh + w * y->sw;

          for (int64_t c = 0; c < x->c; c++)
            st (out, yo + c, bf16,
                activate (ld (gd, n * g->sn + c * g->sw, g->bf16)
                                  * ld (xd, xo + c, bf16)
                              + ld (bd, n * b->sn + c * b->sw, b->bf16),
                          act));
        }
    return;
  }
  /* Channel-major (NCHW, nChw8c, nChw16c) in physical order: block, row,
   * column, lane. Lanes past the channel count are padding: zero. */
#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t n = 0; n < x->n; n++)
    for (int64_t cb = 0; cb < nblk; cb++)
      for (int64_t h = 0; h < x->h; h++) {
        int64_t xr = n * x->sn + cb * x->sc + h * x->sh;
        int64_t yr = n * y->sn + cb * y->sc + h * y->sh;

        for (int64_t w = 0; w < x->w; w++)
          for (int64_t k = 0; k < blk; k++) {
            int64_t c = cb * blk + k;

            st (out, yr + w * y->sw + k, bf16,
                c < x->c
                    ? activate (ld (gd, n * g->sn + c * g->sw, g->bf16)
                                        * ld (xd, xr + w * x->sw + k, bf16)
                                    + ld (bd, n * b->sn + c * b->sw, b->bf16),
                                act)
                    : 0.0f);
          }
      }
}

static void
film_loop (const EeOp *op, const void *const *in, void *out)
{
  film_run (op, in, out, FALSE);
}

static void
film_loop_bf16 (const EeOp *op, const void *const *in, void *out)
{
  film_run (op, in, out, TRUE);
}

EE_OP_BUILDER (CpuBackend, cpu_film_new)
{
  const EeTensorDesc *x = in[0];

  if (!cpu_loop_input (be, op, 0, x, error)
      || !cpu_loop_input (be, op, 1, in[1], error)
      || !cpu_loop_input (be, op, 2, in[2], error))
    return FALSE;
  if (x->layout == EE_LAYOUT_BACKEND && !op->in[0].reorder.prim) {
    /* A backend layout read in place is kept, data type included: the
     * output takes it. */
    op->out_view = op->view[0];
    cpu_out_from_md (op, x->layout_desc, out);
  } else {
    cpu_view_dense (&op->out_view, x->shape[0], x->shape[1], x->shape[2],
                    x->shape[3]);
    out_dense (op, out);
  }
  op->loop = op->out_view.bf16 ? film_loop_bf16 : film_loop;
  return TRUE;
}

/* ---- patchify: (N,C,H,W) -> (N, (H/P)(W/P), P*P*C), vector (py,px,c) ---- */

/* The input is bf16 or float, a constant in each call; tokens are float. */
static inline void
patchify_run (const EeOp *op, const void *xd, float *out, gboolean bf16)
{
  const CpuView *x = &op->view[0];
  const int64_t p = op->head.desc.patch, gw = x->w / p;
  const int64_t tokens = (x->h / p) * gw, len = p * p * x->c;

#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < x->n; n++)
    for (int64_t t = 0; t < tokens; t++) {
      float *o = out + (n * tokens + t) * len;
      int64_t y0 = (t / gw) * p, x0 = (t % gw) * p;

      for (int64_t py = 0; py < p; py++)
        for (int64_t px = 0; px < p; px++)
          for (int64_t c = 0; c < x->c; c++)
            *o++ = ld (xd, at (x, n, c, y0 + py, x0 + px), bf16);
    }
}

static void
patchify_loop (const EeOp *op, const void *const *in, void *out)
{
  patchify_run (op, in[0], out, FALSE);
}

static void
patchify_loop_bf16 (const EeOp *op, const void *const *in, void *out)
{
  patchify_run (op, in[0], out, TRUE);
}

EE_OP_BUILDER (CpuBackend, cpu_patchify_new)
{
  return single_loop_new (be, op, in[0], patchify_loop, patchify_loop_bf16, out,
                          error);
}

/* ---- nearest upsampling by an integer factor ---- */

static void
upsample_loop (const EeOp *op, const void *const *in, void *out_)
{
  const CpuView *x = &op->view[0];
  const void *xd = in[0];
  float *out = out_;
  const int64_t f = op->head.desc.factor, oh = x->h * f, ow = x->w * f;

#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t n = 0; n < x->n; n++)
    for (int64_t c = 0; c < x->c; c++)
      for (int64_t h = 0; h < oh; h++) {
        float *o = out + ((n * x->c + c) * oh + h) * ow;

        for (int64_t w = 0; w < ow; w++)
          o[w] = ld (xd, at (x, n, c, h / f, w / f), x->bf16);
      }
}

EE_OP_BUILDER (CpuBackend, cpu_upsample_new)
{
  return single_loop_new (be, op, in[0], upsample_loop, NULL, out, error);
}

/* ---- sum of each batch item, times alpha ---- */

static void
sum_loop (const EeOp *op, const void *const *in, void *out_)
{
  const CpuView *x = &op->view[0];
  const void *xd = in[0];
  float *out = out_;

  for (int64_t n = 0; n < x->n; n++) {
    double acc = 0.0;

#pragma omp parallel for collapse(2) reduction(+ : acc) schedule(static)
    for (int64_t c = 0; c < x->c; c++)
      for (int64_t h = 0; h < x->h; h++) {
        double row = 0.0;

        for (int64_t w = 0; w < x->w; w++)
          row += ld (xd, at (x, n, c, h, w), x->bf16);
        acc += row;
      }
    out[n] = (float)(acc * op->head.desc.alpha);
  }
}

EE_OP_BUILDER (CpuBackend, cpu_sum_new)
{
  return single_loop_new (be, op, in[0], sum_loop, NULL, out, error);
}

/* ---- global average pooling ---- */

static void
global_avgpool_loop (const EeOp *op, const void *const *in, void *out_)
{
  const CpuView *x = &op->view[0];
  const void *xd = in[0];
  float *out = out_;
  const double scale = 1.0 / (double)(x->h * x->w);

#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < x->n; n++)
    for (int64_t c = 0; c < x->c; c++) {
      double acc = 0.0;

      for (int64_t h = 0; h < x->h; h++)
        for (int64_t w = 0; w < x->w; w++)
          acc += ld (xd, at (x, n, c, h, w), x->bf16);
      out[n * x->c + c] = (float)(acc * scale);
    }
}

EE_OP_BUILDER (CpuBackend, cpu_global_avgpool_new)
{
  return single_loop_new (be, op, in[0], global_avgpool_loop, NULL, out, error);
}

/* ---- average pooling with PyTorch's divisor at ceil-mode edges ---- */

static void
avgpool_loop (const EeOp *op, const void *const *in, void *out_)
{
  const CpuView *x = &op->view[0];
  const CpuView *y = &op->out_view;
  const void *xd = in[0];
  float *out = out_;
  const int *k = op->head.desc.kernel, *s = op->head.desc.stride,
            *p = op->head.desc.pad;
  const gboolean include_pad = op->head.desc.count_include_pad;

#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t n = 0; n < x->n; n++)
    for (int64_t c = 0; c < x->c; c++)
      for (int64_t oh = 0; oh < y->h; oh++)
        for (int64_t ow = 0; ow < y->w; ow++) {
          /* Window clipped to input + padding for the divisor, then to
           * the input for the sum. */
          int64_t h0 = oh * s[0] - p[0], w0 = ow * s[1] - p[1];
          int64_t h1 = MIN (h0 + k[0], x->h + p[0]);
          int64_t w1 = MIN (w0 + k[1], x->w + p[1]);
          int64_t count = (h1 - h0) * (w1 - w0);
          double acc = 0.0;

          h0 = MAX (h0, 0);
          w0 = MAX (w0, 0);
          h1 = MIN (h1, x->h);
          w1 = MIN (w1, x->w);
          if (!include_pad)
            count = (h1 - h0) * (w1 - w0);
          for (int64_t h = h0; h < h1; h++)
            for (int64_t w = w0; w < w1; w++)
              acc += ld (xd, at (x, n, c, h, w), x->bf16);
          out[at (y, n, c, oh, ow)] = (float)(acc / (double)count);
        }
}

gboolean
cpu_avgpool_loop_new (CpuBackend *be, EeOp *op, const EeTensorDesc *const *in,
                      EeTensorDesc *out, GError **error)
{
  const int64_t *o = op->head.out_shape;

  cpu_view_dense (&op->out_view, o[0], o[1], o[2], o[3]);
  return single_loop_new (be, op, in[0], avgpool_loop, NULL, out, error);
}
