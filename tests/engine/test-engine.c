/* The frame cursor and the anytime engine (nn/ee-runner.h, nn/ee-engine.h) on
 * the CPU backend, with a compact random-weight AudioCSRNet
 * ($EE_TEST_MODEL: exits v1, av1, av2, final):
 * - a frame continued exit by exit gives, bit for bit, what a run of all its
 *   exits at once gives, and runs no segment twice;
 * - two frames in flight at once on two cursors do not disturb each other,
 *   also when two threads run them at once;
 * - the policies, the deadline between exits and the tries of skipped exits;
 *   going straight to a deeper exit when the heads in between would cost it;
 * - streams of one engine run from several threads give every frame its own
 *   result; a frame that cannot make its deadline carries the last result;
 * - engines shared by instance id, and refused with other settings;
 * - a later exit runs before a waiting first exit only when that one still
 *   makes its deadline behind it;
 * - the model loaded with several frames per run gives each frame what it
 *   gives alone, and an engine's batched steps give every stream its own
 *   frame's result.
 * With EE_TEST_DEVICE=cuda (the CUDA suite) only the batched tests run, on
 * that device against the CPU; without a usable device the test exits 77
 * (skipped). */
#include <math.h>
#include <string.h>

#include "ee-backend-select.h"
#include "ee-engine.h"
#include "ee-model.h"

#define ALL 0xfu
#define SECOND G_GINT64_CONSTANT (1000000000)

typedef struct
{
  float *image, *logmel;
  gsize image_n;
} Inputs;

/* Where the batched tests run ($EE_TEST_DEVICE, default cpu): the CUDA
 * suite runs them on cuda against the CPU. */
static const char *
test_device (void)
{
  const char *d = g_getenv ("EE_TEST_DEVICE");

  return d && *d ? d : "cpu";
}

static const char *
model_path (void)
{
  const char *p = g_getenv ("EE_TEST_MODEL");

  g_assert_nonnull (p);
  return p;
}

static void
inputs_init (Inputs *in, EeModel *m, int seed)
{
  int w, h;

  ee_model_input_size (m, &w, &h);
  in->image_n = (gsize)3 * w * h;
  in->image = g_new (float, in->image_n);
  in->logmel = g_new (float, 96 * 64);
  for (gsize i = 0; i < in->image_n; i++)
    in->image[i] = (float)sin (i * 0.01 + seed);
  for (int i = 0; i < 96 * 64; i++)
    in->logmel[i] = (float)cos (i * 0.02 + seed) - 2.0f;
}

static void
inputs_clear (Inputs *in)
{
  g_free (in->image);
  g_free (in->logmel);
}

static EeModel *
load (EeBackend **be)
{
  GError *err = NULL;
  EeModel *m;

  *be = ee_backend_cpu_new (0, &err);
  g_assert_no_error (err);
  m = ee_model_load (model_path (), *be, TRUE, &err);
  g_assert_no_error (err);
  g_assert_cmpint (ee_runner_n_exits (ee_model_runner (m)), ==, 4);
  return m;
}

static void
upload (EeCursor *c, EeModel *m, const Inputs *in)
{
  GError *err = NULL;

  g_assert_true (
      ee_cursor_upload (c, ee_model_image_input (m), in->image, &err));
  g_assert_true (
      ee_cursor_upload (c, ee_model_audio_input (m), in->logmel, &err));
  g_assert_no_error (err);
}

/* Every exit's value of a frame run with all exits enqueued at once. */
static void
reference (EeModel *m, const Inputs *in, float out[4])
{
  GError *err = NULL;

  g_assert_true (ee_model_set_image (m, in->image, &err));
  g_assert_true (ee_model_set_audio (m, in->logmel, &err));
  g_assert_true (ee_model_run_sync (m, ALL, &err));
  g_assert_no_error (err);
  for (int i = 0; i < 4; i++)
    out[i] = ee_model_result (m, i)->value[0];
}

/* ------------------------------------------------------------ cursor */

static void
test_cursor_continue (void)
{
  EeBackend *be;
  EeModel *m = load (&be);
  EeRunner *r = ee_model_runner (m);
  GError *err = NULL;
  EeCursor *c;
  Inputs in;
  float ref[4];
  guint32 ran = 0;

  inputs_init (&in, m, 0);
  reference (m, &in, ref);

  c = ee_cursor_new (r, &err);
  g_assert_no_error (err);
  ee_cursor_begin (c, ALL);
  upload (c, m, &in);
  for (int i = 0; i < 4; i++) {
    guint32 step = ee_cursor_step (c, i);
    /* only what has not run: never a segment twice */
    g_assert_cmpuint (step & ran, ==, 0);
    g_assert_cmpuint (step & ee_runner_exit_needs (r, i), ==,
                      ee_runner_exit_needs (r, i) & ~ran);
    g_assert_true (ee_cursor_enqueue (c, i, &err));
    g_assert_no_error (err);
    ran |= step;
    g_assert_true (ee_cursor_poll (c) & (1u << i));
    /* bit for bit */
    g_assert_true (
        memcmp (ee_cursor_result (c, i)->value, &ref[i], sizeof (float)) == 0);
    g_assert_cmpfloat (ee_cursor_segment_ms (c, ee_runner_exit_segment (r, i)),
                       >=, 0);
    /* an exit cannot run twice */
    g_assert_false (ee_cursor_can_run (c, i));
  }
  g_assert_cmpuint (ran, ==, (1u << ee_runner_n_segments (r)) - 1);
  g_assert_false (ee_cursor_enqueue (c, 0, &err));
  g_assert_error (err, EE_ERROR, EE_ERROR_ARGUMENT);
  g_clear_error (&err);

  /* skipping ahead: exit 1 alone after exit 3 is impossible, and a frame
   * of exits 0 and 3 gives the same values */
  ee_cursor_begin (c, 0x9);
  upload (c, m, &in);
  g_assert_true (ee_cursor_enqueue (c, 3, &err));
  g_assert_false (ee_cursor_can_run (c, 0));
  g_assert_true (ee_cursor_poll (c) == 0x8);
  g_assert_true (
      memcmp (ee_cursor_result (c, 3)->value, &ref[3], sizeof (float)) == 0);
  ee_cursor_free (c);
  inputs_clear (&in);
  ee_model_free (m);
  ee_backend_free (be);
}

static void
test_cursor_two_frames (void)
{
  EeBackend *be;
  EeModel *m = load (&be);
  EeRunner *r = ee_model_runner (m);
  GError *err = NULL;
  EeCursor *a, *b;
  Inputs ia, ib;
  float ra[4], rb[4];

  inputs_init (&ia, m, 0);
  inputs_init (&ib, m, 5);
  reference (m, &ia, ra);
  reference (m, &ib, rb);
  g_assert_true (ra[3] != rb[3]);

  /* the model's own cursor holds the graph's arena: these allocate */
  a = ee_cursor_new (r, &err);
  b = ee_cursor_new (r, &err);
  g_assert_no_error (err);
  ee_cursor_begin (a, ALL);
  upload (a, m, &ia);
  g_assert_true (ee_cursor_enqueue (a, 0, &err));
  /* a whole other frame in between */
  ee_cursor_begin (b, ALL);
  upload (b, m, &ib);
  for (int i = 0; i < 4; i++)
    g_assert_true (ee_cursor_enqueue (b, i, &err));
  for (int i = 1; i < 4; i++)
    g_assert_true (ee_cursor_enqueue (a, i, &err));
  g_assert_no_error (err);
  g_assert_cmpuint (ee_cursor_poll (a), ==, ALL);
  g_assert_cmpuint (ee_cursor_poll (b), ==, ALL);
  for (int i = 0; i < 4; i++) {
    g_assert_true (
        memcmp (ee_cursor_result (a, i)->value, &ra[i], sizeof (float)) == 0);
    g_assert_true (
        memcmp (ee_cursor_result (b, i)->value, &rb[i], sizeof (float)) == 0);
  }
  ee_cursor_free (a);
  ee_cursor_free (b);
  inputs_clear (&ia);
  inputs_clear (&ib);
  ee_model_free (m);
  ee_backend_free (be);
}

/* Two threads run frames through their own cursors on one backend at once
 * (EE_BACKEND_CAP_CONCURRENT), one core each, so that they meet in the same
 * ops: every frame gives its inputs' values. Within 1e-5 relative of a run
 * on all cores, since a layer's sums may be split otherwise over 1 core. */
typedef struct
{
  EeModel *m;
  EeBackend *be;
  const Inputs *in;
  const float *ref;
  int frames, wrong;
} Lane;

static gpointer
lane_thread (gpointer data)
{
  Lane *l = data;
  EeRunner *r = ee_model_runner (l->m);
  GError *err = NULL;
  EeCursor *c = ee_cursor_new (r, &err);

  g_assert_no_error (err);
  ee_backend_set_thread_cores (l->be, 1);
  for (int k = 0; k < l->frames; k++) {
    ee_cursor_begin (c, ALL);
    upload (c, l->m, l->in);
    for (int i = 0; i < 4; i++)
      g_assert_true (ee_cursor_enqueue (c, i, &err));
    g_assert_cmpuint (ee_cursor_poll (c), ==, ALL);
    for (int i = 0; i < 4; i++) {
      float v = ee_cursor_result (c, i)->value[0];
      l->wrong
          += !(fabsf (v - l->ref[i]) <= 1e-5f * fmaxf (fabsf (l->ref[i]), 1));
    }
  }
  ee_cursor_free (c);
  return NULL;
}

static void
test_cursor_threads (void)
{
  EeBackend *be;
  EeModel *m = load (&be);
  Inputs in[2];
  float ref[2][4];
  Lane lane[2];
  GThread *t[2];

  g_assert_true (ee_backend_has_cap (be, EE_BACKEND_CAP_CONCURRENT));
  for (int k = 0; k < 2; k++) {
    inputs_init (&in[k], m, 3 * k);
    reference (m, &in[k], ref[k]);
    lane[k]
        = (Lane){ .m = m, .be = be, .in = &in[k], .ref = ref[k], .frames = 12 };
  }
  g_assert_true (ref[0][3] != ref[1][3]);
  for (int k = 0; k < 2; k++)
    t[k] = g_thread_new ("lane", lane_thread, &lane[k]);
  for (int k = 0; k < 2; k++) {
    g_thread_join (t[k]);
    g_assert_cmpint (lane[k].wrong, ==, 0);
    inputs_clear (&in[k]);
  }
  ee_model_free (m);
  ee_backend_free (be);
}

/* ------------------------------------------------------------ engine */

/* An engine on the test model; lanes and batch_size 0: the defaults. */
static EeEngine *
engine_open_with (const char *instance_id, const char *device, int lanes,
                  int batch_size, GError **error)
{
  EeEngineConfig cfg = ee_engine_default_config ();

  cfg.model_file = model_path ();
  cfg.device = device;
  cfg.instance_id = instance_id;
  cfg.lanes = lanes;
  cfg.batch_size = batch_size;
  return ee_engine_acquire (&cfg, ee_model_engine_load, NULL, error);
}

static EeEngine *
engine_open (const char *instance_id, GError **error)
{
  return engine_open_with (instance_id, "cpu", 0, 0, error);
}

static EeStream *
stream_open (EeEngine *e, const Inputs *in)
{
  GError *err = NULL;
  EeModel *m = ee_engine_owner (e);
  EeStream *s = ee_stream_new (e, &err);

  g_assert_no_error (err);
  ee_stream_set_input (s, ee_model_image_input (m), in->image);
  ee_stream_set_input (s, ee_model_audio_input (m), in->logmel);
  return s;
}

static EeFrameParams
params (EePolicy policy, gint64 budget)
{
  return (EeFrameParams){ .policy = policy,
                          .allowed = ALL,
                          .min_exit = -1,
                          .max_exit = -1,
                          .deadline = ee_now () + budget,
                          .position = -1 };
}

static void
run (EeStream *s, const EeFrameParams *p, EeFrameResult *res)
{
  GError *err = NULL;

  g_assert_true (ee_stream_run (s, p, res, &err));
  g_assert_no_error (err);
}

static void
test_engine_policies (void)
{
  GError *err = NULL;
  EeEngine *e = engine_open (NULL, &err);
  EeFrameParams p;
  EeFrameResult res;
  EeStream *s;
  Inputs in;
  float ref[4];

  g_assert_no_error (err);
  inputs_init (&in, ee_engine_owner (e), 0);
  reference (ee_engine_owner (e), &in, ref);
  s = stream_open (e, &in);
  for (int i = 0; i < 4; i++)
    g_assert_cmpint (ee_engine_exit_cost (e, i), >, 0);

  p = params (EE_POLICY_ANYTIME, 10 * SECOND);
  g_assert_cmpint (ee_stream_target (s, &p), ==, 3);
  run (s, &p, &res);
  g_assert_cmpint (res.exit, ==, 3);
  g_assert_cmpuint (res.ran, ==, ALL);
  g_assert_false (res.missed || res.carried);
  g_assert_true (memcmp (res.value, &ref[3], sizeof (float)) == 0);
  for (int i = 1; i < 4; i++)
    g_assert_cmpint (res.finish[i], >=, res.finish[i - 1]);

  /* the largest deadline (the elements' "no limit", clamped there from
   * deadlines of 2^63 - 1 ns and more): every exit, none late */
  for (int k = 0; k < 2; k++) {
    p = params (k ? EE_POLICY_CONFIDENCE : EE_POLICY_ANYTIME, 0);
    p.deadline = G_MAXINT64;
    g_assert_cmpint (ee_stream_target (s, &p), ==, 3);
    run (s, &p, &res);
    g_assert_cmpint (res.exit, ==, 3);
    g_assert_cmpuint (res.ran, ==, ALL);
    g_assert_false (res.missed || res.carried);
  }

  /* visual exits only */
  p = params (EE_POLICY_ANYTIME, 10 * SECOND);
  p.allowed = 0x1;
  run (s, &p, &res);
  g_assert_cmpint (res.exit, ==, 0);
  g_assert_cmpuint (res.ran, ==, 0x1);

  /* min/max */
  p = params (EE_POLICY_ANYTIME, 10 * SECOND);
  p.min_exit = 1;
  p.max_exit = 2;
  run (s, &p, &res);
  g_assert_cmpint (res.exit, ==, 2);
  g_assert_cmpuint (res.ran, ==, 0x6);
  g_assert_true (memcmp (res.value, &ref[2], sizeof (float)) == 0);

  /* fixed runs one exit whatever the deadline */
  p = params (EE_POLICY_FIXED, -SECOND);
  p.max_exit = 2;
  run (s, &p, &res);
  g_assert_cmpint (res.exit, ==, 2);
  g_assert_cmpuint (res.ran, ==, 0x4);
  g_assert_true (memcmp (res.value, &ref[2], sizeof (float)) == 0);

  /* full ignores the deadline */
  p = params (EE_POLICY_FULL, -SECOND);
  run (s, &p, &res);
  g_assert_cmpint (res.exit, ==, 3);
  g_assert_cmpuint (res.ran, ==, ALL);
  g_assert_true (res.missed);

  /* already past the deadline: a budget no exit fits in is not a lack of
   * time that carrying could cure; the first exit runs, flagged */
  p = params (EE_POLICY_ANYTIME, -SECOND);
  run (s, &p, &res);
  g_assert_false (res.carried);
  g_assert_cmpint (res.exit, ==, 0);
  g_assert_true (res.missed);

  /* an exit costs the sum of the segments it needs (measured costs on a
   * model this small are noise, so set them) */
  {
    EeRunner *r = ee_engine_runner (e);

    for (int seg = 0; seg < ee_runner_n_segments (r); seg++)
      ee_engine_set_cost (e, seg, 1000 << seg);
    for (int i = 0; i < 4; i++) {
      guint32 needs = ee_runner_exit_needs (r, i);
      gint64 sum = 0;

      for (int seg = 0; seg < ee_runner_n_segments (r); seg++)
        if (needs & (1u << seg))
          sum += 1000 << seg;
      g_assert_cmpint (ee_engine_exit_cost (e, i), ==, sum);
    }
  }

  ee_stream_free (s);
  ee_engine_release (e);
  inputs_clear (&in);
}

static void
test_engine_budget_between_exits (void)
{
  GError *err = NULL;
  EeEngine *e = engine_open (NULL, &err);
  EeRunner *r = ee_engine_runner (e);
  const gint64 budget = 10 * SECOND;
  /* exit 0's first step: its segments and those numbered before it */
  guint32 first = (2u << ee_runner_exit_segment (r, 0)) - 1;
  EeFrameParams p;
  EeFrameResult res;
  EeStream *s;
  Inputs in;

  g_assert_no_error (err);
  inputs_init (&in, ee_engine_owner (e), 0);
  s = stream_open (e, &in);
  /* pretend everything after exit 0's first step takes 10 budgets (a
   * budget the whole model fits in, under valgrind too) */
  for (int seg = 0; seg < ee_runner_n_segments (r); seg++)
    ee_engine_set_cost (e, seg, (first >> seg) & 1 ? 1000 : 10 * budget);
  p = params (EE_POLICY_ANYTIME, budget);
  g_assert_cmpint (ee_stream_target (s, &p), ==, 0);

  /* what cannot finish is not started; after 25 such frames the next exit
   * is tried, which measures it afresh; as it was overestimated, the exit
   * after it is tried on the next frame, and so on */
  for (int k = 0; k < 28; k++) {
    guint32 expect = k < 25 ? 0x1 : (0x2u << (k - 24)) - 1;
    p = params (EE_POLICY_ANYTIME, budget);
    run (s, &p, &res);
    g_assert_cmphex (res.ran, ==, expect);
    g_assert_cmpint (res.exit, ==, 31 - __builtin_clz (expect));
    g_assert_false (res.missed);
  }
  g_assert_cmpint (ee_engine_exit_cost (e, 3), <, budget);
  ee_stream_free (s);
  ee_engine_release (e);
  inputs_clear (&in);
}

/* Stops at exit *(int *) user_data; counts the calls per exit. */
static int stop_calls[8];

static gboolean
stop_at (gpointer user_data, int exit_index, const float *value, int64_t n_out)
{
  g_assert_true (value != NULL && n_out == 1);
  stop_calls[exit_index]++;
  return exit_index == *(int *)user_data;
}

/* ANYTIME goes straight to a deeper exit when the heads of the exits in
 * between would cost it: here exits 1 and 2's heads take a whole budget each,
 * the rest next to nothing. */
static void
test_engine_jump (void)
{
  GError *err = NULL;
  EeEngine *e = engine_open (NULL, &err);
  EeRunner *r = ee_engine_runner (e);
  const gint64 budget = 10 * SECOND;
  EeFrameParams p;
  EeFrameResult res;
  EeStream *s;
  Inputs in;
  float ref[4];

  g_assert_no_error (err);
  inputs_init (&in, ee_engine_owner (e), 0);
  reference (ee_engine_owner (e), &in, ref);
  s = stream_open (e, &in);
  for (int seg = 0; seg < ee_runner_n_segments (r); seg++)
    ee_engine_set_cost (e, seg, 1000);
  ee_engine_set_cost (e, ee_runner_exit_segment (r, 1), budget);
  ee_engine_set_cost (e, ee_runner_exit_segment (r, 2), budget);

  p = params (EE_POLICY_ANYTIME, budget);
  run (s, &p, &res);
  g_assert_cmphex (res.ran, ==, 0x9);
  g_assert_cmpint (res.exit, ==, 3);
  g_assert_false (res.missed);
  g_assert_true (memcmp (res.value, &ref[3], sizeof (float)) == 0);

  /* with time for everything, every exit runs in order */
  for (int seg = 0; seg < ee_runner_n_segments (r); seg++)
    ee_engine_set_cost (e, seg, 1000);
  p = params (EE_POLICY_ANYTIME, budget);
  run (s, &p, &res);
  g_assert_cmphex (res.ran, ==, ALL);
  g_assert_cmpint (res.exit, ==, 3);

  ee_stream_free (s);
  ee_engine_release (e);
  inputs_clear (&in);
}

static void
test_engine_confidence (void)
{
  GError *err = NULL;
  EeEngine *e = engine_open (NULL, &err);
  EeFrameParams p;
  EeFrameResult res;
  EeStream *s;
  Inputs in;
  int stop;

  g_assert_no_error (err);
  inputs_init (&in, ee_engine_owner (e), 0);
  s = stream_open (e, &in);

  /* the first exit the stop function accepts ends the frame */
  stop = 1;
  memset (stop_calls, 0, sizeof stop_calls);
  p = params (EE_POLICY_CONFIDENCE, 10 * SECOND);
  p.stop = stop_at;
  p.stop_data = &stop;
  g_assert_cmpint (ee_stream_target (s, &p), ==, 3);
  run (s, &p, &res);
  g_assert_cmpint (res.exit, ==, 1);
  g_assert_cmpuint (res.ran, ==, 0x3);
  g_assert_true (res.stopped_early);
  g_assert_true (stop_calls[0] == 1 && stop_calls[1] == 1);

  /* never accepted: as anytime; the last exit is not asked */
  stop = -1;
  memset (stop_calls, 0, sizeof stop_calls);
  run (s, &p, &res);
  g_assert_cmpint (res.exit, ==, 3);
  g_assert_cmpuint (res.ran, ==, ALL);
  g_assert_false (res.stopped_early);
  g_assert_cmpint (stop_calls[3], ==, 0);

  /* accepting the last exit is no early stop */
  stop = 2;
  p.max_exit = 2;
  run (s, &p, &res);
  g_assert_cmpint (res.exit, ==, 2);
  g_assert_false (res.stopped_early);

  /* no stop function: anytime */
  p = params (EE_POLICY_CONFIDENCE, 10 * SECOND);
  run (s, &p, &res);
  g_assert_cmpint (res.exit, ==, 3);
  ee_stream_free (s);
  ee_engine_release (e);
  inputs_clear (&in);
}

typedef struct
{
  EeEngine *e;
  Inputs in;
  float ref[4];
  int frames;
  int wrong;
} Worker;

/* One stream's thread: frames of policy full, each checked bit for bit. */
static gpointer
stream_thread (gpointer data)
{
  Worker *w = data;
  EeStream *s = stream_open (w->e, &w->in);

  for (int k = 0; k < w->frames; k++) {
    EeFrameParams p = params (k % 2 ? EE_POLICY_FULL : EE_POLICY_FIXED, 0);
    EeFrameResult res;
    int want;

    p.max_exit = k % 4;
    want = p.max_exit;
    run (s, &p, &res);
    if (res.exit != want
        || memcmp (res.value, &w->ref[want], sizeof (float)) != 0)
      w->wrong++;
  }
  ee_stream_free (s);
  return NULL;
}

static void
test_engine_streams (void)
{
  GError *err = NULL;
  EeEngine *e = engine_open ("test-streams", &err);
  Worker w[4];
  GThread *t[4];
  EeModel *m;

  g_assert_no_error (err);
  m = ee_engine_owner (e);
  for (int k = 0; k < 4; k++) {
    w[k].e = e;
    w[k].frames = 6;
    w[k].wrong = 0;
    inputs_init (&w[k].in, m, k);
  }
  /* references before the worker has streams to run (the model's own
   * cursor shares the backend with the engine's worker) */
  for (int k = 0; k < 4; k++)
    reference (m, &w[k].in, w[k].ref);
  for (int k = 0; k < 4; k++)
    t[k] = g_thread_new ("stream", stream_thread, &w[k]);
  for (int k = 0; k < 4; k++) {
    g_thread_join (t[k]);
    g_assert_cmpint (w[k].wrong, ==, 0);
    inputs_clear (&w[k].in);
  }
  g_assert_cmpint (ee_engine_n_streams (e), ==, 0);
  ee_engine_release (e);
}

/* Lets n threads go on together, round after round. */
typedef struct
{
  GMutex lock;
  GCond cond;
  int n, waiting, round;
} Barrier;

static void
barrier_wait (Barrier *b)
{
  int round;

  g_mutex_lock (&b->lock);
  round = b->round;
  if (++b->waiting == b->n) {
    b->waiting = 0;
    b->round++;
    g_cond_broadcast (&b->cond);
  }
  while (round == b->round)
    g_cond_wait (&b->cond, &b->lock);
  g_mutex_unlock (&b->lock);
}

/* The carry test: the engine's only worker is held (by a frame's stop
 * function) while other streams' frames wait past their deadlines. */
typedef struct
{
  GMutex lock;
  GCond cond;
  gboolean held, released;
  int published; /* frames of the other streams published */
} Hold;

/* A stop function that holds the worker after the frame's first exit until
 * the test releases it. Never stops the frame. */
static gboolean
hold_worker (gpointer data, int exit_index, const float *value, int64_t n)
{
  Hold *h = data;

  if (exit_index == 0) {
    g_mutex_lock (&h->lock);
    h->held = TRUE;
    g_cond_broadcast (&h->cond);
    while (!h->released)
      g_cond_wait (&h->cond, &h->lock);
    g_mutex_unlock (&h->lock);
  }
  return FALSE;
}

typedef struct
{
  EeStream *s;
  EeFrameParams p;
  gint64 budget; /* > 0: the deadline, from when the thread submits */
  Hold *hold;    /* counts the frame published, when set */
  EeFrameResult res;
} Submitted;

static gpointer
submit_thread (gpointer data)
{
  Submitted *f = data;

  if (f->budget > 0)
    f->p.deadline = ee_now () + f->budget;
  run (f->s, &f->p, &f->res);
  if (f->hold) {
    g_mutex_lock (&f->hold->lock);
    f->hold->published++;
    g_cond_broadcast (&f->hold->cond);
    g_mutex_unlock (&f->hold->lock);
  }
  return NULL;
}

/* A frame whose deadline passes while the engine cannot start it carries
 * its stream's last result (not late, no exit) when its budget fits the
 * first exit; a stream's first frame has nothing to carry; once the engine
 * is free, frames run again. */
static void
test_engine_carry (void)
{
  GError *err = NULL;
  EeEngine *e = engine_open_with ("test-carry", "cpu", 1, 0, &err);
  Hold hold = { .held = FALSE };
  Submitted holder = { .budget = 0 }, f[3] = { { .budget = 0 } };
  gint64 until;
  gboolean all_published;
  Inputs in[4];
  GThread *th, *t[3];

  g_assert_no_error (err);
  g_mutex_init (&hold.lock);
  g_cond_init (&hold.cond);
  for (int k = 0; k < 4; k++)
    inputs_init (&in[k], ee_engine_owner (e), k);
  holder.s = stream_open (e, &in[3]);
  /* every stream has a result to carry */
  for (int k = 0; k < 3; k++) {
    f[k].s = stream_open (e, &in[k]);
    f[k].p = params (EE_POLICY_ANYTIME, 100 * SECOND);
    run (f[k].s, &f[k].p, &f[k].res);
    g_assert_cmpint (f[k].res.exit, ==, 3);
    g_assert_false (f[k].res.carried);
  }

  /* the holder: every exit, its stop function holding the worker */
  holder.p = params (EE_POLICY_CONFIDENCE, 1000 * SECOND);
  holder.p.stop = hold_worker;
  holder.p.stop_data = &hold;
  th = g_thread_new ("holder", submit_thread, &holder);
  g_mutex_lock (&hold.lock);
  while (!hold.held)
    g_cond_wait (&hold.cond, &hold.lock);
  g_mutex_unlock (&hold.lock);
  /* frames whose budget fits their first step (exit 0 with the audio
   * branch that exit 1 needs) four times over, but the worker is held past
   * their deadlines */
  for (int k = 0; k < 3; k++) {
    f[k].p = params (EE_POLICY_ANYTIME, 0);
    f[k].budget = ee_engine_exit_cost (e, 1) * 4;
    f[k].hold = &hold;
    t[k] = g_thread_new ("late", submit_thread, &f[k]);
  }
  /* they are published while the worker is held (a minute at most: else
   * the worker is let go, and the frames fail the checks below) */
  g_mutex_lock (&hold.lock);
  until = g_get_monotonic_time () + 60 * G_TIME_SPAN_SECOND;
  while (hold.published < 3
         && g_cond_wait_until (&hold.cond, &hold.lock, until))
    ;
  all_published = hold.published == 3;
  hold.released = !all_published;
  g_cond_broadcast (&hold.cond);
  g_mutex_unlock (&hold.lock);
  g_assert_true (all_published);
  for (int k = 0; k < 3; k++) {
    EeStreamStats st;

    g_thread_join (t[k]);
    g_assert_true (f[k].res.carried);
    g_assert_cmpint (f[k].res.exit, ==, -1);
    g_assert_false (f[k].res.missed);
    g_assert_cmpint (f[k].res.ran, ==, 0);
    ee_stream_get_stats (f[k].s, &st);
    g_assert_cmpuint (st.frames, ==, 2);
    g_assert_cmpuint (st.carried, ==, 1);
  }
  g_mutex_lock (&hold.lock);
  hold.released = TRUE;
  g_cond_broadcast (&hold.cond);
  g_mutex_unlock (&hold.lock);
  g_thread_join (th);
  g_assert_cmpint (holder.res.exit, ==, 3);
  g_assert_false (holder.res.carried);

  /* the engine free again: frames run */
  for (int k = 0; k < 3; k++) {
    f[k].budget = 0;
    f[k].hold = NULL;
    f[k].p = params (EE_POLICY_ANYTIME, 100 * SECOND);
    run (f[k].s, &f[k].p, &f[k].res);
    g_assert_cmpint (f[k].res.exit, ==, 3);
    g_assert_false (f[k].res.carried);
  }

  /* a stream with no result yet runs its frame even when it is late */
  ee_stream_reset (f[0].s);
  f[0].p = params (EE_POLICY_ANYTIME, 0);
  run (f[0].s, &f[0].p, &f[0].res);
  g_assert_false (f[0].res.carried);
  g_assert_cmpint (f[0].res.exit, >=, 0);

  for (int k = 0; k < 3; k++)
    ee_stream_free (f[k].s);
  ee_stream_free (holder.s);
  for (int k = 0; k < 4; k++)
    inputs_clear (&in[k]);
  g_mutex_clear (&hold.lock);
  g_cond_clear (&hold.cond);
  ee_engine_release (e);
}

static void
test_engine_sharing (void)
{
  GError *err = NULL;
  EeEngine *a = engine_open ("shared", &err), *b, *c;
  EeEngineConfig cfg = ee_engine_default_config ();

  g_assert_no_error (err);
  b = engine_open ("shared", &err);
  g_assert_no_error (err);
  g_assert_true (a == b);
  c = engine_open (NULL, &err);
  g_assert_true (c != a);
  ee_engine_release (c);

  /* the same id with another precision or file: refused */
  cfg.model_file = model_path ();
  cfg.device = "cpu";
  cfg.instance_id = "shared";
  cfg.precision = EE_PRECISION_BF16;
  g_assert_null (ee_engine_acquire (&cfg, ee_model_engine_load, NULL, &err));
  g_assert_error (err, EE_ERROR, EE_ERROR_CONFLICT);
  g_assert_nonnull (strstr (err->message, "shared"));
  g_clear_error (&err);
  cfg.precision = EE_PRECISION_FP32;
  cfg.model_file = "other.safetensors";
  g_assert_null (ee_engine_acquire (&cfg, ee_model_engine_load, NULL, &err));
  g_assert_error (err, EE_ERROR, EE_ERROR_CONFLICT);
  g_clear_error (&err);

  ee_engine_release (a);
  ee_engine_release (b);
  /* released by all: the id is free for other settings */
  cfg.model_file = "no-such-file.safetensors";
  g_assert_null (ee_engine_acquire (&cfg, ee_model_engine_load, NULL, &err));
  g_assert_error (err, EE_ERROR, EE_ERROR_FILE);
  g_clear_error (&err);
}

typedef struct
{
  EeEngine *e;
  Inputs in;
  EeFrameParams p;
  EeFrameResult res;
  GMutex *lock;
  GCond *cond;
  gboolean *b_ready;
} Ordered;

/* A's stop function after its first exit (on the engine's worker, outside
 * its lock): holds the worker until B's thread is about to submit, and a
 * while after, so that B waits for its first exit when A's next step is
 * chosen. Never stops A. */
static gboolean
hold_until_b (gpointer data, int exit_index, const float *value, int64_t n)
{
  Ordered *a = data;

  if (exit_index == 0) {
    g_mutex_lock (a->lock);
    while (!*a->b_ready)
      g_cond_wait (a->cond, a->lock);
    g_mutex_unlock (a->lock);
    g_usleep (200000);
  }
  return FALSE;
}

static gpointer
ordered_thread (gpointer data)
{
  Ordered *o = data;
  EeStream *s = stream_open (o->e, &o->in);

  if (o->p.stop == NULL) {
    /* B: say it is coming, then submit */
    g_mutex_lock (o->lock);
    *o->b_ready = TRUE;
    g_cond_broadcast (o->cond);
    g_mutex_unlock (o->lock);
  }
  run (s, &o->p, &o->res);
  ee_stream_free (s);
  return NULL;
}

/* Frame A (all its exits) and frame B (anytime) of two streams, B arriving
 * while A has its first exit: whether A's next exit ran before B's first
 * (estimates of 1 s per segment, far above the real times, drive it). */
static gboolean
later_went_first (EeEngine *e, gint64 b_budget)
{
  GMutex lock;
  GCond cond;
  gboolean b_ready = FALSE, first;
  Ordered a = { .e = e }, b = { .e = e };
  GThread *ta, *tb;

  g_mutex_init (&lock);
  g_cond_init (&cond);
  for (int seg = 0; seg < ee_runner_n_segments (ee_engine_runner (e)); seg++)
    ee_engine_set_cost (e, seg, SECOND);
  inputs_init (&a.in, ee_engine_owner (e), 1);
  inputs_init (&b.in, ee_engine_owner (e), 2);
  a.lock = b.lock = &lock;
  a.cond = b.cond = &cond;
  a.b_ready = b.b_ready = &b_ready;
  /* A: confidence without a deadline to speak of, so that every exit runs,
   * its stop function holding the worker after the first */
  a.p = params (EE_POLICY_CONFIDENCE, 1000 * SECOND);
  a.p.stop = hold_until_b;
  a.p.stop_data = &a;
  ta = g_thread_new ("a", ordered_thread, &a);
  /* B only once A has started (its first exit runs first) */
  g_mutex_lock (&lock);
  g_mutex_unlock (&lock);
  g_usleep (50000);
  b.p = params (EE_POLICY_ANYTIME, b_budget);
  tb = g_thread_new ("b", ordered_thread, &b);
  g_thread_join (ta);
  g_thread_join (tb);
  g_assert_cmpint (a.res.exit, ==, 3);
  g_assert_cmpint (b.res.exit, >=, 0);
  first = a.res.finish[1] < b.res.finish[0];
  inputs_clear (&a.in);
  inputs_clear (&b.in);
  g_mutex_clear (&lock);
  g_cond_clear (&cond);
  return first;
}

/* A later exit runs before a waiting first exit only when that first exit
 * still makes its deadline behind it. */
static void
test_engine_later_first (void)
{
  GError *err = NULL;
  EeEngine *e = engine_open_with (NULL, "cpu", 1, 0, &err);
  gboolean b_first = FALSE;

  g_assert_no_error (err);
  /* B has 100 s for a first exit of 2.25 s: A's exits go on first */
  g_assert_true (later_went_first (e, 100 * SECOND));
  /* B has 3 s for a first exit of 2.25 s (its segments measured once, in
   * A's first exit): behind A's next exit (1 s) it would be late, so it goes
   * first (a round where B's thread came too late to wait says nothing: up
   * to 5) */
  for (int round = 0; round < 5 && !b_first; round++)
    b_first = !later_went_first (e, 3 * SECOND);
  g_assert_true (b_first);
  ee_engine_release (e);
}

/* ------------------------------------------------------------ batches */

#define BATCH 3

/* Whether a and b agree to float rounding of differently ordered sums. */
static gboolean
close_to (float a, float b)
{
  return fabsf (a - b) <= 1e-4f * MAX (fabsf (a), fabsf (b)) + 1e-5f;
}

/* The model loaded with BATCH frames per run gives, in every frame's slot,
 * what the model of one frame per run gives for that frame: every exit and
 * the final exit's map. */
static void
test_batch_graph (void)
{
  EeBackend *be, *dev;
  EeModel *m = load (&be), *mb;
  EeRunner *rb;
  GError *err = NULL;
  EeCursor *c;
  Inputs in[BATCH];
  float ref[BATCH][4];
  float *ref_map[BATCH] = { NULL };
  int64_t cells = 0;

  dev = strcmp (test_device (), "cpu")
            ? ee_backend_new_full (test_device (), 0, EE_PRECISION_FP32, &err)
            : be;
  g_assert_no_error (err);
  mb = ee_model_load_batch (model_path (), dev, TRUE, BATCH, &err);
  g_assert_no_error (err);
  rb = ee_model_runner (mb);
  g_assert_cmpint (ee_runner_n_exits (rb), ==, 4);
  for (int k = 0; k < BATCH; k++) {
    const EeExitResult *fin;

    inputs_init (&in[k], m, 10 + k);
    reference (m, &in[k], ref[k]);
    fin = ee_model_result (m, 3);
    cells = fin->map ? fin->map_h * fin->map_w : 0;
    if (fin->map)
      ref_map[k] = g_memdup2 (fin->map, (gsize)cells * sizeof (float));
  }
  /* the batched graph's parameters are the model's, counted once */
  for (int i = 0; i < 4; i++) {
    const EeSegment *a = ee_runner_segment (
        ee_model_runner (m), ee_runner_exit_segment (ee_model_runner (m), i));
    const EeSegment *b = ee_runner_segment (rb, ee_runner_exit_segment (rb, i));
    g_assert_cmpint (a->params, ==, b->params);
    g_assert_cmpint (b->n_out, ==, BATCH * a->n_out);
  }

  c = ee_cursor_new (rb, &err);
  g_assert_no_error (err);
  ee_cursor_begin (c, ALL);
  for (int k = 0; k < BATCH; k++) {
    g_assert_true (ee_cursor_upload_slot (c, ee_model_image_input (mb), k,
                                          BATCH, in[k].image, &err));
    g_assert_true (ee_cursor_upload_slot (c, ee_model_audio_input (mb), k,
                                          BATCH, in[k].logmel, &err));
  }
  /* a slot that does not divide the input is refused */
  g_assert_false (ee_cursor_upload_slot (c, ee_model_image_input (mb), 0, 2,
                                         in[0].image, &err));
  g_assert_error (err, EE_ERROR, EE_ERROR_ARGUMENT);
  g_clear_error (&err);
  for (int i = 0; i < 4; i++)
    g_assert_true (ee_cursor_enqueue (c, i, &err));
  g_assert_true (ee_cursor_wait (c, &err));
  g_assert_no_error (err);
  for (int i = 0; i < 4; i++) {
    const EeExitResult *r = ee_cursor_result (c, i);

    for (int k = 0; k < BATCH; k++)
      if (!close_to (r->value[k], ref[k][i]))
        g_error ("exit %d, frame %d: batched %.7g, alone %.7g", i, k,
                 r->value[k], ref[k][i]);
  }
  if (cells) {
    const EeExitResult *r = ee_cursor_result (c, 3);

    g_assert_cmpint (r->map_h * r->map_w, ==, cells);
    for (int k = 0; k < BATCH; k++)
      for (int64_t j = 0; j < cells; j++)
        if (!close_to (r->map[k * cells + j], ref_map[k][j]))
          g_error ("map of frame %d, cell %" G_GINT64_FORMAT
                   ": batched %.7g, alone %.7g",
                   k, j, r->map[k * cells + j], ref_map[k][j]);
  }
  ee_cursor_free (c);
  for (int k = 0; k < BATCH; k++) {
    inputs_clear (&in[k]);
    g_free (ref_map[k]);
  }
  ee_model_free (mb);
  if (dev != be)
    ee_backend_free (dev);
  ee_model_free (m);
  ee_backend_free (be);
}

typedef struct
{
  EeEngine *e;
  Inputs in;
  float ref[4];
  Barrier *start;
  EePolicy policy;
  int frames, wrong, batched, published;
} Batched;

/* One stream of frames submitted together with the other streams': each
 * result checked against the frame run alone. */
static gpointer
batched_thread (gpointer data)
{
  Batched *b = data;
  EeStream *s = stream_open (b->e, &b->in);
  EeStreamStats st;

  for (int k = 0; k < b->frames; k++) {
    EeFrameParams p = params (b->policy, 30 * SECOND);
    EeFrameResult res;

    barrier_wait (b->start);
    run (s, &p, &res);
    if (res.exit < 0 || res.n_out != 1
        || !close_to (res.value[0], b->ref[res.exit]))
      b->wrong++;
    b->published += res.exit >= 0;
  }
  ee_stream_get_stats (s, &st);
  b->batched = (int)st.batched;
  ee_stream_free (s);
  return NULL;
}

/* Streams of an engine with batched steps: frames that arrive together run
 * in groups, and every frame gets its own result (full and anytime). */
static void
test_engine_batched (void)
{
  GError *err = NULL;
  EeEngine *e
      = engine_open_with ("test-batched", test_device (), 1, BATCH, &err);
  Batched b[BATCH];
  GThread *t[BATCH];
  Barrier start = { .n = BATCH };
  EeBackend *cpu;
  EeModel *m, *ref;
  int batched = 0, rounds = 0;

  g_assert_no_error (err);
  m = ee_engine_owner (e);
  /* references on the CPU before the worker has streams to run */
  ref = load (&cpu);
  for (int k = 0; k < BATCH; k++) {
    b[k] = (Batched){ .e = e, .start = &start };
    inputs_init (&b[k].in, m, 20 + k);
    reference (ref, &b[k].in, b[k].ref);
  }
  ee_model_free (ref);
  ee_backend_free (cpu);
  /* frames submitted together are grouped unless the worker takes the
   * first before the others arrive: rounds until some were (at most 20) */
  while (batched == 0 && rounds++ < 20) {
    for (int k = 0; k < BATCH; k++) {
      b[k].policy = rounds % 2 ? EE_POLICY_FULL : EE_POLICY_ANYTIME;
      b[k].frames = 4;
      b[k].published = 0;
      t[k] = g_thread_new ("stream", batched_thread, &b[k]);
    }
    for (int k = 0; k < BATCH; k++) {
      g_thread_join (t[k]);
      g_assert_cmpint (b[k].wrong, ==, 0);
      g_assert_cmpint (b[k].published, ==, 4);
      batched += b[k].batched;
    }
  }
  g_assert_cmpint (batched, >, 0);
  g_assert_cmpint (ee_engine_n_streams (e), ==, 0);

  /* the same instance with another batch size: refused */
  g_assert_null (engine_open_with ("test-batched", test_device (), 1, 2, &err));
  g_assert_error (err, EE_ERROR, EE_ERROR_CONFLICT);
  g_assert_nonnull (strstr (err->message, "batch size"));
  g_clear_error (&err);
  ee_engine_release (e);
  for (int k = 0; k < BATCH; k++)
    inputs_clear (&b[k].in);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  if (strcmp (test_device (), "cpu")) {
    /* the batched tests on another device, against the CPU */
    GError *err = NULL;
    EeBackend *be
        = ee_backend_new_full (test_device (), 0, EE_PRECISION_FP32, &err);

    if (!be) {
      g_print ("skipped: device %s: %s\n", test_device (), err->message);
      g_error_free (err);
      return 77;
    }
    ee_backend_free (be);
    g_test_add_func ("/batch/graph", test_batch_graph);
    g_test_add_func ("/engine/batched", test_engine_batched);
    return g_test_run ();
  }
  g_test_add_func ("/cursor/continue", test_cursor_continue);
  g_test_add_func ("/cursor/two-frames", test_cursor_two_frames);
  g_test_add_func ("/cursor/threads", test_cursor_threads);
  g_test_add_func ("/engine/policies", test_engine_policies);
  g_test_add_func ("/engine/budget-between-exits",
                   test_engine_budget_between_exits);
  g_test_add_func ("/engine/jump", test_engine_jump);
  g_test_add_func ("/engine/confidence", test_engine_confidence);
  g_test_add_func ("/engine/streams", test_engine_streams);
  g_test_add_func ("/engine/carry", test_engine_carry);
  g_test_add_func ("/engine/sharing", test_engine_sharing);
  g_test_add_func ("/engine/later-first", test_engine_later_first);
  g_test_add_func ("/batch/graph", test_batch_graph);
  g_test_add_func ("/engine/batched", test_engine_batched);
  return g_test_run ();
}
