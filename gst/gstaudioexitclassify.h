/* gst-earlyexit: audio classification with early exits.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef __GST_AUDIO_EXIT_CLASSIFY_H__
#define __GST_AUDIO_EXIT_CLASSIFY_H__

#include <gst/audio/audio.h>

#include "gstearlyexitclassifier.h"
#include "ee-audioconv.h"
#include "ee-features.h"

G_BEGIN_DECLS

#define GST_TYPE_AUDIO_EXIT_CLASSIFY (gst_audio_exit_classify_get_type ())
G_DECLARE_FINAL_TYPE (GstAudioExitClassify, gst_audio_exit_classify, GST,
                      AUDIO_EXIT_CLASSIFY, GstEarlyExitClassifier);

struct _GstAudioExitClassify
{
  GstEarlyExitClassifier parent;

  /* property, protected by the object lock; READY-only, latched at start */
  GstClockTime prop_hop;
  gint prop_resample_quality;

  /* latched at start (model_ready), then fixed until stop */
  EeFeatureExtractor *fx;
  int rate;              /* the features' sample rate */
  gsize window;          /* samples per window */
  gsize hop;             /* samples from one window's start to the next */
  gint resample_quality; /* latched audio-resample-quality */

  /* streaming thread only */
  EeAudioConv *conv;   /* the caps to mono float at `rate`, on the grid: the
                        * next buffer should start at ee_audio_conv_next */
  float *samples;      /* one window, mono, for the features */
  float *acc;          /* mono samples [acc_start, acc_start + acc_len) */
  guint8 *acc_covered; /* per sample: 1 audio, 0 filled in */
  gsize acc_len, acc_cap;
  gint64 acc_start;
  gboolean started;      /* the sample grid below is set */
  GstClockTime base_pts; /* PTS of sample 0 */
  gint64 next_start;     /* start of the next window */
  gint64 done_end;       /* end of the last window classified */
};

GST_ELEMENT_REGISTER_DECLARE (audioexitclassify);

G_END_DECLS
#endif /* __GST_AUDIO_EXIT_CLASSIFY_H__ */
