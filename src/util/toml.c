/*
 * toml.c - a hand-written TOML 1.0 reader for the configuration file (no TOML library is
 * packaged for us). It walks the whole grammar so that a broken file is refused with its line,
 * but keeps values only for top-level keys. Every read goes through peek()/at_end(), so a
 * truncated file of any length is an error, never an overrun.
 */
#include "toml.h"
#include "parse.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"
#include "buf.h"
#include "error.h"

/* Arrays and inline tables recurse; a hostile file must not exhaust the stack. */
#define TOML_MAX_DEPTH 64
/* Longer than any number or date-time. */
#define TOML_MAX_TOKEN 128

/* What the key tree knows of each key and table. */
typedef enum node_kind {
    NODE_VALUE,           /* key = value (an inline table's keys hang below it) */
    NODE_IMPLICIT,        /* a table named only as the prefix of a header: [a] in [a.b] */
    NODE_HEADER,          /* a [table], an array-of-tables element, the root */
    NODE_DOTTED,          /* a table made by a dotted key: a in a.b = 1 */
    NODE_ARRAY_OF_TABLES, /* [[a]]; `current` is its last element */
} node_kind_t;

#define NO_NODE UINT32_MAX
#define ROOT_NODE 0u

typedef struct tree_node {
    char *key; /* the index key: the parent's id, then the part (NULL for anonymous nodes) */
    char *seg; /* the key part, NUL-terminated, inside `key` */
    size_t seg_len;
    uint32_t parent; /* NO_NODE: anonymous, found only by id */
    uint32_t current;
    node_kind_t kind;
    nixl_toml_type_t vtype; /* NODE_VALUE: the type of the value */
    unsigned line;
} tree_node_t;

typedef struct key_tree {
    tree_node_t *nodes;
    size_t count;
    size_t cap;
    nixl_hmap_t index; /* node key -> node id */
    nixl_buf_t probe;  /* the key of a lookup */
} key_tree_t;

typedef struct parser {
    const char *p;
    const char *end;
    unsigned line;
    nixl_toml_doc_t *doc;
    key_tree_t tree;
    uint32_t cur; /* the table that key = value lines go to; ROOT_NODE: NIXL options */
    bool failed;
    bool oom; /* the failure is an allocation, not the file's fault */
    unsigned err_line;
    char err[256];
} parser_t;

static bool fail_at(parser_t *ps, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Keep the first error: later ones are consequences. Always false, so `return fail(...)`. */
static bool fail_at(parser_t *ps, unsigned line, const char *fmt, ...)
{
    if (ps->failed)
        return false;
    ps->failed = true;
    ps->err_line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err, sizeof(ps->err), fmt, ap);
    va_end(ap);
    return false;
}

#define fail(ps, ...) fail_at((ps), (ps)->line, __VA_ARGS__)

static bool fail_oom(parser_t *ps)
{
    if (!ps->failed)
        ps->oom = true;
    return fail(ps, "%s", NIXL_OOM_REASON);
}

static bool at_end(const parser_t *ps)
{
    return ps->p >= ps->end;
}

/* The byte k ahead, or -1 past the end. */
static int peek(const parser_t *ps, size_t k)
{
    return k < (size_t)(ps->end - ps->p) ? (unsigned char)ps->p[k] : -1;
}

static bool at_newline(const parser_t *ps)
{
    int c = peek(ps, 0);
    return c == '\n' || (c == '\r' && peek(ps, 1) == '\n');
}

static void eat_newline(parser_t *ps)
{
    ps->p += *ps->p == '\r' ? 2 : 1;
    ps->line++;
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_bare_key_char(int c)
{
    return is_alpha(c) || is_digit(c) || c == '_' || c == '-';
}

/* TOML forbids control characters in strings and comments, except tab. */
static bool is_control(int c)
{
    return (c >= 0 && c < 0x20 && c != '\t') || c == 0x7f;
}


static bool fail_unexpected(parser_t *ps, const char *where)
{
    int c = peek(ps, 0);
    if (c < 0)
        return fail(ps, "unexpected end of file %s", where);
    if (at_newline(ps))
        return fail(ps, "unexpected end of line %s", where);
    if (c > 0x20 && c < 0x7f)
        return fail(ps, "unexpected '%c' %s", c, where);
    return fail(ps, "unexpected byte 0x%02x %s", (unsigned)c, where);
}

static void skip_ws(parser_t *ps)
{
    while (!at_end(ps) && (*ps->p == ' ' || *ps->p == '\t'))
        ps->p++;
}

/* At '#': up to, not over, the end of the line. */
static bool skip_comment(parser_t *ps)
{
    ps->p++;
    while (!at_end(ps) && !at_newline(ps)) {
        if (is_control(peek(ps, 0)))
            return fail(ps, "control character 0x%02x in a comment", (unsigned)peek(ps, 0));
        ps->p++;
    }
    return true;
}

/* Whitespace, comments and newlines, as allowed between array elements. */
static bool skip_blank(parser_t *ps)
{
    for (;;) {
        skip_ws(ps);
        if (peek(ps, 0) == '#') {
            if (!skip_comment(ps))
                return false;
        } else if (at_newline(ps)) {
            eat_newline(ps);
        } else {
            return true;
        }
    }
}

/* After a key/value pair or a header only a comment may follow on the line. */
static bool expect_line_end(parser_t *ps, const char *after)
{
    skip_ws(ps);
    if (peek(ps, 0) == '#' && !skip_comment(ps))
        return false;
    if (at_end(ps))
        return true;
    if (at_newline(ps)) {
        eat_newline(ps);
        return true;
    }
    return fail_unexpected(ps, after);
}

/* TOML documents are UTF-8; check once so that the rest can treat bytes >= 0x80 as text. */
static bool check_utf8(parser_t *ps)
{
    const unsigned char *s = (const unsigned char *)ps->p;
    const unsigned char *e = (const unsigned char *)ps->end;
    unsigned line = 1;
    while (s < e) {
        unsigned c = *s;
        if (c < 0x80) {
            line += c == '\n';
            s++;
            continue;
        }
        /* n continuation bytes; the smallest code point that needs them (no overlongs) */
        size_t n = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 0;
        static const uint32_t min_cp[4] = {0, 0x80, 0x800, 0x10000};
        if (!n)
            return fail_at(ps, line, "invalid UTF-8");
        uint32_t cp = c & (0x7fu >> (n + 1));
        uint32_t min = min_cp[n];
        if ((size_t)(e - s) <= n)
            return fail_at(ps, line, "invalid UTF-8 (truncated sequence)");
        for (size_t k = 1; k <= n; k++) {
            if ((s[k] & 0xc0) != 0x80)
                return fail_at(ps, line, "invalid UTF-8");
            cp = (cp << 6) | (s[k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return fail_at(ps, line, "invalid UTF-8");
        s += n + 1;
    }
    return true;
}

static void put_utf8(nixl_buf_t *b, uint32_t cp)
{
    uint8_t u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (uint8_t)(0xc0 | (cp >> 6));
        u[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (uint8_t)(0xe0 | (cp >> 12));
        u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (uint8_t)(0xf0 | (cp >> 18));
        u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    nixl_buf_append(b, u, n);
}

/* At a backslash in a basic string. */
static bool parse_escape(parser_t *ps, nixl_buf_t *out, bool multi)
{
    ps->p++;
    if (multi) {
        /* A line-ending backslash swallows the newline and the whitespace after it. */
        const char *save = ps->p;
        skip_ws(ps);
        if (at_newline(ps)) {
            while (!at_end(ps)) {
                if (*ps->p == ' ' || *ps->p == '\t')
                    ps->p++;
                else if (at_newline(ps))
                    eat_newline(ps);
                else
                    break;
            }
            return true;
        }
        ps->p = save;
    }
    int c = peek(ps, 0);
    if (c < 0)
        return fail(ps, "unterminated string");
    ps->p++;
    switch (c) {
    case 'b': nixl_buf_append_u8(out, '\b'); return true;
    case 't': nixl_buf_append_u8(out, '\t'); return true;
    case 'n': nixl_buf_append_u8(out, '\n'); return true;
    case 'f': nixl_buf_append_u8(out, '\f'); return true;
    case 'r': nixl_buf_append_u8(out, '\r'); return true;
    case '"': nixl_buf_append_u8(out, '"'); return true;
    case '\\': nixl_buf_append_u8(out, '\\'); return true;
    case 'u':
    case 'U': {
        size_t n = c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (size_t k = 0; k < n; k++) {
            int h = nixl_hex_digit(peek(ps, k));
            if (h < 0)
                return fail(ps, "invalid escape: \\%c needs %zu hexadecimal digits", c, n);
            cp = (cp << 4) | (uint32_t)h;
        }
        ps->p += n;
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return fail(ps, "invalid escape: U+%04X is not a Unicode scalar value", (unsigned)cp);
        put_utf8(out, cp);
        return true;
    }
    default:
        if (c > 0x20 && c < 0x7f)
            return fail(ps, "invalid escape sequence '\\%c'", c);
        return fail(ps, "invalid escape sequence (backslash before byte 0x%02x)", (unsigned)c);
    }
}

/* "..." or '...' on one line; `quote` says which. */
static bool parse_line_string(parser_t *ps, nixl_buf_t *out, char quote)
{
    ps->p++;
    for (;;) {
        if (at_end(ps) || at_newline(ps))
            return fail(ps, "unterminated string");
        int c = peek(ps, 0);
        if (c == quote) {
            ps->p++;
            return true;
        }
        if (c == '\\' && quote == '"') {
            if (!parse_escape(ps, out, false))
                return false;
            continue;
        }
        if (is_control(c))
            return fail(ps, "control character 0x%02x in a string", (unsigned)c);
        nixl_buf_append_u8(out, (uint8_t)c);
        ps->p++;
    }
}

/* """...""" or '''...'''. */
static bool parse_multiline_string(parser_t *ps, nixl_buf_t *out, char quote)
{
    unsigned start = ps->line;
    ps->p += 3;
    if (at_newline(ps)) /* a newline right after the opening delimiter is trimmed */
        eat_newline(ps);
    for (;;) {
        if (at_end(ps))
            return fail_at(ps, start, "unterminated multi-line string");
        int c = peek(ps, 0);
        if (c == quote && peek(ps, 1) == quote && peek(ps, 2) == quote) {
            /* Up to two quotes may sit right before the closing delimiter. */
            size_t n = 3;
            while (peek(ps, n) == quote)
                n++;
            if (n > 5)
                return fail(ps, "too many quotes at the end of a multi-line string");
            for (size_t k = 3; k < n; k++)
                nixl_buf_append_u8(out, (uint8_t)quote);
            ps->p += n;
            return true;
        }
        if (at_newline(ps)) {
            nixl_buf_append_u8(out, '\n');
            eat_newline(ps);
            continue;
        }
        if (c == '\\' && quote == '"') {
            if (!parse_escape(ps, out, true))
                return false;
            continue;
        }
        if (is_control(c))
            return fail(ps, "control character 0x%02x in a string", (unsigned)c);
        nixl_buf_append_u8(out, (uint8_t)c);
        ps->p++;
    }
}

/* Any string at the cursor, appended to `out`. */
static bool parse_string(parser_t *ps, nixl_buf_t *out, bool allow_multiline)
{
    char quote = *ps->p;
    if (peek(ps, 1) == quote && peek(ps, 2) == quote) {
        if (!allow_multiline)
            return fail(ps, "a key cannot be a multi-line string");
        return parse_multiline_string(ps, out, quote);
    }
    return parse_line_string(ps, out, quote);
}

/* ----- the document: top-level keys, indexed by a hash map ----- */

static nixl_toml_entry_t *doc_find(const nixl_toml_doc_t *doc, const char *k, size_t n)
{
    void *index;
    return nixl_hmap_find(&doc->index, k, n, &index) ? &doc->entries[(uintptr_t)index] : NULL;
}

/* A new top-level key (the key tree has checked that it is new). Copies `key`; takes v->str,
 * also on failure. */
static bool doc_add(parser_t *ps, const char *key, size_t key_len, nixl_toml_value_t *v,
                    unsigned line)
{
    nixl_toml_doc_t *doc = ps->doc;
    char *k = malloc(key_len + 1);
    if (!k)
        goto oom;
    if (key_len)
        memcpy(k, key, key_len);
    k[key_len] = '\0';
    if (!nixl_array_reserve(doc->entries, doc->cap, doc->count + 1) ||
        !nixl_hmap_put(&doc->index, k, key_len, (void *)(uintptr_t)doc->count))
        goto oom;
    doc->entries[doc->count++] = (nixl_toml_entry_t){
        .key = k, .key_len = key_len, .line = line, .v = *v};
    v->str = NULL;
    return true;
oom:
    free(k);
    free(v->str);
    v->str = NULL;
    return fail_oom(ps);
}

/* A top-level table, or array of tables. */
static bool doc_add_table(parser_t *ps, const char *key, size_t key_len, bool array,
                          unsigned line)
{
    nixl_toml_value_t v = {.type = array ? NIXL_TOML_ARRAY : NIXL_TOML_TABLE};
    return doc_add(ps, key, key_len, &v, line);
}

/*
 * ----- the key tree: every key and table of the file, so that a file TOML forbids (a key
 * or a table defined twice, a dotted key that extends a [table] or a value) is refused, as
 * the reference's parser does, even where the keys are not NIXL options. -----
 */

/* The index key of `parent`'s child `seg`, in t->probe (reused from lookup to lookup). */
static bool child_key(key_tree_t *t, uint32_t parent, const char *seg, size_t len)
{
    t->probe.len = 0;
    nixl_buf_append(&t->probe, &parent, sizeof(parent));
    if (len)
        nixl_buf_append(&t->probe, seg, len);
    return !t->probe.oom;
}

static uint32_t tree_child(parser_t *ps, uint32_t parent, const char *seg, size_t len)
{
    key_tree_t *t = &ps->tree;
    void *id;
    if (!child_key(t, parent, seg, len)) {
        fail(ps, "out of memory");
        return NO_NODE;
    }
    if (!nixl_hmap_find(&t->index, t->probe.data, t->probe.len, &id))
        return NO_NODE;
    return (uint32_t)(uintptr_t)id;
}

/* A node named `seg` under `parent`; parent NO_NODE makes an anonymous one (an array-of-tables
 * element, an inline table inside an array), reachable only by its id. */
static uint32_t tree_new(parser_t *ps, uint32_t parent, const char *seg, size_t len,
                         node_kind_t kind, unsigned line)
{
    key_tree_t *t = &ps->tree;
    if (t->count >= UINT32_MAX - 2)
        goto oom;
    if (!nixl_array_reserve(t->nodes, t->cap, t->count + 1))
        goto oom;
    uint32_t id = (uint32_t)t->count;
    char *key = NULL;
    if (parent != NO_NODE) {
        size_t klen = sizeof(parent) + len;
        key = malloc(klen + 1);
        if (!key)
            goto oom;
        memcpy(key, &parent, sizeof(parent));
        if (len)
            memcpy(key + sizeof(parent), seg, len);
        key[klen] = '\0';
        if (!nixl_hmap_put(&t->index, key, klen, (void *)(uintptr_t)id)) {
            free(key);
            goto oom;
        }
    }
    t->count++;
    t->nodes[id] = (tree_node_t){.key = key, .seg = key ? key + sizeof(parent) : NULL,
                                 .seg_len = len, .parent = parent, .current = NO_NODE,
                                 .kind = kind, .line = line};
    return id;
oom:
    fail_oom(ps);
    return NO_NODE;
}

static void tree_free(key_tree_t *t)
{
    for (size_t i = 0; i < t->count; i++)
        free(t->nodes[i].key);
    free(t->nodes);
    nixl_hmap_free(&t->index);
    nixl_buf_free(&t->probe);
    *t = (key_tree_t){0};
}

/* The parts of a key, stored in a buffer as (size_t length, bytes) pairs. */
typedef struct key_parts {
    nixl_buf_t buf;
    size_t count;
    char name[80]; /* the key as written, dotted, for messages (maybe shortened) */
} key_parts_t;

static bool parts_next(const key_parts_t *k, size_t *pos, const char **seg, size_t *len)
{
    if (*pos >= k->buf.len)
        return false;
    memcpy(len, k->buf.data + *pos, sizeof(*len));
    *seg = (const char *)k->buf.data + *pos + sizeof(*len);
    *pos += sizeof(*len) + *len;
    return true;
}

static void parts_name(key_parts_t *k)
{
    size_t pos = 0, out = 0, len;
    const char *seg;
    while (parts_next(k, &pos, &seg, &len)) {
        if (out && out < sizeof(k->name) - 1)
            k->name[out++] = '.';
        for (size_t i = 0; i < len && out < sizeof(k->name) - 1; i++)
            k->name[out++] = seg[i] ? seg[i] : '?';
    }
    k->name[out] = '\0';
}

static const char *node_kind_name(const tree_node_t *n)
{
    switch (n->kind) {
    case NODE_VALUE: return nixl_toml_type_name(n->vtype);
    case NODE_ARRAY_OF_TABLES: return "array of tables";
    case NODE_DOTTED: return "table, by a dotted key";
    default: return "table";
    }
}

static void element_new(parser_t *ps, uint32_t array, unsigned line)
{
    uint32_t e = tree_new(ps, NO_NODE, NULL, 0, NODE_HEADER, line);
    if (e != NO_NODE)
        ps->tree.nodes[array].current = e;
}

/* [a.b.c] or [[a.b.c]]: make it the current table. */
static bool define_header(parser_t *ps, const key_parts_t *k, bool array, unsigned line)
{
    uint32_t node = ROOT_NODE;
    size_t pos = 0, i = 0, len;
    const char *seg;
    while (parts_next(k, &pos, &seg, &len)) {
        bool last = ++i == k->count;
        uint32_t child = tree_child(ps, node, seg, len);
        if (child == NO_NODE) {
            node_kind_t kind = !last ? NODE_IMPLICIT : array ? NODE_ARRAY_OF_TABLES : NODE_HEADER;
            child = tree_new(ps, node, seg, len, kind, line);
            if (child == NO_NODE ||
                (node == ROOT_NODE &&
                 !doc_add_table(ps, seg, len, kind == NODE_ARRAY_OF_TABLES, line)))
                return false;
            if (kind == NODE_ARRAY_OF_TABLES)
                element_new(ps, child, line);
        } else {
            tree_node_t *c = &ps->tree.nodes[child];
            if (c->kind == NODE_VALUE)
                return fail_at(ps, line, "'%.64s' is already defined on line %u (%s), not as a table",
                               c->seg ? c->seg : "", c->line, node_kind_name(c));
            if (last && array) {
                if (c->kind != NODE_ARRAY_OF_TABLES)
                    return fail_at(ps, line, "[[%s]]: '%s' is already defined on line %u (%s)",
                                   k->name, k->name, c->line, node_kind_name(c));
                element_new(ps, child, line);
            } else if (last) {
                if (c->kind != NODE_IMPLICIT)
                    return fail_at(ps, line, "table [%s] is already defined on line %u (%s)",
                                   k->name, c->line, node_kind_name(c));
                c->kind = NODE_HEADER;
                c->line = line;
            }
        }
        if (ps->failed)
            return false;
        node = child;
        if (ps->tree.nodes[node].kind == NODE_ARRAY_OF_TABLES)
            node = ps->tree.nodes[node].current;
    }
    ps->cur = node;
    return true;
}

/* `a.b.c = ...` in `table`: *leaf is the node of the new key. */
static bool define_key(parser_t *ps, const key_parts_t *k, uint32_t table, unsigned line,
                       uint32_t *leaf)
{
    uint32_t node = table;
    size_t pos = 0, i = 0, len;
    const char *seg;
    while (parts_next(k, &pos, &seg, &len)) {
        bool last = ++i == k->count;
        uint32_t child = tree_child(ps, node, seg, len);
        if (last) {
            if (child != NO_NODE)
                return fail_at(ps, line, "duplicate key '%s' (first defined on line %u)",
                               k->name, ps->tree.nodes[child].line);
            *leaf = tree_new(ps, node, seg, len, NODE_VALUE, line);
            return *leaf != NO_NODE;
        }
        if (child == NO_NODE) {
            child = tree_new(ps, node, seg, len, NODE_DOTTED, line);
            if (child == NO_NODE ||
                (node == ROOT_NODE && !doc_add_table(ps, seg, len, false, line)))
                return false;
        } else {
            const tree_node_t *c = &ps->tree.nodes[child];
            if (c->kind == NODE_VALUE)
                return fail_at(ps, line, "'%.64s' is already defined on line %u (%s), not as a table",
                               c->seg ? c->seg : "", c->line, node_kind_name(c));
            if (c->kind != NODE_DOTTED)
                return fail_at(ps, line,
                               "'%s': a dotted key cannot add to table '%.64s' (%s, line %u)",
                               k->name, c->seg ? c->seg : "", node_kind_name(c), c->line);
        }
        node = child;
    }
    return fail_at(ps, line, "empty key"); /* not reached: a key has at least one part */
}

/* One part of a key: bare, "basic" or 'literal'. */
static bool parse_simple_key(parser_t *ps, nixl_buf_t *out)
{
    int c = peek(ps, 0);
    if (c == '"' || c == '\'')
        return parse_string(ps, out, false);
    if (!is_bare_key_char(c))
        return fail_unexpected(ps, "where a key was expected");
    const char *s = ps->p;
    while (is_bare_key_char(peek(ps, 0)))
        ps->p++;
    nixl_buf_append(out, s, (size_t)(ps->p - s));
    return true;
}

/* A possibly dotted key, into k (initialised here; release with nixl_buf_free(&k->buf)). */
static bool parse_key(parser_t *ps, key_parts_t *k)
{
    nixl_buf_init(&k->buf, 0);
    k->count = 0;
    k->name[0] = '\0';
    for (;;) {
        nixl_buf_t part;
        nixl_buf_init(&part, 0);
        bool ok = parse_simple_key(ps, &part);
        if (ok) {
            nixl_buf_append(&k->buf, &part.len, sizeof(part.len));
            nixl_buf_append(&k->buf, part.data, part.len);
            k->count++;
            if (k->buf.oom)
                ok = fail_oom(ps);
        }
        nixl_buf_free(&part);
        if (!ok)
            return false;
        const char *save = ps->p;
        skip_ws(ps);
        if (peek(ps, 0) != '.') {
            ps->p = save;
            parts_name(k);
            return true;
        }
        ps->p++;
        skip_ws(ps);
    }
}

static bool parse_value(parser_t *ps, nixl_toml_value_t *v, int depth, uint32_t owner);

static bool parse_array(parser_t *ps, int depth)
{
    unsigned start = ps->line;
    ps->p++;
    for (;;) {
        if (!skip_blank(ps))
            return false;
        if (at_end(ps))
            return fail_at(ps, start, "unterminated array");
        if (*ps->p == ']') {
            ps->p++;
            return true;
        }
        nixl_toml_value_t item = {0};
        bool ok = parse_value(ps, &item, depth + 1, NO_NODE);
        free(item.str);
        if (!ok || !skip_blank(ps))
            return false;
        if (at_end(ps))
            return fail_at(ps, start, "unterminated array");
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == ']') {
            ps->p++;
            return true;
        }
        return fail_unexpected(ps, "in an array (expected ',' or ']')");
    }
}

/* key = value inside `table`; the value itself is kept only for top-level keys. */
static bool parse_keyval(parser_t *ps, uint32_t table, int depth)
{
    unsigned line = ps->line;
    key_parts_t k;
    uint32_t leaf = NO_NODE;
    nixl_toml_value_t v = {0};
    bool ok = parse_key(ps, &k);
    if (ok) {
        skip_ws(ps);
        if (peek(ps, 0) != '=')
            ok = fail_unexpected(ps, "after a key (expected '=')");
    }
    if (ok) {
        ps->p++;
        skip_ws(ps);
        ok = define_key(ps, &k, table, line, &leaf) && parse_value(ps, &v, depth, leaf);
    }
    if (ok) {
        ps->tree.nodes[leaf].vtype = v.type;
        if (table == ROOT_NODE && k.count == 1) {
            size_t pos = 0, len = 0;
            const char *seg = "";
            parts_next(&k, &pos, &seg, &len);
            ok = doc_add(ps, seg, len, &v, line);
        }
    }
    free(v.str);
    nixl_buf_free(&k.buf);
    return ok;
}

/* { a = 1, b.c = "x" }: one line, no trailing comma (TOML 1.0). Its keys go under `owner`
 * (NO_NODE inside an array: a node of its own). */
static bool parse_inline_table(parser_t *ps, int depth, uint32_t owner)
{
    if (owner == NO_NODE) {
        owner = tree_new(ps, NO_NODE, NULL, 0, NODE_VALUE, ps->line);
        if (owner == NO_NODE)
            return false;
    }
    ps->p++;
    skip_ws(ps);
    if (peek(ps, 0) == '}') {
        ps->p++;
        return true;
    }
    for (;;) {
        skip_ws(ps);
        if (at_end(ps) || at_newline(ps))
            return fail(ps, "unterminated inline table (it must close on the same line)");
        if (!parse_keyval(ps, owner, depth + 1))
            return false;
        skip_ws(ps);
        int c = peek(ps, 0);
        if (c == ',') {
            ps->p++;
            continue;
        }
        if (c == '}') {
            ps->p++;
            return true;
        }
        if (c < 0 || at_newline(ps))
            return fail(ps, "unterminated inline table (it must close on the same line)");
        return fail_unexpected(ps, "in an inline table (expected ',' or '}')");
    }
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)s[i]))
            return false;
    return true;
}

static unsigned num2(const char *s)
{
    return (unsigned)(s[0] - '0') * 10 + (unsigned)(s[1] - '0');
}

/* YYYY-MM-DD with a real day of that month. */
static bool is_date(const char *s, size_t n)
{
    if (n < 10 || !all_digits(s, 4) || s[4] != '-' || !all_digits(s + 5, 2) || s[7] != '-' ||
        !all_digits(s + 8, 2))
        return false;
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    unsigned year = num2(s) * 100 + num2(s + 2);
    unsigned month = num2(s + 5), day = num2(s + 8);
    if (month < 1 || month > 12 || day < 1 || day > mdays[month - 1])
        return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return !(month == 2 && day == 29 && !leap);
}

/* HH:MM:SS[.fraction] at the start of s; returns the length used, 0 if not a time. */
static size_t scan_time(const char *s, size_t n, uint64_t *ms)
{
    if (n < 8 || !all_digits(s, 2) || s[2] != ':' || !all_digits(s + 3, 2) || s[5] != ':' ||
        !all_digits(s + 6, 2))
        return 0;
    unsigned h = num2(s), m = num2(s + 3), sec = num2(s + 6);
    if (h > 23 || m > 59 || sec > 60) /* 60: a leap second */
        return 0;
    size_t i = 8;
    uint64_t frac = 0;
    if (i < n && s[i] == '.') {
        size_t k = 0;
        for (i++; i < n && is_digit((unsigned char)s[i]); i++, k++)
            if (k < 3) /* beyond milliseconds: truncated */
                frac = frac * 10 + (uint64_t)(s[i] - '0');
        if (k == 0)
            return 0;
        for (; k < 3; k++)
            frac *= 10;
    }
    *ms = ((uint64_t)h * 3600 + (uint64_t)m * 60 + sec) * 1000 + frac;
    return i;
}

/* A local time, a date, or a date-time with an optional offset. */
static bool parse_datetime(parser_t *ps, const char *t, size_t n, nixl_toml_value_t *v)
{
    uint64_t ms;
    if (is_digit((unsigned char)t[0]) && n > 2 && t[2] == ':') {
        if (scan_time(t, n, &ms) != n)
            return fail(ps, "invalid time '%s'", t);
        v->type = NIXL_TOML_TIME;
        v->ms = ms;
        return true;
    }
    if (!is_date(t, n))
        return fail(ps, "invalid date '%s'", t);
    v->type = NIXL_TOML_DATETIME;
    if (n == 10)
        return true;
    if (t[10] != 'T' && t[10] != 't' && t[10] != ' ')
        return fail(ps, "invalid date-time '%s'", t);
    size_t used = scan_time(t + 11, n - 11, &ms);
    if (!used)
        return fail(ps, "invalid date-time '%s'", t);
    const char *z = t + 11 + used;
    size_t zn = n - 11 - used;
    if (zn == 0 || (zn == 1 && (z[0] == 'Z' || z[0] == 'z')))
        return true;
    if (zn == 6 && (z[0] == '+' || z[0] == '-') && all_digits(z + 1, 2) && z[3] == ':' &&
        all_digits(z + 4, 2) && num2(z + 1) <= 23 && num2(z + 4) <= 59)
        return true;
    return fail(ps, "invalid date-time offset in '%s'", t);
}

/* Digits of `base` with single underscores between them, from s[*i]; appended to clean. */
static bool scan_digits(const char *s, size_t n, size_t *i, int base, char *clean, size_t *cn)
{
    size_t j = *i;
    if (j >= n || nixl_hex_digit((unsigned char)s[j]) < 0 || nixl_hex_digit((unsigned char)s[j]) >= base)
        return false;
    while (j < n) {
        int d = nixl_hex_digit((unsigned char)s[j]);
        if (d >= 0 && d < base) {
            clean[(*cn)++] = s[j++];
        } else if (s[j] == '_') {
            int next = j + 1 < n ? nixl_hex_digit((unsigned char)s[j + 1]) : -1;
            if (next < 0 || next >= base)
                return false;
            j++;
        } else {
            break;
        }
    }
    *i = j;
    return true;
}

/* Clean digits (no underscores) to a value of at most `limit`. */
static bool digits_value(const char *d, size_t n, int base, uint64_t limit, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t x = (uint64_t)nixl_hex_digit((unsigned char)d[i]);
        if (v > (limit - x) / (uint64_t)base)
            return false;
        v = v * (uint64_t)base + x;
    }
    *out = v;
    return true;
}

static bool parse_number(parser_t *ps, const char *t, size_t n, nixl_toml_value_t *v)
{
    char clean[TOML_MAX_TOKEN + 2];
    size_t cn = 0;
    size_t i = 0;
    bool neg = false;
    if (t[0] == '+' || t[0] == '-') {
        neg = t[0] == '-';
        clean[cn++] = t[0];
        i = 1;
    }
    if (n - i == 3 && (!memcmp(t + i, "inf", 3) || !memcmp(t + i, "nan", 3))) {
        v->type = NIXL_TOML_FLOAT;
        v->f = t[i] == 'i' ? (double)INFINITY : (double)NAN;
        if (neg)
            v->f = -v->f;
        return true;
    }
    if (n - i >= 2 && t[i] == '0' && (t[i + 1] == 'x' || t[i + 1] == 'o' || t[i + 1] == 'b')) {
        if (i)
            return fail(ps, "a sign is not allowed on a hexadecimal, octal or binary integer");
        int base = t[1] == 'x' ? 16 : t[1] == 'o' ? 8 : 2;
        i = 2;
        if (!scan_digits(t, n, &i, base, clean, &cn) || i != n)
            return fail(ps, "invalid integer '%s'", t);
        uint64_t u;
        if (!digits_value(clean, cn, base, INT64_MAX, &u))
            return fail(ps, "integer '%s' does not fit in 64 bits", t);
        v->type = NIXL_TOML_INTEGER;
        v->i = (int64_t)u;
        return true;
    }
    size_t int_start = cn;
    if (!scan_digits(t, n, &i, 10, clean, &cn))
        return fail(ps, "invalid value '%s'", t);
    if (clean[int_start] == '0' && cn - int_start > 1)
        return fail(ps, "leading zeros are not allowed in '%s'", t);
    size_t int_end = cn;
    bool is_float = false;
    if (i < n && t[i] == '.') {
        is_float = true;
        clean[cn++] = t[i++];
        if (!scan_digits(t, n, &i, 10, clean, &cn))
            return fail(ps, "invalid float '%s'", t);
    }
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        is_float = true;
        clean[cn++] = t[i++];
        if (i < n && (t[i] == '+' || t[i] == '-'))
            clean[cn++] = t[i++];
        if (!scan_digits(t, n, &i, 10, clean, &cn))
            return fail(ps, "invalid float '%s'", t);
    }
    if (i != n)
        return fail(ps, "invalid value '%s'", t);
    clean[cn] = '\0';
    if (is_float) {
        /* strtod follows LC_NUMERIC, which the application may have changed. */
        locale_t c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
        if (c_locale == (locale_t)0)
            return fail_oom(ps);
        v->f = strtod_l(clean, NULL, c_locale);
        freelocale(c_locale);
        v->type = NIXL_TOML_FLOAT;
        return true;
    }
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t mag;
    if (!digits_value(clean + int_start, int_end - int_start, 10, limit, &mag))
        return fail(ps, "integer '%s' does not fit in 64 bits", t);
    v->type = NIXL_TOML_INTEGER;
    if (neg)
        v->i = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
    else
        v->i = (int64_t)mag;
    return true;
}

static bool is_token_char(int c)
{
    return is_alpha(c) || is_digit(c) || c == '_' || c == '+' || c == '-' || c == '.' ||
           c == ':';
}

/* Numbers, dates and times: a run of token characters (a date and a time may be joined by
 * one space). */
static bool parse_token(parser_t *ps, nixl_toml_value_t *v)
{
    const char *s = ps->p;
    while (is_token_char(peek(ps, 0)))
        ps->p++;
    size_t n = (size_t)(ps->p - s);
    if (n == 10 && is_date(s, n) && peek(ps, 0) == ' ' && is_digit(peek(ps, 1)) &&
        is_digit(peek(ps, 2)) && peek(ps, 3) == ':') {
        ps->p++;
        while (is_token_char(peek(ps, 0)))
            ps->p++;
        n = (size_t)(ps->p - s);
    }
    if (n == 0) {
        ps->p = s;
        return fail_unexpected(ps, "where a value was expected");
    }
    if (n > TOML_MAX_TOKEN)
        return fail(ps, "invalid value (%zu characters long)", n);
    char t[TOML_MAX_TOKEN + 1];
    memcpy(t, s, n);
    t[n] = '\0';
    if ((n > 2 && is_digit((unsigned char)t[0]) && t[2] == ':') ||
        (n >= 10 && all_digits(t, 4) && t[4] == '-'))
        return parse_datetime(ps, t, n, v);
    return parse_number(ps, t, n, v);
}

static bool parse_value(parser_t *ps, nixl_toml_value_t *v, int depth, uint32_t owner)
{
    if (depth > TOML_MAX_DEPTH)
        return fail(ps, "values nested more than %d deep", TOML_MAX_DEPTH);
    int c = peek(ps, 0);
    if (c < 0 || at_newline(ps))
        return fail(ps, "missing value after '='");
    if (c == '"' || c == '\'') {
        nixl_buf_t b;
        nixl_buf_init(&b, 0);
        if (!parse_string(ps, &b, true)) {
            nixl_buf_free(&b);
            return false;
        }
        size_t len = b.len;
        nixl_buf_append_u8(&b, '\0');
        if (b.oom) {
            nixl_buf_free(&b);
            return fail_oom(ps);
        }
        v->type = NIXL_TOML_STRING;
        v->str = (char *)nixl_buf_take(&b, NULL);
        v->str_len = len;
        return true;
    }
    if (c == '[') {
        v->type = NIXL_TOML_ARRAY;
        return parse_array(ps, depth);
    }
    if (c == '{') {
        v->type = NIXL_TOML_INLINE_TABLE;
        return parse_inline_table(ps, depth, owner);
    }
    size_t left = (size_t)(ps->end - ps->p);
    if (left >= 4 && !memcmp(ps->p, "true", 4) && !is_token_char(peek(ps, 4))) {
        ps->p += 4;
        v->type = NIXL_TOML_BOOL;
        v->b = true;
        return true;
    }
    if (left >= 5 && !memcmp(ps->p, "false", 5) && !is_token_char(peek(ps, 5))) {
        ps->p += 5;
        v->type = NIXL_TOML_BOOL;
        v->b = false;
        return true;
    }
    return parse_token(ps, v);
}

/* [table] or [[array.of.tables]]: the keys after it are no longer NIXL options. */
static bool parse_header(parser_t *ps)
{
    unsigned line = ps->line;
    bool array = peek(ps, 1) == '[';
    ps->p += array ? 2 : 1;
    skip_ws(ps);
    key_parts_t k;
    bool ok = parse_key(ps, &k);
    if (ok) {
        skip_ws(ps);
        if (peek(ps, 0) != ']' || (array && peek(ps, 1) != ']'))
            ok = fail_unexpected(ps, array ? "in a table header (expected ']]')"
                                           : "in a table header (expected ']')");
    }
    if (ok) {
        ps->p += array ? 2 : 1;
        ok = define_header(ps, &k, array, line);
    }
    nixl_buf_free(&k.buf);
    return ok;
}

static bool parse_document(parser_t *ps)
{
    if (peek(ps, 0) == 0xef && peek(ps, 1) == 0xbb && peek(ps, 2) == 0xbf)
        ps->p += 3; /* byte order mark */
    if (!check_utf8(ps))
        return false;
    ps->cur = tree_new(ps, NO_NODE, NULL, 0, NODE_HEADER, 1);
    if (ps->cur != ROOT_NODE)
        return false;
    for (;;) {
        skip_ws(ps);
        if (at_end(ps))
            return true;
        if (peek(ps, 0) == '#') {
            if (!skip_comment(ps))
                return false;
        } else if (at_newline(ps)) {
            eat_newline(ps);
        } else if (peek(ps, 0) == '[') {
            if (!parse_header(ps) || !expect_line_end(ps, "after a table header"))
                return false;
        } else {
            if (!parse_keyval(ps, ps->cur, 0) || !expect_line_end(ps, "after a value"))
                return false;
        }
    }
}

nixl_status_t nixl_toml_parse(const char *path, const char *text, size_t len,
                              nixl_toml_doc_t *doc)
{
    parser_t ps = {.p = text, .end = text + len, .line = 1, .doc = doc};
    bool ok = parse_document(&ps) && !ps.failed; /* failed: out of memory in a lookup */
    tree_free(&ps.tree);
    if (ok)
        return NIXL_SUCCESS;
    nixl_toml_free(doc);
    if (ps.oom)
        return nixl_err_oom("parsing %s, line %u", path, ps.err_line);
    return nixl_err(NIXL_ERR_MISMATCH, "%s:%u: %s", path, ps.err_line, ps.err);
}

const nixl_toml_entry_t *nixl_toml_find(const nixl_toml_doc_t *doc, const char *name)
{
    return doc_find(doc, name, strlen(name));
}

const char *nixl_toml_type_name(nixl_toml_type_t type)
{
    switch (type) {
    case NIXL_TOML_STRING: return "string";
    case NIXL_TOML_INTEGER: return "integer";
    case NIXL_TOML_FLOAT: return "float";
    case NIXL_TOML_BOOL: return "boolean";
    case NIXL_TOML_TIME: return "time";
    case NIXL_TOML_DATETIME: return "date-time";
    case NIXL_TOML_ARRAY: return "array";
    case NIXL_TOML_INLINE_TABLE: return "inline table";
    case NIXL_TOML_TABLE: return "table";
    }
    return "value";
}

void nixl_toml_free(nixl_toml_doc_t *doc)
{
    for (size_t i = 0; i < doc->count; i++) {
        free(doc->entries[i].key);
        free(doc->entries[i].v.str);
    }
    free(doc->entries);
    nixl_hmap_free(&doc->index);
    *doc = (nixl_toml_doc_t){0};
}
