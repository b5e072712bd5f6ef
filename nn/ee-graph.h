/* gst-earlyexit: a static graph of backend ops with one planned activation
 * arena.
 *
 * A model definition adds inputs and ops in execution order; every op is
 * prepared on the backend as it is added (so its output description is known at
 * once). ee_graph_plan() then computes each value's lifetime, packs all
 * activations into one arena (values whose lifetimes do not overlap share
 * bytes) and allocates it once: running the graph allocates nothing. Ops are
 * enqueued in ranges so that a multi-exit runner can run stage by stage and
 * record an event after each exit.
 *
 * Values are identified by small integers (>= 0). A graph is used by one thread
 * at a time. */
#ifndef EE_GRAPH_H
#define EE_GRAPH_H

#include "ee-backend.h"

G_BEGIN_DECLS

typedef struct _EeGraph EeGraph;

EeGraph *ee_graph_new (EeBackend *be);
void ee_graph_free (EeGraph *g);
EeBackend *ee_graph_backend (EeGraph *g);
/* int8 calibration for the ops added after this call: op name -> float[3]
 * (in_min, in_max, out_max of EeOpDesc), a table the graph keeps a
 * reference to; NULL: none. */
void ee_graph_set_int8 (EeGraph *g, GHashTable *ranges);

/* A plain f32 input filled with ee_graph_upload(); its bytes are never shared
 * with other values, so it survives any number of runs. */
int ee_graph_input (EeGraph *g, const char *name, int ndim,
                    const int64_t *shape);

/* A constant plain f32 tensor (e.g. a position embedding), uploaded once at
 * plan time; `data` is copied. Counted as parameters. */
int ee_graph_constant (EeGraph *g, const char *name, int ndim,
                       const int64_t *shape, const float *data);

/* Adds and prepares an op; returns the id of its output value, or -1 and sets
 * error. `name` (may be NULL) appears in error messages and profiles. The
 * parameter arrays of `desc` are copied by the backend. */
int ee_graph_op (EeGraph *g, const char *name, const EeOpDesc *desc,
                 const int *inputs, int n_inputs, GError **error);

/* A constant whose first dimension holds `copies` copies of `data` (the
 * per-frame constant of a batched graph, e.g. a position embedding for each
 * frame of a batch); shape[0] must be a multiple of copies. Counted as
 * parameters once. */
int ee_graph_constant_repeated (EeGraph *g, const char *name, int ndim,
                                const int64_t *shape, const float *data,
                                int64_t copies);

/* A strided view of `base` (e.g. reshape, head split, transpose) sharing its
 * storage; `offset` in elements. A base in a backend layout is first reordered
 * to plain (an op is added for it). */
int ee_graph_view (EeGraph *g, int base, int ndim, const int64_t *shape,
                   const int64_t *stride, int64_t offset, GError **error);
/* A contiguous reshape (same element count). */
int ee_graph_reshape (EeGraph *g, int base, int ndim, const int64_t *shape,
                      GError **error);

/* Keeps `value` alive to the end of every run and readable with
 * ee_graph_download(); a value in a backend layout gets a reorder op. Returns
 * the readable value id. */
int ee_graph_mark_output (EeGraph *g, int value, GError **error);

const EeTensorDesc *ee_graph_desc (EeGraph *g, int value);
int ee_graph_n_ops (EeGraph *g);
/* FLOPs and parameter counts of ops [first, last). */
double ee_graph_flops (EeGraph *g, int first, int last);
int64_t ee_graph_params (EeGraph *g, int first, int last);

/* Overrides the parameter count of op `op` (e.g. 0 for a weight derived at load
 * from parameters another op already counts). */
void ee_graph_set_op_params (EeGraph *g, int op, int64_t params);

gboolean ee_graph_plan (EeGraph *g, GError **error);
/* Bytes of the planned arena, and what the activations would take without
 * sharing (the sum of every arena value's size). */
size_t ee_graph_arena_bytes (EeGraph *g);
size_t ee_graph_unshared_bytes (EeGraph *g);

/* Activation memory for one more frame in flight: the planned arena's
 * layout in a new allocation (ee_graph_arena_bytes). Ops and weights are
 * shared; frames in flight at once each need their own arena. */
void *ee_graph_arena_new (EeGraph *g, GError **error);
/* Frees an arena from ee_graph_arena_new (not the graph's own). */
void ee_graph_arena_free (EeGraph *g, void *arena);

/* The graph's inputs, in the order they were added: how many, and the value
 * id of input k (-1 when out of range). */
int ee_graph_n_inputs (EeGraph *g);
int ee_graph_input_value (EeGraph *g, int k);

/* Enqueued, in `arena` (NULL: the graph's own); `host` must stay valid
 * until the backend is synced. The graph keeps no state between these calls,
 * so threads running frames in different arenas may call them at once where
 * the backend allows it (EE_BACKEND_CAP_CONCURRENT). */
gboolean ee_graph_upload (EeGraph *g, void *arena, int input, const float *host,
                          GError **error);
/* Uploads one frame of a batched input: the input's first dimension holds
 * n_slots frames and `host` is frame `slot` (1/n_slots of the bytes). */
gboolean ee_graph_upload_slot (EeGraph *g, void *arena, int input, int slot,
                               int n_slots, const float *host, GError **error);
gboolean ee_graph_run (EeGraph *g, void *arena, int first, int last,
                       GError **error);
gboolean ee_graph_download (EeGraph *g, void *arena, int output, float *host,
                            GError **error);

/* Host-side helper for model loaders: folds inference batch norm into the
 * preceding conv or linear layer. weight (O, per_out), bias (O) (created as
 * zeros by the caller when the layer has none); gamma/beta may be NULL (not
 * affine). */
void ee_fold_batchnorm (float *weight, float *bias, int64_t out_channels,
                        int64_t per_out, const float *mean, const float *var,
                        const float *gamma, const float *beta, float eps);

G_END_DECLS
#endif /* EE_GRAPH_H */
