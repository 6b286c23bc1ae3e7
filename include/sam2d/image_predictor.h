/* Image predictor (SAM2ImagePredictor): set an image once, then predict masks
 * for many prompts (points + labels, a box, a low-res mask from an earlier
 * prediction; one or three masks; logits or binary masks at the image's size).
 *
 * Thread safety: one predictor is used by one thread at a time; any number of
 * predictors (and video sessions) may share one sam2d_model. */
#ifndef SAM2D_IMAGE_PREDICTOR_H
#define SAM2D_IMAGE_PREDICTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "sam2d/model.h"
#include "sam2d/sam2d.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sam2d_image_predictor sam2d_image_predictor;

typedef struct {
    /* Resize to the model's square input with antialias (current torchvision's default);
     * false reproduces torchvision < 0.17 (the golden data). */
    bool antialias;
    int max_dimension; /* refuse images wider or taller than this; 0 = no limit */
} sam2d_image_predictor_params;

sam2d_image_predictor_params sam2d_image_predictor_default_params(void);

/* The model must outlive the predictor. params may be NULL (defaults). */
sam2d_status sam2d_image_predictor_create(sam2d_model *model, const sam2d_image_predictor_params *params,
                                          sam2d_image_predictor **out);
void sam2d_image_predictor_free(sam2d_image_predictor *p);

/* rgb: (height, width, 3) uint8. Runs the image encoder and caches the features. */
sam2d_status sam2d_image_predictor_set_image(sam2d_image_predictor *p, const uint8_t *rgb, int width, int height);

typedef struct {
    const float *points;     /* (n_points, 2) x, y in image pixels, or NULL */
    const int *labels;       /* (n_points): 1 foreground, 0 background */
    int n_points;
    const float *box;        /* (4) x0, y0, x1, y1 in image pixels, or NULL */
    const float *mask_input; /* (L, L) low-res logits (L = low_res_size), e.g. an earlier result's, or NULL */
    bool multimask;          /* three masks instead of one */
    bool return_logits;      /* masks as logits instead of 0/1 */
} sam2d_image_prompt;

typedef struct {
    int num_masks;             /* 3 when multimask, else 1 */
    int height, width;         /* the image's size */
    int low_res;               /* L = image_size / 4 */
    const float *masks;        /* (num_masks, height, width): logits, or 0.0/1.0 (logit > 0) */
    const float *iou;          /* (num_masks) predicted IoU */
    const float *low_res_masks;/* (num_masks, L, L) logits clamped to [-32, 32] */
} sam2d_image_result;

/* Buffers of the result belong to the predictor and stay valid until the next
 * predict, set_image or free. At least one point, a box or a mask is needed. */
sam2d_status sam2d_image_predictor_predict(sam2d_image_predictor *p, const sam2d_image_prompt *prompt,
                                           sam2d_image_result *res);

/* L = image_size / 4: side of low-res masks and of mask_input. */
int sam2d_image_predictor_low_res_size(const sam2d_image_predictor *p);

/* The cached features of the current image, channels-last: image_embed (S/16 * S/16, C) with
 * no_mem_embed added; high_res0 ((S/4)^2, C/8), high_res1 ((S/8)^2, C/4). Any pointer may be NULL.
 * SAM2D_ERR_STATE when no image is set. */
sam2d_status sam2d_image_predictor_features(const sam2d_image_predictor *p, const float **image_embed,
                                            const float **high_res0, const float **high_res1);

/* The current image as the encoder saw it: (S, S, 3) resized and normalised, channels-last.
 * SAM2D_ERR_STATE when no image is set. */
sam2d_status sam2d_image_predictor_input(const sam2d_image_predictor *p, const float **image);

#ifdef __cplusplus
}
#endif
#endif
