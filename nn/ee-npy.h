/* gst-earlyexit: NumPy .npy files of float32 (little-endian, C order), for the
 * command-line tool's tensors in and out. */
#ifndef EE_NPY_H
#define EE_NPY_H

#include "ee-tensor.h"

G_BEGIN_DECLS

gboolean ee_npy_write_f32 (const char *path, const float *data, int ndim,
                           const int64_t *shape, GError **error);
/* Reads a '<f4' (or '<f8', converted) C-order array of at most EE_MAX_DIMS
 * dims. Returns g_malloc'd data; fills ndim and shape. */
float *ee_npy_read_f32 (const char *path, int *ndim, int64_t shape[EE_MAX_DIMS],
                        GError **error);

G_END_DECLS
#endif /* EE_NPY_H */
