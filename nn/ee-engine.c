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

/* Estimated ns of segments `segs` on all the engine's cores. */
static double
cost_alone (EeEngine *e, guint32 segs)
{
  double c = 0;

  for (int s = 0; s < e->n_segs; s++)
    if (segs & (1u << s))
      c += e->est[s];
  return c;
}

/* The same as the lanes share the cores now: what scheduling plans with. */
static double
cost (EeEngine *e, guint32 segs)
{
  return cost_alone (e, segs) * e->slow;
}

static void
update (EeEngine *e, int seg, double ns, gboolean fresh)
{
  double est = e->est[seg];

  if (fresh || est <= 0) {
    e->est[seg] = ns;
    return;
  }
  /* a preempted run must not lock a segment out */
  ns = MIN (ns, est * SAMPLE_CLAMP);
  e->est[seg] = est + EMA_WEIGHT * (ns - est);
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

/* Whether exit i (segments `need`) may start at `now`: it fits by the
 * estimates, or it is due for a try (*probe). */
static gboolean
fits (EeEngine *e, const EeFrameParams *p, int i, guint32 need, double now,
      gboolean *probe)
{
  *probe = FALSE;
  if (!timed (p) || now + cost (e, need) <= (double)p->deadline)
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
    if (target >= 0 && !fits (e, p, i, need, now, &try))
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
    const EeExitResult *r = ee_cursor_result (s->cur, res->exit);
    res->value = r->value;
    res->n_out = r->n_out;
    res->map = r->map;
    res->map_h = r->map_h;
    res->map_w = r->map_w;
    res->stopped_early = s->accepted && res->exit == highest (s->finished)
                         && res->exit < highest (s->set);
    s->has_last = TRUE;
  }
  if (timed (&s->p))
    account (e, s);

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
  for (int i = highest (s->finished) + 1; i < e->n_exits; i++) {
    if (!(s->set & (1u << i)))
      continue;
    if (!s->started) {
      *need = plan_step (e, s->set, i, 0);
      return i;
    }
    if (ee_cursor_can_run (s->cur, i)) {
      *need = ee_cursor_step (s->cur, i);
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
 * lanes the queue before a frame drains that many times faster. */
static EeStream *
choose_first (EeEngine *e, GPtrArray *waiting, double now, int *exit_index)
{
  EeStream *chosen = NULL;
  double queued = 0;

  g_ptr_array_sort (waiting, by_deadline);
  for (guint k = 0; k < waiting->len; k++) {
    EeStream *s = g_ptr_array_index (waiting, k);
    guint32 need;
    int i = next_exit (e, s, &need);

    if (now + queued / e->n_lanes + cost (e, need) > (double)s->p.deadline
        && may_carry (s, cost (e, need))) {
      publish (e, s, TRUE);
      continue;
    }
    queued += cost (e, need);
    if (!chosen) {
      chosen = s;
      *exit_index = i;
    }
  }
  return chosen;
}

/* ANYTIME, for a frame that has its first exit and would run exit i next:
 * when running the later exits in order would not reach the frame's last
 * one by the deadline, the deepest later exit that can be reached by going
 * straight to it (the heads of the exits in between cost time that a deeper
 * exit can use); else i, the next in order. */
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
 * a deeper one: jump_exit); frames with nothing more to run are
 * published. */
static EeStream *
choose_next (EeEngine *e, GPtrArray *going, double now, int *exit_index)
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
    if (s->p.policy == EE_POLICY_ANYTIME) {
      int j = jump_exit (e, s, i, now);

      if (j != i) {
        i = j;
        need = ee_cursor_step (s->cur, j);
      }
    }
    if (!fits (e, &s->p, i, need, now, &try)) {
      s->stopped = i;
      publish (e, s, FALSE);
      continue;
    }
    if (!chosen || s->p.deadline < chosen->p.deadline) {
      chosen = s;
      *exit_index = i;
      s->probe = try ? i : -1;
    }
  }
  return chosen;
}

/* The next step: a frame and the exit to run on it; NULL when there is
 * nothing to do. *in_flight: frames submitted and not yet published, the
 * chosen one included. Called with the lock. */
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
    if (s->active && !s->busy)
      g_ptr_array_add (s->finished ? e->going : e->waiting, s);
  }
  e->slow = MAX (MIN (e->n_lanes, *in_flight), 1);
  s = e->waiting->len ? choose_first (e, e->waiting, now, exit_index) : NULL;
  if (!s && e->going->len)
    s = choose_next (e, e->going, now, exit_index);
  return s;
}

/* Runs exit i of s's frame (outside the lock): begins the frame on its first
 * step, waits for the step on a non-eager backend, and measures each
 * segment. */
static gboolean
run_step (EeEngine *e, EeStream *s, int i, gboolean first, double *seg_ns,
          guint32 *segs, GError **error)
{
  *segs = 0;
  if (first) {
    ee_cursor_begin (s->cur, s->set);
    for (int k = 0; k < e->n_inputs; k++)
      if (s->input[k]
          && !ee_cursor_upload (s->cur, e->input_value[k], s->input[k], error))
        return FALSE;
  }
  *segs = ee_cursor_step (s->cur, i);
  if (!ee_cursor_enqueue (s->cur, i, error))
    return FALSE;
  if (!e->eager && !ee_cursor_wait (s->cur, error))
    return FALSE;
  ee_cursor_poll (s->cur);
  for (int seg = 0; seg < e->n_segs; seg++)
    if (*segs & (1u << seg))
      seg_ns[seg] = ee_cursor_segment_ms (s->cur, seg) * 1e6;
  return TRUE;
}

static gboolean
accepts (EeStream *s, int i)
{
  const EeExitResult *r = ee_cursor_result (s->cur, i);

  /* the last candidate ends the frame anyway */
  return s->p.policy == EE_POLICY_CONFIDENCE && s->p.stop
         && i < highest (s->set) && r->done
         && s->p.stop (s->p.stop_data, i, r->value, r->n_out);
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
    guint32 segs;
    GError *err = NULL;
    gboolean ok, first, accepted;
    int i, in_flight, sharing, step_cores;
    EeStream *s = choose (e, &i, &in_flight);

    if (!s) {
      g_cond_wait (&e->cond, &e->lock);
      continue;
    }
    s->busy = TRUE;
    first = !s->started;
    s->started = TRUE;
    e->running++;
    sharing = MAX (MIN (e->n_lanes, in_flight), e->running);
    g_mutex_unlock (&e->lock);

    step_cores = e->n_lanes > 1 ? MAX (e->cores / sharing, 1) : e->cores;
    if (e->n_lanes > 1)
      ee_backend_set_thread_cores (e->be, step_cores);

    ok = run_step (e, s, i, first, seg_ns, &segs, &err);
    accepted = ok && accepts (s, i);

    g_mutex_lock (&e->lock);
    s->busy = FALSE;
    e->running--;
    for (int seg = 0; seg < e->n_segs; seg++)
      if ((segs & (1u << seg)) && seg_ns[seg] >= 0)
        /* a try exists to measure afresh */
        /* kept as on all cores: a step on half of them counts half */
        update (e, seg, seg_ns[seg] * step_cores / e->cores, s->probe == i);
    if (s->active) {
      if (!ok) {
        g_propagate_error (&s->error, err);
        err = NULL;
        publish (e, s, FALSE);
      } else {
        s->finished |= 1u << i;
        s->res.finish[i] = ee_now ();
        s->accepted = accepted;
      }
    }
    g_clear_error (&err);
    g_cond_broadcast (&e->cond);
  }
  g_mutex_unlock (&e->lock);
  return NULL;
}

/* ------------------------------------------------------------ engines */

/* Runs every segment `runs` times on zero inputs and sets each estimate to
 * its fastest run after the first (the first pays for lazy
 * initialisation). Before the worker starts. */
static gboolean
warm_up (EeEngine *e, int runs, GError **error)
{
  EeCursor *c = ee_cursor_new (e->r, error);
  EeGraph *g = ee_runner_graph (e->r);
  float *zeros[MAX_INPUTS] = { 0 };
  guint32 all = e->n_exits >= 32 ? G_MAXUINT32 : (1u << e->n_exits) - 1;
  gboolean ok = c != NULL;

  for (int k = 0; k < e->n_inputs && ok; k++) {
    const EeTensorDesc *d = ee_graph_desc (g, e->input_value[k]);
    zeros[k] = g_malloc0 (d->nbytes);
  }
  runs = MAX (runs, 1);
  for (int run = 0; run < runs && ok; run++) {
    ee_cursor_begin (c, all);
    for (int k = 0; k < e->n_inputs && ok; k++)
      ok = ee_cursor_upload (c, e->input_value[k], zeros[k], error);
    for (int i = 0; i < e->n_exits && ok; i++)
      ok = ee_cursor_enqueue (c, i, error);
    ok = ok && ee_cursor_wait (c, error);
    for (int seg = 0; seg < e->n_segs && ok; seg++) {
      double ns = ee_cursor_segment_ms (c, seg) * 1e6;
      if (ns < 0 || (run == 0 && runs > 1))
        continue;
      e->est[seg] = (run <= 1 || e->est[seg] <= 0) ? ns : MIN (e->est[seg], ns);
    }
  }
  for (int k = 0; k < e->n_inputs; k++)
    g_free (zeros[k]);
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
  e->r = load (e->be, cfg->model_file, load_data, &e->owner, &e->owner_free,
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
  if (!warm_up (e, cfg->warm_up_runs, error))
    goto fail;
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
        || e->precision != cfg->precision) {
      g_set_error (
          error, EE_ERROR, EE_ERROR_CONFLICT,
          "model-instance-id \"%s\" is in use with model file \"%s\" on "
          "device %s in %s; this element asks for \"%s\" on device %s in %s. "
          "Give it another model-instance-id, or the same model file, device "
          "and precision",
          cfg->instance_id, e->model_file, e->device,
          ee_precision_name (e->precision), cfg->model_file,
          device_or_auto (cfg->device), ee_precision_name (cfg->precision));
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
  g_mutex_lock (&e->lock);
  s->cur = ee_cursor_new (e->r, error);
  if (s->cur)
    e->streams = g_list_append (e->streams, s);
  g_mutex_unlock (&e->lock);
  if (!s->cur) {
    g_free (s);
    return NULL;
  }
  return s;
}

void
ee_stream_free (EeStream *s)
{
  EeEngine *e;

  if (!s)
    return;
  e = s->e;
  g_mutex_lock (&e->lock);
  while (s->busy)
    g_cond_wait (&e->cond, &e->lock);
  s->active = FALSE;
  e->streams = g_list_remove (e->streams, s);
  ee_cursor_free (s->cur);
  g_mutex_unlock (&e->lock);
  g_clear_error (&s->error);
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
  /* a step of the previous frame may still run in our arena */
  while (s->busy)
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
