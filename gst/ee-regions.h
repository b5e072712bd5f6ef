/* gst-earlyexit: named regions of the frame, their counts from a density map,
 * and count alerts with hysteresis.
 *
 * Regions are written as text, the same on a gst-launch-1.0 line and in a
 * file: regions separated by ';' or new lines, '#' starting a comment that
 * runs to the end of the line. Each region is
 *
 *   NAME: X,Y X,Y X,Y ... [alert=N] [clear=M]
 *
 * NAME: letters, digits, '_' and '-', unique, not "frame" (the whole frame's
 * alert is called that). The points are the polygon's corners in order,
 * fractions of the frame's width and height (0,0 top left, 1,1 bottom right),
 * at least three; a polygon may be concave and reach outside the frame
 * (coordinates from -1 to 2), must enclose an area and must not cross itself.
 * alert=N raises the region's alert when its count goes above N; it clears
 * when the count falls below M (clear=M, default 0.9 N).
 *
 * A region's count is the map summed over the region, each cell weighted by
 * the share of its area inside the polygon (exact polygon-square clipping),
 * the map's grid covering the whole frame. Pure C (GLib), used by
 * avcrowdcount; not thread safe (one streaming thread). */
#ifndef EE_REGIONS_H
#define EE_REGIONS_H

#include <glib.h>

G_BEGIN_DECLS

#define EE_REGIONS_ERROR (ee_regions_error_quark ())
GQuark ee_regions_error_quark (void);

/* The name a region may not take: the whole frame's alert. */
#define EE_REGIONS_FRAME "frame"

typedef struct
{
  char *name;
  int n_points;
  double *xy;   /* n_points (x, y) pairs, fractions of the frame */
  double alert; /* > 0: the alert threshold; 0: no alert */
  double clear; /* the level it clears below (alert > 0) */
} EeRegion;

typedef struct _EeRegions EeRegions;

/* Parses `text` (NULL or only blanks and comments: no regions). NULL with
 * `error` (EE_REGIONS_ERROR) naming the region (by name, or by position when
 * it has none) and what is wrong with it. */
EeRegions *ee_regions_parse (const char *text, GError **error);
EeRegions *ee_regions_ref (EeRegions *rs);
void ee_regions_unref (EeRegions *rs);

int ee_regions_n (const EeRegions *rs);
const EeRegion *ee_regions_get (const EeRegions *rs, int i);

/* The area share of each cell of a width x height grid covering the frame
 * that lies inside region i: weights[y * width + x] (0..1). */
void ee_region_weights (const EeRegion *r, int width, int height,
                        double *weights);

/* Every region's count from `map` (height x width cells, row-major, covering
 * the frame): counts[i] for region i. The weights are computed once per grid
 * size and kept. */
void ee_regions_count (EeRegions *rs, const float *map, int width, int height,
                       double *counts);

typedef enum
{
  EE_ALERT_NONE,     /* no change */
  EE_ALERT_RISING,   /* the count went above the threshold */
  EE_ALERT_CLEARING, /* the count fell below the clear level */
} EeAlertChange;

/* One step of an alert with hysteresis: *active becomes TRUE when `count`
 * goes above `threshold` and FALSE when it falls below `clear` (clear <=
 * threshold); in between it keeps its state, so a count wavering around
 * the threshold changes nothing. A count that is not finite changes
 * nothing. */
EeAlertChange ee_alert_update (gboolean *active, double count, double threshold,
                               double clear);
const char *ee_alert_change_name (EeAlertChange change);

G_END_DECLS
#endif /* EE_REGIONS_H */
