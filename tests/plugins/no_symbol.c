/* A shared object that is not a plugin: it exports no nixl_plugin_init. */
int nixl_not_a_plugin(void);

int nixl_not_a_plugin(void)
{
    return 42;
}
