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
      = gst_buffer_add_custom_meta (buffer, EARLYEXIT_RESULT_META_NAME);
  GstStructure *s = gst_custom_meta_get_structure (meta);

  gst_structure_set_name (s, EARLYEXIT_RESULT_NAME);
  gst_structure_foreach (result, copy_field, s);
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
