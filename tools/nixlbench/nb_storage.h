/*
 * nb_storage.h - the single-process storage mode of nixlbench (nb_storage.c).
 */
#ifndef NB_STORAGE_H
#define NB_STORAGE_H

#include "nb.h"

/* Run the whole sweep against files with the storage backend of cfg (POSIX). Prints the
 * config block and the table; returns 0 or an exit code after printing why. */
int nb_storage_run(const nb_cfg_t *cfg);

#endif
