/* gst-earlyexit: static op graph with a planned activation arena. */
#include "ee-graph.h"

#include <string.h>
#include <math.h>

#define ARENA_ALIGN 64

typedef enum
{
  VALUE_ACTIVATION, /* produced by an op, lives in the arena */
  VALUE_INPUT,      /* uploaded per run, lives in the arena */
  VALUE_CONSTANT,   /* uploaded once at plan, own allocation */
  VALUE_VIEW,       /* a strided window on another value's storage */
} ValueKind;

typedef struct
{
  ValueKind kind;
  EeTensorDesc desc;
  char *name;
  int base;           /* VIEW: the value viewed (never itself a view) */
  size_t byte_offset; /* VIEW: offset into the base storage */
  int first_op;       /* op producing it; -1 for inputs and constants */
  int last_op;        /* last op reading it (or a view of it) */
  gboolean is_output;
  size_t arena_offset;
  float *host_data; /* CONSTANT: copy kept until plan */
  int64_t copies;   /* CONSTANT: the same data repeated this many times */
  void *own_data;   /* CONSTANT: backend allocation */
} Value;

typedef struct
{
  char *name;
  EeOp *op;
  EeOpKind kind;
  int *inputs;
  int n_inputs;
  int output;
  double flops;
  int64_t params;
} Node;

struct _EeGraph
{
  EeBackend *be;
  GArray *values; /* Value */
  GArray *nodes;  /* Node */
  void *arena;    /* the graph's own activation memory */
  size_t arena_bytes;
  size_t unshared_bytes;
  gboolean planned;
  GHashTable *int8; /* op name -> float[3], ee_graph_set_int8 */
};

static Value *
value_at (EeGraph *g, int id)
{
  return &g_array_index (g->values, Value, id);
}

static Node *
node_at (EeGraph *g, int id)
{
  return &g_array_index (g->nodes, Node, id);
}

static gboolean
value_valid (EeGraph *g, int id)
{
  return id >= 0 && (guint)id < g->values->len;
}

/* The value owning the storage a value lives in. */
static int
storage_of (EeGraph *g, int id)
{
  Value *v = value_at (g, id);
  return v->kind == VALUE_VIEW ? v->base : id;
}

static int
add_value (EeGraph *g, ValueKind kind, const EeTensorDesc *desc,
           const char *name)
{
  Value v = { 0 };

  v.kind = kind;
  v.desc = *desc;
  v.name = g_strdup (name ? name : "");
  v.base = -1;
  v.first_op = -1;
  v.last_op = -1;
  g_array_append_val (g->values, v);
  return (int)g->values->len - 1;
}

EeGraph *
ee_graph_new (EeBackend *be)
{
  EeGraph *g = g_new0 (EeGraph, 1);

  g->be = be;
  g->values = g_array_new (FALSE, TRUE, sizeof (Value));
  g->nodes = g_array_new (FALSE, TRUE, sizeof (Node));
  return g;
}

void
ee_graph_free (EeGraph *g)
{
  if (!g)
    return;
  for (guint i = 0; i < g->nodes->len; i++) {
    Node *n = node_at (g, (int)i);
    ee_backend_op_free (g->be, n->op);
    g_free (n->inputs);
    g_free (n->name);
  }
  for (guint i = 0; i < g->values->len; i++) {
    Value *v = value_at (g, (int)i);
    if (v->own_data)
      ee_backend_dealloc (g->be, v->own_data);
    g_free (v->host_data);
    g_free (v->name);
  }
  if (g->arena)
    ee_backend_dealloc (g->be, g->arena);
  if (g->int8)
    g_hash_table_unref (g->int8);
  g_array_unref (g->values);
  g_array_unref (g->nodes);
  g_free (g);
}

void
ee_graph_set_int8 (EeGraph *g, GHashTable *ranges)
{
  if (g->int8)
    g_hash_table_unref (g->int8);
  g->int8 = ranges ? g_hash_table_ref (ranges) : NULL;
}

EeBackend *
ee_graph_backend (EeGraph *g)
{
  return g->be;
}

int
ee_graph_input (EeGraph *g, const char *name, int ndim, const int64_t *shape)
{
  EeTensorDesc d = ee_tensor_desc_plain (EE_DTYPE_F32, ndim, shape);

  g_return_val_if_fail (!g->planned, -1);
  return add_value (g, VALUE_INPUT, &d, name);
}

int
ee_graph_constant (EeGraph *g, const char *name, int ndim, const int64_t *shape,
                   const float *data)
{
  EeTensorDesc d = ee_tensor_desc_plain (EE_DTYPE_F32, ndim, shape);
  int id;

  g_return_val_if_fail (!g->planned, -1);
  id = add_value (g, VALUE_CONSTANT, &d, name);
  value_at (g, id)->host_data = g_memdup2 (data, d.nbytes);
  value_at (g, id)->copies = 1;
  return id;
}

int
ee_graph_constant_repeated (EeGraph *g, const char *name, int ndim,
                            const int64_t *shape, const float *data,
                            int64_t copies)
{
  EeTensorDesc d = ee_tensor_desc_plain (EE_DTYPE_F32, ndim, shape);
  size_t one;
  Value *v;
  int id;

  g_return_val_if_fail (!g->planned && copies >= 1, -1);
  g_return_val_if_fail (ndim >= 1 && shape[0] % copies == 0, -1);
  one = d.nbytes / (size_t)copies;
  id = add_value (g, VALUE_CONSTANT, &d, name);
  v = value_at (g, id);
  v->host_data = g_malloc (d.nbytes);
  for (int64_t k = 0; k < copies; k++)
    memcpy ((char *)v->host_data + (size_t)k * one, data, one);
  v->copies = copies;
  return id;
}

static int64_t
op_params (const EeOpDesc *desc, const EeTensorDesc *const *in)
{
  int64_t c = in[0]->ndim > 1 ? in[0]->shape[1] : 1;
  int64_t last = in[0]->shape[in[0]->ndim - 1];
  int64_t bias_n = 0;

  switch (desc->kind) {
    case EE_OP_CONV2D:
      bias_n = desc->bias ? desc->out_features : 0;
      return desc->out_features * c * desc->kernel_size[0]
                 * desc->kernel_size[1]
             + bias_n;
    case EE_OP_LINEAR:
      return desc->out_features * last + (desc->bias ? desc->out_features : 0);
    case EE_OP_LAYERNORM:
      return (desc->weight ? last : 0) + (desc->bias ? last : 0);
    case EE_OP_BATCHNORM:
      return (desc->weight ? c : 0) + (desc->bias ? c : 0);
    default:
      return 0;
  }
}

int
ee_graph_op (EeGraph *g, const char *name, const EeOpDesc *desc,
             const int *inputs, int n_inputs, GError **error)
{
  const EeTensorDesc *in_desc[16];
  EeTensorDesc out = { 0 };
  EeOpDesc named = *desc;
  const float *range;
  Node n = { 0 };
  int out_id;

  g_return_val_if_fail (!g->planned, -1);
  if (n_inputs < 1 || n_inputs > (int)G_N_ELEMENTS (in_desc)) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "op %s: %d inputs (1 to %d allowed)", name ? name : "?",
                 n_inputs, (int)G_N_ELEMENTS (in_desc));
    return -1;
  }
  for (int i = 0; i < n_inputs; i++) {
    if (!value_valid (g, inputs[i])) {
      g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                   "op %s: input %d is not a value of this graph",
                   name ? name : "?", i);
      return -1;
    }
    in_desc[i] = &value_at (g, inputs[i])->desc;
  }

  named.name = name;
  if (g->int8 && name && (range = g_hash_table_lookup (g->int8, name))) {
    named.in_min = range[0];
    named.in_max = range[1];
    named.out_max = range[2];
  }
  n.op = ee_backend_op_new (g->be, &named, in_desc, n_inputs, &out, error);
  if (!n.op) {
    if (error && *error)
      g_prefix_error (error, "op %s (%s): ", name ? name : "?",
                      ee_op_kind_name (desc->kind));
    return -1;
  }
  n.name = g_strdup (name ? name : ee_op_kind_name (desc->kind));
  n.kind = desc->kind;
  n.inputs = g_memdup2 (inputs, sizeof (int) * (gsize)n_inputs);
  n.n_inputs = n_inputs;
  n.flops = ee_op_flops (desc, in_desc, n_inputs, &out);
  n.params = op_params (desc, in_desc);

  out_id = add_value (g, VALUE_ACTIVATION, &out, n.name);
  n.output = out_id;
  g_array_append_val (g->nodes, n);
  value_at (g, out_id)->first_op = (int)g->nodes->len - 1;
  for (int i = 0; i < n_inputs; i++) {
    value_at (g, inputs[i])->last_op = (int)g->nodes->len - 1;
    value_at (g, storage_of (g, inputs[i]))->last_op = (int)g->nodes->len - 1;
  }
  return out_id;
}

static int
ensure_plain (EeGraph *g, int id, GError **error)
{
  EeOpDesc d;

  if (value_at (g, id)->desc.layout == EE_LAYOUT_PLAIN)
    return id;
  d = ee_op_desc_init (EE_OP_REORDER);
  return ee_graph_op (g, "reorder", &d, &id, 1, error);
}

int
ee_graph_view (EeGraph *g, int base, int ndim, const int64_t *shape,
               const int64_t *stride, int64_t offset, GError **error)
{
  EeTensorDesc d = { 0 };
  Value *b;
  int64_t last = offset, id;
  int64_t base_numel;

  g_return_val_if_fail (!g->planned, -1);
  if (!value_valid (g, base) || ndim < 1 || ndim > EE_MAX_DIMS) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT, "view: bad base or rank");
    return -1;
  }
  base = ensure_plain (g, base, error);
  if (base < 0)
    return -1;
  b = value_at (g, base);
  base_numel = ee_tensor_desc_numel (&b->desc);
  d.dtype = b->desc.dtype;
  d.ndim = ndim;
  d.layout = EE_LAYOUT_PLAIN;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 1 || stride[i] < 0) {
      g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                   "view of %s: dimension %d has size %" G_GINT64_FORMAT
                   " stride %" G_GINT64_FORMAT,
                   b->name, i, shape[i], stride[i]);
      return -1;
    }
    d.shape[i] = shape[i];
    d.stride[i] = stride[i];
    last += (shape[i] - 1) * stride[i];
  }
  /* Views of views are flattened onto the storage owner; the base itself must
   * be contiguous for element offsets to mean the same thing. */
  if (!ee_tensor_desc_is_contiguous (&b->desc) || offset < 0
      || last >= base_numel) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "view of %s: elements up to %" G_GINT64_FORMAT
                 " fall outside its %" G_GINT64_FORMAT
                 " elements (or it is not contiguous)",
                 b->name, last, base_numel);
    return -1;
  }
  d.nbytes = (size_t)(last - offset + 1) * ee_dtype_size (d.dtype);
  id = add_value (g, VALUE_VIEW, &d, b->name);
  b = value_at (g, base);
  value_at (g, id)->base = storage_of (g, base);
  value_at (g, id)->byte_offset = (b->kind == VALUE_VIEW ? b->byte_offset : 0)
                                  + (size_t)offset * ee_dtype_size (d.dtype);
  value_at (g, id)->first_op = b->first_op;
  return (int)id;
}

int
ee_graph_reshape (EeGraph *g, int base, int ndim, const int64_t *shape,
                  GError **error)
{
  EeTensorDesc d;

  if (!value_valid (g, base) || ndim < 1 || ndim > EE_MAX_DIMS) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "reshape: bad base or rank");
    return -1;
  }
  d = ee_tensor_desc_plain (EE_DTYPE_F32, ndim, shape);
  if (ee_tensor_desc_numel (&d)
      != ee_tensor_desc_numel (&value_at (g, base)->desc)) {
    char a[64], b[64];
    g_set_error (
        error, EE_ERROR, EE_ERROR_ARGUMENT,
        "reshape of %s: %s has a different element count from %s",
        value_at (g, base)->name, ee_tensor_desc_shape_str (&d, a, sizeof a),
        ee_tensor_desc_shape_str (&value_at (g, base)->desc, b, sizeof b));
    return -1;
  }
  return ee_graph_view (g, base, ndim, d.shape, d.stride, 0, error);
}

int
ee_graph_mark_output (EeGraph *g, int value, GError **error)
{
  int id;

  g_return_val_if_fail (!g->planned, -1);
  if (!value_valid (g, value)) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT, "mark_output: bad value");
    return -1;
  }
  /* Outputs are read on the host as float: a backend computing in F16 or
   * BF16 converts in the reorder (which always produces plain F32). */
  if (value_at (g, value)->desc.dtype != EE_DTYPE_F32) {
    EeOpDesc d = ee_op_desc_init (EE_OP_REORDER);

    id = ee_graph_op (g, "reorder", &d, &value, 1, error);
  } else {
    id = ensure_plain (g, value, error);
  }
  if (id < 0)
    return -1;
  value_at (g, id)->is_output = TRUE;
  value_at (g, storage_of (g, id))->is_output = TRUE;
  return id;
}

const EeTensorDesc *
ee_graph_desc (EeGraph *g, int value)
{
  return value_valid (g, value) ? &value_at (g, value)->desc : NULL;
}

int
ee_graph_n_ops (EeGraph *g)
{
  return (int)g->nodes->len;
}

double
ee_graph_flops (EeGraph *g, int first, int last)
{
  double f = 0;
  for (int i = MAX (first, 0); i < MIN (last, (int)g->nodes->len); i++)
    f += node_at (g, i)->flops;
  return f;
}

int64_t
ee_graph_params (EeGraph *g, int first, int last)
{
  int64_t p = 0;

  for (int i = MAX (first, 0); i < MIN (last, (int)g->nodes->len); i++) {
    Node *n = node_at (g, i);
    p += n->params;
    /* constants (position embeddings) count where they are first used */
    for (int k = 0; k < n->n_inputs; k++) {
      Value *v = value_at (g, storage_of (g, n->inputs[k]));
      gboolean seen = FALSE;
      if (v->kind != VALUE_CONSTANT)
        continue;
      for (int j = 0; j < i && !seen; j++)
        for (int m = 0; m < node_at (g, j)->n_inputs; m++)
          seen |= storage_of (g, node_at (g, j)->inputs[m])
                  == storage_of (g, n->inputs[k]);
      if (!seen)
        p += ee_tensor_desc_numel (&v->desc) / MAX (v->copies, 1);
    }
  }
  return p;
}

void
ee_graph_set_op_params (EeGraph *g, int op, int64_t params)
{
  g_return_if_fail (op >= 0 && (guint)op < g->nodes->len);
  node_at (g, op)->params = params;
}

typedef struct
{
  int id;
  size_t size;
  int start, end;
} Block;

static gint
block_by_size_desc (gconstpointer a, gconstpointer b)
{
  const Block *x = a, *y = b;
  if (x->size != y->size)
    return x->size < y->size ? 1 : -1;
  return x->id - y->id;
}

/* Greedy offset assignment: biggest blocks first, each at the lowest offset
 * that does not collide with an already placed block alive at the same time. */
static size_t
assign_offsets (GArray *blocks, size_t *offsets_out)
{
  size_t total = 0;
  guint n = blocks->len;

  g_array_sort (blocks, block_by_size_desc);
  for (guint i = 0; i < n; i++) {
    Block *b = &g_array_index (blocks, Block, i);
    size_t candidate = 0;
    gboolean moved = TRUE;

    while (moved) {
      moved = FALSE;
      for (guint j = 0; j < i; j++) {
        Block *p = &g_array_index (blocks, Block, j);
        size_t po = offsets_out[p->id];
        if (p->end < b->start || b->end < p->start)
          continue;
        if (candidate < po + p->size && po < candidate + b->size) {
          candidate = po + p->size;
          moved = TRUE;
        }
      }
    }
    offsets_out[b->id] = candidate;
    total = MAX (total, candidate + b->size);
  }
  return total;
}

gboolean
ee_graph_plan (EeGraph *g, GError **error)
{
  int n_ops = (int)g->nodes->len;
  GArray *blocks = g_array_new (FALSE, FALSE, sizeof (Block));
  size_t *offsets = g_new0 (size_t, g->values->len);

  g_return_val_if_fail (!g->planned, FALSE);
  for (guint i = 0; i < g->values->len; i++) {
    Value *v = value_at (g, (int)i);
    Block b;

    if (v->kind == VALUE_VIEW)
      continue;
    if (v->kind == VALUE_CONSTANT) {
      v->own_data = ee_backend_alloc (g->be, v->desc.nbytes, error);
      if (!v->own_data
          || !ee_backend_upload (g->be, v->own_data, v->host_data,
                                 v->desc.nbytes, error))
        goto fail;
      continue;
    }
    b.id = (int)i;
    b.size = (v->desc.nbytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
    /* inputs keep their bytes for the whole graph, so a frame can be run
     * again (or continued exit by exit) without uploading it again */
    b.start = v->kind == VALUE_INPUT ? -1 : v->first_op;
    b.end = v->is_output || v->kind == VALUE_INPUT ? n_ops
                                                   : MAX (v->last_op, b.start);
    g_array_append_val (blocks, b);
    g->unshared_bytes += b.size;
  }

  g->arena_bytes = assign_offsets (blocks, offsets);
  for (guint i = 0; i < g->values->len; i++)
    value_at (g, (int)i)->arena_offset = offsets[i];
  if (g->arena_bytes > 0) {
    g->arena = ee_backend_alloc (g->be, g->arena_bytes, error);
    if (!g->arena)
      goto fail;
  }
  /* constants' host copies are needed until the uploads are done */
  if (!ee_backend_sync (g->be, error))
    goto fail;
  for (guint i = 0; i < g->values->len; i++)
    g_clear_pointer (&value_at (g, (int)i)->host_data, g_free);

  g->planned = TRUE;
  g_array_unref (blocks);
  g_free (offsets);
  return TRUE;

fail:
  if (error && *error)
    g_prefix_error (error, "planning the graph: ");
  g_array_unref (blocks);
  g_free (offsets);
  return FALSE;
}

size_t
ee_graph_arena_bytes (EeGraph *g)
{
  return g->arena_bytes;
}

size_t
ee_graph_unshared_bytes (EeGraph *g)
{
  return g->unshared_bytes;
}

void *
ee_graph_arena_new (EeGraph *g, GError **error)
{
  g_return_val_if_fail (g->planned, NULL);
  /* a graph without activations still needs a distinct non-NULL handle */
  return ee_backend_alloc (g->be, MAX (g->arena_bytes, ARENA_ALIGN), error);
}

void
ee_graph_arena_free (EeGraph *g, void *arena)
{
  if (arena && arena != g->arena)
    ee_backend_dealloc (g->be, arena);
}

int
ee_graph_n_inputs (EeGraph *g)
{
  int n = 0;

  for (guint i = 0; i < g->values->len; i++)
    n += value_at (g, (int)i)->kind == VALUE_INPUT;
  return n;
}

int
ee_graph_input_value (EeGraph *g, int k)
{
  for (guint i = 0; i < g->values->len; i++)
    if (value_at (g, (int)i)->kind == VALUE_INPUT && k-- == 0)
      return (int)i;
  return -1;
}

static void *
value_data (EeGraph *g, void *arena, int id)
{
  Value *v = value_at (g, id);
  Value *s = value_at (g, storage_of (g, id));
  guint8 *base = s->kind == VALUE_CONSTANT
                     ? s->own_data
                     : (guint8 *)(arena ? arena : g->arena) + s->arena_offset;

  return base + (v->kind == VALUE_VIEW ? v->byte_offset : 0);
}

gboolean
ee_graph_upload (EeGraph *g, void *arena, int input, const float *host,
                 GError **error)
{
  return ee_graph_upload_slot (g, arena, input, 0, 1, host, error);
}

gboolean
ee_graph_upload_slot (EeGraph *g, void *arena, int input, int slot, int n_slots,
                      const float *host, GError **error)
{
  Value *v;
  size_t part;

  g_return_val_if_fail (g->planned, FALSE);
  if (!value_valid (g, input) || value_at (g, input)->kind != VALUE_INPUT) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "upload: %d is not an input", input);
    return FALSE;
  }
  v = value_at (g, input);
  if (n_slots < 1 || slot < 0 || slot >= n_slots
      || v->desc.shape[0] % n_slots) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "upload: slot %d of %d does not divide input %s's first "
                 "dimension (%" G_GINT64_FORMAT ")",
                 slot, n_slots, v->name ? v->name : "?", v->desc.shape[0]);
    return FALSE;
  }
  part = v->desc.nbytes / (size_t)n_slots;
  return ee_backend_upload (
      g->be, (char *)value_data (g, arena, input) + (size_t)slot * part, host,
      part, error);
}

gboolean
ee_graph_run (EeGraph *g, void *arena, int first, int last, GError **error)
{
  g_return_val_if_fail (g->planned, FALSE);
  for (int i = MAX (first, 0); i < MIN (last, (int)g->nodes->len); i++) {
    Node *n = node_at (g, i);
    EeTensor in[16], out;
    const EeTensor *in_ptr[16];

    for (int k = 0; k < n->n_inputs; k++) {
      in[k].desc = value_at (g, n->inputs[k])->desc;
      in[k].data = value_data (g, arena, n->inputs[k]);
      in_ptr[k] = &in[k];
    }
    out.desc = value_at (g, n->output)->desc;
    out.data = value_data (g, arena, n->output);
    if (!ee_backend_op_enqueue (g->be, n->op, in_ptr, n->n_inputs, &out,
                                error)) {
      g_prefix_error (error, "op %d %s: ", i, n->name);
      return FALSE;
    }
  }
  return TRUE;
}

gboolean
ee_graph_download (EeGraph *g, void *arena, int output, float *host,
                   GError **error)
{
  Value *v;

  g_return_val_if_fail (g->planned, FALSE);
  if (!value_valid (g, output) || !value_at (g, output)->is_output
      || !ee_tensor_desc_is_contiguous (&value_at (g, output)->desc)
      || value_at (g, output)->desc.dtype != EE_DTYPE_F32) {
    g_set_error (error, EE_ERROR, EE_ERROR_ARGUMENT,
                 "download: value %d is not a contiguous F32 marked output",
                 output);
    return FALSE;
  }
  v = value_at (g, output);
  return ee_backend_download (g->be, host, value_data (g, arena, output),
                              v->desc.nbytes, error);
}

void
ee_fold_batchnorm (float *weight, float *bias, int64_t out_channels,
                   int64_t per_out, const float *mean, const float *var,
                   const float *gamma, const float *beta, float eps)
{
  for (int64_t o = 0; o < out_channels; o++) {
    /* in double so the folded layer matches conv -> BN to float rounding */
    double s = (gamma ? gamma[o] : 1.0) / sqrt ((double)var[o] + eps);
    for (int64_t k = 0; k < per_out; k++)
      weight[o * per_out + k] = (float)(weight[o * per_out + k] * s);
    bias[o] = (float)((bias[o] - mean[o]) * s + (beta ? beta[o] : 0.0));
  }
}
