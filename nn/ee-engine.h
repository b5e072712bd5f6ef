/* gst-earlyexit: the anytime engine.
 *
 * One engine owns one loaded model (weights once, in the backend's prepared
 * ops) and serves any number of streams: an element instance, a tool, a test.
 * Each stream runs one frame at a time through its own cursor
 * (nn/ee-runner.h), so the frames of all streams are in flight together on
 * one backend, scheduled by the engine's workers: one on a GPU (one backend
 * stream), one per lane on the CPU, where several frames run at once, each
 * on its share of the cores (EeEngineConfig.lanes), one op at a time per
 * frame and one frame at a time per op:
 *
 * - Earliest deadline first, at exit granularity. Every frame first gets its
 *   first allowed exit, in deadline order; a frame whose first exit cannot
 *   finish by its deadline (given the first exits queued before it) carries
 *   its stream's last result instead (`carried`), so a live stream never
 *   falls behind. A frame continues with its next exit when the exit is
 *   expected to finish by the frame's deadline, earliest deadline first
 *   among such frames, and before the first exits that wait only when each
 *   of those would still finish by its own deadline after it. Under
 *   ANYTIME, when running the later exits in order would not reach the last
 *   one in time, a frame goes straight to the deepest exit it can reach,
 *   skipping the heads of the exits in between.
 * - Costs: a running estimate per runner segment, measured at warm-up and
 *   then after every segment (exponential moving average, weight 1/4, a
 *   measurement counting at most twice the estimate so that one preempted
 *   run cannot lock a segment out). Estimates are kept as on all the
 *   engine's cores: a step that ran on a lane's share counts by that share,
 *   and plans scale them by the lanes sharing the cores at the time (the
 *   frames in flight, at most the lanes). An exit skipped for lack of time 25
 *   frames in a row is tried anyway (its estimate may be stale); a try that
 *   misses the deadline doubles the wait, up to 1600 frames.
 * - Backends: eager ones (EE_BACKEND_CAP_EAGER: the CPU) have run a segment
 *   when its enqueue returns; on the others the worker waits for the step's
 *   event. The same loop serves both.
 * - Policies: ANYTIME publishes the newest exit finished by the deadline;
 *   CONFIDENCE is ANYTIME ending at the first exit the stop function accepts;
 *   FIXED runs max-exit alone and FULL every exit up to max-exit, both
 *   ignoring the deadline. At the deadline the caller gets the newest exit
 *   finished by then while later work is dropped; with nothing finished and a
 *   last result to carry, that result (ANYTIME, CONFIDENCE); a stream's very
 *   first frame waits for its first exit and is marked missed when late.
 * - Batched steps (EeEngineConfig.batch_size > 1): when several frames wait
 *   for the same first step (same exits, same inputs given), up to
 *   batch_size of them, earliest deadlines first, run it as one call on the
 *   model loaded with that many frames per run, if the batched step still
 *   brings each in by its deadline. Such a group then steps together: its
 *   next exit runs for every frame still in it, and a frame whose deadline
 *   the next step would miss leaves it, published. Batched steps have their
 *   own cost estimates; a group does not jump over exits. The published
 *   result is copied out of the group's memory, so the stream may start its
 *   next frame while the group goes on.
 * - QoS: a stream told that downstream is late aims one exit lower from the
 *   next frame on (ANYTIME), and one higher again after 25 on-time reports.
 *
 * Engines with an instance id are shared: ee_engine_acquire() with the same
 * id and the same model file, device, precision and batch size returns the
 * same engine (reference counted); the same id with another file, device,
 * precision or batch size is an error. Without an id every acquire makes a
 * private engine.
 *
 * Times are nanoseconds of ee_now() (CLOCK_MONOTONIC). Engines and streams
 * are thread safe: each stream is driven by one thread at a time (its
 * element's streaming thread), any number of streams at once. */
#ifndef EE_ENGINE_H
#define EE_ENGINE_H

#include "ee-runner.h"

G_BEGIN_DECLS

typedef struct _EeEngine EeEngine;
typedef struct _EeStream EeStream;

gint64 ee_now (void);

typedef enum
{
  EE_POLICY_ANYTIME,    /* newest exit finished by the deadline */
  EE_POLICY_CONFIDENCE, /* ANYTIME, ending at an exit `stop` accepts */
  EE_POLICY_FIXED,      /* always exit max_exit, deadline ignored */
  EE_POLICY_FULL,       /* every exit up to max_exit, deadline ignored */
} EePolicy;

const char *ee_policy_name (EePolicy policy);

/* Loads the model onto `be` for an engine, with `batch` frames per run (1,
 * or the engine's batch size for its batched steps: every input and output
 * then has `batch` frames in its first dimension): returns the planned
 * runner and *owner, freed with owner_free when the engine goes (e.g. the
 * EeModel that owns the runner). NULL with error. */
typedef EeRunner *(*EeEngineLoadFunc) (EeBackend *be, const char *path,
                                       int batch, gpointer user_data,
                                       gpointer *owner,
                                       GDestroyNotify *owner_free,
                                       GError **error);

typedef struct
{
  const char *model_file;
  const char *device; /* auto, cpu, cuda, cuda:N (ee-backend-select.h) */
  EePrecision precision;
  const char *instance_id; /* NULL or "": a private engine */
  int threads;             /* CPU threads, <= 0: all cores */
  /* Frames run at once (lanes), on a backend that allows it
   * (EE_BACKEND_CAP_CONCURRENT: the CPU); <= 0: the environment variable
   * EE_ENGINE_LANES when set, else one lane per thread. A lane running beside
   * others takes its share of the threads (at least one). */
  int lanes;
  /* The most frames one batched step takes (1 to 32; <= 1: no batched
   * steps). Fixed at acquire: the model is loaded a second time with this
   * many frames per run. */
  int batch_size;
  int warm_up_runs; /* whole-model runs measuring the costs */
} EeEngineConfig;

EeEngineConfig ee_engine_default_config (void);

/* The engine for `config`: a new one (backend opened, model loaded, costs
 * measured by warm-up runs on zero inputs, worker started), or the shared
 * one already running under config->instance_id. Errors: the backend's
 * (EE_ERROR_ARGUMENT unknown device, EE_ERROR_UNSUPPORTED precision, ...),
 * the loader's, and EE_ERROR_CONFLICT when the instance id is in use with
 * another model file, device or precision. */
EeEngine *ee_engine_acquire (const EeEngineConfig *config,
                             EeEngineLoadFunc load, gpointer load_data,
                             GError **error);
/* Drops a reference; the last one stops the worker and frees the model. */
void ee_engine_release (EeEngine *e);

EeRunner *ee_engine_runner (EeEngine *e);
EeBackend *ee_engine_backend (EeEngine *e);
gpointer ee_engine_owner (EeEngine *e);
const char *ee_engine_instance_id (EeEngine *e);
int ee_engine_n_streams (EeEngine *e);

/* Estimated nanoseconds to run exit `exit_index` and everything it needs
 * from scratch. */
gint64 ee_engine_exit_cost (EeEngine *e, int exit_index);
/* Estimated nanoseconds to run every exit of a frame from scratch. */
gint64 ee_engine_frame_cost (EeEngine *e);
/* Sets the estimate of runner segment `segment` (ns), e.g. for a test. */
void ee_engine_set_cost (EeEngine *e, int segment, gint64 ns);

/* Bytes of activation memory one more stream adds. */
size_t ee_engine_stream_bytes (EeEngine *e);

/* ------------------------------------------------------------ streams */

/* TRUE when exit `exit_index`'s result (n_out floats, valid during the call)
 * is good enough to stop at (policy CONFIDENCE). Called on the engine's
 * worker thread, once per finished exit except the frame's last. */
typedef gboolean (*EeStopFunc) (gpointer user_data, int exit_index,
                                const float *value, int64_t n_out);

typedef struct
{
  EePolicy policy;
  guint32 allowed; /* exits that may run (bit i = exit i) */
  int min_exit;    /* exits before it are not run; -1: none */
  int max_exit;    /* exits after it are not run; -1: none */
  gint64 deadline; /* absolute, ee_now() time */
  gint64 position; /* the frame's running time (QoS bookkeeping); -1 */
  EeStopFunc stop; /* CONFIDENCE only; NULL: never stop early */
  gpointer stop_data;
} EeFrameParams;

typedef struct
{
  int exit;         /* published exit index; -1: carried or nothing could run */
  gboolean carried; /* the stream's last result stands for this frame */
  const float *value; /* exit's n_out floats, valid until the next run */
  int64_t n_out;
  /* the published exit's map (map_h x map_w floats, row-major, valid like
   * value); NULL when that exit has none (ee_runner_set_exit_map) */
  const float *map;
  int64_t map_h, map_w;
  guint32 ran;                           /* exits that finished in time */
  gint64 start;                          /* when the frame was submitted */
  gint64 finish[EE_RUNNER_MAX_SEGMENTS]; /* per exit, when it finished */
  gint64 published;                      /* when the result was taken */
  gboolean missed;        /* the published exit finished after the deadline */
  gboolean stopped_early; /* CONFIDENCE accepted an exit before the last */
  /* QoS: this frame lowered the stream's aim (post a QoS message) */
  gboolean qos_lowered;
  int qos_max_exit; /* the stream's QoS cap after this frame; -1: none */
} EeFrameResult;

/* Per stream, since it was made (or reset). */
typedef struct
{
  guint64 frames;    /* frames run (ee_stream_run) */
  guint64 carried;   /* frames that carried the last result */
  guint64 batched;   /* frames that ran in batched steps */
  guint64 misses;    /* results published after the deadline */
  guint64 confident; /* CONFIDENCE stops */
  guint64 qos_lowered;
  int qos_max_exit; /* -1: no cap */
  int n_exits;
  guint64 taken[EE_RUNNER_MAX_SEGMENTS];   /* frames published per exit */
  guint64 runs[EE_RUNNER_MAX_SEGMENTS];    /* exits finished */
  guint64 time[EE_RUNNER_MAX_SEGMENTS];    /* ns from submission, summed */
  gint64 estimate[EE_RUNNER_MAX_SEGMENTS]; /* ns, the engine's, from scratch */
} EeStreamStats;

/* A stream with its own activation memory. */
EeStream *ee_stream_new (EeEngine *e, GError **error);
void ee_stream_free (EeStream *s);
EeEngine *ee_stream_engine (EeStream *s);

/* The input of graph value `input` for the next frames (host memory, read
 * when the frame starts running; keep it valid and unchanged during
 * ee_stream_run). NULL: the input is not given (only exits that do not need
 * it may run: see EeFrameParams.allowed). */
void ee_stream_set_input (EeStream *s, int input, const float *host);

/* Runs one frame and blocks until its result is published (see the policies
 * above). FALSE on a backend error. */
gboolean ee_stream_run (EeStream *s, const EeFrameParams *p, EeFrameResult *res,
                        GError **error);

/* The exit ANYTIME and CONFIDENCE would aim for now (without running): the
 * last one whose cumulative estimate fits before the deadline. */
int ee_stream_target (EeStream *s, const EeFrameParams *p);

/* Downstream lateness (a QoS event): late = TRUE when a frame of running
 * time `position` (-1 unknown) was late. Reports on frames made before the
 * last lowering are ignored. */
void ee_stream_report_qos (EeStream *s, gboolean late, gint64 position);

/* Forgets the last result (nothing to carry) and the QoS state (flush). */
void ee_stream_reset (EeStream *s);
void ee_stream_get_stats (EeStream *s, EeStreamStats *stats);

G_END_DECLS
#endif /* EE_ENGINE_H */
