/* gst-earlyexit: the text earlyexitoverlay draws for a result, and drawing
 * it (a built-in 5x7 pixel font on a darkened box).
 *
 * Apart from the element so that tests can check the text of every kind of
 * result and where it lands, without reading it back from pixels. */
#ifndef EE_OVERLAY_TEXT_H
#define EE_OVERLAY_TEXT_H

#include <gst/video/video.h>

G_BEGIN_DECLS

#define EE_OVERLAY_MAX_LINES 6
#define EE_OVERLAY_MAX_CHARS 32

/* Font cells, in font pixels: a glyph is 5x7 in a 6x9 cell. */
#define EE_OVERLAY_CELL_W 6
#define EE_OVERLAY_CELL_H 9

typedef struct
{
  gchar lines[EE_OVERLAY_MAX_LINES][EE_OVERLAY_MAX_CHARS];
  int n_lines;
} EeOverlayText;

/* The lines for result `r` (an earlyexit/result structure), upper case,
 * each at most EE_OVERLAY_MAX_CHARS - 1 characters, characters the font
 * lacks as '?':
 *
 * - a count (task "count", or no task and a count field):
 *   `COUNT 12.3`, `EXIT AV2 4.1 MS` (`LATE` when the deadline was missed),
 *   `AUDIO 70%` or `NO AUDIO` (`CARRIED` for a carried result);
 * - a label (task "label", or no task and a label field): the label and its
 *   confidence, `CAT 87%`; `EXIT FINAL 4.1 MS` (`LATE`, `CARRIED`); and for
 *   audio windows `AUDIO 70%`;
 * - any other task: `TASK NAME`, the exit line when there is an exit, then
 *   the other fields as `NAME VALUE`, as many as fit.
 *
 * A result marked valid=false reads `COUNT INVALID` / `LABEL INVALID` /
 * `INVALID`; a number that is absent or not finite is drawn as `-`, never
 * as NAN. */
void ee_overlay_text_from_result (const GstStructure *r, EeOverlayText *t);

/* Draws the lines at (3 x scale, 3 x scale), `scale` frame pixels per font
 * pixel, on a box darkened to a third (2 x scale pixels of margin), white
 * (YUV: luma 235, chroma neutral in the box). Any format with 3 components
 * of 8 bits (RGB, BGR, xRGB ..., planar and semi-planar YUV). */
void ee_overlay_text_draw (GstVideoFrame *frame, const EeOverlayText *t,
                           int scale);

/* One line of `text` (upper case, as ee_overlay_text_from_result writes)
 * with its first cell at frame pixel (x, y), moved inside the frame where it
 * fits, on a box darkened to a third (box NULL) or filled with the sRGB
 * colour `box`. */
void ee_overlay_text_draw_label (GstVideoFrame *frame, const gchar *text, int x,
                                 int y, int scale, const guint8 *box);

/* The box ee_overlay_text_draw darkens, clipped to a width x height frame. */
void ee_overlay_text_box (const EeOverlayText *t, int scale, int width,
                          int height, int *x0, int *y0, int *x1, int *y1);

/* Whether frame pixel (x, y) is a lit font pixel of the text. */
gboolean ee_overlay_text_pixel (const EeOverlayText *t, int scale, int x,
                                int y);

G_END_DECLS
#endif /* EE_OVERLAY_TEXT_H */
