/*
 * az_test.h - what the AZURE_BLOB tests share: a clean environment (no AZURE_STORAGE_*
 * fallback of the machine running them may change what a case means), and the independent
 * client's container. After obj_test.h.
 */
#ifndef NIXL_TEST_AZ_TEST_H
#define NIXL_TEST_AZ_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static inline void az_clear_storage_env(void)
{
    static const char *const clear[] = {"AZURE_STORAGE_CONNECTION_STRING",
                                        "AZURE_STORAGE_ACCOUNT_URL",
                                        "AZURE_STORAGE_CONTAINER_NAME",
                                        "AZURE_STORAGE_ACCOUNT_NAME",
                                        "AZURE_STORAGE_ACCOUNT",
                                        "AZURE_STORAGE_ACCOUNT_KEY",
                                        "AZURE_STORAGE_KEY",
                                        "AZURE_STORAGE_SAS_TOKEN",
                                        "AZURE_CA_BUNDLE"};
    for (size_t i = 0; i < sizeof(clear) / sizeof(clear[0]); i++)
        unsetenv(clear[i]);
}

/* What every AZURE_BLOB test needs: azurite-blob (argv[1], else NIXL_AZURITE), az_check.py
 * (argv[2], else NIXL_AZ_CHECK) and python3 to run it. 0, or 77 (skip) with the reason. */
static inline int az_need_azurite(int argc, char **argv)
{
    if (argc > 2) {
        setenv("NIXL_AZURITE", argv[1], 0);
        setenv("NIXL_AZ_CHECK", argv[2], 0);
    }
    const char *bin = getenv("NIXL_AZURITE");
    if (!bin || access(bin, X_OK) != 0) {
        fprintf(stderr,
                "azurite-blob not found (NIXL_AZURITE='%s'): run "
                "scripts/install-deps.sh, which installs azurite from npm into build-npm/\n",
                bin ? bin : "");
        return 77;
    }
    if (system("python3 -c '' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "no python3 for the independent client\n");
        return 77;
    }
    return 0;
}

/* Make check (az_check.py on the test's account) obj_test.h's independent client and create
 * the container "ctr" with it; 0, or -1 with the reason printed. */
static inline int az_use_check(int (*check)(const char *fmt, ...))
{
    ot_check = check;
    if (check("mkcontainer") != 0) {
        fprintf(stderr, "az_check.py could not create the container\n");
        return -1;
    }
    return 0;
}

#endif
