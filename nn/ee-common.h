/* gst-earlyexit: common definitions of the inference runtime.
 *
 * Errors are reported through GError in the EE_ERROR domain; no runtime
 * function aborts or exits, because the runtime lives inside a host application
 * (a GStreamer pipeline) that must survive a bad model file or a missing
 * device. */
#ifndef EE_COMMON_H
#define EE_COMMON_H

#include <glib.h>
#include <stdint.h>
#include <stddef.h>

G_BEGIN_DECLS

#define EE_ERROR (ee_error_quark ())
GQuark ee_error_quark (void);

typedef enum
{
  EE_ERROR_FILE,        /* cannot open, map or read a file */
  EE_ERROR_FORMAT,      /* a file is malformed: the message names the field */
  EE_ERROR_UNSUPPORTED, /* well formed, but asks for something not implemented
                         */
  EE_ERROR_ARGUMENT, /* a caller passed an out-of-range or inconsistent value */
  EE_ERROR_BACKEND,  /* the backend library (oneDNN, CUDA) failed */
  EE_ERROR_NO_MEMORY, /* an allocation of backend memory failed */
  EE_ERROR_CONFLICT,  /* a shared resource is in use with other settings */
} EeErrorCode;

G_END_DECLS
#endif /* EE_COMMON_H */
