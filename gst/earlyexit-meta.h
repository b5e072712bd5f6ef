/* gst-earlyexit: reading the results of the earlyexit elements from C.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every video buffer leaving an earlyexit element (avcrowdcount,
 * exitclassify) carries a custom meta, EARLYEXIT_RESULT_META_NAME, registered
 * by the plugin with gst_meta_register_custom() and no tags, so it survives
 * videoconvert, videoscale and other elements that copy untagged metas;
 * audioexitclassify attaches its results to the audio buffer that completes
 * each window. The meta holds a GstStructure named EARLYEXIT_RESULT_NAME; the
 * element message the element posts on the bus for the same frame or window
 * carries the same fields (plus timestamp, stream-time, running-time and
 * duration), so the typed getters below accept either structure.
 *
 * One meta per buffer, however many results: the meta's fields are the
 * buffer's first result, and the later ones (audioexitclassify when one
 * buffer completes several windows, or a second earlyexit element on the same
 * buffers) are in its field EARLYEXIT_RESULT_MORE_FIELD ("more-results"), an
 * array (GstValueArray) of EARLYEXIT_RESULT_NAME structures, oldest first,
 * absent when the buffer has one result. So a binding that reaches only the
 * first meta of a buffer (Python on GStreamer 1.22:
 * Gst.Buffer.get_custom_meta()) reads every result, and
 * gst_buffer_iterate_earlyexit_results() walks them all.
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
 *
 * The density map and the regions (avcrowdcount density-map=true, regions):
 * |[<!-- language="C" -->
 * gint w, h;
 * const gfloat *map = earlyexit_result_get_density_map (r, &w, &h);
 * if (map)
 *   g_print ("map %dx%d, cell (0,0) %.3f\n", w, h, map[0]);
 * else if (!earlyexit_result_has_map (r))
 *   g_print ("exit %s has no map\n", earlyexit_result_get_exit (r));
 * for (guint i = 0; i < earlyexit_result_get_n_regions (r); i++) {
 *   gdouble count;
 *   gboolean alert;
 *   const gchar *name = earlyexit_result_get_region (r, i, &count, &alert);
 *   g_print ("%s %.1f%s\n", name, count, alert ? " ALERT" : "");
 * }
 * ]|
 *
 * A classifier's result (task "label"):
 * |[<!-- language="C" -->
 * for (guint i = 0; i < earlyexit_result_get_top_k_size (r); i++) {
 *   gint id;
 *   gdouble p;
 *   const gchar *label = earlyexit_result_get_top_k (r, i, &id, &p);
 *   g_print ("%u. %s (class %d) %.3f\n", i + 1, label, id, p);
 * }
 * ]|
 */
#ifndef EARLYEXIT_META_H
#define EARLYEXIT_META_H

#include <math.h>
#include <gst/gst.h>

G_BEGIN_DECLS

#define EARLYEXIT_RESULT_META_NAME "EarlyExitResultMeta"
#define EARLYEXIT_RESULT_NAME "earlyexit/result"
/* The field of the meta's structure listing the buffer's later results. */
#define EARLYEXIT_RESULT_MORE_FIELD "more-results"

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

/* Number of results `r` holds: 1 + the length of its more-results (a meta's
 * structure), or 1 (a message, or a buffer with one result). */
static inline guint
earlyexit_result_get_n_results (const GstStructure *r)
{
  const GValue *more = gst_structure_get_value (r, EARLYEXIT_RESULT_MORE_FIELD);

  return 1
         + (more && GST_VALUE_HOLDS_ARRAY (more)
                ? gst_value_array_get_size (more)
                : 0);
}

/* Result `i` of the meta structure `r`: 0 is `r` itself, i > 0 the entry
 * i - 1 of its more-results; NULL past the end. */
static inline const GstStructure *
earlyexit_result_get_nth (const GstStructure *r, guint i)
{
  const GValue *more, *v;

  if (i == 0)
    return r;
  more = gst_structure_get_value (r, EARLYEXIT_RESULT_MORE_FIELD);
  if (!more || !GST_VALUE_HOLDS_ARRAY (more)
      || i - 1 >= gst_value_array_get_size (more))
    return NULL;
  v = gst_value_array_get_value (more, i - 1);
  return GST_VALUE_HOLDS_STRUCTURE (v) ? gst_value_get_structure (v) : NULL;
}

/* Every result of `buffer`, in the order they were attached (oldest window
 * first): the meta's own fields, then its more-results (and, should a buffer
 * ever hold several result metas, theirs in turn). Start with *state = NULL;
 * NULL at the end. gst_buffer_get_earlyexit_result() gives the first. */
static inline const GstStructure *
gst_buffer_iterate_earlyexit_results (GstBuffer *buffer, gpointer *state)
{
  const GstMetaInfo *info = gst_meta_get_info (EARLYEXIT_RESULT_META_NAME);
  guint want = GPOINTER_TO_UINT (*state), seen = 0;
  gpointer it = NULL;
  GstMeta *meta;

  if (!info)
    return NULL;
  while ((meta = gst_buffer_iterate_meta (buffer, &it)))
    if (meta->info == info) {
      const GstStructure *r
          = gst_custom_meta_get_structure ((GstCustomMeta *)meta);
      guint n = earlyexit_result_get_n_results (r);

      if (want < seen + n) {
        *state = GUINT_TO_POINTER (want + 1);
        return earlyexit_result_get_nth (r, want - seen);
      }
      seen += n;
    }
  return NULL;
}

/* "count" (avcrowdcount) or "label" (classifiers); NULL when absent. */
static inline const gchar *
earlyexit_result_get_task (const GstStructure *r)
{
  return gst_structure_get_string (r, "task");
}

/* FALSE when the network's output was not finite (NaN or infinity): the
 * result then has its task and the common fields (exit, timing) but not the
 * task's values (count; label, confidence, top-k), and the element posted a
 * warning. TRUE otherwise (the field `valid` is only present when FALSE). */
static inline gboolean
earlyexit_result_is_valid (const GstStructure *r)
{
  gboolean v;

  return gst_structure_get_boolean (r, "valid", &v) ? v : TRUE;
}

/* avcrowdcount: the estimated number of people; NAN when absent. */
static inline gdouble
earlyexit_result_get_count (const GstStructure *r)
{
  gdouble v;

  return gst_structure_get_double (r, "count", &v) ? v : NAN;
}

/* Name of the exit that produced the result (avcrowdcount: "v1", "av1",
 * "av2", "final"; classifiers: the model's exit names, then "final"). */
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

/* Fraction (0..1) of the audio window that had audio (avcrowdcount,
 * audioexitclassify). */
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

/* Running time of the audio window's start (avcrowdcount: clamped at 0) and
 * end (avcrowdcount, audioexitclassify). */
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

/* The time budget of the frame or window (ns). */
static inline guint64
earlyexit_result_get_deadline (const GstStructure *r)
{
  guint64 v;

  return gst_structure_get_uint64 (r, "deadline", &v) ? v : 0;
}

/* Time from the frame (window) becoming processable to its result (ns). */
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

/* Density maps and regions (avcrowdcount with density-map=true, regions) */

/* Whether the exit that gave the result has a map; FALSE also when the
 * result says nothing about maps (density-map and regions both off). */
static inline gboolean
earlyexit_result_has_map (const GstStructure *r)
{
  gboolean v;

  return gst_structure_get_boolean (r, "has-map", &v) ? v : FALSE;
}

/* The density map: width x height floats, row-major, owned by the structure
 * (valid while it is), summing to the count; NULL (and 0 x 0) when the
 * result has none. *width and *height may be NULL. */
static inline const gfloat *
earlyexit_result_get_density_map (const GstStructure *r, gint *width,
                                  gint *height)
{
  const GValue *v = gst_structure_get_value (r, "density-map");
  gint w = 0, h = 0;
  gsize size = 0;
  const gfloat *data = NULL;

  if (v && G_VALUE_HOLDS (v, G_TYPE_BYTES) && g_value_get_boxed (v)
      && gst_structure_get_int (r, "density-map-width", &w)
      && gst_structure_get_int (r, "density-map-height", &h) && w > 0 && h > 0)
    data = (const gfloat *)g_bytes_get_data ((GBytes *)g_value_get_boxed (v),
                                             &size);
  if (!data || size != sizeof (gfloat) * (gsize)w * (gsize)h) {
    data = NULL;
    w = h = 0;
  }
  if (width)
    *width = w;
  if (height)
    *height = h;
  return data;
}

/* Where the map's grid lies in the frame, in fractions of the frame's width
 * and height (as the regions; they hold after scaling): its top-left corner
 * (x, y) and the size of one cell (avcrowdcount: 0, 0, 1/width, 1/height,
 * the grid covering the frame); FALSE (all 0) without a map. Any pointer may
 * be NULL. */
static inline gboolean
earlyexit_result_get_density_map_grid (const GstStructure *r, gdouble *x,
                                       gdouble *y, gdouble *cell_width,
                                       gdouble *cell_height)
{
  gdouble v[4] = { 0, 0, 0, 0 };
  gboolean ok
      = gst_structure_get_double (r, "density-map-x", &v[0])
        && gst_structure_get_double (r, "density-map-y", &v[1])
        && gst_structure_get_double (r, "density-map-cell-width", &v[2])
        && gst_structure_get_double (r, "density-map-cell-height", &v[3]);

  if (!ok)
    v[0] = v[1] = v[2] = v[3] = 0;
  if (x)
    *x = v[0];
  if (y)
    *y = v[1];
  if (cell_width)
    *cell_width = v[2];
  if (cell_height)
    *cell_height = v[3];
  return ok;
}

/* Number of regions the result lists (the regions property); 0 when none. */
static inline guint
earlyexit_result_get_n_regions (const GstStructure *r)
{
  const GValue *v = gst_structure_get_value (r, "regions");

  return v && GST_VALUE_HOLDS_ARRAY (v) ? gst_value_array_get_size (v) : 0;
}

/* Region `i`: returns its name (owned by the structure) and sets *count
 * (NAN when the exit had no map to count on) and *alert (the region's alert
 * is raised; FALSE without an alert); NULL when `i` is out of range. */
static inline const gchar *
earlyexit_result_get_region (const GstStructure *r, guint i, gdouble *count,
                             gboolean *alert)
{
  const GValue *v = gst_structure_get_value (r, "regions");
  const GstStructure *s = NULL;
  gdouble c = NAN;
  gboolean a = FALSE;

  if (v && GST_VALUE_HOLDS_ARRAY (v) && i < gst_value_array_get_size (v)
      && GST_VALUE_HOLDS_STRUCTURE (gst_value_array_get_value (v, i)))
    s = gst_value_get_structure (gst_value_array_get_value (v, i));
  if (s) {
    if (!gst_structure_get_double (s, "count", &c))
      c = NAN;
    if (!gst_structure_get_boolean (s, "alert", &a))
      a = FALSE;
  }
  if (count)
    *count = c;
  if (alert)
    *alert = a;
  return s ? gst_structure_get_string (s, "name") : NULL;
}

/* Whether the whole frame's alert (alert-threshold) is raised. */
static inline gboolean
earlyexit_result_get_alert (const GstStructure *r)
{
  gboolean v;

  return gst_structure_get_boolean (r, "alert", &v) ? v : FALSE;
}

/* Classifiers (exitclassify, audioexitclassify) */

/* The top class's name: the label from the model file (or the element's
 * labels-file), else its number ("7"); NULL when absent. */
static inline const gchar *
earlyexit_result_get_label (const GstStructure *r)
{
  return gst_structure_get_string (r, "label");
}

/* The top class's index; -1 when absent. */
static inline gint
earlyexit_result_get_label_id (const GstStructure *r)
{
  gint v;

  return gst_structure_get_int (r, "label-id", &v) ? v : -1;
}

/* The top class's softmax probability (0..1); NAN when absent. */
static inline gdouble
earlyexit_result_get_confidence (const GstStructure *r)
{
  gdouble v;

  return gst_structure_get_double (r, "confidence", &v) ? v : NAN;
}

/* Number of entries of the top-k list (the element's top-k property, at most
 * the number of classes); 0 when absent. */
static inline guint
earlyexit_result_get_top_k_size (const GstStructure *r)
{
  const GValue *labels = gst_structure_get_value (r, "top-labels");

  return labels && GST_VALUE_HOLDS_ARRAY (labels)
             ? gst_value_array_get_size (labels)
             : 0;
}

/* Entry `i` of the top-k list, 0 being the most probable class: returns its
 * label (owned by the structure) and sets *label_id and *confidence (each
 * may be NULL). The list is three parallel arrays, `top-labels` (strings),
 * `top-label-ids` (ints) and `top-confidences` (doubles). NULL (and -1, NAN)
 * when `i` is out of range. */
static inline const gchar *
earlyexit_result_get_top_k (const GstStructure *r, guint i, gint *label_id,
                            gdouble *confidence)
{
  const GValue *labels = gst_structure_get_value (r, "top-labels");
  const GValue *ids = gst_structure_get_value (r, "top-label-ids");
  const GValue *conf = gst_structure_get_value (r, "top-confidences");
  gboolean ok = labels && ids && conf && GST_VALUE_HOLDS_ARRAY (labels)
                && GST_VALUE_HOLDS_ARRAY (ids) && GST_VALUE_HOLDS_ARRAY (conf)
                && i < gst_value_array_get_size (labels)
                && i < gst_value_array_get_size (ids)
                && i < gst_value_array_get_size (conf);

  if (label_id)
    *label_id = ok ? g_value_get_int (gst_value_array_get_value (ids, i)) : -1;
  if (confidence)
    *confidence
        = ok ? g_value_get_double (gst_value_array_get_value (conf, i)) : NAN;
  return ok ? g_value_get_string (gst_value_array_get_value (labels, i)) : NULL;
}

G_END_DECLS
#endif /* EARLYEXIT_META_H */
