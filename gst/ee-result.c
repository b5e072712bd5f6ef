/* gst-earlyexit: writing results (meta and bus message). */
#include "ee-result.h"

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
