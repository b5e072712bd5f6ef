/* gst-earlyexit: the backend interface.
 *
 * A backend is a table of functions. Ops are *prepared* once at model load
 * (op_new: shapes fixed, primitives/algorithms chosen, weights copied into
 * backend memory in the backend's preferred layout) and then *enqueued* per
 * frame (op_enqueue) on the backend's single stream. Enqueue calls return at
 * once on an asynchronous backend (CUDA); the CPU backend may execute them
 * eagerly. The only calls that wait are event_sync and sync. Results become
 * visible to the host only through download + an event or sync.
 *
 * Memory: every data pointer handed to op_enqueue is backend memory (alloc).
 * Host pointers appear only in upload/download and in EeOpDesc parameters,
 * which are copied during op_new and may be freed afterwards.
 *
 * Thread safety: a backend instance (one stream) is used by one thread at a
 * time, unless it declares EE_BACKEND_CAP_CONCURRENT. Several instances may
 * run concurrently. */
#ifndef EE_BACKEND_H
#define EE_BACKEND_H

#include <stdarg.h>

#include "ee-tensor.h"

G_BEGIN_DECLS

typedef struct _EeBackend EeBackend;
typedef struct _EeOp EeOp;
typedef struct _EeEvent EeEvent;

/* Numeric precision of a backend instance, chosen at creation. */
typedef enum
{
  EE_PRECISION_FP32, /* reference: fp32 storage and math, no TF32 */
  EE_PRECISION_TF32, /* fp32 storage, TF32 tensor cores in conv/GEMM */
  EE_PRECISION_FP16, /* fp16 storage, fp32 accumulation */
  EE_PRECISION_BF16, /* bf16 storage, fp32 accumulation */
  EE_PRECISION_INT8, /* CPU: int8 convolutions (calibrated), int32
                        accumulation; other ops fp32 */
} EePrecision;

/* "fp32", "tf32", "fp16", "bf16", "int8"; FALSE for anything else. */
gboolean ee_precision_from_string (const char *name, EePrecision *precision);
const char *ee_precision_name (EePrecision precision);

typedef enum
{
  EE_ACT_NONE,
  EE_ACT_RELU,
  EE_ACT_GELU, /* exact: 0.5 x (1 + erf(x / sqrt 2)) */
} EeActivation;

/* Inputs and output of each op kind. "x" is inputs[0]. Shapes are NCHW unless
 * said. */
typedef enum
{
  EE_OP_CONV2D,  /* x (N,C,H,W) -> (N,out_channels,OH,OW); weight (O,C,KH,KW),
                    bias (O) or NULL; act */
  EE_OP_MAXPOOL, /* x -> pooled; kernel, stride, pad, ceil_mode (PyTorch
                    output-size rules) */
  EE_OP_AVGPOOL, /* as MAXPOOL, plus count_include_pad */
  EE_OP_GLOBAL_AVGPOOL, /* x (N,C,H,W) -> (N,C,1,1) */
  EE_OP_BATCHNORM, /* x (N,C,H,W), inference: (x-mean)/sqrt(var+eps)*gamma+beta;
                      weight=gamma, bias=beta (NULL = 1/0); act */
  EE_OP_LINEAR, /* x (..., K) contiguous -> (..., out_features); weight (M,K),
                   bias (M) or NULL; act */
  EE_OP_MATMUL, /* x (B,M,K), inputs[1] (B,K,N), any strides -> (B,M,N)
                   contiguous, times alpha */
  EE_OP_LAYERNORM, /* over the last dim D; weight=gamma (D), bias=beta (D), NULL
                      = 1/0; eps */
  EE_OP_SOFTMAX,   /* over the last dim */
  EE_OP_GELU,      /* exact erf GELU, elementwise */
  EE_OP_RELU,      /* elementwise */
  EE_OP_ADD,       /* x + inputs[1], same shape */
  EE_OP_MUL,       /* x * inputs[1], same shape */
  EE_OP_FILM,     /* x (N,C,H,W), gamma inputs[1] (N,C), beta inputs[2] (N,C) ->
                     gamma*x+beta per channel; act */
  EE_OP_CONCAT,   /* n_inputs tensors (N,Ci,H,W) -> (N,sum Ci,H,W) */
  EE_OP_PATCHIFY, /* x (N,C,H,W) -> (N,(H/P)(W/P),P*P*C); tokens row-major over
                     the patch grid, vector index (py*P+px)*C+c */
  EE_OP_UPSAMPLE_NEAREST, /* x (N,C,H,W) -> (N,C,H*factor,W*factor) */
  EE_OP_SUM, /* x (N,...) -> (N,1): alpha * sum of all elements of each batch
                item */
  EE_OP_REORDER, /* x in any layout -> the same shape, plain contiguous */
  EE_OP_N_KINDS
} EeOpKind;

typedef struct
{
  EeOpKind kind;
  EeActivation act; /* fused activation: CONV2D, BATCHNORM, LINEAR, FILM */

  /* Convolution and pooling: [0] = height, [1] = width. Padding is symmetric.
   */
  int kernel[2]; /* pools only; conv kernel comes from weight_shape */
  int stride[2];
  int pad[2];
  int dilation[2];            /* CONV2D; 1 = dense (PyTorch convention) */
  gboolean ceil_mode;         /* pools */
  gboolean count_include_pad; /* AVGPOOL */

  int patch;   /* PATCHIFY */
  int factor;  /* UPSAMPLE_NEAREST */
  float eps;   /* LAYERNORM, BATCHNORM */
  float alpha; /* MATMUL, SUM scale; 0 is taken as 1 */

  /* Parameters: host float32, row-major, copied during op_new. */
  int64_t out_features; /* LINEAR: M; CONV2D: O */
  int kernel_size[2];   /* CONV2D: KH, KW of weight (O,C,KH,KW) */
  const float *weight;
  const float *bias;
  const float *mean; /* BATCHNORM */
  const float *var;  /* BATCHNORM */

  /* The op's name (errors, calibration), set by the graph; may be NULL.
   * Not kept after op_new. */
  const char *name;
  /* CONV2D in an int8 instance: the calibrated range of input 0, in_min to
   * in_max (in_min < 0: signed; in_max 0: not calibrated), and the largest
   * output after act that int8 must hold (0: the output stays float). The
   * graph fills them from the model's int8 scales (ee_graph_set_int8). */
  float in_min, in_max, out_max;
} EeOpDesc;

/* What a backend declares about itself (EeBackendVTable.caps). */
typedef enum
{
  /* Ops run inside op_enqueue and an event is complete once recorded (the
   * CPU backend): a scheduler reads the clock instead of waiting. */
  EE_BACKEND_CAP_EAGER = 1 << 0,
  /* Several threads may call upload, op_enqueue, download and event_record
   * at once, each on its own tensors (frames in their own arenas); one op
   * runs for one thread at a time. Each thread may say how many cores its
   * calls use (set_thread_cores). */
  EE_BACKEND_CAP_CONCURRENT = 1 << 1,
} EeBackendCaps;

typedef struct
{
  const char *name; /* "cpu", "cuda" */
  guint caps;       /* EeBackendCaps */
  void (*free) (EeBackend *be);

  void *(*alloc) (EeBackend *be, size_t nbytes, GError **error);
  void (*dealloc) (EeBackend *be, void *ptr);
  /* Enqueued copies. The host buffer must stay valid until a later
   * event_sync/sync. */
  gboolean (*upload) (EeBackend *be, void *dst, const void *host_src,
                      size_t nbytes, GError **error);
  gboolean (*download) (EeBackend *be, void *host_dst, const void *src,
                        size_t nbytes, GError **error);

  /* Ops are prepared by ee_backend_op_new and enqueued by
   * ee_backend_op_enqueue, which do what every backend does
   * (ee-backend-private.h) and call these. The backend's struct _EeOp
   * is op_size bytes and starts with an EeOpHead. */
  size_t op_size;
  /* What the backend requires of input i of an op of `kind` beyond the
   * checks all backends share: data types, layouts, size limits. */
  gboolean (*op_check_input) (EeBackend *be, EeOpKind kind, int i,
                              const EeTensorDesc *t, GError **error);
  /* Prepares an op for fixed input descriptions and fills *out with the
   * output description (shape, layout, nbytes) the backend will produce.
   * The op arrives zeroed but for its head, filled and checked; on
   * failure it is handed to op_free. */
  gboolean (*op_init) (EeBackend *be, EeOp *op, const EeOpDesc *desc,
                       const EeTensorDesc *const *inputs, EeTensorDesc *out,
                       GError **error);
  /* Runs or enqueues one execution of an op, given data for every input
   * and the output. */
  gboolean (*op_enqueue) (EeBackend *be, EeOp *op,
                          const EeTensor *const *inputs, int n_inputs,
                          const EeTensor *out, GError **error);
  void (*op_free) (EeBackend *be, EeOp *op);

  EeEvent *(*event_new) (EeBackend *be, GError **error);
  /* Marks the point in the stream reached by everything enqueued so far. */
  gboolean (*event_record) (EeBackend *be, EeEvent *ev, GError **error);
  /* TRUE once all work before the record has finished; never blocks. */
  gboolean (*event_query) (EeBackend *be, EeEvent *ev);
  gboolean (*event_sync) (EeBackend *be, EeEvent *ev, GError **error);
  /* Milliseconds between two recorded, finished events. */
  gboolean (*event_elapsed_ms) (EeBackend *be, EeEvent *start, EeEvent *end,
                                double *ms, GError **error);
  void (*event_free) (EeBackend *be, EeEvent *ev);
  gboolean (*sync) (EeBackend *be, GError **error);
  /* EE_BACKEND_CAP_CONCURRENT: the cores the calling thread's later calls
   * use, at most the instance's own count; <= 0: the instance's count. */
  void (*set_thread_cores) (EeBackend *be, int cores);
} EeBackendVTable;

struct _EeBackend
{
  const EeBackendVTable *vt;
};

/* Thin wrappers so call sites read as verbs. */
static inline gboolean
ee_backend_has_cap (EeBackend *be, EeBackendCaps cap)
{
  return (be->vt->caps & cap) != 0;
}

static inline void *
ee_backend_alloc (EeBackend *be, size_t nbytes, GError **error)
{
  return be->vt->alloc (be, nbytes, error);
}

static inline void
ee_backend_dealloc (EeBackend *be, void *ptr)
{
  be->vt->dealloc (be, ptr);
}

static inline gboolean
ee_backend_upload (EeBackend *be, void *dst, const void *src, size_t n,
                   GError **error)
{
  return be->vt->upload (be, dst, src, n, error);
}

static inline gboolean
ee_backend_download (EeBackend *be, void *dst, const void *src, size_t n,
                     GError **error)
{
  return be->vt->download (be, dst, src, n, error);
}

/* Prepares an op for fixed input descriptions; fills *out with the output
 * description (shape, layout, nbytes) the backend will produce. Inputs in a
 * backend layout must come from ops of the same backend instance. */
EeOp *ee_backend_op_new (EeBackend *be, const EeOpDesc *desc,
                         const EeTensorDesc *const *in, int n_in,
                         EeTensorDesc *out, GError **error);
/* Enqueues one execution. Tensors must match the descriptions given to
 * op_new. For elementwise ops (RELU, GELU, ADD, MUL, FILM) out may alias
 * inputs[0]. */
gboolean ee_backend_op_enqueue (EeBackend *be, EeOp *op,
                                const EeTensor *const *in, int n_in,
                                const EeTensor *out, GError **error);

static inline void
ee_backend_op_free (EeBackend *be, EeOp *op)
{
  if (op)
    be->vt->op_free (be, op);
}

static inline gboolean
ee_backend_sync (EeBackend *be, GError **error)
{
  return be->vt->sync (be, error);
}

static inline void
ee_backend_set_thread_cores (EeBackend *be, int cores)
{
  if (be->vt->set_thread_cores)
    be->vt->set_thread_cores (be, cores);
}

static inline void
ee_backend_free (EeBackend *be)
{
  if (be)
    be->vt->free (be);
}

/* An EeOpDesc with neutral defaults (stride 1, dilation 1, alpha 1). */
EeOpDesc ee_op_desc_init (EeOpKind kind);
const char *ee_op_kind_name (EeOpKind kind);
/* Multiply-adds x 2 (FLOPs) of one execution; 0 for data movement. */
double ee_op_flops (const EeOpDesc *desc, const EeTensorDesc *const *in,
                    int n_in, const EeTensorDesc *out);

/* The CPU backend (oneDNN). n_threads <= 0: all cores. */
EeBackend *ee_backend_cpu_new (int n_threads, GError **error);
/* The same in fp32 or bf16 (bf16 convolutions and large inner products, fp32
 * accumulation; other ops in fp32). Other precisions, and bf16 on a CPU
 * oneDNN has no bf16 kernels for, are EE_ERROR_UNSUPPORTED. */
EeBackend *ee_backend_cpu_new_full (int n_threads, EePrecision precision,
                                    GError **error);

/* Calibration (earlyexit calibrate): after each CONV2D of an fp32 CPU
 * instance runs, `fn` gets the op's name and its input 0 and output
 * (after act) as dense float arrays, valid during the call only. NULL
 * stops. Ops prepared before the call are observed too. */
typedef void (*EeConvObserver) (const char *op_name, const float *input,
                                int64_t n_input, const float *output,
                                int64_t n_output, gpointer data);
void ee_backend_cpu_set_conv_observer (EeBackend *be, EeConvObserver fn,
                                       gpointer data);

G_END_DECLS
#endif /* EE_BACKEND_H */
