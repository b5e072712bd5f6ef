/* gst-earlyexit: the CPU backend on oneDNN.
 *
 * Memory is 64-byte aligned host memory; copies are memcpy. Ops run eagerly
 * on the calling thread (oneDNN's OpenMP runtime), so an op_enqueue returns
 * with its result written and events only record the time. Several threads
 * may run ops at once (EE_BACKEND_CAP_CONCURRENT): each has its own oneDNN
 * stream and scratchpad (CpuThread) and its own core count, and an op's lock
 * lets one thread at a time through it, so that two frames pass through the
 * same layers one after the other, like a pipeline.
 *
 * Every op is prepared in op_new: primitives created, weights reordered into
 * the layout the primitive asks for, and any buffer an input needs for a
 * layout change allocated. op_enqueue only binds data handles and executes.
 * Convolutions let oneDNN choose their activation layout (oneDNN 2.6 picks
 * NHWC for its AVX-512 kernels, nChw8c for AVX2), and ops that understand it
 * pass it on, so consecutive layers never convert back to NCHW; EE_OP_REORDER
 * makes such a tensor plain.
 *
 * A bf16 instance (ee_backend_cpu_new_full) runs the convolutions in bf16 and
 * passes their bf16 outputs on the same way; EE_OP_REORDER then also converts
 * to F32. An int8 instance does the same with u8 tensors (each carrying its
 * scale in its CpuLayout) between int8 convolutions and poolings, and its
 * EE_OP_REORDER scales them back. Which op computes in which type:
 * ee-backend-cpu-dnnl.c. */
#include "ee-backend-cpu-private.h"

#include <oneapi/dnnl/dnnl_debug.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

struct _EeEvent
{
  gint64 time_us; /* 0: never recorded */
};

gboolean
cpu_check (dnnl_status_t st, const EeOp *op, const char *call, GError **error)
{
  if (st == dnnl_success)
    return TRUE;
  g_set_error (
      error, EE_ERROR, EE_ERROR_BACKEND, "cpu backend: %s: %s failed: %s",
      ee_op_kind_name (op->head.desc.kind), call, dnnl_status2str (st));
  return FALSE;
}

static void *
aligned_new (size_t nbytes, GError **error)
{
  void *p = NULL;

  /* posix_memalign may return NULL for 0 bytes; a zero-sized tensor still
   * needs a distinct pointer. */
  if (posix_memalign (&p, CPU_ALIGN, nbytes ? nbytes : CPU_ALIGN) != 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_NO_MEMORY,
                 "cpu backend: cannot allocate %zu bytes", nbytes);
    return NULL;
  }
  return p;
}

void *
cpu_buffer_new (EeOp *op, size_t nbytes, GError **error)
{
  void *p = aligned_new (nbytes, error);

  if (p) {
    memset (p, 0, nbytes);
    g_ptr_array_add (op->bufs, p);
  }
  return p;
}

dnnl_memory_t
cpu_memory_new (CpuBackend *be, EeOp *op, const dnnl_memory_desc_t *md,
                void *data, GError **error)
{
  dnnl_memory_t m = NULL;

  /* NULL is DNNL_MEMORY_NONE: the handle is bound at each run. */
  if (!CPU_CHECK (op, error, dnnl_memory_create, &m, md, be->engine, data))
    return NULL;
  g_ptr_array_add (op->mems, m);
  return m;
}

gboolean
cpu_md_of (const EeOp *op, const EeTensorDesc *t, dnnl_memory_desc_t *md,
           GError **error)
{
  dnnl_dims_t dims, strides;

  if (t->layout == EE_LAYOUT_BACKEND) {
    const dnnl_memory_desc_t *b = t->layout_desc;
    gboolean same = b->ndims == t->ndim && b->data_type == cpu_dt (t->dtype);

    for (int i = 0; same && i < t->ndim; i++)
      same = b->dims[i] == t->shape[i];
    if (!same) {
      char buf[64];
      g_set_error (
          error, EE_ERROR, EE_ERROR_ARGUMENT,
          "cpu backend: %s: an input of shape %s in a backend layout that "
          "describes another shape (not made by this backend instance?)",
          ee_op_kind_name (op->head.desc.kind),
          ee_tensor_desc_shape_str (t, buf, sizeof buf));
      return FALSE;
    }
    *md = *b;
    return TRUE;
  }
  for (int i = 0; i < t->ndim; i++) {
    dims[i] = t->shape[i];
    strides[i] = t->stride[i];
  }
  return CPU_CHECK (op, error, dnnl_memory_desc_init_by_strides, md, t->ndim,
                    dims, cpu_dt (t->dtype), strides);
}

static void
md_init (int ndim, const int64_t *shape, dnnl_data_type_t dt,
         dnnl_memory_desc_t *md, dnnl_format_kind_t kind)
{
  int64_t s = 1;

  /* Filled by hand rather than through dnnl_memory_desc_init_by_tag: it
   * cannot fail, so callers need no error path for a fixed layout. */
  memset (md, 0, sizeof *md);
  md->ndims = ndim;
  md->data_type = dt;
  md->format_kind = kind;
  for (int i = ndim - 1; i >= 0; i--) {
    md->dims[i] = shape[i];
    md->padded_dims[i] = shape[i];
    if (kind == dnnl_blocked)
      md->format_desc.blocking.strides[i] = s;
    s *= shape[i];
  }
}

void
cpu_md_dense (int ndim, const int64_t *shape, dnnl_data_type_t dt,
              dnnl_memory_desc_t *md)
{
  md_init (ndim, shape, dt, md, dnnl_blocked);
}

void
cpu_md_any (int ndim, const int64_t *shape, dnnl_data_type_t dt,
            dnnl_memory_desc_t *md)
{
  md_init (ndim, shape, dt, md, dnnl_format_kind_any);
}

gboolean
cpu_md_is_dense (const dnnl_memory_desc_t *md)
{
  int64_t s = 1;

  if (md->format_kind != dnnl_blocked || md->offset0 != 0
      || md->format_desc.blocking.inner_nblks != 0)
    return FALSE;
  for (int i = md->ndims - 1; i >= 0; i--) {
    if (md->padded_dims[i] != md->dims[i] || md->padded_offsets[i] != 0)
      return FALSE;
    if (md->dims[i] != 1 && md->format_desc.blocking.strides[i] != s)
      return FALSE;
    s *= md->dims[i];
  }
  return TRUE;
}

void
cpu_out_from_md_scaled (EeOp *op, const dnnl_memory_desc_t *md, float scale,
                        EeTensorDesc *out)
{
  dnnl_data_type_t dt = md->data_type;

  op->out_layout.md = *md;
  op->out_layout.scale = cpu_dt_is_int8 (dt) ? scale : 1.0f;
  /* A bf16 or int8 tensor is never plain, even when dense: the graph makes
   * plain F32 of what is not plain (outputs it downloads, bases of views),
   * and plain is what the host reads. */
  if (dt == dnnl_f32 && cpu_md_is_dense (md)) {
    *out = ee_tensor_desc_plain (EE_DTYPE_F32, md->ndims, md->dims);
    return;
  }
  memset (out, 0, sizeof *out);
  out->dtype = dt == dnnl_bf16 ? EE_DTYPE_BF16
               : dt == dnnl_u8 ? EE_DTYPE_U8
               : dt == dnnl_s8 ? EE_DTYPE_S8
                               : EE_DTYPE_F32;
  out->ndim = md->ndims;
  for (int i = 0; i < md->ndims; i++)
    out->shape[i] = md->dims[i];
  out->layout = EE_LAYOUT_BACKEND;
  out->layout_desc = &op->out_layout;
  out->nbytes = dnnl_memory_desc_get_size (md);
}

void
cpu_out_from_md (EeOp *op, const dnnl_memory_desc_t *md, EeTensorDesc *out)
{
  cpu_out_from_md_scaled (op, md, 1.0f, out);
}

dnnl_primitive_attr_t
cpu_attr_new (const EeOp *op, EeActivation act, float alpha, GError **error)
{
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t po = NULL;
  gboolean ok;

  if (!CPU_CHECK (op, error, dnnl_primitive_attr_create, &attr))
    return NULL;
  ok = CPU_CHECK (op, error, dnnl_primitive_attr_set_scratchpad_mode, attr,
                  dnnl_scratchpad_mode_user);
  if (ok && act != EE_ACT_NONE) {
    ok = CPU_CHECK (op, error, dnnl_post_ops_create, &po)
         && CPU_CHECK (op, error, dnnl_post_ops_append_eltwise, po, 1.0f,
                       act == EE_ACT_RELU ? dnnl_eltwise_relu
                                          : dnnl_eltwise_gelu_erf,
                       0.0f, 0.0f)
         && CPU_CHECK (op, error, dnnl_primitive_attr_set_post_ops, attr, po);
    if (po)
      dnnl_post_ops_destroy (po);
  }
  if (ok && alpha != 1.0f)
    ok = CPU_CHECK (op, error, dnnl_primitive_attr_set_output_scales, attr, 1,
                    0, &alpha);
  if (!ok) {
    dnnl_primitive_attr_destroy (attr);
    return NULL;
  }
  return attr;
}

/* The calling thread's share of the instance (CpuThread), made on its first
 * call; NULL with an error when oneDNN cannot make its stream. */
static CpuThread *
cpu_thread (CpuBackend *be, const EeOp *op, GError **error)
{
  GThread *self = g_thread_self ();
  CpuThread *t = NULL;

  g_mutex_lock (&be->lock);
  for (guint i = 0; i < be->threads->len && !t; i++)
    if (((CpuThread *)g_ptr_array_index (be->threads, i))->thread == self)
      t = g_ptr_array_index (be->threads, i);
  if (!t) {
    dnnl_stream_t stream = NULL;
    dnnl_status_t st
        = dnnl_stream_create (&stream, be->engine, dnnl_stream_default_flags);

    if (st == dnnl_success) {
      t = g_new0 (CpuThread, 1);
      t->thread = self;
      t->stream = stream;
      g_ptr_array_add (be->threads, t);
    } else if (op) {
      cpu_check (st, op, "dnnl_stream_create", error);
    } else {
      g_set_error (error, EE_ERROR, EE_ERROR_BACKEND,
                   "cpu backend: dnnl_stream_create failed: %s",
                   dnnl_status2str (st));
    }
  }
  g_mutex_unlock (&be->lock);
  return t;
}

static void
cpu_thread_free (gpointer data)
{
  CpuThread *t = data;

  if (t->stream)
    dnnl_stream_destroy (t->stream);
  free (t->scratchpad);
  g_free (t);
}

/* Grows the thread's scratchpad to `size` bytes. */
static gboolean
scratchpad_reserve (CpuThread *t, size_t size, GError **error)
{
  void *p;

  if (size <= t->scratchpad_size)
    return TRUE;
  p = aligned_new (size, error);
  if (!p)
    return FALSE;
  free (t->scratchpad);
  t->scratchpad = p;
  t->scratchpad_size = size;
  return TRUE;
}

/* Cores the calling thread's calls use (ee_backend_set_thread_cores): 0 is
 * the instance's own count. */
static GPrivate thread_cores;

static void
cpu_set_thread_cores (EeBackend *base, int cores)
{
  g_private_set (&thread_cores, GINT_TO_POINTER (MAX (cores, 0)));
}

static int
cores_here (CpuBackend *be)
{
  int cores = GPOINTER_TO_INT (g_private_get (&thread_cores));

  return cores > 0 ? MIN (cores, be->n_threads) : be->n_threads;
}

void
cpu_prim_arg (CpuPrim *p, int arg, dnnl_memory_t mem)
{
  g_return_if_fail (p->n_args < p->max_args);
  p->args[p->n_args].arg = arg;
  p->args[p->n_args].memory = mem;
  p->n_args++;
}

gboolean
cpu_prim_create (CpuBackend *be, EeOp *op, CpuPrim *p,
                 const_dnnl_primitive_desc_t pd, int max_args, GError **error)
{
  const dnnl_memory_desc_t *sp;
  size_t size;

  if (!CPU_CHECK (op, error, dnnl_primitive_create, &p->prim, pd))
    return FALSE;
  p->max_args = max_args + 1;
  p->args = g_new0 (dnnl_exec_arg_t, p->max_args);
  sp = dnnl_primitive_desc_query_md (pd, dnnl_query_scratchpad_md, 0);
  size = sp ? dnnl_memory_desc_get_size (sp) : 0;
  if (size == 0)
    return TRUE;
  p->scratchpad_size = size;
  p->scratchpad = cpu_memory_new (be, op, sp, NULL, error);
  if (!p->scratchpad)
    return FALSE;
  cpu_prim_arg (p, DNNL_ARG_SCRATCHPAD, p->scratchpad);
  return TRUE;
}

/* Runs p on the calling thread's stream, with its scratchpad. */
static gboolean
prim_run (CpuThread *t, EeOp *op, CpuPrim *p, GError **error)
{
  if (p->scratchpad
      && (!scratchpad_reserve (t, p->scratchpad_size, error)
          || !CPU_CHECK (op, error, dnnl_memory_set_data_handle_v2,
                         p->scratchpad, t->scratchpad, t->stream)))
    return FALSE;
  return CPU_CHECK (op, error, dnnl_primitive_execute, p->prim, t->stream,
                    p->n_args, p->args);
}

static void
prim_clear (CpuPrim *p)
{
  if (p->prim)
    dnnl_primitive_destroy (p->prim);
  g_free (p->args);
  memset (p, 0, sizeof *p);
}

/* A reorder primitive from `from` to `to`, with a user scratchpad, that
 * multiplies by `scale`. */
static gboolean
reorder_create (CpuBackend *be, EeOp *op, CpuPrim *p,
                const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                float scale, GError **error)
{
  dnnl_primitive_attr_t attr = cpu_attr_new (op, EE_ACT_NONE, scale, error);
  dnnl_primitive_desc_t pd = NULL;
  gboolean ok;

  if (!attr)
    return FALSE;
  ok = CPU_CHECK (op, error, dnnl_reorder_primitive_desc_create, &pd, from,
                  be->engine, to, be->engine, attr)
       && cpu_prim_create (be, op, p, pd, 2, error);
  if (pd)
    dnnl_primitive_desc_destroy (pd);
  dnnl_primitive_attr_destroy (attr);
  return ok;
}

gboolean
cpu_input_setup (CpuBackend *be, EeOp *op, int i,
                 const dnnl_memory_desc_t *have, const dnnl_memory_desc_t *want,
                 GError **error)
{
  CpuInput *in = &op->in[i];
  float from_scale = cpu_dt_is_int8 (have->data_type) ? in->have_scale : 1.0f;
  float to_scale = cpu_dt_is_int8 (want->data_type) ? in->want_scale : 1.0f;
  dnnl_memory_t to;

  if (dnnl_memory_desc_equal (have, want) && from_scale == to_scale)
    return TRUE;
  in->scratch = cpu_buffer_new (op, dnnl_memory_desc_get_size (want), error);
  if (!in->scratch)
    return FALSE;
  in->from = cpu_memory_new (be, op, have, NULL, error);
  to = cpu_memory_new (be, op, want, in->scratch, error);
  if (!in->from || !to
      || !reorder_create (be, op, &in->reorder, have, want,
                          to_scale / from_scale, error))
    return FALSE;
  cpu_prim_arg (&in->reorder, DNNL_ARG_FROM, in->from);
  cpu_prim_arg (&in->reorder, DNNL_ARG_TO, to);
  return TRUE;
}

gboolean
cpu_input_dense (CpuBackend *be, EeOp *op, int i, const EeTensorDesc *t,
                 dnnl_data_type_t dt, GError **error)
{
  dnnl_memory_desc_t have, want;

  if (!cpu_md_of (op, t, &have, error))
    return FALSE;
  if (have.data_type == dt && cpu_md_is_dense (&have))
    return TRUE;
  cpu_md_dense (t->ndim, t->shape, dt, &want);
  return cpu_input_setup (be, op, i, &have, &want, error);
}

/* Convolution weights, in groups of n taps (one kernel each), rounded to
 * bf16 values that keep each kernel's sum: every tap is rounded to nearest,
 * then, one at a time while it helps, the tap whose other bf16 neighbour
 * brings the kernel's sum closest to the fp32 sum moves there. A kernel's
 * sum is its response to a flat input. Rounded to nearest tap by tap, the
 * sums drift by some 2^-9 each and the drift adds up layer after layer; on
 * the random 1024x576 AudioCSRNet the final count then moves by 0.7% to
 * 2.8%, with the sums kept by 0.01% to 0.95% (12 inputs, docs/cpu-backend.md).
 * Every weight stays within one bf16 unit of its fp32 value. */
static float *
round_keeping_sums (const float *w, int64_t groups, int64_t n)
{
  float *out = g_new (float, MAX (groups * n, 1));
  float *alt = g_new (float, MAX (n, 1));
  gboolean *movable = g_new (gboolean, MAX (n, 1));

  for (int64_t g = 0; g < groups; g++) {
    const float *wg = w + g * n;
    float *q = out + g * n;
    double r = 0.0; /* fp32 sum - bf16 sum */

    for (int64_t k = 0; k < n; k++) {
      uint32_t u;
      float lo, hi;

      /* The bf16 neighbours of wg[k]: truncated, and one unit further
       * from zero. */
      memcpy (&u, &wg[k], sizeof u);
      u &= 0xffff0000u;
      memcpy (&lo, &u, sizeof lo);
      u += 0x10000u;
      memcpy (&hi, &u, sizeof hi);
      q[k] = cpu_bf16_to_f32 (cpu_f32_to_bf16 (wg[k]));
      movable[k] = isfinite (wg[k]) && isfinite (hi) && lo != wg[k];
      alt[k] = q[k] == lo ? hi : lo;
      if (isfinite (wg[k]))
        r += (double)wg[k] - q[k];
    }
    for (;;) {
      int64_t best = -1;
      double best_r = fabs (r);

      for (int64_t k = 0; k < n; k++) {
        double moved = fabs (r - ((double)alt[k] - q[k]));

        if (movable[k] && moved < best_r) {
          best_r = moved;
          best = k;
        }
      }
      if (best < 0)
        break;
      r -= (double)alt[best] - q[best];
      q[best] = alt[best];
      movable[best] = FALSE;
    }
  }
  g_free (alt);
  g_free (movable);
  return out;
}

/* Runs reorder r from src to dst once, now, and waits for it. */
static gboolean
run_reorder_once (CpuBackend *be, EeOp *op, CpuPrim *r, dnnl_memory_t src,
                  dnnl_memory_t dst, GError **error)
{
  CpuThread *t = cpu_thread (be, op, error);

  cpu_prim_arg (r, DNNL_ARG_FROM, src);
  cpu_prim_arg (r, DNNL_ARG_TO, dst);
  return t && prim_run (t, op, r, error)
         && CPU_CHECK (op, error, dnnl_stream_wait, t->stream);
}

dnnl_memory_t
cpu_param_new (CpuBackend *be, EeOp *op, const dnnl_memory_desc_t *user,
               const dnnl_memory_desc_t *want, const float *host,
               GError **error)
{
  CpuPrim r = { 0 };
  dnnl_memory_t src = NULL, dst;
  float *rounded = NULL;
  int64_t taps = 1;
  void *buf;
  gboolean ok;

  buf = cpu_buffer_new (op, dnnl_memory_desc_get_size (want), error);
  if (!buf)
    return NULL;
  dst = cpu_memory_new (be, op, want, buf, error);
  if (!dst)
    return NULL;
  if (dnnl_memory_desc_equal (user, want)) {
    memcpy (buf, host, dnnl_memory_desc_get_size (user));
    return dst;
  }
  if (want->data_type == dnnl_bf16) {
    /* Kernels are the trailing dims of (O,C,KH,KW); the reorder to bf16 is
     * then exact. */
    for (int i = 2; i < user->ndims; i++)
      taps *= user->dims[i];
    rounded = round_keeping_sums (
        host, dnnl_memory_desc_get_size (user) / sizeof (float) / taps, taps);
    host = rounded;
  }
  /* oneDNN only reads the source of a reorder, whatever its signature says. */
  ok = CPU_CHECK (op, error, dnnl_memory_create, &src, user, be->engine,
                  (void *)host)
       && reorder_create (be, op, &r, user, want, 1.0f, error)
       && run_reorder_once (be, op, &r, src, dst, error);
  prim_clear (&r);
  if (src)
    dnnl_memory_destroy (src);
  g_free (rounded);
  return ok ? dst : NULL;
}

dnnl_memory_t
cpu_param_s8_new (CpuBackend *be, EeOp *op, const dnnl_memory_desc_t *user,
                  const dnnl_memory_desc_t *want, const float *host, int64_t o,
                  const float *scales, GError **error)
{
  CpuPrim r = { 0 };
  dnnl_memory_t src = NULL, dst;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_primitive_desc_t pd = NULL;
  void *buf;
  gboolean ok;

  /* The reorder quantises (round to nearest even, saturated) and, for an
   * s8 source, adds the compensation oneDNN's kernels want after the
   * weights. */
  buf = cpu_buffer_new (op, dnnl_memory_desc_get_size (want), error);
  dst = buf ? cpu_memory_new (be, op, want, buf, error) : NULL;
  if (!dst)
    return NULL;
  ok = CPU_CHECK (op, error, dnnl_memory_create, &src, user, be->engine,
                  (void *)host)
       && CPU_CHECK (op, error, dnnl_primitive_attr_create, &attr)
       && CPU_CHECK (op, error, dnnl_primitive_attr_set_scratchpad_mode, attr,
                     dnnl_scratchpad_mode_user)
       && CPU_CHECK (op, error, dnnl_primitive_attr_set_output_scales, attr, o,
                     1 << 0, scales)
       && CPU_CHECK (op, error, dnnl_reorder_primitive_desc_create, &pd, user,
                     be->engine, want, be->engine, attr)
       && cpu_prim_create (be, op, &r, pd, 2, error)
       && run_reorder_once (be, op, &r, src, dst, error);
  prim_clear (&r);
  if (pd)
    dnnl_primitive_desc_destroy (pd);
  if (attr)
    dnnl_primitive_attr_destroy (attr);
  if (src)
    dnnl_memory_destroy (src);
  return ok ? dst : NULL;
}

gboolean
cpu_act_setup (CpuBackend *be, EeOp *op, EeActivation act,
               const dnnl_memory_desc_t *md, GError **error)
{
  dnnl_eltwise_desc_t ed;
  dnnl_primitive_attr_t attr;
  dnnl_primitive_desc_t pd = NULL;
  gboolean ok;

  if (act == EE_ACT_NONE)
    return TRUE;
  attr = cpu_attr_new (op, EE_ACT_NONE, 1.0f, error);
  if (!attr)
    return FALSE;
  ok = CPU_CHECK (op, error, dnnl_eltwise_forward_desc_init, &ed,
                  dnnl_forward_inference,
                  act == EE_ACT_RELU ? dnnl_eltwise_relu
                                     : dnnl_eltwise_gelu_erf,
                  md, 0.0f, 0.0f)
       && CPU_CHECK (op, error, dnnl_primitive_desc_create, &pd, &ed, attr,
                     be->engine, NULL)
       && cpu_prim_create (be, op, &op->act, pd, 2, error);
  if (ok) {
    cpu_prim_arg (&op->act, DNNL_ARG_SRC, op->dst);
    cpu_prim_arg (&op->act, DNNL_ARG_DST, op->dst);
  }
  if (pd)
    dnnl_primitive_desc_destroy (pd);
  dnnl_primitive_attr_destroy (attr);
  return ok;
}

gboolean
cpu_view_of (const EeTensorDesc *t, CpuView *v)
{
  int64_t shape[4] = { 1, 1, 1, 1 }, stride[4] = { 0, 0, 0, 0 };
  int64_t block = 1, cpad;

  /* Loops read floats and bf16; int8 comes to them through a reorder. */
  if (t->dtype != EE_DTYPE_F32 && t->dtype != EE_DTYPE_BF16)
    return FALSE;
  if (t->layout == EE_LAYOUT_BACKEND) {
    const dnnl_memory_desc_t *md = t->layout_desc;
    const dnnl_blocking_desc_t *b = &md->format_desc.blocking;

    /* Only plain strides plus at most one block of channels, the layouts
     * oneDNN picks for activations. */
    if (md->ndims != 4 || md->format_kind != dnnl_blocked || md->offset0 != 0
        || b->inner_nblks > 1 || (b->inner_nblks == 1 && b->inner_idxs[0] != 1))
      return FALSE;
    for (int i = 0; i < 4; i++) {
      if (md->padded_offsets[i] != 0
          || (i != 1 && md->padded_dims[i] != md->dims[i]))
        return FALSE;
      shape[i] = md->dims[i];
      stride[i] = b->strides[i];
    }
    if (b->inner_nblks == 1)
      block = b->inner_blks[0];
    cpad = md->padded_dims[1];
  } else {
    /* (N) -> (N,1,1,1), (N,A) -> (N,1,1,A), (N,A,B) -> (N,1,A,B) */
    int off = 4 - t->ndim;

    shape[0] = t->shape[0];
    stride[0] = t->stride[0];
    for (int i = 1; i < t->ndim; i++) {
      shape[i + off] = t->shape[i];
      stride[i + off] = t->stride[i];
    }
    cpad = shape[1];
  }
  v->n = shape[0];
  v->c = shape[1];
  v->h = shape[2];
  v->w = shape[3];
  v->sn = stride[0];
  v->sc = stride[1];
  v->sh = stride[2];
  v->sw = stride[3];
  v->block = block;
  v->cpad = cpad;
  v->bf16 = t->dtype == EE_DTYPE_BF16;
  return TRUE;
}

void
cpu_view_dense (CpuView *v, int64_t n, int64_t c, int64_t h, int64_t w)
{
  v->n = n;
  v->c = c;
  v->h = h;
  v->w = w;
  v->sw = 1;
  v->sh = w;
  v->sc = h * w;
  v->sn = c * h * w;
  v->block = 1;
  v->cpad = c;
  v->bf16 = FALSE;
}

gboolean
cpu_loop_input (CpuBackend *be, EeOp *op, int i, const EeTensorDesc *t,
                GError **error)
{
  int64_t s[4] = { 1, 1, 1, 1 };
  int off = 4 - t->ndim;

  if (cpu_view_of (t, &op->view[i]))
    return TRUE;
  if (!cpu_input_dense (be, op, i, t, dnnl_f32, error))
    return FALSE;
  s[0] = t->shape[0];
  for (int d = 1; d < t->ndim; d++)
    s[d + off] = t->shape[d];
  cpu_view_dense (&op->view[i], s[0], s[1], s[2], s[3]);
  return TRUE;
}

/* ---- the backend table ---- */

static void
cpu_free (EeBackend *base)
{
  CpuBackend *be = (CpuBackend *)base;

  /* streams before their engine */
  if (be->threads)
    g_ptr_array_unref (be->threads);
  g_mutex_clear (&be->lock);
  if (be->engine)
    dnnl_engine_destroy (be->engine);
  g_free (be);
}

static void *
cpu_alloc (EeBackend *base, size_t nbytes, GError **error)
{
  return aligned_new (nbytes, error);
}

static void
cpu_dealloc (EeBackend *base, void *ptr)
{
  free (ptr);
}

static gboolean
cpu_copy (void *dst, const void *src, size_t nbytes, GError **error)
{
  if (nbytes && (!dst || !src)) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "cpu backend: copy of %zu bytes with a NULL pointer", nbytes);
    return FALSE;
  }
  if (nbytes)
    memcpy (dst, src, nbytes);
  return TRUE;
}

static gboolean
cpu_upload (EeBackend *base, void *dst, const void *host_src, size_t nbytes,
            GError **error)
{
  return cpu_copy (dst, host_src, nbytes, error);
}

static gboolean
cpu_download (EeBackend *base, void *host_dst, const void *src, size_t nbytes,
              GError **error)
{
  return cpu_copy (host_dst, src, nbytes, error);
}

static void
destroy_memory (gpointer m)
{
  dnnl_memory_destroy (m);
}

static void
cpu_op_free (EeBackend *base, EeOp *op)
{
  prim_clear (&op->main);
  prim_clear (&op->act);
  for (int i = 0; i < op->head.n_inputs; i++)
    prim_clear (&op->in[i].reorder);
  /* Memories before buffers: a memory object may point into a buffer. */
  g_ptr_array_unref (op->mems);
  g_ptr_array_unref (op->bufs);
  g_free (op->in);
  g_free (op->ptrs);
  g_free (op->src);
  g_free (op->name);
  g_mutex_clear (&op->lock);
  g_free (op);
}

/* What this backend adds to ee_op_output_shape's checks: F32 inputs, or
 * BF16 ones (made by the ops of a bf16 or int8 instance), U8 and S8 ones of
 * an int8 instance's own ops, and backend layouts that come with their
 * description. */
static gboolean
cpu_op_check_input (EeBackend *base, EeOpKind kind, int i,
                    const EeTensorDesc *t, GError **error)
{
  const CpuBackend *be = (const CpuBackend *)base;
  gboolean int8 = t->dtype == EE_DTYPE_U8 || t->dtype == EE_DTYPE_S8;

  if (t->dtype != EE_DTYPE_F32
      && !((be->bf16 || be->int8) && t->dtype == EE_DTYPE_BF16)
      && !(be->int8 && int8 && t->layout == EE_LAYOUT_BACKEND))
    return ee_op_input_error (error, EE_ERROR_UNSUPPORTED, "cpu", kind, i,
                              "is %s, this %s instance takes %s",
                              ee_dtype_name (t->dtype),
                              be->bf16   ? "bf16"
                              : be->int8 ? "int8"
                                         : "fp32",
                              be->bf16   ? "F32 and BF16"
                              : be->int8 ? "F32, and U8 and S8 of its own ops"
                                         : "F32 only");
  if (t->layout == EE_LAYOUT_BACKEND && !t->layout_desc)
    return ee_op_input_error (error, EE_ERROR_ARGUMENT, "cpu", kind, i,
                              "has a backend layout but no layout description");
  return TRUE;
}

static gboolean
cpu_op_init (EeBackend *base, EeOp *op, const EeOpDesc *desc,
             const EeTensorDesc *const *in, EeTensorDesc *out, GError **error)
{
  static const CpuBuilder builders[EE_OP_N_KINDS] = EE_OP_BUILDER_TABLE (cpu);
  CpuBackend *be = (CpuBackend *)base;
  int n_inputs = op->head.n_inputs;

  omp_set_num_threads (be->n_threads);
  g_mutex_init (&op->lock);
  op->in = g_new0 (CpuInput, n_inputs);
  op->ptrs = g_new0 (void *, n_inputs);
  op->src = g_new0 (dnnl_memory_t, n_inputs);
  op->mems = g_ptr_array_new_with_free_func (destroy_memory);
  op->bufs = g_ptr_array_new_with_free_func (free);
  op->name = g_strdup (desc->name);
  for (int i = 0; i < n_inputs; i++) {
    const EeTensorDesc *t = in[i];

    /* The scale an int8 input arrives with (its producer's). */
    op->in[i].have_scale = op->in[i].want_scale = 1.0f;
    if ((t->dtype == EE_DTYPE_U8 || t->dtype == EE_DTYPE_S8))
      op->in[i].have_scale = op->in[i].want_scale
          = ((const CpuLayout *)t->layout_desc)->scale;
  }
  return builders[desc->kind](be, op, desc, in, out, error);
}

static gboolean
bind (EeOp *op, dnnl_memory_t m, void *data, CpuThread *t, GError **error)
{
  return CPU_CHECK (op, error, dnnl_memory_set_data_handle_v2, m, data,
                    t->stream);
}

/* With op->lock held. */
static gboolean
op_run (CpuThread *t, EeOp *op, const EeTensor *const *inputs, int n_inputs,
        const EeTensor *out, GError **error)
{
  for (int i = 0; i < n_inputs; i++) {
    CpuInput *in = &op->in[i];

    op->ptrs[i] = inputs[i]->data;
    if (in->reorder.prim) {
      if (!bind (op, in->from, inputs[i]->data, t, error)
          || !prim_run (t, op, &in->reorder, error))
        return FALSE;
      op->ptrs[i] = in->scratch;
    }
  }
  if (op->loop) {
    op->loop (op, (const void *const *)op->ptrs, out->data);
    return TRUE;
  }
  for (int i = 0; i < n_inputs; i++)
    if (op->src[i] && !bind (op, op->src[i], op->ptrs[i], t, error))
      return FALSE;
  if (!bind (op, op->dst, out->data, t, error)
      || !prim_run (t, op, &op->main, error))
    return FALSE;
  return !op->act.prim || prim_run (t, op, &op->act, error);
}

/* The elements of a float tensor a loop could address, dense NCHW; NULL
 * for other layouts. */
static float *
gather (const EeTensor *t, int64_t *n_out)
{
  const float *d = t->data;
  CpuView v;
  float *out;
  int64_t k = 0;

  if (t->desc.dtype != EE_DTYPE_F32 || !cpu_view_of (&t->desc, &v))
    return NULL;
  out = g_new (float, MAX (v.n * v.c * v.h * v.w, 1));
  for (int64_t n = 0; n < v.n; n++)
    for (int64_t c = 0; c < v.c; c++)
      for (int64_t h = 0; h < v.h; h++)
        for (int64_t w = 0; w < v.w; w++)
          out[k++] = d[n * v.sn + c / v.block * v.sc + h * v.sh + w * v.sw
                       + c % v.block];
  *n_out = k;
  return out;
}

static void
observe (CpuBackend *be, EeOp *op, const EeTensor *x, const EeTensor *y)
{
  int64_t nx = 0, ny = 0;
  float *xs = gather (x, &nx), *ys = gather (y, &ny);

  if (xs && ys)
    be->observer (op->name ? op->name : "", xs, nx, ys, ny, be->observer_data);
  else
    g_warning ("cpu backend: convolution %s: a layout the calibration "
               "cannot read; it is not observed",
               op->name ? op->name : "");
  g_free (xs);
  g_free (ys);
}

void
ee_backend_cpu_set_conv_observer (EeBackend *base, EeConvObserver fn,
                                  gpointer data)
{
  CpuBackend *be = (CpuBackend *)base;

  g_return_if_fail (base->vt->op_init == cpu_op_init);
  be->observer = fn;
  be->observer_data = data;
}

static gboolean
cpu_op_enqueue (EeBackend *base, EeOp *op, const EeTensor *const *inputs,
                int n_inputs, const EeTensor *out, GError **error)
{
  CpuBackend *be = (CpuBackend *)base;
  CpuThread *t;
  gboolean ok;

  t = cpu_thread (be, op, error);
  if (!t)
    return FALSE;
  omp_set_num_threads (cores_here (be));
  g_mutex_lock (&op->lock);
  ok = op_run (t, op, inputs, n_inputs, out, error);
  g_mutex_unlock (&op->lock);
  if (ok && be->observer && op->head.desc.kind == EE_OP_CONV2D)
    observe (be, op, inputs[0], out);
  return ok;
}

static EeEvent *
cpu_event_new (EeBackend *base, GError **error)
{
  return g_new0 (EeEvent, 1);
}

static gboolean
cpu_event_record (EeBackend *base, EeEvent *ev, GError **error)
{
  ev->time_us = g_get_monotonic_time ();
  return TRUE;
}

static gboolean
cpu_event_query (EeBackend *base, EeEvent *ev)
{
  return TRUE;
}

static gboolean
cpu_event_sync (EeBackend *base, EeEvent *ev, GError **error)
{
  return TRUE;
}

static gboolean
cpu_event_elapsed_ms (EeBackend *base, EeEvent *start, EeEvent *end, double *ms,
                      GError **error)
{
  if (!start->time_us || !end->time_us) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "cpu backend: elapsed time asked of an event never recorded");
    return FALSE;
  }
  *ms = (double)(end->time_us - start->time_us) / 1000.0;
  return TRUE;
}

static void
cpu_event_free (EeBackend *base, EeEvent *ev)
{
  g_free (ev);
}

static gboolean
cpu_sync (EeBackend *base, GError **error)
{
  CpuBackend *be = (CpuBackend *)base;
  CpuThread *t = cpu_thread (be, NULL, error);
  dnnl_status_t st;

  if (!t)
    return FALSE;
  st = dnnl_stream_wait (t->stream);
  if (st != dnnl_success) {
    g_set_error (error, EE_ERROR, EE_ERROR_BACKEND,
                 "cpu backend: dnnl_stream_wait failed: %s",
                 dnnl_status2str (st));
    return FALSE;
  }
  return TRUE;
}

static const EeBackendVTable cpu_vtable = {
  .name = "cpu",
  .caps = EE_BACKEND_CAP_EAGER | EE_BACKEND_CAP_CONCURRENT,
  .op_size = sizeof (EeOp),
  EE_BACKEND_FUNCS (cpu),
  .set_thread_cores = cpu_set_thread_cores,
};

/* Whether oneDNN has a bf16 convolution on this CPU, asked for as
 * cpu_conv_new asks. oneDNN 2.6 offers bf16 from AVX-512 on (emulated
 * without the AVX512_BF16 instructions) and refuses it below. */
static dnnl_status_t
probe_bf16 (CpuBackend *be)
{
  const int64_t x[4] = { 1, 16, 8, 8 }, w[4] = { 16, 16, 3, 3 };
  const dnnl_dims_t one = { 1, 1 }, zero = { 0, 0 };
  dnnl_memory_desc_t src, wei, dst;
  dnnl_convolution_desc_t cd;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_status_t st;

  cpu_md_any (4, x, dnnl_bf16, &src);
  cpu_md_any (4, w, dnnl_bf16, &wei);
  cpu_md_any (4, x, dnnl_bf16, &dst);
  st = dnnl_dilated_convolution_forward_desc_init (
      &cd, dnnl_forward_inference, dnnl_convolution_direct, &src, &wei, NULL,
      &dst, one, zero, one, one);
  if (st == dnnl_success)
    st = dnnl_primitive_desc_create (&pd, &cd, NULL, be->engine, NULL);
  if (pd)
    dnnl_primitive_desc_destroy (pd);
  return st;
}

/* Whether the CPU, as oneDNN may use it, has VNNI (the int8 multiply-add
 * that makes int8 pay): AVX512_VNNI or AVX_VNNI. oneDNN runs int8 without
 * it too, at about the speed of fp32, and with AVX-512 alone a u8 x s8
 * product can saturate (vpmaddubsw): not what int8 is for. */
static gboolean
has_vnni (void)
{
  dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa ();

  return (isa & dnnl_cpu_isa_avx512_core_vnni) == dnnl_cpu_isa_avx512_core_vnni
         || (isa & dnnl_cpu_isa_avx2_vnni) == dnnl_cpu_isa_avx2_vnni;
}

EeBackend *
ee_backend_cpu_new_full (int n_threads, EePrecision precision, GError **error)
{
  CpuBackend *be;
  dnnl_status_t st;

  if (precision != EE_PRECISION_FP32 && precision != EE_PRECISION_BF16
      && precision != EE_PRECISION_INT8) {
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "cpu backend: computes in fp32, bf16 or int8, not %s",
                 ee_precision_name (precision));
    return NULL;
  }
  if (precision == EE_PRECISION_INT8 && !has_vnni ()) {
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "cpu backend: this CPU cannot compute in int8: its "
                 "instruction set (%s) has no VNNI (AVX512_VNNI or "
                 "AVX_VNNI); use precision fp32 (or bf16 with AVX-512)",
                 dnnl_cpu_isa2str (dnnl_get_effective_cpu_isa ()));
    return NULL;
  }
  be = g_new0 (CpuBackend, 1);
  be->parent.vt = &cpu_vtable;
  be->n_threads = n_threads > 0 ? n_threads : omp_get_num_procs ();
  be->bf16 = precision == EE_PRECISION_BF16;
  be->int8 = precision == EE_PRECISION_INT8;
  g_mutex_init (&be->lock);
  be->threads = g_ptr_array_new_with_free_func (cpu_thread_free);
  st = dnnl_engine_create (&be->engine, dnnl_cpu, 0);
  if (st != dnnl_success) {
    g_set_error (error, EE_ERROR, EE_ERROR_BACKEND,
                 "cpu backend: dnnl_engine_create failed: %s",
                 dnnl_status2str (st));
    cpu_free (&be->parent);
    return NULL;
  }
  if (be->bf16 && (st = probe_bf16 (be)) != dnnl_success) {
    if (st == dnnl_unimplemented)
      g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                   "cpu backend: this CPU cannot compute in bf16: oneDNN has "
                   "no bf16 convolution for its instruction set (%s); bf16 "
                   "needs AVX-512",
                   dnnl_cpu_isa2str (dnnl_get_effective_cpu_isa ()));
    else
      g_set_error (error, EE_ERROR, EE_ERROR_BACKEND,
                   "cpu backend: creating a bf16 convolution failed: %s",
                   dnnl_status2str (st));
    cpu_free (&be->parent);
    return NULL;
  }
  return &be->parent;
}

EeBackend *
ee_backend_cpu_new (int n_threads, GError **error)
{
  return ee_backend_cpu_new_full (n_threads, EE_PRECISION_FP32, error);
}
