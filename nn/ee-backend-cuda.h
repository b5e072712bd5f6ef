/* gst-earlyexit: the entry points of the CUDA backend module
 * (libearlyexit-cuda.so). The runtime resolves them with g_module_symbol
 * (ee-backend-select.c); nothing else links the module. The types below
 * are the contract between the two. */
#ifndef EE_BACKEND_CUDA_H
#define EE_BACKEND_CUDA_H

#include "ee-backend-select.h"

#include <gmodule.h>

G_BEGIN_DECLS

/* precision: an EePrecision. Fails with "no usable CUDA device: ..." when
 * the driver, the device or cuDNN cannot be used. */
typedef EeBackend *(*EeCudaNewFunc) (int device, int precision, GError **error);
typedef void *(*EeCudaHostAllocFunc) (EeBackend *be, size_t nbytes,
                                      GError **error);
typedef void (*EeCudaHostFreeFunc) (EeBackend *be, void *ptr);
typedef gboolean (*EeCudaPreprocessFunc) (EeBackend *be, const guint8 *frame,
                                          const EeImagePrep *prep,
                                          const EeTensor *out, GError **error);

/* The module is built with hidden visibility: these are all it exports. */
G_MODULE_EXPORT EeBackend *
ee_backend_cuda_module_new (int device, int precision, GError **error);
G_MODULE_EXPORT void *ee_backend_cuda_host_alloc (EeBackend *be, size_t nbytes,
                                                  GError **error);
G_MODULE_EXPORT void ee_backend_cuda_host_free (EeBackend *be, void *ptr);
G_MODULE_EXPORT gboolean ee_backend_cuda_preprocess (EeBackend *be,
                                                     const guint8 *frame,
                                                     const EeImagePrep *prep,
                                                     const EeTensor *out,
                                                     GError **error);

G_END_DECLS
#endif /* EE_BACKEND_CUDA_H */
