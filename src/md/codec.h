/*
 * codec.h - the reference wire formats: the agent metadata blob and serialized descriptor lists
 * (reference NIXL-SEMANTICS 5.8). Host-endian, byte for byte what the reference writes.
 *
 * Decoding is zero-copy: the view points into the caller's bytes, which must outlive it. Every
 * length is checked against the buffer; any malformed input gives NIXL_ERR_MISMATCH with a
 * reason (nixl_last_error()) saying which field is wrong and at which offset.
 */
#ifndef NIXL_MD_CODEC_H
#define NIXL_MD_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "nixl.h"
#include "buf.h"

/* ---- serdes container: "nixlSerDes|" then records  tag | u64 length | payload | '|' ---- */

#define NIXL_SERDES_MAGIC "nixlSerDes|"
#define NIXL_SERDES_MAGIC_LEN 11

void nixl_serdes_begin(nixl_buf_t *b);
void nixl_serdes_put(nixl_buf_t *b, const char *tag, const void *payload, size_t len);
void nixl_serdes_put_u64(nixl_buf_t *b, const char *tag, uint64_t v);

typedef struct nixl_serdes_reader {
    const uint8_t *p;
    size_t len;
    size_t pos;
} nixl_serdes_reader_t;

/* Check the magic; NIXL_ERR_MISMATCH if absent. */
nixl_status_t nixl_serdes_open(nixl_serdes_reader_t *r, const void *data, size_t len);
/* Read the record with tag `tag` (must be next); payload points into the input. */
nixl_status_t nixl_serdes_get(nixl_serdes_reader_t *r, const char *tag, const uint8_t **payload,
                              size_t *len);
/* Read a record whose payload must be exactly 8 bytes. */
nixl_status_t nixl_serdes_get_u64(nixl_serdes_reader_t *r, const char *tag, uint64_t *v);

/* ---- agent metadata blob ---- */

typedef struct nixl_md_conn {
    const char *backend; /* not NUL-terminated */
    size_t backend_len;
    const uint8_t *info;
    size_t info_len;
} nixl_md_conn_t;

typedef struct nixl_md_region {
    nixl_desc_t desc;
    const uint8_t *blob;
    size_t blob_len;
} nixl_md_region_t;

typedef struct nixl_md_section {
    const char *backend; /* not NUL-terminated */
    size_t backend_len;
    nixl_mem_t type;
    size_t first; /* index of its first region in nixl_md_view_t.regions */
    size_t count;
} nixl_md_section_t;

typedef struct nixl_md_view {
    const char *name; /* not NUL-terminated; never empty, contains no NUL */
    size_t name_len;
    size_t num_conns;
    nixl_md_conn_t *conns;
    size_t num_sections;
    nixl_md_section_t *sections;
    size_t num_regions;
    nixl_md_region_t *regions;
} nixl_md_view_t;

/*
 * Parse a metadata blob. On success free the view with nixl_md_view_free(). The three arrays
 * share one allocation whose base is `conns` (non-NULL whenever any array is non-empty), so a
 * view must be freed only through nixl_md_view_free(). Names (agent, backends) are never empty
 * and contain no NUL; connection info is never empty; a section may have zero regions. Any
 * byte after the last section is an error. *out is set only on success.
 */
nixl_status_t nixl_md_decode(const void *blob, size_t len, nixl_md_view_t *out);
void nixl_md_view_free(nixl_md_view_t *v);
/* Re-encode a view; a view decoded from bytes B gives back exactly B. */
void nixl_md_view_encode(nixl_buf_t *b, const nixl_md_view_t *v);

/*
 * Encoding, in the order of the format:
 *   nixl_md_enc_begin(b, name, num_conns);
 *   num_conns x nixl_md_enc_conn(...);
 *   nixl_md_enc_sections(b, num_sections);
 *   per section: nixl_md_enc_section(b, backend, type, count); count x nixl_md_enc_region(...)
 */
void nixl_md_enc_begin(nixl_buf_t *b, const char *name, size_t name_len, size_t num_conns);
void nixl_md_enc_conn(nixl_buf_t *b, const char *backend, const void *info, size_t info_len);
void nixl_md_enc_sections(nixl_buf_t *b, size_t num_sections);
void nixl_md_enc_section(nixl_buf_t *b, const char *backend, nixl_mem_t type, size_t count);
void nixl_md_enc_region(nixl_buf_t *b, const nixl_desc_t *desc, const void *blob, size_t blob_len);

/* ---- serialized descriptor lists (the state of the Python pickles) ---- */
/* Both encoders write a whole container, "nixlSerDes|" included. */

/* A basic list: "nixlBDList", all descriptors in one record. */
void nixl_dlist_encode(nixl_buf_t *b, nixl_mem_t type, const nixl_desc_t *descs, size_t count);
/* A registration list: "nixlSDList", one record per descriptor (24 bytes + meta). */
void nixl_reg_dlist_encode(nixl_buf_t *b, nixl_mem_t type, const nixl_reg_desc_t *descs,
                           size_t count);

/*
 * Decode either kind. For a basic list, *out_reg is NULL and *out_descs is set; for a
 * registration list, *out_reg is set (meta pointing into the input) and *out_descs is NULL.
 * Arrays are allocated with malloc (caller frees); the array of the list's kind is non-NULL
 * even when the count is 0. Outputs are set only on success.
 */
nixl_status_t nixl_any_dlist_decode(const void *data, size_t len, nixl_mem_t *out_type,
                                    nixl_desc_t **out_descs, nixl_reg_desc_t **out_reg,
                                    size_t *out_count);

#endif
