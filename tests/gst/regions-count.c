/* Prints the count of every region (gst/ee-regions.h) on a map, one per
 * line, for tests/gst/test_region_counts.py.
 *
 *   regions-count REGIONS WIDTH HEIGHT MAP.f32
 *
 * MAP.f32: HEIGHT x WIDTH float32, row-major, the machine's byte order.
 * Exit status 2 with the parse error on stderr for bad regions. */
#include <stdio.h>
#include <stdlib.h>

#include "ee-regions.h"

int
main (int argc, char **argv)
{
  GError *err = NULL;
  EeRegions *rs;
  gchar *data = NULL;
  gsize len = 0;
  int w, h;
  double *counts;

  if (argc != 5) {
    fprintf (stderr, "usage: %s REGIONS WIDTH HEIGHT MAP.f32\n", argv[0]);
    return 1;
  }
  w = atoi (argv[2]);
  h = atoi (argv[3]);
  if (!(rs = ee_regions_parse (argv[1], &err))) {
    fprintf (stderr, "%s\n", err->message);
    g_error_free (err);
    return 2;
  }
  if (!g_file_get_contents (argv[4], &data, &len, &err)
      || len != sizeof (float) * (gsize)w * h) {
    fprintf (stderr, "%s: not %dx%d floats\n", argv[4], w, h);
    return 1;
  }
  counts = g_new (double, MAX (ee_regions_n (rs), 1));
  ee_regions_count (rs, (const float *)data, w, h, counts);
  for (int i = 0; i < ee_regions_n (rs); i++)
    printf ("%s %.17g\n", ee_regions_get (rs, i)->name, counts[i]);
  g_free (counts);
  g_free (data);
  ee_regions_unref (rs);
  return 0;
}
