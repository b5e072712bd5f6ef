/* gst-earlyexit: int8 calibration of the CPU backend's convolutions.
 *
 * A histogram of absolute values that grows with the data: 2048 bins over
 * [0, R), R a power of two that doubles (pairs of bins merging) when a value
 * reaches it, so that every bin edge is exact and the histogram of all the
 * values added equals the one made in a single pass over [0, R). From it, a
 * clipping threshold T for int8 by one of two methods:
 *
 * - percentile: the upper edge of the bin where the count of |x| reaches
 *   the fraction p of all values;
 * - entropy (TensorRT's): the T = i bins of width that minimises the
 *   Kullback-Leibler divergence between the histogram clipped at i (the
 *   values above added to bin i - 1) and the same after quantisation to
 *   `levels` steps (each step spreading its count over its non-empty
 *   bins), for i from `levels` to 2048. */
#ifndef EE_BACKEND_CPU_CALIB_H
#define EE_BACKEND_CPU_CALIB_H

#include "ee-common.h"

G_BEGIN_DECLS

#define EE_CALIB_BINS 2048

typedef struct
{
  double range;                /* R; 0 before any non-zero value */
  double count[EE_CALIB_BINS]; /* of |x| in [k R / 2048, (k+1) R / 2048) */
  double total;
  float min, max; /* of x itself */
} EeCalibHist;

typedef enum
{
  EE_CALIB_PERCENTILE,
  EE_CALIB_ENTROPY,
} EeCalibMethod;

void ee_calib_hist_init (EeCalibHist *h);
void ee_calib_hist_add (EeCalibHist *h, const float *x, int64_t n);
/* The threshold for int8 values of `levels` steps (127 for s8, 255 for u8);
 * p is the percentile method's fraction (0.9999 = 99.99%). 0 for an empty
 * or all-zero histogram. */
double ee_calib_threshold (const EeCalibHist *h, EeCalibMethod method, double p,
                           int levels);

G_END_DECLS
#endif /* EE_BACKEND_CPU_CALIB_H */
