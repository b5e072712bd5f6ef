/* gst-earlyexit: audio kept by running time for the audiovisual elements. */
#include "ee-audioring.h"

#include <string.h>

struct _EeAudioRing
{
  float *samples;  /* capacity floats, slot = pos % capacity */
  guint8 *covered; /* capacity flags, same slots */
  gsize capacity;
  gboolean empty;
  gint64 start; /* oldest kept position */
  gint64 end;   /* one past the newest written position */
};

EeAudioRing *
ee_audio_ring_new (gsize capacity)
{
  EeAudioRing *ring = g_new0 (EeAudioRing, 1);

  capacity = MAX (capacity, 1);
  ring->samples = g_new0 (float, capacity);
  ring->covered = g_new0 (guint8, capacity);
  ring->capacity = capacity;
  ring->empty = TRUE;
  return ring;
}

void
ee_audio_ring_free (EeAudioRing *ring)
{
  if (!ring)
    return;
  g_free (ring->samples);
  g_free (ring->covered);
  g_free (ring);
}

void
ee_audio_ring_reset (EeAudioRing *ring)
{
  ring->empty = TRUE;
  ring->start = ring->end = 0;
}

gsize
ee_audio_ring_capacity (const EeAudioRing *ring)
{
  return ring->capacity;
}

static gsize
slot (const EeAudioRing *ring, gint64 pos)
{
  return (gsize)(pos % (gint64)ring->capacity);
}

void
ee_audio_ring_reserve (EeAudioRing *ring, gsize capacity)
{
  float *samples;
  guint8 *covered;

  if (capacity <= ring->capacity)
    return;
  samples = g_new0 (float, capacity);
  covered = g_new0 (guint8, capacity);
  if (!ring->empty) {
    for (gint64 p = ring->start; p < ring->end; p++) {
      gsize from = slot (ring, p), to = (gsize)(p % (gint64)capacity);
      samples[to] = ring->samples[from];
      covered[to] = ring->covered[from];
    }
  }
  g_free (ring->samples);
  g_free (ring->covered);
  ring->samples = samples;
  ring->covered = covered;
  ring->capacity = capacity;
}

/* Marks [from, to) uncovered; from, to inside the kept range. */
static void
clear_range (EeAudioRing *ring, gint64 from, gint64 to)
{
  for (gint64 p = from; p < to; p++) {
    ring->samples[slot (ring, p)] = 0.0f;
    ring->covered[slot (ring, p)] = 0;
  }
}

void
ee_audio_ring_write (EeAudioRing *ring, gint64 pos, const float *data, gsize n)
{
  gint64 stop = pos + (gint64)n, cap = (gint64)ring->capacity;

  /* negative running time is outside the segment */
  if (pos < 0) {
    if (stop <= 0)
      return;
    if (data)
      data += -pos;
    pos = 0;
  }
  /* only the newest `capacity` samples of this write can be kept */
  if (stop - pos > cap) {
    if (data)
      data += (stop - cap) - pos;
    pos = stop - cap;
  }
  if (ring->empty) {
    ring->empty = FALSE;
    ring->start = ring->end = pos;
  }
  if (pos < ring->start) {
    if (stop <= ring->start)
      return;
    if (data)
      data += ring->start - pos;
    pos = ring->start;
  }

  if (stop > ring->end) {
    gint64 new_start = MAX (ring->start, stop - cap);
    /* the hole between the old end and this write stays uncovered */
    if (new_start > ring->end) {
      ring->start = ring->end = new_start;
    } else {
      ring->start = new_start;
    }
    clear_range (ring, MAX (ring->end, ring->start), stop);
    ring->end = stop;
  }
  if (pos < ring->start) {
    if (data)
      data += ring->start - pos;
    pos = ring->start;
  }

  for (gint64 p = pos; p < stop; p++) {
    gsize s = slot (ring, p);
    ring->samples[s] = data ? data[p - pos] : 0.0f;
    ring->covered[s] = data != NULL;
  }
}

gboolean
ee_audio_ring_is_empty (const EeAudioRing *ring)
{
  return ring->empty;
}

gint64
ee_audio_ring_end (const EeAudioRing *ring)
{
  return ring->end;
}

gsize
ee_audio_ring_read (const EeAudioRing *ring, gint64 pos, gsize n, float *out)
{
  gsize covered = 0;

  for (gsize i = 0; i < n; i++) {
    gint64 p = pos + (gint64)i;
    if (!ring->empty && p >= ring->start && p < ring->end
        && ring->covered[slot (ring, p)]) {
      out[i] = ring->samples[slot (ring, p)];
      covered++;
    } else {
      out[i] = 0.0f;
    }
  }
  return covered;
}

void
ee_audio_ring_discard_before (EeAudioRing *ring, gint64 pos)
{
  if (ring->empty || pos <= ring->start)
    return;
  if (pos >= ring->end) {
    ring->start = ring->end;
    return;
  }
  ring->start = pos;
}
