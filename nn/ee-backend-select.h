/* gst-earlyexit: creating a backend by device name, and what only some
 * backends offer (page-locked host memory, image preprocessing on the GPU).
 *
 * The CUDA backend lives in its own module, libearlyexit-cuda.so, loaded
 * with GModule on first use, so the runtime and the plugin load and run on
 * machines without CUDA. The module is looked up at $EE_CUDA_MODULE, else at
 * its install path, else (uninstalled runs) in the build tree.
 *
 * Precision (CUDA): activations and weights are stored in the backend's
 * dtype (F32 for fp32/tf32, F16, BF16); matrix products and convolutions
 * accumulate in fp32. Host data crosses the boundary as F32: upload and
 * download copy bytes, every op accepts F32 inputs (graph inputs,
 * constants) and converts them on the device, and EE_OP_REORDER always
 * produces plain F32, so a graph output is F32 once a reorder has run (see
 * ee_graph_mark_output). */
#ifndef EE_BACKEND_SELECT_H
#define EE_BACKEND_SELECT_H

#include "ee-backend.h"

G_BEGIN_DECLS

/* device: "auto" (or NULL): CUDA device 0 when the CUDA driver reports a
 * device and the module loads, else the CPU, saying why at GLib debug level
 * (ee_backend_auto_cpu_reason gives the reason); "cpu"; "cuda"
 * (device 0) or "cuda:N". n_threads: CPU threads, <= 0 for all cores.
 * A precision the CPU lacks (see ee_backend_cpu_new_full) is
 * EE_ERROR_UNSUPPORTED with "cpu"; "auto" falling back to the CPU then
 * uses fp32. ee_backend_new is ee_backend_new_full in fp32. */
EeBackend *ee_backend_new (const char *device, int n_threads, GError **error);
EeBackend *ee_backend_new_full (const char *device, int n_threads,
                                EePrecision precision, GError **error);

gboolean ee_backend_is_cuda (EeBackend *be);

/* Why the last backend made for device "auto" is the CPU's: "no CUDA
 * driver (...)", "no CUDA device ...", a CUDA module that does not load, a
 * device it cannot use ...; NULL before any "auto" fell back to the CPU.
 * Free with g_free. For callers that log the choice their own way. */
gchar *ee_backend_auto_cpu_reason (void);

/* Host memory for upload and download. On CUDA it is page-locked: copies
 * run asynchronously without a staging copy. Elsewhere it is ordinary
 * aligned memory. Free with ee_backend_host_free on the same backend. */
void *ee_backend_host_alloc (EeBackend *be, size_t nbytes, GError **error);
void ee_backend_host_free (EeBackend *be, void *ptr);

typedef enum
{
  EE_PIXEL_RGB,  /* 3 bytes: R G B */
  EE_PIXEL_RGBX, /* 4 bytes: R G B x */
  EE_PIXEL_BGRX, /* 4 bytes: B G R x */
} EePixelFormat;

typedef struct
{
  EePixelFormat format;
  int width, height;     /* of the frame */
  int64_t row_stride;    /* bytes */
  float scale;           /* applied to the 0..255 values first */
  float mean[3], std[3]; /* per output channel R, G, B */
} EeImagePrep;

/* Enqueues: copy of the 8-bit frame (host memory; page-locked memory from
 * ee_backend_host_alloc makes the copy asynchronous) to the device, then a
 * bilinear resize (half-pixel centres, align_corners=False, no antialias)
 * to out's H x W with ((v * scale) - mean) / std per channel, written to out
 * (1,3,H,W), plain contiguous, F32 or the backend's dtype. The frame must
 * stay valid until a later event_sync/sync. CUDA backends only:
 * EE_ERROR_UNSUPPORTED elsewhere. */
gboolean ee_backend_preprocess_image (EeBackend *be, const guint8 *frame,
                                      const EeImagePrep *prep,
                                      const EeTensor *out, GError **error);

G_END_DECLS
#endif /* EE_BACKEND_SELECT_H */
