/* gst-earlyexit: the anytime engine (ee-engine.h). */
#include "ee-engine.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ee-backend-select.h"

/* EMA weight of a new measurement, and the most a measurement may exceed the
 * estimate by. */
#define EMA_WEIGHT 0.25
#define SAMPLE_CLAMP 2.0
/* An exit skipped for lack of time this many frames in a row is tried anyway
 * (its estimate may be stale); each try that misses the deadline doubles the
 * wait. */
#define PROBE_FIRST 25
#define PROBE_MAX 1600
/* On-time QoS reports before a stream aims one exit higher again. */
#define QOS_RECOVER_REPORTS 25
#define MAX_INPUTS 8
/* The most frames one engine runs at once (EeEngineConfig.lanes). */
#define MAX_LANES 16
/* The most frames one batched step takes (EeEngineConfig.batch_size). */
#define MAX_BATCH 32

typedef struct _EeGroup EeGroup;

struct _EeEngine
{
  /* fixed after acquire */
  gint refs; /* registry lock */
  char *model_file, *device, *instance_id;
  EePrecision precision;
  int cores; /* the engine's CPU threads (config threads, or every core) */
  int n_lanes;
  EeBackend *be;
  EeRunner *r;
  gpointer owner;
  GDestroyNotify owner_free;
  gboolean eager;
  int n_segs, n_exits, n_inputs;
  int input_value[MAX_INPUTS];

  /* everything below: `lock` */
  GMutex lock;
  GCond cond; /* any change of a frame, a stream or the queue */
  GThread *workers[MAX_LANES];
  int running; /* steps running now, one per busy lane */
  gboolean quit;
  GList *streams;
  GPtrArray *waiting, *going; /* the worker's, reused at every decision */
  /* ns per segment on all the engine's cores, moving average */
  double est[EE_RUNNER_MAX_SEGMENTS];
  /* how much slower than alone a step runs now: the lanes sharing the
   * cores (1 with one lane); set at every decision */
  double slow;
  int skipped[EE_RUNNER_MAX_SEGMENTS]; /* per exit, frames skipped in a row */
  int probe_every[EE_RUNNER_MAX_SEGMENTS]; /* per exit */

  /* batched steps (batch > 1): the model loaded again with `batch` frames
   * per run, weights shared where the backend shares them; fixed after
   * acquire */
  int batch;
  EeRunner *rb;
  gpointer owner_b;
  GDestroyNotify owner_b_free;
  int input_value_b[MAX_INPUTS];
  /* `lock`: ns per segment of a batched step, and the groups made so far */
  double est_b[EE_RUNNER_MAX_SEGMENTS];
  GPtrArray *groups;
};

/* Frames from several streams that run as one: their inputs in the slots of
 * one batched cursor, every step of theirs one batched call. A frame leaves
 * its group when it is published; the group is free again once it has no
 * frame left and no step running. */
struct _EeGroup
{
  EeCursor *cur;               /* on the engine's batched runner */
  EeStream *member[MAX_BATCH]; /* by slot; NULL: empty or left */
  int live;                    /* members not yet published */
  gboolean busy;               /* a worker runs a step of it */
};

struct _EeStream
{
  EeEngine *e;
  EeCursor *cur;
  const float *input[MAX_INPUTS]; /* by graph input index */

  /* the frame in flight and the stream's state: e->lock */
  gboolean active;    /* submitted, not published */
  gboolean busy;      /* a worker runs a step of it (outside the lock) */
  gboolean started;   /* cursor begun and inputs uploaded */
  EeFrameParams p;    /* with the QoS cap applied */
  guint32 set;        /* candidate exits */
  guint32 finished;   /* exits finished */
  int probe, stopped; /* the exit taken as a try, the one left out; -1 */
  gboolean accepted;  /* CONFIDENCE accepted the newest finished exit */
  EeFrameResult res;
  GError *error;
  gboolean has_last; /* a result was published since the last reset */
  /* in a group: its slot there; the published result is copied out of the
   * group's cursor into own_value / own_map */
  EeGroup *group;
  int slot;
  float *own_value, *own_map;
  /* the group it left last: its inputs may still be read by a step there */
  EeGroup *last_group;

  int qos_cap; /* -1: none */
  gboolean qos_late;
  gint64 qos_lowered_at;
  int qos_on_time;
  EeStreamStats stats;
};

static GMutex registry_lock;
static GHashTable *registry; /* instance id -> EeEngine */

gint64
ee_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64)ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

const char *
ee_policy_name (EePolicy policy)
{
  static const char *const names[]
      = { "anytime", "confidence", "fixed", "full" };

  return (policy >= 0 && policy <= EE_POLICY_FULL) ? names[policy] : "?";
}

EeEngineConfig
ee_engine_default_config (void)
{
  return (EeEngineConfig){ .device = "auto",
                           .precision = EE_PRECISION_FP32,
                           .warm_up_runs = 2 };
}

/* ------------------------------------------------------------ costs */

static int
highest (guint32 bits)
{
  return bits ? 31 - __builtin_clz (bits) : -1;
}

/* The sum of per-segment estimates `est` over segments `segs`. */
static double
sum_segments (const EeEngine *e, const double *est, guint32 segs)
{
  double c = 0;

  for (int s = 0; s < e->n_segs; s++)
    if (segs & (1u << s))
      c += est[s];
  return c;
}

/* Estimated ns of segments `segs` on all the engine's cores. */
static double
cost_alone (EeEngine *e, guint32 segs)
{
  return sum_segments (e, e->est, segs);
}

/* The same as the lanes share the cores now: what scheduling plans with. */
static double
cost (EeEngine *e, guint32 segs)
{
  return cost_alone (e, segs) * e->slow;
}

/* The same for a batched step (every frame of a group at once). */
static double
cost_batch (EeEngine *e, guint32 segs)
{
  return sum_segments (e, e->est_b, segs) * e->slow;
}

/* What a step of frame s costs: a batched one when s runs in a group. */
static double
step_cost (EeEngine *e, const EeStream *s, guint32 segs)
{
  return s->group ? cost_batch (e, segs) : cost (e, segs);
}

/* The cursor that holds frame s: its group's, or its stream's own. */
static EeCursor *
cursor_of (const EeStream *s)
{
  return s->group ? s->group->cur : s->cur;
}

static void
update (double *est, double ns, gboolean fresh)
{
  if (fresh || *est <= 0) {
    *est = ns;
    return;
  }
  /* a preempted run must not lock a segment out */
  ns = MIN (ns, *est * SAMPLE_CLAMP);
  *est += EMA_WEIGHT * (ns - *est);
}

gint64
ee_engine_exit_cost (EeEngine *e, int exit_index)
{
  gint64 c;

  g_mutex_lock (&e->lock);
  c = (gint64)cost_alone (e, ee_runner_exit_needs (e->r, exit_index));
  g_mutex_unlock (&e->lock);
  return c;
}

gint64
ee_engine_frame_cost (EeEngine *e)
{
  gint64 c;

  g_mutex_lock (&e->lock);
  c = (gint64)cost_alone (e, (guint32)((1ull << e->n_segs) - 1));
  g_mutex_unlock (&e->lock);
  return c;
}

void
ee_engine_set_cost (EeEngine *e, int segment, gint64 ns)
{
  g_mutex_lock (&e->lock);
  if (segment >= 0 && segment < e->n_segs)
    e->est[segment] = (double)ns;
  g_mutex_unlock (&e->lock);
}

/* ------------------------------------------------------------ policies */

static gboolean
timed (const EeFrameParams *p)
{
  return p->policy == EE_POLICY_ANYTIME || p->policy == EE_POLICY_CONFIDENCE;
}

/* The exits the policy considers, in anytime order (bit i = exit i). When no
 * allowed exit lies in [min, max], the newest allowed one before max, else the
 * earliest allowed one after it. */
static guint32
candidates (int n, const EeFrameParams *p)
{
  int lo, hi;
  guint32 set = 0;

  if (n == 0)
    return 0;
  hi = p->max_exit >= 0 ? MIN (p->max_exit, n - 1) : n - 1;
  lo = p->min_exit >= 0 ? MIN (p->min_exit, hi) : 0;
  for (int i = lo; i <= hi; i++)
    set |= p->allowed & (1u << i);
  if (!set) {
    for (int i = hi; i >= 0 && !set; i--)
      set = p->allowed & (1u << i);
    for (int i = hi + 1; i < n && !set; i++)
      set = p->allowed & (1u << i);
    return set;
  }
  if (p->policy == EE_POLICY_FIXED)
    return 1u << highest (set);
  return set;
}

/* The segments exit i adds after `done` when the exits in `set` may follow:
 * ee_cursor_step's rule, for planning before a frame has a cursor. */
static guint32
plan_step (EeEngine *e, guint32 set, int i, guint32 done)
{
  guint32 need = ee_runner_exit_needs (e->r, i) & ~done, may = 0;

  if (!need)
    return 0;
  for (int j = i + 1; j < e->n_exits; j++)
    if (set & (1u << j))
      may |= ee_runner_exit_needs (e->r, j);
  return need | (may & ~done & ((1u << highest (need)) - 1));
}

/* Whether exit i (a step costing c) may start at `now`: it fits by the
 * estimates, or it is due for a try (*probe). */
static gboolean
fits (EeEngine *e, const EeFrameParams *p, int i, double c, double now,
      gboolean *probe)
{
  *probe = FALSE;
  if (!timed (p) || now + c <= (double)p->deadline)
    return TRUE;
  if (e->skipped[i] >= e->probe_every[i]) {
    *probe = TRUE;
    return TRUE;
  }
  return FALSE;
}

/* ANYTIME, CONFIDENCE: the last exit expected to finish by the deadline when
 * the frame starts at `now`. */
static int
plan_target (EeEngine *e, const EeFrameParams *p, double now)
{
  guint32 set = candidates (e->n_exits, p), done = 0;
  int target = -1;

  if (!timed (p))
    return highest (set);
  for (int i = 0; i < e->n_exits; i++) {
    guint32 need;
    gboolean try;

    if (!(set & (1u << i)))
      continue;
    need = plan_step (e, set, i, done);
    if (target >= 0 && !fits (e, p, i, cost (e, need), now, &try))
      break;
    now += cost (e, need);
    done |= need;
    target = i;
  }
  return target;
}

/* The published exit among those that finished: timed policies take the
 * newest finished by the deadline (else the earliest that finished), the
 * others the newest. */
static int
pick (const EeFrameParams *p, guint32 ran, const gint64 *finish)
{
  if (!timed (p))
    return highest (ran);
  for (int i = highest (ran); i >= 0; i--)
    if ((ran & (1u << i)) && finish[i] <= p->deadline)
      return i;
  return ran ? __builtin_ctz (ran) : -1;
}

/* After a frame: counts the skip of the exit left out and judges a try. */
static void
account (EeEngine *e, EeStream *s)
{
  int probe = s->probe, stopped = s->stopped;

  for (int i = 0; i < e->n_exits; i++)
    if (s->finished & (1u << i))
      e->skipped[i] = 0;
  if (stopped >= 0)
    e->skipped[stopped]++;
  if (probe < 0)
    return;
  if ((s->finished & (1u << probe)) && s->res.finish[probe] <= s->p.deadline) {
    e->probe_every[probe] = PROBE_FIRST;
    /* one stale estimate suggests others: try the next exit next frame */
    if (stopped >= 0)
      e->skipped[stopped] = MAX (e->skipped[stopped], e->probe_every[stopped]);
  } else {
    e->probe_every[probe] = MIN (2 * e->probe_every[probe], PROBE_MAX);
  }
}

/* Ends the frame: its result is what it has now. Called with the lock. */
static void
publish (EeEngine *e, EeStream *s, gboolean carry)
{
  EeFrameResult *res = &s->res;
  EeStreamStats *st = &s->stats;

  res->published = ee_now ();
  res->ran = s->finished;
  res->carried = carry;
  res->exit = carry ? -1 : pick (&s->p, s->finished, res->finish);
  /* late is a result that was not there by the deadline: an exit that
   * finished after it; a carried result was there before */
  res->missed = res->exit >= 0 && res->finish[res->exit] > s->p.deadline;
  if (res->exit >= 0) {
    const EeExitResult *r = ee_cursor_result (cursor_of (s), res->exit);
    res->value = r->value;
    res->n_out = r->n_out;
    res->map = r->map;
    res->map_h = r->map_h;
    res->map_w = r->map_w;
    if (s->group) {
      /* the group's cursor serves its next frames: copy this one's slot */
      int64_t n = r->n_out / e->batch, cells = r->map_h * r->map_w;

      memcpy (s->own_value, r->value + s->slot * n, (size_t)n * sizeof (float));
      res->value = s->own_value;
      res->n_out = n;
      if (r->map) {
        memcpy (s->own_map, r->map + s->slot * cells,
                (size_t)cells * sizeof (float));
        res->map = s->own_map;
      }
    }
    res->stopped_early = s->accepted && res->exit == highest (s->finished)
                         && res->exit < highest (s->set);
    s->has_last = TRUE;
  }
  if (timed (&s->p))
    account (e, s);

  if (s->group) {
    /* leaves its group: the stream may start its next frame at once */
    s->group->member[s->slot] = NULL;
    s->group->live--;
    s->last_group = s->group;
    s->group = NULL;
    st->batched += !carry;
  }
  st->frames++;
  st->carried += carry;
  st->misses += res->missed;
  st->confident += res->stopped_early;
  if (res->exit >= 0)
    st->taken[res->exit]++;
  for (int i = 0; i < e->n_exits; i++)
    if (s->finished & (1u << i)) {
      st->runs[i]++;
      st->time[i] += (guint64)MAX (res->finish[i] - res->start, 0);
    }
  s->active = FALSE;
  g_cond_broadcast (&e->cond);
}

/* ------------------------------------------------------------ the worker */

/* The next exit frame s would run, and its segments; -1 when none is left. */
static int
next_exit (EeEngine *e, EeStream *s, guint32 *need)
{
  EeCursor *c = cursor_of (s);

  for (int i = highest (s->finished) + 1; i < e->n_exits; i++) {
    if (!(s->set & (1u << i)))
      continue;
    if (!s->started) {
      *need = plan_step (e, s->set, i, 0);
      return i;
    }
    if (ee_cursor_can_run (c, i)) {
      *need = ee_cursor_step (c, i);
      return i;
    }
  }
  return -1;
}

static gint
by_deadline (gconstpointer a, gconstpointer b)
{
  const EeStream *x = *(EeStream *const *)a, *y = *(EeStream *const *)b;

  return x->p.deadline < y->p.deadline ? -1 : x->p.deadline > y->p.deadline;
}

/* Whether frame s, whose first step costs `first`, may carry its stream's
 * last result instead of running: a timed policy, a result to carry, and a
 * budget the step fits in. A budget shorter than the first exit is not lack
 * of time that skipping frames could cure: such frames run, late. */
static gboolean
may_carry (const EeStream *s, double first)
{
  return timed (&s->p) && s->has_last
         && (double)(s->p.deadline - s->res.start) >= first;
}

/* First exits, earliest deadline first: the first frame that can make its
 * deadline (or must run anyway: see may_carry); frames that cannot, with the
 * first exits queued before them, carry their last result. With several
 * lanes the queue before a frame drains that many times faster, with
 * batched steps a batch at a time. */
static EeStream *
choose_first (EeEngine *e, GPtrArray *waiting, double now, int *exit_index)
{
  EeStream *chosen = NULL;
  double queued = 0;
  gboolean batching = e->batch > 1 && waiting->len > 1;

  g_ptr_array_sort (waiting, by_deadline);
  for (guint k = 0; k < waiting->len; k++) {
    EeStream *s = g_ptr_array_index (waiting, k);
    guint32 need;
    int i = next_exit (e, s, &need);
    double c = cost (e, need);

    if (now + queued / e->n_lanes + c > (double)s->p.deadline
        && may_carry (s, c)) {
      publish (e, s, TRUE);
      continue;
    }
    queued += batching ? MIN (c, cost_batch (e, need) / e->batch) : c;
    if (!chosen) {
      chosen = s;
      *exit_index = i;
    }
  }
  return chosen;
}

static gboolean
same_inputs (EeEngine *e, const EeStream *a, const EeStream *b)
{
  for (int k = 0; k < e->n_inputs; k++)
    if (!a->input[k] != !b->input[k])
      return FALSE;
  return TRUE;
}

static gboolean zero_inputs (EeEngine *e, EeRunner *r, EeCursor *c,
                             const int *input_value, GError **error);

/* A group with no frame and no step running, or a new one (NULL when its
 * activation memory cannot be had: the frames then run one by one). */
static EeGroup *
free_group (EeEngine *e)
{
  EeGroup *g;
  GError *err = NULL;

  for (guint k = 0; k < e->groups->len; k++) {
    g = g_ptr_array_index (e->groups, k);
    if (!g->live && !g->busy)
      return g;
  }
  g = g_new0 (EeGroup, 1);
  g->cur = ee_cursor_new (e->rb, &err);
  /* slots no member fills compute on zeros, not on unset memory */
  if (!g->cur || !zero_inputs (e, e->rb, g->cur, e->input_value_b, &err)) {
    g_warning ("engine: cannot set up another batch of %d frames (%s); "
               "running frames one by one",
               e->batch, err->message);
    g_error_free (err);
    if (g->cur)
      ee_cursor_free (g->cur);
    g_free (g);
    return NULL;
  }
  g_ptr_array_add (e->groups, g);
  return g;
}

/* Batched steps: s (chosen for its first exit i) and the frames waiting for
 * the same first step with the same exits and inputs, earliest deadlines
 * first (waiting is sorted), that the batched step still brings in by their
 * deadlines; a group when there are at least two and the batched step is
 * still in time for s (or a single step would be late too). Else NULL: s
 * runs alone. */
static EeGroup *
gather (EeEngine *e, EeStream *s, int i, GPtrArray *waiting, double now)
{
  EeStream *take[MAX_BATCH];
  guint32 need;
  double cb;
  int n = 0;
  EeGroup *g;

  if (e->batch <= 1 || waiting->len < 2 || next_exit (e, s, &need) != i)
    return NULL;
  cb = cost_batch (e, need);
  if (timed (&s->p) && now + cb > (double)s->p.deadline
      && now + cost (e, need) <= (double)s->p.deadline)
    return NULL;
  take[n++] = s;
  for (guint k = 0; k < waiting->len && n < e->batch; k++) {
    EeStream *t = g_ptr_array_index (waiting, k);
    guint32 t_need = 0;

    if (t == s || !t->active || t->set != s->set || !same_inputs (e, s, t)
        || next_exit (e, t, &t_need) != i || t_need != need
        || (timed (&t->p) && now + cb > (double)t->p.deadline))
      continue;
    take[n++] = t;
  }
  if (n < 2 || !(g = free_group (e)))
    return NULL;
  memset (g->member, 0, sizeof g->member);
  for (int k = 0; k < n; k++) {
    g->member[k] = take[k];
    take[k]->group = g;
    take[k]->slot = k;
  }
  g->live = n;
  return g;
}

/* ANYTIME, for a frame running alone that has its first exit and would run
 * exit i next: when running the later exits in order would not reach the
 * frame's last one by the deadline, the deepest later exit that can be
 * reached by going straight to it (the heads of the exits in between cost
 * time that a deeper exit can use); else i, the next in order. */
static int
jump_exit (EeEngine *e, EeStream *s, int i, double now)
{
  guint32 enq = ee_cursor_enqueued (s->cur), done = enq;
  int last = highest (s->set), seq = -1;
  double t = now;

  for (int j = i; j <= last; j++) {
    guint32 need;

    if (!(s->set & (1u << j)))
      continue;
    need = plan_step (e, s->set, j, done);
    if (t + cost (e, need) > (double)s->p.deadline)
      break;
    t += cost (e, need);
    done |= need;
    seq = j;
  }
  if (seq == last)
    return i;
  for (int j = last; j > MAX (seq, i); j--)
    if ((s->set & (1u << j)) && ee_cursor_can_run (s->cur, j)
        && now + cost (e, ee_cursor_step (s->cur, j)) <= (double)s->p.deadline)
      return j;
  return i;
}

/* Later exits: the earliest deadline among frames whose next exit fits (or
 * a deeper one: jump_exit); frames with nothing more to run are published.
 * The frames of a group all have the same next exit (one cursor); those it
 * does not fit leave the group, published, and the others go on together. */
static EeStream *
choose_next (EeEngine *e, GPtrArray *going, double now, int *exit_index,
             double *step)
{
  EeStream *chosen = NULL;

  for (guint k = 0; k < going->len; k++) {
    EeStream *s = g_ptr_array_index (going, k);
    guint32 need;
    gboolean try;
    int i = next_exit (e, s, &need);

    if (i < 0 || s->accepted) {
      publish (e, s, FALSE);
      continue;
    }
    if (s->p.policy == EE_POLICY_ANYTIME && !s->group) {
      int j = jump_exit (e, s, i, now);

      if (j != i) {
        i = j;
        need = ee_cursor_step (s->cur, j);
      }
    }
    if (!fits (e, &s->p, i, step_cost (e, s, need), now, &try)) {
      s->stopped = i;
      publish (e, s, FALSE);
      continue;
    }
    if (!chosen || s->p.deadline < chosen->p.deadline) {
      chosen = s;
      *exit_index = i;
      *step = step_cost (e, s, need);
      s->probe = try ? i : -1;
    }
  }
  return chosen;
}

/* Whether a later exit costing `step` may run before the first exits that
 * wait: when every waiting frame (in deadline order, the first steps before
 * it queued too, as choose_first counts them) still gets its first exit by
 * its deadline. */
static gboolean
later_goes_first (EeEngine *e, double step, GPtrArray *waiting, double now)
{
  double queued = step;

  for (guint k = 0; k < waiting->len; k++) {
    EeStream *s = g_ptr_array_index (waiting, k);
    guint32 need;

    if (!s->active || next_exit (e, s, &need) < 0)
      continue;
    queued += cost (e, need);
    if (now + queued / e->n_lanes > (double)s->p.deadline)
      return FALSE;
  }
  return TRUE;
}

static gboolean
is_busy (const EeStream *s)
{
  return s->busy || (s->group && s->group->busy);
}

/* The next step: a frame and the exit to run on it (with the frame's whole
 * group when it has one); NULL when there is nothing to do. *in_flight:
 * frames submitted and not yet published, the chosen one included. Called
 * with the lock. */
static EeStream *
choose (EeEngine *e, int *exit_index, int *in_flight)
{
  double now = (double)ee_now ();
  EeStream *s;

  *in_flight = 0;
  g_ptr_array_set_size (e->waiting, 0);
  g_ptr_array_set_size (e->going, 0);
  for (GList *l = e->streams; l; l = l->next) {
    s = l->data;
    *in_flight += s->active;
    /* a frame another lane steps waits for that step */
    if (s->active && !is_busy (s))
      g_ptr_array_add (s->finished ? e->going : e->waiting, s);
  }
  e->slow = MAX (MIN (e->n_lanes, *in_flight), 1);
  s = e->waiting->len ? choose_first (e, e->waiting, now, exit_index) : NULL;
  if (e->going->len) {
    int i;
    double step = 0;
    EeStream *later = choose_next (e, e->going, now, &i, &step);

    if (later && (!s || later_goes_first (e, step, e->waiting, now))) {
      *exit_index = i;
      return later;
    }
  }
  if (s)
    gather (e, s, *exit_index, e->waiting, now);
  return s;
}

/* Uploads the inputs of a frame's first step: the stream's into its own
 * cursor, or every member's into its slot of the group's cursor. */
static gboolean
upload_inputs (EeEngine *e, EeStream *s, EeGroup *g, GError **error)
{
  if (!g) {
    for (int k = 0; k < e->n_inputs; k++)
      if (s->input[k]
          && !ee_cursor_upload (s->cur, e->input_value[k], s->input[k], error))
        return FALSE;
    return TRUE;
  }
  for (int slot = 0; slot < e->batch; slot++) {
    EeStream *m = g->member[slot];

    for (int k = 0; m && k < e->n_inputs; k++)
      if (m->input[k]
          && !ee_cursor_upload_slot (g->cur, e->input_value_b[k], slot,
                                     e->batch, m->input[k], error))
        return FALSE;
  }
  return TRUE;
}

/* Runs exit i of s's frame (outside the lock), in s's group when it has one:
 * begins the frame on its first step, waits for the step on a non-eager
 * backend, and measures each segment. */
static gboolean
run_step (EeEngine *e, EeStream *s, EeGroup *g, int i, gboolean first,
          double *seg_ns, guint32 *segs, GError **error)
{
  EeCursor *c = g ? g->cur : s->cur;

  *segs = 0;
  if (first) {
    ee_cursor_begin (c, s->set);
    if (!upload_inputs (e, s, g, error))
      return FALSE;
  }
  *segs = ee_cursor_step (c, i);
  if (!ee_cursor_enqueue (c, i, error))
    return FALSE;
  if (!e->eager && !ee_cursor_wait (c, error))
    return FALSE;
  ee_cursor_poll (c);
  for (int seg = 0; seg < e->n_segs; seg++)
    if (*segs & (1u << seg))
      seg_ns[seg] = ee_cursor_segment_ms (c, seg) * 1e6;
  return TRUE;
}

/* Whether CONFIDENCE stops frame s at exit i (its group's slot of the
 * result when it has one). Outside the lock: s is busy. */
static gboolean
accepts (EeEngine *e, EeStream *s, EeGroup *g, int i)
{
  const EeExitResult *r = ee_cursor_result (g ? g->cur : s->cur, i);
  int64_t n = g ? r->n_out / e->batch : r->n_out;

  /* the last candidate ends the frame anyway */
  return s->p.policy == EE_POLICY_CONFIDENCE && s->p.stop
         && i < highest (s->set) && r->done
         && s->p.stop (s->p.stop_data, i, r->value + (g ? s->slot * n : 0), n);
}

/* Records a finished step of frame s (with the lock). */
static void
step_done (EeEngine *e, EeStream *s, int i, gboolean ok, gboolean accepted,
           GError **err)
{
  if (!s->active)
    return;
  if (!ok) {
    g_propagate_error (&s->error, g_error_copy (*err));
    publish (e, s, FALSE);
  } else {
    s->finished |= 1u << i;
    s->res.finish[i] = ee_now ();
    s->accepted = accepted;
  }
}

/* One lane: picks a step, runs it outside the lock, records it. A lane
 * running while others do takes its share of the engine's cores. */
static gpointer
worker_main (gpointer data)
{
  EeEngine *e = data;

  g_mutex_lock (&e->lock);
  while (!e->quit) {
    double seg_ns[EE_RUNNER_MAX_SEGMENTS];
    guint32 segs, accepted = 0;
    GError *err = NULL;
    gboolean ok, first;
    int i = -1, in_flight, sharing, step_cores;
    double share;
    EeStream *s = choose (e, &i, &in_flight), *mem[MAX_BATCH] = { NULL };
    EeGroup *g;

    if (!s) {
      g_cond_wait (&e->cond, &e->lock);
      continue;
    }
    g = s->group;
    first = !s->started;
    if (g) {
      g->busy = TRUE;
      memcpy (mem, g->member, sizeof mem);
      for (int k = 0; k < e->batch; k++)
        if (mem[k])
          mem[k]->started = TRUE;
    } else {
      s->busy = TRUE;
      s->started = TRUE;
    }
    e->running++;
    sharing = MAX (MIN (e->n_lanes, in_flight), e->running);
    g_mutex_unlock (&e->lock);

    step_cores = e->n_lanes > 1 ? MAX (e->cores / sharing, 1) : e->cores;
    /* the part of the cores the step has: its threads, or less when more
     * lanes than cores share them */
    share = e->n_lanes > 1
                ? MIN ((double)step_cores, (double)e->cores / sharing)
                : e->cores;
    if (e->n_lanes > 1)
      ee_backend_set_thread_cores (e->be, step_cores);

    ok = run_step (e, s, g, i, first, seg_ns, &segs, &err);
    /* a member published meanwhile (at its deadline) keeps its frame's
     * parameters until the step is over (ee_stream_run waits for it) */
    for (int k = 0; ok && k < (g ? e->batch : 1); k++) {
      EeStream *m = g ? mem[k] : s;
      if (m && accepts (e, m, g, i))
        accepted |= 1u << k;
    }

    g_mutex_lock (&e->lock);
    e->running--;
    for (int seg = 0; seg < e->n_segs; seg++)
      if ((segs & (1u << seg)) && seg_ns[seg] >= 0)
        /* a try exists to measure afresh; kept as on all cores: a step on
         * half of them counts half */
        update (g ? &e->est_b[seg] : &e->est[seg],
                seg_ns[seg] * share / e->cores, s->probe == i);
    if (g) {
      g->busy = FALSE;
      for (int k = 0; k < e->batch; k++)
        if (g->member[k])
          step_done (e, g->member[k], i, ok, (accepted >> k) & 1, &err);
    } else {
      s->busy = FALSE;
      step_done (e, s, i, ok, accepted & 1, &err);
    }
    g_clear_error (&err);
    g_cond_broadcast (&e->cond);
  }
  g_mutex_unlock (&e->lock);
  return NULL;
}

/* ------------------------------------------------------------ engines */

/* Fills every input of cursor c (of runner r's graph, inputs
 * input_value) with zeros and waits for the copies. */
static gboolean
zero_inputs (EeEngine *e, EeRunner *r, EeCursor *c, const int *input_value,
             GError **error)
{
  gboolean ok = TRUE;

  for (int k = 0; k < e->n_inputs && ok; k++) {
    const EeTensorDesc *d = ee_graph_desc (ee_runner_graph (r), input_value[k]);
    float *zeros = g_malloc0 (d->nbytes);

    ok = ee_cursor_upload (c, input_value[k], zeros, error)
         && ee_cursor_wait (c, error);
    g_free (zeros);
  }
  return ok;
}

/* Runs every segment `runs` times on zero inputs and sets each estimate to
 * its fastest run after the first (the first pays for lazy
 * initialisation). Before the worker starts. */
static gboolean
warm_up (EeEngine *e, EeRunner *r, const int *input_value, double *est,
         int runs, GError **error)
{
  EeCursor *c = ee_cursor_new (r, error);
  guint32 all = e->n_exits >= 32 ? G_MAXUINT32 : (1u << e->n_exits) - 1;
  gboolean ok = c != NULL && zero_inputs (e, r, c, input_value, error);

  runs = MAX (runs, 1);
  for (int run = 0; run < runs && ok; run++) {
    ee_cursor_begin (c, all);
    for (int i = 0; i < e->n_exits && ok; i++)
      ok = ee_cursor_enqueue (c, i, error);
    ok = ok && ee_cursor_wait (c, error);
    for (int seg = 0; seg < e->n_segs && ok; seg++) {
      double ns = ee_cursor_segment_ms (c, seg) * 1e6;
      if (ns < 0 || (run == 0 && runs > 1))
        continue;
      est[seg] = (run <= 1 || est[seg] <= 0) ? ns : MIN (est[seg], ns);
    }
  }
  if (c)
    ee_cursor_free (c);
  return ok;
}

static void
engine_free (EeEngine *e)
{
  g_mutex_lock (&e->lock);
  e->quit = TRUE;
  g_cond_broadcast (&e->cond);
  g_mutex_unlock (&e->lock);
  for (int k = 0; k < e->n_lanes; k++)
    if (e->workers[k])
      g_thread_join (e->workers[k]);
  g_warn_if_fail (e->streams == NULL);
  for (guint k = 0; e->groups && k < e->groups->len; k++) {
    EeGroup *g = g_ptr_array_index (e->groups, k);
    ee_cursor_free (g->cur);
    g_free (g);
  }
  g_clear_pointer (&e->groups, g_ptr_array_unref);
  if (e->owner_b_free && e->owner_b)
    e->owner_b_free (e->owner_b);
  if (e->owner_free && e->owner)
    e->owner_free (e->owner);
  ee_backend_free (e->be);
  g_mutex_clear (&e->lock);
  g_cond_clear (&e->cond);
  g_ptr_array_unref (e->waiting);
  g_ptr_array_unref (e->going);
  g_free (e->model_file);
  g_free (e->device);
  g_free (e->instance_id);
  g_free (e);
}

static const char *
device_or_auto (const char *device)
{
  return device && *device ? device : "auto";
}

static EeEngine *
engine_new (const EeEngineConfig *cfg, EeEngineLoadFunc load,
            gpointer load_data, GError **error)
{
  EeEngine *e = g_new0 (EeEngine, 1);
  EeGraph *g;

  g_mutex_init (&e->lock);
  g_cond_init (&e->cond);
  e->waiting = g_ptr_array_new ();
  e->going = g_ptr_array_new ();
  e->refs = 1;
  e->model_file = g_strdup (cfg->model_file);
  e->device = g_strdup (device_or_auto (cfg->device));
  e->instance_id = g_strdup (cfg->instance_id ? cfg->instance_id : "");
  e->precision = cfg->precision;
  e->cores = cfg->threads > 0 ? cfg->threads : (int)g_get_num_processors ();
  e->be = ee_backend_new_full (e->device, cfg->threads, cfg->precision, error);
  if (!e->be)
    goto fail;
  e->r = load (e->be, cfg->model_file, 1, load_data, &e->owner, &e->owner_free,
               error);
  if (!e->r)
    goto fail;
  g = ee_runner_graph (e->r);
  e->eager = ee_backend_has_cap (e->be, EE_BACKEND_CAP_EAGER);
  e->n_segs = ee_runner_n_segments (e->r);
  e->n_exits = ee_runner_n_exits (e->r);
  e->n_inputs = ee_graph_n_inputs (g);
  if (e->n_inputs > MAX_INPUTS) {
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "%s: %d inputs (the engine takes at most %d)", cfg->model_file,
                 e->n_inputs, MAX_INPUTS);
    goto fail;
  }
  for (int k = 0; k < e->n_inputs; k++)
    e->input_value[k] = ee_graph_input_value (g, k);
  for (int i = 0; i < e->n_exits; i++)
    e->probe_every[i] = PROBE_FIRST;
  e->slow = 1;
  if (!warm_up (e, e->r, e->input_value, e->est, cfg->warm_up_runs, error))
    goto fail;
  e->batch = MAX (cfg->batch_size, 1);
  e->groups = g_ptr_array_new ();
  if (e->batch > MAX_BATCH) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "batch size %d: the engine takes at most %d frames per step",
                 e->batch, MAX_BATCH);
    goto fail;
  }
  if (e->batch > 1) {
    /* the same model with `batch` frames per run, for batched steps */
    e->rb = load (e->be, cfg->model_file, e->batch, load_data, &e->owner_b,
                  &e->owner_b_free, error);
    if (!e->rb)
      goto fail;
    for (int k = 0; k < e->n_inputs; k++)
      e->input_value_b[k] = ee_graph_input_value (ee_runner_graph (e->rb), k);
    if (!warm_up (e, e->rb, e->input_value_b, e->est_b, cfg->warm_up_runs,
                  error))
      goto fail;
  }
  e->n_lanes = 1;
  if (ee_backend_has_cap (e->be, EE_BACKEND_CAP_CONCURRENT)) {
    const char *env = g_getenv ("EE_ENGINE_LANES");
    int lanes = cfg->lanes > 0 ? cfg->lanes
                : env && *env  ? atoi (env)
                               : e->cores;

    e->n_lanes = CLAMP (lanes, 1, MAX_LANES);
  }
  for (int k = 0; k < e->n_lanes; k++)
    e->workers[k] = g_thread_new ("ee-engine", worker_main, e);
  return e;

fail:
  engine_free (e);
  return NULL;
}

EeEngine *
ee_engine_acquire (const EeEngineConfig *cfg, EeEngineLoadFunc load,
                   gpointer load_data, GError **error)
{
  EeEngine *e;

  if (!cfg->instance_id || !*cfg->instance_id)
    return engine_new (cfg, load, load_data, error);

  /* loading under the lock: a second element asking for the same instance
   * waits for the first one's load instead of loading again */
  g_mutex_lock (&registry_lock);
  if (!registry)
    registry = g_hash_table_new (g_str_hash, g_str_equal);
  e = g_hash_table_lookup (registry, cfg->instance_id);
  if (e) {
    if (g_strcmp0 (e->model_file, cfg->model_file)
        || strcmp (e->device, device_or_auto (cfg->device))
        || e->precision != cfg->precision
        || e->batch != MAX (cfg->batch_size, 1)) {
      g_set_error (
          error, EE_ERROR, EE_ERROR_CONFLICT,
          "model-instance-id \"%s\" is in use with model file \"%s\" on "
          "device %s in %s, batch size %d; this element asks for \"%s\" on "
          "device %s in %s, batch size %d. Give it another "
          "model-instance-id, or the same model file, device, precision and "
          "batch size",
          cfg->instance_id, e->model_file, e->device,
          ee_precision_name (e->precision), e->batch, cfg->model_file,
          device_or_auto (cfg->device), ee_precision_name (cfg->precision),
          MAX (cfg->batch_size, 1));
      e = NULL;
    } else {
      e->refs++;
    }
  } else {
    e = engine_new (cfg, load, load_data, error);
    if (e)
      g_hash_table_insert (registry, e->instance_id, e);
  }
  g_mutex_unlock (&registry_lock);
  return e;
}

void
ee_engine_release (EeEngine *e)
{
  gboolean last;

  if (!e)
    return;
  g_mutex_lock (&registry_lock);
  last = --e->refs == 0;
  if (last && *e->instance_id && registry
      && g_hash_table_lookup (registry, e->instance_id) == e)
    g_hash_table_remove (registry, e->instance_id);
  g_mutex_unlock (&registry_lock);
  if (last)
    engine_free (e);
}

EeRunner *
ee_engine_runner (EeEngine *e)
{
  return e->r;
}

EeBackend *
ee_engine_backend (EeEngine *e)
{
  return e->be;
}

gpointer
ee_engine_owner (EeEngine *e)
{
  return e->owner;
}

const char *
ee_engine_instance_id (EeEngine *e)
{
  return e->instance_id;
}

int
ee_engine_n_streams (EeEngine *e)
{
  int n;

  g_mutex_lock (&e->lock);
  n = (int)g_list_length (e->streams);
  g_mutex_unlock (&e->lock);
  return n;
}

size_t
ee_engine_stream_bytes (EeEngine *e)
{
  return ee_graph_arena_bytes (ee_runner_graph (e->r));
}

/* ------------------------------------------------------------ streams */

EeStream *
ee_stream_new (EeEngine *e, GError **error)
{
  EeStream *s = g_new0 (EeStream, 1);

  s->e = e;
  s->qos_cap = -1;
  s->qos_lowered_at = -1;
  /* the workers may be running: cursors are made and freed under the lock,
   * and a worker touches a cursor only inside a step it owns */
  if (e->batch > 1) {
    /* room for one frame's slot of a group's results */
    EeRunner *rb = e->rb;
    int64_t n = 1, cells = 1;

    for (int i = 0; i < e->n_exits; i++) {
      const EeSegment *seg
          = ee_runner_segment (rb, ee_runner_exit_segment (rb, i));
      n = MAX (n, seg->n_out / e->batch);
      cells = MAX (cells, seg->map_h * seg->map_w);
    }
    s->own_value = g_new0 (float, n);
    s->own_map = g_new0 (float, cells);
  }
  g_mutex_lock (&e->lock);
  s->cur = ee_cursor_new (e->r, error);
  if (s->cur)
    e->streams = g_list_append (e->streams, s);
  g_mutex_unlock (&e->lock);
  if (!s->cur) {
    g_free (s->own_value);
    g_free (s->own_map);
    g_free (s);
    return NULL;
  }
  return s;
}

/* Whether a worker's step may still read or write what is s's: its own
 * cursor, its group's, or the inputs it gave the group it left last. */
static gboolean
in_use (const EeStream *s)
{
  return s->busy || (s->group && s->group->busy)
         || (s->last_group && s->last_group->busy);
}

void
ee_stream_free (EeStream *s)
{
  EeEngine *e;

  if (!s)
    return;
  e = s->e;
  g_mutex_lock (&e->lock);
  while (in_use (s))
    g_cond_wait (&e->cond, &e->lock);
  s->active = FALSE;
  if (s->group) {
    s->group->member[s->slot] = NULL;
    s->group->live--;
  }
  e->streams = g_list_remove (e->streams, s);
  ee_cursor_free (s->cur);
  g_mutex_unlock (&e->lock);
  g_clear_error (&s->error);
  g_free (s->own_value);
  g_free (s->own_map);
  g_free (s);
}

EeEngine *
ee_stream_engine (EeStream *s)
{
  return s->e;
}

void
ee_stream_set_input (EeStream *s, int input, const float *host)
{
  for (int k = 0; k < s->e->n_inputs; k++)
    if (s->e->input_value[k] == input)
      s->input[k] = host;
}

int
ee_stream_target (EeStream *s, const EeFrameParams *p)
{
  int t;

  g_mutex_lock (&s->e->lock);
  t = plan_target (s->e, p, (double)ee_now ());
  g_mutex_unlock (&s->e->lock);
  return t;
}

/* ANYTIME: applies the stream's QoS cap to *p, lowering it first after a
 * late report. Called with the lock. */
static void
apply_qos (EeEngine *e, EeStream *s, EeFrameParams *p, EeFrameResult *res)
{
  int aim;

  if (p->policy == EE_POLICY_ANYTIME) {
    if (s->qos_cap >= 0 && (p->max_exit < 0 || s->qos_cap < p->max_exit))
      p->max_exit = s->qos_cap;
    if (s->qos_late) {
      aim = plan_target (e, p, (double)ee_now ());
      if (aim > MAX (p->min_exit, 0)) {
        p->max_exit = s->qos_cap = aim - 1;
        s->qos_lowered_at = p->position;
        s->qos_on_time = 0;
        s->stats.qos_lowered++;
        res->qos_lowered = TRUE;
      }
    }
  }
  s->qos_late = FALSE;
  res->qos_max_exit = s->qos_cap;
}

/* Waits, with the lock, until the frame is published: at the deadline the
 * caller takes what there is (timed policies) when there is something. */
static void
wait_published (EeEngine *e, EeStream *s)
{
  while (s->active) {
    gint64 now = ee_now ();

    if (timed (&s->p) && now >= s->p.deadline) {
      guint32 first = plan_step (e, s->set, __builtin_ctz (s->set), 0);
      if (s->finished || may_carry (s, cost (e, first))) {
        publish (e, s, s->finished == 0);
        break;
      }
      g_cond_wait (&e->cond, &e->lock);
    } else if (timed (&s->p)) {
      g_cond_wait_until (&e->cond, &e->lock, s->p.deadline / 1000);
    } else {
      g_cond_wait (&e->cond, &e->lock);
    }
  }
}

gboolean
ee_stream_run (EeStream *s, const EeFrameParams *p, EeFrameResult *res,
               GError **error)
{
  EeEngine *e = s->e;
  gboolean ok = TRUE;

  g_mutex_lock (&e->lock);
  /* a step of the previous frame may still run in our arena, or read our
   * inputs in a group's */
  while (in_use (s))
    g_cond_wait (&e->cond, &e->lock);
  memset (&s->res, 0, sizeof s->res);
  s->res.exit = -1;
  s->res.start = ee_now ();
  s->p = *p;
  apply_qos (e, s, &s->p, &s->res);
  s->set = candidates (e->n_exits, &s->p);
  s->finished = 0;
  s->probe = s->stopped = -1;
  s->accepted = s->started = FALSE;
  if (s->set) {
    s->active = TRUE;
    g_cond_broadcast (&e->cond);
    wait_published (e, s);
  } else {
    s->res.published = ee_now ();
  }
  *res = s->res;
  if (s->error) {
    g_propagate_error (error, s->error);
    s->error = NULL;
    ok = FALSE;
  }
  g_mutex_unlock (&e->lock);
  return ok;
}

void
ee_stream_report_qos (EeStream *s, gboolean late, gint64 position)
{
  g_mutex_lock (&s->e->lock);
  if (late) {
    /* reports on frames made before the last lowering say nothing new */
    if (s->qos_lowered_at < 0 || position < 0 || position > s->qos_lowered_at)
      s->qos_late = TRUE;
  } else if (s->qos_cap >= 0 && ++s->qos_on_time >= QOS_RECOVER_REPORTS) {
    s->qos_on_time = 0;
    if (++s->qos_cap >= s->e->n_exits - 1)
      s->qos_cap = -1;
  }
  g_mutex_unlock (&s->e->lock);
}

void
ee_stream_reset (EeStream *s)
{
  g_mutex_lock (&s->e->lock);
  s->has_last = FALSE;
  s->qos_cap = -1;
  s->qos_late = FALSE;
  s->qos_lowered_at = -1;
  s->qos_on_time = 0;
  g_mutex_unlock (&s->e->lock);
}

void
ee_stream_get_stats (EeStream *s, EeStreamStats *stats)
{
  EeEngine *e = s->e;

  g_mutex_lock (&e->lock);
  *stats = s->stats;
  stats->qos_max_exit = s->qos_cap;
  stats->n_exits = e->n_exits;
  for (int i = 0; i < e->n_exits; i++)
    stats->estimate[i] = (gint64)cost_alone (e, ee_runner_exit_needs (e->r, i));
  g_mutex_unlock (&e->lock);
}
