/* gst-earlyexit: the multi-exit runner. */
#include "ee-runner.h"

#include <string.h>

typedef struct
{
  EeSegment seg;
  char *name;
  EeEvent *event; /* exits: recorded after the result download */
  float *slot;    /* exits: host result */
  int exit_index; /* exits: position among exits, else -1 */
} Segment;

struct _EeRunner
{
  EeGraph *graph;
  EeBackend *be;
  Segment segs[EE_RUNNER_MAX_SEGMENTS];
  int n_segs;
  int exit_segs[EE_RUNNER_MAX_SEGMENTS];
  EeExitResult results[EE_RUNNER_MAX_SEGMENTS];
  int n_exits;
  gboolean open; /* between begin and end */
  gboolean finalized;
  EeEvent *start;
};

EeRunner *
ee_runner_new (EeGraph *graph)
{
  EeRunner *r = g_new0 (EeRunner, 1);

  r->graph = graph;
  r->be = ee_graph_backend (graph);
  return r;
}

void
ee_runner_free (EeRunner *r)
{
  if (!r)
    return;
  for (int i = 0; i < r->n_segs; i++) {
    if (r->segs[i].event)
      r->be->vt->event_free (r->be, r->segs[i].event);
    g_free (r->segs[i].slot);
    g_free (r->segs[i].name);
  }
  if (r->start)
    r->be->vt->event_free (r->be, r->start);
  ee_graph_free (r->graph);
  g_free (r);
}

EeGraph *
ee_runner_graph (EeRunner *r)
{
  return r->graph;
}

gboolean
ee_runner_begin_segment (EeRunner *r, const char *name, gboolean is_exit,
                         guint32 needs, GError **error)
{
  Segment *s;

  if (r->open || r->finalized || r->n_segs == EE_RUNNER_MAX_SEGMENTS
      || needs >> r->n_segs) {
    g_set_error (
        error, EE_ERROR, EE_ERROR_ARGUMENT,
        "segment %s: cannot begin (open segment, too many segments, or it "
        "needs a later segment)",
        name);
    return FALSE;
  }
  s = &r->segs[r->n_segs];
  memset (s, 0, sizeof *s);
  s->name = g_strdup (name);
  s->seg.name = s->name;
  s->seg.is_exit = is_exit;
  s->seg.needs = needs;
  s->seg.first_op = ee_graph_n_ops (r->graph);
  s->seg.output = -1;
  s->exit_index = -1;
  r->open = TRUE;
  return TRUE;
}

gboolean
ee_runner_end_segment (EeRunner *r, int exit_output, GError **error)
{
  Segment *s = &r->segs[r->n_segs];

  g_return_val_if_fail (r->open, FALSE);
  s->seg.last_op = ee_graph_n_ops (r->graph);
  if (s->seg.is_exit) {
    s->seg.output = ee_graph_mark_output (r->graph, exit_output, error);
    if (s->seg.output < 0)
      return FALSE;
    /* the reorder a marked output may need belongs to this exit */
    s->seg.last_op = ee_graph_n_ops (r->graph);
    s->seg.n_out
        = ee_tensor_desc_numel (ee_graph_desc (r->graph, s->seg.output));
    s->exit_index = r->n_exits;
    r->exit_segs[r->n_exits++] = r->n_segs;
  }
  s->seg.params = ee_graph_params (r->graph, s->seg.first_op, s->seg.last_op);
  s->seg.flops = ee_graph_flops (r->graph, s->seg.first_op, s->seg.last_op);
  /* everything this segment needs, transitively */
  s->seg.flops_total = s->seg.flops;
  {
    guint32 all = s->seg.needs;
    for (int i = r->n_segs - 1; i >= 0; i--)
      if (all & (1u << i))
        all |= r->segs[i].seg.needs;
    s->seg.needs = all;
    for (int i = 0; i < r->n_segs; i++)
      if (all & (1u << i))
        s->seg.flops_total += r->segs[i].seg.flops;
  }
  r->n_segs++;
  r->open = FALSE;
  return TRUE;
}

gboolean
ee_runner_finalize (EeRunner *r, GError **error)
{
  g_return_val_if_fail (!r->open && !r->finalized, FALSE);
  if (!ee_graph_plan (r->graph, error))
    return FALSE;
  r->start = r->be->vt->event_new (r->be, error);
  if (!r->start)
    return FALSE;
  for (int i = 0; i < r->n_exits; i++) {
    Segment *s = &r->segs[r->exit_segs[i]];
    s->event = r->be->vt->event_new (r->be, error);
    if (!s->event)
      return FALSE;
    s->slot = g_new0 (float, s->seg.n_out);
    r->results[i].name = s->name;
    r->results[i].exit_index = i;
    r->results[i].value = s->slot;
    r->results[i].n_out = s->seg.n_out;
  }
  r->finalized = TRUE;
  return TRUE;
}

int
ee_runner_n_segments (EeRunner *r)
{
  return r->n_segs;
}

const EeSegment *
ee_runner_segment (EeRunner *r, int i)
{
  return (i >= 0 && i < r->n_segs) ? &r->segs[i].seg : NULL;
}

int
ee_runner_n_exits (EeRunner *r)
{
  return r->n_exits;
}

int
ee_runner_exit_segment (EeRunner *r, int exit_index)
{
  return (exit_index >= 0 && exit_index < r->n_exits) ? r->exit_segs[exit_index]
                                                      : -1;
}

int
ee_runner_find_exit (EeRunner *r, const char *name)
{
  for (int i = 0; i < r->n_exits; i++)
    if (!g_strcmp0 (r->segs[r->exit_segs[i]].name, name))
      return i;
  return -1;
}

gboolean
ee_runner_enqueue (EeRunner *r, guint32 exit_mask, int stop_after,
                   GError **error)
{
  guint32 run = 0;

  g_return_val_if_fail (r->finalized, FALSE);
  for (int i = 0; i < r->n_exits; i++) {
    Segment *s = &r->segs[r->exit_segs[i]];
    gboolean want = (exit_mask >> i) & 1;
    if (stop_after >= 0 && i > stop_after)
      want = FALSE;
    r->results[i].requested = want;
    r->results[i].done = FALSE;
    r->results[i].time_ms = 0;
    if (want)
      run |= s->seg.needs | (1u << r->exit_segs[i]);
  }
  if (!r->be->vt->event_record (r->be, r->start, error))
    return FALSE;
  for (int i = 0; i < r->n_segs; i++) {
    Segment *s = &r->segs[i];
    if (!(run & (1u << i)))
      continue;
    if (!ee_graph_run (r->graph, s->seg.first_op, s->seg.last_op, error))
      return FALSE;
    if (s->seg.is_exit) {
      if (!ee_graph_download (r->graph, s->seg.output, s->slot, error)
          || !r->be->vt->event_record (r->be, s->event, error))
        return FALSE;
    }
  }
  return TRUE;
}

int
ee_runner_poll (EeRunner *r)
{
  int newest = -1;

  for (int i = 0; i < r->n_exits; i++) {
    EeExitResult *res = &r->results[i];
    Segment *s = &r->segs[r->exit_segs[i]];
    if (!res->requested)
      continue;
    if (!res->done && r->be->vt->event_query (r->be, s->event)) {
      res->done = TRUE;
      if (!r->be->vt->event_elapsed_ms (r->be, r->start, s->event,
                                        &res->time_ms, NULL))
        res->time_ms = -1;
    }
    if (res->done)
      newest = i;
  }
  return newest;
}

gboolean
ee_runner_wait (EeRunner *r, GError **error)
{
  if (!ee_backend_sync (r->be, error))
    return FALSE;
  ee_runner_poll (r);
  return TRUE;
}

const EeExitResult *
ee_runner_result (EeRunner *r, int exit_index)
{
  return (exit_index >= 0 && exit_index < r->n_exits) ? &r->results[exit_index]
                                                      : NULL;
}
