/* gst-earlyexit: tensor descriptions. */
#include "ee-tensor.h"

#include <stdio.h>

size_t
ee_dtype_size (EeDType dtype)
{
  switch (dtype) {
    case EE_DTYPE_F32:
      return 4;
    case EE_DTYPE_F16:
    case EE_DTYPE_BF16:
      return 2;
    case EE_DTYPE_U8:
    case EE_DTYPE_S8:
      return 1;
  }
  return 4;
}

const char *
ee_dtype_name (EeDType dtype)
{
  switch (dtype) {
    case EE_DTYPE_F32:
      return "F32";
    case EE_DTYPE_F16:
      return "F16";
    case EE_DTYPE_BF16:
      return "BF16";
    case EE_DTYPE_U8:
      return "U8";
    case EE_DTYPE_S8:
      return "S8";
  }
  return "?";
}

EeTensorDesc
ee_tensor_desc_plain (EeDType dtype, int ndim, const int64_t *shape)
{
  EeTensorDesc d = { 0 };
  int64_t s = 1;

  g_return_val_if_fail (ndim >= 1 && ndim <= EE_MAX_DIMS, d);
  d.dtype = dtype;
  d.ndim = ndim;
  d.layout = EE_LAYOUT_PLAIN;
  for (int i = ndim - 1; i >= 0; i--) {
    d.shape[i] = shape[i];
    d.stride[i] = s;
    s *= shape[i];
  }
  d.nbytes = (size_t)s * ee_dtype_size (dtype);
  return d;
}

EeTensorDesc
ee_tensor_desc_nchw (int64_t n, int64_t c, int64_t h, int64_t w)
{
  const int64_t shape[4] = { n, c, h, w };
  return ee_tensor_desc_plain (EE_DTYPE_F32, 4, shape);
}

int64_t
ee_tensor_desc_numel (const EeTensorDesc *desc)
{
  int64_t n = 1;
  for (int i = 0; i < desc->ndim; i++)
    n *= desc->shape[i];
  return n;
}

gboolean
ee_tensor_desc_is_contiguous (const EeTensorDesc *desc)
{
  int64_t s = 1;

  if (desc->layout != EE_LAYOUT_PLAIN)
    return FALSE;
  for (int i = desc->ndim - 1; i >= 0; i--) {
    if (desc->shape[i] != 1 && desc->stride[i] != s)
      return FALSE;
    s *= desc->shape[i];
  }
  return TRUE;
}

const char *
ee_tensor_desc_shape_str (const EeTensorDesc *desc, char *buf, size_t len)
{
  size_t used = 0;

  buf[0] = '\0';
  for (int i = 0; i < desc->ndim && used < len; i++)
    used += (size_t)snprintf (buf + used, len - used, "%s%" G_GINT64_FORMAT,
                              i ? "x" : "", desc->shape[i]);
  return buf;
}
