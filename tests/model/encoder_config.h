/* Shared by the image-encoder tests. */
#ifndef SAM2D_TEST_ENCODER_CONFIG_H
#define SAM2D_TEST_ENCODER_CONFIG_H

#include <stdbool.h>

#include "sam2d/config.h"

/* The fields the image encoder reads must agree between two configs. */
static inline bool encoder_fields_equal(const sam2d_model_config *a, const sam2d_model_config *b) {
    bool ok = a->embed_dim == b->embed_dim && a->num_heads == b->num_heads && a->num_stages == b->num_stages &&
              a->n_global_att_blocks == b->n_global_att_blocks && a->q_pool == b->q_pool &&
              a->q_stride[0] == b->q_stride[0] && a->q_stride[1] == b->q_stride[1] && a->mlp_ratio == b->mlp_ratio &&
              a->dim_mul == b->dim_mul && a->head_mul == b->head_mul && a->d_model == b->d_model &&
              a->n_fpn_top_down_levels == b->n_fpn_top_down_levels && a->scalp == b->scalp &&
              a->neck_pos_num_feats == b->neck_pos_num_feats && a->neck_pos_temperature == b->neck_pos_temperature &&
              a->neck_pos_normalize == b->neck_pos_normalize && a->image_size == b->image_size &&
              a->use_high_res_features_in_sam == b->use_high_res_features_in_sam &&
              a->window_pos_embed_bkg_spatial_size[0] == b->window_pos_embed_bkg_spatial_size[0] &&
              a->window_pos_embed_bkg_spatial_size[1] == b->window_pos_embed_bkg_spatial_size[1];
    for (int i = 0; ok && i < a->num_stages; i++)
        ok = a->stages[i] == b->stages[i] && a->window_spec[i] == b->window_spec[i] &&
             a->backbone_channel_list[i] == b->backbone_channel_list[i];
    for (int i = 0; ok && i < a->n_global_att_blocks; i++) ok = a->global_att_blocks[i] == b->global_att_blocks[i];
    for (int i = 0; ok && i < a->n_fpn_top_down_levels; i++) ok = a->fpn_top_down_levels[i] == b->fpn_top_down_levels[i];
    return ok;
}

#endif
