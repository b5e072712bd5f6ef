/* gst-earlyexit: layer helpers shared by the model builders. */
#include "ee-layers.h"

#include <stdarg.h>

void
ee_builder_init (EeBuilder *b, EeModel *m)
{
  b->m = m;
  b->r = m->runner;
  b->g = ee_runner_graph (m->runner);
  b->names = g_ptr_array_new_with_free_func (g_free);
  b->batch = MAX (m->batch, 1);
}

void
ee_builder_clear (EeBuilder *b)
{
  g_clear_pointer (&b->names, g_ptr_array_unref);
}

const char *
ee_build_name (EeBuilder *b, const char *fmt, ...)
{
  va_list ap;
  char *s;

  va_start (ap, fmt);
  s = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_ptr_array_add (b->names, s);
  return s;
}

int
ee_build_conv (EeBuilder *b, const char *prefix, int x, int64_t cin,
               int64_t cout, int k, int pad, int dil, EeActivation act,
               GError **error)
{
  const int64_t ws[4] = { cout, cin, k, k }, bs[1] = { cout };
  EeOpDesc d = ee_op_desc_init (EE_OP_CONV2D);

  if (x < 0)
    return -1;
  d.out_features = cout;
  d.kernel_size[0] = d.kernel_size[1] = k;
  d.pad[0] = d.pad[1] = pad;
  d.dilation[0] = d.dilation[1] = dil;
  d.act = act;
  if (!(d.weight = ee_model_tensor (
            b->m, ee_build_name (b, "%s.weight", prefix), 4, ws, error))
      || !(d.bias = ee_model_tensor (b->m, ee_build_name (b, "%s.bias", prefix),
                                     1, bs, error)))
    return -1;
  return ee_graph_op (b->g, prefix, &d, &x, 1, error);
}

int
ee_build_linear_with (EeBuilder *b, const char *name, int x, int64_t out,
                      const float *w, const float *bias, EeActivation act,
                      GError **error)
{
  EeOpDesc d = ee_op_desc_init (EE_OP_LINEAR);

  if (x < 0)
    return -1;
  d.out_features = out;
  d.weight = w;
  d.bias = bias;
  d.act = act;
  return ee_graph_op (b->g, name, &d, &x, 1, error);
}

int
ee_build_linear (EeBuilder *b, const char *prefix, int x, int64_t in,
                 int64_t out, EeActivation act, GError **error)
{
  const int64_t ws[2] = { out, in }, bs[1] = { out };
  const float *w, *bias;

  if (x < 0)
    return -1;
  if (!(w = ee_model_tensor (b->m, ee_build_name (b, "%s.weight", prefix), 2,
                             ws, error))
      || !(bias = ee_model_tensor (b->m, ee_build_name (b, "%s.bias", prefix),
                                   1, bs, error)))
    return -1;
  return ee_build_linear_with (b, prefix, x, out, w, bias, act, error);
}

int
ee_build_maxpool (EeBuilder *b, const char *name, int x, int k, GError **error)
{
  EeOpDesc d = ee_op_desc_init (EE_OP_MAXPOOL);

  if (x < 0)
    return -1;
  d.kernel[0] = d.kernel[1] = k;
  d.stride[0] = d.stride[1] = k;
  return ee_graph_op (b->g, name, &d, &x, 1, error);
}

int
ee_build_op (EeBuilder *b, const char *name, EeOpKind kind, const int *in,
             int n, GError **error)
{
  EeOpDesc d = ee_op_desc_init (kind);

  for (int i = 0; i < n; i++)
    if (in[i] < 0)
      return -1;
  return ee_graph_op (b->g, name, &d, in, n, error);
}

int
ee_build_reshape2 (EeBuilder *b, int x, int64_t a, int64_t c, GError **error)
{
  const int64_t s[2] = { a, c };
  return x < 0 ? -1 : ee_graph_reshape (b->g, x, 2, s, error);
}

int
ee_build_film (EeBuilder *b, const char *name, int x, int gb, int64_t ch,
               GError **error)
{
  const int64_t shape[2] = { b->batch, ch }, stride[2] = { 2 * ch, 1 };
  EeOpDesc d = ee_op_desc_init (EE_OP_FILM);
  int in[3] = { x, -1, -1 };

  if (x < 0 || gb < 0
      || (in[1] = ee_graph_view (b->g, gb, 2, shape, stride, 0, error)) < 0
      || (in[2] = ee_graph_view (b->g, gb, 2, shape, stride, ch, error)) < 0)
    return -1;
  d.act = EE_ACT_RELU;
  return ee_graph_op (b->g, name, &d, in, 3, error);
}
