/* gst-earlyexit: `earlyexit features`, audio features of a WAV file into .npy.
 *
 *   earlyexit features --kind vggish|sc|gtzan --audio IN.wav --out OUT.npy
 *       [--hop SAMPLES] [--height H] [--width W] [--mel-scale slaney|htk]
 *       [--no-log] [--log-offset X]
 *
 * The file is read with libsndfile (any format it knows; integer PCM becomes
 * float in [-1, 1) as int / 2^(bits-1)). Several channels are down-mixed by
 * averaging them, as librosa.load (mono=True) and the VGGish reference do. The
 * sample rate must be the kind's (16000 Hz, 22050 Hz for gtzan): resampling is
 * left to sox or audioresample, whose filters the user chooses knowingly.
 *
 * Windows: without --hop the first window only (a note on stderr says how much
 * audio is ignored); with --hop, one window every SAMPLES samples while a whole
 * window fits. A file shorter than one window is zero-padded at the end with a
 * warning, like the tail of a stream. The .npy holds (N, C, H, W) float32, one
 * row of N per window, without mean/std normalisation (a model file brings
 * its own).
 *
 * Exit status: 0 on success, 1 when the audio cannot be processed, 2 for a
 * usage error. */
#include <stdio.h>
#include <string.h>

#include "ee-cmds.h"
#include "ee-features.h"
#include "ee-media.h"
#include "ee-npy.h"

typedef struct
{
  char *kind;
  char *audio;
  char *out;
  int hop;
  int height;
  int width;
  char *mel_scale;
  gboolean no_log;
  double log_offset;
} Options;

static gboolean
make_params (const Options *o, EeFeatureParams *p, GError **error)
{
  EeFeatureKind kind;

  if (!o->kind || !ee_feature_kind_from_string (o->kind, &kind)) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "--kind must be vggish, sc or gtzan%s%s",
                 o->kind ? ", not " : "", o->kind ? o->kind : "");
    return FALSE;
  }
  *p = ee_feature_default_params (kind);
  if (o->height)
    p->out_height = o->height;
  if (o->width)
    p->out_width = o->width;
  p->log = !o->no_log;
  if (o->log_offset != 0.0)
    p->log_offset = (float)o->log_offset;
  if (o->mel_scale) {
    if (!g_ascii_strcasecmp (o->mel_scale, "htk")) {
      p->mel_scale = EE_MEL_HTK;
    } else if (!g_ascii_strcasecmp (o->mel_scale, "slaney")) {
      p->mel_scale = EE_MEL_SLANEY;
    } else {
      g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                   "--mel-scale must be slaney or htk, not %s", o->mel_scale);
      return FALSE;
    }
  }
  if (o->hop < 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "--hop must be a positive number of samples, not %d", o->hop);
    return FALSE;
  }
  return TRUE;
}

static gboolean
run (const Options *o, const EeFeatureParams *params, GError **error)
{
  const char *kind = ee_feature_kind_to_string (params->kind);
  EeFeatureExtractor *fx = NULL;
  float *samples = NULL, *features = NULL;
  gsize n = 0, window, n_windows, per_window;
  int rate = 0;
  int64_t shape[4];
  gboolean ok = FALSE;

  fx = ee_feature_extractor_new (params, error);
  if (!fx)
    goto out;
  samples = ee_wav_read_mono (o->audio, &rate, &n, error);
  if (!samples)
    goto out;
  if (rate != ee_feature_extractor_sample_rate (fx)) {
    const int need = ee_feature_extractor_sample_rate (fx);
    g_set_error (
        error, EE_ERROR, EE_ERROR_UNSUPPORTED,
        "%s is %d Hz, but %s features need %d Hz; resample it first, e.g. "
        "'sox %s -r %d OUT.wav' or 'gst-launch-1.0 filesrc location=%s ! "
        "decodebin ! audioconvert ! audioresample ! audio/x-raw,rate=%d ! "
        "wavenc ! filesink location=OUT.wav'",
        o->audio, rate, kind, need, o->audio, need, o->audio, need);
    goto out;
  }

  window = ee_feature_extractor_window (fx);
  if (n < window) {
    g_printerr ("earlyexit features: warning: %s has %.3f s, less than the "
                "%.3f s window of %s features; zero-padded at the end\n",
                o->audio, (double)n / rate, (double)window / rate, kind);
    samples = g_renew (float, samples, window);
    memset (samples + n, 0, (window - n) * sizeof (float));
    n = window;
  }
  if (o->hop > 0) {
    n_windows = 1 + (n - window) / o->hop;
  } else {
    n_windows = 1;
    if (n > window)
      g_printerr ("earlyexit features: note: using the first %.3f s of %.3f s;"
                  " --hop SAMPLES gives one tensor per hop\n",
                  (double)window / rate, (double)n / rate);
  }

  ee_feature_extractor_shape (fx, shape);
  per_window = (gsize)(shape[1] * shape[2] * shape[3]);
  /* g_try_malloc_n checks the product for overflow as well. */
  features = g_try_malloc_n (n_windows, per_window * sizeof (float));
  if (!features) {
    g_set_error (error, EE_ERROR, EE_ERROR_NO_MEMORY,
                 "no memory for %" G_GSIZE_FORMAT " windows of features; "
                 "use a larger --hop",
                 n_windows);
    goto out;
  }
  for (gsize w = 0; w < n_windows; w++)
    if (!ee_feature_extractor_compute (fx, samples + w * (gsize)o->hop, window,
                                       features + w * per_window, error))
      goto out;
  shape[0] = (int64_t)n_windows;
  ok = ee_npy_write_f32 (o->out, features, 4, shape, error);

out:
  g_free (features);
  g_free (samples);
  ee_feature_extractor_free (fx);
  return ok;
}

int
ee_cmd_features (int argc, char **argv)
{
  Options o = { 0 };
  const GOptionEntry entries[] = {
    { "kind", 'k', 0, G_OPTION_ARG_STRING, &o.kind,
      "Feature kind: vggish (16 kHz, 1 s -> 1x96x64 log-mel), sc (16 kHz, "
      "1 s -> 3xHxW spectrogram), gtzan (22050 Hz, 3 s -> 3xHxW)",
      "KIND" },
    { "audio", 'i', 0, G_OPTION_ARG_FILENAME, &o.audio,
      "Input audio file (WAV or any format libsndfile reads)", "IN.wav" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &o.out,
      "Output .npy file, float32 (N, C, H, W)", "OUT.npy" },
    { "hop", 0, 0, G_OPTION_ARG_INT, &o.hop,
      "One window every SAMPLES samples (default: the first window only)",
      "SAMPLES" },
    { "height", 0, 0, G_OPTION_ARG_INT, &o.height,
      "sc, gtzan: output height (default 224)", "H" },
    { "width", 0, 0, G_OPTION_ARG_INT, &o.width,
      "sc, gtzan: output width (default 224)", "W" },
    { "mel-scale", 0, 0, G_OPTION_ARG_STRING, &o.mel_scale,
      "gtzan: mel scale slaney (default) or htk", "SCALE" },
    { "no-log", 0, 0, G_OPTION_ARG_NONE, &o.no_log,
      "sc, gtzan: no log compression", NULL },
    { "log-offset", 0, 0, G_OPTION_ARG_DOUBLE, &o.log_offset,
      "sc, gtzan: log(x + X) (default 1e-6)", "X" },
    { NULL },
  };
  GOptionContext *ctx = g_option_context_new ("- audio features into .npy");
  EeFeatureParams params;
  GError *error = NULL;
  int status = 2;

  /* Usage lines then read "earlyexit features", not "features". */
  g_set_prgname ("earlyexit features");
  g_option_context_set_summary (
      ctx,
      "Computes the input features of a model from a WAV file (docs/models.md "
      "section 1,\ndocs/features.md). Channels are averaged to mono; the rate "
      "must be the kind's.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    goto out;
  if (argc > 1) {
    g_set_error (&error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "unexpected argument '%s'", argv[1]);
    goto out;
  }
  if (!o.audio || !o.out) {
    g_set_error (&error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "--audio and --out are required");
    goto out;
  }
  if (!make_params (&o, &params, &error))
    goto out;
  if (run (&o, &params, &error))
    status = 0;
  else if (!g_error_matches (error, EE_ERROR, EE_ERROR_ARGUMENT))
    status = 1;

out:
  if (error) {
    g_printerr ("earlyexit features: %s\n", error->message);
    if (status == 2)
      g_printerr ("Try 'earlyexit features --help'.\n");
  }
  g_clear_error (&error);
  g_option_context_free (ctx);
  g_free (o.kind);
  g_free (o.audio);
  g_free (o.out);
  g_free (o.mel_scale);
  return status;
}
