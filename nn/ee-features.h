/* gst-earlyexit: audio features with FFTW3 (double-precision FFT),
 * docs/models.md section 1.
 *
 * An extractor owns its FFTW plans (made once, under a global lock, because
 * FFTW planning is not thread-safe) and its work buffers. Different extractors
 * may compute concurrently from different threads; one extractor is used by one
 * thread at a time. */
#ifndef EE_FEATURES_H
#define EE_FEATURES_H

#include "ee-common.h"

G_BEGIN_DECLS

typedef enum
{
  /* 16 kHz, 1 s -> (1,1,96,64) log-mel (docs/models.md 1.1) */
  EE_FEATURES_VGGISH,
  /* 16 kHz, 1 s -> (1,3,H,W) spectrogram (docs/models.md 1.2) */
  EE_FEATURES_SC,
  /* 22050 Hz, 3 s -> (1,3,H,W) (docs/models.md 1.3) */
  EE_FEATURES_GTZAN,
} EeFeatureKind;

typedef enum
{
  EE_MEL_HTK,
  EE_MEL_SLANEY,
} EeMelScale;

typedef struct
{
  EeFeatureKind kind;
  gboolean log;              /* SC, GTZAN: log compression on (default TRUE) */
  float log_offset;          /* SC, GTZAN: log(x + log_offset), default 1e-6 */
  EeMelScale mel_scale;      /* GTZAN mel channels, default Slaney */
  int out_height, out_width; /* SC, GTZAN resize target, default 224 x 224 */
  float mean[3],
      std[3]; /* SC, GTZAN per-channel normalisation, default 0 / 1 */
} EeFeatureParams;

typedef struct _EeFeatureExtractor EeFeatureExtractor;

EeFeatureParams ee_feature_default_params (EeFeatureKind kind);
gboolean ee_feature_kind_from_string (const char *s, EeFeatureKind *kind);
const char *ee_feature_kind_to_string (EeFeatureKind kind);

EeFeatureExtractor *ee_feature_extractor_new (const EeFeatureParams *params,
                                              GError **error);
void ee_feature_extractor_free (EeFeatureExtractor *fx);
int ee_feature_extractor_sample_rate (const EeFeatureExtractor *fx);
/* Samples in one window (16000 for VGGISH and SC, 66150 for GTZAN). */
gsize ee_feature_extractor_window (const EeFeatureExtractor *fx);
/* Output shape, NCHW with N = 1. */
void ee_feature_extractor_shape (const EeFeatureExtractor *fx,
                                 int64_t shape[4]);
/* `n_samples` must equal the window; out holds the product of the shape. */
gboolean ee_feature_extractor_compute (EeFeatureExtractor *fx,
                                       const float *samples, gsize n_samples,
                                       float *out, GError **error);

G_END_DECLS
#endif /* EE_FEATURES_H */
