/*
 * s3_priv.h - the S3 protocol of the OBJ engine (obj_priv.h): its parameters (obj_config.c)
 * and its requests (s3_req.c). Never installed.
 */
#ifndef NIXL_S3_PRIV_H
#define NIXL_S3_PRIV_H

#include "obj_priv.h"

/* obj_config.c */
nixl_status_t obj_params_parse(const nixl_be_init_t *init, nixl_be_engine_t *eng);
void obj_params_free(nixl_be_engine_t *eng);
char *obj_url(const nixl_be_engine_t *eng, const char *key, size_t klen);

/* s3_req.c */
void s3_query(const nixl_be_engine_t *eng, int kind, const char *upload_id, size_t part, char *q,
              size_t qlen);
bool s3_build(nixl_be_engine_t *eng, obj_xfer_t *x);

#endif
