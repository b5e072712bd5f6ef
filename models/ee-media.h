/* gst-earlyexit: media files for the command-line tool: images (PNG, JPEG)
 * decoded by libpng / libjpeg, WAV through libsndfile, and the image
 * preprocessing every model input goes through. */
#ifndef EE_MEDIA_H
#define EE_MEDIA_H

#include "ee-model.h"

G_BEGIN_DECLS

/* 8-bit RGB, row-major, 3 bytes per pixel, no padding. */
typedef struct
{
  int width, height;
  guint8 *rgb;
} EeImage;

/* Decodes a PNG or JPEG file (chosen by its signature, not its name). */
gboolean ee_image_load (const char *path, EeImage *img, GError **error);
void ee_image_clear (EeImage *img);

/* Bilinear resize (half-pixel centres, as PyTorch's align_corners=False without
 * antialiasing) of 8-bit RGB with `stride` bytes per row and `bpp` bytes per
 * pixel (R, G, B first), then x = (pixel * scale - mean) / std in the model's
 * channel order, into out (1, 3, out_h, out_w). */
void ee_preprocess_rgb8 (const guint8 *rgb, int width, int height, int stride,
                         int bpp, const EePreprocess *pre, int out_w, int out_h,
                         float *out);

/* Whole file as mono float (channels averaged) at its own rate. */
float *ee_wav_read_mono (const char *path, int *rate, gsize *n_frames,
                         GError **error);

G_END_DECLS
#endif /* EE_MEDIA_H */
