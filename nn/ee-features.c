/* gst-earlyexit: audio features (docs/models.md section 1) with FFTW3.
 *
 * Three kinds, each a fixed recipe; docs/features.md says the same for users.
 *
 * Common to all kinds
 * - The FFT runs in double precision (FFTW's fftw_*), not single. A float32 FFT
 *   has an absolute error of about 1e-7 times the frame's norm in every bin.
 * The log offsets below (0.01 and 1e-6) turn that into errors of 1e-3 (VGGish)
 * up to 1 (SC) on the log of the quiet bins of a sine sweep or a clipped tone,
 *   against a float64 reference; the VGGish reference itself (mel_features.py)
 *   computes in float64. A double FFT costs a few microseconds per frame.
 * - Windows, filterbanks and resize tables are computed in double at creation;
 *   samples are multiplied by the window in double; magnitudes, mel sums, logs,
 *   the resize and the normalisation stay in double; only the output is float.
 * - Hann windows are periodic, 0.5 - 0.5 cos (2 pi n / N), as numpy/TF/librosa
 *   build them for spectral analysis.
 * - Plans are made with FFTW_ESTIMATE: deterministic, so two extractors (or two
 *   runs) give bit-identical features; FFTW_MEASURE picks codelets by timing.
 *
 * VGGISH (docs/models.md 1.1, AudioSet mel_features.py): 16000 samples; frames
 * of 400 at hop 160 with no centring or padding (98 frames, the first 96 kept,
 * so the last 2 are not computed); periodic Hann 400, rfft of length 512
 * zero-padded at the end; magnitude; 64 HTK mel bands (1127 ln (1 + f / 700))
 * 125-7500 Hz, triangles in the mel domain, no area normalisation, DC weight 0;
 * log (mel + 0.01). Output (1, 1, 96, 64): rows are time, columns mel bands.
 * The params' log, size, mel scale and mean/std do not apply.
 *
 * SC (docs/models.md 1.2, as TensorFlow's tf.signal.stft (frame_length=255,
 * frame_step=128) of the Speech Commands tutorial): 16000 samples; frames of
 * 255 at hop 128 with no padding (124 frames); periodic Hann 255 (TF's
 * default); FFT length 256 (TF's next power of two), zero-padded at the end:
 * 129 bins; magnitude. Image rows are time (124), columns frequency (129, DC
 * first), as TF's (frames, bins) array. Then log (x + log_offset) if enabled,
 * bilinear resize to out_height x out_width, the one channel repeated to three,
 * and (x - mean[c]) / std[c] per channel.
 *
 * GTZAN (docs/models.md 1.3, librosa defaults): 66150 samples (3 s at 22050
 * Hz). Every channel is librosa.stft with n_fft = window length (so no
 * zero-padding inside the FFT, even for the odd 2205), center=True with zero
 * padding of n_fft / 2 on both sides (librosa >= 0.10's pad_mode="constant"),
 * periodic Hann; frames = 1 + (66150 + 2 (n_fft / 2) - n_fft) / hop.
 * - channel 0: n_fft 512, hop 256: 259 frames x 257 bins, magnitude (|stft|).
 * - channel 1: 128 mel bands of the power spectrum (melspectrogram's power=2),
 *   window 100 ms = 2205, hop 50 ms = 1102.5 -> 1102: 61 frames.
 * - channel 2: the same with window 50 ms = 1102.5 -> 1102, hop 25 ms = 551.25
 *   -> 551: 121 frames.
 *   Durations become samples as Python's int (round (ms * sr / 1000)) does:
 *   round half to even, which here equals truncation.
 * - mel filterbank as librosa.filters.mel (fmin 0, fmax sr / 2, norm "slaney"):
 *   band edges equally spaced on the Slaney scale (linear below 1 kHz,
 *   logarithmic above) or the HTK scale (2595 log10 (1 + f / 700)) when
 *   mel_scale is EE_MEL_HTK; triangles in Hz at bin frequencies k sr / n_fft;
 *   each triangle scaled by 2 / (upper edge - lower edge) in Hz, with both
 * scales.
 * - image rows are frequency (DC or the lowest band first), columns time, as
 *   librosa's (bins, frames) arrays; each channel log (x + log_offset) if
 *   enabled, resized, then normalised with its own mean/std.
 *
 * Resize: bilinear with half-pixel centres, as PyTorch's F.interpolate (mode=
 * "bilinear", align_corners=False, no antialias) and TF2's tf.image.resize: the
 * source coordinate of output i is (i + 0.5) in / out - 0.5, clamped below at
 * 0, the upper neighbour clamped to the last row or column. */
#include "ee-features.h"

#include <fftw3.h>
#include <math.h>
#include <string.h>

enum
{
  VGGISH_RATE = 16000,
  VGGISH_SAMPLES = 16000,
  VGGISH_WINDOW = 400, /* 25 ms */
  VGGISH_HOP = 160,    /* 10 ms */
  VGGISH_FFT = 512,
  VGGISH_MEL_BANDS = 64,
  VGGISH_FRAMES = 96, /* one 0.96 s example */

  SC_RATE = 16000,
  SC_SAMPLES = 16000,
  SC_WINDOW = 255,
  SC_HOP = 128,
  SC_FFT = 256,

  GTZAN_RATE = 22050,
  GTZAN_SAMPLES = 66150, /* 3 s */
  GTZAN_STFT_WINDOW = 512,
  GTZAN_STFT_HOP = 256,
  GTZAN_MEL_BANDS = 128,
  GTZAN_MEL_LONG_WINDOW = 2205,  /* 100 ms */
  GTZAN_MEL_LONG_HOP = 1102,     /* 50 ms */
  GTZAN_MEL_SHORT_WINDOW = 1102, /* 50 ms */
  GTZAN_MEL_SHORT_HOP = 551,     /* 25 ms */

  MAX_CHANNELS = 3,
  MAX_OUT_SIDE = 4096,
};

static const double VGGISH_MEL_LOW_HZ = 125.0;
static const double VGGISH_MEL_HIGH_HZ = 7500.0;
static const double VGGISH_LOG_OFFSET = 0.01;

/* FFTW's planner keeps global state; plan creation and destruction must not
 * run concurrently, while executing existing plans may. */
static GMutex fftw_planner_lock;

/* Framing, window and real FFT of one spectrogram. */
typedef struct
{
  int window; /* window (and frame) length in samples */
  int hop;
  int n_fft;             /* >= window; the FFT input is zero past the window */
  int n_bins;            /* n_fft / 2 + 1 */
  int pad;               /* zero samples assumed before the signal (centring) */
  int n_frames;          /* frames computed */
  double *hann;          /* (window) */
  double *fft_in;        /* (n_fft), fftw_malloc'd */
  fftw_complex *fft_out; /* (n_bins), fftw_malloc'd */
  double *spectrum;      /* (n_bins) |X| or |X|^2 of the current frame */
  fftw_plan plan;
} Stft;

/* A triangular filterbank stored sparsely: band b has count[b] weights for the
 * bins starting at first[b]; weights of all bands are concatenated. */
typedef struct
{
  int n_bands;
  int *first;
  int *count;
  double *weights;
} MelBank;

/* Bilinear source positions along one axis: out[i] = (1 - frac[i]) in[lo[i]]
 * + frac[i] in[hi[i]]. */
typedef struct
{
  int n_out;
  int *lo;
  int *hi;
  double *frac;
} ResizeAxis;

/* One output channel: a spectrogram image (rows x cols) before the resize. */
typedef struct
{
  Stft stft;
  MelBank mel;        /* n_bands == 0: the linear spectrum itself */
  gboolean power;     /* |X|^2 rather than |X| */
  gboolean freq_rows; /* rows are frequency (GTZAN) or time (VGGish, SC) */
  int rows, cols;
  double *image;          /* (rows, cols) */
  ResizeAxis resize_rows; /* unused by VGGish, which is not resized */
  ResizeAxis resize_cols;
} Channel;

struct _EeFeatureExtractor
{
  EeFeatureParams params;
  int sample_rate;
  gsize window;
  int n_channels; /* computed channels; SC repeats its one channel */
  Channel channel[MAX_CHANNELS];
  int64_t shape[4];
};

/* Mel scales. Slaney (librosa's default): linear below 1 kHz, 3 / 200 mel per
 * Hz, logarithmic above with 27 mel per factor 6.4 (Auditory Toolbox). */
static const double SLANEY_HZ_PER_MEL = 200.0 / 3.0;
static const double SLANEY_LOG_START_HZ = 1000.0;

static double
slaney_log_step (void)
{
  return log (6.4) / 27.0;
}

static double
hz_to_mel_slaney (double hz)
{
  const double log_start_mel = SLANEY_LOG_START_HZ / SLANEY_HZ_PER_MEL;

  if (hz < SLANEY_LOG_START_HZ)
    return hz / SLANEY_HZ_PER_MEL;
  return log_start_mel + log (hz / SLANEY_LOG_START_HZ) / slaney_log_step ();
}

static double
mel_to_hz_slaney (double mel)
{
  const double log_start_mel = SLANEY_LOG_START_HZ / SLANEY_HZ_PER_MEL;

  if (mel < log_start_mel)
    return mel * SLANEY_HZ_PER_MEL;
  return SLANEY_LOG_START_HZ * exp (slaney_log_step () * (mel - log_start_mel));
}

/* librosa's HTK formula; VGGish's 1127 ln (1 + f / 700) is the same scale up to
 * the rounding of 2595 / ln 10, which cancels where edges map back to Hz. */
static double
hz_to_mel_htk_librosa (double hz)
{
  return 2595.0 * log10 (1.0 + hz / 700.0);
}

static double
mel_to_hz_htk_librosa (double mel)
{
  return 700.0 * (pow (10.0, mel / 2595.0) - 1.0);
}

static double
hz_to_mel_vggish (double hz)
{
  return 1127.0 * log (1.0 + hz / 700.0);
}

static double
periodic_hann (int n, int length)
{
  return 0.5 - 0.5 * cos (2.0 * G_PI * n / length);
}

static gboolean
stft_init (Stft *s, int window, int hop, int n_fft, gboolean centre,
           int n_frames_max, gsize n_samples, GError **error)
{
  const int padded = (int)n_samples + (centre ? 2 * (n_fft / 2) : 0);

  s->window = window;
  s->hop = hop;
  s->n_fft = n_fft;
  s->n_bins = n_fft / 2 + 1;
  s->pad = centre ? n_fft / 2 : 0;
  s->n_frames = 1 + (padded - n_fft) / hop;
  if (n_frames_max > 0 && s->n_frames > n_frames_max)
    s->n_frames = n_frames_max;

  s->hann = g_new (double, window);
  for (int i = 0; i < window; i++)
    s->hann[i] = periodic_hann (i, window);
  s->spectrum = g_new (double, s->n_bins);
  s->fft_in = fftw_alloc_real (n_fft);
  s->fft_out = fftw_alloc_complex (s->n_bins);
  if (!s->fft_in || !s->fft_out) {
    g_set_error (error, EE_ERROR, EE_ERROR_NO_MEMORY,
                 "cannot allocate FFT buffers of %d points", n_fft);
    return FALSE;
  }
  /* The zero tail stays: an out-of-place r2c plan preserves its input. */
  memset (s->fft_in, 0, sizeof (double) * n_fft);

  g_mutex_lock (&fftw_planner_lock);
  s->plan = fftw_plan_dft_r2c_1d (n_fft, s->fft_in, s->fft_out,
                                  FFTW_ESTIMATE | FFTW_PRESERVE_INPUT);
  g_mutex_unlock (&fftw_planner_lock);
  if (!s->plan) {
    g_set_error (error, EE_ERROR, EE_ERROR_BACKEND,
                 "FFTW could not plan a real FFT of %d points", n_fft);
    return FALSE;
  }
  return TRUE;
}

static void
stft_clear (Stft *s)
{
  if (s->plan) {
    g_mutex_lock (&fftw_planner_lock);
    fftw_destroy_plan (s->plan);
    g_mutex_unlock (&fftw_planner_lock);
  }
  fftw_free (s->fft_in);
  fftw_free (s->fft_out);
  g_free (s->hann);
  g_free (s->spectrum);
}

/* Fills s->spectrum with |X| (or |X|^2) of frame t of x. */
static void
stft_frame (Stft *s, const float *x, gsize n, int t, gboolean power)
{
  const long start = (long)t * s->hop - s->pad;

  if (start >= 0 && start + s->window <= (long)n) {
    const float *frame = x + start;
    for (int i = 0; i < s->window; i++)
      s->fft_in[i] = frame[i] * s->hann[i];
  } else {
    for (int i = 0; i < s->window; i++) {
      const long j = start + i;
      s->fft_in[i] = (j >= 0 && j < (long)n) ? x[j] * s->hann[i] : 0.0;
    }
  }
  fftw_execute_dft_r2c (s->plan, s->fft_in, s->fft_out);

  for (int k = 0; k < s->n_bins; k++) {
    const double re = s->fft_out[k][0], im = s->fft_out[k][1];
    const double p = re * re + im * im;
    s->spectrum[k] = power ? p : sqrt (p);
  }
}

/* Keeps the non-zero span of each row of a dense (n_bands, n_bins) matrix. */
static void
mel_bank_from_dense (MelBank *mel, const double *dense, int n_bands, int n_bins)
{
  int total = 0;

  mel->n_bands = n_bands;
  mel->first = g_new0 (int, n_bands);
  mel->count = g_new0 (int, n_bands);
  for (int b = 0; b < n_bands; b++) {
    const double *row = dense + (gsize)b * n_bins;
    int lo = 0, hi = n_bins;
    while (lo < n_bins && row[lo] == 0.0)
      lo++;
    while (hi > lo && row[hi - 1] == 0.0)
      hi--;
    mel->first[b] = lo;
    mel->count[b] = hi - lo;
    total += hi - lo;
  }
  mel->weights = g_new (double, MAX (total, 1));
  total = 0;
  for (int b = 0; b < n_bands; b++) {
    memcpy (mel->weights + total, dense + (gsize)b * n_bins + mel->first[b],
            sizeof (double) * mel->count[b]);
    total += mel->count[b];
  }
}

/* VGGish: HTK mel, triangles in the mel domain between edges equally spaced
 * in mel, peak 1, DC weight 0 (mel_features.spectrogram_to_mel_matrix). */
static void
mel_bank_init_vggish (MelBank *mel, int n_bins, double rate)
{
  const double mel_lo = hz_to_mel_vggish (VGGISH_MEL_LOW_HZ);
  const double mel_hi = hz_to_mel_vggish (VGGISH_MEL_HIGH_HZ);
  const double step = (mel_hi - mel_lo) / (VGGISH_MEL_BANDS + 1);
  double *dense = g_malloc0_n (VGGISH_MEL_BANDS, n_bins * sizeof (double));

  for (int b = 0; b < VGGISH_MEL_BANDS; b++) {
    const double lower = mel_lo + b * step;
    const double centre = mel_lo + (b + 1) * step;
    const double upper = mel_lo + (b + 2) * step;
    for (int k = 1; k < n_bins; k++) {
      const double m = hz_to_mel_vggish (k * (rate / 2.0) / (n_bins - 1));
      const double rise = (m - lower) / (centre - lower);
      const double fall = (upper - m) / (upper - centre);
      dense[(gsize)b * n_bins + k] = MAX (0.0, MIN (rise, fall));
    }
  }
  mel_bank_from_dense (mel, dense, VGGISH_MEL_BANDS, n_bins);
  g_free (dense);
}

/* librosa.filters.mel (sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk,
 * norm="slaney"): triangles in Hz between mel-spaced edges, area-normalised. */
static void
mel_bank_init_librosa (MelBank *mel, int n_bands, int n_fft, double rate,
                       EeMelScale scale)
{
  const int n_bins = n_fft / 2 + 1;
  const gboolean htk = scale == EE_MEL_HTK;
  const double mel_max = htk ? hz_to_mel_htk_librosa (rate / 2.0)
                             : hz_to_mel_slaney (rate / 2.0);
  double *edges = g_new (double, n_bands + 2);
  double *dense = g_malloc0_n (n_bands, n_bins * sizeof (double));

  for (int i = 0; i < n_bands + 2; i++) {
    const double m = mel_max * i / (n_bands + 1);
    edges[i] = htk ? mel_to_hz_htk_librosa (m) : mel_to_hz_slaney (m);
  }
  for (int b = 0; b < n_bands; b++) {
    const double norm = 2.0 / (edges[b + 2] - edges[b]);
    for (int k = 0; k < n_bins; k++) {
      const double f = k * rate / n_fft;
      const double rise = (f - edges[b]) / (edges[b + 1] - edges[b]);
      const double fall = (edges[b + 2] - f) / (edges[b + 2] - edges[b + 1]);
      dense[(gsize)b * n_bins + k] = norm * MAX (0.0, MIN (rise, fall));
    }
  }
  mel_bank_from_dense (mel, dense, n_bands, n_bins);
  g_free (dense);
  g_free (edges);
}

static void
mel_bank_clear (MelBank *mel)
{
  g_free (mel->first);
  g_free (mel->count);
  g_free (mel->weights);
}

static void
resize_axis_init (ResizeAxis *r, int n_in, int n_out)
{
  const double scale = (double)n_in / n_out;

  r->n_out = n_out;
  r->lo = g_new (int, n_out);
  r->hi = g_new (int, n_out);
  r->frac = g_new (double, n_out);
  for (int i = 0; i < n_out; i++) {
    const double src = MAX ((i + 0.5) * scale - 0.5, 0.0);
    const int lo = MIN ((int)src, n_in - 1);
    r->lo[i] = lo;
    r->hi[i] = MIN (lo + 1, n_in - 1);
    r->frac[i] = src - lo;
  }
}

static void
resize_axis_clear (ResizeAxis *r)
{
  g_free (r->lo);
  g_free (r->hi);
  g_free (r->frac);
}

/* Sets up the image geometry once the STFT and filterbank are known. */
static void
channel_finish_init (Channel *c, gboolean freq_rows, gboolean power,
                     int out_height, int out_width)
{
  const int n_freq = c->mel.n_bands ? c->mel.n_bands : c->stft.n_bins;

  c->power = power;
  c->freq_rows = freq_rows;
  c->rows = freq_rows ? n_freq : c->stft.n_frames;
  c->cols = freq_rows ? c->stft.n_frames : n_freq;
  c->image = g_new (double, (gsize)c->rows * c->cols);
  if (out_height > 0) {
    resize_axis_init (&c->resize_rows, c->rows, out_height);
    resize_axis_init (&c->resize_cols, c->cols, out_width);
  }
}

static void
channel_clear (Channel *c)
{
  stft_clear (&c->stft);
  mel_bank_clear (&c->mel);
  resize_axis_clear (&c->resize_rows);
  resize_axis_clear (&c->resize_cols);
  g_free (c->image);
}

/* Computes the channel's spectrogram image (before log and resize). */
static void
channel_compute (Channel *c, const float *x, gsize n)
{
  Stft *s = &c->stft;
  const gsize time_stride = c->freq_rows ? 1 : (gsize)c->cols;
  const gsize freq_stride = c->freq_rows ? (gsize)c->cols : 1;

  for (int t = 0; t < s->n_frames; t++) {
    double *dst = c->image + t * time_stride;

    stft_frame (s, x, n, t, c->power);
    if (c->mel.n_bands == 0) {
      for (int k = 0; k < s->n_bins; k++)
        dst[k * freq_stride] = s->spectrum[k];
    } else {
      const double *w = c->mel.weights;
      for (int b = 0; b < c->mel.n_bands; b++) {
        const double *spec = s->spectrum + c->mel.first[b];
        double sum = 0.0;
        for (int k = 0; k < c->mel.count[b]; k++)
          sum += w[k] * spec[k];
        w += c->mel.count[b];
        dst[b * freq_stride] = sum;
      }
    }
  }
}

static void
image_log (double *image, gsize n, double offset)
{
  for (gsize i = 0; i < n; i++)
    image[i] = log (image[i] + offset);
}

/* Bilinear resize of the channel image into out (out_height, out_width),
 * normalised with mean and std. */
static void
channel_resize (const Channel *c, float *out, double mean, double std)
{
  const ResizeAxis *ry = &c->resize_rows, *rx = &c->resize_cols;

  for (int i = 0; i < ry->n_out; i++) {
    const double *top = c->image + (gsize)ry->lo[i] * c->cols;
    const double *bottom = c->image + (gsize)ry->hi[i] * c->cols;
    const double fy = ry->frac[i];
    float *dst = out + (gsize)i * rx->n_out;

    for (int j = 0; j < rx->n_out; j++) {
      const int lo = rx->lo[j], hi = rx->hi[j];
      const double fx = rx->frac[j];
      const double upper = (1.0 - fx) * top[lo] + fx * top[hi];
      const double lower = (1.0 - fx) * bottom[lo] + fx * bottom[hi];
      dst[j] = (float)((((1.0 - fy) * upper + fy * lower) - mean) / std);
    }
  }
}

EeFeatureParams
ee_feature_default_params (EeFeatureKind kind)
{
  EeFeatureParams p = {
    .kind = kind,
    .log = TRUE,
    .log_offset = 1e-6f,
    .mel_scale = EE_MEL_SLANEY,
    .out_height = 224,
    .out_width = 224,
    .mean = { 0.0f, 0.0f, 0.0f },
    .std = { 1.0f, 1.0f, 1.0f },
  };
  return p;
}

static const char *const kind_names[] = {
  [EE_FEATURES_VGGISH] = "vggish",
  [EE_FEATURES_SC] = "sc",
  [EE_FEATURES_GTZAN] = "gtzan",
};

gboolean
ee_feature_kind_from_string (const char *s, EeFeatureKind *kind)
{
  for (guint i = 0; s && i < G_N_ELEMENTS (kind_names); i++) {
    if (g_ascii_strcasecmp (s, kind_names[i]) == 0) {
      *kind = (EeFeatureKind)i;
      return TRUE;
    }
  }
  return FALSE;
}

const char *
ee_feature_kind_to_string (EeFeatureKind kind)
{
  return ((guint)kind < G_N_ELEMENTS (kind_names)) ? kind_names[kind] : "?";
}

static gboolean
check_params (const EeFeatureParams *p, GError **error)
{
  if ((guint)p->kind >= G_N_ELEMENTS (kind_names)) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT, "unknown feature kind %d",
                 (int)p->kind);
    return FALSE;
  }
  if (p->kind == EE_FEATURES_VGGISH)
    return TRUE;
  if (p->out_height < 1 || p->out_height > MAX_OUT_SIDE || p->out_width < 1
      || p->out_width > MAX_OUT_SIDE) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s features: output size %d x %d is outside 1..%d",
                 kind_names[p->kind], p->out_height, p->out_width,
                 MAX_OUT_SIDE);
    return FALSE;
  }
  if (p->log && !(p->log_offset > 0.0f && isfinite (p->log_offset))) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s features: log offset %g must be positive and finite "
                 "(log of a silent bin would be -inf)",
                 kind_names[p->kind], p->log_offset);
    return FALSE;
  }
  if (p->mel_scale != EE_MEL_HTK && p->mel_scale != EE_MEL_SLANEY) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s features: unknown mel scale %d", kind_names[p->kind],
                 (int)p->mel_scale);
    return FALSE;
  }
  for (int c = 0; c < MAX_CHANNELS; c++) {
    if (!isfinite (p->mean[c]) || !isfinite (p->std[c]) || p->std[c] == 0.0f) {
      g_set_error (
          error, EE_ERROR, EE_ERROR_ARGUMENT,
          "%s features: channel %d normalisation mean %g std %g; std must be "
          "finite and non-zero",
          kind_names[p->kind], c, p->mean[c], p->std[c]);
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
init_vggish (EeFeatureExtractor *fx, GError **error)
{
  Channel *c = &fx->channel[0];

  fx->sample_rate = VGGISH_RATE;
  fx->window = VGGISH_SAMPLES;
  fx->n_channels = 1;
  if (!stft_init (&c->stft, VGGISH_WINDOW, VGGISH_HOP, VGGISH_FFT, FALSE,
                  VGGISH_FRAMES, VGGISH_SAMPLES, error))
    return FALSE;
  mel_bank_init_vggish (&c->mel, c->stft.n_bins, VGGISH_RATE);
  channel_finish_init (c, FALSE, FALSE, 0, 0);
  fx->shape[1] = 1;
  fx->shape[2] = VGGISH_FRAMES;
  fx->shape[3] = VGGISH_MEL_BANDS;
  return TRUE;
}

static gboolean
init_sc (EeFeatureExtractor *fx, GError **error)
{
  Channel *c = &fx->channel[0];

  fx->sample_rate = SC_RATE;
  fx->window = SC_SAMPLES;
  fx->n_channels = 1;
  if (!stft_init (&c->stft, SC_WINDOW, SC_HOP, SC_FFT, FALSE, 0, SC_SAMPLES,
                  error))
    return FALSE;
  channel_finish_init (c, FALSE, FALSE, fx->params.out_height,
                       fx->params.out_width);
  fx->shape[1] = 3;
  return TRUE;
}

static gboolean
init_gtzan (EeFeatureExtractor *fx, GError **error)
{
  static const struct
  {
    int window, hop;
    gboolean mel;
  } recipe[MAX_CHANNELS] = {
    { GTZAN_STFT_WINDOW, GTZAN_STFT_HOP, FALSE },
    { GTZAN_MEL_LONG_WINDOW, GTZAN_MEL_LONG_HOP, TRUE },
    { GTZAN_MEL_SHORT_WINDOW, GTZAN_MEL_SHORT_HOP, TRUE },
  };

  fx->sample_rate = GTZAN_RATE;
  fx->window = GTZAN_SAMPLES;
  fx->n_channels = MAX_CHANNELS;
  for (int i = 0; i < MAX_CHANNELS; i++) {
    Channel *c = &fx->channel[i];
    if (!stft_init (&c->stft, recipe[i].window, recipe[i].hop, recipe[i].window,
                    TRUE, 0, GTZAN_SAMPLES, error))
      return FALSE;
    if (recipe[i].mel)
      mel_bank_init_librosa (&c->mel, GTZAN_MEL_BANDS, recipe[i].window,
                             GTZAN_RATE, fx->params.mel_scale);
    channel_finish_init (c, TRUE, recipe[i].mel, fx->params.out_height,
                         fx->params.out_width);
  }
  fx->shape[1] = 3;
  return TRUE;
}

EeFeatureExtractor *
ee_feature_extractor_new (const EeFeatureParams *params, GError **error)
{
  EeFeatureExtractor *fx;
  gboolean ok = FALSE;

  g_return_val_if_fail (params != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_params (params, error))
    return NULL;

  fx = g_new0 (EeFeatureExtractor, 1);
  fx->params = *params;
  fx->shape[0] = 1;
  fx->shape[2] = params->out_height;
  fx->shape[3] = params->out_width;
  switch (params->kind) {
    case EE_FEATURES_VGGISH:
      ok = init_vggish (fx, error);
      break;
    case EE_FEATURES_SC:
      ok = init_sc (fx, error);
      break;
    case EE_FEATURES_GTZAN:
      ok = init_gtzan (fx, error);
      break;
  }
  if (!ok) {
    ee_feature_extractor_free (fx);
    return NULL;
  }
  return fx;
}

void
ee_feature_extractor_free (EeFeatureExtractor *fx)
{
  if (!fx)
    return;
  for (int i = 0; i < MAX_CHANNELS; i++)
    channel_clear (&fx->channel[i]);
  g_free (fx);
}

int
ee_feature_extractor_sample_rate (const EeFeatureExtractor *fx)
{
  g_return_val_if_fail (fx != NULL, 0);
  return fx->sample_rate;
}

gsize
ee_feature_extractor_window (const EeFeatureExtractor *fx)
{
  g_return_val_if_fail (fx != NULL, 0);
  return fx->window;
}

void
ee_feature_extractor_shape (const EeFeatureExtractor *fx, int64_t shape[4])
{
  g_return_if_fail (fx != NULL);
  memcpy (shape, fx->shape, sizeof (fx->shape));
}

static void
compute_vggish (EeFeatureExtractor *fx, const float *samples, float *out)
{
  Channel *c = &fx->channel[0];
  const gsize n = (gsize)c->rows * c->cols;

  channel_compute (c, samples, fx->window);
  for (gsize i = 0; i < n; i++)
    out[i] = (float)log (c->image[i] + VGGISH_LOG_OFFSET);
}

static void
compute_resized (EeFeatureExtractor *fx, const float *samples, float *out)
{
  const EeFeatureParams *p = &fx->params;
  const gsize plane = (gsize)p->out_height * p->out_width;

  for (int i = 0; i < fx->n_channels; i++) {
    Channel *c = &fx->channel[i];
    channel_compute (c, samples, fx->window);
    if (p->log)
      image_log (c->image, (gsize)c->rows * c->cols, p->log_offset);
  }
  /* SC's single image is repeated; each copy has its own mean and std. */
  for (int i = 0; i < MAX_CHANNELS; i++) {
    const Channel *c = &fx->channel[MIN (i, fx->n_channels - 1)];
    channel_resize (c, out + i * plane, p->mean[i], p->std[i]);
  }
}

gboolean
ee_feature_extractor_compute (EeFeatureExtractor *fx, const float *samples,
                              gsize n_samples, float *out, GError **error)
{
  g_return_val_if_fail (fx != NULL, FALSE);
  g_return_val_if_fail (samples != NULL && out != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (n_samples != fx->window) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s features need a window of exactly %" G_GSIZE_FORMAT
                 " samples (%.2f s at %d Hz), got %" G_GSIZE_FORMAT,
                 kind_names[fx->params.kind], fx->window,
                 (double)fx->window / fx->sample_rate, fx->sample_rate,
                 n_samples);
    return FALSE;
  }
  if (fx->params.kind == EE_FEATURES_VGGISH)
    compute_vggish (fx, samples, out);
  else
    compute_resized (fx, samples, out);
  return TRUE;
}
