/* auth_config.c - where the shared secret comes from (auth.h); no cryptography here, so the
 * build without libcrypto parses the same options and can say why it refuses them. */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "error.h"

#define SECRET_FILE_MAX 4096
#define DEFAULT_SKEW_S 300

bool nixl_auth_is_envelope(const void *data, size_t len)
{
    return len >= NIXL_AUTH_PREFIX_LEN && memcmp(data, NIXL_AUTH_PREFIX, NIXL_AUTH_PREFIX_LEN) == 0;
}

/* The secret held in `path`: the file must belong to no one else's eyes (mode & 077 == 0). A
 * trailing newline (echo secret > file) is not part of it. */
static nixl_status_t secret_read(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "auth secret file '%s' cannot be opened: %s",
                        path, strerror(errno));
    struct stat st;
    nixl_status_t res = NIXL_SUCCESS;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        res = nixl_err(NIXL_ERR_INVALID_PARAM, "auth secret file '%s' is not a regular file",
                       path);
    else if (st.st_mode & 077)
        res = nixl_err(NIXL_ERR_INVALID_PARAM,
                       "auth secret file '%s' is accessible by group or others (mode %04o): "
                       "run chmod 600 on it", path, (unsigned)(st.st_mode & 07777));
    else if (st.st_size > SECRET_FILE_MAX)
        res = nixl_err(NIXL_ERR_INVALID_PARAM, "auth secret file '%s' is larger than %d bytes",
                       path, SECRET_FILE_MAX);
    char *buf = res == NIXL_SUCCESS ? malloc(SECRET_FILE_MAX + 1) : NULL;
    if (res == NIXL_SUCCESS && !buf)
        res = nixl_err_oom("auth secret");
    ssize_t n = buf ? read(fd, buf, SECRET_FILE_MAX) : 0;
    close(fd);
    if (res != NIXL_SUCCESS)
        return res;
    if (n < 0) {
        free(buf);
        return nixl_err(NIXL_ERR_INVALID_PARAM, "auth secret file '%s': %s", path,
                        strerror(errno));
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    *out = buf;
    *len = (size_t)n;
    return NIXL_SUCCESS;
}

nixl_status_t nixl_auth_from_config(const char *secret, const char *secret_file,
                                    nixl_auth_t **out)
{
    *out = NULL;
    char *env = NULL, *file = NULL, *data = NULL;
    size_t len = 0;
    nixl_status_t st = NIXL_SUCCESS;
    if (!(secret && *secret) && !(secret_file && *secret_file)) {
        if ((st = nixl_config_string("NIXL_AUTH_SECRET", &env)) != NIXL_SUCCESS ||
            (st = nixl_config_string("NIXL_AUTH_SECRET_FILE", &file)) != NIXL_SUCCESS)
            goto out;
        secret = env;
        secret_file = file;
    }
    if (secret && *secret) {
        data = strdup(secret);
        len = strlen(secret);
        if (!data)
            st = nixl_err_oom("auth secret");
    } else if (secret_file && *secret_file) {
        st = secret_read(secret_file, &data, &len);
    } else {
        goto out; /* no secret: the reference protocol */
    }
    if (st != NIXL_SUCCESS)
        goto out;
    if (len < NIXL_AUTH_MIN_SECRET) {
        st = nixl_err(NIXL_ERR_INVALID_PARAM, "the auth secret has %zu bytes; at least %d are "
                      "required (e.g. openssl rand -hex 32)", len, NIXL_AUTH_MIN_SECRET);
        goto out;
    }
    uint64_t skew = DEFAULT_SKEW_S;
    if (nixl_config_exists("NIXL_AUTH_MAX_SKEW_S") &&
        (st = nixl_config_u64("NIXL_AUTH_MAX_SKEW_S", &skew)) != NIXL_SUCCESS)
        goto out;
    if (skew < 1 || skew > 86400) {
        st = nixl_err(NIXL_ERR_INVALID_PARAM, "NIXL_AUTH_MAX_SKEW_S=%llu is not in [1, 86400]",
                      (unsigned long long)skew);
        goto out;
    }
    st = nixl_auth_create(data, len, (uint32_t)skew, out);
out:
    if (data) {
        explicit_bzero(data, len);
        free(data);
    }
    if (env) {
        explicit_bzero(env, strlen(env));
        free(env);
    }
    free(file);
    return st;
}
