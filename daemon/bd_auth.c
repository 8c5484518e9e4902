/* bd_auth.c - see bd_auth.h. */
#include <errno.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_auth.h"

struct bd_principal {
	char identity[BD_IDENTITY_LEN_MAX + 1];
	bd_role role;
	size_t n_prefixes;
	char *prefixes[BD_PREFIXES_MAX];
};

struct bd_auth {
	bd_principal *principals;
	size_t n;
	size_t cap;
};

static const char *const role_names[] = {"none", "reader", "kernel", "admin"};
static const char *const access_names[] = {"nothing", "read", "mutate", "administer"};

static void free_principals(bd_auth *a)
{
	for (size_t i = 0; i < a->n; i++)
		for (size_t k = 0; k < a->principals[i].n_prefixes; k++)
			free(a->principals[i].prefixes[k]);
	free(a->principals);
}

void bd_auth_destroy(bd_auth *a)
{
	if (!a)
		return;
	free_principals(a);
	free(a);
}

static bd_principal *find(const bd_auth *a, const char *identity)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->principals[i].identity, identity) == 0)
			return &a->principals[i];
	return NULL;
}

static bd_principal *find_or_add(bd_auth *a, const char *identity)
{
	bd_principal *p = find(a, identity);

	if (p)
		return p;
	if (a->n == BD_PRINCIPALS_MAX || strlen(identity) > BD_IDENTITY_LEN_MAX)
		return NULL;
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		bd_principal *grown = realloc(a->principals, cap * sizeof(*grown));
		if (!grown)
			return NULL;
		a->principals = grown;
		a->cap = cap;
	}
	p = &a->principals[a->n++];
	memset(p, 0, sizeof(*p));
	memcpy(p->identity, identity, strlen(identity) + 1);
	return p;
}

/* ---- the permission file ---- */

typedef struct file_ctx {
	bd_auth *a;
	char why[512];
	bool failed;
} file_ctx;

static int set_role(bd_principal *p, const char *value, file_ctx *f)
{
	for (int r = BD_ROLE_READER; r <= BD_ROLE_ADMIN; r++) {
		if (strcmp(value, role_names[r]) == 0) {
			p->role = (bd_role)r;
			return 1;
		}
	}
	snprintf(f->why, sizeof(f->why), "[%s] role: must be reader, kernel or admin, not `%s`",
	         p->identity, value);
	return 0;
}

static int add_prefix(bd_principal *p, const char *value, file_ctx *f)
{
	if (!*value || strlen(value) > BD_IDENTITY_LEN_MAX) {
		snprintf(f->why, sizeof(f->why), "[%s] capability_prefix: must be 1 to %d bytes",
		         p->identity, BD_IDENTITY_LEN_MAX);
		return 0;
	}
	if (p->n_prefixes == BD_PREFIXES_MAX) {
		snprintf(f->why, sizeof(f->why), "[%s] capability_prefix: at most %d per identity",
		         p->identity, BD_PREFIXES_MAX);
		return 0;
	}
	p->prefixes[p->n_prefixes] = strdup(value);
	if (!p->prefixes[p->n_prefixes]) {
		snprintf(f->why, sizeof(f->why), "out of memory");
		return 0;
	}
	p->n_prefixes++;
	return 1;
}

static int on_pair(void *user, const char *section, const char *key, const char *value)
{
	file_ctx *f = user;
	bd_principal *p;

	if (f->failed)
		return 1;
	if (!*section) {
		snprintf(f->why, sizeof(f->why), "`%s` outside an [identity] section", key);
	} else if (!(p = find_or_add(f->a, section))) {
		snprintf(f->why, sizeof(f->why),
		         "[%s]: identity longer than %d bytes or more than %d"
		         " identities (or out of memory)",
		         section, BD_IDENTITY_LEN_MAX, BD_PRINCIPALS_MAX);
	} else if (strcmp(key, "role") == 0) {
		if (set_role(p, value, f))
			return 1;
	} else if (strcmp(key, "capability_prefix") == 0) {
		if (add_prefix(p, value, f))
			return 1;
	} else {
		snprintf(f->why, sizeof(f->why), "[%s]: unknown key `%s` (role, capability_prefix)",
		         section, key);
	}
	f->failed = true;
	return 0;
}

static int check_roles(const bd_auth *a, const char *path, char *err, size_t len)
{
	for (size_t i = 0; i < a->n; i++) {
		if (a->principals[i].role == BD_ROLE_NONE) {
			snprintf(err, len, "%s: [%s] has no role", path, a->principals[i].identity);
			return -EINVAL;
		}
	}
	return 0;
}

int bd_auth_load(const char *path, bd_auth **out, char *err, size_t err_len)
{
	bd_auth *a = calloc(1, sizeof(*a));
	file_ctx f = {.a = a};

	*out = NULL;
	if (!a) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	if (!path || !*path) {
		bd_principal *u = find_or_add(a, "unix"), *l = find_or_add(a, "loopback");
		if (!u || !l) {
			bd_auth_destroy(a);
			snprintf(err, err_len, "out of memory");
			return -ENOMEM;
		}
		u->role = l->role = BD_ROLE_KERNEL;
		*out = a;
		return 0;
	}
	int line = ini_parse(path, on_pair, &f);
	if (line < 0)
		snprintf(err, err_len, "cannot read the permission file %s: %s", path,
		         strerror(errno ? errno : EIO));
	else if (line > 0)
		snprintf(err, err_len, "%s:%d: %s", path, line,
		         f.failed ? f.why : "not a `key = value` line or an [identity]");
	if (line != 0 || check_roles(a, path, err, err_len)) {
		bd_auth_destroy(a);
		return -EINVAL;
	}
	*out = a;
	return 0;
}

/* ---- identities ---- */

/* The first value of an auth property, if any. */
static bool property(const grpc_auth_context *ctx, const char *name, char *out, size_t len)
{
	grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, name);
	const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);

	if (!p || !p->value || p->value_length == 0 || p->value_length >= len)
		return false;
	memcpy(out, p->value, p->value_length);
	out[p->value_length] = '\0';
	return true;
}

static bool tls_identity(grpc_call *call, char *out, size_t len, bool *over_tls)
{
	static const char *const preferred[] = {
	        GRPC_PEER_SPIFFE_ID_PROPERTY_NAME, GRPC_PEER_URI_PROPERTY_NAME,
	        GRPC_PEER_DNS_PROPERTY_NAME, GRPC_X509_CN_PROPERTY_NAME};
	grpc_auth_context *ctx = grpc_call_auth_context(call);
	char type[32];
	bool found = false;

	*over_tls = false;
	if (!ctx)
		return false;
	*over_tls = property(ctx, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME, type, sizeof(type)) &&
	            strcmp(type, "ssl") == 0;
	if (*over_tls && grpc_auth_context_peer_is_authenticated(ctx))
		for (size_t i = 0; !found && i < sizeof(preferred) / sizeof(preferred[0]); i++)
			found = property(ctx, preferred[i], out, len);
	grpc_auth_context_release(ctx);
	return found;
}

static bool is_loopback_peer(const char *peer)
{
	return strncmp(peer, "ipv4:127.", 9) == 0 || strncmp(peer, "ipv6:[::1]", 10) == 0 ||
	       strncmp(peer, "ipv6:[::ffff:127.", 17) == 0;
}

void bd_auth_identity(grpc_call *call, char *out, size_t len)
{
	bool over_tls;

	if (tls_identity(call, out, len, &over_tls))
		return;
	if (over_tls) {
		snprintf(out, len, "anonymous");
		return;
	}
	char *peer = grpc_call_get_peer(call);
	if (!peer)
		snprintf(out, len, "unknown");
	else if (strncmp(peer, "unix:", 5) == 0)
		snprintf(out, len, "unix");
	else if (is_loopback_peer(peer))
		snprintf(out, len, "loopback");
	else /* "ipv4:10.1.2.3:5555" -> "ip:10.1.2.3" */
		snprintf(out, len, "ip:%.*s", (int)(strrchr(peer, ':') - strchr(peer, ':') - 1),
		         strchr(peer, ':') + 1);
	gpr_free(peer);
}

/* ---- decisions ---- */

grpc_status_code bd_auth_check(const bd_auth *a, const char *identity, bd_access need,
                               const bd_principal **principal, char *why, size_t why_len)
{
	const bd_principal *p = find(a, identity);

	*principal = p;
	if (need == BD_ACCESS_OPEN)
		return GRPC_STATUS_OK;
	if (!p) {
		snprintf(why, why_len, "identity `%s` is not known to this budgetd", identity);
		return GRPC_STATUS_UNAUTHENTICATED;
	}
	if ((int)p->role < (int)need) {
		snprintf(why, why_len, "identity `%s` (role %s) may not %s", identity,
		         role_names[p->role], access_names[need]);
		return GRPC_STATUS_PERMISSION_DENIED;
	}
	return GRPC_STATUS_OK;
}

bool bd_auth_capability_allowed(const bd_principal *p, const char *capability_id)
{
	if (!p || p->n_prefixes == 0)
		return p != NULL;
	for (size_t i = 0; i < p->n_prefixes; i++)
		if (strncmp(capability_id, p->prefixes[i], strlen(p->prefixes[i])) == 0)
			return true;
	return false;
}

bool bd_auth_restricted(const bd_principal *p)
{
	return p && p->n_prefixes > 0;
}
