/*
 * file_query.c - queryMem facts of a file (file_query.h).
 */
#include <fcntl.h>
#include <linux/fs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file_query.h"

static bool add_param(nixl_param_list_t *l, const char *key, unsigned long long v)
{
    char num[32];
    snprintf(num, sizeof(num), "%llu", v);
    nixl_param_t *p = &l->items[l->count];
    p->key = strdup(key);
    p->value = strdup(num);
    if (!p->key || !p->value) {
        free((void *)p->key);
        free((void *)p->value);
        return false;
    }
    l->count++;
    return true;
}

bool nixl_file_query(const char *path, nixl_query_resp_t *out)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return true;
    unsigned long long size = (unsigned long long)st.st_size;
    if (S_ISBLK(st.st_mode)) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        uint64_t bytes = 0;
        if (fd >= 0 && ioctl(fd, BLKGETSIZE64, &bytes) == 0)
            size = bytes;
        if (fd >= 0)
            close(fd);
    }
    out->params.items = calloc(3, sizeof(nixl_param_t));
    if (!out->params.items || !add_param(&out->params, "size", size) ||
        !add_param(&out->params, "mode", st.st_mode) ||
        !add_param(&out->params, "mtime", (unsigned long long)st.st_mtime))
        return false;
    out->has_value = true;
    return true;
}
