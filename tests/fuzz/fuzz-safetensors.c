/* gst-earlyexit: libFuzzer target for the safetensors reader.
 *
 * Any input must either be refused with an EE_ERROR or give tensors that all
 * lie inside the input, whose byte size matches their dtype and shape, and
 * that convert without reading past their end (AddressSanitizer watches the
 * reads). The same entry point runs over the seed corpus in the normal build
 * (fuzz-corpus.c), so a finding added to corpus/ stays a regression test. */
#include "ee-safetensors.h"

#include <stdlib.h>
#include <string.h>

/* A GLib critical (a g_return_if_fail that tripped) is a bug too. */
int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  g_log_set_always_fatal (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING);
  return 0;
}

static void
check (gboolean ok)
{
  if (!ok)
    abort ();
}

static void
touch_tensors (const EeSafetensors *st, const guint8 *data, size_t size)
{
  for (guint i = 0; i < ee_safetensors_n_tensors (st); i++) {
    const EeStTensor *t = ee_safetensors_tensor (st, i);
    const guint8 *p = t->data;
    float *dst;

    check (p >= data && t->nbytes <= size
           && p - data <= (ptrdiff_t)(size - t->nbytes));
    check (t->nbytes == (size_t)t->numel * ee_dtype_size (t->dtype));
    check (t->ndim >= 0 && t->ndim <= EE_ST_MAX_DIMS);
    check (ee_safetensors_find (st, t->name) == t);
    check (g_utf8_validate (t->name, -1, NULL));
    /* Exactly numel floats, so that an overrun is caught. */
    dst = malloc (t->numel * sizeof (float) + 1);
    check (dst != NULL);
    ee_st_tensor_to_f32 (t, dst);
    free (dst);
  }
}

static void
touch_metadata (const EeSafetensors *st)
{
  const char **keys = ee_safetensors_metadata_keys (st);

  for (guint i = 0; keys[i]; i++) {
    const char *v = ee_safetensors_metadata (st, keys[i]);
    check (v != NULL && g_utf8_validate (v, -1, NULL));
    check (!keys[i + 1] || strcmp (keys[i], keys[i + 1]) < 0);
  }
  g_free (keys);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  EeSafetensors *st = ee_safetensors_new_from_data (data, size, "fuzz", &error);

  if (!st) {
    check (error != NULL && error->domain == EE_ERROR && error->message[0]);
    g_error_free (error);
    return 0;
  }
  check (error == NULL);
  touch_tensors (st, data, size);
  touch_metadata (st);
  ee_safetensors_free (st);
  return 0;
}
