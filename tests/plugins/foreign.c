/*
 * Looks like a plugin of the reference NIXL (its C++ plugins export nixl_plugin_init) or of
 * this library's ABI 1. The loader must recognise and refuse it without running any of its
 * code: loading it at all would run the constructor below, which kills the process.
 */
#include <stdlib.h>

void *nixl_plugin_init(void);
void *nixl_plugin_init(void)
{
    abort();
}

__attribute__((constructor)) static void foreign_constructor(void)
{
    abort();
}
