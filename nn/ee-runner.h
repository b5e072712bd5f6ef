/* gst-earlyexit: the multi-exit runner.
 *
 * A model is one op graph cut into segments in anytime order: backbone stages
 * and exits. Each segment says which earlier segments it needs (a bit mask over
 * segment indices), so a caller can ask for a subset of exits and only their
 * dependencies run. Running enqueues the needed segments in order; after each
 * exit its result is downloaded into a host slot and an event is recorded, so a
 * scheduler can poll which exits have finished without waiting for the frame.
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
  int64_t params;        /* parameters of this segment's own ops */
  double flops;          /* FLOPs of this segment's own ops */
  double flops_total;    /* FLOPs of this segment and everything it needs */
} EeSegment;

typedef struct
{
  const char *name;
  int exit_index;     /* 0 = first exit in anytime order */
  gboolean requested; /* part of the last run */
  gboolean done;      /* its event has completed */
  const float *value; /* n_out floats, valid once done */
  int64_t n_out;
  double time_ms; /* finish time since the run started */
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
/* Plans the graph and creates the events and host result slots. */
gboolean ee_runner_finalize (EeRunner *r, GError **error);

int ee_runner_n_segments (EeRunner *r);
const EeSegment *ee_runner_segment (EeRunner *r, int i);
int ee_runner_n_exits (EeRunner *r);
/* Segment index of exit i (anytime order), or -1. */
int ee_runner_exit_segment (EeRunner *r, int exit_index);
int ee_runner_find_exit (EeRunner *r, const char *name);

/* Enqueues the segments needed by the exits in `exit_mask` (bit i = exit i),
 * in anytime order, stopping after exit `stop_after` (-1: none). Inputs must
 * have been uploaded through the graph before. Returns at once on an
 * asynchronous backend. */
gboolean ee_runner_enqueue (EeRunner *r, guint32 exit_mask, int stop_after,
                            GError **error);
/* Updates results from events without blocking; returns the newest finished
 * exit index, or -1. */
int ee_runner_poll (EeRunner *r);
/* Waits for every enqueued exit. */
gboolean ee_runner_wait (EeRunner *r, GError **error);
const EeExitResult *ee_runner_result (EeRunner *r, int exit_index);

G_END_DECLS
#endif /* EE_RUNNER_H */
