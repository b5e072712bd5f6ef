/* gst-earlyexit: backend selection and the CUDA module loader.
 *
 * Before the module is opened, the CUDA driver (libcuda.so.1) is asked
 * whether there is a device: the module pulls in the CUDA runtime, cuDNN and
 * cuBLAS, about 150 MB of memory, which a machine without a GPU should not
 * pay for device=auto. The module is opened once per process and kept
 * resident: unloading the CUDA runtime while its threads may still run is
 * not safe, and a failed probe or load is remembered so that "auto" does not
 * retry it for every backend.
 *
 * Nothing here prints: why "auto" chose the CPU goes to the GLib debug log
 * (domain "earlyexit", shown with G_MESSAGES_DEBUG=earlyexit) and is kept for
 * callers to log their own way (ee_backend_auto_cpu_reason; the elements
 * log it in their debug category). */
#define G_LOG_DOMAIN "earlyexit"

#include "ee-backend-select.h"
#include "ee-backend-cuda.h"

#include <gmodule.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const char *const precision_names[] = {
  [EE_PRECISION_FP32] = "fp32", [EE_PRECISION_TF32] = "tf32",
  [EE_PRECISION_FP16] = "fp16", [EE_PRECISION_BF16] = "bf16",
  [EE_PRECISION_INT8] = "int8",
};

gboolean
ee_precision_from_string (const char *name, EePrecision *precision)
{
  for (guint i = 0; name && i < G_N_ELEMENTS (precision_names); i++) {
    if (g_ascii_strcasecmp (name, precision_names[i]) == 0) {
      *precision = (EePrecision)i;
      return TRUE;
    }
  }
  return FALSE;
}

const char *
ee_precision_name (EePrecision precision)
{
  return precision >= EE_PRECISION_FP32 && precision <= EE_PRECISION_INT8
             ? precision_names[precision]
             : "?";
}

/* ---- the CUDA module ---- */

typedef struct
{
  gboolean tried;
  /* why CUDA is unusable, once tried (failed). In static storage, not a
   * GError: a block the process keeps to its end would show as a leak in
   * valgrind's check of the tests (make check-valgrind). */
  gboolean failed;
  int code;
  char message[512];
  EeCudaNewFunc new_backend;
  EeCudaHostAllocFunc host_alloc;
  EeCudaHostFreeFunc host_free;
  EeCudaPreprocessFunc preprocess;
} CudaModule;

static CudaModule cuda_module;
/* why the last "auto" fell back to the CPU ("": none did); under the same
 * lock */
static char auto_cpu_reason[512];
G_LOCK_DEFINE_STATIC (cuda_module);

static void module_fail (CudaModule *m, int code, const char *format, ...)
    G_GNUC_PRINTF (3, 4);

static void
module_fail (CudaModule *m, int code, const char *format, ...)
{
  va_list ap;

  va_start (ap, format);
  g_vsnprintf (m->message, sizeof m->message, format, ap);
  va_end (ap);
  m->code = code;
  m->failed = TRUE;
}

#ifdef EE_HAVE_CUDA
static const char *
module_path (void)
{
  const char *env = g_getenv ("EE_CUDA_MODULE");

  if (env && *env)
    return env;
  if (g_file_test (EE_CUDA_MODULE_PATH, G_FILE_TEST_EXISTS))
    return EE_CUDA_MODULE_PATH;
  return EE_CUDA_MODULE_BUILD_PATH;
}

/* The CUDA driver API's entry points used by the probe (cuda.h's
 * signatures; CUresult is an int, 0 = CUDA_SUCCESS). */
typedef int (*CuInitFunc) (unsigned int flags);
typedef int (*CuDeviceGetCountFunc) (int *count);
typedef int (*CuGetErrorStringFunc) (int error, const char **str);

#define CUDA_DRIVER_LIBRARY "libcuda.so.1"
#define CU_ERROR_NO_DEVICE 100 /* CUDA_ERROR_NO_DEVICE */

/* Asks the CUDA driver for devices, without the CUDA runtime, cuDNN or
 * cuBLAS: FALSE with m failed when there is no driver, the driver fails
 * or it has no device. The driver library stays loaded only when there is a
 * device (the module needs it then). */
static gboolean
driver_has_device (CudaModule *m)
{
  GModule *lib = g_module_open (CUDA_DRIVER_LIBRARY,
                                G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL);
  CuInitFunc cu_init;
  CuDeviceGetCountFunc cu_count;
  CuGetErrorStringFunc cu_error_string;
  const char *what = NULL;
  int st, count = 0;

  if (!lib) {
    module_fail (m, EE_ERROR_BACKEND,
                 "no CUDA driver (%s cannot be loaded: %s)",
                 CUDA_DRIVER_LIBRARY, g_module_error ());
    return FALSE;
  }
  if (!g_module_symbol (lib, "cuInit", (gpointer *)&cu_init)
      || !g_module_symbol (lib, "cuDeviceGetCount", (gpointer *)&cu_count)) {
    module_fail (m, EE_ERROR_BACKEND,
                 "the CUDA driver %s lacks cuInit or cuDeviceGetCount",
                 CUDA_DRIVER_LIBRARY);
    g_module_close (lib);
    return FALSE;
  }
  st = cu_init (0);
  if (st == 0)
    st = cu_count (&count);
  if (st == 0 && count > 0) {
    g_module_make_resident (lib);
    return TRUE;
  }
  if (st == CU_ERROR_NO_DEVICE || (st == 0 && count == 0)) {
    module_fail (m, EE_ERROR_BACKEND, "no CUDA device (the driver found none)");
  } else {
    if (g_module_symbol (lib, "cuGetErrorString", (gpointer *)&cu_error_string))
      cu_error_string (st, &what);
    module_fail (m, EE_ERROR_BACKEND,
                 "no usable CUDA device (the driver's cuInit failed: %s, "
                 "error %d)",
                 what ? what : "unknown error", st);
  }
  g_module_close (lib);
  return FALSE;
}

static void
module_open (CudaModule *m)
{
  const char *path = module_path ();
  GModule *mod = g_module_open (path, G_MODULE_BIND_LAZY | G_MODULE_BIND_LOCAL);
  const struct
  {
    const char *name;
    gpointer *dst;
  } symbols[] = {
    { "ee_backend_cuda_module_new", (gpointer *)&m->new_backend },
    { "ee_backend_cuda_host_alloc", (gpointer *)&m->host_alloc },
    { "ee_backend_cuda_host_free", (gpointer *)&m->host_free },
    { "ee_backend_cuda_preprocess", (gpointer *)&m->preprocess },
  };

  if (!mod) {
    module_fail (m, EE_ERROR_BACKEND,
                 "the CUDA backend module cannot be loaded: %s",
                 g_module_error ());
    return;
  }
  for (guint i = 0; i < G_N_ELEMENTS (symbols); i++) {
    if (!g_module_symbol (mod, symbols[i].name, symbols[i].dst)) {
      module_fail (
          m, EE_ERROR_BACKEND,
          "the CUDA backend module %s lacks %s (a module of another version?)",
          path, symbols[i].name);
      g_module_close (mod);
      return;
    }
  }
  g_module_make_resident (mod);
}
#endif

/* The module's entry points, or NULL with *error set. */
static const CudaModule *
cuda_module_get (GError **error)
{
  const CudaModule *m = &cuda_module;

  G_LOCK (cuda_module);
  if (!cuda_module.tried) {
    cuda_module.tried = TRUE;
#ifdef EE_HAVE_CUDA
    /* a module that is not there is not worth asking the driver about (and
     * EE_CUDA_MODULE naming none keeps the driver out, as under valgrind) */
    if (!g_file_test (module_path (), G_FILE_TEST_EXISTS))
      module_fail (&cuda_module, EE_ERROR_BACKEND,
                   "the CUDA backend module %s does not exist", module_path ());
    else if (driver_has_device (&cuda_module))
      module_open (&cuda_module);
#else
    module_fail (&cuda_module, EE_ERROR_UNSUPPORTED,
                 "CUDA backend not built (configure with -Dcuda=enabled on a "
                 "machine with the CUDA toolkit and cuDNN)");
#endif
  }
  G_UNLOCK (cuda_module);
  if (m->failed) {
    g_set_error_literal (error, EE_ERROR, m->code, m->message);
    return NULL;
  }
  return m;
}

gchar *
ee_backend_auto_cpu_reason (void)
{
  gchar *reason;

  G_LOCK (cuda_module);
  reason = auto_cpu_reason[0] ? g_strdup (auto_cpu_reason) : NULL;
  G_UNLOCK (cuda_module);
  return reason;
}

/* ---- creating backends ---- */

/* "cuda" -> 0, "cuda:N" -> N; -1 for anything else. */
static int
cuda_device_index (const char *device)
{
  guint64 n;

  if (strcmp (device, "cuda") == 0)
    return 0;
  if (!g_str_has_prefix (device, "cuda:")
      || !g_ascii_string_to_unsigned (device + 5, 10, 0, G_MAXINT, &n, NULL))
    return -1;
  return (int)n;
}

static EeBackend *
cuda_new (int index, EePrecision precision, GError **error)
{
  const CudaModule *m = cuda_module_get (error);

  return m ? m->new_backend (index, (int)precision, error) : NULL;
}

EeBackend *
ee_backend_new_full (const char *device, int n_threads, EePrecision precision,
                     GError **error)
{
  GError *cuda_error = NULL;
  EeBackend *be;
  int index;

  if (precision < EE_PRECISION_FP32 || precision > EE_PRECISION_INT8) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT, "unknown precision %d",
                 (int)precision);
    return NULL;
  }
  /* int8 is the CPU's alone (oneDNN's VNNI convolutions). */
  if (precision == EE_PRECISION_INT8 && device && *device
      && strcmp (device, "auto") != 0 && strcmp (device, "cpu") != 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "precision int8 runs on the CPU only, not on device \"%s\" "
                 "(use device=cpu, or fp16/bf16 on CUDA)",
                 device);
    return NULL;
  }
  if (precision == EE_PRECISION_INT8)
    return ee_backend_cpu_new_full (n_threads, precision, error);
  if (!device || !*device || strcmp (device, "auto") == 0) {
    be = cuda_new (0, precision, &cuda_error);
    if (be) {
      g_debug ("device auto: using CUDA device 0 in %s",
               ee_precision_name (precision));
      return be;
    }
    /* The CPU in the precision asked for if it has it, else in fp32. Not
     * having a GPU is no fault: debug level, not a message. */
    be = ee_backend_cpu_new_full (n_threads, precision, NULL);
    if (!be)
      precision = EE_PRECISION_FP32;
    g_debug ("device auto: using the CPU in %s (%s)",
             ee_precision_name (precision), cuda_error->message);
    G_LOCK (cuda_module);
    g_strlcpy (auto_cpu_reason, cuda_error->message, sizeof auto_cpu_reason);
    G_UNLOCK (cuda_module);
    g_error_free (cuda_error);
    return be ? be : ee_backend_cpu_new_full (n_threads, precision, error);
  }
  if (strcmp (device, "cpu") == 0)
    return ee_backend_cpu_new_full (n_threads, precision, error);
  index = cuda_device_index (device);
  if (index < 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "unknown device \"%s\" (expected auto, cpu, cuda or cuda:N)",
                 device);
    return NULL;
  }
  return cuda_new (index, precision, error);
}

EeBackend *
ee_backend_new (const char *device, int n_threads, GError **error)
{
  return ee_backend_new_full (device, n_threads, EE_PRECISION_FP32, error);
}

gboolean
ee_backend_is_cuda (EeBackend *be)
{
  return be && strcmp (be->vt->name, "cuda") == 0;
}

/* ---- what only some backends offer ---- */

#define HOST_ALIGN 64

void *
ee_backend_host_alloc (EeBackend *be, size_t nbytes, GError **error)
{
  void *p = NULL;

  if (ee_backend_is_cuda (be))
    return cuda_module.host_alloc (be, nbytes, error);
  if (posix_memalign (&p, HOST_ALIGN, nbytes ? nbytes : HOST_ALIGN) != 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_NO_MEMORY,
                 "cannot allocate %zu bytes of host memory", nbytes);
    return NULL;
  }
  return p;
}

void
ee_backend_host_free (EeBackend *be, void *ptr)
{
  if (ee_backend_is_cuda (be))
    cuda_module.host_free (be, ptr);
  else
    free (ptr);
}

gboolean
ee_backend_preprocess_image (EeBackend *be, const guint8 *frame,
                             const EeImagePrep *prep, const EeTensor *out,
                             GError **error)
{
  if (!ee_backend_is_cuda (be)) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_UNSUPPORTED,
        "image preprocessing on the device needs a CUDA backend, not %s",
        be ? be->vt->name : "none");
    return FALSE;
  }
  return cuda_module.preprocess (be, frame, prep, out, error);
}
