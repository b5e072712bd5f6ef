/* gst-earlyexit: backend selection and the CUDA module loader.
 *
 * The module is opened once per process and kept resident: unloading the
 * CUDA runtime while its threads may still run is not safe, and a failed
 * load is remembered so that "auto" does not retry it for every backend. */
#define G_LOG_DOMAIN "earlyexit"

#include "ee-backend-select.h"
#include "ee-backend-cuda.h"

#include <gmodule.h>
#include <stdlib.h>
#include <string.h>

static const char *const precision_names[] = {
  [EE_PRECISION_FP32] = "fp32",
  [EE_PRECISION_TF32] = "tf32",
  [EE_PRECISION_FP16] = "fp16",
  [EE_PRECISION_BF16] = "bf16",
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
  return precision >= EE_PRECISION_FP32 && precision <= EE_PRECISION_BF16
             ? precision_names[precision]
             : "?";
}

/* ---- the CUDA module ---- */

typedef struct
{
  gboolean tried;
  GError *error; /* why the module is unusable, once tried */
  EeCudaNewFunc new_backend;
  EeCudaHostAllocFunc host_alloc;
  EeCudaHostFreeFunc host_free;
  EeCudaPreprocessFunc preprocess;
} CudaModule;

static CudaModule cuda_module;
G_LOCK_DEFINE_STATIC (cuda_module);

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
    g_set_error (&m->error, EE_ERROR, EE_ERROR_BACKEND,
                 "the CUDA backend module cannot be loaded: %s",
                 g_module_error ());
    return;
  }
  for (guint i = 0; i < G_N_ELEMENTS (symbols); i++) {
    if (!g_module_symbol (mod, symbols[i].name, symbols[i].dst)) {
      g_set_error (
          &m->error, EE_ERROR, EE_ERROR_BACKEND,
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
    module_open (&cuda_module);
#else
    g_set_error (&cuda_module.error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "CUDA backend not built (configure with -Dcuda=enabled on a "
                 "machine with the CUDA toolkit and cuDNN)");
#endif
  }
  G_UNLOCK (cuda_module);
  if (m->error) {
    g_propagate_error (error, g_error_copy (m->error));
    return NULL;
  }
  return m;
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

  if (precision < EE_PRECISION_FP32 || precision > EE_PRECISION_BF16) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT, "unknown precision %d",
                 (int)precision);
    return NULL;
  }
  if (!device || !*device || strcmp (device, "auto") == 0) {
    be = cuda_new (0, precision, &cuda_error);
    if (be) {
      g_info ("device auto: using CUDA device 0 in %s",
              ee_precision_name (precision));
      return be;
    }
    /* The CPU in the precision asked for if it has it, else in fp32. */
    be = ee_backend_cpu_new_full (n_threads, precision, NULL);
    if (!be)
      precision = EE_PRECISION_FP32;
    g_message ("device auto: using the CPU in %s (%s)",
               ee_precision_name (precision), cuda_error->message);
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
