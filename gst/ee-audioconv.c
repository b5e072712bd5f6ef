/* gst-earlyexit: raw audio of any format to mono float samples (see
 * ee-audioconv.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "ee-audioconv.h"

GST_DEBUG_CATEGORY_STATIC (ee_audio_conv_debug);
#define GST_CAT_DEFAULT ee_audio_conv_debug

struct _EeAudioConv
{
  GstAudioInfo in;
  int out_rate;
  GstAudioConverter *converter;
  float *out; /* output scratch */
  gsize out_cap;
  guint64 run_in, run_out;
  /* runs on the caller's grid (ee_audio_conv_set_caps) */
  gint64 start; /* grid position of the run's first output sample */
  EeAudioSink sink;
  gpointer sink_data;
};

static GstStructure *
make_config (const GstAudioInfo *in, int out_rate, int quality)
{
  GstStructure *config = gst_structure_new_empty ("ee-audio-conv");
  int channels = GST_AUDIO_INFO_CHANNELS (in);
  GValue matrix = G_VALUE_INIT, row = G_VALUE_INIT;

  gst_audio_resampler_options_set_quality (GST_AUDIO_RESAMPLER_METHOD_KAISER,
                                           quality, GST_AUDIO_INFO_RATE (in),
                                           out_rate, config);
  /* mono as the mean of the channels, whatever their positions (the
   * reference code averages them); no dither: the output is float */
  g_value_init (&matrix, GST_TYPE_ARRAY);
  g_value_init (&row, GST_TYPE_ARRAY);
  for (int c = 0; c < channels; c++) {
    GValue v = G_VALUE_INIT;
    g_value_init (&v, G_TYPE_FLOAT);
    g_value_set_float (&v, 1.0f / channels);
    gst_value_array_append_and_take_value (&row, &v);
  }
  gst_value_array_append_and_take_value (&matrix, &row);
  gst_structure_set (config, GST_AUDIO_CONVERTER_OPT_RESAMPLER_METHOD,
                     GST_TYPE_AUDIO_RESAMPLER_METHOD,
                     GST_AUDIO_RESAMPLER_METHOD_KAISER,
                     GST_AUDIO_CONVERTER_OPT_DITHER_METHOD,
                     GST_TYPE_AUDIO_DITHER_METHOD, GST_AUDIO_DITHER_NONE, NULL);
  gst_structure_take_value (config, GST_AUDIO_CONVERTER_OPT_MIX_MATRIX,
                            &matrix);
  return config;
}

gboolean
ee_audio_conv_set_caps (EeAudioConv **conv, GstElement *element,
                        const char *who, GstCaps *caps, int out_rate,
                        int quality, EeAudioSink sink, gpointer user_data)
{
  static gsize debug_once = 0;
  EeAudioConv *conv_new = NULL;
  GstAudioInfo info;
  GError *err = NULL;
  gchar *got;

  if (g_once_init_enter (&debug_once)) {
    GST_DEBUG_CATEGORY_INIT (ee_audio_conv_debug, "earlyexit-audioconv", 0,
                             "earlyexit audio conversion");
    g_once_init_leave (&debug_once, 1);
  }
  if (gst_audio_info_from_caps (&info, caps)) {
    if (*conv && gst_audio_info_is_equal (&info, &(*conv)->in))
      return TRUE;
    conv_new = ee_audio_conv_new (&info, out_rate, quality, &err);
  }
  if (!conv_new) {
    got = gst_caps_to_string (caps);
    GST_ELEMENT_ERROR (
        element, CORE, NEGOTIATION,
        ("%s cannot take the caps %s: it takes raw audio (audio/x-raw) of any "
         "sample format, rate, channel count and layout, with the format "
         "fields complete.",
         who, got),
        ("refused caps %" GST_PTR_FORMAT "%s%s", caps, err ? ": " : "",
         err ? err->message : ""));
    g_free (got);
    g_clear_error (&err);
    return FALSE;
  }
  conv_new->sink = sink;
  conv_new->sink_data = user_data;
  /* the old caps' audio held back goes out first; the grid goes on */
  ee_audio_conv_finish (*conv);
  conv_new->start = ee_audio_conv_next (*conv);
  ee_audio_conv_free (*conv);
  *conv = conv_new;
  GST_DEBUG_OBJECT (
      element,
      "%s: audio %s, %d channels at %d Hz -> mono at %d Hz "
      "(resampler quality %d, latency %" G_GSIZE_FORMAT " input samples)",
      who, GST_AUDIO_INFO_NAME (&info), GST_AUDIO_INFO_CHANNELS (&info),
      GST_AUDIO_INFO_RATE (&info), out_rate, quality,
      ee_audio_conv_latency (conv_new));
  return TRUE;
}

EeAudioConv *
ee_audio_conv_new (const GstAudioInfo *in, int out_rate, int quality,
                   GError **error)
{
  EeAudioConv *conv;
  GstAudioInfo out;

  g_return_val_if_fail (in != NULL && out_rate > 0, NULL);
  if (GST_AUDIO_INFO_RATE (in) <= 0 || GST_AUDIO_INFO_CHANNELS (in) <= 0
      || GST_AUDIO_INFO_FORMAT (in) == GST_AUDIO_FORMAT_UNKNOWN) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
                 "incomplete audio format");
    return NULL;
  }
  gst_audio_info_init (&out);
  gst_audio_info_set_format (&out, GST_AUDIO_FORMAT_F32, out_rate, 1, NULL);
  conv = g_new0 (EeAudioConv, 1);
  conv->in = *in;
  conv->out_rate = out_rate;
  conv->converter
      = gst_audio_converter_new (GST_AUDIO_CONVERTER_FLAG_NONE, &conv->in, &out,
                                 make_config (in, out_rate, quality));
  if (!conv->converter) {
    g_set_error (error, GST_CORE_ERROR, GST_CORE_ERROR_NEGOTIATION,
                 "GstAudioConverter cannot convert %s, %d channels at %d Hz "
                 "to mono F32 at %d Hz",
                 GST_AUDIO_INFO_NAME (in), GST_AUDIO_INFO_CHANNELS (in),
                 GST_AUDIO_INFO_RATE (in), out_rate);
    g_free (conv);
    return NULL;
  }
  return conv;
}

void
ee_audio_conv_free (EeAudioConv *conv)
{
  if (!conv)
    return;
  gst_audio_converter_free (conv->converter);
  g_free (conv->out);
  g_free (conv);
}

const GstAudioInfo *
ee_audio_conv_in_info (const EeAudioConv *conv)
{
  return &conv->in;
}

gsize
ee_audio_conv_latency (const EeAudioConv *conv)
{
  return gst_audio_converter_get_max_latency (conv->converter);
}

/* Forgets the run without output. */
static void
reset_run (EeAudioConv *conv)
{
  gst_audio_converter_reset (conv->converter);
  conv->run_in = conv->run_out = 0;
}

static float *
scratch (EeAudioConv *conv, gsize n)
{
  if (n > conv->out_cap) {
    conv->out_cap = MAX (n, 2 * conv->out_cap);
    conv->out = g_renew (float, conv->out, conv->out_cap);
  }
  return conv->out;
}

/* Output samples the run should have after `in_frames` input frames. */
static guint64
expected_out (const EeAudioConv *conv, guint64 in_frames)
{
  return gst_util_uint64_scale_int_round (in_frames, conv->out_rate,
                                          GST_AUDIO_INFO_RATE (&conv->in));
}

gboolean
ee_audio_conv_push (EeAudioConv *conv, gpointer *planes, gsize n_in,
                    const float **out, gsize *n_out)
{
  gsize n = gst_audio_converter_get_out_frames (conv->converter, n_in);
  gpointer outp[1];

  *out = NULL;
  *n_out = 0;
  if (n_in == 0)
    return TRUE;
  outp[0] = scratch (conv, MAX (n, 1));
  if (!gst_audio_converter_samples (conv->converter, 0, planes, n_in, outp, n))
    return FALSE;
  conv->run_in += n_in;
  /* never more than the input spans (the drain completes the run) */
  n = (gsize)MIN ((guint64)n,
                  expected_out (conv, conv->run_in)
                      - MIN (conv->run_out, expected_out (conv, conv->run_in)));
  conv->run_out += n;
  *out = conv->out;
  *n_out = n;
  return TRUE;
}

gboolean
ee_audio_conv_write (EeAudioConv *conv, GstBuffer *buf)
{
  GstAudioBuffer abuf;
  const float *out;
  gsize n;
  gboolean ok;

  if (!gst_audio_buffer_map (&abuf, &conv->in, buf, GST_MAP_READ))
    return FALSE;
  ok = ee_audio_conv_push (conv, abuf.planes, abuf.n_samples, &out, &n);
  gst_audio_buffer_unmap (&abuf);
  if (ok && n > 0)
    conv->sink (conv->sink_data, conv->start + (gint64)(conv->run_out - n), out,
                n);
  return ok;
}

/* Silence in `finfo`'s format, without ORC: GStreamer's own silence
 * (gst_audio_format_info_fill_silence, or the converter's for NULL input)
 * runs an ORC program that liborc 0.4.33 leaks on first use. */
static void
fill_silence (const GstAudioFormatInfo *finfo, guint8 *dest, gsize bytes)
{
  gsize width = MAX (GST_AUDIO_FORMAT_INFO_WIDTH (finfo) / 8, 1);
  gboolean zero = TRUE;

  for (gsize i = 0; i < width; i++)
    zero = zero && finfo->silence[i] == 0;
  if (zero) {
    memset (dest, 0, bytes);
    return;
  }
  for (gsize off = 0; off + width <= bytes; off += width)
    memcpy (dest + off, finfo->silence, width);
}

void
ee_audio_conv_drain (EeAudioConv *conv, const float **out, gsize *n_out)
{
  guint64 want = expected_out (conv, conv->run_in);
  gsize missing = want > conv->run_out ? (gsize)(want - conv->run_out) : 0;
  gsize latency = gst_audio_converter_get_max_latency (conv->converter);
  gsize got = 0;
  float *dst;

  *out = NULL;
  *n_out = 0;
  if (conv->run_in == 0 || missing == 0) {
    reset_run (conv);
    return;
  }
  dst = scratch (conv, missing);
  if (latency > 0) {
    /* feed silence in the input format until the held-back samples are
     * out */
    gsize n = gst_audio_converter_get_out_frames (conv->converter, latency);
    float *tmp = g_new (float, MAX (n, 1));
    gpointer outp[1] = { tmp };
    gboolean planar
        = GST_AUDIO_INFO_LAYOUT (&conv->in) == GST_AUDIO_LAYOUT_NON_INTERLEAVED;
    int n_planes = planar ? GST_AUDIO_INFO_CHANNELS (&conv->in) : 1;
    gsize plane_bytes = latency
                        * (planar ? (gsize)GST_AUDIO_INFO_BPS (&conv->in)
                                  : (gsize)GST_AUDIO_INFO_BPF (&conv->in));
    guint8 *silence = g_malloc (plane_bytes * n_planes);
    gpointer *inp = g_new (gpointer, n_planes);

    fill_silence (conv->in.finfo, silence, plane_bytes * n_planes);
    for (int i = 0; i < n_planes; i++)
      inp[i] = silence + i * plane_bytes;
    if (gst_audio_converter_samples (conv->converter, 0, inp, latency, outp,
                                     n)) {
      got = MIN (n, missing);
      memcpy (dst, tmp, got * sizeof (float));
    }
    g_free (inp);
    g_free (silence);
    g_free (tmp);
  }
  /* a resampler that held back less than the rounding asks: zeros */
  memset (dst + got, 0, (missing - got) * sizeof (float));
  *out = dst;
  *n_out = missing;
  reset_run (conv);
}

void
ee_audio_conv_finish (EeAudioConv *conv)
{
  const float *out;
  gint64 pos;
  gsize n;

  if (!conv)
    return;
  pos = conv->start + (gint64)conv->run_out;
  ee_audio_conv_drain (conv, &out, &n);
  if (n > 0)
    conv->sink (conv->sink_data, pos, out, n);
  conv->start = pos + (gint64)n;
}

void
ee_audio_conv_restart (EeAudioConv *conv, gint64 pos)
{
  if (!conv)
    return;
  reset_run (conv);
  conv->start = pos;
}

gint64
ee_audio_conv_next (const EeAudioConv *conv)
{
  return conv ? conv->start + (gint64)expected_out (conv, conv->run_in) : 0;
}
