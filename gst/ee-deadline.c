/* gst-earlyexit: running a multi-exit model against a deadline (anytime). */
#include "ee-deadline.h"

#include <time.h>

/* EMA weight of a new measurement, and the most a measurement may exceed the
 * estimate by. */
#define EMA_WEIGHT 0.25
#define SAMPLE_CLAMP 2.0
/* An exit skipped for lack of time this many frames in a row is tried anyway
 * (its estimate may be stale); each try that misses the deadline doubles the
 * wait. */
#define PROBE_FIRST 25
#define PROBE_MAX 1600
/* How often the asynchronous path polls the exits' events. */
#define POLL_INTERVAL_US 100

struct _EeDeadline
{
  EeRunner *r;
  EeGraph *g;
  gboolean eager;
  int n_segs, n_exits;
  double est[EE_RUNNER_MAX_SEGMENTS];  /* ns per segment, moving average */
  int skipped[EE_RUNNER_MAX_SEGMENTS]; /* per exit, frames skipped in a row */
  int probe_every[EE_RUNNER_MAX_SEGMENTS]; /* per exit */
  float *slot[EE_RUNNER_MAX_SEGMENTS];     /* eager: host result per exit */
};

gint64
ee_deadline_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (gint64)ts.tv_sec * G_GINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

EeDeadline *
ee_deadline_new (EeRunner *runner, gboolean eager)
{
  EeDeadline *d = g_new0 (EeDeadline, 1);

  d->r = runner;
  d->g = ee_runner_graph (runner);
  d->eager = eager;
  d->n_segs = ee_runner_n_segments (runner);
  d->n_exits = ee_runner_n_exits (runner);
  for (int i = 0; i < d->n_exits; i++) {
    d->probe_every[i] = PROBE_FIRST;
    const EeSegment *s
        = ee_runner_segment (runner, ee_runner_exit_segment (runner, i));
    d->slot[i] = g_new0 (float, MAX (s->n_out, 1));
  }
  return d;
}

void
ee_deadline_free (EeDeadline *d)
{
  if (!d)
    return;
  for (int i = 0; i < d->n_exits; i++)
    g_free (d->slot[i]);
  g_free (d);
}

static guint32
exit_needs (EeDeadline *d, int exit_index)
{
  int seg = ee_runner_exit_segment (d->r, exit_index);

  return ee_runner_segment (d->r, seg)->needs | (1u << seg);
}

/* The segments to run for exit i when `done` have run and the exits in
 * `set` may follow: what i needs, plus the earlier-numbered segments a later
 * exit needs. Segments run in graph order within a frame because the
 * activation arena is planned for that order: running the audio branch
 * (segment 0) after the front end would overwrite live values. */
static guint32
step (EeDeadline *d, guint32 set, int i, guint32 done)
{
  guint32 need = exit_needs (d, i) & ~done, later = 0;
  int hi;

  if (!need)
    return 0;
  for (int j = i + 1; j < d->n_exits; j++)
    if (set & (1u << j))
      later |= exit_needs (d, j);
  hi = 31 - __builtin_clz (need);
  later &= ~done & ~need & ((1u << hi) - 1);
  return need | later;
}

static double
cost (EeDeadline *d, guint32 segs)
{
  double c = 0;

  for (int s = 0; s < d->n_segs; s++)
    if (segs & (1u << s))
      c += d->est[s];
  return c;
}

static void
update (EeDeadline *d, int seg, double ns)
{
  double e = d->est[seg];

  if (e <= 0) {
    d->est[seg] = ns;
    return;
  }
  /* a preempted run must not lock a segment out */
  ns = MIN (ns, e * SAMPLE_CLAMP);
  d->est[seg] = e + EMA_WEIGHT * (ns - e);
}

gint64
ee_deadline_exit_cost (EeDeadline *d, int exit_index)
{
  if (exit_index < 0 || exit_index >= d->n_exits)
    return 0;
  return (gint64)cost (d, exit_needs (d, exit_index));
}

void
ee_deadline_set_cost (EeDeadline *d, int segment, gint64 ns)
{
  if (segment >= 0 && segment < d->n_segs)
    d->est[segment] = (double)ns;
}

/* The exits the policy considers, in anytime order (bit i = exit i). When no
 * allowed exit lies in [min, max], the newest allowed one before max, else the
 * earliest allowed one after it. */
static guint32
candidates (EeDeadline *d, const EeDeadlineParams *p)
{
  int n = d->n_exits, lo, hi;
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
  if (p->policy == EE_DEADLINE_FIXED)
    return 1u << (31 - __builtin_clz (set));
  return set;
}

/* Policies that watch the deadline. */
static gboolean
timed (const EeDeadlineParams *p)
{
  return p->policy == EE_DEADLINE_ANYTIME
         || p->policy == EE_DEADLINE_CONFIDENCE;
}

/* CONFIDENCE: whether exit i's result lets the frame stop there. */
static gboolean
good_enough (const EeDeadlineParams *p, int i, const float *value,
             int64_t n_out)
{
  return p->policy == EE_DEADLINE_CONFIDENCE && p->stop
         && p->stop (p->stop_data, i, value, n_out);
}

static int
highest (guint32 bits)
{
  return bits ? 31 - __builtin_clz (bits) : -1;
}

/* Whether exit i (segments `need`) may start at `now`: it fits by the
 * estimates, or it is due for a try (*probe). */
static gboolean
fits (EeDeadline *d, const EeDeadlineParams *p, int i, guint32 need, double now,
      gboolean *probe)
{
  *probe = FALSE;
  if (now + cost (d, need) <= (double)p->deadline)
    return TRUE;
  if (d->skipped[i] >= d->probe_every[i]) {
    *probe = TRUE;
    return TRUE;
  }
  return FALSE;
}

/* ANYTIME, CONFIDENCE: the last exit expected to finish by the deadline from
 * `now`; *probe: the exit taken as a try (-1: none); *stopped: the first
 * candidate left out (-1: none). */
static int
plan (EeDeadline *d, const EeDeadlineParams *p, double now, int *probe,
      int *stopped)
{
  guint32 set = candidates (d, p), done = 0;
  int target = -1;

  *probe = *stopped = -1;
  for (int i = 0; i < d->n_exits; i++) {
    guint32 need;
    gboolean try;

    if (!(set & (1u << i)))
      continue;
    need = step (d, set, i, done);
    if (target >= 0 && !fits (d, p, i, need, now, &try)) {
      *stopped = i;
      break;
    }
    if (target >= 0 && try)
      *probe = i;
    now += cost (d, need);
    done |= need;
    target = i;
  }
  return target;
}

int
ee_deadline_target (EeDeadline *d, const EeDeadlineParams *p)
{
  int probe, stopped;

  if (!timed (p))
    return highest (candidates (d, p));
  return plan (d, p, (double)ee_deadline_now (), &probe, &stopped);
}

/* After a frame: counts the skip of the exit left out and judges a try. */
static void
account (EeDeadline *d, const EeDeadlineParams *p, int probe, int stopped,
         const EeDeadlineResult *res)
{
  for (int i = 0; i < d->n_exits; i++)
    if (res->ran & (1u << i))
      d->skipped[i] = 0;
  if (stopped >= 0)
    d->skipped[stopped]++;
  if (probe < 0)
    return;
  if ((res->ran & (1u << probe)) && res->finish[probe] <= p->deadline) {
    d->probe_every[probe] = PROBE_FIRST;
    /* one stale estimate suggests others: try the next exit next frame */
    if (stopped >= 0)
      d->skipped[stopped] = MAX (d->skipped[stopped], d->probe_every[stopped]);
  } else {
    d->probe_every[probe] = MIN (2 * d->probe_every[probe], PROBE_MAX);
  }
}

/* Picks the published exit among those that ran. */
static void
publish (const EeDeadlineParams *p, EeDeadlineResult *res)
{
  res->exit = -1;
  if (timed (p)) {
    for (int i = highest (res->ran); i >= 0; i--)
      if ((res->ran & (1u << i)) && res->finish[i] <= p->deadline) {
        res->exit = i;
        break;
      }
    if (res->exit < 0 && res->ran)
      res->exit = __builtin_ctz (res->ran);
  } else {
    res->exit = highest (res->ran);
  }
  res->published = ee_deadline_now ();
  res->missed = res->published > p->deadline;
}

/* Runs segment `seg` and downloads its result if it is an exit; *ns gets its
 * wall time. */
static gboolean
run_segment (EeDeadline *d, int seg, double *ns, GError **error)
{
  const EeSegment *s = ee_runner_segment (d->r, seg);
  gint64 t0 = ee_deadline_now ();

  if (!ee_graph_run (d->g, s->first_op, s->last_op, error))
    return FALSE;
  if (s->is_exit) {
    int e;
    for (e = 0; e < d->n_exits; e++)
      if (ee_runner_exit_segment (d->r, e) == seg)
        break;
    if (!ee_graph_download (d->g, s->output, d->slot[e], error))
      return FALSE;
  }
  *ns = (double)(ee_deadline_now () - t0);
  return TRUE;
}

static gboolean
run_eager (EeDeadline *d, const EeDeadlineParams *p, EeDeadlineResult *res,
           GError **error)
{
  guint32 set = candidates (d, p), done = 0;
  int probe = -1, stopped = -1;

  for (int i = 0; i < d->n_exits; i++) {
    guint32 need;
    gboolean try;

    if (!(set & (1u << i)))
      continue;
    need = step (d, set, i, done);
    /* the first exit always runs; later ones only when they fit */
    if (timed (p) && res->ran) {
      if (!fits (d, p, i, need, (double)ee_deadline_now (), &try)) {
        stopped = i;
        break;
      }
      if (try)
        probe = i;
    }
    for (int s = 0; s < d->n_segs; s++) {
      double ns;
      if (!(need & (1u << s)))
        continue;
      if (!run_segment (d, s, &ns, error))
        return FALSE;
      /* a try exists to measure afresh */
      if (i == probe)
        d->est[s] = ns;
      else
        update (d, s, ns);
    }
    done |= need;
    res->finish[i] = ee_deadline_now ();
    res->ran |= 1u << i;
    /* the last candidate ends the run anyway */
    if ((set & ~((2u << i) - 1))
        && good_enough (p, i, d->slot[i], ee_runner_result (d->r, i)->n_out)) {
      res->stopped_early = TRUE;
      break;
    }
  }
  publish (p, res);
  if (timed (p))
    account (d, p, probe, stopped, res);
  if (res->exit >= 0) {
    res->value = d->slot[res->exit];
    res->n_out = ee_runner_result (d->r, res->exit)->n_out;
  }
  return TRUE;
}

/* Spreads each exit's measured increment over the segments it added, in
 * proportion to their FLOPs (the events only time exits, not segments).
 * Exit set_exit's segments (all when -1) take the measurement as it is, the
 * others update their average. */
static void
attribute (EeDeadline *d, guint32 ran, const double *time_ns, int set_exit)
{
  guint32 done = 0;
  double prev = 0;

  for (int i = 0; i < d->n_exits; i++) {
    guint32 need;
    double flops = 0, inc;
    int n = 0;

    if (!(ran & (1u << i)))
      continue;
    need = step (d, ran, i, done);
    inc = MAX (time_ns[i] - prev, 0);
    for (int s = 0; s < d->n_segs; s++)
      if (need & (1u << s)) {
        flops += ee_runner_segment (d->r, s)->flops;
        n++;
      }
    for (int s = 0; s < d->n_segs; s++) {
      double share;
      if (!(need & (1u << s)))
        continue;
      share = flops > 0 ? inc * ee_runner_segment (d->r, s)->flops / flops
                        : inc / n;
      if (set_exit < 0 || i == set_exit)
        d->est[s] = share;
      else
        update (d, s, share);
    }
    prev = time_ns[i];
    done |= need;
  }
}

static gboolean
run_async (EeDeadline *d, const EeDeadlineParams *p, EeDeadlineResult *res,
           GError **error)
{
  guint32 set = candidates (d, p), mask = 0, judged = 0;
  int probe = -1, stopped = -1, target, stop_at = -1;
  double time_ns[EE_RUNNER_MAX_SEGMENTS] = { 0 };

  target = timed (p) ? plan (d, p, (double)res->start, &probe, &stopped)
                     : highest (set);
  if (p->policy == EE_DEADLINE_FIXED)
    mask = set;
  else
    for (int i = 0; i <= target; i++)
      mask |= set & (1u << i);

  if (!ee_runner_enqueue (d->r, mask, target, error))
    return FALSE;
  for (;;) {
    int newest = ee_runner_poll (d->r);
    gboolean all = TRUE;

    for (int i = 0; i <= target; i++)
      if ((mask & (1u << i)) && !ee_runner_result (d->r, i)->done)
        all = FALSE;
    /* CONFIDENCE: judge the exits as they finish (in stream order); the
     * target ends the run anyway */
    for (int i = 0; i < target && stop_at < 0; i++) {
      const EeExitResult *r = ee_runner_result (d->r, i);
      if (!(mask & (1u << i)) || (judged & (1u << i)))
        continue;
      if (!r->done)
        break;
      judged |= 1u << i;
      if (good_enough (p, i, r->value, r->n_out))
        stop_at = i;
    }
    if (all || stop_at >= 0
        || (timed (p) && newest >= 0 && ee_deadline_now () >= p->deadline))
      break;
    g_usleep (POLL_INTERVAL_US);
  }
  if (stop_at >= 0) {
    /* exits after the accepted one are not published, nor were they left
     * out for lack of time */
    res->stopped_early = TRUE;
    target = stop_at;
    stopped = -1;
    if (probe > stop_at)
      probe = -1;
  }
  for (int i = 0; i <= target; i++) {
    const EeExitResult *r = ee_runner_result (d->r, i);
    if ((mask & (1u << i)) && r->done) {
      res->ran |= 1u << i;
      time_ns[i] = r->time_ms * 1e6;
      res->finish[i] = res->start + (gint64)time_ns[i];
    }
  }
  attribute (d, res->ran, time_ns, probe >= 0 ? probe : d->n_exits);
  publish (p, res);
  if (timed (p))
    account (d, p, probe, stopped, res);
  if (res->exit >= 0) {
    res->value = ee_runner_result (d->r, res->exit)->value;
    res->n_out = ee_runner_result (d->r, res->exit)->n_out;
  }
  return TRUE;
}

gboolean
ee_deadline_run (EeDeadline *d, const EeDeadlineParams *p,
                 EeDeadlineResult *res, GError **error)
{
  *res = (EeDeadlineResult){ .exit = -1 };
  res->start = ee_deadline_now ();
  if (!candidates (d, p))
    return TRUE;
  return d->eager ? run_eager (d, p, res, error) : run_async (d, p, res, error);
}

gboolean
ee_deadline_warm_up (EeDeadline *d, int runs, EeDeadlineUploadFunc upload,
                     gpointer user_data, GError **error)
{
  guint32 all = 0;

  for (int i = 0; i < d->n_exits; i++)
    all |= 1u << i;
  runs = MAX (runs, 1);
  for (int k = 0; k < runs; k++) {
    if (upload && !upload (user_data, error))
      return FALSE;
    if (d->eager) {
      for (int s = 0; s < d->n_segs; s++) {
        double ns;
        if (!run_segment (d, s, &ns, error))
          return FALSE;
        if (k == 0 && runs > 1)
          continue;
        d->est[s] = (k <= 1 || d->est[s] <= 0) ? ns : MIN (d->est[s], ns);
      }
    } else {
      double time_ns[EE_RUNNER_MAX_SEGMENTS] = { 0 };
      if (!ee_runner_enqueue (d->r, all, -1, error)
          || !ee_runner_wait (d->r, error))
        return FALSE;
      for (int i = 0; i < d->n_exits; i++)
        time_ns[i] = ee_runner_result (d->r, i)->time_ms * 1e6;
      attribute (d, all, time_ns, -1);
    }
  }
  return TRUE;
}
