/* gst-earlyexit: raw audio of any format to the mono float samples a model
 * reads, for the audio elements.
 *
 * One EeAudioConv turns a run of contiguous raw audio (any GStreamer raw
 * format, rate, channel count and layout) into mono float samples at the
 * model's rate: the channels are averaged (as the reference feature code
 * does), then GstAudioConverter resamples with the Kaiser-windowed sinc of
 * GstAudioResampler at a quality from 0 to 10.
 *
 * Sample counting: output sample k of a run is the signal at time k / out_rate
 * after the run's first input sample, so a run that starts at running time t
 * puts its samples at t * out_rate + k. The resampler holds back a few
 * samples (its latency); ee_audio_conv_drain() computes them from silence
 * after the end, and the run's output then has exactly
 * round(in_frames * out_rate / in_rate) samples.
 *
 * The elements place runs on a sample grid of their own (a ring position,
 * a window grid): a run starts at a grid position (ee_audio_conv_restart),
 * its output sample k goes to that position + k, and its samples are handed
 * to the element's sink as they come out (ee_audio_conv_write). Finishing a
 * run (ee_audio_conv_finish) hands out the held-back samples and starts the
 * next run where this one ended, so contiguous audio stays contiguous across
 * a run's end, new caps included. */
#ifndef EE_AUDIOCONV_H
#define EE_AUDIOCONV_H

#include <gst/audio/audio.h>

G_BEGIN_DECLS

/* The default and the range of the `audio-resample-quality` property
 * (docs/features.md, "Resampling in the elements", measured the choice). */
#define EE_AUDIO_CONV_DEFAULT_QUALITY 5

/* The caps an audio pad of the elements takes: any raw audio, converted
 * inside. */
#define EE_AUDIO_CONV_CAPS                                                     \
  "audio/x-raw, format = (string) " GST_AUDIO_FORMATS_ALL ", "                 \
  "rate = (int) [ 1, MAX ], channels = (int) [ 1, MAX ], "                     \
  "layout = (string) { interleaved, non-interleaved }"

typedef struct _EeAudioConv EeAudioConv;

/* NULL and *error set when GstAudioConverter cannot convert `in`. */
EeAudioConv *ee_audio_conv_new (const GstAudioInfo *in, int out_rate,
                                int quality, GError **error);
/* Where converted samples go: n samples at grid position pos. */
typedef void (*EeAudioSink) (gpointer user_data, gint64 pos,
                             const float *samples, gsize n);

/* Caps on an audio pad: TRUE with *conv kept when it converts these caps
 * (NULL before the first); otherwise *conv is replaced by a converter for
 * `caps` to mono float at out_rate, giving its samples to sink, after the
 * old one's run was finished (ee_audio_conv_finish); the new runs start
 * where it ended. FALSE after posting a negotiation error on `element` that
 * names the caps that came and those that work (`who`: "avcrowdcount's
 * audio pad"). */
gboolean ee_audio_conv_set_caps (EeAudioConv **conv, GstElement *element,
                                 const char *who, GstCaps *caps, int out_rate,
                                 int quality, EeAudioSink sink,
                                 gpointer user_data);
void ee_audio_conv_free (EeAudioConv *conv);

const GstAudioInfo *ee_audio_conv_in_info (const EeAudioConv *conv);
/* Input frames the resampler needs beyond an output sample (its latency). */
gsize ee_audio_conv_latency (const EeAudioConv *conv);

/* Converts n_in frames given as `planes` (one for interleaved audio, one per
 * channel otherwise, as GstAudioBuffer maps them; NULL: silence). *out: the
 * new output samples, owned by conv and valid until the next call; returns
 * their number. FALSE on a conversion failure. */
gboolean ee_audio_conv_push (EeAudioConv *conv, gpointer *planes, gsize n_in,
                             const float **out, gsize *n_out);
/* Maps and converts one buffer (its samples, GAP buffers included as their
 * data) and gives what comes out to the sink at its grid position; FALSE
 * when it cannot be mapped or converted. */
gboolean ee_audio_conv_write (EeAudioConv *conv, GstBuffer *buf);
/* Ends the run: the held-back samples, so that the run's output has
 * round(in_frames * out_rate / in_rate) samples. Then starts a new run. */
void ee_audio_conv_drain (EeAudioConv *conv, const float **out, gsize *n_out);

/* Ends the run on the grid: the held-back samples go to the sink, and the
 * next run starts right after them. Nothing for NULL. */
void ee_audio_conv_finish (EeAudioConv *conv);
/* Forgets the run without output (flush, discontinuity); the next starts
 * at grid position pos. Nothing for NULL. */
void ee_audio_conv_restart (EeAudioConv *conv, gint64 pos);
/* The grid position where the run's next input begins: its start plus its
 * input at the output rate (0 for NULL). */
gint64 ee_audio_conv_next (const EeAudioConv *conv);

G_END_DECLS
#endif /* EE_AUDIOCONV_H */
