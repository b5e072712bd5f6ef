/* gst-earlyexit test helper: resamples float32 .npy signals to mono 16 kHz (or
 * --out-rate) exactly as the audio elements do (gst/ee-audioconv.c:
 * GstAudioConverter, channels averaged, Kaiser resampler at --quality), for
 * resample_compare.py, which compares the log-mel features of the result with
 * those of the reference resampler (resampy kaiser_best).
 *
 *   resample-dump --rate R [--quality Q] [--out-rate R2] [--chunk N]
 *       IN.npy OUT.npy [IN.npy OUT.npy ...]
 *
 * prints, per file, the samples in and out and the CPU time of the
 * conversion (cpu-ms=).
 *
 * IN is (n,) mono or (n, channels) interleaved float32 at R Hz; it is fed in
 * chunks of N frames (default 1024) as buffers would arrive, then drained;
 * OUT gets the (m,) float32 samples, m = round(n * R2 / R). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ee-audioconv.h"
#include "ee-npy.h"

static gboolean
convert_one (int rate, int out_rate, int quality, gsize chunk, const char *in,
             const char *out, GError **error)
{
  int64_t shape[EE_MAX_DIMS];
  int ndim, channels;
  float *samples, *result;
  GstAudioInfo info;
  EeAudioConv *conv;
  gsize n, total = 0, cap;
  const float *o;
  gsize no;
  gboolean ok = TRUE;
  clock_t begin;

  samples = ee_npy_read_f32 (in, &ndim, shape, error);
  if (!samples)
    return FALSE;
  if (ndim != 1 && ndim != 2) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s: expected (n,) or (n, channels), not %d dimensions", in,
                 ndim);
    g_free (samples);
    return FALSE;
  }
  n = (gsize)shape[0];
  channels = ndim == 2 ? (int)shape[1] : 1;
  gst_audio_info_init (&info);
  gst_audio_info_set_format (&info, GST_AUDIO_FORMAT_F32, rate, channels, NULL);
  conv = ee_audio_conv_new (&info, out_rate, quality, error);
  if (!conv) {
    g_free (samples);
    return FALSE;
  }
  cap = (gsize)gst_util_uint64_scale_int_round (n, out_rate, rate) + 1;
  result = g_new0 (float, cap);
  begin = clock ();
  for (gsize i = 0; ok && i < n; i += chunk) {
    gpointer planes[1] = { samples + i * channels };
    ok = ee_audio_conv_push (conv, planes, MIN (chunk, n - i), &o, &no);
    if (ok) {
      g_assert (total + no <= cap);
      memcpy (result + total, o, no * sizeof (float));
      total += no;
    }
  }
  if (ok) {
    ee_audio_conv_drain (conv, &o, &no);
    g_assert (total + no <= cap);
    memcpy (result + total, o, no * sizeof (float));
    total += no;
    /* the CPU cost, for resample_compare.py's table */
    printf ("%s: %" G_GSIZE_FORMAT " -> %" G_GSIZE_FORMAT " samples, "
            "cpu-ms=%.3f\n",
            in, n, total, 1000.0 * (clock () - begin) / CLOCKS_PER_SEC);
    shape[0] = (int64_t)total;
    ok = ee_npy_write_f32 (out, result, 1, shape, error);
  } else {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "%s: GstAudioConverter failed", in);
  }
  ee_audio_conv_free (conv);
  g_free (result);
  g_free (samples);
  return ok;
}

int
main (int argc, char **argv)
{
  gint rate = 0, out_rate = 16000, quality = EE_AUDIO_CONV_DEFAULT_QUALITY;
  gint chunk = 1024;
  GOptionEntry entries[]
      = { { "rate", 0, 0, G_OPTION_ARG_INT, &rate, "Input rate (Hz)", "R" },
          { "out-rate", 0, 0, G_OPTION_ARG_INT, &out_rate, "Output rate (Hz)",
            "R" },
          { "quality", 0, 0, G_OPTION_ARG_INT, &quality,
            "Resampler quality 0..10", "Q" },
          { "chunk", 0, 0, G_OPTION_ARG_INT, &chunk, "Frames per push", "N" },
          { NULL } };
  GOptionContext *ctx = g_option_context_new ("IN.npy OUT.npy ...");
  GError *err = NULL;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &err) || rate <= 0
      || out_rate <= 0 || chunk <= 0 || quality < 0 || quality > 10 || argc < 3
      || (argc - 1) % 2 != 0) {
    fprintf (stderr,
             "usage: %s --rate R [--quality 0..10] IN.npy OUT.npy ...%s%s\n",
             argv[0], err ? ": " : "", err ? err->message : "");
    g_option_context_free (ctx);
    return 2;
  }
  g_option_context_free (ctx);
  gst_init (NULL, NULL);
  for (int i = 1; i + 1 < argc; i += 2)
    if (!convert_one (rate, out_rate, quality, (gsize)chunk, argv[i],
                      argv[i + 1], &err)) {
      fprintf (stderr, "resample-dump: %s\n", err->message);
      g_clear_error (&err);
      return 1;
    }
  return 0;
}
