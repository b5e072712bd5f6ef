/* gst-earlyexit: draws the earlyexit result of each frame onto it.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef __GST_EARLYEXIT_OVERLAY_H__
#define __GST_EARLYEXIT_OVERLAY_H__

#include <gst/gst.h>
#include <gst/video/gstvideofilter.h>

#include "ee-overlay-map.h"

G_BEGIN_DECLS

#define GST_TYPE_EARLYEXIT_OVERLAY (gst_earlyexit_overlay_get_type ())
G_DECLARE_FINAL_TYPE (GstEarlyExitOverlay, gst_earlyexit_overlay, GST,
                      EARLYEXIT_OVERLAY, GstVideoFilter);

struct _GstEarlyExitOverlay
{
  GstVideoFilter parent;

  /* properties, protected by the object lock */
  guint scale;
  gdouble opacity;     /* the heatmap's; 0: no heatmap */
  gdouble heatmap_max; /* the value drawn brightest; 0: the map's largest */

  /* the streaming thread's */
  EeHeatmapScratch scratch;
};

GST_ELEMENT_REGISTER_DECLARE (earlyexitoverlay);

G_END_DECLS
#endif /* __GST_EARLYEXIT_OVERLAY_H__ */
