#ifndef GRANTEX_VAULT_SYSTEM_H
#define GRANTEX_VAULT_SYSTEM_H

/// Marks the process non-dumpable (prctl(PR_SET_DUMPABLE, 0)): no core dumps, and /proc/<pid>/mem
/// and ptrace are closed to other processes of the same uid. Swift's Glibc overlay does not export
/// prctl (a variadic function), hence this one-line C shim. Returns 0 on success, -1 on error.
int vault_set_non_dumpable(void);


#include <sys/types.h>

/// Reserves disk blocks for [offset, offset + length) of fd without changing the file size
/// (fallocate with FALLOC_FL_KEEP_SIZE), so later appends into that range cannot fail for lack of
/// space. Returns 0 on success, else an errno value (EOPNOTSUPP where the filesystem cannot).
int vault_reserve_space(int fd, off_t offset, off_t length);

/// Returns freed heap memory to the system (glibc malloc_trim), after start-up work that needed a
/// lot of it at once.
void vault_release_free_memory(void);

#endif
