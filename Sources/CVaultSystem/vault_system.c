#define _GNU_SOURCE
#include "vault_system.h"
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <sys/prctl.h>

int vault_set_non_dumpable(void) {
    return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int vault_reserve_space(int fd, off_t offset, off_t length) {
    return fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length) == 0 ? 0 : errno;
}

void vault_release_free_memory(void) {
    malloc_trim(0);
}
