#ifndef GRANTEX_VAULT_SYSTEM_H
#define GRANTEX_VAULT_SYSTEM_H

/// Marks the process non-dumpable (prctl(PR_SET_DUMPABLE, 0)): no core dumps, and /proc/<pid>/mem
/// and ptrace are closed to other processes of the same uid. Swift's Glibc overlay does not export
/// prctl (a variadic function), hence this one-line C shim. Returns 0 on success, -1 on error.
int vault_set_non_dumpable(void);

/// 1 when the process is dumpable, 0 when not, -1 on error.
int vault_is_dumpable(void);

#endif
