/* bd_auth.h - who is calling, and what they may do.
 *
 * The identity of a caller is the verified client certificate's subject
 * (SAN URI such as a SPIFFE id, else SAN DNS, else CN) on a mutual-TLS
 * listener; "unix" or "loopback" on a local plaintext listener; "anonymous"
 * for TLS without a client certificate; "ip:ADDR" for plaintext from
 * elsewhere (only with --insecure).
 *
 * A permission file (INI, one section per identity) grants roles:
 *     [spiffe://prod/kernel-a]
 *     role = kernel            ; reader | kernel | admin
 *     capability_prefix = team-a/   ; optional, repeatable
 * reader: reads; kernel: mutations and reads; admin: also BudgetAdmin. With
 * prefixes, the identity only sees and changes capabilities under them.
 * Without a file: unix and loopback callers are kernels, nobody else.
 */
#ifndef BD_AUTH_H
#define BD_AUTH_H

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stddef.h>

#define BD_IDENTITY_LEN_MAX 256
#define BD_PRINCIPALS_MAX   4096
#define BD_PREFIXES_MAX     16

typedef enum bd_role {
	BD_ROLE_NONE = 0,
	BD_ROLE_READER = 1,
	BD_ROLE_KERNEL = 2,
	BD_ROLE_ADMIN = 3,
} bd_role;

/* What a method needs; ordered like the roles that grant it. */
typedef enum bd_access {
	BD_ACCESS_OPEN = 0,   /* anyone: health, reflection */
	BD_ACCESS_READ = 1,   /* reader and up */
	BD_ACCESS_MUTATE = 2, /* kernel and up */
	BD_ACCESS_ADMIN = 3,  /* admin */
} bd_access;

typedef struct bd_principal bd_principal;
typedef struct bd_auth bd_auth;

/* Loads the permission file, or the default policy when path is NULL or
 * empty. Errors name FILE:LINE. *out is owned by the caller. */
int bd_auth_load(const char *path, bd_auth **out, char *err, size_t err_len);
void bd_auth_destroy(bd_auth *a);

/* The caller's identity (see above) into out. */
void bd_auth_identity(grpc_call *call, char *out, size_t len);

/* Decides a call needing `need`: GRPC_STATUS_OK (with *principal set, NULL
 * for BD_ACCESS_OPEN by an unknown identity), UNAUTHENTICATED for an
 * identity the policy does not know, PERMISSION_DENIED for a role too low;
 * `why` says which. The principal lives as long as `a`. */
grpc_status_code bd_auth_check(const bd_auth *a, const char *identity, bd_access need,
                               const bd_principal **principal, char *why, size_t why_len);

/* True when the principal may touch this capability (no prefixes: all). */
bool bd_auth_capability_allowed(const bd_principal *p, const char *capability_id);

/* True when the principal is limited to some capability prefixes. */
bool bd_auth_restricted(const bd_principal *p);

#endif
