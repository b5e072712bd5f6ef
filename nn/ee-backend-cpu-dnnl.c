/* gst-earlyexit: CPU backend ops that are oneDNN primitives.
 *
 * Convolution chooses its own activation layouts (format_tag any); pooling,
 * batch norm, eltwise, binary and concat take whatever layout arrives, so a
 * blocked tensor flows through them unchanged. Linear, matmul, layer norm and
 * softmax work on dense row-major tensors: they are token-major by nature.
 *
 * In a bf16 instance convolutions take bf16 sources and weights and write
 * bf16 (oneDNN accumulates in fp32); pooling, batch norm, eltwise, binary and
 * concat keep the data type that arrives, so a chain of convolutions stays
 * bf16. The token-major ops compute in fp32, on an fp32 copy of a bf16
 * input: their work is a thousandth of a frame's (the largest, an exit's
 * patch projection, takes 1.4 ms in fp32 and 0.75 ms in bf16 against the
 * 2 s of the convolutions before it), and a bf16 FiLM generator would scale
 * every channel of the backbone with bf16's error.
 *
 * In an int8 instance convolutions compute in int8 (conv_int8_new) and
 * pooling keeps the int8 that arrives; every other op reads int8 through an
 * input reorder to fp32 that scales it back, and bf16 as above. */
#include "ee-backend-cpu-private.h"

#include <math.h>
#include <string.h>

/* The layout an op that takes any layout reads input i in: the input's own
 * in data type dt, made dense first if it is a strided view. */
static gboolean
input_md (CpuBackend *be, EeOp *op, int i, const EeTensorDesc *t,
          dnnl_data_type_t dt, dnnl_memory_desc_t *md, GError **error)
{
  dnnl_memory_desc_t have;

  if (!cpu_md_of (op, t, md, error))
    return FALSE;
  have = *md;
  if (t->layout == EE_LAYOUT_PLAIN && !cpu_md_is_dense (md))
    cpu_md_dense (t->ndim, t->shape, dt, md);
  /* Strides count elements, so a layout holds for any data type. */
  md->data_type = dt;
  return cpu_input_setup (be, op, i, &have, md, error);
}

static dnnl_status_t
pd_try (CpuBackend *be, EeOp *op, const_dnnl_op_desc_t od, EeActivation act,
        float alpha, dnnl_primitive_desc_t *pd, GError **error)
{
  dnnl_primitive_attr_t attr = cpu_attr_new (op, act, alpha, error);
  dnnl_status_t st;

  if (!attr)
    return dnnl_runtime_error;
  st = dnnl_primitive_desc_create (pd, od, attr, be->engine, NULL);
  dnnl_primitive_attr_destroy (attr);
  return st;
}

static dnnl_primitive_desc_t
pd_new (CpuBackend *be, EeOp *op, const_dnnl_op_desc_t od, EeActivation act,
        float alpha, GError **error)
{
  dnnl_primitive_desc_t pd = NULL;
  dnnl_status_t st = pd_try (be, op, od, act, alpha, &pd, error);

  if (error && *error)
    return NULL;
  return cpu_check (st, op, "dnnl_primitive_desc_create", error) ? pd : NULL;
}

/* Input i reaches the main primitive as argument `arg` in layout md. */
static gboolean
bind_src (CpuBackend *be, EeOp *op, int i, int arg,
          const dnnl_memory_desc_t *md, GError **error)
{
  op->src[i] = cpu_memory_new (be, op, md, NULL, error);
  if (!op->src[i])
    return FALSE;
  cpu_prim_arg (&op->main, arg, op->src[i]);
  return TRUE;
}

static gboolean
bind_dst (CpuBackend *be, EeOp *op, const dnnl_memory_desc_t *md,
          GError **error)
{
  op->dst = cpu_memory_new (be, op, md, NULL, error);
  if (!op->dst)
    return FALSE;
  cpu_prim_arg (&op->main, DNNL_ARG_DST, op->dst);
  return TRUE;
}

static gboolean
bind_param (CpuBackend *be, EeOp *op, int arg, const dnnl_memory_desc_t *user,
            const dnnl_memory_desc_t *want, const float *host, GError **error)
{
  dnnl_memory_t m = cpu_param_new (be, op, user, want, host, error);

  if (!m)
    return FALSE;
  cpu_prim_arg (&op->main, arg, m);
  return TRUE;
}

/* A per-channel vector parameter, `fill` everywhere when host is NULL. */
static gboolean
bind_vector (CpuBackend *be, EeOp *op, int arg, int64_t n, const float *host,
             float fill, GError **error)
{
  dnnl_memory_desc_t md;
  dnnl_memory_t m;
  float *buf;

  cpu_md_dense (1, &n, dnnl_f32, &md);
  buf = cpu_buffer_new (op, (size_t)n * sizeof (float), error);
  if (!buf)
    return FALSE;
  for (int64_t i = 0; i < n; i++)
    buf[i] = host ? host[i] : fill;
  m = cpu_memory_new (be, op, &md, buf, error);
  if (!m)
    return FALSE;
  cpu_prim_arg (&op->main, arg, m);
  return TRUE;
}

/* An output (statistics of layer norm in some modes) the op has no use for
 * but the primitive writes. */
static gboolean
bind_unused_output (CpuBackend *be, EeOp *op, dnnl_primitive_desc_t pd, int arg,
                    GError **error)
{
  const dnnl_memory_desc_t *md
      = dnnl_primitive_desc_query_md (pd, dnnl_query_exec_arg_md, arg);
  dnnl_memory_t m;
  void *buf;

  if (!md || md->ndims == 0)
    return TRUE;
  buf = cpu_buffer_new (op, dnnl_memory_desc_get_size (md), error);
  m = buf ? cpu_memory_new (be, op, md, buf, error) : NULL;
  if (!m)
    return FALSE;
  cpu_prim_arg (&op->main, arg, m);
  return TRUE;
}

static const dnnl_memory_desc_t *
query (dnnl_primitive_desc_t pd, dnnl_query_t what)
{
  return dnnl_primitive_desc_query_md (pd, what, 0);
}

/* What a convolution's primitive description is made of: its geometry
 * (oneDNN counts dilation as the gaps) and the memory descriptions of its
 * source (src_dt, any layout), weights (w_dt, any layout; w_user the model
 * file's dense fp32 OIHW) and bias (fp32: it is added to the fp32
 * accumulator). */
typedef struct
{
  dnnl_dims_t strides, dilates, pad;
  dnnl_memory_desc_t src_any, w_any, w_user, b_md;
} ConvGeometry;

static void
conv_geometry (const EeOpDesc *d, const EeTensorDesc *x,
               dnnl_data_type_t src_dt, dnnl_data_type_t w_dt, ConvGeometry *g)
{
  dnnl_dims_t shape
      = { d->out_features, x->shape[1], d->kernel_size[0], d->kernel_size[1] };
  int64_t o = d->out_features;

  for (int i = 0; i < 2; i++) {
    g->strides[i] = d->stride[i];
    g->dilates[i] = d->dilation[i] - 1;
    g->pad[i] = d->pad[i];
  }
  cpu_md_any (4, x->shape, src_dt, &g->src_any);
  cpu_md_any (4, shape, w_dt, &g->w_any);
  cpu_md_dense (4, shape, dnnl_f32, &g->w_user);
  cpu_md_dense (1, &o, dnnl_f32, &g->b_md);
}

/* An int8 convolution. The source is u8 or s8 with scale s_x (int8 =
 * real x s_x): as it arrives from an int8 op, else quantised from float
 * with the calibrated range (u8 when in_min >= 0). Weights are s8, one
 * scale per output channel, s_w[o] = 127 / max |w[o]|. oneDNN 2.6 computes
 * dst = scale[o] x (sum x_q w_q + bias'[o]) with the ReLU after, in int32
 * then fp32, so bias'[o] = bias[o] x s_x s_w[o] and scale[o] = s_y / (s_x
 * s_w[o]), s_y being 255 / out_max for a u8 output (a ReLU whose range the
 * calibration gives) and 1 for a float one: bf16 (fp32 where oneDNN has no
 * bf16 output for int8), which the ops after read as they read a bf16
 * instance's. */
static gboolean
conv_int8_new (CpuBackend *be, EeOp *op, const EeOpDesc *d,
               const EeTensorDesc *const *in, EeTensorDesc *out, GError **error)
{
  const EeTensorDesc *x = in[0];
  int64_t o = d->out_features, per_o;
  gboolean x_int8 = x->dtype == EE_DTYPE_U8 || x->dtype == EE_DTYPE_S8;
  gboolean u8_out = d->act == EE_ACT_RELU && d->out_max > 0.0f;
  dnnl_data_type_t src_dt, dst_dt = u8_out ? dnnl_u8 : dnnl_bf16;
  float s_x, s_y = u8_out ? 255.0f / d->out_max : 1.0f;
  float *w_scale, *scale, *bias = NULL;
  dnnl_memory_desc_t x_md, dst_any;
  ConvGeometry g;
  dnnl_convolution_desc_t cd;
  dnnl_primitive_attr_t attr;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_status_t st;
  gboolean ok;

  if (x_int8) {
    src_dt = cpu_dt (x->dtype);
    s_x = op->in[0].have_scale;
  } else if (!(d->in_max > 0.0f) || !isfinite (d->in_max)) {
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "cpu backend: convolution %s has no int8 calibration: the "
                 "model file holds no int8 scales for it; make a calibrated "
                 "file with `earlyexit calibrate MODEL --data DIR --out "
                 "MODEL.int8.safetensors` and run that",
                 op->name ? op->name : "");
    return FALSE;
  } else {
    src_dt = d->in_min >= 0.0f ? dnnl_u8 : dnnl_s8;
    s_x = (src_dt == dnnl_u8 ? 255.0f : 127.0f) / d->in_max;
    op->in[0].want_scale = s_x;
  }
  per_o = x->shape[1] * d->kernel_size[0] * d->kernel_size[1];
  w_scale = cpu_buffer_new (op, (size_t)o * sizeof (float), error);
  scale = cpu_buffer_new (op, (size_t)o * sizeof (float), error);
  if (d->bias)
    bias = cpu_buffer_new (op, (size_t)o * sizeof (float), error);
  if (!w_scale || !scale || (d->bias && !bias))
    return FALSE;
  for (int64_t c = 0; c < o; c++) {
    float m = 0.0f;

    for (int64_t k = 0; k < per_o; k++)
      m = MAX (m, fabsf (d->weight[c * per_o + k]));
    w_scale[c] = m > 0.0f ? 127.0f / m : 1.0f;
    scale[c] = s_y / (s_x * w_scale[c]);
    if (bias)
      bias[c] = d->bias[c] * s_x * w_scale[c];
  }

  conv_geometry (d, x, src_dt, dnnl_s8, &g);
  attr = cpu_attr_new (op, d->act, 1.0f, error);
  if (!attr)
    return FALSE;
  ok = CPU_CHECK (op, error, dnnl_primitive_attr_set_output_scales, attr, o,
                  1 << 1, scale);
  for (;;) {
    cpu_md_any (4, op->head.out_shape, dst_dt, &dst_any);
    ok = ok
         && CPU_CHECK (op, error, dnnl_dilated_convolution_forward_desc_init,
                       &cd, dnnl_forward_inference, dnnl_convolution_direct,
                       &g.src_any, &g.w_any, bias ? &g.b_md : NULL, &dst_any,
                       g.strides, g.dilates, g.pad, g.pad);
    if (!ok)
      break;
    st = dnnl_primitive_desc_create (&pd, &cd, attr, be->engine, NULL);
    /* a float output is bf16 where oneDNN has a fast kernel for that (on
     * AVX2_VNNI only its reference code writes bf16), else fp32 */
    if (dst_dt == dnnl_bf16 && st == dnnl_success) {
      const char *impl = NULL;

      if (dnnl_primitive_desc_query (pd, dnnl_query_impl_info_str, 0, &impl)
              == dnnl_success
          && impl && g_str_has_prefix (impl, "ref")) {
        dnnl_primitive_desc_destroy (pd);
        pd = NULL;
        st = dnnl_unimplemented;
      }
    }
    if (st == dnnl_unimplemented && dst_dt == dnnl_bf16) {
      dst_dt = dnnl_f32;
      continue;
    }
    ok = cpu_check (st, op, "dnnl_primitive_desc_create", error);
    break;
  }
  dnnl_primitive_attr_destroy (attr);
  if (!ok)
    return FALSE;
  ok = cpu_md_of (op, x, &x_md, error)
       && cpu_input_setup (be, op, 0, &x_md, query (pd, dnnl_query_src_md),
                           error)
       && cpu_prim_create (be, op, &op->main, pd, 4, error)
       && bind_src (be, op, 0, DNNL_ARG_SRC, query (pd, dnnl_query_src_md),
                    error);
  if (ok) {
    dnnl_memory_t wm = cpu_param_s8_new (be, op, &g.w_user,
                                         query (pd, dnnl_query_weights_md),
                                         d->weight, o, w_scale, error);

    ok = wm != NULL;
    if (ok)
      cpu_prim_arg (&op->main, DNNL_ARG_WEIGHTS, wm);
  }
  ok = ok
       && (!bias || bind_vector (be, op, DNNL_ARG_BIAS, o, bias, 0.0f, error))
       && bind_dst (be, op, query (pd, dnnl_query_dst_md), error);
  if (ok)
    cpu_out_from_md_scaled (op, query (pd, dnnl_query_dst_md), s_y, out);
  dnnl_primitive_desc_destroy (pd);
  return ok;
}

EE_OP_BUILDER (CpuBackend, cpu_conv_new)
{
  const EeTensorDesc *x = in[0];
  int64_t o = d->out_features;
  dnnl_data_type_t dt = be->bf16 ? dnnl_bf16 : dnnl_f32;
  dnnl_memory_desc_t x_md, dst_any;
  ConvGeometry g;
  dnnl_convolution_desc_t cd;
  dnnl_primitive_desc_t pd = NULL;
  gboolean ok;

  if (be->int8)
    return conv_int8_new (be, op, d, in, out, error);
  conv_geometry (d, x, dt, dt, &g);
  cpu_md_any (4, op->head.out_shape, dt, &dst_any);

  /* Direct rather than auto: auto may pick Winograd, which loses precision
   * the tests and the float reference path do not allow. */
  if (!CPU_CHECK (op, error, dnnl_dilated_convolution_forward_desc_init, &cd,
                  dnnl_forward_inference, dnnl_convolution_direct, &g.src_any,
                  &g.w_any, d->bias ? &g.b_md : NULL, &dst_any, g.strides,
                  g.dilates, g.pad, g.pad))
    return FALSE;
  pd = pd_new (be, op, &cd, d->act, 1.0f, error);
  if (!pd)
    return FALSE;
  ok = cpu_md_of (op, x, &x_md, error)
       && cpu_input_setup (be, op, 0, &x_md, query (pd, dnnl_query_src_md),
                           error)
       && cpu_prim_create (be, op, &op->main, pd, 4, error)
       && bind_src (be, op, 0, DNNL_ARG_SRC, query (pd, dnnl_query_src_md),
                    error)
       && bind_param (be, op, DNNL_ARG_WEIGHTS, &g.w_user,
                      query (pd, dnnl_query_weights_md), d->weight, error)
       && (!d->bias
           || bind_vector (be, op, DNNL_ARG_BIAS, o, d->bias, 0.0f, error))
       && bind_dst (be, op, query (pd, dnnl_query_dst_md), error);
  if (ok)
    cpu_out_from_md (op, query (pd, dnnl_query_dst_md), out);
  dnnl_primitive_desc_destroy (pd);
  return ok;
}

EE_OP_BUILDER (CpuBackend, cpu_pool_new)
{
  const EeTensorDesc *x = in[0];
  gboolean avg = d->kind == EE_OP_AVGPOOL;
  const int64_t *oshape = op->head.out_shape;
  dnnl_dims_t strides, kernel, pad_l, pad_r;
  dnnl_memory_desc_t x_md, dst_any;
  dnnl_pooling_desc_t pdesc;
  dnnl_primitive_desc_t pd;
  dnnl_alg_kind_t alg;
  gboolean ok;

  for (int i = 0; i < 2; i++) {
    strides[i] = d->stride[i];
    kernel[i] = d->kernel[i];
    pad_l[i] = d->pad[i];
    pad_r[i] = ee_op_pool_pad_end (d, i, x->shape[2 + i], oshape[2 + i]);
  }
  if (avg && d->count_include_pad
      && (pad_r[0] > d->pad[0] || pad_r[1] > d->pad[1]))
    return cpu_avgpool_loop_new (be, op, in, out, error);

  alg = !avg                   ? dnnl_pooling_max
        : d->count_include_pad ? dnnl_pooling_avg_include_padding
                               : dnnl_pooling_avg_exclude_padding;
  cpu_md_any (4, oshape, cpu_dt (x->dtype), &dst_any);
  if (!input_md (be, op, 0, x, cpu_dt (x->dtype), &x_md, error)
      || !CPU_CHECK (op, error, dnnl_pooling_forward_desc_init, &pdesc,
                     dnnl_forward_inference, alg, &x_md, &dst_any, strides,
                     kernel, pad_l, pad_r))
    return FALSE;
  pd = pd_new (be, op, &pdesc, EE_ACT_NONE, 1.0f, error);
  if (!pd)
    return FALSE;
  ok = cpu_prim_create (be, op, &op->main, pd, 2, error)
       && bind_src (be, op, 0, DNNL_ARG_SRC, &x_md, error)
       && bind_dst (be, op, query (pd, dnnl_query_dst_md), error);
  /* int8 pools in int8: the output has the input's scale (a maximum of
   * int8 values is one of them; an average is rounded to one). */
  if (ok)
    cpu_out_from_md_scaled (op, query (pd, dnnl_query_dst_md),
                            op->in[0].have_scale, out);
  dnnl_primitive_desc_destroy (pd);
  return ok;
}

EE_OP_BUILDER (CpuBackend, cpu_batchnorm_new)
{
  const EeTensorDesc *x = in[0];
  int64_t c = x->ndim > 1 ? x->shape[1] : 0;
  unsigned flags = dnnl_use_global_stats | dnnl_use_scale | dnnl_use_shift;
  dnnl_batch_normalization_desc_t bd;
  dnnl_memory_desc_t x_md;
  dnnl_primitive_desc_t pd;
  gboolean ok;

  if (d->act == EE_ACT_RELU)
    flags |= dnnl_fuse_norm_relu;
  if (!input_md (be, op, 0, x, cpu_float_dt (x->dtype), &x_md, error)
      || !CPU_CHECK (op, error, dnnl_batch_normalization_forward_desc_init, &bd,
                     dnnl_forward_inference, &x_md, d->eps, flags))
    return FALSE;
  pd = pd_new (be, op, &bd, EE_ACT_NONE, 1.0f, error);
  if (!pd)
    return FALSE;
  ok = cpu_prim_create (be, op, &op->main, pd, 6, error)
       && bind_src (be, op, 0, DNNL_ARG_SRC, &x_md, error)
       && bind_vector (be, op, DNNL_ARG_MEAN, c, d->mean, 0.0f, error)
       && bind_vector (be, op, DNNL_ARG_VARIANCE, c, d->var, 1.0f, error)
       && bind_vector (be, op, DNNL_ARG_SCALE, c, d->weight, 1.0f, error)
       && bind_vector (be, op, DNNL_ARG_SHIFT, c, d->bias, 0.0f, error)
       && bind_dst (be, op, query (pd, dnnl_query_dst_md), error)
       && (d->act != EE_ACT_GELU
           || cpu_act_setup (be, op, d->act, query (pd, dnnl_query_dst_md),
                             error));
  if (ok)
    cpu_out_from_md (op, query (pd, dnnl_query_dst_md), out);
  dnnl_primitive_desc_destroy (pd);
  return ok;
}

EE_OP_BUILDER (CpuBackend, cpu_linear_new)
{
  const EeTensorDesc *x = in[0];
  int64_t k = x->shape[x->ndim - 1], m = d->out_features, rows = 1;
  int64_t shape[2];
  dnnl_memory_desc_t src_md, w_any, w_user, b_md, dst_md;
  dnnl_inner_product_desc_t ipd;
  dnnl_primitive_desc_t pd;
  gboolean ok;

  for (int i = 0; i < x->ndim - 1; i++)
    rows *= x->shape[i];
  /* Leading dims fold into rows of one inner product. */
  if (!cpu_input_dense (be, op, 0, x, dnnl_f32, error))
    return FALSE;
  shape[0] = rows;
  shape[1] = k;
  cpu_md_dense (2, shape, dnnl_f32, &src_md);
  shape[0] = m;
  cpu_md_any (2, shape, dnnl_f32, &w_any);
  cpu_md_dense (2, shape, dnnl_f32, &w_user);
  cpu_md_dense (1, &m, dnnl_f32, &b_md);
  shape[0] = rows;
  shape[1] = m;
  cpu_md_dense (2, shape, dnnl_f32, &dst_md);
  if (!CPU_CHECK (op, error, dnnl_inner_product_forward_desc_init, &ipd,
                  dnnl_forward_inference, &src_md, &w_any,
                  d->bias ? &b_md : NULL, &dst_md))
    return FALSE;
  pd = pd_new (be, op, &ipd, d->act, 1.0f, error);
  if (!pd)
    return FALSE;
  ok = cpu_prim_create (be, op, &op->main, pd, 4, error)
       && bind_src (be, op, 0, DNNL_ARG_SRC, &src_md, error)
       && bind_param (be, op, DNNL_ARG_WEIGHTS, &w_user,
                      query (pd, dnnl_query_weights_md), d->weight, error)
       && (!d->bias
           || bind_vector (be, op, DNNL_ARG_BIAS, m, d->bias, 0.0f, error))
       && bind_dst (be, op, &dst_md, error);
  dnnl_primitive_desc_destroy (pd);
  if (ok)
    *out = ee_tensor_desc_plain (EE_DTYPE_F32, op->head.out_ndim,
                                 op->head.out_shape);
  return ok;
}

EE_OP_BUILDER (CpuBackend, cpu_matmul_new)
{
  int nd = op->head.out_ndim;
  dnnl_memory_desc_t a_md, b_md, dst_md;
  dnnl_matmul_desc_t md;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_status_t st;
  gboolean ok;

  cpu_md_dense (nd, op->head.out_shape, dnnl_f32, &dst_md);
  /* Plain fp32 operands are read through their strides (K^T as a transposed
   * view); others are made dense fp32. */
  for (int i = 0; i < 2; i++) {
    if (in[i]->layout == EE_LAYOUT_PLAIN && in[i]->dtype == EE_DTYPE_F32) {
      if (!cpu_md_of (op, in[i], i ? &b_md : &a_md, error))
        return FALSE;
    } else {
      cpu_md_dense (nd, in[i]->shape, dnnl_f32, i ? &b_md : &a_md);
      if (!cpu_input_dense (be, op, i, in[i], dnnl_f32, error))
        return FALSE;
    }
  }
  if (!CPU_CHECK (op, error, dnnl_matmul_desc_init, &md, &a_md, &b_md, NULL,
                  &dst_md))
    return FALSE;
  st = pd_try (be, op, &md, EE_ACT_NONE, d->alpha, &pd, error);
  if (st == dnnl_unimplemented) {
    /* Strides no implementation takes: read dense copies instead. */
    for (int i = 0; i < 2; i++) {
      dnnl_memory_desc_t *m = i ? &b_md : &a_md;

      if (!cpu_md_is_dense (m)) {
        cpu_md_dense (nd, in[i]->shape, dnnl_f32, m);
        if (!cpu_input_dense (be, op, i, in[i], dnnl_f32, error))
          return FALSE;
      }
    }
    if (!CPU_CHECK (op, error, dnnl_matmul_desc_init, &md, &a_md, &b_md, NULL,
                    &dst_md))
      return FALSE;
    st = pd_try (be, op, &md, EE_ACT_NONE, d->alpha, &pd, error);
  }
  if ((error && *error)
      || !cpu_check (st, op, "dnnl_primitive_desc_create", error))
    return FALSE;
  ok = cpu_prim_create (be, op, &op->main, pd, 3, error)
       && bind_src (be, op, 0, DNNL_ARG_SRC, &a_md, error)
       && bind_src (be, op, 1, DNNL_ARG_WEIGHTS, &b_md, error)
       && bind_dst (be, op, &dst_md, error);
  dnnl_primitive_desc_destroy (pd);
  if (ok)
    *out = ee_tensor_desc_plain (EE_DTYPE_F32, nd, op->head.out_shape);
  return ok;
}

EE_OP_BUILDER (CpuBackend, cpu_layernorm_new)
{
  const EeTensorDesc *x = in[0];
  int64_t dim = x->shape[x->ndim - 1];
  int64_t shape[EE_MAX_DIMS] = { 1, dim };
  int nd = MAX (x->ndim, 2);
  unsigned flags = 0;
  dnnl_layer_normalization_desc_t ld;
  dnnl_memory_desc_t x_md;
  dnnl_primitive_desc_t pd;
  gboolean ok;

  if (x->ndim > 1)
    memcpy (shape, x->shape, sizeof shape);
  if (d->weight)
    flags |= dnnl_use_scale;
  if (d->bias)
    flags |= dnnl_use_shift;
  cpu_md_dense (nd, shape, dnnl_f32, &x_md);
  if (!cpu_input_dense (be, op, 0, x, dnnl_f32, error)
      || !CPU_CHECK (op, error, dnnl_layer_normalization_forward_desc_init, &ld,
                     dnnl_forward_inference, &x_md, NULL, d->eps, flags))
    return FALSE;
  pd = pd_new (be, op, &ld, EE_ACT_NONE, 1.0f, error);
  if (!pd)
    return FALSE;
  ok = cpu_prim_create (be, op, &op->main, pd, 6, error)
       && bind_src (be, op, 0, DNNL_ARG_SRC, &x_md, error)
       && (!d->weight
           || bind_vector (be, op, DNNL_ARG_SCALE, dim, d->weight, 1.0f, error))
       && (!d->bias
           || bind_vector (be, op, DNNL_ARG_SHIFT, dim, d->bias, 0.0f, error))
       && bind_unused_output (be, op, pd, DNNL_ARG_MEAN, error)
       && bind_unused_output (be, op, pd, DNNL_ARG_VARIANCE, error)
       && bind_dst (be, op, &x_md, error);
  dnnl_primitive_desc_destroy (pd);
  if (ok)
    *out = ee_tensor_desc_plain (EE_DTYPE_F32, x->ndim, x->shape);
  return ok;
}

EE_OP_BUILDER (CpuBackend, cpu_softmax_new)
{
  const EeTensorDesc *x = in[0];
  dnnl_softmax_desc_t sd;
  dnnl_memory_desc_t x_md;
  dnnl_primitive_desc_t pd;
  gboolean ok;

  cpu_md_dense (x->ndim, x->shape, dnnl_f32, &x_md);
  if (!cpu_input_dense (be, op, 0, x, dnnl_f32, error)
      || !CPU_CHECK (op, error, dnnl_softmax_forward_desc_init, &sd,
                     dnnl_forward_inference, &x_md, x->ndim - 1))
    return FALSE;
  pd = pd_new (be, op, &sd, EE_ACT_NONE, 1.0f, error);
  if (!pd)
    return FALSE;
  ok = cpu_prim_create (be, op, &op->main, pd, 2, error)
       && bind_src (be, op, 0, DNNL_ARG_SRC, &x_md, error)
       && bind_dst (be, op, &x_md, error);
  dnnl_primitive_desc_destroy (pd);
  if (ok)
    *out = ee_tensor_desc_plain (EE_DTYPE_F32, x->ndim, x->shape);
  return ok;
}

EE_OP_BUILDER (CpuBackend, cpu_eltwise_new)
{
  dnnl_eltwise_desc_t ed;
  dnnl_memory_desc_t x_md;
  dnnl_primitive_desc_t pd;
  gboolean ok;

  if (!input_md (be, op, 0, in[0], cpu_float_dt (in[0]->dtype), &x_md, error)
      || !CPU_CHECK (op, error, dnnl_eltwise_forward_desc_init, &ed,
                     dnnl_forward_inference,
                     d->kind == EE_OP_RELU ? dnnl_eltwise_relu
                                           : dnnl_eltwise_gelu_erf,
                     &x_md, 0.0f, 0.0f))
    return FALSE;
  pd = pd_new (be, op, &ed, EE_ACT_NONE, 1.0f, error);
  if (!pd)
    return FALSE;
  ok = cpu_prim_create (be, op, &op->main, pd, 2, error)
       && bind_src (be, op, 0, DNNL_ARG_SRC, &x_md, error)
       && bind_dst (be, op, &x_md, error);
  dnnl_primitive_desc_destroy (pd);
  if (ok)
    cpu_out_from_md (op, &x_md, out);
  return ok;
}

EE_OP_BUILDER (CpuBackend, cpu_binary_new)
{
  dnnl_memory_desc_t a_md, b_md;
  dnnl_binary_desc_t bd;
  dnnl_primitive_desc_t pd;
  gboolean ok;

  /* The second operand is brought into the first one's layout and data
   * type. */
  if (!input_md (be, op, 0, in[0], cpu_float_dt (in[0]->dtype), &a_md, error)
      || !cpu_md_of (op, in[1], &b_md, error)
      || !cpu_input_setup (be, op, 1, &b_md, &a_md, error)
      || !CPU_CHECK (op, error, dnnl_binary_desc_init, &bd,
                     d->kind == EE_OP_ADD ? dnnl_binary_add : dnnl_binary_mul,
                     &a_md, &a_md, &a_md))
    return FALSE;
  pd = pd_new (be, op, &bd, EE_ACT_NONE, 1.0f, error);
  if (!pd)
    return FALSE;
  ok = cpu_prim_create (be, op, &op->main, pd, 3, error)
       && bind_src (be, op, 0, DNNL_ARG_SRC_0, &a_md, error)
       && bind_src (be, op, 1, DNNL_ARG_SRC_1, &a_md, error)
       && bind_dst (be, op, &a_md, error);
  dnnl_primitive_desc_destroy (pd);
  if (ok)
    cpu_out_from_md (op, &a_md, out);
  return ok;
}

EE_OP_BUILDER (CpuBackend, cpu_concat_new)
{
  int n = op->head.n_inputs;
  dnnl_data_type_t dt = dnnl_bf16;
  dnnl_memory_desc_t *mds;
  dnnl_primitive_attr_t attr;
  dnnl_primitive_desc_t pd = NULL;
  gboolean ok = TRUE;

  /* oneDNN concatenates one data type: bf16 if every input is, else fp32,
   * each input converted in its own layout. */
  for (int i = 0; i < n; i++)
    if (in[i]->dtype != EE_DTYPE_BF16)
      dt = dnnl_f32;
  mds = g_new0 (dnnl_memory_desc_t, n);
  for (int i = 0; ok && i < n; i++)
    ok = input_md (be, op, i, in[i], dt, &mds[i], error);
  attr = ok ? cpu_attr_new (op, EE_ACT_NONE, 1.0f, error) : NULL;
  /* No destination layout: oneDNN picks one that suits the sources. */
  ok = attr
       && CPU_CHECK (op, error, dnnl_concat_primitive_desc_create, &pd, NULL, n,
                     1, mds, attr, be->engine)
       && cpu_prim_create (be, op, &op->main, pd, n + 1, error);
  for (int i = 0; ok && i < n; i++)
    ok = bind_src (be, op, i, DNNL_ARG_MULTIPLE_SRC + i, &mds[i], error);
  ok = ok && bind_dst (be, op, query (pd, dnnl_query_dst_md), error);
  if (ok)
    cpu_out_from_md (op, query (pd, dnnl_query_dst_md), out);
  if (pd)
    dnnl_primitive_desc_destroy (pd);
  if (attr)
    dnnl_primitive_attr_destroy (attr);
  g_free (mds);
  return ok;
}

EE_OP_BUILDER (CpuBackend, cpu_reorder_new)
{
  const EeTensorDesc *x = in[0];
  dnnl_memory_desc_t x_md, dst_md;
  dnnl_primitive_attr_t attr;
  dnnl_primitive_desc_t pd = NULL;
  gboolean ok;

  /* Always plain fp32: what the host and plain consumers read. */
  cpu_md_dense (x->ndim, x->shape, dnnl_f32, &dst_md);
  if (!cpu_md_of (op, x, &x_md, error))
    return FALSE;
  attr = cpu_attr_new (op, EE_ACT_NONE, 1.0f / op->in[0].have_scale, error);
  ok = attr
       && CPU_CHECK (op, error, dnnl_reorder_primitive_desc_create, &pd, &x_md,
                     be->engine, &dst_md, be->engine, attr)
       && cpu_prim_create (be, op, &op->main, pd, 2, error)
       && bind_src (be, op, 0, DNNL_ARG_FROM, &x_md, error)
       && bind_dst (be, op, &dst_md, error);
  if (ok)
    *out = ee_tensor_desc_plain (EE_DTYPE_F32, x->ndim, x->shape);
  if (pd)
    dnnl_primitive_desc_destroy (pd);
  if (attr)
    dnnl_primitive_attr_destroy (attr);
  return ok;
}
