/* gst-earlyexit: video frame -> network input on the CPU.
 *
 * Converts an 8-bit RGB or YUV frame of any size to the model's planar float
 * input (3, H, W) in one pass: each output pixel is the bilinear interpolation
 * (half-pixel centres, edge clamped: PyTorch's align_corners=False without
 * antialiasing, OpenCV's INTER_LINEAR) of the source converted to RGB, then
 * normalised with the model's EePreprocess. YUV is converted with the matrix
 * and range of the frame's colorimetry (BT.601 when unknown), chroma taken from
 * the nearest sample. Everything is allocated at creation, never per frame. */
#ifndef EE_VIDEOPREP_H
#define EE_VIDEOPREP_H

#include <gst/video/video.h>

#include "ee-model.h"

G_BEGIN_DECLS

typedef struct _EeVideoPrep EeVideoPrep;

/* TRUE for the formats ee_video_prep_new() accepts (8-bit packed RGB, 8-bit
 * planar or semi-planar YUV). */
gboolean ee_video_prep_supports (GstVideoFormat format);

/* NULL when the format is not supported. */
EeVideoPrep *ee_video_prep_new (const GstVideoInfo *in, int out_width,
                                int out_height, const EePreprocess *pre);
void ee_video_prep_free (EeVideoPrep *prep);

/* out: 3 x out_height x out_width floats, channel order as `pre` says. */
void ee_video_prep_process (EeVideoPrep *prep, const GstVideoFrame *frame,
                            float *out);

G_END_DECLS
#endif /* EE_VIDEOPREP_H */
