/* gst-earlyexit: audiovisual crowd counting with early exits.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef __GST_AVCROWDCOUNT_H__
#define __GST_AVCROWDCOUNT_H__

#include <gst/gst.h>
#include <gst/base/gstaggregator.h>
#include <gst/video/video.h>

#include "ee-audioring.h"
#include "ee-deadline.h"
#include "ee-features.h"
#include "ee-model.h"
#include "ee-videoprep.h"

G_BEGIN_DECLS

#define GST_TYPE_AVCROWDCOUNT (gst_av_crowd_count_get_type ())
G_DECLARE_FINAL_TYPE (GstAvCrowdCount, gst_av_crowd_count, GST, AVCROWDCOUNT,
                      GstAggregator);

/**
 * GstAvCrowdCountPolicy:
 * @GST_AVCROWDCOUNT_POLICY_ANYTIME: the newest exit finished by the deadline
 * @GST_AVCROWDCOUNT_POLICY_FIXED: always exit max-exit (the last exit when -1)
 * @GST_AVCROWDCOUNT_POLICY_FULL: every exit up to max-exit, deadline ignored
 */
typedef enum
{
  GST_AVCROWDCOUNT_POLICY_ANYTIME,
  GST_AVCROWDCOUNT_POLICY_FIXED,
  GST_AVCROWDCOUNT_POLICY_FULL,
} GstAvCrowdCountPolicy;

/**
 * GstAvCrowdCountPrecision:
 * @GST_AVCROWDCOUNT_PRECISION_FP32: 32-bit float storage and arithmetic
 * @GST_AVCROWDCOUNT_PRECISION_TF32: fp32 storage, TF32 tensor cores (CUDA)
 * @GST_AVCROWDCOUNT_PRECISION_FP16: 16-bit float storage (CUDA)
 * @GST_AVCROWDCOUNT_PRECISION_BF16: bfloat16 storage (CPU and CUDA)
 */
typedef enum
{
  GST_AVCROWDCOUNT_PRECISION_FP32,
  GST_AVCROWDCOUNT_PRECISION_TF32,
  GST_AVCROWDCOUNT_PRECISION_FP16,
  GST_AVCROWDCOUNT_PRECISION_BF16,
} GstAvCrowdCountPrecision;

#define GST_AVCROWDCOUNT_MAX_EXITS EE_RUNNER_MAX_SEGMENTS

struct _GstAvCrowdCount
{
  GstAggregator parent;

  GstAggregatorPad *video_pad;
  GstAggregatorPad *audio_pad;

  /* properties, protected by the object lock; prop_* are READY-only and
   * latched at READY->PAUSED */
  gchar *prop_model_file;
  gchar *prop_device;
  GstAvCrowdCountPrecision prop_precision;
  GstClockTime prop_window;
  GstClockTime deadline;
  GstAvCrowdCountPolicy policy;
  gint min_exit, max_exit;
  guint interval;
  gboolean post_messages;
  gboolean density_map;
  guint unique_id;
  gboolean diagnostics;

  /* latched at READY->PAUSED, then fixed: read by the streaming thread
   * without locking */
  GstClockTime window;
  gsize window_samples;
  EeBackend *backend;
  EeModel *model;
  EeDeadline *sched;
  EeFeatureExtractor *fx;
  int n_exits;
  gchar **exit_names;
  guint32 audio_exits;
  float *image;   /* (3, H, W) network input */
  float *samples; /* 1 s of audio, the window centred in it */
  float *logmel;  /* (1, 1, 96, 64) */
  int in_width, in_height;

  /* streaming state: the aggregate thread only */
  EeAudioRing *ring;
  gboolean audio_discont;  /* next audio buffer starts a new run */
  GstBuffer *stored_audio; /* queued head buffer already in the ring */
  GstVideoInfo vinfo;
  EeVideoPrep *prep;
  GstClockTime frame_duration; /* from the caps; NONE when unknown */
  guint64 frame_index;         /* frames since start or flush */
  GstStructure *last_result;   /* the last fresh result */

  /* latency answered: half window + deadline budget; object lock */
  GstClockTime latency;

  /* QoS, protected by the object lock */
  gint qos_max_exit; /* -1: no cap */
  gboolean qos_late; /* a late report not acted on yet */
  GstClockTimeDiff qos_jitter;
  gdouble qos_proportion;
  GstClockTime qos_lowered_at; /* running time of the frame when lowered */
  guint qos_on_time;           /* on-time reports since the last change */

  /* statistics, protected by the object lock */
  guint64 stat_frames, stat_fresh, stat_misses, stat_qos;
  guint64 stat_taken[GST_AVCROWDCOUNT_MAX_EXITS];
  guint64 stat_runs[GST_AVCROWDCOUNT_MAX_EXITS];
  guint64 stat_time[GST_AVCROWDCOUNT_MAX_EXITS];     /* ns, summed */
  guint64 stat_estimate[GST_AVCROWDCOUNT_MAX_EXITS]; /* ns */
};

GST_ELEMENT_REGISTER_DECLARE (avcrowdcount);

G_END_DECLS
#endif /* __GST_AVCROWDCOUNT_H__ */
