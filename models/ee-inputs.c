/* gst-earlyexit: model inputs from files (see ee-inputs.h). */
#include "ee-inputs.h"

#include <string.h>

#include "ee-media.h"
#include "ee-npy.h"

static gboolean
npy_expect (const char *path, int ndim, const int64_t *shape, float **data,
            GError **error)
{
  int got_ndim;
  int64_t got[EE_MAX_DIMS];
  gboolean same;

  *data = ee_npy_read_f32 (path, &got_ndim, got, error);
  if (!*data)
    return FALSE;
  same = got_ndim == ndim;
  for (int i = 0; same && i < ndim; i++)
    same = got[i] == shape[i];
  if (!same) {
    GString *g = g_string_new (NULL), *e = g_string_new (NULL);
    for (int i = 0; i < got_ndim; i++)
      g_string_append_printf (g, "%s%" G_GINT64_FORMAT, i ? "," : "", got[i]);
    for (int i = 0; i < ndim; i++)
      g_string_append_printf (e, "%s%" G_GINT64_FORMAT, i ? "," : "", shape[i]);
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s: shape (%s), the model needs (%s)", path, g->str, e->str);
    g_string_free (g, TRUE);
    g_string_free (e, TRUE);
    g_clear_pointer (data, g_free);
    return FALSE;
  }
  return TRUE;
}

float *
ee_input_image (EeModel *m, const char *path, GError **error)
{
  int w, h;
  float *out = NULL;
  EeImage img;

  ee_model_input_size (m, &w, &h);
  if (g_str_has_suffix (path, ".npy")) {
    const int64_t shape[4] = { 1, 3, h, w };
    npy_expect (path, 4, shape, &out, error);
    return out;
  }
  if (!ee_image_load (path, &img, error))
    return NULL;
  out = g_new (float, (gsize)3 * w * h);
  ee_preprocess_rgb8 (img.rgb, img.width, img.height, img.width * 3, 3,
                      ee_model_preprocess (m), w, h, out);
  ee_image_clear (&img);
  return out;
}

float *
ee_input_audio (const char *path, const EeFeatureParams *params,
                double *coverage, GError **error)
{
  EeFeatureParams vggish = ee_feature_default_params (EE_FEATURES_VGGISH);
  EeFeatureExtractor *fx = NULL;
  float *wav = NULL, *window = NULL, *out = NULL;
  gsize n, need;
  int rate;
  int64_t shape[4];

  *coverage = 1.0;
  fx = ee_feature_extractor_new (params ? params : &vggish, error);
  if (!fx)
    goto done;
  ee_feature_extractor_shape (fx, shape);
  if (g_str_has_suffix (path, ".npy")) {
    npy_expect (path, 4, shape, &out, error);
    goto done;
  }
  if (!(wav = ee_wav_read_mono (path, &rate, &n, error)))
    goto done;
  if (rate != ee_feature_extractor_sample_rate (fx)) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_ARGUMENT,
        "%s: sample rate %d Hz, the model needs %d Hz: resample first (e.g. "
        "sox IN.wav -r %d OUT.wav)",
        path, rate, ee_feature_extractor_sample_rate (fx),
        ee_feature_extractor_sample_rate (fx));
    goto done;
  }
  need = ee_feature_extractor_window (fx);
  window = g_new0 (float, need);
  memcpy (window, wav, MIN (n, need) * sizeof (float));
  *coverage = (double)MIN (n, need) / need;
  if (n < need)
    g_printerr ("warning: %s has %zu samples, zero-padded to "
                "%zu\n",
                path, n, need);
  out = g_new (float, shape[0] * shape[1] * shape[2] * shape[3]);
  if (!ee_feature_extractor_compute (fx, window, need, out, error))
    g_clear_pointer (&out, g_free);
done:
  g_free (window);
  g_free (wav);
  ee_feature_extractor_free (fx);
  return out;
}
