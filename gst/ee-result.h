/* gst-earlyexit: writing results (meta and bus message), shared by the
 * plugin's elements. Applications read them with earlyexit-meta.h. */
#ifndef EE_RESULT_H
#define EE_RESULT_H

#include "earlyexit-meta.h"

G_BEGIN_DECLS

/* Registers the result meta (once; called from plugin_init). */
void ee_result_meta_register (void);

/* Attaches a copy of `result`'s fields to `buffer` (writable): as a new result
 * meta, or, when the buffer has one already, appended to that meta's
 * more-results (earlyexit-meta.h: one meta per buffer). */
void ee_result_meta_attach (GstBuffer *buffer, const GstStructure *result);

/* The element message for a frame: a structure named after the element's
 * factory with timestamp, stream-time, running-time and duration (as level
 * does) followed by `result`'s fields. */
GstMessage *ee_result_message_new (GstElement *element,
                                   const GstSegment *segment, GstBuffer *buffer,
                                   const GstStructure *result);

/* The same for a span that is not one buffer (an audio window): timestamp
 * `pts` and duration `duration` in `segment`. */
GstMessage *ee_result_message_new_full (GstElement *element,
                                        const GstSegment *segment,
                                        GstClockTime pts, GstClockTime duration,
                                        const GstStructure *result);

G_END_DECLS
#endif /* EE_RESULT_H */
