/* gst-earlyexit: draws the earlyexit result of each frame onto it.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/* clang-format off */
/**
 * SECTION:element-earlyexitoverlay
 * @title: earlyexitoverlay
 *
 * Draws the result an earlyexit element attached to a frame (the
 * `EarlyExitResultMeta`, see avcrowdcount) in its top-left corner, in a
 * built-in 5x7 pixel font on a darkened box, so that a gst-launch-1.0
 * pipeline can show or record the counts without an application:
 *
 * - `COUNT 12.3`: the count;
 * - `EXIT AV2 4.1 MS`: the exit that gave it and the inference time, with
 *   `LATE` when the deadline was missed;
 * - `AUDIO 70%` (or `NO AUDIO`): the audio coverage, with `CARRIED` when the
 *   result was carried over from an earlier frame.
 *
 * Frames without the meta pass unchanged. YUV frames get grey text (the
 * box's chroma is set to neutral).
 *
 * ## Example launch line
 * |[
 * GST_PLUGIN_PATH=build/gst gst-launch-1.0 \
 *   avcrowdcount name=c model-file=build/pipelines/demo-model.safetensors ! \
 *   earlyexitoverlay ! videoconvert ! autovideosink \
 *   videotestsrc num-buffers=100 ! video/x-raw,width=640,height=360,framerate=25/1 ! c.video \
 *   audiotestsrc num-buffers=40 samplesperbuffer=1600 ! audio/x-raw,format=F32LE,rate=16000,channels=1 ! c.audio
 * ]|
 */
/* clang-format on */

#include <string.h>

#include "gstearlyexitoverlay.h"
#include "earlyexit-meta.h"

GST_DEBUG_CATEGORY_STATIC (gst_earlyexit_overlay_debug);
#define GST_CAT_DEFAULT gst_earlyexit_overlay_debug

#define DEFAULT_SCALE 0
/* auto scale: one font pixel per this many frame rows */
#define AUTO_SCALE_ROWS 120
#define GLYPH_W 5
#define GLYPH_H 7
#define CELL_W 6
#define CELL_H 9
#define MAX_LINES 3
#define MAX_CHARS 32

#define VIDEO_CAPS                                                             \
  GST_VIDEO_CAPS_MAKE ("{ RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, "      \
                       "ARGB, ABGR, I420, YV12, NV12, NV21, Y42B, Y444 }")

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIDEO_CAPS));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIDEO_CAPS));

enum
{
  PROP_0,
  PROP_SCALE,
};

#define gst_earlyexit_overlay_parent_class parent_class
G_DEFINE_TYPE (GstEarlyExitOverlay, gst_earlyexit_overlay,
               GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (earlyexitoverlay, "earlyexitoverlay",
                             GST_RANK_NONE, GST_TYPE_EARLYEXIT_OVERLAY);

static void gst_earlyexit_overlay_set_property (GObject *object, guint prop_id,
                                                const GValue *value,
                                                GParamSpec *pspec);
static void gst_earlyexit_overlay_get_property (GObject *object, guint prop_id,
                                                GValue *value,
                                                GParamSpec *pspec);
static GstFlowReturn
gst_earlyexit_overlay_transform_frame_ip (GstVideoFilter *filter,
                                          GstVideoFrame *frame);

static void
gst_earlyexit_overlay_class_init (GstEarlyExitOverlayClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);

  gobject_class->set_property = gst_earlyexit_overlay_set_property;
  gobject_class->get_property = gst_earlyexit_overlay_get_property;

  /**
   * GstEarlyExitOverlay:scale:
   *
   * Size of one font pixel in frame pixels; 0 picks one per 120 rows.
   */
  g_object_class_install_property (
      gobject_class, PROP_SCALE,
      g_param_spec_uint ("scale", "Scale",
                         "Size of one font pixel in frame pixels (0 = one "
                         "per 120 frame rows)",
                         0, 64, DEFAULT_SCALE,
                         G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS
                             | GST_PARAM_MUTABLE_PLAYING));

  GST_DEBUG_CATEGORY_INIT (gst_earlyexit_overlay_debug, "earlyexitoverlay", 0,
                           "Draws earlyexit results onto the video");

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Early-exit result overlay", "Filter/Editor/Video",
      "Draws the count, exit and timing of earlyexit results onto the frames",
      "gst-earlyexit");

  filter_class->transform_frame_ip
      = GST_DEBUG_FUNCPTR (gst_earlyexit_overlay_transform_frame_ip);
}

static void
gst_earlyexit_overlay_init (GstEarlyExitOverlay *self)
{
  self->scale = DEFAULT_SCALE;
}

static void
gst_earlyexit_overlay_set_property (GObject *object, guint prop_id,
                                    const GValue *value, GParamSpec *pspec)
{
  GstEarlyExitOverlay *self = GST_EARLYEXIT_OVERLAY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SCALE:
      self->scale = g_value_get_uint (value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

static void
gst_earlyexit_overlay_get_property (GObject *object, guint prop_id,
                                    GValue *value, GParamSpec *pspec)
{
  GstEarlyExitOverlay *self = GST_EARLYEXIT_OVERLAY (object);

  GST_OBJECT_LOCK (self);
  switch (prop_id) {
    case PROP_SCALE:
      g_value_set_uint (value, self->scale);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
      break;
  }
  GST_OBJECT_UNLOCK (self);
}

/* 5x7 glyphs for ' ' (32) to 'Z' (90), one byte per row, bit 4 = left. */
static const guint8 font[59][GLYPH_H] = {
  ['0' - ' '] = { 0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E },
  ['1' - ' '] = { 0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E },
  ['2' - ' '] = { 0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F },
  ['3' - ' '] = { 0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E },
  ['4' - ' '] = { 0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02 },
  ['5' - ' '] = { 0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E },
  ['6' - ' '] = { 0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E },
  ['7' - ' '] = { 0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08 },
  ['8' - ' '] = { 0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E },
  ['9' - ' '] = { 0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C },
  ['A' - ' '] = { 0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11 },
  ['B' - ' '] = { 0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E },
  ['C' - ' '] = { 0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E },
  ['D' - ' '] = { 0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C },
  ['E' - ' '] = { 0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F },
  ['F' - ' '] = { 0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10 },
  ['G' - ' '] = { 0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F },
  ['H' - ' '] = { 0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11 },
  ['I' - ' '] = { 0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E },
  ['J' - ' '] = { 0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C },
  ['K' - ' '] = { 0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11 },
  ['L' - ' '] = { 0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F },
  ['M' - ' '] = { 0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11 },
  ['N' - ' '] = { 0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11 },
  ['O' - ' '] = { 0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E },
  ['P' - ' '] = { 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10 },
  ['Q' - ' '] = { 0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D },
  ['R' - ' '] = { 0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11 },
  ['S' - ' '] = { 0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E },
  ['T' - ' '] = { 0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04 },
  ['U' - ' '] = { 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E },
  ['V' - ' '] = { 0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04 },
  ['W' - ' '] = { 0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A },
  ['X' - ' '] = { 0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11 },
  ['Y' - ' '] = { 0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04 },
  ['Z' - ' '] = { 0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F },
  ['.' - ' '] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C },
  [':' - ' '] = { 0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00 },
  ['-' - ' '] = { 0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00 },
  ['(' - ' '] = { 0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02 },
  [')' - ' '] = { 0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08 },
  ['%' - ' '] = { 0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03 },
  ['/' - ' '] = { 0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00 },
  ['*' - ' '] = { 0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00 },
};

/* The text block: lines of upper-case text placed at (x, y), `scale` frame
 * pixels per font pixel. */
typedef struct
{
  gchar lines[MAX_LINES][MAX_CHARS];
  int n_lines, max_chars;
  int x, y, scale;
} Text;

static gboolean
text_pixel (const Text *t, int x, int y)
{
  int dx = x - t->x, dy = y - t->y, line, col, gx, gy;
  guchar c;

  if (dx < 0 || dy < 0)
    return FALSE;
  line = dy / (CELL_H * t->scale);
  col = dx / (CELL_W * t->scale);
  gy = dy % (CELL_H * t->scale) / t->scale;
  gx = dx % (CELL_W * t->scale) / t->scale;
  if (line >= t->n_lines || gy >= GLYPH_H || gx >= GLYPH_W
      || col >= (int)strlen (t->lines[line]))
    return FALSE;
  c = (guchar)t->lines[line][col];
  if (c < ' ' || c > 'Z')
    return FALSE;
  return (font[c - ' '][gy] >> (GLYPH_W - 1 - gx)) & 1;
}

static void text_add (Text *t, const gchar *format, ...) G_GNUC_PRINTF (2, 3);

static void
text_add (Text *t, const gchar *format, ...)
{
  va_list ap;
  gchar *line = t->lines[t->n_lines];

  va_start (ap, format);
  g_vsnprintf (line, MAX_CHARS, format, ap);
  va_end (ap);
  for (gchar *p = line; *p; p++)
    *p = g_ascii_toupper (*p);
  t->max_chars = MAX (t->max_chars, (int)strlen (line));
  t->n_lines++;
}

/* Darkens the box around the text and writes the text, component by
 * component (chroma planes may be subsampled). */
static void
draw (GstVideoFrame *frame, const Text *t)
{
  const GstVideoFormatInfo *finfo = frame->info.finfo;
  gboolean yuv = GST_VIDEO_FORMAT_INFO_IS_YUV (finfo);
  int pad = 2 * t->scale;
  int bx0 = MAX (t->x - pad, 0), by0 = MAX (t->y - pad, 0);
  int bx1 = MIN (t->x + t->max_chars * CELL_W * t->scale + pad,
                 GST_VIDEO_FRAME_WIDTH (frame));
  int by1 = MIN (t->y + t->n_lines * CELL_H * t->scale + pad,
                 GST_VIDEO_FRAME_HEIGHT (frame));

  for (int c = 0; c < 3; c++) {
    guint8 *data = GST_VIDEO_FRAME_COMP_DATA (frame, c);
    int stride = GST_VIDEO_FRAME_COMP_STRIDE (frame, c);
    int pstride = GST_VIDEO_FRAME_COMP_PSTRIDE (frame, c);
    int ws = GST_VIDEO_FORMAT_INFO_W_SUB (finfo, c);
    int hs = GST_VIDEO_FORMAT_INFO_H_SUB (finfo, c);
    gboolean chroma = yuv && c > 0;

    for (int y = by0 >> hs; y <= (by1 - 1) >> hs; y++) {
      guint8 *row = data + (gsize)y * stride;
      for (int x = bx0 >> ws; x <= (bx1 - 1) >> ws; x++) {
        guint8 *p = row + (gsize)x * pstride;
        if (chroma)
          *p = 128;
        else if (text_pixel (t, x, y))
          *p = yuv ? 235 : 255;
        else
          *p = yuv ? 16 + (*p - 16) / 3 : *p / 3;
      }
    }
  }
}

static GstFlowReturn
gst_earlyexit_overlay_transform_frame_ip (GstVideoFilter *filter,
                                          GstVideoFrame *frame)
{
  GstEarlyExitOverlay *self = GST_EARLYEXIT_OVERLAY (filter);
  const GstStructure *r = gst_buffer_get_earlyexit_result (frame->buffer);
  Text t = { 0 };
  const gchar *exit;
  guint scale;

  if (!r)
    return GST_FLOW_OK;

  GST_OBJECT_LOCK (self);
  scale = self->scale;
  GST_OBJECT_UNLOCK (self);
  t.scale = scale ? (int)scale
                  : MAX (GST_VIDEO_FRAME_HEIGHT (frame) / AUTO_SCALE_ROWS, 1);
  t.x = t.y = 3 * t.scale;

  text_add (&t, "count %.1f", earlyexit_result_get_count (r));
  exit = earlyexit_result_get_exit (r);
  text_add (&t, "exit %s %.1f ms%s", exit ? exit : "?",
            earlyexit_result_get_inference_time (r) / 1e6,
            earlyexit_result_get_deadline_missed (r) ? " late" : "");
  if (earlyexit_result_get_audio_used (r))
    text_add (&t, "audio %d%%%s",
              (int)(100 * earlyexit_result_get_audio_coverage (r) + 0.5),
              earlyexit_result_is_fresh (r) ? "" : " carried");
  else
    text_add (&t, "no audio%s",
              earlyexit_result_is_fresh (r) ? "" : " carried");
  draw (frame, &t);
  return GST_FLOW_OK;
}
