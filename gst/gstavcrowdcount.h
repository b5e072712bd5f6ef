/* gst-earlyexit: audiovisual crowd counting with early exits.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef __GST_AVCROWDCOUNT_H__
#define __GST_AVCROWDCOUNT_H__

#include <gst/gst.h>
#include <gst/base/gstaggregator.h>
#include <gst/video/video.h>

#include "ee-audioconv.h"
#include "ee-audioring.h"
#include "ee-element.h"
#include "ee-result.h"
#include "ee-features.h"
#include "ee-model.h"
#include "ee-videoprep.h"

G_BEGIN_DECLS

#define GST_TYPE_AVCROWDCOUNT (gst_av_crowd_count_get_type ())
G_DECLARE_FINAL_TYPE (GstAvCrowdCount, gst_av_crowd_count, GST, AVCROWDCOUNT,
                      GstAggregator);

#define GST_AVCROWDCOUNT_MAX_EXITS EE_ELEMENT_MAX_EXITS

struct _GstAvCrowdCount
{
  GstAggregator parent;

  GstAggregatorPad *video_pad;
  GstAggregatorPad *audio_pad;

  /* the common properties, the engine and its stream, stats, QoS */
  EeElement ee;

  /* properties, protected by the object lock; prop_* are READY-only and
   * latched at READY->PAUSED */
  GstClockTime prop_window;
  gint prop_resample_quality;
  GstClockTime input_timeout;
  gboolean density_map;
  gchar *regions_text;     /* the regions property as last set validly */
  gchar *regions_file;     /* the regions-file property */
  EeRegions *regions;      /* parsed regions_text; NULL: none */
  GError *regions_error;   /* why the last regions given were refused */
  gdouble alert_threshold; /* whole-frame alert: > 0 its threshold */
  gdouble alert_clear;     /* < 0: 0.9 x alert_threshold */
  gboolean diagnostics;
  gboolean running; /* between a successful start and the stop */

  /* input-timeout watch: set from the pads' streaming threads and the
   * system clock's thread, object lock */
  gboolean video_seen, audio_seen; /* a buffer (or EOS) arrived */
  GstClockID stall_id[2];          /* [0] waits for audio, [1] for video */

  /* latched at READY->PAUSED, then fixed: read by the streaming thread
   * without locking */
  GstClockTime window;
  gsize window_samples;
  EeFeatureExtractor *fx;
  guint32 audio_exits;
  float *image;   /* (3, H, W) network input */
  float *samples; /* 1 s of audio, the window centred in it */
  float *logmel;  /* (1, 1, 96, 64) */
  int in_width, in_height;

  /* streaming state: the aggregate thread only */
  EeAudioRing *ring;
  EeAudioConv *conv;       /* the audio caps to 16 kHz mono float */
  gint resample_quality;   /* latched audio-resample-quality */
  gboolean untimed_warned; /* a frame without timestamp was warned about */
  gboolean audio_discont;  /* next audio buffer starts a new run */
  GstBuffer *stored_audio; /* queued head buffer already in the ring */
  GstVideoInfo vinfo;
  EeVideoPrep *prep;
  GstClockTime frame_duration; /* from the caps; NONE when unknown */
  guint64 frame_index;         /* frames since start or flush */
  EeAlertState alerts;         /* the regions' and the frame's (hysteresis) */

  /* latency answered: half window + deadline budget; object lock */
  GstClockTime latency;
};

GST_ELEMENT_REGISTER_DECLARE (avcrowdcount);

G_END_DECLS
#endif /* __GST_AVCROWDCOUNT_H__ */
