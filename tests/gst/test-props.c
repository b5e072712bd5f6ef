/* gst-earlyexit: the properties of every element of the plugin, as a user
 * of gst-launch-1.0 or g_object_set sees them (gst/ee-props.h keeps them):
 * a fresh element reads back each property's documented default, every
 * writable property reads back what was set (a value other than its
 * default), strings are copied, and the values a property refuses leave it
 * unchanged. */
#include <gst/check/gstcheck.h>

static const char *const factories[] = {
  "avcrowdcount",     "exitclassify",     "audioexitclassify",
  "earlyexitoverlay", "earlyexitpublish",
};

/* Properties whose value is not a stored setting: statistics and the
 * latency, computed when read. */
static gboolean
computed (const GParamSpec *pspec)
{
  return G_TYPE_FUNDAMENTAL (pspec->value_type) == G_TYPE_BOXED
         || !g_strcmp0 (pspec->name, "processing-latency");
}

/* Ours: installed by an earlyexit element, not by its GStreamer parents. */
static gboolean
ours (const GParamSpec *pspec)
{
  const char *owner = g_type_name (pspec->owner_type);

  return g_str_has_prefix (owner, "GstAvCrowdCount")
         || g_str_has_prefix (owner, "GstEarlyExit")
         || g_str_has_prefix (owner, "GstExitClassify")
         || g_str_has_prefix (owner, "GstAudioExitClassify");
}

/* A valid value different from the default, into v (initialised). */
static gboolean
other_value (const GParamSpec *pspec, GValue *v)
{
  const GValue *def = g_param_spec_get_default_value ((GParamSpec *)pspec);

  g_value_init (v, pspec->value_type);
  switch (G_TYPE_FUNDAMENTAL (pspec->value_type)) {
    case G_TYPE_BOOLEAN:
      g_value_set_boolean (v, !g_value_get_boolean (def));
      return TRUE;
    case G_TYPE_INT: {
      const GParamSpecInt *p = G_PARAM_SPEC_INT (pspec);
      g_value_set_int (v, p->default_value == p->maximum ? p->minimum
                                                         : p->maximum);
      return p->minimum != p->maximum;
    }
    case G_TYPE_UINT: {
      const GParamSpecUInt *p = G_PARAM_SPEC_UINT (pspec);
      g_value_set_uint (v, p->default_value == p->maximum ? p->minimum
                                                          : p->maximum);
      return p->minimum != p->maximum;
    }
    case G_TYPE_UINT64: {
      const GParamSpecUInt64 *p = G_PARAM_SPEC_UINT64 (pspec);
      g_value_set_uint64 (v, p->default_value == p->maximum ? p->minimum
                                                            : p->maximum);
      return p->minimum != p->maximum;
    }
    case G_TYPE_DOUBLE: {
      const GParamSpecDouble *p = G_PARAM_SPEC_DOUBLE (pspec);
      g_value_set_double (v, p->default_value == p->maximum ? p->minimum
                                                            : p->maximum);
      return p->minimum != p->maximum;
    }
    case G_TYPE_ENUM: {
      GEnumClass *e = G_PARAM_SPEC_ENUM (pspec)->enum_class;
      gint d = g_value_get_enum (def);
      g_value_set_enum (v, e->values[0].value == d ? e->values[1].value
                                                   : e->values[0].value);
      return e->n_values > 1;
    }
    case G_TYPE_STRING:
      /* empty regions parse to none; any other text would be a file name
       * or a regions text to parse */
      g_value_set_string (v, !g_strcmp0 (pspec->name, "regions")
                                 ? "left: 0,0 0.5,0 0.5,1"
                                 : "/tmp/ee-props-test");
      return TRUE;
    default:
      return FALSE;
  }
}

GST_START_TEST (test_defaults)
{
  for (guint f = 0; f < G_N_ELEMENTS (factories); f++) {
    GstElement *e = gst_element_factory_make (factories[f], NULL);
    guint n, checked = 0;
    GParamSpec **specs;

    fail_unless (e != NULL, "no element %s", factories[f]);
    specs = g_object_class_list_properties (G_OBJECT_GET_CLASS (e), &n);
    for (guint i = 0; i < n; i++) {
      GValue v = G_VALUE_INIT;
      if (!ours (specs[i]) || computed (specs[i])
          || !(specs[i]->flags & G_PARAM_READABLE))
        continue;
      g_value_init (&v, specs[i]->value_type);
      g_object_get_property (G_OBJECT (e), specs[i]->name, &v);
      fail_unless (g_param_values_cmp (
                       specs[i], &v, g_param_spec_get_default_value (specs[i]))
                       == 0,
                   "%s: a fresh element's %s (%s) is not its default",
                   factories[f], specs[i]->name, g_strdup_value_contents (&v));
      g_value_unset (&v);
      checked++;
    }
    /* the common properties are there on every inference element */
    fail_unless (checked >= 3, "%s: only %u properties", factories[f], checked);
    g_free (specs);
    gst_object_unref (e);
  }
}

GST_END_TEST;

GST_START_TEST (test_round_trip)
{
  for (guint f = 0; f < G_N_ELEMENTS (factories); f++) {
    GstElement *e = gst_element_factory_make (factories[f], NULL);
    guint n;
    GParamSpec **specs
        = g_object_class_list_properties (G_OBJECT_GET_CLASS (e), &n);

    for (guint i = 0; i < n; i++) {
      GValue set = G_VALUE_INIT, got = G_VALUE_INIT;
      if (!ours (specs[i]) || computed (specs[i])
          || (specs[i]->flags & G_PARAM_READWRITE) != G_PARAM_READWRITE)
        continue;
      if (!other_value (specs[i], &set)) {
        g_value_unset (&set);
        continue;
      }
      g_object_set_property (G_OBJECT (e), specs[i]->name, &set);
      g_value_init (&got, specs[i]->value_type);
      g_object_get_property (G_OBJECT (e), specs[i]->name, &got);
      fail_unless (g_param_values_cmp (specs[i], &set, &got) == 0,
                   "%s: %s set to %s reads back %s", factories[f],
                   specs[i]->name, g_strdup_value_contents (&set),
                   g_strdup_value_contents (&got));
      /* a string is the element's own copy */
      if (G_VALUE_HOLDS_STRING (&got))
        fail_if (g_value_get_string (&got) == g_value_get_string (&set));
      g_value_unset (&set);
      g_value_unset (&got);
    }
    g_free (specs);
    gst_object_unref (e);
  }
}

GST_END_TEST;

/* Setting one property leaves the others as they were (each has its own
 * field). */
GST_START_TEST (test_independent)
{
  GstElement *e = gst_element_factory_make ("avcrowdcount", NULL);
  guint64 deadline, window;
  gint max_exit, batch;
  gdouble clear;

  g_object_set (e, "deadline", (guint64)12345, "max-exit", 1, "window",
                (guint64)(GST_SECOND / 2), "alert-clear", 7.5, "batch-size", 4,
                NULL);
  g_object_get (e, "deadline", &deadline, "max-exit", &max_exit, "window",
                &window, "alert-clear", &clear, "batch-size", &batch, NULL);
  fail_unless_equals_uint64 (deadline, 12345);
  fail_unless_equals_int (max_exit, 1);
  fail_unless_equals_uint64 (window, GST_SECOND / 2);
  fail_unless_equals_float (clear, 7.5);
  fail_unless_equals_int (batch, 4);
  gst_object_unref (e);
}

GST_END_TEST;

/* A bad regions text is refused and the regions in use stay. */
GST_START_TEST (test_refused_keeps_value)
{
  GstElement *e = gst_element_factory_make ("avcrowdcount", NULL);
  gchar *regions;

  g_object_set (e, "regions", "door: 0,0 1,0 1,1", NULL);
  g_object_set (e, "regions", "door: 0,0 1,0", NULL); /* two points */
  g_object_get (e, "regions", &regions, NULL);
  fail_unless_equals_string (regions, "door: 0,0 1,0 1,1");
  g_free (regions);
  gst_object_unref (e);
}

GST_END_TEST;

static Suite *
props_suite (void)
{
  Suite *s = suite_create ("earlyexit-props");
  TCase *tc = tcase_create ("props");

  suite_add_tcase (s, tc);
  tcase_add_test (tc, test_defaults);
  tcase_add_test (tc, test_round_trip);
  tcase_add_test (tc, test_independent);
  tcase_add_test (tc, test_refused_keeps_value);
  return s;
}

GST_CHECK_MAIN (props);
