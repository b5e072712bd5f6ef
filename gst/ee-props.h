/* gst-earlyexit: element properties declared once, as data.
 *
 * Every earlyexit element describes each of its properties once: its
 * GParamSpec and where its value lives, a field of the instance at a byte
 * offset (G_STRUCT_OFFSET), or a pair of accessors where setting or reading
 * it does more than copy a value (regions that are parsed, statistics built
 * on demand). One set_property / get_property pair then serves every
 * element, the defaults come from the GParamSpecs (ee_props_init) and
 * string fields are freed by ee_props_finalize. Property ids are given out
 * in the order of installation, so there are no id enums to keep in step.
 *
 * Fields hold boolean (gboolean), int and enum (gint-sized), uint (guint),
 * uint64 (guint64), double (gdouble) or string (gchar *, owned) values.
 *
 * Locking: fields are written and read under the object lock. Accessors are
 * called without it and take it themselves. A change is announced by
 * GObject's notify signal as for any property ("notify::deadline"). */
#ifndef EE_PROPS_H
#define EE_PROPS_H

#include <gst/gst.h>

G_BEGIN_DECLS

/* Flags of a property settable in READY only, and in any state. */
#define EE_PARAM_READY                                                         \
  (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)
#define EE_PARAM_PLAYING                                                       \
  (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING)

/* `at` is the instance plus the property's offset. */
typedef void (*EePropSet) (GObject *object, gpointer at, const GValue *value);
typedef void (*EePropGet) (GObject *object, gpointer at, GValue *value);

/* class_init: installs pspec (taken) on klass, its value in the field at
 * `offset` of the instance. Sets klass's set_property and get_property. */
void ee_props_add_field (GObjectClass *klass, gsize offset, GParamSpec *pspec);

/* class_init: installs pspec with accessors; `at` is the instance plus
 * `offset`. A NULL set stores the value in the field at `offset`, a NULL
 * get reads it from there (set is never called on a read-only property). */
void ee_props_add (GObjectClass *klass, gsize offset, GParamSpec *pspec,
                   EePropSet set, EePropGet get);

/* instance_init: every property read from a field that `owner` installed
 * takes its default in the field. */
void ee_props_init (GObject *object, GType owner);

/* finalize: frees the string fields of the properties `owner` installed
 * that are read from a field. */
void ee_props_finalize (GObject *object, GType owner);

G_END_DECLS

#endif /* EE_PROPS_H */
