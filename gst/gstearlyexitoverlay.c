/* gst-earlyexit: draws the earlyexit result of each frame onto it.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
/* clang-format off */
/**
 * SECTION:element-earlyexitoverlay
 * @title: earlyexitoverlay
 *
 * Draws the result an earlyexit element attached to a frame (the
 * `EarlyExitResultMeta`, see avcrowdcount and exitclassify) in its top-left
 * corner, in a built-in 5x7 pixel font on a darkened box, so that a
 * gst-launch-1.0 pipeline can show or record the results without an
 * application. What it draws depends on the result's `task`:
 *
 * - a count (avcrowdcount): `COUNT 12.3`; `EXIT AV2 4.1 MS`, the exit that
 *   gave it and the inference time, with `LATE` when the deadline was
 *   missed; `AUDIO 70%` (or `NO AUDIO`), the audio coverage, with `CARRIED`
 *   when the result was carried over from an earlier frame;
 * - a label (exitclassify, audioexitclassify): `CAT 87%`, the top label and
 *   its confidence; `EXIT FINAL 4.1 MS` with `LATE` and `CARRIED` as above;
 *   for audio windows `AUDIO 70%`;
 * - any other task: `TASK NAME`, the exit line, then the result's other
 *   fields as `NAME VALUE`, as many as fit (six lines in all).
 *
 * With a density map in the result (avcrowdcount `density-map=true`) the map
 * is drawn first, as a translucent heatmap scaled to the frame: an
 * inferno-like perceptual colormap (dark purple, red, orange, pale yellow
 * for the densest cells; computed in OKLab with lightness rising evenly),
 * opacity #GstEarlyExitOverlay:opacity where the map is dense and fading to
 * nothing where it is empty, the brightest colour at
 * #GstEarlyExitOverlay:heatmap-max (default: the map's largest cell). The
 * result's regions (avcrowdcount `regions`) are outlined, each labelled with
 * its name and count (`-` when the exit had no map); a region whose alert is
 * raised is outlined and labelled in red with `ALERT`, and the whole frame's
 * raised alert adds an `ALERT` line to the text. A count result whose exit has
 * no map (when one was asked for) says `NO MAP AT THIS EXIT`. A classifier's
 * result draws its label, confidence and exit, never a count or a map.
 *
 * A result marked `valid=false` (its network output was not finite) reads
 * `COUNT INVALID` or `LABEL INVALID`; a number that is absent or not finite
 * is drawn as `-`. Text is upper case, cut at 31 characters; characters the
 * font lacks are drawn as `?`.
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
#include "ee-props.h"
#include "earlyexit-meta.h"
#include "ee-overlay-text.h"

GST_DEBUG_CATEGORY_STATIC (gst_earlyexit_overlay_debug);
#define GST_CAT_DEFAULT gst_earlyexit_overlay_debug

#define DEFAULT_SCALE 0
#define DEFAULT_OPACITY 0.55
#define DEFAULT_HEATMAP_MAX 0.0
/* auto scale: one font pixel per this many frame rows */
#define AUTO_SCALE_ROWS 120

#define VIDEO_CAPS                                                             \
  GST_VIDEO_CAPS_MAKE ("{ RGB, BGR, RGBx, BGRx, xRGB, xBGR, RGBA, BGRA, "      \
                       "ARGB, ABGR, I420, YV12, NV12, NV21, Y42B, Y444 }")

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE (
    "sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIDEO_CAPS));

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE (
    "src", GST_PAD_SRC, GST_PAD_ALWAYS, GST_STATIC_CAPS (VIDEO_CAPS));

#define gst_earlyexit_overlay_parent_class parent_class
G_DEFINE_TYPE (GstEarlyExitOverlay, gst_earlyexit_overlay,
               GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (earlyexitoverlay, "earlyexitoverlay",
                             GST_RANK_NONE, GST_TYPE_EARLYEXIT_OVERLAY);

static GstFlowReturn
gst_earlyexit_overlay_transform_frame_ip (GstVideoFilter *filter,
                                          GstVideoFrame *frame);
static void gst_earlyexit_overlay_finalize (GObject *object);

static void
gst_earlyexit_overlay_class_init (GstEarlyExitOverlayClass *klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);

  gobject_class->finalize = gst_earlyexit_overlay_finalize;

  /**
   * GstEarlyExitOverlay:scale:
   *
   * Size of one font pixel in frame pixels; 0 picks one per 120 rows.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitOverlay, scale),
      g_param_spec_uint ("scale", "Scale",
                         "Size of one font pixel in frame pixels (0 = one "
                         "per 120 frame rows)",
                         0, 64, DEFAULT_SCALE, EE_PARAM_PLAYING));

  /**
   * GstEarlyExitOverlay:opacity:
   *
   * Opacity of the density-map heatmap where the map is densest (0: no
   * heatmap).
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitOverlay, opacity),
      g_param_spec_double ("opacity", "Opacity",
                           "Opacity of the density-map heatmap where the map "
                           "is dense (0 = no heatmap)",
                           0.0, 1.0, DEFAULT_OPACITY, EE_PARAM_PLAYING));

  /**
   * GstEarlyExitOverlay:heatmap-max:
   *
   * The map value drawn in the brightest colour (people per cell); 0: each
   * frame's largest cell.
   */
  ee_props_add_field (
      gobject_class, G_STRUCT_OFFSET (GstEarlyExitOverlay, heatmap_max),
      g_param_spec_double ("heatmap-max", "Heatmap Max",
                           "Map value drawn brightest, in people per cell (0 "
                           "= the frame's largest cell)",
                           0.0, G_MAXDOUBLE, DEFAULT_HEATMAP_MAX,
                           EE_PARAM_PLAYING));

  GST_DEBUG_CATEGORY_INIT (gst_earlyexit_overlay_debug, "earlyexitoverlay", 0,
                           "Draws earlyexit results onto the video");

  gst_element_class_add_static_pad_template (element_class, &sink_template);
  gst_element_class_add_static_pad_template (element_class, &src_template);
  gst_element_class_set_static_metadata (
      element_class, "Early-exit result overlay", "Filter/Editor/Video",
      "Draws earlyexit results (count or label, exit, timing) onto the frames",
      "gst-earlyexit");

  filter_class->transform_frame_ip
      = GST_DEBUG_FUNCPTR (gst_earlyexit_overlay_transform_frame_ip);
}

static void
gst_earlyexit_overlay_init (GstEarlyExitOverlay *self)
{
  ee_props_init (G_OBJECT (self), GST_TYPE_EARLYEXIT_OVERLAY);
}

static void
gst_earlyexit_overlay_finalize (GObject *object)
{
  GstEarlyExitOverlay *self = GST_EARLYEXIT_OVERLAY (object);

  ee_heatmap_scratch_clear (&self->scratch);
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static GstFlowReturn
gst_earlyexit_overlay_transform_frame_ip (GstVideoFilter *filter,
                                          GstVideoFrame *frame)
{
  GstEarlyExitOverlay *self = GST_EARLYEXIT_OVERLAY (filter);
  const GstStructure *r = gst_buffer_get_earlyexit_result (frame->buffer);
  EeOverlayText t;
  guint scale;
  gdouble opacity, vmax;

  if (!r)
    return GST_FLOW_OK;

  GST_OBJECT_LOCK (self);
  scale = self->scale;
  opacity = self->opacity;
  vmax = self->heatmap_max;
  GST_OBJECT_UNLOCK (self);
  if (!scale)
    scale = MAX (GST_VIDEO_FRAME_HEIGHT (frame) / AUTO_SCALE_ROWS, 1);

  ee_overlay_result_draw_map (frame, r, opacity, vmax, (int)scale,
                              &self->scratch);

  ee_overlay_text_from_result (r, &t);
  GST_LOG_OBJECT (self, "%d lines, first \"%s\"", t.n_lines,
                  t.n_lines ? t.lines[0] : "");
  ee_overlay_text_draw (frame, &t, (int)scale);
  return GST_FLOW_OK;
}
