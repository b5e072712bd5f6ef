/* gst-earlyexit: image classification of video frames with early exits.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#ifndef __GST_EXIT_CLASSIFY_H__
#define __GST_EXIT_CLASSIFY_H__

#include <gst/video/video.h>

#include "gstearlyexitclassifier.h"
#include "ee-videoprep.h"

G_BEGIN_DECLS

#define GST_TYPE_EXIT_CLASSIFY (gst_exit_classify_get_type ())
G_DECLARE_FINAL_TYPE (GstExitClassify, gst_exit_classify, GST, EXIT_CLASSIFY,
                      GstEarlyExitClassifier);

struct _GstExitClassify
{
  GstEarlyExitClassifier parent;

  /* streaming thread only (set_caps and transform_ip) */
  GstVideoInfo vinfo;
  EeVideoPrep *prep; /* frame -> network input; NULL before caps */
};

GST_ELEMENT_REGISTER_DECLARE (exitclassify);

G_END_DECLS
#endif /* __GST_EXIT_CLASSIFY_H__ */
