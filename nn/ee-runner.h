/* gst-earlyexit: the multi-exit runner.
 *
 * A model is one op graph cut into segments in anytime order: backbone stages
 * and exits. Each segment says which earlier segments it needs (a bit mask over
 * segment indices), so a caller can ask for a subset of exits and only their
 * dependencies run. The runner describes the segments; a cursor (below) runs
 * one frame through them, exit by exit, and a scheduler polls which exits have
 * finished without waiting for the frame (nn/ee-engine.h).
 *
 * A runner is used by one thread at a time. */
#ifndef EE_RUNNER_H
#define EE_RUNNER_H

#include "ee-graph.h"

G_BEGIN_DECLS

#define EE_RUNNER_MAX_SEGMENTS 32

typedef struct _EeRunner EeRunner;

typedef struct
{
  const char *name;
  gboolean is_exit;
  int first_op, last_op; /* op range [first, last) in the graph */
  guint32 needs;         /* segments (bit i = segment i) this one reads */
  int output;            /* exits: graph value of the result */
  int64_t n_out;         /* exits: floats in the result */
  int map;               /* exits: graph value of the map output; -1: none */
  int64_t map_h, map_w;  /* the map's grid (0 when none) */
  int64_t params;        /* parameters of this segment's own ops */
  double flops;          /* FLOPs of this segment's own ops */
  double flops_total;    /* FLOPs of this segment and everything it needs */
} EeSegment;

/* One exit's result in a cursor's current frame. */
typedef struct
{
  const char *name;
  int exit_index;     /* 0 = first exit in anytime order */
  gboolean requested; /* enqueued in this frame */
  gboolean done;      /* its event has completed */
  const float *value; /* n_out floats, valid once done */
  int64_t n_out;
  /* the exit's map (map_h x map_w floats, row-major, valid once done and
   * until the next begin); NULL when the exit has none */
  const float *map;
  int64_t map_h, map_w;
  double time_ms; /* finish time since the frame's first enqueue */
} EeExitResult;

/* Takes ownership of the graph (not planned yet). */
EeRunner *ee_runner_new (EeGraph *graph);
void ee_runner_free (EeRunner *r);
EeGraph *ee_runner_graph (EeRunner *r);

/* Model builders call begin before adding a segment's ops and end after.
 * needs: bit mask of earlier segments this one reads. Exits give the value
 * holding their result (it is marked as a graph output). */
gboolean ee_runner_begin_segment (EeRunner *r, const char *name,
                                  gboolean is_exit, guint32 needs,
                                  GError **error);
gboolean ee_runner_end_segment (EeRunner *r, int exit_output, GError **error);
/* Called between begin and end of an exit segment: `map_value`, shaped
 * (N, 1, H, W) or (N, H, W) (N: the graph's frames per run), is the exit's map
 * output next to its result (a density map whose sum is the count, for a
 * counting model); it is marked as a graph output and downloaded with the
 * exit's result. At most one per exit. */
gboolean ee_runner_set_exit_map (EeRunner *r, int map_value, GError **error);
/* Plans the graph. */
gboolean ee_runner_finalize (EeRunner *r, GError **error);

int ee_runner_n_segments (EeRunner *r);
const EeSegment *ee_runner_segment (EeRunner *r, int i);
int ee_runner_n_exits (EeRunner *r);
/* Segment index of exit i (anytime order), or -1. */
int ee_runner_exit_segment (EeRunner *r, int exit_index);
int ee_runner_find_exit (EeRunner *r, const char *name);

const char *ee_runner_exit_name (EeRunner *r, int exit_index);
/* Runner segments (bit s = segment s) exit `exit_index` needs, itself
 * included. */
guint32 ee_runner_exit_needs (EeRunner *r, int exit_index);

/* A cursor: one frame in flight, exit by exit.
 *
 * A frame is begun with the exits it may run, its inputs are uploaded, and
 * it is then enqueued up to an exit, polled, and continued later up to a
 * further exit: only segments not yet enqueued run, so continuing never
 * recomputes what the frame already has. Segments run in graph order, the
 * order the activation arena was planned for: enqueueing exit k also runs
 * the earlier-numbered segments that a later exit of the frame needs
 * (AudioCSRNet: the audio branch runs before the front end even when exit v1
 * alone is asked for, if an audio exit may follow), and an exit whose
 * segments lie before ones already run can no longer run in this frame.
 *
 * After each segment an event is recorded (its time is known per segment);
 * after each exit its result is downloaded into a host slot of the cursor.
 *
 * Each cursor has its own activation memory (the first one alive takes the
 * graph's own arena, the others allocate one each), so several frames can be in
 * flight at once on one runner, weights shared; the cursor switches the graph
 * to its arena whenever it uploads or enqueues. The runner (graph, backend) is
 * used by one thread at a time: every cursor of a runner on the same thread. */
typedef struct _EeCursor EeCursor;

EeCursor *ee_cursor_new (EeRunner *r, GError **error);
void ee_cursor_free (EeCursor *c);
EeRunner *ee_cursor_runner (EeCursor *c);

/* Starts a new frame that may run the exits in `exits` (bit i = exit i):
 * forgets the previous frame's progress and results. */
void ee_cursor_begin (EeCursor *c, guint32 exits);
/* Uploads graph input `input` (a value id) for this frame (enqueued: `host`
 * must stay valid until the frame's first exit has finished). */
gboolean ee_cursor_upload (EeCursor *c, int input, const float *host,
                           GError **error);
/* The same for frame `slot` of a batched graph's n_slots frames
 * (ee_graph_upload_slot). */
gboolean ee_cursor_upload_slot (EeCursor *c, int input, int slot, int n_slots,
                                const float *host, GError **error);
/* The segments enqueueing exit `exit_index` would run now (0 when it has
 * been enqueued, or can no longer run: see ee_cursor_can_run). */
guint32 ee_cursor_step (EeCursor *c, int exit_index);
/* The segments (bit i) enqueued in this frame so far. */
guint32 ee_cursor_enqueued (EeCursor *c);
/* Whether exit `exit_index` may still be enqueued in this frame: it is one of
 * the frame's exits and no segment after its own has run. */
gboolean ee_cursor_can_run (EeCursor *c, int exit_index);
/* Enqueues exit `exit_index` and the segments before it that have not been
 * enqueued (ee_cursor_step). Returns at once on an asynchronous backend. */
gboolean ee_cursor_enqueue (EeCursor *c, int exit_index, GError **error);
/* Exits (bit i) of this frame that have finished; never blocks. */
guint32 ee_cursor_poll (EeCursor *c);
/* Waits for everything enqueued on the cursor's backend. */
gboolean ee_cursor_wait (EeCursor *c, GError **error);
/* Exit `exit_index`'s result in this frame (valid until the next begin). */
const EeExitResult *ee_cursor_result (EeCursor *c, int exit_index);
/* Milliseconds segment `segment` took in this frame, once the exit after it
 * has finished (ee_cursor_poll); negative when unknown. */
double ee_cursor_segment_ms (EeCursor *c, int segment);

G_END_DECLS
#endif /* EE_RUNNER_H */
