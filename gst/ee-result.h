/* gst-earlyexit: writing results (meta and bus message), shared by the
 * plugin's elements. Applications read them with earlyexit-meta.h. */
#ifndef EE_RESULT_H
#define EE_RESULT_H

#include "earlyexit-meta.h"
#include "ee-regions.h"

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

/* A counting result's map fields (avcrowdcount density-map, regions; see
 * its documentation): with `want_map` or `regions`, has-map (whether `map`
 * is there and the result valid); with `want_map` and a map, density-map (a
 * GBytes copy of map_w x map_h floats) and its grid (covering the frame);
 * with `regions`, the regions array (name, polygon, count when there is a
 * map, alert levels) and regions-exit (`exit_name`). */
void ee_result_add_map (GstStructure *result, const float *map, int map_w,
                        int map_h, gboolean want_map, EeRegions *regions,
                        const char *exit_name);

/* Alert states of a stream: the whole frame's and those of the regions
 * they were made for. Zero-initialised; cleared with ee_alert_state_clear. */
typedef struct
{
  EeRegions *regions; /* a ref */
  gboolean *region_alert;
  gboolean frame_alert;
} EeAlertState;

void ee_alert_state_clear (EeAlertState *st);
/* Every alert lowered (a new stream). */
void ee_alert_state_reset (EeAlertState *st);

/* Called for each crossing. */
typedef void (*EeAlertFunc) (gpointer user_data, const char *region,
                             EeAlertChange change, double count,
                             double threshold, double clear);

/* Steps the alerts (hysteresis) on the result published for a frame, fresh
 * or carried: the frame's (threshold > 0; count above threshold raises it,
 * below clear lowers it) from `count`, each region's with an alert from its
 * count in the result's regions array (a region without a count keeps its
 * state). Sets `alert` (the frame's and each region's state) and, on the
 * crossing frame only, `alert-change` ("rising", "clearing"), and calls
 * `func` once per crossing. New `regions` (another object than last time)
 * start with their alerts lowered. */
void ee_result_update_alerts (EeAlertState *st, GstStructure *result,
                              EeRegions *regions, double threshold,
                              double clear, EeAlertFunc func,
                              gpointer user_data);

G_END_DECLS
#endif /* EE_RESULT_H */
