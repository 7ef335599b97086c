/*
 * azure_priv.h - the Azure Blob protocol of the object-store engine (plugins/obj/obj_priv.h):
 * its parameters (azure_config.c) and its requests, SharedKey-signed, with a SAS, or with a
 * Microsoft Entra ID (Azure AD) bearer token (azure_req.c; the tokens: azure_ad.c). Never
 * installed.
 */
#ifndef NIXL_AZURE_PRIV_H
#define NIXL_AZURE_PRIV_H

#include "obj_priv.h"

#define AZ_NAME "AZURE_BLOB"
#define AZ_VERSION "2021-08-06" /* x-ms-version of every request */
#define AZ_MAX_BLOCKS 50000u    /* blocks of one blob */
#define AZ_KEY_MAX 64           /* bytes of a decoded account key */

/* An Azure AD credential and its current token (azure_ad.c). */
struct az_ad;

typedef struct az_params {
    char *account;   /* the storage account's name */
    char *base;      /* scheme://host[:port][/account] of the account, no trailing '/' */
    char *container;
    char *sas;       /* a SAS token (no leading '?'), or NULL */
    unsigned char key[AZ_KEY_MAX]; /* the account key, decoded (SharedKey), when key_len */
    size_t key_len;
    struct az_ad *ad; /* Azure AD: without a SAS or a key, when a credential applies */
    const char *auth; /* "SAS", "SharedKey", "anonymous" or auth_buf, for messages */
    char auth_buf[300]; /* "Azure AD <credential>" */
} az_params_t;

/* azure_config.c */
nixl_status_t az_params_parse(const nixl_be_init_t *init, nixl_be_engine_t *eng);
void az_params_free(nixl_be_engine_t *eng);
char *az_url(const nixl_be_engine_t *eng, const char *key, size_t klen);

/* azure_req.c */
void az_query(const nixl_be_engine_t *eng, int kind, const char *upload_id, size_t part, char *q,
              size_t qlen);
bool az_build(nixl_be_engine_t *eng, obj_xfer_t *x);

/* azure_ad.c */
/* With account_url and neither SAS nor key: choose the Azure AD credential (mode: the azure_ad
 * parameter, auto, on or off; NULL is auto), fetch its first token and start refreshing it.
 * SUCCESS with az->ad NULL when none applies (anonymous requests); an error with the reason
 * when the credential gives no token. */
nixl_status_t az_ad_setup(const nixl_be_init_t *init, nixl_be_engine_t *eng, const char *mode);
void az_ad_free(struct az_ad *ad);
/* Append "Authorization: Bearer <the current token>"; false when out of memory. */
bool az_ad_auth_header(struct az_ad *ad, struct curl_slist **l);

#endif
