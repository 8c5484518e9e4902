/* bd_app.h - what the service handlers share. */
#ifndef BD_APP_H
#define BD_APP_H

#include <stdint.h>

#include "bd_auth.h"
#include "bd_grpc.h"
#include "bd_metrics.h"
#include "bd_translate.h"
#include "bd_writer.h"

#define BD_VERSION "0.1.0"

typedef struct bd_app {
	bd_writer *writer;
	const char *authority_id;       /* this authority's name (GetServerInfo) */
	int64_t started_at_ns;          /* Unix time */
	bd_metrics *metrics;            /* NULL when metrics are off */
	const bd_auth *auth;            /* the access policy, for streaming calls */
	bd_hold_defaults hold_defaults; /* --hold-ttl, --on-expiry */
} bd_app;

/* Registers every budgetd.v1.BudgetAuthority method on the server. */
int bd_budget_register(bd_server *server);

#endif
