/* gst-earlyexit: internals shared by the files of the CPU backend.
 *
 * ee-backend-cpu.c holds the backend object, memory, events and the op
 * plumbing (input adapters, primitive creation, execution);
 * ee-backend-cpu-dnnl.c builds the ops that are oneDNN primitives and
 * ee-backend-cpu-loops.c the ones oneDNN lacks, as OpenMP loops. */
#ifndef EE_BACKEND_CPU_PRIVATE_H
#define EE_BACKEND_CPU_PRIVATE_H

#include "ee-backend-private.h"

#include <oneapi/dnnl/dnnl.h>
#include <string.h>

G_BEGIN_DECLS

/* What each thread that runs ops of an instance has of its own: a oneDNN
 * stream and a scratchpad for the primitives it runs, grown to the largest
 * one asked for. Threads are told apart by their GThread's address (that of
 * an ended thread may come again, for a new thread: it then takes over). */
typedef struct
{
  GThread *thread;
  dnnl_stream_t stream;
  void *scratchpad;
  size_t scratchpad_size;
} CpuThread;

typedef struct
{
  EeBackend parent;
  int n_threads;
  /* bf16: convolutions compute in bf16 (fp32 accumulation) and hand bf16
   * tensors on; large inner products take bf16 weights. */
  gboolean bf16;
  /* int8: convolutions take u8 or s8 sources and s8 weights (int32
   * accumulation) and hand u8 tensors on after a ReLU whose range the
   * model's calibration gives, bf16 ones otherwise; pooling keeps int8;
   * other ops compute in fp32. */
  gboolean int8;
  EeConvObserver observer; /* calibration (fp32 instances) */
  gpointer observer_data;
  dnnl_engine_t engine;
  GMutex lock;        /* guards `threads` (the array, not the CpuThreads) */
  GPtrArray *threads; /* CpuThread, one per thread that ran ops */
} CpuBackend;

/* A primitive with its argument list. Argument memories are created at
 * op_new with no data; the data handles are bound before each execution. */
typedef struct
{
  dnnl_primitive_t prim;
  dnnl_exec_arg_t *args;
  int n_args;
  int max_args;
  dnnl_memory_t scratchpad; /* NULL when the primitive needs none */
  size_t scratchpad_size;
} CpuPrim;

/* How an op reads one input: where it is, or after a reorder into a
 * buffer the op owns (a blocked tensor fed to an op that wants another
 * layout, a strided view fed to an op that wants it dense). */
typedef struct
{
  /* Quantisation scales (int8 value = real value x scale; 1 for floats) of
   * the input as it arrives and as the op reads it: a reorder between them
   * scales by want_scale / have_scale. */
  float have_scale, want_scale;
  CpuPrim reorder;    /* prim NULL: read in place */
  dnnl_memory_t from; /* reorder source, bound to the input data */
  void *scratch;      /* reorder destination */
} CpuInput;

/* A 4-d tensor as the loops address it: element (n, c, h, w) lies at
 * n*sn + (c / block)*sc + h*sh + w*sw + c % block. block is 1 for plain
 * tensors and for oneDNN's NHWC (sc = 1), 8 or 16 for nChw8c/nChw16c,
 * whose channels are padded up to cpad with zeros. Elements are float, or
 * bf16 (the upper half of a float) when bf16 is set. */
typedef struct
{
  int64_t n, c, h, w;
  int64_t sn, sc, sh, sw;
  int64_t block;
  int64_t cpad;
  gboolean bf16;
} CpuView;

/* What layout_desc of a backend-layout tensor points at: oneDNN's
 * description, first so that the pointer is also one to it, and for U8 and
 * S8 tensors the scale (int8 value = real value x scale). */
typedef struct
{
  dnnl_memory_desc_t md;
  float scale;
} CpuLayout;

typedef void (*CpuLoopFunc) (const EeOp *op, const void *const *in, void *out);

struct _EeOp
{
  EeOpHead head;
  /* Held while the op runs: its memory objects, input buffers and `ptrs`
   * serve one execution at a time (EE_BACKEND_CAP_CONCURRENT). */
  GMutex lock;
  CpuInput *in; /* n_inputs */
  void **ptrs;  /* n_inputs: where each input is read this run */

  /* Primitive ops: the main primitive reads input i through src[i] and
   * writes dst; act is an activation it could not fuse, run in place. */
  dnnl_memory_t *src; /* n_inputs */
  dnnl_memory_t dst;
  CpuPrim main;
  CpuPrim act;

  /* Loop ops */
  CpuLoopFunc loop;
  CpuView view[3]; /* of inputs 0..2 */
  CpuView out_view;

  CpuLayout out_layout; /* layout_desc of a backend-layout output */
  char *name;           /* EeOpDesc.name, or NULL */
  GPtrArray *mems;      /* every memory object of the op */
  GPtrArray *bufs;      /* every buffer the op owns */
};

#define CPU_ALIGN 64

static inline float
cpu_bf16_to_f32 (uint16_t b)
{
  uint32_t u = (uint32_t)b << 16;
  float f;

  memcpy (&f, &u, sizeof f);
  return f;
}

/* Round to nearest even, as oneDNN rounds; NaN stays NaN. */
static inline uint16_t
cpu_f32_to_bf16 (float f)
{
  uint32_t u;

  memcpy (&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u)
    return (uint16_t)((u >> 16) | 0x40u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* oneDNN's data type for a tensor's dtype (the backend takes F32, BF16, U8
 * and S8). */
static inline dnnl_data_type_t
cpu_dt (EeDType dtype)
{
  switch (dtype) {
    case EE_DTYPE_BF16:
      return dnnl_bf16;
    case EE_DTYPE_U8:
      return dnnl_u8;
    case EE_DTYPE_S8:
      return dnnl_s8;
    default:
      return dnnl_f32;
  }
}

static inline gboolean
cpu_dt_is_int8 (dnnl_data_type_t dt)
{
  return dt == dnnl_u8 || dt == dnnl_s8;
}

/* The data type an op that computes in floating point reads a tensor of
 * dtype in: its own, fp32 for int8. */
static inline dnnl_data_type_t
cpu_float_dt (EeDType dtype)
{
  return dtype == EE_DTYPE_BF16 ? dnnl_bf16 : dnnl_f32;
}

gboolean cpu_check (dnnl_status_t st, const EeOp *op, const char *call,
                    GError **error);
/* Checks a oneDNN call, naming the op and the function in the error. */
#define CPU_CHECK(op, error, fn, ...)                                          \
  cpu_check (fn (__VA_ARGS__), (op), #fn, (error))

void *cpu_buffer_new (EeOp *op, size_t nbytes, GError **error);
dnnl_memory_t cpu_memory_new (CpuBackend *be, EeOp *op,
                              const dnnl_memory_desc_t *md, void *data,
                              GError **error);

/* The oneDNN description of a tensor: its own for backend layouts, its
 * strides for plain ones. */
gboolean cpu_md_of (const EeOp *op, const EeTensorDesc *t,
                    dnnl_memory_desc_t *md, GError **error);
void cpu_md_dense (int ndim, const int64_t *shape, dnnl_data_type_t dt,
                   dnnl_memory_desc_t *md);
void cpu_md_any (int ndim, const int64_t *shape, dnnl_data_type_t dt,
                 dnnl_memory_desc_t *md);
gboolean cpu_md_is_dense (const dnnl_memory_desc_t *md);
/* Fills *out from md; a layout other than dense row-major, and any bf16 or
 * int8 tensor, becomes EE_LAYOUT_BACKEND pointing at op->out_layout, with
 * `scale` for int8 ones. */
void cpu_out_from_md (EeOp *op, const dnnl_memory_desc_t *md,
                      EeTensorDesc *out);
void cpu_out_from_md_scaled (EeOp *op, const dnnl_memory_desc_t *md,
                             float scale, EeTensorDesc *out);

/* Makes input i readable in layout `want`: in place when its layout `have`
 * is already that, else through a reorder into an op-owned buffer, which
 * scales between op->in[i].have_scale and want_scale when either data type
 * is int8. */
gboolean cpu_input_setup (CpuBackend *be, EeOp *op, int i,
                          const dnnl_memory_desc_t *have,
                          const dnnl_memory_desc_t *want, GError **error);
/* As cpu_input_setup, with `want` the dense row-major layout of the
 * input's shape in data type dt, for inputs that are not already that. */
gboolean cpu_input_dense (CpuBackend *be, EeOp *op, int i,
                          const EeTensorDesc *t, dnnl_data_type_t dt,
                          GError **error);

/* An attribute with a user scratchpad, the activation as a post-op and,
 * unless 1, alpha as output scale; NULL with *error set on failure. */
dnnl_primitive_attr_t cpu_attr_new (const EeOp *op, EeActivation act,
                                    float alpha, GError **error);
gboolean cpu_prim_create (CpuBackend *be, EeOp *op, CpuPrim *p,
                          const_dnnl_primitive_desc_t pd, int max_args,
                          GError **error);
void cpu_prim_arg (CpuPrim *p, int arg, dnnl_memory_t mem);
/* Copies a host parameter (row-major, `user` layout) into an op-owned
 * buffer in the layout the primitive asks for, returning its memory. */
dnnl_memory_t cpu_param_new (CpuBackend *be, EeOp *op,
                             const dnnl_memory_desc_t *user,
                             const dnnl_memory_desc_t *want, const float *host,
                             GError **error);
/* The same for s8 convolution weights (O,...): each output channel o
 * scaled by scales[o] (int8 = round (w x scale)). */
dnnl_memory_t cpu_param_s8_new (CpuBackend *be, EeOp *op,
                                const dnnl_memory_desc_t *user,
                                const dnnl_memory_desc_t *want,
                                const float *host, int64_t o,
                                const float *scales, GError **error);
/* Runs an activation oneDNN could not fuse in place on the output. */
gboolean cpu_act_setup (CpuBackend *be, EeOp *op, EeActivation act,
                        const dnnl_memory_desc_t *md, GError **error);

/* A CpuView of a tensor, plain or channel-blocked; FALSE for other
 * layouts. ndim < 4 tensors get leading unit dims after N. */
gboolean cpu_view_of (const EeTensorDesc *t, CpuView *v);
/* A dense NCHW view of floats. */
void cpu_view_dense (CpuView *v, int64_t n, int64_t c, int64_t h, int64_t w);

/* Builders, one per op family (ee-backend-private.h): cpu_<family>_new.
 * ee_op_output_shape has checked the arguments and cpu_op_check_input in
 * ee-backend-cpu.c the data types and layouts. */
typedef EE_OP_BUILDER (CpuBackend, (*CpuBuilder));
EE_OP_DECLARE_BUILDERS (CpuBackend, cpu)

/* AVGPOOL windows that run past the padding (ceil mode, padding counted):
 * PyTorch divides by the part inside input + padding, oneDNN by the whole
 * kernel. */
gboolean cpu_avgpool_loop_new (CpuBackend *be, EeOp *op,
                               const EeTensorDesc *const *in, EeTensorDesc *out,
                               GError **error);

/* Loop ops read inputs they cannot address through a reorder to dense
 * float. */
gboolean cpu_loop_input (CpuBackend *be, EeOp *op, int i, const EeTensorDesc *t,
                         GError **error);

G_END_DECLS
#endif /* EE_BACKEND_CPU_PRIVATE_H */
