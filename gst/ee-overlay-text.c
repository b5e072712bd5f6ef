/* gst-earlyexit: the text earlyexitoverlay draws for a result
 * (ee-overlay-text.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "ee-overlay-text.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "earlyexit-meta.h"
#include "ee-overlay-map.h"

#define GLYPH_W 5
#define GLYPH_H 7
#define FIRST_GLYPH ' '
#define LAST_GLYPH '_'

/* 5x7 glyphs for ' ' (32) to '_' (95), one byte per row, bit 4 = left; a
 * character without one is drawn as '?'. */
static const guint8 font[LAST_GLYPH - FIRST_GLYPH + 1][GLYPH_H] = {
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
  [',' - ' '] = { 0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08 },
  [':' - ' '] = { 0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00 },
  ['-' - ' '] = { 0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00 },
  ['+' - ' '] = { 0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00 },
  ['=' - ' '] = { 0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00 },
  ['(' - ' '] = { 0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02 },
  [')' - ' '] = { 0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08 },
  ['[' - ' '] = { 0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E },
  [']' - ' '] = { 0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E },
  ['%' - ' '] = { 0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03 },
  ['/' - ' '] = { 0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00 },
  ['*' - ' '] = { 0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00 },
  ['#' - ' '] = { 0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A },
  ['!' - ' '] = { 0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04 },
  ['?' - ' '] = { 0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04 },
  ['\'' - ' '] = { 0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00 },
  ['_' - ' '] = { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F },
};

/* ------------------------------------------------------------ text */

static gboolean
has_glyph (gunichar c)
{
  if (c == ' ')
    return TRUE;
  if (c < FIRST_GLYPH || c > LAST_GLYPH)
    return FALSE;
  for (int i = 0; i < GLYPH_H; i++)
    if (font[c - FIRST_GLYPH][i])
      return TRUE;
  return FALSE;
}

/* Appends `src` to the line `dst` (of *len characters), upper case, one
 * '?' per character (UTF-8) the font lacks, up to `max` characters. */
static void
put (gchar *dst, int *len, int max, const gchar *src)
{
  gboolean utf8 = g_utf8_validate (src, -1, NULL);

  for (const gchar *p = src; *p && *len < max;
       p = utf8 ? g_utf8_next_char (p) : p + 1) {
    gunichar c = utf8 ? g_utf8_get_char (p) : (guchar)*p;
    c = c < 128 ? (gunichar)g_ascii_toupper ((gchar)c) : c;
    dst[(*len)++] = has_glyph (c) ? (gchar)c : '?';
  }
  dst[*len] = '\0';
}

static void add_line (EeOverlayText *t, const gchar *format, ...)
    G_GNUC_PRINTF (2, 3);

static void
add_line (EeOverlayText *t, const gchar *format, ...)
{
  va_list ap;
  gchar *s;
  int len = 0;

  if (t->n_lines >= EE_OVERLAY_MAX_LINES)
    return;
  va_start (ap, format);
  s = g_strdup_vprintf (format, ap);
  va_end (ap);
  put (t->lines[t->n_lines++], &len, EE_OVERLAY_MAX_CHARS - 1, s);
  g_free (s);
}

/* A number as text: "-" when absent or not finite. */
static void
number (gchar *buf, gsize size, gboolean have, gdouble v, const gchar *format)
{
  if (have && isfinite (v))
    g_snprintf (buf, size, format, v);
  else
    g_strlcpy (buf, "-", size);
}

/* "EXIT AV2 4.1 MS", late and carried marks. */
static void
add_exit_line (EeOverlayText *t, const GstStructure *r, gboolean carried_mark)
{
  const gchar *exit = earlyexit_result_get_exit (r);
  guint64 ns;

  add_line (t, "exit %s %.1f ms%s%s", exit ? exit : "-",
            gst_structure_get_uint64 (r, "inference-time", &ns) ? ns / 1e6
                                                                : 0.0,
            earlyexit_result_get_deadline_missed (r) ? " late" : "",
            carried_mark && !earlyexit_result_is_fresh (r) ? " carried" : "");
}

static void
add_audio_line (EeOverlayText *t, const GstStructure *r, gboolean carried_mark)
{
  const gchar *carried
      = carried_mark && !earlyexit_result_is_fresh (r) ? " carried" : "";
  gdouble coverage;
  gchar pct[16];

  if (!earlyexit_result_get_audio_used (r)) {
    add_line (t, "no audio%s", carried);
    return;
  }
  if (gst_structure_get_double (r, "audio-coverage", &coverage)
      && isfinite (coverage))
    g_snprintf (pct, sizeof pct, "%d%%", (int)(100 * coverage + 0.5));
  else
    g_strlcpy (pct, "-", sizeof pct);
  add_line (t, "audio %s%s", pct, carried);
}

static void
count_text (const GstStructure *r, EeOverlayText *t)
{
  gdouble count = NAN;
  gchar num[32];

  if (!earlyexit_result_is_valid (r)) {
    add_line (t, "count invalid");
  } else {
    gboolean have = gst_structure_get_double (r, "count", &count);

    number (num, sizeof num, have, count, "%.1f");
    add_line (t, "count %s", num);
  }
  add_exit_line (t, r, FALSE);
  add_audio_line (t, r, TRUE);
  /* the whole frame's alert, and an exit without a map when one was asked
   * for (density-map, regions) */
  if (earlyexit_result_get_alert (r))
    add_line (t, "alert");
  if (gst_structure_has_field (r, "has-map") && !earlyexit_result_has_map (r))
    add_line (t, "no map at this exit");
}

static void
label_text (const GstStructure *r, EeOverlayText *t)
{
  const gchar *label = earlyexit_result_get_label (r);
  gdouble confidence;
  gchar suffix[16];
  int len = 0;

  if (!earlyexit_result_is_valid (r)) {
    add_line (t, "label invalid");
  } else {
    if (gst_structure_get_double (r, "confidence", &confidence)
        && isfinite (confidence))
      g_snprintf (suffix, sizeof suffix, " %d%%",
                  (int)(100 * confidence + 0.5));
    else
      g_strlcpy (suffix, " -", sizeof suffix);
    /* a long label is cut, the confidence kept */
    put (t->lines[t->n_lines], &len,
         EE_OVERLAY_MAX_CHARS - 1 - (int)strlen (suffix), label ? label : "-");
    put (t->lines[t->n_lines], &len, EE_OVERLAY_MAX_CHARS - 1, suffix);
    t->n_lines++;
  }
  add_exit_line (t, r, TRUE);
  if (gst_structure_has_field (r, "audio-coverage"))
    add_audio_line (t, r, FALSE);
}

/* Fields an unknown task's text leaves out: said by the exit line, or
 * bookkeeping. */
static const gchar *const common_fields[]
    = { "task",     "exit",           "exit-index",      "n-exits",   "fresh",
        "deadline", "inference-time", "deadline-missed", "unique-id", "valid",
        NULL };

static gboolean
field_text (GQuark field, const GValue *value, gpointer user_data)
{
  EeOverlayText *t = user_data;
  const gchar *name = g_quark_to_string (field);
  GType type = G_VALUE_TYPE (value);
  gchar buf[64];

  if (g_strv_contains (common_fields, name))
    return TRUE;
  if (type == G_TYPE_DOUBLE)
    number (buf, sizeof buf, TRUE, g_value_get_double (value), "%.3g");
  else if (type == G_TYPE_FLOAT)
    number (buf, sizeof buf, TRUE, g_value_get_float (value), "%.3g");
  else if (type == G_TYPE_INT)
    g_snprintf (buf, sizeof buf, "%d", g_value_get_int (value));
  else if (type == G_TYPE_UINT)
    g_snprintf (buf, sizeof buf, "%u", g_value_get_uint (value));
  else if (type == G_TYPE_INT64)
    g_snprintf (buf, sizeof buf, "%" G_GINT64_FORMAT,
                g_value_get_int64 (value));
  else if (type == G_TYPE_UINT64)
    g_snprintf (buf, sizeof buf, "%" G_GUINT64_FORMAT,
                g_value_get_uint64 (value));
  else if (type == G_TYPE_BOOLEAN)
    g_strlcpy (buf, g_value_get_boolean (value) ? "yes" : "no", sizeof buf);
  else if (type == G_TYPE_STRING)
    g_strlcpy (buf,
               g_value_get_string (value) ? g_value_get_string (value) : "-",
               sizeof buf);
  else if (GST_VALUE_HOLDS_ARRAY (value) || GST_VALUE_HOLDS_LIST (value))
    g_snprintf (buf, sizeof buf, "(%u values)",
                GST_VALUE_HOLDS_ARRAY (value)
                    ? gst_value_array_get_size (value)
                    : gst_value_list_get_size (value));
  else
    return TRUE;
  add_line (t, "%s %s", name, buf);
  return t->n_lines < EE_OVERLAY_MAX_LINES;
}

static void
other_text (const GstStructure *r, EeOverlayText *t)
{
  const gchar *task = earlyexit_result_get_task (r);

  add_line (t, "task %s%s", task ? task : "-",
            earlyexit_result_is_valid (r) ? "" : " invalid");
  if (earlyexit_result_get_exit (r))
    add_exit_line (t, r, TRUE);
  gst_structure_foreach (r, field_text, t);
}

void
ee_overlay_text_from_result (const GstStructure *r, EeOverlayText *t)
{
  const gchar *task = earlyexit_result_get_task (r);

  memset (t, 0, sizeof *t);
  if (g_strcmp0 (task, "count") == 0
      || (!task && gst_structure_has_field (r, "count")))
    count_text (r, t);
  else if (g_strcmp0 (task, "label") == 0
           || (!task && gst_structure_has_field (r, "label")))
    label_text (r, t);
  else
    other_text (r, t);
}

/* ------------------------------------------------------------ drawing */

#define ORIGIN(scale) (3 * (scale))

/* Whether (x, y) is a lit font pixel of text whose first cell starts at
 * (ox, oy). */
static gboolean
pixel_at (const EeOverlayText *t, int scale, int ox, int oy, int x, int y)
{
  int dx = x - ox, dy = y - oy, line, col, gx, gy;
  guchar c;

  if (dx < 0 || dy < 0 || scale < 1)
    return FALSE;
  line = dy / (EE_OVERLAY_CELL_H * scale);
  col = dx / (EE_OVERLAY_CELL_W * scale);
  gy = dy % (EE_OVERLAY_CELL_H * scale) / scale;
  gx = dx % (EE_OVERLAY_CELL_W * scale) / scale;
  if (line >= t->n_lines || gy >= GLYPH_H || gx >= GLYPH_W
      || col >= (int)strlen (t->lines[line]))
    return FALSE;
  c = (guchar)t->lines[line][col];
  if (c < FIRST_GLYPH || c > LAST_GLYPH)
    return FALSE;
  return (font[c - FIRST_GLYPH][gy] >> (GLYPH_W - 1 - gx)) & 1;
}

gboolean
ee_overlay_text_pixel (const EeOverlayText *t, int scale, int x, int y)
{
  return pixel_at (t, scale, ORIGIN (scale), ORIGIN (scale), x, y);
}

void
ee_overlay_text_box (const EeOverlayText *t, int scale, int width, int height,
                     int *x0, int *y0, int *x1, int *y1)
{
  int pad = 2 * scale, chars = 0;

  for (int i = 0; i < t->n_lines; i++)
    chars = MAX (chars, (int)strlen (t->lines[i]));
  *x0 = MAX (ORIGIN (scale) - pad, 0);
  *y0 = MAX (ORIGIN (scale) - pad, 0);
  *x1 = MIN (ORIGIN (scale) + chars * EE_OVERLAY_CELL_W * scale + pad, width);
  *y1 = MIN (ORIGIN (scale) + t->n_lines * EE_OVERLAY_CELL_H * scale + pad,
             height);
}

/* Darkens the box around the text (or fills it with `box`, sRGB, when
 * given) and writes the text, component by component (chroma planes may be
 * subsampled); the text's first cell at (ox, oy). */
static void
draw_at (GstVideoFrame *frame, const EeOverlayText *t, int scale, int ox,
         int oy, const guint8 *box)
{
  const GstVideoFormatInfo *finfo = frame->info.finfo;
  gboolean yuv = GST_VIDEO_FORMAT_INFO_IS_YUV (finfo);
  int W = GST_VIDEO_FRAME_WIDTH (frame), H = GST_VIDEO_FRAME_HEIGHT (frame);
  int bx0, by0, bx1, by1, bw, pad = 2 * scale, chars = 0;
  guint8 fill[3], *mask;

  if (t->n_lines == 0 || scale < 1)
    return;
  for (int i = 0; i < t->n_lines; i++)
    chars = MAX (chars, (int)strlen (t->lines[i]));
  bx0 = MAX (ox - pad, 0);
  by0 = MAX (oy - pad, 0);
  bx1 = MIN (ox + chars * EE_OVERLAY_CELL_W * scale + pad, W);
  by1 = MIN (oy + t->n_lines * EE_OVERLAY_CELL_H * scale + pad, H);
  if (bx1 <= bx0 || by1 <= by0)
    return;
  if (box)
    ee_overlay_color (frame, box, fill);

  /* the lit pixels of the box, glyph bit by glyph bit */
  bw = bx1 - bx0;
  mask = g_malloc0 ((gsize)bw * (by1 - by0));
  for (int l = 0; l < t->n_lines; l++)
    for (int k = 0; t->lines[l][k]; k++) {
      guchar ch = (guchar)t->lines[l][k];
      if (ch < FIRST_GLYPH || ch > LAST_GLYPH)
        continue;
      for (int gy = 0; gy < GLYPH_H; gy++)
        for (int gx = 0; gx < GLYPH_W; gx++) {
          int x0, y0;
          if (!((font[ch - FIRST_GLYPH][gy] >> (GLYPH_W - 1 - gx)) & 1))
            continue;
          x0 = ox + (k * EE_OVERLAY_CELL_W + gx) * scale;
          y0 = oy + (l * EE_OVERLAY_CELL_H + gy) * scale;
          for (int y = MAX (y0, by0); y < MIN (y0 + scale, by1); y++)
            for (int x = MAX (x0, bx0); x < MIN (x0 + scale, bx1); x++)
              mask[(gsize)(y - by0) * bw + (x - bx0)] = 1;
        }
    }

  for (int c = 0; c < 3; c++) {
    EeOverlayPlane pl = ee_overlay_plane (frame, c);
    gboolean chroma = yuv && c > 0;

    for (int y = by0 >> pl.hs; y <= (by1 - 1) >> pl.hs; y++) {
      guint8 *row = pl.data + (gsize)y * pl.stride;
      const guint8 *m
          = mask + (gsize)(CLAMP (y << pl.hs, by0, by1 - 1) - by0) * bw - bx0;
      for (int x = bx0 >> pl.ws; x <= (bx1 - 1) >> pl.ws; x++) {
        guint8 *p = row + (gsize)x * pl.pstride;
        gboolean lit = m[CLAMP (x << pl.ws, bx0, bx1 - 1)];
        if (lit)
          *p = chroma ? 128 : yuv ? 235 : 255; /* white, neutral chroma */
        else if (box)
          *p = fill[c];
        else if (chroma)
          *p = 128;
        else
          *p = yuv ? 16 + (*p - 16) / 3 : *p / 3;
      }
    }
  }
  g_free (mask);
}

void
ee_overlay_text_draw (GstVideoFrame *frame, const EeOverlayText *t, int scale)
{
  draw_at (frame, t, scale, ORIGIN (scale), ORIGIN (scale), NULL);
}

void
ee_overlay_text_draw_label (GstVideoFrame *frame, const gchar *text, int x,
                            int y, int scale, const guint8 *box)
{
  EeOverlayText t;
  int W = GST_VIDEO_FRAME_WIDTH (frame), H = GST_VIDEO_FRAME_HEIGHT (frame);
  int len = 0, w, h;

  memset (&t, 0, sizeof t);
  put (t.lines[0], &len, EE_OVERLAY_MAX_CHARS - 1, text);
  t.n_lines = 1;
  /* kept inside the frame where it fits */
  w = len * EE_OVERLAY_CELL_W * scale + 2 * scale;
  h = EE_OVERLAY_CELL_H * scale + 2 * scale;
  x = CLAMP (x, 2 * scale, MAX (W - w, 2 * scale));
  y = CLAMP (y, 2 * scale, MAX (H - h, 2 * scale));
  draw_at (frame, &t, scale, x, y, box);
}
