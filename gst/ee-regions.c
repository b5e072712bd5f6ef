/* gst-earlyexit: regions, their counts and alerts (ee-regions.h).
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "ee-regions.h"

#include <math.h>
#include <string.h>

#define COORD_MIN (-1.0)
#define COORD_MAX 2.0
#define DEFAULT_CLEAR_RATIO 0.9

G_DEFINE_QUARK (ee - regions - error - quark, ee_regions_error)

typedef struct
{
  int n;
  int *cell;     /* cell indices with a share > 0 */
  double *share; /* their shares */
} Weights;

struct _EeRegions
{
  gint ref;
  GArray *regions;    /* EeRegion */
  int grid_w, grid_h; /* the grid `weights` were made for (0: none yet) */
  Weights *weights;   /* per region */
};

static void
clear_weights (EeRegions *rs)
{
  if (rs->weights)
    for (guint i = 0; i < rs->regions->len; i++) {
      g_free (rs->weights[i].cell);
      g_free (rs->weights[i].share);
    }
  g_clear_pointer (&rs->weights, g_free);
  rs->grid_w = rs->grid_h = 0;
}

static void
region_clear (gpointer p)
{
  EeRegion *r = p;

  g_free (r->name);
  g_free (r->xy);
}

/* ------------------------------------------------------------ geometry */

static double
cross (double ax, double ay, double bx, double by, double cx, double cy)
{
  return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax);
}

static gboolean
on_segment (double ax, double ay, double bx, double by, double px, double py)
{
  return MIN (ax, bx) <= px && px <= MAX (ax, bx) && MIN (ay, by) <= py
         && py <= MAX (ay, by);
}

/* Whether segments ab and cd cross or touch. */
static gboolean
segments_meet (const double *a, const double *b, const double *c,
               const double *d)
{
  double d1 = cross (c[0], c[1], d[0], d[1], a[0], a[1]);
  double d2 = cross (c[0], c[1], d[0], d[1], b[0], b[1]);
  double d3 = cross (a[0], a[1], b[0], b[1], c[0], c[1]);
  double d4 = cross (a[0], a[1], b[0], b[1], d[0], d[1]);

  if (((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0))
      && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0)))
    return TRUE;
  return (d1 == 0 && on_segment (c[0], c[1], d[0], d[1], a[0], a[1]))
         || (d2 == 0 && on_segment (c[0], c[1], d[0], d[1], b[0], b[1]))
         || (d3 == 0 && on_segment (a[0], a[1], b[0], b[1], c[0], c[1]))
         || (d4 == 0 && on_segment (a[0], a[1], b[0], b[1], d[0], d[1]));
}

static double
polygon_area (const double *xy, int n)
{
  double a = 0;

  for (int i = 0; i < n; i++) {
    int j = (i + 1) % n;
    a += xy[2 * i] * xy[2 * j + 1] - xy[2 * j] * xy[2 * i + 1];
  }
  return 0.5 * a;
}

/* Clips polygon in (n points) to the half plane where
 * sign * (coordinate `axis`) >= sign * limit; out holds up to 2n points. */
static int
clip_half (const double *in, int n, int axis, double limit, double sign,
           double *out)
{
  int m = 0;

  for (int i = 0; i < n; i++) {
    const double *p = in + 2 * i, *q = in + 2 * ((i + 1) % n);
    double dp = sign * (p[axis] - limit), dq = sign * (q[axis] - limit);

    if (dp >= 0) {
      out[2 * m] = p[0];
      out[2 * m + 1] = p[1];
      m++;
    }
    if ((dp >= 0) != (dq >= 0)) {
      double t = dp / (dp - dq);
      out[2 * m] = p[0] + t * (q[0] - p[0]);
      out[2 * m + 1] = p[1] + t * (q[1] - p[1]);
      m++;
    }
  }
  return m;
}

/* Area of polygon `poly` (n points, grid units) inside the unit square at
 * (cx, cy): Sutherland-Hodgman against the square's four sides (a convex
 * window, so a concave polygon's clipped area is exact); buf holds
 * 2 x BUF_DOUBLES (n) doubles. */
/* a clip at most doubles the points (one more per edge it crosses): four
 * clips of n points give at most 16 n */
#define BUF_DOUBLES(n) (2 * (16 * (n) + 16))

static double
cell_share (const double *poly, int n, int cx, int cy, double *buf)
{
  double *a = buf, *b = buf + BUF_DOUBLES (n);
  int m;

  m = clip_half (poly, n, 0, cx, 1, a);
  m = m ? clip_half (a, m, 0, cx + 1, -1, b) : 0;
  m = m ? clip_half (b, m, 1, cy, 1, a) : 0;
  m = m ? clip_half (a, m, 1, cy + 1, -1, b) : 0;
  return m >= 3 ? fabs (polygon_area (b, m)) : 0.0;
}

void
ee_region_weights (const EeRegion *r, int width, int height, double *weights)
{
  int n = r->n_points;
  double *poly = g_new (double, 2 * n),
         *buf = g_new (double, 2 * BUF_DOUBLES (n));
  double x0 = G_MAXDOUBLE, y0 = G_MAXDOUBLE, x1 = -G_MAXDOUBLE,
         y1 = -G_MAXDOUBLE;

  memset (weights, 0, sizeof (double) * (gsize)width * height);
  for (int i = 0; i < n; i++) {
    poly[2 * i] = r->xy[2 * i] * width;
    poly[2 * i + 1] = r->xy[2 * i + 1] * height;
    x0 = MIN (x0, poly[2 * i]);
    x1 = MAX (x1, poly[2 * i]);
    y0 = MIN (y0, poly[2 * i + 1]);
    y1 = MAX (y1, poly[2 * i + 1]);
  }
  for (int cy = MAX ((int)floor (y0), 0); cy < MIN ((int)ceil (y1), height);
       cy++)
    for (int cx = MAX ((int)floor (x0), 0); cx < MIN ((int)ceil (x1), width);
         cx++)
      weights[cy * width + cx] = MIN (cell_share (poly, n, cx, cy, buf), 1.0);
  g_free (poly);
  g_free (buf);
}

/* ------------------------------------------------------------ parsing */

static gboolean
parse_number (const char *s, double *v)
{
  char *end = NULL;

  if (!*s)
    return FALSE;
  *v = g_ascii_strtod (s, &end);
  return end && !*end && isfinite (*v);
}

static gboolean
valid_name (const char *name)
{
  if (!*name)
    return FALSE;
  for (const char *p = name; *p; p++)
    if (!g_ascii_isalnum (*p) && *p != '_' && *p != '-')
      return FALSE;
  return TRUE;
}

#define FAIL(...)                                                              \
  G_STMT_START                                                                 \
  {                                                                            \
    g_set_error (error, EE_REGIONS_ERROR, 0, __VA_ARGS__);                     \
    goto fail;                                                                 \
  }                                                                            \
  G_STMT_END

/* One region's text (`index` from 1, for messages) into r. */
static gboolean
parse_region (const char *text, int index, EeRegion *r, GError **error)
{
  const char *colon = strchr (text, ':');
  char *name = NULL, **tokens = NULL;
  GArray *xy = g_array_new (FALSE, FALSE, sizeof (double));
  gboolean has_alert = FALSE, has_clear = FALSE;
  double alert = 0, clear = 0;
  int n;

  memset (r, 0, sizeof *r);
  if (!colon)
    FAIL ("region %d (\"%s\"): no name; write NAME: X,Y X,Y X,Y ...", index,
          text);
  name = g_strstrip (g_strndup (text, (gsize)(colon - text)));
  if (!valid_name (name))
    FAIL ("region %d: the name \"%s\" must be letters, digits, '_' or '-' "
          "(at least one)",
          index, name);
  if (!strcmp (name, EE_REGIONS_FRAME))
    FAIL ("region %d: the name \"%s\" is kept for the whole frame's alert "
          "(the alert-threshold property); choose another",
          index, name);
  tokens = g_strsplit_set (colon + 1, " \t\r", -1);
  for (char **t = tokens; *t; t++) {
    char *eq = strchr (*t, '='), *comma = strchr (*t, ',');
    double x, y;

    if (!**t)
      continue;
    if (eq) {
      double v;
      *eq = '\0';
      if (strcmp (*t, "alert") && strcmp (*t, "clear"))
        FAIL ("region \"%s\": unknown option \"%s\" (the options are "
              "alert=N and clear=M)",
              name, *t);
      if (!parse_number (eq + 1, &v) || v <= 0)
        FAIL ("region \"%s\": %s=%s is not a number above 0", name, *t, eq + 1);
      if (!strcmp (*t, "alert")) {
        has_alert = TRUE;
        alert = v;
      } else {
        has_clear = TRUE;
        clear = v;
      }
      continue;
    }
    n = (int)(xy->len / 2) + 1;
    if (!comma || strchr (comma + 1, ','))
      FAIL ("region \"%s\": point %d \"%s\" is not X,Y (two numbers and one "
            "comma, no spaces)",
            name, n, *t);
    *comma = '\0';
    if (!parse_number (*t, &x) || !parse_number (comma + 1, &y))
      FAIL ("region \"%s\": point %d \"%s,%s\" is not two numbers", name, n, *t,
            comma + 1);
    if (x < COORD_MIN || x > COORD_MAX || y < COORD_MIN || y > COORD_MAX)
      FAIL ("region \"%s\": point %d (%g, %g) is too far outside the frame "
            "(coordinates are fractions of the frame, from %g to %g)",
            name, n, x, y, COORD_MIN, COORD_MAX);
    g_array_append_val (xy, x);
    g_array_append_val (xy, y);
  }
  n = (int)(xy->len / 2);
  if (n < 3)
    FAIL ("region \"%s\": %d point%s; a polygon needs at least 3", name, n,
          n == 1 ? "" : "s");
  for (int i = 0; i < n; i++) {
    const double *p = &g_array_index (xy, double, 2 * i);
    const double *q = &g_array_index (xy, double, 2 * ((i + 1) % n));
    if (p[0] == q[0] && p[1] == q[1])
      FAIL ("region \"%s\": points %d and %d are the same", name, i + 1,
            (i + 1) % n + 1);
  }
  for (int i = 0; i < n; i++)
    for (int j = i + 2; j < n; j++) {
      const double *d = (double *)xy->data;
      if (i == 0 && j == n - 1)
        continue; /* adjacent through the closing edge */
      if (segments_meet (d + 2 * i, d + 2 * ((i + 1) % n), d + 2 * j,
                         d + 2 * ((j + 1) % n)))
        FAIL ("region \"%s\": its edges %d (points %d-%d) and %d (points "
              "%d-%d) cross or touch; the polygon must not cross itself",
              name, i + 1, i + 1, (i + 1) % n + 1, j + 1, j + 1,
              (j + 1) % n + 1);
    }
  if (fabs (polygon_area ((double *)xy->data, n)) < 1e-12)
    FAIL ("region \"%s\": the polygon encloses no area (its points are on "
          "one line)",
          name);
  if (has_clear && !has_alert)
    FAIL ("region \"%s\": clear=%g without alert=N", name, clear);
  if (has_alert && !has_clear)
    clear = DEFAULT_CLEAR_RATIO * alert;
  if (has_clear && clear > alert)
    FAIL ("region \"%s\": clear=%g is above alert=%g (an alert clears below "
          "its threshold)",
          name, clear, alert);
  r->name = name;
  r->n_points = n;
  r->xy = (double *)g_array_free (xy, FALSE);
  r->alert = has_alert ? alert : 0;
  r->clear = has_alert ? clear : 0;
  g_strfreev (tokens);
  return TRUE;

fail:
  g_free (name);
  g_strfreev (tokens);
  g_array_free (xy, TRUE);
  return FALSE;
}

EeRegions *
ee_regions_parse (const char *text, GError **error)
{
  EeRegions *rs = g_new0 (EeRegions, 1);
  char **lines = g_strsplit (text ? text : "", "\n", -1);
  int index = 0;

  rs->ref = 1;
  rs->regions = g_array_new (FALSE, FALSE, sizeof (EeRegion));
  g_array_set_clear_func (rs->regions, region_clear);
  for (char **l = lines; *l; l++) {
    char *hash = strchr (*l, '#'), **parts;

    if (hash)
      *hash = '\0';
    parts = g_strsplit (*l, ";", -1);
    for (char **p = parts; *p; p++) {
      EeRegion r;
      g_strstrip (*p);
      if (!**p)
        continue;
      index++;
      if (!parse_region (*p, index, &r, error)) {
        g_strfreev (parts);
        goto fail;
      }
      for (guint k = 0; k < rs->regions->len; k++)
        if (!strcmp (g_array_index (rs->regions, EeRegion, k).name, r.name)) {
          g_set_error (error, EE_REGIONS_ERROR, 0,
                       "region %d: the name \"%s\" is taken by region %u; "
                       "names must be unique",
                       index, r.name, k + 1);
          region_clear (&r);
          g_strfreev (parts);
          goto fail;
        }
      g_array_append_val (rs->regions, r);
    }
    g_strfreev (parts);
  }
  g_strfreev (lines);
  return rs;

fail:
  g_strfreev (lines);
  ee_regions_unref (rs);
  return NULL;
}

EeRegions *
ee_regions_ref (EeRegions *rs)
{
  g_atomic_int_inc (&rs->ref);
  return rs;
}

void
ee_regions_unref (EeRegions *rs)
{
  if (!rs || !g_atomic_int_dec_and_test (&rs->ref))
    return;
  clear_weights (rs);
  g_array_unref (rs->regions);
  g_free (rs);
}

int
ee_regions_n (const EeRegions *rs)
{
  return rs ? (int)rs->regions->len : 0;
}

const EeRegion *
ee_regions_get (const EeRegions *rs, int i)
{
  return rs && i >= 0 && i < (int)rs->regions->len
             ? &g_array_index (rs->regions, EeRegion, i)
             : NULL;
}

/* ------------------------------------------------------------ counting */

static void
make_weights (EeRegions *rs, int width, int height)
{
  double *w = g_new (double, (gsize)width *height);

  clear_weights (rs);
  rs->weights = g_new0 (Weights, rs->regions->len);
  for (guint i = 0; i < rs->regions->len; i++) {
    Weights *k = &rs->weights[i];
    ee_region_weights (&g_array_index (rs->regions, EeRegion, i), width, height,
                       w);
    for (int c = 0; c < width * height; c++)
      k->n += w[c] > 0;
    k->cell = g_new (int, MAX (k->n, 1));
    k->share = g_new (double, MAX (k->n, 1));
    k->n = 0;
    for (int c = 0; c < width * height; c++)
      if (w[c] > 0) {
        k->cell[k->n] = c;
        k->share[k->n++] = w[c];
      }
  }
  rs->grid_w = width;
  rs->grid_h = height;
  g_free (w);
}

void
ee_regions_count (EeRegions *rs, const float *map, int width, int height,
                  double *counts)
{
  if (rs->grid_w != width || rs->grid_h != height)
    make_weights (rs, width, height);
  for (guint i = 0; i < rs->regions->len; i++) {
    const Weights *k = &rs->weights[i];
    double sum = 0;
    for (int c = 0; c < k->n; c++)
      sum += k->share[c] * map[k->cell[c]];
    counts[i] = sum;
  }
}

/* ------------------------------------------------------------ alerts */

EeAlertChange
ee_alert_update (gboolean *active, double count, double threshold, double clear)
{
  if (!isfinite (count))
    return EE_ALERT_NONE;
  if (!*active && count > threshold) {
    *active = TRUE;
    return EE_ALERT_RISING;
  }
  if (*active && count < clear) {
    *active = FALSE;
    return EE_ALERT_CLEARING;
  }
  return EE_ALERT_NONE;
}

const char *
ee_alert_change_name (EeAlertChange change)
{
  switch (change) {
    case EE_ALERT_RISING:
      return "rising";
    case EE_ALERT_CLEARING:
      return "clearing";
    default:
      return "none";
  }
}
