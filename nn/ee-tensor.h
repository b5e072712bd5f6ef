/* gst-earlyexit: tensor descriptions and views.
 *
 * A tensor is a view on backend memory: the data pointer belongs to a backend
 * (host memory for the CPU backend, device memory for CUDA) and is usually a
 * slice of the activation arena planned at model load. Shapes are NCHW for 4-d
 * tensors, (rows, cols) or (batch, rows, cols) for matrices. */
#ifndef EE_TENSOR_H
#define EE_TENSOR_H

#include "ee-common.h"

G_BEGIN_DECLS

#define EE_MAX_DIMS 4

typedef enum
{
  EE_DTYPE_F32,
  EE_DTYPE_F16,
  EE_DTYPE_BF16,
  EE_DTYPE_U8, /* quantised: the CPU backend's int8 convolutions */
  EE_DTYPE_S8,
} EeDType;

typedef enum
{
  /* Plain row-major with explicit strides (in elements): every op accepts it.
   */
  EE_LAYOUT_PLAIN,
  /* A backend-chosen layout (oneDNN blocked nChw16c, cuDNN NHWC, ...). Only the
   * backend that produced it understands it; `layout_desc` points to the
   * backend's own description, owned by the op that produced the tensor. Ops of
   * the same backend accept it as input; EE_OP_REORDER turns it into plain. */
  EE_LAYOUT_BACKEND,
} EeLayout;

typedef struct
{
  EeDType dtype;
  int ndim;
  int64_t shape[EE_MAX_DIMS];
  int64_t
      stride[EE_MAX_DIMS]; /* elements; meaningful for EE_LAYOUT_PLAIN only */
  EeLayout layout;
  const void *layout_desc; /* backend-owned; NULL for plain */
  size_t nbytes;           /* bytes this tensor occupies in its layout */
} EeTensorDesc;

typedef struct
{
  EeTensorDesc desc;
  void *data; /* backend memory */
} EeTensor;

size_t ee_dtype_size (EeDType dtype);
const char *ee_dtype_name (EeDType dtype);

/* A plain, contiguous (row-major) description of `ndim` dimensions. */
EeTensorDesc ee_tensor_desc_plain (EeDType dtype, int ndim,
                                   const int64_t *shape);
/* Convenience for 4-d NCHW f32. */
EeTensorDesc ee_tensor_desc_nchw (int64_t n, int64_t c, int64_t h, int64_t w);
int64_t ee_tensor_desc_numel (const EeTensorDesc *desc);
gboolean ee_tensor_desc_is_contiguous (const EeTensorDesc *desc);
/* "1x512x72x128" into buf; returns buf. */
const char *ee_tensor_desc_shape_str (const EeTensorDesc *desc, char *buf,
                                      size_t len);

G_END_DECLS
#endif /* EE_TENSOR_H */
