/* gst-earlyexit: audio kept by running time for the audiovisual elements.
 *
 * A ring of mono float samples addressed by absolute sample position (running
 * time x rate, so position 0 is running time 0). Each sample carries a
 * "covered" flag: holes between writes, GAP buffers and anything never written
 * read back as zeros and are not counted as covered. Only the newest `capacity`
 * samples are kept. Nothing is allocated after creation unless
 * ee_audio_ring_reserve() asks for more room.
 *
 * A ring is used by one thread at a time. */
#ifndef EE_AUDIORING_H
#define EE_AUDIORING_H

#include <glib.h>

G_BEGIN_DECLS

typedef struct _EeAudioRing EeAudioRing;

EeAudioRing *ee_audio_ring_new (gsize capacity);
void ee_audio_ring_free (EeAudioRing *ring);

/* Forgets every sample (flushing seek, stop). */
void ee_audio_ring_reset (EeAudioRing *ring);

/* Grows the ring to hold at least `capacity` samples, keeping its content. */
void ee_audio_ring_reserve (EeAudioRing *ring, gsize capacity);
gsize ee_audio_ring_capacity (const EeAudioRing *ring);

/* Stores n samples at positions [pos, pos + n). data NULL stores a gap
 * (uncovered). A write after the current end leaves the samples in between
 * uncovered; a write before it overwrites. Samples at negative positions and
 * samples older than the kept range are dropped. */
void ee_audio_ring_write (EeAudioRing *ring, gint64 pos, const float *data,
                          gsize n);

/* TRUE when nothing has been written since creation or reset. */
gboolean ee_audio_ring_is_empty (const EeAudioRing *ring);
/* One past the newest written position (meaningless when empty). */
gint64 ee_audio_ring_end (const EeAudioRing *ring);

/* Copies [pos, pos + n) into out, zeros where not covered; returns the number
 * of covered samples. */
gsize ee_audio_ring_read (const EeAudioRing *ring, gint64 pos, gsize n,
                          float *out);

/* Drops every sample before pos (they will not be needed again). */
void ee_audio_ring_discard_before (EeAudioRing *ring, gint64 pos);

G_END_DECLS
#endif /* EE_AUDIORING_H */
