/*
 * toml.h - a TOML 1.0 reader for the NIXL configuration file. The whole file is checked (syntax,
 * and keys or tables defined twice at any depth), but only the top-level keys are kept, because
 * only they are NIXL options; keys under a [table] header, in an inline table or in an array are
 * checked and thrown away. Integers must fit in 64 bits; a leading UTF-8 byte order mark is
 * skipped.
 */
#ifndef NIXL_UTIL_TOML_H
#define NIXL_UTIL_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nixl.h"
#include "hashmap.h"

typedef enum nixl_toml_type {
    NIXL_TOML_STRING,
    NIXL_TOML_INTEGER,
    NIXL_TOML_FLOAT,
    NIXL_TOML_BOOL,
    NIXL_TOML_TIME,     /* a local time (12:30:00.5): kept as milliseconds since midnight */
    NIXL_TOML_DATETIME, /* a date, a local or an offset date-time: value not kept */
    NIXL_TOML_ARRAY,    /* also a top-level [[array of tables]]; value not kept */
    NIXL_TOML_INLINE_TABLE,
    NIXL_TOML_TABLE,    /* made by a [header] or a dotted key (a.b = 1 makes "a") */
} nixl_toml_type_t;

typedef struct nixl_toml_value {
    nixl_toml_type_t type;
    char *str;      /* STRING: malloc'ed, NUL-terminated, may contain NULs (see str_len) */
    size_t str_len;
    int64_t i;      /* INTEGER */
    double f;       /* FLOAT */
    bool b;         /* BOOL */
    uint64_t ms;    /* TIME */
} nixl_toml_value_t;

typedef struct nixl_toml_entry {
    char *key;      /* malloc'ed, NUL-terminated, may contain NULs (see key_len) */
    size_t key_len;
    unsigned line;  /* where it was defined, for messages */
    nixl_toml_value_t v;
} nixl_toml_entry_t;

/* The top-level keys of one file. Zero-initialised is an empty document. */
typedef struct nixl_toml_doc {
    nixl_toml_entry_t *entries;
    size_t count;
    size_t cap;
    nixl_hmap_t index; /* entry key -> entry number */
} nixl_toml_doc_t;

/**
 * Parse `len` bytes of `text` (need not be NUL-terminated) into *doc, which must be empty.
 * `path` is only used in messages.
 *
 * @return NIXL_SUCCESS; or NIXL_ERR_MISMATCH with nixl_last_error() = "path:line: reason", and
 *         *doc left empty.
 * Ownership: release *doc with nixl_toml_free().
 */
nixl_status_t nixl_toml_parse(const char *path, const char *text, size_t len,
                              nixl_toml_doc_t *doc);

/* The top-level key `name`, or NULL. */
const nixl_toml_entry_t *nixl_toml_find(const nixl_toml_doc_t *doc, const char *name);

/* "string", "integer", ... for messages. */
const char *nixl_toml_type_name(nixl_toml_type_t type);

/* Free everything and leave *doc empty. */
void nixl_toml_free(nixl_toml_doc_t *doc);

#endif
