/* gst-earlyexit: does batching frames help a model's convolutions on the CPU?
 *
 * Usage: bench-batch [MODEL] [-i ITERATIONS] [-t THREADS] [--frames LIST]
 *
 * The visual trunk of an AudioCSRNet model file (its front end with the max
 * pools, then its dilated back end: where nearly all of a frame's FLOPs are),
 * read from the file's config and run on the CPU backend with random weights,
 * B frames at a time, three ways:
 *
 *   serial   one frame after the other, batch 1, every thread on each op
 *            (a shared engine with one lane, the design before lanes)
 *   batched  the B frames as one batch (N = B) through each op
 *   lanes    one thread per lane (as many lanes as threads, at most B), each
 *            lane taking frames one after the other at batch 1 on its share
 *            of the threads; the lanes share the ops, one lane at a time per
 *            op (the engine's lanes, nn/ee-engine.h)
 *
 * Each way runs once to warm up, then ITERATIONS times; the table gives the
 * median milliseconds per frame and the speed against serial. Default model:
 * the bundled one. Without an argument MODEL, B = 1, 2, 4, 8. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "bench-util.h"
#include "ee-backend.h"
#include "ee-safetensors.h"

#define MAX_LAYERS 64
#define MAX_LANES 16

typedef struct
{
  gboolean pool; /* a 2x2 max pool, stride 2; else a 3x3 conv + ReLU */
  int cin, cout, h, w, dilation;
} Layer;

typedef struct
{
  Layer l[MAX_LAYERS];
  int n, in_h, in_w;
} Trunk;

/* The prepared trunk at one batch size, with the activations of `slots`
 * frames (or batches) in flight at once. */
typedef struct
{
  EeBackend *be;
  int batch, slots, n;
  EeOp *op[MAX_LAYERS];
  EeTensorDesc desc[MAX_LAYERS + 1]; /* [0]: the input */
  void **act;                        /* slots x (n + 1) */
} Prepared;

/* Appends the layers of a config list ("frontend", "backend") at the
 * current size; "M" is a max pool. */
static gboolean
add_layers (Trunk *t, JsonArray *list, int dilation, int *c, int *h, int *w,
            GError **error)
{
  for (guint i = 0; i < json_array_get_length (list); i++) {
    JsonNode *node = json_array_get_element (list, i);
    Layer *l = &t->l[t->n];

    if (t->n >= MAX_LAYERS) {
      g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED, "more than %d layers",
                   MAX_LAYERS);
      return FALSE;
    }
    *l = (Layer){ .cin = *c, .h = *h, .w = *w, .dilation = dilation };
    if (JSON_NODE_HOLDS_VALUE (node)
        && json_node_get_value_type (node) == G_TYPE_STRING) {
      l->pool = TRUE;
      l->cout = *c;
      *h /= 2;
      *w /= 2;
    } else {
      l->cout = *c = (int)json_node_get_int (node);
    }
    t->n++;
  }
  return TRUE;
}

/* The visual trunk from the model file's config. */
static gboolean
trunk_load (const char *path, Trunk *t, GError **error)
{
  EeSafetensors *st = ee_safetensors_open (path, error);
  JsonParser *parser;
  JsonObject *cfg;
  const char *text;
  gboolean ok = FALSE;
  int c = 3, h, w;

  if (!st)
    return FALSE;
  text = ee_safetensors_metadata (st, "config");
  parser = json_parser_new ();
  if (!text || !json_parser_load_from_data (parser, text, -1, error)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser))) {
    if (error && !*error)
      g_set_error (error, EE_ERROR, EE_ERROR_FORMAT, "%s: no model config",
                   path);
    goto done;
  }
  cfg = json_node_get_object (json_parser_get_root (parser));
  if (g_strcmp0 (json_object_get_string_member_with_default (cfg, "arch", ""),
                 "audiocsrnet")
      || !json_object_has_member (cfg, "frontend")
      || !json_object_has_member (cfg, "backend")) {
    g_set_error (error, EE_ERROR, EE_ERROR_UNSUPPORTED,
                 "%s: not an AudioCSRNet model", path);
    goto done;
  }
  t->n = 0;
  t->in_w = w = (int)json_object_get_int_member (cfg, "input_width");
  t->in_h = h = (int)json_object_get_int_member (cfg, "input_height");
  ok = add_layers (t, json_object_get_array_member (cfg, "frontend"), 1, &c, &h,
                   &w, error)
       && add_layers (t, json_object_get_array_member (cfg, "backend"),
                      (int)json_object_get_int_member_with_default (
                          cfg, "backend_dilation", 2),
                      &c, &h, &w, error);
done:
  g_object_unref (parser);
  ee_safetensors_free (st);
  return ok;
}

static void
prepared_free (Prepared *p)
{
  for (int i = 0; i < p->n; i++)
    ee_backend_op_free (p->be, p->op[i]);
  for (int k = 0; p->act && k < p->slots * (p->n + 1); k++)
    if (p->act[k])
      ee_backend_dealloc (p->be, p->act[k]);
  g_free (p->act);
}

static gboolean
prepare (EeBackend *be, const Trunk *t, int batch, int slots, GRand *rand,
         Prepared *p, GError **error)
{
  float *x;

  *p = (Prepared){ .be = be, .batch = batch, .slots = slots, .n = t->n };
  p->desc[0] = ee_tensor_desc_nchw (batch, 3, t->in_h, t->in_w);
  for (int i = 0; i < t->n; i++) {
    const Layer *l = &t->l[i];
    const EeTensorDesc *in = &p->desc[i];
    EeOpDesc d = ee_op_desc_init (l->pool ? EE_OP_MAXPOOL : EE_OP_CONV2D);
    float *w = NULL, *b = NULL;

    if (l->pool) {
      d.kernel[0] = d.kernel[1] = d.stride[0] = d.stride[1] = 2;
    } else {
      w = bench_random_floats (rand, (size_t)l->cout * l->cin * 9,
                               1.0 / sqrt (l->cin * 9.0));
      b = bench_random_floats (rand, (size_t)l->cout, 0.1);
      d.out_features = l->cout;
      d.kernel_size[0] = d.kernel_size[1] = 3;
      d.pad[0] = d.pad[1] = l->dilation;
      d.dilation[0] = d.dilation[1] = l->dilation;
      d.weight = w;
      d.bias = b;
      d.act = EE_ACT_RELU;
    }
    p->op[i] = ee_backend_op_new (be, &d, &in, 1, &p->desc[i + 1], error);
    g_free (w);
    g_free (b);
    if (!p->op[i]) {
      p->n = i;
      return FALSE;
    }
  }
  p->act = g_new0 (void *, slots *(t->n + 1));
  x = bench_random_floats (rand, p->desc[0].nbytes / sizeof (float), 1.0);
  for (int k = 0; k < slots; k++)
    for (int i = 0; i <= t->n; i++) {
      void **a = &p->act[k * (t->n + 1) + i];

      *a = ee_backend_alloc (be, p->desc[i].nbytes, error);
      if (!*a) {
        g_free (x);
        return FALSE;
      }
      if (i == 0 && !ee_backend_upload (be, *a, x, p->desc[0].nbytes, error)) {
        g_free (x);
        return FALSE;
      }
    }
  g_free (x);
  return TRUE;
}

/* One frame (or batch) through the trunk, in slot `slot`'s activations. */
static gboolean
run_slot (Prepared *p, int slot, GError **error)
{
  void **a = &p->act[slot * (p->n + 1)];

  for (int i = 0; i < p->n; i++) {
    EeTensor in = { .desc = p->desc[i], .data = a[i] };
    EeTensor out = { .desc = p->desc[i + 1], .data = a[i + 1] };
    const EeTensor *ip = &in;

    if (!ee_backend_op_enqueue (p->be, p->op[i], &ip, 1, &out, error))
      return FALSE;
  }
  return TRUE;
}

typedef struct
{
  Prepared *p;
  int slot, frames, cores;
  GError *error;
} LaneJob;

static gpointer
lane_main (gpointer data)
{
  LaneJob *j = data;

  ee_backend_set_thread_cores (j->p->be, j->cores);
  for (int f = 0; f < j->frames && !j->error; f++)
    run_slot (j->p, j->slot, &j->error);
  return NULL;
}

/* Milliseconds for `frames` frames through p: `lanes` threads taking turns
 * over the frames (1: the calling thread, batch p->batch per call). */
static gboolean
time_frames (Prepared *p, int frames, int lanes, int cores, double *ms,
             GError **error)
{
  gint64 t0 = g_get_monotonic_time ();

  /* as the engine: lanes beyond the frames stay idle, and the busy ones
   * share the cores */
  lanes = MIN (lanes, frames);
  if (lanes <= 1) {
    for (int f = 0; f < frames / p->batch; f++)
      if (!run_slot (p, 0, error))
        return FALSE;
  } else {
    LaneJob job[MAX_LANES];
    GThread *th[MAX_LANES];

    for (int k = 0; k < lanes; k++) {
      job[k] = (LaneJob){ .p = p,
                          .slot = k,
                          .frames = frames / lanes + (k < frames % lanes),
                          .cores = MAX (cores / lanes, 1) };
      th[k] = g_thread_new ("lane", lane_main, &job[k]);
    }
    for (int k = 0; k < lanes; k++)
      g_thread_join (th[k]);
    for (int k = 0; k < lanes; k++)
      if (job[k].error) {
        g_propagate_error (error, job[k].error);
        for (int j = k + 1; j < lanes; j++)
          g_clear_error (&job[j].error);
        return FALSE;
      }
  }
  *ms = (g_get_monotonic_time () - t0) / 1e3;
  return TRUE;
}

/* Median ms per frame of `frames` frames: warm-up, then iterations. */
static gboolean
per_frame (Prepared *p, int frames, int lanes, int cores, int iterations,
           double *ms, GError **error)
{
  double *t = g_new (double, iterations), warm;
  gboolean ok = time_frames (p, frames, lanes, cores, &warm, error);

  for (int i = 0; i < iterations && ok; i++)
    ok = time_frames (p, frames, lanes, cores, &t[i], error);
  if (ok)
    *ms = bench_median (t, iterations) / frames;
  g_free (t);
  return ok;
}

static GArray *
parse_list (const char *text)
{
  gchar **parts = g_strsplit (text, ",", -1);
  GArray *a = g_array_new (FALSE, FALSE, sizeof (int));

  for (gchar **p = parts; *p; p++) {
    int v = atoi (*p);
    if (v < 1 || v > 64) {
      g_array_unref (a);
      a = NULL;
      break;
    }
    g_array_append_val (a, v);
  }
  g_strfreev (parts);
  return a;
}

int
main (int argc, char **argv)
{
  int iterations = 5, threads = 0, lanes;
  gchar *frames_opt = NULL;
  GOptionEntry entries[]
      = { { "iterations", 'i', 0, G_OPTION_ARG_INT, &iterations,
            "Timed runs per row after one warm-up (default 5)", "N" },
          { "threads", 't', 0, G_OPTION_ARG_INT, &threads,
            "Threads (default: all cores); lanes: one per thread", "N" },
          { "frames", 0, 0, G_OPTION_ARG_STRING, &frames_opt,
            "Frames at a time, B (default 1,2,4,8)", "LIST" },
          { NULL } };
  GOptionContext *ctx
      = g_option_context_new ("[MODEL] - batching vs lanes on the CPU");
  GError *error = NULL;
  const char *model = BENCH_BATCH_MODEL;
  GArray *bs;
  GRand *rand;
  EeBackend *be;
  Trunk t;
  double gflop = 0;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || iterations < 1
      || argc > 2 || !(bs = parse_list (frames_opt ? frames_opt : "1,2,4,8"))) {
    fprintf (stderr, "bench-batch: %s\n",
             error ? error->message : "bad arguments (see --help)");
    return 2;
  }
  g_option_context_free (ctx);
  if (argc == 2)
    model = argv[1];
  if (threads <= 0)
    threads = (int)g_get_num_processors ();
  lanes = MIN (threads, MAX_LANES);
  if (!trunk_load (model, &t, &error)
      || !(be = ee_backend_cpu_new (threads, &error))) {
    fprintf (stderr, "bench-batch: %s\n", error->message);
    return 1;
  }
  for (int i = 0; i < t.n; i++)
    if (!t.l[i].pool)
      gflop += 2.0 * t.l[i].cout * t.l[i].cin * 9 * t.l[i].h * t.l[i].w / 1e9;

  printf ("Visual trunk of %s: %dx%d input, %d layers, %.2f GFLOP per frame; "
          "CPU backend, %d threads, %d lanes; median of %d runs\n",
          model, t.in_w, t.in_h, t.n, gflop, threads, lanes, iterations);
  printf ("| frames B | serial ms/frame | batched ms/frame | lanes ms/frame "
          "| batched / serial speed | lanes / serial speed |\n");
  printf ("|---------:|----------------:|-----------------:|---------------:"
          "|-----------------------:|---------------------:|\n");
  rand = g_rand_new_with_seed (1);
  for (guint k = 0; k < bs->len; k++) {
    int b = g_array_index (bs, int, k);
    Prepared one, batch, lane;
    double serial_ms = 0, batch_ms = 0, lanes_ms = 0;
    gboolean ok
        = prepare (be, &t, 1, 1, rand, &one, &error)
          && prepare (be, &t, b, 1, rand, &batch, &error)
          && prepare (be, &t, 1, lanes, rand, &lane, &error)
          && per_frame (&one, b, 1, threads, iterations, &serial_ms, &error)
          && per_frame (&batch, b, 1, threads, iterations, &batch_ms, &error)
          && per_frame (&lane, b, lanes, threads, iterations, &lanes_ms,
                        &error);

    prepared_free (&one);
    prepared_free (&batch);
    prepared_free (&lane);
    if (!ok) {
      fprintf (stderr, "bench-batch: B = %d: %s\n", b, error->message);
      return 1;
    }
    printf ("| %8d | %15.2f | %16.2f | %14.2f | %22.2f | %20.2f |\n", b,
            serial_ms, batch_ms, lanes_ms, serial_ms / batch_ms,
            serial_ms / lanes_ms);
    fflush (stdout);
  }
  printf ("speed above 1: faster than serial (one frame at a time on every "
          "thread)\n");
  g_rand_free (rand);
  g_array_unref (bs);
  g_free (frames_opt);
  ee_backend_free (be);
  return 0;
}
