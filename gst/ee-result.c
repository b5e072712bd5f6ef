/* gst-earlyexit: writing results (meta and bus message). */
#include "ee-result.h"

#include <string.h>

void
ee_result_meta_register (void)
{
  static gsize done = 0;

  if (g_once_init_enter (&done)) {
    /* no tags: transforms that keep untagged metas (videoconvert, videoscale,
     * most filters) copy it */
    static const gchar *tags[] = { NULL };
    gst_meta_register_custom (EARLYEXIT_RESULT_META_NAME, tags, NULL, NULL,
                              NULL);
    g_once_init_leave (&done, 1);
  }
}

static gboolean
copy_field (GQuark field, const GValue *value, gpointer user_data)
{
  gst_structure_id_set_value (user_data, field, value);
  return TRUE;
}

void
ee_result_meta_attach (GstBuffer *buffer, const GstStructure *result)
{
  GstCustomMeta *meta
      = gst_buffer_get_custom_meta (buffer, EARLYEXIT_RESULT_META_NAME);
  GstStructure *s;
  const GValue *old;
  GValue more = G_VALUE_INIT, item = G_VALUE_INIT;

  if (!meta) {
    meta = gst_buffer_add_custom_meta (buffer, EARLYEXIT_RESULT_META_NAME);
    s = gst_custom_meta_get_structure (meta);
    gst_structure_set_name (s, EARLYEXIT_RESULT_NAME);
    gst_structure_foreach (result, copy_field, s);
    return;
  }
  /* A later result of the same buffer goes into the first meta's
   * more-results, not into a meta of its own: a binding that reaches only a
   * buffer's first meta of a kind (Python on GStreamer 1.22) then reads
   * every result. */
  s = gst_custom_meta_get_structure (meta);
  old = gst_structure_get_value (s, EARLYEXIT_RESULT_MORE_FIELD);
  g_value_init (&more, GST_TYPE_ARRAY);
  if (old && GST_VALUE_HOLDS_ARRAY (old))
    g_value_copy (old, &more);
  g_value_init (&item, GST_TYPE_STRUCTURE);
  g_value_take_boxed (&item, gst_structure_copy (result));
  gst_structure_set_name ((GstStructure *)gst_value_get_structure (&item),
                          EARLYEXIT_RESULT_NAME);
  gst_value_array_append_and_take_value (&more, &item);
  gst_structure_take_value (s, EARLYEXIT_RESULT_MORE_FIELD, &more);
}

GstMessage *
ee_result_message_new (GstElement *element, const GstSegment *segment,
                       GstBuffer *buffer, const GstStructure *result)
{
  return ee_result_message_new_full (element, segment, GST_BUFFER_PTS (buffer),
                                     GST_BUFFER_DURATION (buffer), result);
}

GstMessage *
ee_result_message_new_full (GstElement *element, const GstSegment *segment,
                            GstClockTime pts, GstClockTime duration,
                            const GstStructure *result)
{
  GstElementFactory *factory = gst_element_get_factory (element);
  GstStructure *s;

  s = gst_structure_new (
      factory ? GST_OBJECT_NAME (factory) : "earlyexit", "timestamp",
      G_TYPE_UINT64, pts, "stream-time", G_TYPE_UINT64,
      gst_segment_to_stream_time (segment, GST_FORMAT_TIME, pts),
      "running-time", G_TYPE_UINT64,
      gst_segment_to_running_time (segment, GST_FORMAT_TIME, pts), "duration",
      G_TYPE_UINT64, duration, NULL);
  gst_structure_foreach (result, copy_field, s);
  return gst_message_new_element (GST_OBJECT (element), s);
}

/* ------------------------------------------------------------ maps */

static void
append_double (GValue *array, gdouble v)
{
  GValue item = G_VALUE_INIT;

  g_value_init (&item, G_TYPE_DOUBLE);
  g_value_set_double (&item, v);
  gst_value_array_append_and_take_value (array, &item);
}

void
ee_result_add_map (GstStructure *result, const float *map, int w, int h,
                   gboolean want_map, EeRegions *rs, const char *exit_name)
{
  gboolean has;

  if (!want_map && !rs)
    return;
  /* an invalid (not finite) result has no count and no map */
  has = map && w > 0 && h > 0 && earlyexit_result_is_valid (result);
  gst_structure_set (result, "has-map", G_TYPE_BOOLEAN, has, NULL);
  if (has && want_map) {
    GBytes *bytes = g_bytes_new (map, sizeof (float) * (gsize)w * h);

    gst_structure_set (result, "density-map", G_TYPE_BYTES, bytes,
                       "density-map-width", G_TYPE_INT, w, "density-map-height",
                       G_TYPE_INT, h, "density-map-x", G_TYPE_DOUBLE, 0.0,
                       "density-map-y", G_TYPE_DOUBLE, 0.0,
                       "density-map-cell-width", G_TYPE_DOUBLE, 1.0 / w,
                       "density-map-cell-height", G_TYPE_DOUBLE, 1.0 / h, NULL);
    g_bytes_unref (bytes);
  }
  if (rs) {
    int n = ee_regions_n (rs);
    gdouble *counts = g_new0 (gdouble, MAX (n, 1));
    GValue list = G_VALUE_INIT;

    if (has)
      ee_regions_count (rs, map, w, h, counts);
    g_value_init (&list, GST_TYPE_ARRAY);
    for (int i = 0; i < n; i++) {
      const EeRegion *r = ee_regions_get (rs, i);
      GstStructure *st
          = gst_structure_new ("region", "name", G_TYPE_STRING, r->name, NULL);
      GValue poly = G_VALUE_INIT, item = G_VALUE_INIT;

      g_value_init (&poly, GST_TYPE_ARRAY);
      for (int k = 0; k < 2 * r->n_points; k++)
        append_double (&poly, r->xy[k]);
      gst_structure_take_value (st, "polygon", &poly);
      if (has)
        gst_structure_set (st, "count", G_TYPE_DOUBLE, counts[i], NULL);
      if (r->alert > 0)
        gst_structure_set (st, "alert-threshold", G_TYPE_DOUBLE, r->alert,
                           "alert-clear", G_TYPE_DOUBLE, r->clear, NULL);
      g_value_init (&item, GST_TYPE_STRUCTURE);
      g_value_take_boxed (&item, st);
      gst_value_array_append_and_take_value (&list, &item);
    }
    gst_structure_take_value (result, "regions", &list);
    if (has && exit_name)
      gst_structure_set (result, "regions-exit", G_TYPE_STRING, exit_name,
                         NULL);
    g_free (counts);
  }
}

/* ------------------------------------------------------------ alerts */

void
ee_alert_state_clear (EeAlertState *st)
{
  g_clear_pointer (&st->regions, ee_regions_unref);
  g_clear_pointer (&st->region_alert, g_free);
  st->frame_alert = FALSE;
}

void
ee_alert_state_reset (EeAlertState *st)
{
  st->frame_alert = FALSE;
  if (st->region_alert)
    memset (st->region_alert, 0,
            sizeof (gboolean) * MAX (ee_regions_n (st->regions), 1));
}

void
ee_result_update_alerts (EeAlertState *st, GstStructure *result, EeRegions *rs,
                         double threshold, double clear, EeAlertFunc func,
                         gpointer user_data)
{
  const GValue *list;
  gdouble count;

  if (rs != st->regions || !st->region_alert) {
    /* new regions: their alerts start lowered */
    g_clear_pointer (&st->regions, ee_regions_unref);
    g_free (st->region_alert);
    st->regions = rs ? ee_regions_ref (rs) : NULL;
    st->region_alert = g_new0 (gboolean, MAX (ee_regions_n (rs), 1));
  }

  gst_structure_remove_field (result, "alert-change");
  if (threshold <= 0) {
    st->frame_alert = FALSE;
    gst_structure_remove_field (result, "alert");
  } else if (earlyexit_result_is_valid (result)
             && gst_structure_get_double (result, "count", &count)) {
    EeAlertChange change
        = ee_alert_update (&st->frame_alert, count, threshold, clear);
    gst_structure_set (result, "alert", G_TYPE_BOOLEAN, st->frame_alert, NULL);
    if (change != EE_ALERT_NONE) {
      gst_structure_set (result, "alert-change", G_TYPE_STRING,
                         ee_alert_change_name (change), NULL);
      func (user_data, EE_REGIONS_FRAME, change, count, threshold, clear);
    }
  }

  list = gst_structure_get_value (result, "regions");
  if (rs && list && GST_VALUE_HOLDS_ARRAY (list)) {
    GValue out = G_VALUE_INIT;
    guint n = gst_value_array_get_size (list);

    g_value_init (&out, GST_TYPE_ARRAY);
    for (guint i = 0; i < n; i++) {
      const GValue *v = gst_value_array_get_value (list, i);
      GstStructure *s = gst_structure_copy (gst_value_get_structure (v));
      const gchar *name = gst_structure_get_string (s, "name");
      GValue item = G_VALUE_INIT;
      int j = -1;

      gst_structure_remove_field (s, "alert-change");
      for (int k = 0; k < ee_regions_n (rs) && j < 0; k++)
        if (!g_strcmp0 (ee_regions_get (rs, k)->name, name))
          j = k;
      if (j >= 0 && ee_regions_get (rs, j)->alert > 0) {
        const EeRegion *r = ee_regions_get (rs, j);
        if (gst_structure_get_double (s, "count", &count)) {
          EeAlertChange change = ee_alert_update (&st->region_alert[j], count,
                                                  r->alert, r->clear);
          if (change != EE_ALERT_NONE) {
            gst_structure_set (s, "alert-change", G_TYPE_STRING,
                               ee_alert_change_name (change), NULL);
            func (user_data, r->name, change, count, r->alert, r->clear);
          }
        }
        gst_structure_set (s, "alert", G_TYPE_BOOLEAN, st->region_alert[j],
                           NULL);
      }
      g_value_init (&item, GST_TYPE_STRUCTURE);
      g_value_take_boxed (&item, s);
      gst_value_array_append_and_take_value (&out, &item);
    }
    gst_structure_take_value (result, "regions", &out);
  }
}
