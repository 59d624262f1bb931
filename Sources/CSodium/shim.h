#ifndef GRANTEX_VAULT_CSODIUM_SHIM_H
#define GRANTEX_VAULT_CSODIUM_SHIM_H
#include <sodium.h>
#endif
