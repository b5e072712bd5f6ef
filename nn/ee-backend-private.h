/* gst-earlyexit: what the backends share (the CPU and CUDA backends'
 * private headers include it; nothing outside the backends needs it).
 *
 * ee-backend.c does the backend-independent part of preparing and running
 * an op: ee_backend_op_new checks the arguments and the output shape by
 * PyTorch's rules (ee_op_output_shape), asks the backend to check each
 * input (op_check_input), allocates the backend's EeOp with its EeOpHead
 * filled and hands it to the backend's op_init, which prepares the rest by
 * calling the builder of the op kind's family (the lists below);
 * ee_backend_op_enqueue checks the tensors against the head before the
 * backend's op_enqueue. */
#ifndef EE_BACKEND_PRIVATE_H
#define EE_BACKEND_PRIVATE_H

#include "ee-backend.h"

G_BEGIN_DECLS

/* What every backend's op keeps of its op_new call: the first member of
 * each backend's struct _EeOp, filled before op_init. */
typedef struct
{
  /* The description with its host parameter pointers and name cleared
   * (they may be freed once op_new returns) and alpha 0 read as 1. */
  EeOpDesc desc;
  int n_inputs;
  /* The output's shape by PyTorch's rules; its layout and data type are the
   * backend's. */
  int out_ndim;
  int64_t out_shape[EE_MAX_DIMS];
} EeOpHead;

/* The functions every backend's EeBackendVTable has, each named
 * <prefix>_<member>: a backend fills its table with EE_BACKEND_FUNCS
 * (prefix), plus name, caps, op_size and what it has of the optional
 * members, so that a function it lacks is a compile error, not a NULL
 * member. */
#define EE_BACKEND_FUNCS(p)                                                    \
  .free = p##_free, .alloc = p##_alloc, .dealloc = p##_dealloc,                \
  .upload = p##_upload, .download = p##_download,                              \
  .op_check_input = p##_op_check_input, .op_init = p##_op_init,                \
  .op_enqueue = p##_op_enqueue, .op_free = p##_op_free,                        \
  .event_new = p##_event_new, .event_record = p##_event_record,                \
  .event_query = p##_event_query, .event_sync = p##_event_sync,                \
  .event_elapsed_ms = p##_event_elapsed_ms, .event_free = p##_event_free,      \
  .sync = p##_sync

/* ---- builders ----
 *
 * A backend prepares each op kind with the builder of the kind's family,
 * <prefix>_<family>_new; EE_OP_KIND_BUILDERS gives the family of each kind
 * (X (a, b, KIND, family) for each kind, KIND without its EE_OP_). A
 * backend's private header declares its builders with
 * EE_OP_DECLARE_BUILDERS (its instance type, its prefix); its op_init calls
 * them through a table indexed by op kind, initialised with
 * EE_OP_BUILDER_TABLE (prefix); each builder is defined as
 * EE_OP_BUILDER (instance type, name) { ... }. A builder prepares
 * everything and describes the output, of op->head.out_shape; `d` still
 * has the host parameter pointers. */
#define EE_OP_BUILDER(Backend, name)                                           \
  gboolean name (Backend *be, EeOp *op, const EeOpDesc *d,                     \
                 const EeTensorDesc *const *in, EeTensorDesc *out,             \
                 GError **error)

#define EE_OP_KIND_BUILDERS(X, a, b)                                           \
  X (a, b, CONV2D, conv)                                                       \
  X (a, b, MAXPOOL, pool)                                                      \
  X (a, b, AVGPOOL, pool)                                                      \
  X (a, b, GLOBAL_AVGPOOL, global_avgpool)                                     \
  X (a, b, BATCHNORM, batchnorm)                                               \
  X (a, b, LINEAR, linear)                                                     \
  X (a, b, MATMUL, matmul)                                                     \
  X (a, b, LAYERNORM, layernorm)                                               \
  X (a, b, SOFTMAX, softmax)                                                   \
  X (a, b, GELU, eltwise)                                                      \
  X (a, b, RELU, eltwise)                                                      \
  X (a, b, ADD, binary)                                                        \
  X (a, b, MUL, binary)                                                        \
  X (a, b, FILM, film)                                                         \
  X (a, b, CONCAT, concat)                                                     \
  X (a, b, PATCHIFY, patchify)                                                 \
  X (a, b, UPSAMPLE_NEAREST, upsample)                                         \
  X (a, b, SUM, sum)                                                           \
  X (a, b, REORDER, reorder)

/* A family of several kinds is declared once per kind, as C allows. */
#define EE_OP_BUILDER_DECLARE(Backend, prefix, kind, family)                   \
  EE_OP_BUILDER (Backend, prefix##_##family##_new);
#define EE_OP_DECLARE_BUILDERS(Backend, prefix)                                \
  EE_OP_KIND_BUILDERS (EE_OP_BUILDER_DECLARE, Backend, prefix)

#define EE_OP_BUILDER_ENTRY(unused, prefix, kind, family)                      \
  [EE_OP_##kind] = prefix##_##family##_new,
#define EE_OP_BUILDER_TABLE(prefix)                                            \
  {                                                                            \
    EE_OP_KIND_BUILDERS (EE_OP_BUILDER_ENTRY, , prefix)                        \
  }

/* ---- errors and shapes ---- */

/* Sets an EE_ERROR_ARGUMENT error "<backend> backend: <op>: <message>". */
void ee_op_arg_errorv (GError **error, const char *backend, EeOpKind kind,
                       const char *format, va_list ap) G_GNUC_PRINTF (4, 0);
/* Sets the error `code` "<backend> backend: <op>: input <i> <message>" and
 * returns FALSE: how op_check_input refuses input i. */
gboolean ee_op_input_error (GError **error, int code, const char *backend,
                            EeOpKind kind, int i, const char *format, ...)
    G_GNUC_PRINTF (6, 7);
/* Checks what every backend requires of an op (the kind, the number of
 * inputs, the activation, inputs of 1 to EE_MAX_DIMS dims and at least one
 * element, the ranks and shapes the kind takes, its parameters) and gives
 * the output's shape by PyTorch's rules (*ndim, and shape of EE_MAX_DIMS).
 * What a backend checks besides is its own: data types, layouts, size
 * limits. Errors are EE_ERROR_ARGUMENT, worded as by ee_op_arg_errorv. */
gboolean ee_op_output_shape (const char *backend, const EeOpDesc *desc,
                             const EeTensorDesc *const *in, int n_in, int *ndim,
                             int64_t *shape, GError **error);
/* The padding after an input of `in` along spatial dim i (0: H, 1: W) that
 * a pooling output of `out` (ee_op_output_shape's) needs: more than pad[i]
 * where ceil mode adds a window. */
int64_t ee_op_pool_pad_end (const EeOpDesc *desc, int i, int64_t in,
                            int64_t out);

G_END_DECLS
#endif /* EE_BACKEND_PRIVATE_H */
