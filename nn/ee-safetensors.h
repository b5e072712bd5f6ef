/* gst-earlyexit: safetensors model files, mapped read-only and validated.
 *
 * Format: 8-byte little-endian header length L, L bytes of JSON, then the data
 * section. The JSON maps tensor names to {"dtype", "shape", "data_offsets": [b,
 * e]} (offsets relative to the data section) plus an optional "__metadata__"
 * object of string values. Opening validates everything before any tensor is
 * handed out: header length within the file, JSON well formed, known dtypes
 * (F32, F16, BF16), shapes of non-negative integers without overflow, byte
 * ranges inside the data section and equal to dtype size x element count, no
 * two tensors overlapping. A violation is an EE_ERROR_FORMAT error naming the
 * file and the field. */
#ifndef EE_SAFETENSORS_H
#define EE_SAFETENSORS_H

#include "ee-tensor.h"

G_BEGIN_DECLS

#define EE_ST_MAX_DIMS 8

typedef struct _EeSafetensors EeSafetensors;

typedef struct
{
  const char *name;
  EeDType dtype;
  int ndim;
  int64_t shape[EE_ST_MAX_DIMS];
  int64_t numel;
  const void *data; /* inside the read-only mapping; not aligned in general */
  size_t nbytes;
} EeStTensor;

/* Maps and validates `path`. */
EeSafetensors *ee_safetensors_open (const char *path, GError **error);
/* Validates an in-memory image (not copied: must outlive the handle). `name`
 * stands for the file in error messages. Used by the fuzz target and tests. */
EeSafetensors *ee_safetensors_new_from_data (const guint8 *data, gsize len,
                                             const char *name, GError **error);
void ee_safetensors_free (EeSafetensors *st);

const char *ee_safetensors_path (const EeSafetensors *st);
guint ee_safetensors_n_tensors (const EeSafetensors *st);
/* Tensors in data-offset order. */
const EeStTensor *ee_safetensors_tensor (const EeSafetensors *st, guint i);
const EeStTensor *ee_safetensors_find (const EeSafetensors *st,
                                       const char *name);
/* A "__metadata__" value, or NULL. */
const char *ee_safetensors_metadata (const EeSafetensors *st, const char *key);
/* All metadata keys, NULL-terminated, sorted; free with g_free (not the
 * strings). */
const char **ee_safetensors_metadata_keys (const EeSafetensors *st);

/* Copies a tensor into `dst` as float32 (converting F16/BF16). */
void ee_st_tensor_to_f32 (const EeStTensor *t, float *dst);
/* Looks up `name` and checks its shape equals `shape` (ndim dims): on mismatch
 * an error that names the tensor and gives got and expected shapes. */
const EeStTensor *ee_safetensors_get_checked (const EeSafetensors *st,
                                              const char *name, int ndim,
                                              const int64_t *shape,
                                              GError **error);

G_END_DECLS
#endif /* EE_SAFETENSORS_H */
