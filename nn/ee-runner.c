/* gst-earlyexit: the multi-exit runner. */
#include "ee-runner.h"

#include <string.h>

typedef struct
{
  EeSegment seg;
  char *name;
  int exit_index; /* exits: position among exits, else -1 */
} Segment;

struct _EeRunner
{
  EeGraph *graph;
  EeBackend *be;
  Segment segs[EE_RUNNER_MAX_SEGMENTS];
  int n_segs;
  int exit_segs[EE_RUNNER_MAX_SEGMENTS];
  int n_exits;
  gboolean open; /* between begin and end */
  gboolean finalized;
  gboolean own_arena_taken; /* a cursor uses the graph's own arena */
};

struct _EeCursor
{
  EeRunner *r;
  void *arena;      /* NULL: the graph's own */
  guint32 exits;    /* the frame's exits */
  guint32 enqueued; /* segments enqueued in this frame */
  guint32 done;     /* exits seen finished */
  int n_calls;      /* enqueue calls in this frame */
  /* after[s]: recorded after segment s; call[k]: at the start of enqueue
   * call k; before[s]: the event segment s is timed from */
  EeEvent *after[EE_RUNNER_MAX_SEGMENTS];
  EeEvent *call[EE_RUNNER_MAX_SEGMENTS];
  EeEvent *before[EE_RUNNER_MAX_SEGMENTS];
  float *slot[EE_RUNNER_MAX_SEGMENTS];     /* per exit: host result */
  float *map_slot[EE_RUNNER_MAX_SEGMENTS]; /* per exit: host map, or NULL */
  EeExitResult results[EE_RUNNER_MAX_SEGMENTS];
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
  /* a segment still open (a model load that failed inside it) has its name
   * too */
  for (int i = 0; i < r->n_segs + (r->open ? 1 : 0); i++)
    g_free (r->segs[i].name);
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
  s->seg.map = -1;
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
ee_runner_set_exit_map (EeRunner *r, int map_value, GError **error)
{
  Segment *s = &r->segs[r->n_segs];
  const EeTensorDesc *d;
  int out;

  if (!r->open || !s->seg.is_exit || s->seg.map >= 0) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "exit map: no exit segment open, or the exit has a map "
                 "already");
    return FALSE;
  }
  d = map_value >= 0 ? ee_graph_desc (r->graph, map_value) : NULL;
  if (!d || !((d->ndim == 4 && d->shape[1] == 1) || d->ndim == 3)) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "exit %s: its map must be an (N, 1, H, W) or (N, H, W) value",
                 s->name);
    return FALSE;
  }
  out = ee_graph_mark_output (r->graph, map_value, error);
  if (out < 0)
    return FALSE;
  d = ee_graph_desc (r->graph, out);
  s->seg.map = out;
  s->seg.map_h = d->shape[d->ndim - 2];
  s->seg.map_w = d->shape[d->ndim - 1];
  return TRUE;
}

gboolean
ee_runner_finalize (EeRunner *r, GError **error)
{
  g_return_val_if_fail (!r->open && !r->finalized, FALSE);
  if (!ee_graph_plan (r->graph, error))
    return FALSE;
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

const char *
ee_runner_exit_name (EeRunner *r, int exit_index)
{
  return (exit_index >= 0 && exit_index < r->n_exits)
             ? r->segs[r->exit_segs[exit_index]].name
             : NULL;
}

guint32
ee_runner_exit_needs (EeRunner *r, int exit_index)
{
  int seg = ee_runner_exit_segment (r, exit_index);

  return seg < 0 ? 0 : r->segs[seg].seg.needs | (1u << seg);
}

/* ------------------------------------------------------------ cursor */

EeCursor *
ee_cursor_new (EeRunner *r, GError **error)
{
  EeCursor *c;

  g_return_val_if_fail (r->finalized, NULL);
  c = g_new0 (EeCursor, 1);
  c->r = r;
  if (r->own_arena_taken) {
    c->arena = ee_graph_arena_new (r->graph, error);
    if (!c->arena)
      goto fail;
  } else {
    r->own_arena_taken = TRUE;
  }
  for (int s = 0; s < r->n_segs; s++) {
    c->after[s] = r->be->vt->event_new (r->be, error);
    c->call[s] = r->be->vt->event_new (r->be, error);
    if (!c->after[s] || !c->call[s])
      goto fail;
  }
  for (int i = 0; i < r->n_exits; i++) {
    Segment *s = &r->segs[r->exit_segs[i]];
    c->slot[i] = g_new0 (float, MAX (s->seg.n_out, 1));
    c->results[i].name = s->name;
    c->results[i].exit_index = i;
    c->results[i].value = c->slot[i];
    c->results[i].n_out = s->seg.n_out;
    if (s->seg.map >= 0) {
      /* a batched graph's map holds one grid per frame */
      c->map_slot[i] = g_new0 (
          float, ee_tensor_desc_numel (ee_graph_desc (r->graph, s->seg.map)));
      c->results[i].map = c->map_slot[i];
      c->results[i].map_h = s->seg.map_h;
      c->results[i].map_w = s->seg.map_w;
    }
  }
  return c;

fail:
  ee_cursor_free (c);
  return NULL;
}

void
ee_cursor_free (EeCursor *c)
{
  EeBackend *be;

  if (!c)
    return;
  be = c->r->be;
  for (int s = 0; s < EE_RUNNER_MAX_SEGMENTS; s++) {
    if (c->after[s])
      be->vt->event_free (be, c->after[s]);
    if (c->call[s])
      be->vt->event_free (be, c->call[s]);
    g_free (c->slot[s]);
    g_free (c->map_slot[s]);
  }
  if (c->arena)
    ee_graph_arena_free (c->r->graph, c->arena);
  else
    c->r->own_arena_taken = FALSE;
  g_free (c);
}

EeRunner *
ee_cursor_runner (EeCursor *c)
{
  return c->r;
}

void
ee_cursor_begin (EeCursor *c, guint32 exits)
{
  c->exits = exits;
  c->enqueued = c->done = 0;
  c->n_calls = 0;
  for (int i = 0; i < c->r->n_exits; i++) {
    c->results[i].requested = c->results[i].done = FALSE;
    c->results[i].time_ms = 0;
  }
}

gboolean
ee_cursor_upload (EeCursor *c, int input, const float *host, GError **error)
{
  return ee_graph_upload (c->r->graph, c->arena, input, host, error);
}

gboolean
ee_cursor_upload_slot (EeCursor *c, int input, int slot, int n_slots,
                       const float *host, GError **error)
{
  return ee_graph_upload_slot (c->r->graph, c->arena, input, slot, n_slots,
                               host, error);
}

static int
highest_bit (guint32 bits)
{
  return bits ? 31 - __builtin_clz (bits) : -1;
}

guint32
ee_cursor_enqueued (EeCursor *c)
{
  return c->enqueued;
}

gboolean
ee_cursor_can_run (EeCursor *c, int exit_index)
{
  int seg = ee_runner_exit_segment (c->r, exit_index);

  return seg >= 0 && (c->exits & (1u << exit_index))
         && !(c->enqueued & (1u << seg)) && highest_bit (c->enqueued) < seg;
}

guint32
ee_cursor_step (EeCursor *c, int exit_index)
{
  guint32 need, later = 0;
  int hi;

  if (!ee_cursor_can_run (c, exit_index))
    return 0;
  need = ee_runner_exit_needs (c->r, exit_index) & ~c->enqueued;
  hi = highest_bit (need);
  for (int j = exit_index + 1; j < c->r->n_exits; j++)
    if (c->exits & (1u << j))
      later |= ee_runner_exit_needs (c->r, j);
  /* earlier-numbered segments the frame's later exits need run now, or the
   * arena's planned order would be broken */
  return need | (later & ~c->enqueued & ((1u << hi) - 1));
}

gboolean
ee_cursor_enqueue (EeCursor *c, int exit_index, GError **error)
{
  EeRunner *r = c->r;
  EeBackend *be = r->be;
  guint32 run = ee_cursor_step (c, exit_index);
  EeEvent *prev;

  if (!run) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "exit %d cannot run in this frame (not one of its exits, "
                 "already enqueued, or later segments have run)",
                 exit_index);
    return FALSE;
  }
  prev = c->call[c->n_calls++];
  if (!be->vt->event_record (be, prev, error))
    return FALSE;
  for (int i = 0; i < r->n_segs; i++) {
    Segment *s = &r->segs[i];
    if (!(run & (1u << i)))
      continue;
    if (!ee_graph_run (r->graph, c->arena, s->seg.first_op, s->seg.last_op,
                       error))
      return FALSE;
    if (s->seg.is_exit) {
      if (!ee_graph_download (r->graph, c->arena, s->seg.output,
                              c->slot[s->exit_index], error)
          || (s->seg.map >= 0
              && !ee_graph_download (r->graph, c->arena, s->seg.map,
                                     c->map_slot[s->exit_index], error)))
        return FALSE;
      c->results[s->exit_index].requested = TRUE;
    }
    if (!be->vt->event_record (be, c->after[i], error))
      return FALSE;
    c->before[i] = prev;
    prev = c->after[i];
    c->enqueued |= 1u << i;
  }
  return TRUE;
}

guint32
ee_cursor_poll (EeCursor *c)
{
  EeBackend *be = c->r->be;

  for (int i = 0; i < c->r->n_exits; i++) {
    EeExitResult *res = &c->results[i];
    int seg = c->r->exit_segs[i];
    if (!res->requested || res->done
        || !be->vt->event_query (be, c->after[seg]))
      continue;
    res->done = TRUE;
    c->done |= 1u << i;
    if (!be->vt->event_elapsed_ms (be, c->call[0], c->after[seg], &res->time_ms,
                                   NULL))
      res->time_ms = -1;
  }
  return c->done;
}

gboolean
ee_cursor_wait (EeCursor *c, GError **error)
{
  if (!ee_backend_sync (c->r->be, error))
    return FALSE;
  ee_cursor_poll (c);
  return TRUE;
}

const EeExitResult *
ee_cursor_result (EeCursor *c, int exit_index)
{
  return (exit_index >= 0 && exit_index < c->r->n_exits)
             ? &c->results[exit_index]
             : NULL;
}

double
ee_cursor_segment_ms (EeCursor *c, int segment)
{
  EeBackend *be = c->r->be;
  double ms;

  if (segment < 0 || segment >= c->r->n_segs || !(c->enqueued & (1u << segment))
      || !be->vt->event_query (be, c->after[segment])
      || !be->vt->event_elapsed_ms (be, c->before[segment], c->after[segment],
                                    &ms, NULL))
    return -1;
  return ms;
}
