/* gst-earlyexit: reading the results of the earlyexit elements from C.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every buffer leaving an earlyexit element (avcrowdcount, ...) carries a
 * custom meta, EARLYEXIT_RESULT_META_NAME, registered by the plugin with
 * gst_meta_register_custom() and no tags, so it survives videoconvert,
 * videoscale and other elements that copy untagged metas. The meta holds a
 * GstStructure named EARLYEXIT_RESULT_NAME; the element message the element
 * posts on the bus for the same frame carries the same fields (plus timestamp,
 * stream-time, running-time and duration), so the typed getters below accept
 * either structure.
 *
 * Header only: it needs GStreamer >= 1.20 and no library of this project. The
 * meta is known once the plugin has been loaded (any earlyexit element made).
 *
 * |[<!-- language="C" -->
 * const GstStructure *r = gst_buffer_get_earlyexit_result (buffer);
 * if (r)
 *   g_print ("count %.1f from exit %s%s\n", earlyexit_result_get_count (r),
 *       earlyexit_result_get_exit (r),
 *       earlyexit_result_is_fresh (r) ? "" : " (carried over)");
 * ]|
 */
#ifndef EARLYEXIT_META_H
#define EARLYEXIT_META_H

#include <math.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define EARLYEXIT_RESULT_META_NAME "EarlyExitResultMeta"
#define EARLYEXIT_RESULT_NAME "earlyexit/result"

/* The result meta of `buffer`, or NULL. */
static inline GstCustomMeta *
gst_buffer_get_earlyexit_result_meta (GstBuffer *buffer)
{
  if (!gst_meta_get_info (EARLYEXIT_RESULT_META_NAME))
    return NULL;
  return gst_buffer_get_custom_meta (buffer, EARLYEXIT_RESULT_META_NAME);
}

/* The result structure of `buffer` (owned by the buffer's meta), or NULL. */
static inline const GstStructure *
gst_buffer_get_earlyexit_result (GstBuffer *buffer)
{
  GstCustomMeta *meta = gst_buffer_get_earlyexit_result_meta (buffer);

  return meta ? gst_custom_meta_get_structure (meta) : NULL;
}

/* "count" (avcrowdcount) or "label" (classifiers); NULL when absent. */
static inline const gchar *
earlyexit_result_get_task (const GstStructure *r)
{
  return gst_structure_get_string (r, "task");
}

/* The estimated number of people; NAN when absent. */
static inline gdouble
earlyexit_result_get_count (const GstStructure *r)
{
  gdouble v;

  return gst_structure_get_double (r, "count", &v) ? v : NAN;
}

/* Name of the exit that produced the result ("v1", "av1", "av2", "final"). */
static inline const gchar *
earlyexit_result_get_exit (const GstStructure *r)
{
  return gst_structure_get_string (r, "exit");
}

/* Index of that exit in anytime order (0 = earliest); -1 when absent. */
static inline gint
earlyexit_result_get_exit_index (const GstStructure *r)
{
  gint v;

  return gst_structure_get_int (r, "exit-index", &v) ? v : -1;
}

/* Number of exits of the model; 0 when absent. */
static inline gint
earlyexit_result_get_n_exits (const GstStructure *r)
{
  gint v;

  return gst_structure_get_int (r, "n-exits", &v) ? v : 0;
}

/* TRUE when the result was computed for this frame, FALSE when it was carried
 * over from an earlier frame (interval > 1). */
static inline gboolean
earlyexit_result_is_fresh (const GstStructure *r)
{
  gboolean v;

  return gst_structure_get_boolean (r, "fresh", &v) ? v : FALSE;
}

/* Fraction (0..1) of the audio window that had audio. */
static inline gdouble
earlyexit_result_get_audio_coverage (const GstStructure *r)
{
  gdouble v;

  return gst_structure_get_double (r, "audio-coverage", &v) ? v : 0.0;
}

/* FALSE when the window had no audio at all and only visual exits ran. */
static inline gboolean
earlyexit_result_get_audio_used (const GstStructure *r)
{
  gboolean v;

  return gst_structure_get_boolean (r, "audio-used", &v) ? v : FALSE;
}

/* Running time of the audio window's start (clamped at 0) and end. */
static inline GstClockTime
earlyexit_result_get_window_start (const GstStructure *r)
{
  guint64 v;

  return gst_structure_get_uint64 (r, "window-start", &v) ? v
                                                          : GST_CLOCK_TIME_NONE;
}

static inline GstClockTime
earlyexit_result_get_window_end (const GstStructure *r)
{
  guint64 v;

  return gst_structure_get_uint64 (r, "window-end", &v) ? v
                                                        : GST_CLOCK_TIME_NONE;
}

/* The time budget of the frame (ns). */
static inline guint64
earlyexit_result_get_deadline (const GstStructure *r)
{
  guint64 v;

  return gst_structure_get_uint64 (r, "deadline", &v) ? v : 0;
}

/* Time from the frame becoming processable to its result (ns). */
static inline guint64
earlyexit_result_get_inference_time (const GstStructure *r)
{
  guint64 v;

  return gst_structure_get_uint64 (r, "inference-time", &v) ? v : 0;
}

/* TRUE when the result was published after the deadline. */
static inline gboolean
earlyexit_result_get_deadline_missed (const GstStructure *r)
{
  gboolean v;

  return gst_structure_get_boolean (r, "deadline-missed", &v) ? v : FALSE;
}

/* The element's unique-id property. */
static inline guint
earlyexit_result_get_unique_id (const GstStructure *r)
{
  guint v;

  return gst_structure_get_uint (r, "unique-id", &v) ? v : 0;
}

G_END_DECLS
#endif /* EARLYEXIT_META_H */
