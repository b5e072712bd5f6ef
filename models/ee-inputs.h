/* gst-earlyexit: a model's inputs from files, for the command-line tool:
 * images (PNG, JPEG), audio (WAV) and tensors already computed (.npy). */
#ifndef EE_INPUTS_H
#define EE_INPUTS_H

#include "ee-model.h"

G_BEGIN_DECLS

/* The network input (1, 3, H, W): a PNG or JPEG resized bilinearly to the
 * model's input and preprocessed as its file says, or a .npy float tensor of
 * that shape, already preprocessed. g_free the result. */
float *ee_input_image (EeModel *m, const char *path, GError **error);

/* The features `params` asks for (NULL: VGGish log-mel) of the first window
 * of a WAV at the features' rate (shorter files are zero-padded with a
 * warning on stderr), or a .npy of them. coverage: the fraction of the
 * window the file filled (1 for a .npy). g_free the result. */
float *ee_input_audio (const char *path, const EeFeatureParams *params,
                       double *coverage, GError **error);

G_END_DECLS
#endif /* EE_INPUTS_H */
