/* names.c - string forms of the public enums, and small library-wide functions. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "nixl.h"

const char *nixl_status_str(nixl_status_t status)
{
    switch (status) {
    case NIXL_IN_PROG: return "NIXL_IN_PROG";
    case NIXL_SUCCESS: return "NIXL_SUCCESS";
    case NIXL_ERR_NOT_POSTED: return "NIXL_ERR_NOT_POSTED";
    case NIXL_ERR_INVALID_PARAM: return "NIXL_ERR_INVALID_PARAM";
    case NIXL_ERR_BACKEND: return "NIXL_ERR_BACKEND";
    case NIXL_ERR_NOT_FOUND: return "NIXL_ERR_NOT_FOUND";
    case NIXL_ERR_MISMATCH: return "NIXL_ERR_MISMATCH";
    case NIXL_ERR_NOT_ALLOWED: return "NIXL_ERR_NOT_ALLOWED";
    case NIXL_ERR_REPOST_ACTIVE: return "NIXL_ERR_REPOST_ACTIVE";
    case NIXL_ERR_UNKNOWN: return "NIXL_ERR_UNKNOWN";
    case NIXL_ERR_NOT_SUPPORTED: return "NIXL_ERR_NOT_SUPPORTED";
    case NIXL_ERR_REMOTE_DISCONNECT: return "NIXL_ERR_REMOTE_DISCONNECT";
    case NIXL_ERR_CANCELED: return "NIXL_ERR_CANCELED";
    case NIXL_ERR_NO_TELEMETRY: return "NIXL_ERR_NO_TELEMETRY";
    }
    return "BAD_STATUS";
}

const char *nixl_mem_str(nixl_mem_t type)
{
    switch (type) {
    case NIXL_DRAM_SEG: return "DRAM_SEG";
    case NIXL_VRAM_SEG: return "VRAM_SEG";
    case NIXL_BLK_SEG: return "BLK_SEG";
    case NIXL_OBJ_SEG: return "OBJ_SEG";
    case NIXL_FILE_SEG: return "FILE_SEG";
    }
    return "BAD_SEG";
}

const char *nixl_op_str(nixl_xfer_op_t op)
{
    switch (op) {
    case NIXL_READ: return "READ";
    case NIXL_WRITE: return "WRITE";
    }
    return "BAD_OP";
}

nixl_status_t nixl_mem_from_str(const char *name, nixl_mem_t *out)
{
    static const struct {
        const char *name;
        nixl_mem_t type;
    } names[] = {
        {"DRAM", NIXL_DRAM_SEG}, {"DRAM_SEG", NIXL_DRAM_SEG}, {"cpu", NIXL_DRAM_SEG},
        {"VRAM", NIXL_VRAM_SEG}, {"VRAM_SEG", NIXL_VRAM_SEG}, {"cuda", NIXL_VRAM_SEG},
        {"BLOCK", NIXL_BLK_SEG}, {"BLK", NIXL_BLK_SEG},       {"BLK_SEG", NIXL_BLK_SEG},
        {"OBJ", NIXL_OBJ_SEG},   {"OBJ_SEG", NIXL_OBJ_SEG},   {"FILE", NIXL_FILE_SEG},
        {"FILE_SEG", NIXL_FILE_SEG},
    };
    if (!name || !out)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "mem_from_str: name and out are required");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(names[i].name, name)) {
            *out = names[i].type;
            return NIXL_SUCCESS;
        }
    return nixl_err(NIXL_ERR_INVALID_PARAM, "'%s' is not a memory type (DRAM, VRAM, BLOCK, OBJ, "
                                            "FILE)", name);
}

void nixl_free(void *ptr)
{
    free(ptr);
}

const char *nixl_version(void)
{
    return NIXL_VERSION_STRING;
}

const char *nixl_last_error(void)
{
    return nixl_err_text();
}
