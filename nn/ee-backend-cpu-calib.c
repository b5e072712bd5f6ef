/* gst-earlyexit: int8 calibration histograms and thresholds (see
 * ee-backend-cpu-calib.h). */
#include "ee-backend-cpu-calib.h"

#include <math.h>
#include <string.h>

/* The first range: small enough for any activation a network makes, a
 * power of two so that doubling keeps the bin edges exact. */
#define FIRST_RANGE (1.0 / (1 << 20))

void
ee_calib_hist_init (EeCalibHist *h)
{
  memset (h, 0, sizeof *h);
  h->range = FIRST_RANGE;
  h->min = INFINITY;
  h->max = -INFINITY;
}

/* Doubles the range: bins 2k and 2k + 1 become bin k. */
static void
grow (EeCalibHist *h)
{
  for (int k = 0; k < EE_CALIB_BINS / 2; k++)
    h->count[k] = h->count[2 * k] + h->count[2 * k + 1];
  memset (h->count + EE_CALIB_BINS / 2, 0,
          EE_CALIB_BINS / 2 * sizeof h->count[0]);
  h->range *= 2.0;
}

void
ee_calib_hist_add (EeCalibHist *h, const float *x, int64_t n)
{
  double top = 0.0, per_bin;

  for (int64_t i = 0; i < n; i++) {
    if (!isfinite (x[i]))
      continue;
    h->min = MIN (h->min, x[i]);
    h->max = MAX (h->max, x[i]);
    top = MAX (top, fabs ((double)x[i]));
  }
  while (h->range <= top)
    grow (h);
  per_bin = EE_CALIB_BINS / h->range; /* a power of two: exact */
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite (x[i]))
      continue;
    h->count[(int)(fabs ((double)x[i]) * per_bin)] += 1.0;
    h->total += 1.0;
  }
}

static double
percentile (const EeCalibHist *h, double p)
{
  double want = p * h->total, sum = 0.0;

  for (int k = 0; k < EE_CALIB_BINS; k++) {
    sum += h->count[k];
    if (sum >= want)
      return (k + 1) * (h->range / EE_CALIB_BINS);
  }
  return h->range;
}

/* KL (P || Q) of the histogram clipped at i bins against its quantisation
 * to `levels` steps; INFINITY where Q has no mass under P's. */
static double
divergence (const double *count, int i, double outliers, int levels, double *q)
{
  double p_sum = 0.0, q_sum = 0.0, kl = 0.0;
  double step = (double)i / levels;

  for (int j = 0; j < levels; j++) {
    int start = (int)floor (j * step);
    int end = j == levels - 1 ? i : (int)floor ((j + 1) * step);
    double total = 0.0;
    int nonzero = 0;

    for (int k = start; k < end; k++) {
      total += count[k];
      nonzero += count[k] != 0.0;
    }
    for (int k = start; k < end; k++)
      q[k] = count[k] != 0.0 ? total / nonzero : 0.0;
  }
  for (int k = 0; k < i; k++) {
    p_sum += count[k] + (k == i - 1 ? outliers : 0.0);
    q_sum += q[k];
  }
  for (int k = 0; k < i; k++) {
    double p = count[k] + (k == i - 1 ? outliers : 0.0);

    if (p == 0.0)
      continue;
    if (q[k] == 0.0)
      return INFINITY;
    kl += p / p_sum * log ((p / p_sum) / (q[k] / q_sum));
  }
  return kl;
}

static double
entropy (const EeCalibHist *h, int levels)
{
  double q[EE_CALIB_BINS], outliers = 0.0, best = INFINITY;
  int best_i = EE_CALIB_BINS;

  for (int k = levels; k < EE_CALIB_BINS; k++)
    outliers += h->count[k];
  for (int i = levels; i <= EE_CALIB_BINS; i++) {
    double kl = divergence (h->count, i, outliers, levels, q);

    if (kl < best) {
      best = kl;
      best_i = i;
    }
    if (i < EE_CALIB_BINS)
      outliers -= h->count[i];
  }
  return best_i * (h->range / EE_CALIB_BINS);
}

double
ee_calib_threshold (const EeCalibHist *h, EeCalibMethod method, double p,
                    int levels)
{
  if (h->total == 0.0 || !(h->max > 0.0 || h->min < 0.0))
    return 0.0;
  if (method == EE_CALIB_PERCENTILE)
    return percentile (h, p);
  return entropy (h, CLAMP (levels, 2, EE_CALIB_BINS));
}
