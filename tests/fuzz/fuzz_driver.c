/*
 * fuzz_driver.c - runs a libFuzzer entry point without libFuzzer: over every file of the
 * corpus directories given, and over every truncation of each, so the corpus is a regression
 * test on any compiler. Each input is an exact-size heap copy, so valgrind or ASan catches a
 * read past its end.
 *
 * usage: fuzz_driver CORPUS_DIR_OR_FILE...
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *p = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *q = realloc(p, cap);
            if (!q) {
                free(p);
                fclose(f);
                return -1;
            }
            p = q;
        }
        size_t got = fread(p + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(p);
        return -1;
    }
    *out = p;
    *len = n;
    return 0;
}

static void run_one(const uint8_t *data, size_t len)
{
    /* malloc(0) may give NULL; libFuzzer hands a valid pointer even for empty input */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy) {
        fprintf(stderr, "fuzz_driver: out of memory\n");
        exit(1);
    }
    if (len)
        memcpy(copy, data, len);
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
}

/* Returns the number of files run, or -1 when one could not be read. */
static long run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        struct dirent **names;
        int n = scandir(path, &names, NULL, alphasort);
        if (n < 0) {
            perror(path);
            return -1;
        }
        long total = 0;
        for (int i = 0; i < n; i++) {
            if (names[i]->d_name[0] != '.' && total >= 0) {
                char child[4096];
                snprintf(child, sizeof(child), "%s/%s", path, names[i]->d_name);
                long got = run_path(child);
                total = got < 0 ? -1 : total + got;
            }
            free(names[i]);
        }
        free(names);
        return total;
    }
    uint8_t *data;
    size_t len;
    if (read_file(path, &data, &len) != 0) {
        perror(path);
        return -1;
    }
    for (size_t cut = 0; cut <= len; cut++)
        run_one(data, cut);
    free(data);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    long files = 0;
    for (int i = 1; i < argc; i++) {
        long got = run_path(argv[i]);
        if (got < 0)
            return 1;
        files += got;
    }
    if (files == 0) {
        fprintf(stderr, "%s: no inputs found\n", argv[0]);
        return 1;
    }
    printf("%ld inputs, each with all its truncations: ok\n", files);
    return 0;
}
