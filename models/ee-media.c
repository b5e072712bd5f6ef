/* gst-earlyexit: media files for the command-line tool. */
#include "ee-media.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jpeglib.h>
#include <png.h>
#include <sndfile.h>

#define MAX_IMAGE_SIDE 16384

static gboolean
load_png (const char *path, FILE *f, EeImage *img, GError **error)
{
  png_image pi;

  memset (&pi, 0, sizeof pi);
  pi.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_stdio (&pi, f))
    goto fail;
  if (pi.width < 1 || pi.height < 1 || pi.width > MAX_IMAGE_SIDE
      || pi.height > MAX_IMAGE_SIDE) {
    png_image_free (&pi);
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: image size %ux%u outside 1..%d", path, pi.width,
                 pi.height, MAX_IMAGE_SIDE);
    return FALSE;
  }
  pi.format = PNG_FORMAT_RGB;
  img->width = (int)pi.width;
  img->height = (int)pi.height;
  img->rgb = g_malloc ((gsize)pi.width * pi.height * 3);
  if (!png_image_finish_read (&pi, NULL, img->rgb, 0, NULL)) {
    ee_image_clear (img);
    goto fail;
  }
  return TRUE;

fail:
  g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "%s: bad PNG: %s", path,
               pi.message);
  png_image_free (&pi);
  return FALSE;
}

typedef struct
{
  struct jpeg_error_mgr mgr;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
} JpegError;

static void
jpeg_error_exit (j_common_ptr cinfo)
{
  JpegError *e = (JpegError *)cinfo->err;
  cinfo->err->format_message (cinfo, e->message);
  longjmp (e->jump, 1);
}

static gboolean
load_jpeg (const char *path, FILE *f, EeImage *img, GError **error)
{
  struct jpeg_decompress_struct cinfo;
  JpegError err;
  guint8 *volatile rgb = NULL;

  cinfo.err = jpeg_std_error (&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  if (setjmp (err.jump)) {
    jpeg_destroy_decompress (&cinfo);
    g_free (rgb);
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "%s: bad JPEG: %s", path,
                 err.message);
    return FALSE;
  }
  jpeg_create_decompress (&cinfo);
  jpeg_stdio_src (&cinfo, f);
  jpeg_read_header (&cinfo, TRUE);
  cinfo.out_color_space = JCS_RGB;
  jpeg_start_decompress (&cinfo);
  if (cinfo.output_width > MAX_IMAGE_SIDE
      || cinfo.output_height > MAX_IMAGE_SIDE || cinfo.output_components != 3) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: JPEG of %ux%u with %d components is not supported", path,
                 cinfo.output_width, cinfo.output_height,
                 cinfo.output_components);
    jpeg_destroy_decompress (&cinfo);
    return FALSE;
  }
  rgb = g_malloc ((gsize)cinfo.output_width * cinfo.output_height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = rgb + (gsize)cinfo.output_scanline * cinfo.output_width * 3;
    jpeg_read_scanlines (&cinfo, &row, 1);
  }
  img->width = (int)cinfo.output_width;
  img->height = (int)cinfo.output_height;
  img->rgb = rgb;
  jpeg_finish_decompress (&cinfo);
  jpeg_destroy_decompress (&cinfo);
  return TRUE;
}

gboolean
ee_image_load (const char *path, EeImage *img, GError **error)
{
  guint8 sig[8] = { 0 };
  FILE *f = fopen (path, "rb");
  gboolean ok;

  memset (img, 0, sizeof *img);
  if (!f) {
    g_set_error (error, EE_ERROR, EE_ERROR_FILE, "cannot open %s: %s", path,
                 g_strerror (errno));
    return FALSE;
  }
  if (fread (sig, 1, sizeof sig, f) < 3) {
    fclose (f);
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "%s: too short for an image",
                 path);
    return FALSE;
  }
  rewind (f);
  if (!png_sig_cmp (sig, 0, sizeof sig))
    ok = load_png (path, f, img, error);
  else if (sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF)
    ok = load_jpeg (path, f, img, error);
  else {
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "%s: not a PNG or JPEG file", path);
    ok = FALSE;
  }
  fclose (f);
  return ok;
}

void
ee_image_clear (EeImage *img)
{
  g_clear_pointer (&img->rgb, g_free);
  img->width = img->height = 0;
}

void
ee_preprocess_rgb8 (const guint8 *rgb, int width, int height, int stride,
                    int bpp, const EePreprocess *pre, int out_w, int out_h,
                    float *out)
{
  const double sy = (double)height / out_h, sx = (double)width / out_w;
  const gsize plane = (gsize)out_w * out_h;

  for (int y = 0; y < out_h; y++) {
    double fy = MAX ((y + 0.5) * sy - 0.5, 0.0);
    int y0 = MIN ((int)fy, height - 1), y1 = MIN (y0 + 1, height - 1);
    double wy = fy - y0;
    for (int x = 0; x < out_w; x++) {
      double fx = MAX ((x + 0.5) * sx - 0.5, 0.0);
      int x0 = MIN ((int)fx, width - 1), x1 = MIN (x0 + 1, width - 1);
      double wx = fx - x0;
      const guint8 *p00 = rgb + (gsize)y0 * stride + (gsize)x0 * bpp;
      const guint8 *p01 = rgb + (gsize)y0 * stride + (gsize)x1 * bpp;
      const guint8 *p10 = rgb + (gsize)y1 * stride + (gsize)x0 * bpp;
      const guint8 *p11 = rgb + (gsize)y1 * stride + (gsize)x1 * bpp;
      for (int c = 0; c < 3; c++) {
        double v = (1 - wy) * ((1 - wx) * p00[c] + wx * p01[c])
                   + wy * ((1 - wx) * p10[c] + wx * p11[c]);
        int oc = pre->bgr ? 2 - c : c;
        out[oc * plane + (gsize)y * out_w + x]
            = (float)((v * pre->scale - pre->mean[oc]) / pre->std[oc]);
      }
    }
  }
}

float *
ee_wav_read_mono (const char *path, int *rate, gsize *n_frames, GError **error)
{
  SF_INFO info = { 0 };
  SNDFILE *sf = sf_open (path, SFM_READ, &info);
  float *interleaved, *mono;
  sf_count_t got;

  if (!sf) {
    g_set_error (error, EE_ERROR, EE_ERROR_FILE, "cannot read %s: %s", path,
                 sf_strerror (NULL));
    return NULL;
  }
  if (info.channels < 1 || info.frames < 0
      || (guint64)info.frames > G_MAXSIZE / sizeof (float) / info.channels) {
    g_set_error (error, EE_ERROR, EE_ERROR_FORMAT,
                 "%s: unusable header (%d channels, %" G_GINT64_FORMAT
                 " frames)",
                 path, info.channels, (gint64)info.frames);
    sf_close (sf);
    return NULL;
  }
  interleaved = g_new (float, MAX (info.frames * info.channels, 1));
  got = sf_readf_float (sf, interleaved, info.frames);
  sf_close (sf);
  if (got != info.frames) {
    g_set_error (error, EE_ERROR, EE_ERROR_FILE,
                 "%s: read %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " frames",
                 path, (gint64)got, (gint64)info.frames);
    g_free (interleaved);
    return NULL;
  }
  if (info.channels == 1) {
    mono = interleaved;
  } else {
    /* down-mix by averaging, as the reference code's librosa.load(mono=True) */
    mono = g_new (float, MAX (info.frames, 1));
    for (sf_count_t i = 0; i < info.frames; i++) {
      double sum = 0.0;
      for (int c = 0; c < info.channels; c++)
        sum += interleaved[i * info.channels + c];
      mono[i] = (float)(sum / info.channels);
    }
    g_free (interleaved);
  }
  *rate = info.samplerate;
  *n_frames = (gsize)info.frames;
  return mono;
}
