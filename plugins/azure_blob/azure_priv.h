/*
 * azure_priv.h - the Azure Blob protocol of the object-store engine (plugins/obj/obj_priv.h):
 * its parameters (azure_config.c) and its requests, SharedKey-signed or with a SAS
 * (azure_req.c). Never installed.
 */
#ifndef NIXL_AZURE_PRIV_H
#define NIXL_AZURE_PRIV_H

#include "obj_priv.h"

#define AZ_NAME "AZURE_BLOB"
#define AZ_VERSION "2021-08-06" /* x-ms-version of every request */
#define AZ_MAX_BLOCKS 50000u    /* blocks of one blob */
#define AZ_KEY_MAX 64           /* bytes of a decoded account key */

typedef struct az_params {
    char *account;   /* the storage account's name */
    char *base;      /* scheme://host[:port][/account] of the account, no trailing '/' */
    char *container;
    char *sas;       /* a SAS token (no leading '?'), or NULL */
    unsigned char key[AZ_KEY_MAX]; /* the account key, decoded (SharedKey), when key_len */
    size_t key_len;
    const char *auth; /* "SAS", "SharedKey" or "anonymous", for messages */
} az_params_t;

/* azure_config.c */
nixl_status_t az_params_parse(const nixl_be_init_t *init, nixl_be_engine_t *eng);
void az_params_free(nixl_be_engine_t *eng);
char *az_url(const nixl_be_engine_t *eng, const char *key, size_t klen);

/* azure_req.c */
void az_query(const nixl_be_engine_t *eng, int kind, const char *upload_id, size_t part, char *q,
              size_t qlen);
bool az_build(nixl_be_engine_t *eng, obj_xfer_t *x);

#endif
