/* gst-earlyexit: running a multi-exit model against a deadline (anytime).
 *
 * The scheduler keeps a cost estimate per runner segment, measured at warm-up
 * and updated online, and decides per frame which exits to run so that the
 * result is ready by the deadline:
 *
 * - On a backend that executes eagerly (the CPU backend runs every op inside
 *   the enqueue call), it runs segment by segment itself and reads the clock
 *   between exits: an exit whose remaining segments are not expected to finish
 *   by the deadline is not started.
 * - On an asynchronous backend it enqueues the exits expected to fit in one go
 *   (ee_runner_enqueue), then polls the exits' events until the deadline and
 *   takes the newest one that has finished. Work still in flight then completes
 *   on the stream before the next frame's work.
 *
 * Policy CONFIDENCE is ANYTIME with an early stop: after each exit finishes,
 * the caller's stop function sees its result, and when it says so (a
 * classifier confident enough) no later exit is started and that exit is
 * published (if it finished by the deadline, else the newest one that did).
 * On an asynchronous backend the exits are enqueued as for ANYTIME and the
 * poll stops waiting at the first exit found good enough; what is still in
 * flight completes on the stream before the next frame's work.
 *
 * Whatever the policy, the first exit it may run always runs, so every frame
 * gets a result; when that first exit finishes after the deadline the result is
 * marked missed. Estimates: each segment's time is an exponential moving
 * average (weight 1/4) of its measurements, a measurement counting at most
 * twice the current estimate so that one preempted run cannot lock a segment
 * out. An exit skipped for lack of time 25 frames in a row is tried anyway,
 * so that an overestimate (a warm-up on a busy machine, a slowdown that has
 * passed) is measured again, and when it finishes in time the next exit is
 * tried on the next frame; a try that misses the deadline doubles the wait
 * before the next one (up to 1600 frames), so an exit that really does not
 * fit costs a few misses at first and then one every 1600 frames.
 *
 * Within a frame segments always run in graph order (the order the
 * activation arena was planned for): before an exit, the earlier-numbered
 * segments a later exit needs run too (AudioCSRNet: the cheap audio branch
 * runs with the front end, before exit v1).
 *
 * Inputs must be uploaded before every run: a run may reuse their memory.
 *
 * Times are nanoseconds of ee_deadline_now() (CLOCK_MONOTONIC). A scheduler is
 * used by one thread at a time. */
#ifndef EE_DEADLINE_H
#define EE_DEADLINE_H

#include "ee-runner.h"

G_BEGIN_DECLS

typedef struct _EeDeadline EeDeadline;

typedef enum
{
  EE_DEADLINE_ANYTIME,    /* newest exit finished by the deadline */
  EE_DEADLINE_FIXED,      /* always exit max_exit, deadline ignored */
  EE_DEADLINE_FULL,       /* every exit up to max_exit, deadline ignored */
  EE_DEADLINE_CONFIDENCE, /* ANYTIME, ending at an exit `stop` accepts */
} EeDeadlinePolicy;

/* Policy CONFIDENCE: TRUE when exit `exit_index`'s result (n_out floats,
 * valid during the call) is good enough to stop at. Called on the thread
 * running the frame, once per finished exit in anytime order, except the
 * last exit the frame would run (which ends it anyway). */
typedef gboolean (*EeDeadlineStopFunc) (gpointer user_data, int exit_index,
                                        const float *value, int64_t n_out);

typedef struct
{
  EeDeadlinePolicy policy;
  guint32 allowed;         /* exits that may run (bit i = exit i) */
  int min_exit;            /* exits before it are not run; -1: none */
  int max_exit;            /* exits after it are not run; -1: none */
  gint64 deadline;         /* absolute, ee_deadline_now() time */
  EeDeadlineStopFunc stop; /* CONFIDENCE only; NULL: never stop early */
  gpointer stop_data;
} EeDeadlineParams;

typedef struct
{
  int exit;           /* published exit index; -1: nothing could run */
  const float *value; /* its n_out floats, valid until the next run */
  int64_t n_out;
  guint32 ran;                           /* exits that finished */
  gint64 start;                          /* when the run started */
  gint64 finish[EE_RUNNER_MAX_SEGMENTS]; /* per exit, when it finished */
  gint64 published;                      /* when the result was taken */
  gboolean missed;                       /* published after the deadline */
  gboolean stopped_early; /* CONFIDENCE: `stop` accepted an exit before the
                           * last one the frame would have run */
} EeDeadlineResult;

gint64 ee_deadline_now (void);

/* eager: the backend executes inside enqueue (the CPU backend). */
EeDeadline *ee_deadline_new (EeRunner *runner, gboolean eager);
void ee_deadline_free (EeDeadline *d);

/* Uploads the inputs again: a run may reuse the inputs' memory for
 * activations, so every run needs fresh inputs. */
typedef gboolean (*EeDeadlineUploadFunc) (gpointer user_data, GError **error);

/* Runs every segment `runs` times (calling upload before each run) and sets
 * each estimate to its fastest run after the first (the first pays for lazy
 * initialisation). */
gboolean ee_deadline_warm_up (EeDeadline *d, int runs,
                              EeDeadlineUploadFunc upload, gpointer user_data,
                              GError **error);

/* Estimated nanoseconds to run exit `exit_index` and everything it needs from
 * scratch. */
gint64 ee_deadline_exit_cost (EeDeadline *d, int exit_index);

/* Sets the estimate of runner segment `segment` (ns), e.g. from a benchmark. */
void ee_deadline_set_cost (EeDeadline *d, int segment, gint64 ns);

/* The exit the policy would aim for with these parameters (without running):
 * for ANYTIME and CONFIDENCE the last one whose cumulative estimate fits
 * between now and the deadline. */
int ee_deadline_target (EeDeadline *d, const EeDeadlineParams *p);

/* Runs one frame (inputs uploaded before). FALSE on a backend error. */
gboolean ee_deadline_run (EeDeadline *d, const EeDeadlineParams *p,
                          EeDeadlineResult *res, GError **error);

G_END_DECLS
#endif /* EE_DEADLINE_H */
