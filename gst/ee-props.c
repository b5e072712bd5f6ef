/* gst-earlyexit: element properties declared once, as data (ee-props.h). */
#include "ee-props.h"

typedef struct
{
  gsize offset;
  EePropSet set; /* NULL: stored in the field at offset */
  EePropGet get; /* NULL: read from the field at offset */
} EeProp;

static GQuark
prop_quark (void)
{
  static GQuark q;

  if (!q)
    q = g_quark_from_static_string ("ee-props");
  return q;
}

/* The last id given on a class. */
static GQuark
last_id_quark (void)
{
  static GQuark q;

  if (!q)
    q = g_quark_from_static_string ("ee-props-last-id");
  return q;
}

static gpointer
at (GObject *object, const EeProp *p)
{
  return (guint8 *)object + p->offset;
}

static gboolean
field_type_supported (GType type)
{
  switch (G_TYPE_FUNDAMENTAL (type)) {
    case G_TYPE_BOOLEAN:
    case G_TYPE_INT:
    case G_TYPE_ENUM:
    case G_TYPE_UINT:
    case G_TYPE_UINT64:
    case G_TYPE_DOUBLE:
    case G_TYPE_STRING:
      return TRUE;
    default:
      return FALSE;
  }
}

/* Copies value into the field (object lock held). */
static void
store (gpointer field, const GValue *value)
{
  switch (G_TYPE_FUNDAMENTAL (G_VALUE_TYPE (value))) {
    case G_TYPE_BOOLEAN:
      *(gboolean *)field = g_value_get_boolean (value);
      break;
    case G_TYPE_INT:
      *(gint *)field = g_value_get_int (value);
      break;
    case G_TYPE_ENUM:
      *(gint *)field = g_value_get_enum (value);
      break;
    case G_TYPE_UINT:
      *(guint *)field = g_value_get_uint (value);
      break;
    case G_TYPE_UINT64:
      *(guint64 *)field = g_value_get_uint64 (value);
      break;
    case G_TYPE_DOUBLE:
      *(gdouble *)field = g_value_get_double (value);
      break;
    case G_TYPE_STRING:
      g_free (*(gchar **)field);
      *(gchar **)field = g_value_dup_string (value);
      break;
    default:
      g_assert_not_reached ();
  }
}

/* Copies the field into value (object lock held). */
static void
load (gconstpointer field, GValue *value)
{
  switch (G_TYPE_FUNDAMENTAL (G_VALUE_TYPE (value))) {
    case G_TYPE_BOOLEAN:
      g_value_set_boolean (value, *(const gboolean *)field);
      break;
    case G_TYPE_INT:
      g_value_set_int (value, *(const gint *)field);
      break;
    case G_TYPE_ENUM:
      g_value_set_enum (value, *(const gint *)field);
      break;
    case G_TYPE_UINT:
      g_value_set_uint (value, *(const guint *)field);
      break;
    case G_TYPE_UINT64:
      g_value_set_uint64 (value, *(const guint64 *)field);
      break;
    case G_TYPE_DOUBLE:
      g_value_set_double (value, *(const gdouble *)field);
      break;
    case G_TYPE_STRING:
      g_value_set_string (value, *(gchar *const *)field);
      break;
    default:
      g_assert_not_reached ();
  }
}

static void
set_property (GObject *object, guint prop_id, const GValue *value,
              GParamSpec *pspec)
{
  const EeProp *p = g_param_spec_get_qdata (pspec, prop_quark ());

  if (!p) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    return;
  }
  if (p->set) {
    p->set (object, at (object, p), value);
    return;
  }
  GST_OBJECT_LOCK (object);
  store (at (object, p), value);
  GST_OBJECT_UNLOCK (object);
}

static void
get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  const EeProp *p = g_param_spec_get_qdata (pspec, prop_quark ());

  if (!p) {
    G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    return;
  }
  if (p->get) {
    p->get (object, at (object, p), value);
    return;
  }
  GST_OBJECT_LOCK (object);
  load (at (object, p), value);
  GST_OBJECT_UNLOCK (object);
}

void
ee_props_add (GObjectClass *klass, gsize offset, GParamSpec *pspec,
              EePropSet set, EePropGet get)
{
  GType type = G_OBJECT_CLASS_TYPE (klass);
  guint id = GPOINTER_TO_UINT (g_type_get_qdata (type, last_id_quark ())) + 1;
  EeProp *p = g_new0 (EeProp, 1);

  /* a value kept in a field is of a type store() and load() know */
  g_return_if_fail ((get && (set || !(pspec->flags & G_PARAM_WRITABLE)))
                    || field_type_supported (pspec->value_type));
  p->offset = offset;
  p->set = set;
  p->get = get;
  g_param_spec_set_qdata_full (pspec, prop_quark (), p, g_free);
  g_type_set_qdata (type, last_id_quark (), GUINT_TO_POINTER (id));
  klass->set_property = set_property;
  klass->get_property = get_property;
  g_object_class_install_property (klass, id, pspec);
}

void
ee_props_add_field (GObjectClass *klass, gsize offset, GParamSpec *pspec)
{
  ee_props_add (klass, offset, pspec, NULL, NULL);
}

/* The properties read from a field that `owner` installed, in turn. */
static void
for_each_field (GObject *object, GType owner,
                void (*fn) (gpointer field, GParamSpec *pspec))
{
  guint n;
  GParamSpec **specs
      = g_object_class_list_properties (G_OBJECT_GET_CLASS (object), &n);

  for (guint i = 0; i < n; i++) {
    const EeProp *p = g_param_spec_get_qdata (specs[i], prop_quark ());
    if (p && !p->get && specs[i]->owner_type == owner)
      fn (at (object, p), specs[i]);
  }
  g_free (specs);
}

static void
set_default (gpointer field, GParamSpec *pspec)
{
  store (field, g_param_spec_get_default_value (pspec));
}

static void
free_string (gpointer field, GParamSpec *pspec)
{
  if (G_TYPE_FUNDAMENTAL (pspec->value_type) == G_TYPE_STRING)
    g_clear_pointer ((gchar **)field, g_free);
}

void
ee_props_init (GObject *object, GType owner)
{
  for_each_field (object, owner, set_default);
}

void
ee_props_finalize (GObject *object, GType owner)
{
  for_each_field (object, owner, free_string);
}
