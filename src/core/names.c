/* names.c - string forms of the public enums, and small library-wide functions. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "nixl.h"

/* Both from NIXL_STATUS_MAP (nixl.h): a status is listed there and nowhere else. */
const char *nixl_status_str(nixl_status_t status)
{
    switch (status) {
#define STATUS_NAME_(name, value, message)                                                      \
    case NIXL_##name: return "NIXL_" #name;
        NIXL_STATUS_MAP(STATUS_NAME_)
#undef STATUS_NAME_
    }
    return "BAD_STATUS";
}

const char *nixl_status_message(nixl_status_t status)
{
    switch (status) {
#define STATUS_MESSAGE_(name, value, message)                                                   \
    case NIXL_##name: return message;
        NIXL_STATUS_MAP(STATUS_MESSAGE_)
#undef STATUS_MESSAGE_
    }
    return "unknown status";
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
