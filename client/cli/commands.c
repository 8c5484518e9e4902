/* commands.c - budgetctl: one function per subcommand, and its --help. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* ---- options of the subcommands -------------------------------------------- */

enum {
	O_CAPABILITY = OPT_FIRST_COMMAND_OPTION,
	O_GRANT,
	O_UNITS,
	O_MAX_INVOCATIONS,
	O_MAX_COST_PER_INVOCATION,
	O_MAX_TOTAL,
	O_HOLD,
	O_EVENT,
	O_AUTHORITY_ID,
	O_LEASE_ID,
	O_LEASE_EPOCH,
	O_EXPOSED,
	O_REALIZED,
	O_LIMIT,
	O_AFTER,
	O_SERVICE,
	O_PATH,
	O_DRY_RUN,
	O_FOLLOW,
	O_TTL,
	O_ON_EXPIRY,
	O_DISPOSITION,
	O_OLDER_THAN,
	O_PAGE_TOKEN,
	O_ALL,
};

/* Each option is also accepted under its .proto field name. */
/* clang-format off */
#define OPT(name, id)        {name, required_argument, NULL, id}
#define OPTS_CAPABILITY      OPT("capability", O_CAPABILITY), OPT("capability-id", O_CAPABILITY)
#define OPTS_GRANT           OPT("grant", O_GRANT), OPT("grant-index", O_GRANT)
#define OPTS_HOLD            OPT("hold", O_HOLD), OPT("hold-id", O_HOLD)
#define OPTS_EVENT           OPT("event", O_EVENT), OPT("event-id", O_EVENT)
#define OPTS_AUTHORITY       OPT("authority-id", O_AUTHORITY_ID), OPT("lease-id", O_LEASE_ID), \
                             OPT("lease-epoch", O_LEASE_EPOCH)
#define OPTS_MAX_INVOCATIONS OPT("max-invocations", O_MAX_INVOCATIONS)
#define OPTS_TTL             OPT("ttl", O_TTL), OPT("ttl-seconds", O_TTL)
#define OPTS_END             {NULL, 0, NULL, 0}
/* clang-format on */

/* Everything any subcommand can be given. */
typedef struct args {
	const char *capability;
	bool has_grant;
	uint64_t grant;
	bool has_units;
	uint64_t units;
	bool has_max_invocations;
	uint64_t max_invocations;
	bool has_max_cost_per_invocation;
	uint64_t max_cost_per_invocation;
	bool has_max_total;
	uint64_t max_total;
	const char *hold;
	const char *event;
	const char *authority_id;
	const char *lease_id;
	bool has_lease_epoch;
	uint64_t lease_epoch;
	bool has_exposed;
	uint64_t exposed;
	bool has_realized;
	uint64_t realized;
	bool has_limit;
	uint64_t limit;
	bool has_after;
	uint64_t after;
	const char *service;
	const char *path;
	bool dry_run;
	bool follow;
	bool has_ttl;
	uint64_t ttl;
	bool has_on_expiry;
	int on_expiry; /* a bc_expiry_policy */
	bool has_disposition;
	int disposition; /* a bc_hold_disposition */
	bool has_older_than;
	bc_timestamp older_than;
	const char *page_token;
	bool all;
	char **positional; /* what is left after the options */
	int npositional;
	bc_authority authority; /* filled by need_authority */
} args;

static int parse_number(const cli *c, const char *name, const char *s, uint64_t max, bool *has,
                        uint64_t *out)
{
	int rc = cli_parse_u64(c, name, s, max, out);

	if (rc == 0)
		*has = true;
	return rc;
}

static int nonempty(const cli *c, const char *name, const char *s, const char **out)
{
	if (!s[0])
		return cli_usage_error(c, "%s: must not be empty", name);
	*out = s;
	return 0;
}

/* The accepted values of an enum option: the .proto value names without
 * their prefix, in lower case. */
typedef struct choices {
	const char *(*name)(int value);
	const char *prefix;
	int first, last;  /* the values accepted */
	const char *list; /* for the message */
} choices;

static const choices expiry_choices = {bc_expiry_policy_name, "EXPIRY_POLICY_", 1, 3,
                                       "capture, release or reverse"};
static const choices disposition_choices = {bc_hold_disposition_name, "HOLD_DISPOSITION_", 1, 5,
                                            "open, released, reversed, reconciled or expired"};

static int parse_choice(const cli *c, const char *name, const char *s, const choices *ch, bool *has,
                        int *out)
{
	for (int v = ch->first; v <= ch->last; v++)
		if (strcmp(s, enum_short(ch->name(v), ch->prefix, v)) == 0) {
			*has = true;
			*out = v;
			return 0;
		}
	return cli_usage_error(c, "%s: expected %s, got '%s'", name, ch->list, s);
}

static int parse_page_token(const cli *c, const char *s, const char **out)
{
	if (strlen(s) > CLI_PAGE_TOKEN_MAX)
		return cli_usage_error(c, "--page-token: longer than %d bytes", CLI_PAGE_TOKEN_MAX);
	return nonempty(c, "--page-token", s, out);
}

/* The options of hold deadlines and of the hold list: returns -1 when `id`
 * is none of them, else 0 or the exit code of a usage error. */
static int parse_hold_option(const cli *c, int id, const char *arg, args *a)
{
	int rc;

	switch (id) {
	case O_TTL:
		return parse_number(c, "--ttl", arg, BC_TTL_SECONDS_MAX, &a->has_ttl, &a->ttl);
	case O_ON_EXPIRY:
		return parse_choice(c, "--on-expiry", arg, &expiry_choices, &a->has_on_expiry,
		                    &a->on_expiry);
	case O_DISPOSITION:
		return parse_choice(c, "--disposition", arg, &disposition_choices,
		                    &a->has_disposition, &a->disposition);
	case O_OLDER_THAN:
		rc = cli_parse_time(c, "--older-than", arg, &a->older_than);
		a->has_older_than = rc == 0;
		return rc;
	case O_PAGE_TOKEN:
		return parse_page_token(c, arg, &a->page_token);
	case O_ALL:
		a->all = true;
		return 0;
	default:
		return -1;
	}
}

/* Parses the command line of one subcommand. Returns -1 to go on, or the
 * exit code (after --help, or a usage error). */
static int parse(cli *c, int argc, char **argv, const struct option *opts, const char *help,
                 args *a)
{
	int id, rc;

	memset(a, 0, sizeof(*a));
	optind = 0; /* glibc: restart scanning, with a fresh argv */
	opterr = 0;
	while ((id = cli_getopt(c, argc, argv, opts)) != -1) {
		if (id == -2)
			return EXIT_USAGE;
		switch (id) {
		case O_CAPABILITY:
			rc = nonempty(c, "--capability", optarg, &a->capability);
			break;
		case O_GRANT:
			rc = parse_number(c, "--grant", optarg, UINT32_MAX, &a->has_grant,
			                  &a->grant);
			break;
		case O_UNITS:
			rc = parse_number(c, "--units", optarg, UINT64_MAX, &a->has_units,
			                  &a->units);
			break;
		case O_MAX_INVOCATIONS:
			rc = parse_number(c, "--max-invocations", optarg, UINT64_MAX,
			                  &a->has_max_invocations, &a->max_invocations);
			break;
		case O_MAX_COST_PER_INVOCATION:
			rc = parse_number(c, "--max-cost-per-invocation", optarg, UINT64_MAX,
			                  &a->has_max_cost_per_invocation,
			                  &a->max_cost_per_invocation);
			break;
		case O_MAX_TOTAL:
			rc = parse_number(c, "--max-total", optarg, UINT64_MAX, &a->has_max_total,
			                  &a->max_total);
			break;
		case O_HOLD:
			rc = nonempty(c, "--hold", optarg, &a->hold);
			break;
		case O_EVENT:
			rc = nonempty(c, "--event", optarg, &a->event);
			break;
		case O_AUTHORITY_ID:
			rc = nonempty(c, "--authority-id", optarg, &a->authority_id);
			break;
		case O_LEASE_ID:
			rc = nonempty(c, "--lease-id", optarg, &a->lease_id);
			break;
		case O_LEASE_EPOCH:
			rc = parse_number(c, "--lease-epoch", optarg, UINT64_MAX,
			                  &a->has_lease_epoch, &a->lease_epoch);
			break;
		case O_EXPOSED:
			rc = parse_number(c, "--exposed", optarg, UINT64_MAX, &a->has_exposed,
			                  &a->exposed);
			break;
		case O_REALIZED:
			rc = parse_number(c, "--realized", optarg, UINT64_MAX, &a->has_realized,
			                  &a->realized);
			break;
		case O_LIMIT:
			rc = parse_number(c, "--limit", optarg, CLI_LIST_LIMIT_MAX, &a->has_limit,
			                  &a->limit);
			break;
		case O_AFTER:
			rc = parse_number(c, "--after", optarg, UINT64_MAX, &a->has_after,
			                  &a->after);
			break;
		case O_SERVICE:
			a->service = optarg;
			rc = 0;
			break;
		case O_FOLLOW:
			a->follow = true;
			rc = 0;
			break;
		case O_DRY_RUN:
			a->dry_run = true;
			rc = 0;
			break;
		case O_PATH:
			rc = nonempty(c, "--path", optarg, &a->path);
			break;
		default:
			if ((rc = parse_hold_option(c, id, optarg, a)) >= 0)
				break;
			rc = cli_common_option(c, id, optarg, help);
			if (id == OPT_HELP)
				return rc;
			if (rc < 0)
				return cli_usage_error(c, "option '%s' is not handled",
				                       argv[optind - 1]);
			break;
		}
		if (rc != 0)
			return rc;
	}
	a->positional = argv + optind;
	a->npositional = argc - optind;
	return -1;
}

static int no_positional(const cli *c, const args *a)
{
	if (a->npositional > 0)
		return cli_usage_error(c, "unexpected argument '%s'", a->positional[0]);
	return 0;
}

/* Checks the options every request of this command needs. */
static int need(const cli *c, bool present, const char *option)
{
	if (!present)
		return cli_usage_error(c, "missing %s", option);
	return 0;
}

/* The authority options go together. */
static int need_authority(const cli *c, args *a, const bc_authority **out)
{
	*out = NULL;
	if (!a->authority_id && !a->lease_id && !a->has_lease_epoch)
		return 0;
	if (!a->authority_id || !a->lease_id || !a->has_lease_epoch)
		return cli_usage_error(c,
		                       "--authority-id, --lease-id and --lease-epoch go together");
	a->authority.authority_id = a->authority_id;
	a->authority.lease_id = a->lease_id;
	a->authority.lease_epoch = a->lease_epoch;
	*out = &a->authority;
	return 0;
}

/* "GetUsage on 127.0.0.1:50051", for error lines. */
static const char *what(const cli *c, const char *rpc)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "%s on %s", rpc, c->addr);
	return buf;
}

/* ---- human output ----------------------------------------------------------- */

static void kv_u64(table *t, const char *key, uint64_t v)
{
	table_kv(t, key, "%" PRIu64, v);
}

static void kv_opt_str(table *t, const char *key, const char *s)
{
	table_kv(t, key, "%s", s ? s : "-");
}

static void kv_authority(table *t, bool has, const bc_authority_info *a)
{
	if (!has)
		return;
	table_kv(t, "authority_id", "%s", a->authority_id);
	table_kv(t, "lease_id", "%s", a->lease_id);
	kv_u64(t, "lease_epoch", a->lease_epoch);
}

static void kv_metadata(table *t, const bc_commit_metadata *m)
{
	table_kv(t, "event_id", "%s", m->event_id);
	if (m->has_budget_commit_index)
		kv_u64(t, "budget_commit_index", m->budget_commit_index);
	else
		table_kv(t, "budget_commit_index", "-");
	table_kv(t, "replayed", "%s", m->replayed ? "true" : "false");
	if (m->dry_run)
		table_kv(t, "dry_run", "true");
	if (m->budget_term)
		table_kv(t, "budget_term", "%s", m->budget_term);
	kv_authority(t, m->has_authority, &m->authority);
}

static const char *denial_short(bc_denial_reason r)
{
	return enum_short(bc_denial_reason_name(r), "DENIAL_REASON_", r);
}

static const char *disposition_short(bc_hold_disposition d)
{
	return enum_short(bc_hold_disposition_name(d), "HOLD_DISPOSITION_", d);
}

/* "-" for no policy (a hold that never had a deadline, an event of
 * another kind). */
static const char *expiry_short(bc_expiry_policy p)
{
	if (p == BC_EXPIRY_POLICY_UNSPECIFIED)
		return "-";
	return enum_short(bc_expiry_policy_name(p), "EXPIRY_POLICY_", p);
}

static void kv_time(table *t, const char *key, bool has, const bc_timestamp *ts)
{
	char buf[CLI_TIME_SIZE];

	table_kv(t, key, "%s", fmt_time(buf, has, ts));
}

/* ---- JSON output ------------------------------------------------------------- */

static json_t *json_hold_mutation(const bc_hold_mutation_result *r)
{
	json_t *o = json_object_or_die();

	if (r->hold_id)
		json_set(o, "holdId", json_str(r->hold_id));
	json_set(o, "exposureUnits", json_u64(r->exposure_units));
	json_set(o, "realizedSpendUnits", json_u64(r->realized_spend_units));
	json_set(o, "committedCostUnitsAfter", json_u64(r->committed_cost_units_after));
	json_set(o, "invocationCountAfter", json_integer(r->invocation_count_after));
	json_set(o, "metadata", json_metadata(&r->metadata));
	return o;
}

/* ---- commands ----------------------------------------------------------------- */

/* clang-format off */
#define COMMON_HELP                                                                                \
	"\nCommon options (also accepted before the command):\n"                                   \
	"  --addr ADDR, --timeout S, --json, --no-retry, --tls, --tls-ca FILE,\n"                  \
	"  --tls-cert FILE, --tls-key FILE, --tls-server-name NAME (see 'budgetctl --help').\n"    \
	"Every option also accepts its .proto field name (--capability-id, --grant-index, ...).\n"
/* clang-format on */

/* clang-format off */
#define AUTHORITY_HELP                                                                             \
	"  --authority-id A --lease-id L --lease-epoch N\n"                                        \
	"                       the authority lease to mutate under (all three together)\n"
/* clang-format on */

/* clang-format off */
static const char authorize_help[] =
	"usage: budgetctl authorize --capability C --grant N --units U [options]\n"
	"\n"
	"AuthorizeHold: count one invocation of the grant (C, N) and expose its maximum\n"
	"cost U under a hold, unless a limit denies it. A denial is a normal answer\n"
	"(exit status 1), recorded in the mutation log.\n"
	"\n"
	"  --capability C       the capability to charge (capability_id)\n"
	"  --grant N            the grant index, 0 to 4294967295 (grant_index)\n"
	"  --units U            the most this invocation may cost (requested_exposure_units)\n"
	"  --max-invocations N  deny when the grant already has N invocations\n"
	"  --max-cost-per-invocation N\n"
	"                       deny when U is above N\n"
	"  --max-total N        deny when exposed + realized + U would exceed N\n"
	"                       (max_total_cost_units)\n"
	"  --hold H             open a hold with this id (hold_id); without it the grant is\n"
	"                       charged directly\n"
	"  --event E            idempotency key (event_id); default: a random one, shown in\n"
	"                       the output, which a retry of this command can reuse\n"
	"  --dry-run            only ask: would this be authorized now? Nothing is recorded\n"
	"  --ttl S              budgetd settles the hold if it is still open S seconds from\n"
	"                       now, 1 to 2592000; 0: never (ttl_seconds; default: the\n"
	"                       server's, budgetd --hold-ttl). Only with --hold\n"
	"  --on-expiry P        how budgetd settles the hold at its deadline (on_expiry):\n"
	"                       capture (realize the remaining exposure as spend), release\n"
	"                       (give it back, keep the invocation) or reverse (give back\n"
	"                       both); default: the server's (budgetd --on-expiry, capture)\n"
	AUTHORITY_HELP COMMON_HELP;
/* clang-format on */

/* --ttl and --on-expiry of authorize: only for a hold, and a policy only
 * with a deadline (or the server's default one). */
static int check_expiry(const cli *c, const args *a)
{
	if ((a->has_ttl || a->has_on_expiry) && !a->hold)
		return cli_usage_error(c, "--ttl and --on-expiry need --hold");
	if (a->has_on_expiry && a->has_ttl && a->ttl == 0)
		return cli_usage_error(c, "--on-expiry needs a deadline: --ttl above 0");
	return 0;
}

static void authorize_request(const args *a, bc_authorize_hold_request *req)
{
	req->capability_id = a->capability;
	req->grant_index = a->grant;
	req->requested_exposure_units = a->units;
	req->has_max_invocations = a->has_max_invocations;
	req->max_invocations = a->max_invocations;
	req->has_max_cost_per_invocation = a->has_max_cost_per_invocation;
	req->max_cost_per_invocation = a->max_cost_per_invocation;
	req->has_max_total_cost_units = a->has_max_total;
	req->max_total_cost_units = a->max_total;
	req->hold_id = a->hold;
	req->event_id = a->event;
	req->dry_run = a->dry_run;
	req->has_ttl_seconds = a->has_ttl;
	req->ttl_seconds = (uint32_t)a->ttl;
	req->on_expiry =
	        a->has_on_expiry ? (bc_expiry_policy)a->on_expiry : BC_EXPIRY_POLICY_UNSPECIFIED;
}

static int print_authorize_json(const bc_authorize_hold_result *res)
{
	json_t *o = json_object_or_die();
	json_t *root = json_object_or_die();

	if (res->hold_id)
		json_set(o, "holdId", json_str(res->hold_id));
	if (res->authorized)
		json_set(o, "authorizedExposureUnits", json_u64(res->authorized_exposure_units));
	else
		json_set(o, "attemptedExposureUnits", json_u64(res->attempted_exposure_units));
	json_set(o, "committedCostUnitsAfter", json_u64(res->committed_cost_units_after));
	json_set(o, "invocationCountAfter", json_integer(res->invocation_count_after));
	json_set(o, "metadata", json_metadata(&res->metadata));
	if (!res->authorized)
		json_set(o, "denialReason",
		         json_enum(bc_denial_reason_name(res->denial_reason), res->denial_reason));
	if (res->has_expires_at)
		json_set(o, "expiresAt", json_time(&res->expires_at));
	json_set(root, res->authorized ? "authorized" : "denied", o);
	return json_print(root);
}

static void print_authorize_human(const bc_authorize_hold_result *res)
{
	table *t = table_new(2, NULL);

	table_kv(t, "decision", "%s", res->authorized ? "authorized" : "denied");
	if (!res->authorized)
		table_kv(t, "denial_reason", "%s", denial_short(res->denial_reason));
	kv_opt_str(t, "hold_id", res->hold_id);
	if (res->authorized)
		kv_u64(t, "authorized_exposure_units", res->authorized_exposure_units);
	else
		kv_u64(t, "attempted_exposure_units", res->attempted_exposure_units);
	kv_u64(t, "committed_cost_units_after", res->committed_cost_units_after);
	kv_u64(t, "invocation_count_after", res->invocation_count_after);
	if (res->authorized)
		kv_time(t, "expires_at", res->has_expires_at, &res->expires_at);
	kv_metadata(t, &res->metadata);
	table_print(t, stdout);
}

static int cmd_authorize(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,
	        OPTS_CAPABILITY,
	        OPTS_GRANT,
	        OPT("units", O_UNITS),
	        OPT("requested-exposure-units", O_UNITS),
	        OPTS_MAX_INVOCATIONS,
	        OPT("max-cost-per-invocation", O_MAX_COST_PER_INVOCATION),
	        OPT("max-total", O_MAX_TOTAL),
	        OPT("max-total-cost-units", O_MAX_TOTAL),
	        OPTS_HOLD,
	        OPTS_EVENT,
	        OPTS_AUTHORITY,
	        {"dry-run", no_argument, NULL, O_DRY_RUN},
	        OPTS_TTL,
	        OPT("on-expiry", O_ON_EXPIRY),
	        OPTS_END,
	};
	bc_authorize_hold_request req = {0};
	bc_authorize_hold_result res;
	bc_client *client;
	bc_error err;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, authorize_help, &a)) >= 0)
		return rc;
	if ((rc = no_positional(c, &a)) || (rc = need(c, a.capability, "--capability")) ||
	    (rc = need(c, a.has_grant, "--grant")) || (rc = need(c, a.has_units, "--units")) ||
	    (rc = check_expiry(c, &a)) || (rc = need_authority(c, &a, &req.authority)))
		return rc;
	authorize_request(&a, &req);

	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	rc = bc_authorize_hold(client, &req, 0, &res, &err);
	bc_client_free(client);
	if (rc != 0)
		return cli_grpc_error(c, what(c, "AuthorizeHold"), &err);

	if (c->json) {
		rc = print_authorize_json(&res);
	} else {
		print_authorize_human(&res);
		rc = 0;
	}
	if (rc == 0 && !res.authorized)
		rc = EXIT_DENIED;
	bc_authorize_hold_result_free(&res);
	return rc;
}

/* Prints the result of release, reverse, reconcile or capture. */
static int print_hold_mutation(const cli *c, bc_hold_mutation_result *res)
{
	int rc = 0;

	if (c->json) {
		rc = json_print(json_hold_mutation(res));
	} else {
		table *t = table_new(2, NULL);

		kv_opt_str(t, "hold_id", res->hold_id);
		kv_u64(t, "exposure_units", res->exposure_units);
		kv_u64(t, "realized_spend_units", res->realized_spend_units);
		kv_u64(t, "committed_cost_units_after", res->committed_cost_units_after);
		kv_u64(t, "invocation_count_after", res->invocation_count_after);
		kv_metadata(t, &res->metadata);
		table_print(t, stdout);
	}
	bc_hold_mutation_result_free(res);
	return rc;
}

/* clang-format off */
static const char release_help[] =
	"usage: budgetctl release --capability C --grant N --units U [--hold H] [options]\n"
	"\n"
	"ReleaseHold: give back U cost units of exposure of an open hold (or, without\n"
	"--hold, of the grant). The invocation count is unchanged; a hold whose remaining\n"
	"exposure reaches 0 becomes RELEASED. Use it when an invocation is aborted.\n"
	"\n"
	"  --capability C       the capability (capability_id)\n"
	"  --grant N            the grant index (grant_index)\n"
	"  --units U            the exposure to give back (released_exposure_units)\n"
	"  --hold H             the open hold to release from (hold_id)\n"
	"  --event E            idempotency key (event_id); default: a random one\n" AUTHORITY_HELP
	COMMON_HELP;
/* clang-format on */

/* clang-format off */
static const char reverse_help[] =
	"usage: budgetctl reverse --capability C --grant N --units U [--hold H] [options]\n"
	"\n"
	"ReverseHold: undo an authorization whose invocation never ran: remove the\n"
	"hold's whole remaining exposure U and the invocation it counted. The hold\n"
	"becomes REVERSED.\n"
	"\n"
	"  --capability C       the capability (capability_id)\n"
	"  --grant N            the grant index (grant_index)\n"
	"  --units U            the hold's remaining exposure (reversed_exposure_units)\n"
	"  --hold H             the open hold to reverse (hold_id)\n"
	"  --event E            idempotency key (event_id); default: a random one\n" AUTHORITY_HELP
	COMMON_HELP;
/* clang-format on */

static int release_or_reverse(cli *c, int argc, char **argv, bool reverse)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,
	        OPTS_CAPABILITY,
	        OPTS_GRANT,
	        OPT("units", O_UNITS),
	        OPT("released-exposure-units", O_UNITS),
	        OPT("reversed-exposure-units", O_UNITS),
	        OPTS_HOLD,
	        OPTS_EVENT,
	        OPTS_AUTHORITY,
	        OPTS_END,
	};
	const bc_authority *authority;
	bc_hold_mutation_result res;
	bc_client *client;
	bc_error err;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, reverse ? reverse_help : release_help, &a)) >= 0)
		return rc;
	if ((rc = no_positional(c, &a)) || (rc = need(c, a.capability, "--capability")) ||
	    (rc = need(c, a.has_grant, "--grant")) || (rc = need(c, a.has_units, "--units")) ||
	    (rc = need_authority(c, &a, &authority)))
		return rc;
	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	if (reverse) {
		bc_reverse_hold_request req = {
		        .capability_id = a.capability,
		        .grant_index = a.grant,
		        .hold_id = a.hold,
		        .reversed_exposure_units = a.units,
		        .event_id = a.event,
		        .authority = authority,
		};
		rc = bc_reverse_hold(client, &req, 0, &res, &err);
	} else {
		bc_release_hold_request req = {
		        .capability_id = a.capability,
		        .grant_index = a.grant,
		        .hold_id = a.hold,
		        .released_exposure_units = a.units,
		        .event_id = a.event,
		        .authority = authority,
		};
		rc = bc_release_hold(client, &req, 0, &res, &err);
	}
	bc_client_free(client);
	if (rc != 0)
		return cli_grpc_error(c, what(c, reverse ? "ReverseHold" : "ReleaseHold"), &err);
	return print_hold_mutation(c, &res);
}

static int cmd_release(cli *c, int argc, char **argv)
{
	return release_or_reverse(c, argc, argv, false);
}

static int cmd_reverse(cli *c, int argc, char **argv)
{
	return release_or_reverse(c, argc, argv, true);
}

/* clang-format off */
#define SETTLE_OPTIONS_HELP                                                                        \
	"  --capability C       the capability (capability_id)\n"                                  \
	"  --grant N            the grant index (grant_index)\n"                                   \
	"  --exposed U          the hold's remaining exposure being settled\n"                     \
	"                       (exposed_cost_units)\n"                                            \
	"  --realized R         what the invocation actually cost, at most U\n"                    \
	"                       (realized_spend_units)\n"                                          \
	"  --hold H             the open hold to settle (hold_id); without it the grant is\n"      \
	"                       settled directly\n"                                                \
	"  --event E            idempotency key (event_id); default: a random "                    \
	"one\n" AUTHORITY_HELP
/* clang-format on */

/* clang-format off */
static const char reconcile_help[] =
	"usage: budgetctl reconcile --capability C --grant N [--hold H] --exposed U --realized R\n"
	"                           [options]\n"
	"\n"
	"ReconcileHold: settle a hold with the actual spend: remove U of exposure and\n"
	"add R to the realized spend. The hold becomes RECONCILED.\n"
	"\n" SETTLE_OPTIONS_HELP COMMON_HELP;
/* clang-format on */

/* clang-format off */
static const char capture_help[] =
	"usage: budgetctl capture --capability C --grant N [--hold H] --exposed U --realized R\n"
	"                         [options]\n"
	"\n"
	"CaptureHold: the same as reconcile, under the name payment systems use.\n"
	"\n" SETTLE_OPTIONS_HELP COMMON_HELP;
/* clang-format on */

static int reconcile_or_capture(cli *c, int argc, char **argv, bool capture)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,
	        OPTS_CAPABILITY,
	        OPTS_GRANT,
	        OPTS_HOLD,
	        OPT("exposed", O_EXPOSED),
	        OPT("exposed-cost-units", O_EXPOSED),
	        OPT("realized", O_REALIZED),
	        OPT("realized-spend-units", O_REALIZED),
	        OPTS_EVENT,
	        OPTS_AUTHORITY,
	        OPTS_END,
	};
	bc_reconcile_hold_request req = {0};
	bc_hold_mutation_result res;
	bc_client *client;
	bc_error err;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, capture ? capture_help : reconcile_help, &a)) >= 0)
		return rc;
	if ((rc = no_positional(c, &a)) || (rc = need(c, a.capability, "--capability")) ||
	    (rc = need(c, a.has_grant, "--grant")) || (rc = need(c, a.has_exposed, "--exposed")) ||
	    (rc = need(c, a.has_realized, "--realized")) ||
	    (rc = need_authority(c, &a, &req.authority)))
		return rc;
	req.capability_id = a.capability;
	req.grant_index = a.grant;
	req.hold_id = a.hold;
	req.exposed_cost_units = a.exposed;
	req.realized_spend_units = a.realized;
	req.event_id = a.event;
	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	if (capture)
		rc = bc_capture_hold(client, &req, 0, &res, &err);
	else
		rc = bc_reconcile_hold(client, &req, 0, &res, &err);
	bc_client_free(client);
	if (rc != 0)
		return cli_grpc_error(c, what(c, capture ? "CaptureHold" : "ReconcileHold"), &err);
	return print_hold_mutation(c, &res);
}

static int cmd_reconcile(cli *c, int argc, char **argv)
{
	return reconcile_or_capture(c, argc, argv, false);
}

static int cmd_capture(cli *c, int argc, char **argv)
{
	return reconcile_or_capture(c, argc, argv, true);
}

/* clang-format off */
static const char extend_help[] =
	"usage: budgetctl extend --capability C --grant N --hold H --ttl S [options]\n"
	"\n"
	"ExtendHold: move the deadline of the open hold H to S seconds from now. A\n"
	"deadline never moves earlier: when the hold's is later, it stays. A hold\n"
	"opened without a deadline gets one, settled by capture when it passes.\n"
	"\n"
	"  --capability C       the hold's capability (capability_id)\n"
	"  --grant N            the hold's grant index (grant_index)\n"
	"  --hold H             the open hold (hold_id)\n"
	"  --ttl S              the new deadline in seconds from now, 1 to 2592000\n"
	"                       (ttl_seconds)\n"
	"  --event E            idempotency key (event_id); default: a random one\n" AUTHORITY_HELP
	COMMON_HELP;
/* clang-format on */

static int print_extend(const cli *c, const bc_extend_hold_result *res)
{
	if (c->json) {
		json_t *o = json_object_or_die();

		json_set(o, "holdId", json_str(res->hold_id));
		if (res->has_expires_at)
			json_set(o, "expiresAt", json_time(&res->expires_at));
		json_set(o, "metadata", json_metadata(&res->metadata));
		return json_print(o);
	}
	table *t = table_new(2, NULL);

	table_kv(t, "hold_id", "%s", res->hold_id);
	kv_time(t, "expires_at", res->has_expires_at, &res->expires_at);
	kv_metadata(t, &res->metadata);
	table_print(t, stdout);
	return 0;
}

static int cmd_extend(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS, OPTS_CAPABILITY, OPTS_GRANT,     OPTS_HOLD,
	        OPTS_TTL,           OPTS_EVENT,      OPTS_AUTHORITY, OPTS_END,
	};
	bc_extend_hold_request req = {0};
	bc_extend_hold_result res;
	bc_client *client;
	bc_error err;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, extend_help, &a)) >= 0)
		return rc;
	if ((rc = no_positional(c, &a)) || (rc = need(c, a.capability, "--capability")) ||
	    (rc = need(c, a.has_grant, "--grant")) || (rc = need(c, a.hold, "--hold")) ||
	    (rc = need(c, a.has_ttl, "--ttl")) || (rc = need_authority(c, &a, &req.authority)))
		return rc;
	if (a.ttl == 0)
		return cli_usage_error(c, "--ttl: expected an integer from 1 to %d, got '0'",
		                       BC_TTL_SECONDS_MAX);
	req.capability_id = a.capability;
	req.grant_index = a.grant;
	req.hold_id = a.hold;
	req.ttl_seconds = (uint32_t)a.ttl;
	req.event_id = a.event;
	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	rc = bc_extend_hold(client, &req, 0, &res, &err);
	bc_client_free(client);
	if (rc != 0)
		return cli_grpc_error(c, what(c, "ExtendHold"), &err);
	rc = print_extend(c, &res);
	bc_extend_hold_result_free(&res);
	return rc;
}

/* clang-format off */
static const char increment_help[] =
	"usage: budgetctl increment --capability C --grant N [--max-invocations N] [options]\n"
	"\n"
	"IncrementInvocation: count one invocation of the grant without any cost,\n"
	"unless it already has --max-invocations invocations (then exit status 1).\n"
	"\n"
	"  --capability C       the capability (capability_id)\n"
	"  --grant N            the grant index (grant_index)\n"
	"  --max-invocations N  deny when the grant already has N invocations\n"
	"  --event E            idempotency key (event_id); default: a random one\n" COMMON_HELP;
/* clang-format on */

static int cmd_increment(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,   OPTS_CAPABILITY, OPTS_GRANT,
	        OPTS_MAX_INVOCATIONS, OPTS_EVENT,      OPTS_END,
	};
	bc_increment_invocation_result res;
	bc_client *client;
	bc_error err;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, increment_help, &a)) >= 0)
		return rc;
	if ((rc = no_positional(c, &a)) || (rc = need(c, a.capability, "--capability")) ||
	    (rc = need(c, a.has_grant, "--grant")))
		return rc;
	bc_increment_invocation_request req = {
	        .capability_id = a.capability,
	        .grant_index = a.grant,
	        .has_max_invocations = a.has_max_invocations,
	        .max_invocations = a.max_invocations,
	        .event_id = a.event,
	};
	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	rc = bc_increment_invocation(client, &req, 0, &res, &err);
	bc_client_free(client);
	if (rc != 0)
		return cli_grpc_error(c, what(c, "IncrementInvocation"), &err);
	if (c->json) {
		json_t *o = json_object_or_die();

		json_set(o, "allowed", json_boolean(res.allowed));
		json_set(o, "invocationCountAfter", json_integer(res.invocation_count_after));
		json_set(o, "metadata", json_metadata(&res.metadata));
		rc = json_print(o);
	} else {
		table *t = table_new(2, NULL);

		table_kv(t, "allowed", "%s", res.allowed ? "true" : "false");
		kv_u64(t, "invocation_count_after", res.invocation_count_after);
		kv_metadata(t, &res.metadata);
		table_print(t, stdout);
	}
	if (rc == 0 && !res.allowed)
		rc = EXIT_DENIED;
	bc_increment_invocation_result_free(&res);
	return rc;
}

/* clang-format off */
static const char usage_help[] =
	"usage: budgetctl usage --capability C --grant N [options]\n"
	"\n"
	"GetUsage: the usage record of one grant. A grant never charged has none\n"
	"(still exit status 0; --json prints {}).\n"
	"\n"
	"  --capability C       the capability (capability_id)\n"
	"  --grant N            the grant index (grant_index)\n" COMMON_HELP;
/* clang-format on */

static void kv_usage(table *t, const bc_usage_record *u)
{
	table_kv(t, "capability_id", "%s", u->capability_id);
	kv_u64(t, "grant_index", u->grant_index);
	kv_u64(t, "invocation_count", u->invocation_count);
	kv_u64(t, "total_cost_exposed", u->total_cost_exposed);
	kv_u64(t, "total_cost_realized_spend", u->total_cost_realized_spend);
	kv_u64(t, "committed_cost_units", u->committed_cost_units);
	kv_u64(t, "seq", u->seq);
	kv_time(t, "updated_at", u->has_updated_at, &u->updated_at);
}

static int cmd_usage(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,
	        OPTS_CAPABILITY,
	        OPTS_GRANT,
	        OPTS_END,
	};
	bc_usage_result res;
	bc_client *client;
	bc_error err;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, usage_help, &a)) >= 0)
		return rc;
	if ((rc = no_positional(c, &a)) || (rc = need(c, a.capability, "--capability")) ||
	    (rc = need(c, a.has_grant, "--grant")))
		return rc;
	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	rc = bc_get_usage(client, a.capability, a.grant, 0, &res, &err);
	bc_client_free(client);
	if (rc != 0)
		return cli_grpc_error(c, what(c, "GetUsage"), &err);
	if (c->json) {
		json_t *root = json_object_or_die();

		if (res.found)
			json_set(root, "usage", json_usage(&res.usage));
		rc = json_print(root);
	} else if (res.found) {
		table *t = table_new(2, NULL);

		kv_usage(t, &res.usage);
		table_print(t, stdout);
	} else {
		printf("no usage record for capability %s grant %" PRIu64 "\n", a.capability,
		       a.grant);
	}
	bc_usage_result_free(&res);
	return rc;
}

/* clang-format off */
static const char usages_help[] =
	"usage: budgetctl usages [--limit N] [--capability C] [options]\n"
	"\n"
	"ListUsages: usage records, most recently updated first.\n"
	"\n"
	"  --limit N            at most N records, 1 to 1000 (default 0: the server's, 100)\n"
	"  --capability C       only the records of this capability (capability_id)\n" COMMON_HELP;
/* clang-format on */

static int cmd_usages(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,
	        OPT("limit", O_LIMIT),
	        OPTS_CAPABILITY,
	        OPTS_END,
	};
	static const char *const headers[] = {"CAPABILITY", "GRANT",     "INVOCATIONS",
	                                      "EXPOSED",    "REALIZED",  "COMMITTED",
	                                      "SEQ",        "UPDATED_AT"};
	bc_list_usages_request req = {0};
	bc_usage_list res;
	bc_client *client;
	bc_error err;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, usages_help, &a)) >= 0)
		return rc;
	if ((rc = no_positional(c, &a)))
		return rc;
	req.limit = (uint32_t)a.limit;
	req.capability_id = a.capability;
	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	rc = bc_list_usages(client, &req, 0, &res, &err);
	bc_client_free(client);
	if (rc != 0)
		return cli_grpc_error(c, what(c, "ListUsages"), &err);
	if (c->json) {
		json_t *root = json_object_or_die();
		json_t *list = json_array();

		if (!list)
			return json_print(NULL);
		for (size_t i = 0; i < res.count; i++)
			if (json_array_append_new(list, json_usage(&res.usages[i])) != 0)
				return json_print(NULL);
		json_set(root, "usages", list);
		rc = json_print(root);
	} else {
		table *t = table_new(8, headers);

		for (size_t col = 1; col < 7; col++)
			table_right_align(t, col);
		for (size_t i = 0; i < res.count; i++) {
			const bc_usage_record *u = &res.usages[i];
			char g[CLI_NUM_SIZE], n[CLI_NUM_SIZE], e[CLI_NUM_SIZE], r[CLI_NUM_SIZE],
			        cc[CLI_NUM_SIZE], s[CLI_NUM_SIZE], tm[CLI_TIME_SIZE];

			table_add(t, u->capability_id, fmt_u64(g, u->grant_index),
			          fmt_u64(n, u->invocation_count),
			          fmt_u64(e, u->total_cost_exposed),
			          fmt_u64(r, u->total_cost_realized_spend),
			          fmt_u64(cc, u->committed_cost_units), fmt_u64(s, u->seq),
			          fmt_time(tm, u->has_updated_at, &u->updated_at));
		}
		table_print(t, stdout);
	}
	bc_usage_list_free(&res);
	return rc;
}

/* ---- events --follow ---- */

#define FOLLOW_BACKOFF_BASE_MS 50
#define FOLLOW_BACKOFF_MAX_MS  2000

/* One event per line as it arrives, flushed at once. */
typedef struct follower {
	const cli *c;
	bool header_printed;
	bool output_failed;
	uint64_t printed;
} follower;

/* The columns of an event, in the table and in --follow. */
#define EVENT_COLS 16
static const char *const event_headers[EVENT_COLS] = {
        "SEQ",           "RECORDED_AT",    "KIND",     "CAPABILITY", "GRANT",
        "HOLD",          "RESULT",         "EXPOSURE", "REALIZED",   "INVOCATIONS_AFTER",
        "EXPOSED_AFTER", "REALIZED_AFTER", "TTL",      "ON_EXPIRY",  "EXPIRES_AT",
        "EVENT_ID"};
static const size_t event_right[] = {0, 4, 7, 8, 9, 10, 11, 12}; /* right-aligned */

/* One event formatted: `cells` point into the buffers. */
typedef struct event_row {
	char seq[CLI_NUM_SIZE], grant[CLI_NUM_SIZE], exposure[CLI_NUM_SIZE];
	char realized[CLI_NUM_SIZE], invocations[CLI_NUM_SIZE], exposed_after[CLI_NUM_SIZE];
	char realized_after[CLI_NUM_SIZE], ttl[CLI_NUM_SIZE];
	char recorded_at[CLI_TIME_SIZE], expires_at[CLI_TIME_SIZE];
	char kind[64], result[96], on_expiry[32];
	const char *cells[EVENT_COLS];
} event_row;

static void event_row_fill(const bc_mutation_event *e, event_row *w)
{
	snprintf(w->kind, sizeof(w->kind), "%s",
	         enum_short(bc_mutation_kind_name(e->kind), "MUTATION_KIND_", e->kind));
	if (!e->has_allowed)
		snprintf(w->result, sizeof(w->result), "-");
	else if (e->allowed)
		snprintf(w->result, sizeof(w->result), "allowed");
	else
		snprintf(w->result, sizeof(w->result), "denied:%s", denial_short(e->denial_reason));
	if (e->has_ttl_seconds)
		fmt_u64(w->ttl, e->ttl_seconds);
	else
		snprintf(w->ttl, sizeof(w->ttl), "-");
	snprintf(w->on_expiry, sizeof(w->on_expiry), "%s", expiry_short(e->on_expiry));

	const char *cells[EVENT_COLS] = {
	        fmt_u64(w->seq, e->event_seq),
	        fmt_time(w->recorded_at, e->has_recorded_at, &e->recorded_at),
	        w->kind,
	        e->capability_id,
	        fmt_u64(w->grant, e->grant_index),
	        e->hold_id ? e->hold_id : "-",
	        w->result,
	        fmt_u64(w->exposure, e->exposure_units),
	        fmt_u64(w->realized, e->realized_spend_units),
	        fmt_u64(w->invocations, e->invocation_count_after),
	        fmt_u64(w->exposed_after, e->total_cost_exposed_after),
	        fmt_u64(w->realized_after, e->total_cost_realized_spend_after),
	        w->ttl,
	        w->on_expiry,
	        fmt_time(w->expires_at, e->has_expires_at, &e->expires_at),
	        e->event_id,
	};
	memcpy(w->cells, cells, sizeof(cells));
}

/* One line of --follow: the cells separated by one space. */
static int print_line(const char *const *cells)
{
	for (size_t i = 0; i < EVENT_COLS; i++)
		if (printf("%s%c", cells[i], i + 1 < EVENT_COLS ? ' ' : '\n') < 0)
			return -1;
	return 0;
}

static int print_followed(void *ctx, const bc_mutation_event *e)
{
	follower *f = ctx;

	if (f->c->json) {
		json_t *o = json_event(e);
		char *line = json_dumps(o, JSON_COMPACT);

		json_decref(o);
		if (!line || printf("%s\n", line) < 0)
			f->output_failed = true;
		free(line);
	} else {
		event_row w;

		if (!f->header_printed && print_line(event_headers) != 0)
			f->output_failed = true;
		f->header_printed = true;
		event_row_fill(e, &w);
		if (print_line(w.cells) != 0)
			f->output_failed = true;
	}
	if (fflush(stdout) != 0)
		f->output_failed = true;
	f->printed++;
	return f->output_failed;
}

static int64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* WatchMutationEvents until interrupted or --timeout; resumes after the
 * last event printed when the server ends the stream for a reason that
 * passes (a restart, a reader that fell behind). */
static int follow_events(cli *c, const args *a)
{
	bc_watch_request req = {.after_commit_index = a->after, .capability_id = a->capability};
	int64_t end = c->timeout_ms ? monotonic_ms() + c->timeout_ms : 0;
	follower f = {.c = c};
	int failures = 0; /* attempts in a row that printed nothing */
	bc_client *client;
	bc_error err;
	int rc;

	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	for (;;) {
		int64_t left = end ? end - monotonic_ms() : 0;
		uint64_t printed = f.printed, resume = req.after_commit_index;

		if (end && left <= 0) {
			rc = EXIT_OK;
			break;
		}
		rc = bc_watch_mutation_events(client, &req, (int)left, print_followed, &f, &resume,
		                              &err);
		req.after_commit_index = resume;
		if (f.output_failed) {
			rc = EXIT_GRPC_BASE;
			break;
		}
		if (rc == 0 || (end && rc == -BC_STATUS_DEADLINE_EXCEEDED)) {
			rc = EXIT_OK; /* --timeout is up */
			break;
		}
		/* CANCELLED too: we never cancel, so the server or the
		 * connection did (a stream cut during a restart). */
		if (c->no_retry ||
		    (rc != -BC_STATUS_UNAVAILABLE && rc != -BC_STATUS_RESOURCE_EXHAUSTED &&
		     rc != -BC_STATUS_CANCELLED)) {
			rc = cli_grpc_error(c, what(c, "WatchMutationEvents"), &err);
			break;
		}
		failures = f.printed > printed ? 1 : failures + 1;
		int64_t wait = FOLLOW_BACKOFF_MAX_MS;
		if (failures < 8 && (FOLLOW_BACKOFF_BASE_MS << (failures - 1)) < wait)
			wait = FOLLOW_BACKOFF_BASE_MS << (failures - 1);
		if (end && wait > end - monotonic_ms())
			wait = end - monotonic_ms();
		fprintf(stderr, "%s: %s: %s: %s (resuming after commit index %" PRIu64 ")\n",
		        CLI_NAME, what(c, "WatchMutationEvents"), bc_status_name(-rc), err.message,
		        req.after_commit_index);
		if (wait > 0)
			sleep_ms(wait);
	}
	bc_client_free(client);
	return rc;
}

/* clang-format off */
static const char events_help[] =
	"usage: budgetctl events [--limit N] [--capability C] [--grant N] [--after SEQ]\n"
	"                        [options]\n"
	"       budgetctl events --follow [--capability C] [--after SEQ] [options]\n"
	"\n"
	"ListMutationEvents: the mutation log in event_seq order, denied requests\n"
	"included. The last line (JSON: nextAfterCommitIndex) is the --after value\n"
	"for the next page.\n"
	"\n"
	"With --follow (WatchMutationEvents): the events after SEQ, then each new event\n"
	"as it commits, one line per event (with --json, one JSON object per line),\n"
	"until interrupted, or until --timeout S has passed (then the exit status is\n"
	"0). When budgetd ends the stream with UNAVAILABLE (it restarts) or\n"
	"RESOURCE_EXHAUSTED (this reader fell too far behind), the stream resumes\n"
	"after the last event printed, waiting up to 2 s between attempts, unless\n"
	"--no-retry is given.\n"
	"\n"
	"  --limit N            at most N events, 1 to 1000 (default 0: the server's, 100)\n"
	"  --capability C       only events of this capability (capability_id)\n"
	"  --grant N            only events of this grant index (grant_index)\n"
	"  --after SEQ          only events with event_seq above SEQ "
	"(after_commit_index)\n"
	"  --follow             go on with new events as they commit\n" COMMON_HELP;
/* clang-format on */

static void print_events_table(const bc_event_list *res)
{
	table *t = table_new(EVENT_COLS, event_headers);

	for (size_t i = 0; i < sizeof(event_right) / sizeof(event_right[0]); i++)
		table_right_align(t, event_right[i]);
	for (size_t i = 0; i < res->count; i++) {
		event_row w;

		event_row_fill(&res->events[i], &w);
		table_add_cells(t, w.cells);
	}
	table_print(t, stdout);
	printf("next_after_commit_index: %" PRIu64 "\n", res->next_after_commit_index);
}

static int cmd_events(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,
	        OPT("limit", O_LIMIT),
	        OPTS_CAPABILITY,
	        OPTS_GRANT,
	        OPT("after", O_AFTER),
	        OPT("after-commit-index", O_AFTER),
	        {"follow", no_argument, NULL, O_FOLLOW},
	        OPTS_END,
	};
	bc_list_mutation_events_request req = {0};
	bc_event_list res;
	bc_client *client;
	bc_error err;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, events_help, &a)) >= 0)
		return rc;
	if ((rc = no_positional(c, &a)))
		return rc;
	if (a.follow && (a.has_limit || a.has_grant))
		return cli_usage_error(c, "--limit and --grant do not go with --follow");
	if (a.follow)
		return follow_events(c, &a);
	req.limit = (uint32_t)a.limit;
	req.capability_id = a.capability;
	req.has_grant_index = a.has_grant;
	req.grant_index = a.grant;
	req.after_commit_index = a.after;
	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	rc = bc_list_mutation_events(client, &req, 0, &res, &err);
	bc_client_free(client);
	if (rc != 0)
		return cli_grpc_error(c, what(c, "ListMutationEvents"), &err);
	if (c->json) {
		json_t *root = json_object_or_die();
		json_t *list = json_array();

		if (!list)
			return json_print(NULL);
		for (size_t i = 0; i < res.count; i++)
			if (json_array_append_new(list, json_event(&res.events[i])) != 0)
				return json_print(NULL);
		json_set(root, "events", list);
		json_set(root, "nextAfterCommitIndex", json_u64(res.next_after_commit_index));
		rc = json_print(root);
	} else {
		print_events_table(&res);
	}
	bc_event_list_free(&res);
	return rc;
}

static void kv_hold(const bc_hold *h)
{
	table *t = table_new(2, NULL);

	table_kv(t, "hold_id", "%s", h->hold_id);
	table_kv(t, "capability_id", "%s", h->capability_id);
	kv_u64(t, "grant_index", h->grant_index);
	kv_u64(t, "authorized_exposure_units", h->authorized_exposure_units);
	kv_u64(t, "remaining_exposure_units", h->remaining_exposure_units);
	table_kv(t, "debited_invocation", "%s", h->debited_invocation ? "true" : "false");
	table_kv(t, "disposition", "%s", disposition_short(h->disposition));
	kv_authority(t, h->has_authority, &h->authority);
	kv_time(t, "created_at", h->has_created_at, &h->created_at);
	kv_time(t, "updated_at", h->has_updated_at, &h->updated_at);
	kv_time(t, "expires_at", h->has_expires_at, &h->expires_at);
	table_kv(t, "on_expiry", "%s", expiry_short(h->on_expiry));
	table_print(t, stdout);
}

/* clang-format off */
static const char hold_help[] =
	"usage: budgetctl hold [--hold] H [options]\n"
	"\n"
	"GetHold: one hold, in any disposition (exit status 8, NOT_FOUND, when no hold\n"
	"has that id).\n"
	"\n"
	"  --hold H             the hold's id (hold_id); may also be given alone\n" COMMON_HELP;
/* clang-format on */

static int cmd_hold(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,
	        OPTS_HOLD,
	        OPTS_END,
	};
	bc_client *client;
	bc_error err;
	bc_hold h;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, hold_help, &a)) >= 0)
		return rc;
	if (!a.hold && a.npositional > 0) {
		if ((rc = nonempty(c, "hold id", a.positional[0], &a.hold)))
			return rc;
		a.positional++;
		a.npositional--;
	}
	if ((rc = no_positional(c, &a)) || (rc = need(c, a.hold, "the hold id (--hold H)")))
		return rc;
	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	rc = bc_get_hold(client, a.hold, 0, &h, &err);
	bc_client_free(client);
	if (rc != 0)
		return cli_grpc_error(c, what(c, "GetHold"), &err);
	if (c->json) {
		json_t *root = json_object_or_die();

		json_set(root, "hold", json_hold(&h));
		rc = json_print(root);
	} else {
		kv_hold(&h);
	}
	bc_hold_free(&h);
	return rc;
}

/* clang-format off */
static const char holds_help[] =
	"usage: budgetctl holds [--capability C] [--disposition D] [--older-than T]\n"
	"                       [--limit N] [--page-token T] [--all] [options]\n"
	"\n"
	"ListHolds: holds oldest first (by created_at, then hold_id), one page at a\n"
	"time. When there are more, the last line is next_page_token: T; pass T as\n"
	"--page-token, with the same filters, for the next page (JSON: nextPageToken,\n"
	"\"\" after the last page).\n"
	"\n"
	"  --capability C       only the holds of this capability (capability_id)\n"
	"  --disposition D      only the holds in this state: open, released, reversed,\n"
	"                       reconciled or expired\n"
	"  --older-than T       only the holds created before T: RFC 3339, e.g.\n"
	"                       2026-01-02T03:04:05Z, or Unix seconds (older_than)\n"
	"  --limit N            at most N holds per page, 1 to 1000 (default 0: the\n"
	"                       server's, 100)\n"
	"  --page-token T       continue after an earlier page (page_token)\n"
	"  --all                fetch every page (from --page-token, or the first) and\n"
	"                       print them as one list\n" COMMON_HELP;
/* clang-format on */

#define HOLDS_PAGES_MAX 1000000 /* --all: a bound on the pages fetched */
#define HOLD_COLS       8

/* What one run of `holds` prints: one table or one JSON list, over every
 * page fetched. */
typedef struct holds_out {
	table *t;     /* human output */
	json_t *list; /* --json */
} holds_out;

static void holds_out_init(const cli *c, holds_out *o)
{
	static const char *const headers[HOLD_COLS] = {"HOLD_ID",    "CAPABILITY", "GRANT",
	                                               "AUTHORIZED", "REMAINING",  "DISPOSITION",
	                                               "EXPIRES_AT", "CREATED_AT"};

	o->t = NULL;
	o->list = NULL;
	if (c->json) {
		o->list = json_array();
		if (!o->list)
			json_print(NULL); /* out of memory: exits */
		return;
	}
	o->t = table_new(HOLD_COLS, headers);
	for (size_t col = 2; col <= 4; col++)
		table_right_align(o->t, col);
}

static void holds_out_row(table *t, const bc_hold *h)
{
	char grant[CLI_NUM_SIZE], authorized[CLI_NUM_SIZE], remaining[CLI_NUM_SIZE];
	char expires[CLI_TIME_SIZE], created[CLI_TIME_SIZE], disposition[32];

	snprintf(disposition, sizeof(disposition), "%s", disposition_short(h->disposition));
	const char *cells[HOLD_COLS] = {
	        h->hold_id,
	        h->capability_id,
	        fmt_u64(grant, h->grant_index),
	        fmt_u64(authorized, h->authorized_exposure_units),
	        fmt_u64(remaining, h->remaining_exposure_units),
	        disposition,
	        fmt_time(expires, h->has_expires_at, &h->expires_at),
	        fmt_time(created, h->has_created_at, &h->created_at),
	};
	table_add_cells(t, cells);
}

static void holds_out_add(holds_out *o, const bc_hold_list *page)
{
	for (size_t i = 0; i < page->count; i++) {
		if (!o->list)
			holds_out_row(o->t, &page->holds[i]);
		else if (json_array_append_new(o->list, json_hold(&page->holds[i])) != 0)
			json_print(NULL); /* out of memory: exits */
	}
}

/* Prints and releases the output; `next` is the token after the last page
 * fetched ("" after the last page). */
static int holds_out_print(const cli *c, holds_out *o, const char *next)
{
	if (c->json) {
		json_t *root = json_object_or_die();

		json_set(root, "holds", o->list);
		json_set(root, "nextPageToken", json_str(next));
		return json_print(root);
	}
	table_print(o->t, stdout);
	if (next[0])
		printf("next_page_token: %s\n", next);
	return 0;
}

static void holds_out_free(holds_out *o)
{
	table_free(o->t);
	json_decref(o->list);
}

/* A failure found by budgetctl in the server's answers. */
static int server_broken(const cli *c, const char *message)
{
	bc_error err = {.code = BC_STATUS_INTERNAL};

	snprintf(err.message, sizeof(err.message), "%s", message);
	return cli_grpc_error(c, what(c, "ListHolds"), &err);
}

/* Fetches one page, or with `all` every page from req->page_token on, into
 * `o`. On success *next is the token after the last page fetched (owned by
 * the caller; "" after the last page). */
static int fetch_holds(const cli *c, bc_client *client, bc_list_holds_request *req, bool all,
                       holds_out *o, char **next)
{
	char *token = NULL; /* the page token this loop got: req->page_token */
	bc_hold_list page;
	bc_error err;
	int rc = 0;

	for (size_t pages = 1;; pages++) {
		if (bc_list_holds(client, req, 0, &page, &err) != 0) {
			rc = cli_grpc_error(c, what(c, "ListHolds"), &err);
			break;
		}
		holds_out_add(o, &page);
		bool repeated =
		        req->page_token && strcmp(req->page_token, page.next_page_token) == 0;
		free(token);
		token = page.next_page_token; /* taken from the page */
		page.next_page_token = NULL;
		bc_hold_list_free(&page);
		req->page_token = token;
		if (!all || !token[0])
			break;
		if (repeated) {
			rc = server_broken(c, "the server sent the same page token twice");
			break;
		}
		if (pages >= HOLDS_PAGES_MAX) {
			rc = server_broken(c, "too many pages");
			break;
		}
	}
	if (rc != 0) {
		free(token);
		token = NULL;
	}
	*next = token;
	return rc;
}

static int cmd_holds(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,
	        OPTS_CAPABILITY,
	        OPT("disposition", O_DISPOSITION),
	        OPT("older-than", O_OLDER_THAN),
	        OPT("limit", O_LIMIT),
	        OPT("page-token", O_PAGE_TOKEN),
	        {"all", no_argument, NULL, O_ALL},
	        OPTS_END,
	};
	bc_list_holds_request req = {0};
	bc_client *client;
	char *next = NULL;
	holds_out o;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, holds_help, &a)) >= 0)
		return rc;
	if ((rc = no_positional(c, &a)))
		return rc;
	req.limit = (uint32_t)a.limit;
	req.capability_id = a.capability;
	req.has_disposition = a.has_disposition;
	req.disposition = (bc_hold_disposition)a.disposition;
	req.has_older_than = a.has_older_than;
	req.older_than = a.older_than;
	req.page_token = a.page_token;
	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	holds_out_init(c, &o);
	rc = fetch_holds(c, client, &req, a.all, &o, &next);
	bc_client_free(client);
	if (rc == 0)
		rc = holds_out_print(c, &o, next);
	else
		holds_out_free(&o);
	free(next);
	return rc;
}

/* clang-format off */
static const char info_help[] =
	"usage: budgetctl info [options]\n"
	"\n"
	"GetServerInfo: the server's version, authority, guarantees and\n"
	"current commit index.\n" COMMON_HELP;
/* clang-format on */

static int cmd_info(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,
	        OPTS_END,
	};
	bc_server_info info;
	bc_client *client;
	bc_error err;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, info_help, &a)) >= 0)
		return rc;
	if ((rc = no_positional(c, &a)))
		return rc;
	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	rc = bc_get_server_info(client, 0, &info, &err);
	bc_client_free(client);
	if (rc != 0)
		return cli_grpc_error(c, what(c, "GetServerInfo"), &err);
	if (c->json) {
		json_t *o = json_object_or_die();

		json_set(o, "version", json_str(info.version));
		json_set(o, "authorityId", json_str(info.authority_id));
		json_set(o, "guaranteeLevel",
		         json_enum(bc_guarantee_level_name(info.guarantee_level),
		                   info.guarantee_level));
		json_set(o, "budgetProfile",
		         json_enum(bc_budget_profile_name(info.budget_profile),
		                   info.budget_profile));
		json_set(o, "meteringProfile",
		         json_enum(bc_metering_profile_name(info.metering_profile),
		                   info.metering_profile));
		json_set(o, "commitIndex", json_u64(info.commit_index));
		if (info.has_started_at)
			json_set(o, "startedAt", json_time(&info.started_at));
		rc = json_print(o);
	} else {
		table *t = table_new(2, NULL);

		table_kv(t, "version", "%s", info.version);
		table_kv(t, "authority_id", "%s", info.authority_id);
		table_kv(t, "guarantee_level", "%s",
		         enum_short(bc_guarantee_level_name(info.guarantee_level),
		                    "GUARANTEE_LEVEL_", info.guarantee_level));
		table_kv(t, "budget_profile", "%s",
		         enum_short(bc_budget_profile_name(info.budget_profile), "BUDGET_PROFILE_",
		                    info.budget_profile));
		table_kv(t, "metering_profile", "%s",
		         enum_short(bc_metering_profile_name(info.metering_profile),
		                    "METERING_PROFILE_", info.metering_profile));
		kv_u64(t, "commit_index", info.commit_index);
		kv_time(t, "started_at", info.has_started_at, &info.started_at);
		table_print(t, stdout);
	}
	bc_server_info_free(&info);
	return rc;
}

/* clang-format off */
static const char health_help[] =
	"usage: budgetctl health [--service S] [options]\n"
	"\n"
	"grpc.health.v1.Health/Check: whether the server (or one of its services) is\n"
	"serving. Exit status 0 when SERVING, 1 otherwise (NOT_SERVING while the server\n"
	"shuts down).\n"
	"\n"
	"  --service S          the service to check, e.g. budgetd.v1.BudgetAuthority\n"
	"                       (default: \"\", the whole server)\n" COMMON_HELP;
/* clang-format on */

static int cmd_health(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,
	        OPT("service", O_SERVICE),
	        OPTS_END,
	};
	bc_serving_status status;
	bc_client *client;
	bc_error err;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, health_help, &a)) >= 0)
		return rc;
	if ((rc = no_positional(c, &a)))
		return rc;
	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	rc = bc_health_check(client, a.service, 0, &status, &err);
	bc_client_free(client);
	if (rc != 0)
		return cli_grpc_error(c, what(c, "Health/Check"), &err);
	if (c->json) {
		json_t *o = json_object_or_die();

		json_set(o, "status", json_enum(bc_serving_status_name(status), status));
		rc = json_print(o);
	} else {
		printf("status: %s\n", enum_short(bc_serving_status_name(status), "", status));
	}
	if (rc == 0 && status != BC_SERVING_STATUS_SERVING)
		rc = EXIT_DENIED;
	return rc;
}

/* ---- administration (budgetd.v1.BudgetAdmin) ------------------------------------ */

#define ADMIN_TIMEOUT_MS_DEFAULT (600 * 1000) /* backup and verify, without --timeout */

/* Backup and verify read the whole database: more than the usual 5 s. */
static int admin_deadline_ms(const cli *c)
{
	return c->timeout_ms ? c->timeout_ms : ADMIN_TIMEOUT_MS_DEFAULT;
}

static json_t *json_mismatches(char *const *v, size_t n)
{
	json_t *list = json_array();

	if (!list)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(list, json_str(v[i])) != 0) {
			json_decref(list);
			return NULL;
		}
	return list;
}

static void kv_mismatches(table *t, char *const *v, size_t n, uint64_t count)
{
	kv_u64(t, "mismatch_count", count);
	for (size_t i = 0; i < n; i++)
		table_kv(t, "mismatch", "%s", v[i]);
	if (count > n)
		table_kv(t, "mismatch", "(%" PRIu64 " more not shown)", count - (uint64_t)n);
}

/* clang-format off */
static const char backup_help[] =
	"usage: budgetctl backup [--path] PATH [options]\n"
	"\n"
	"BudgetAdmin.Backup: write a consistent copy of the server's database (as of\n"
	"one commit) to PATH while the server keeps serving, then verify the copy.\n"
	"PATH is a path ON THE SERVER'S FILESYSTEM: absolute, in a directory budgetd\n"
	"may write to, and nothing may exist there yet (a backup never replaces a\n"
	"file). The copy is one self-contained SQLite file that budgetd --db can serve.\n"
	"Exit status 0 when the copy verified, 1 when its verification found\n"
	"mismatches (the copy is kept: the live database has them too; see 'budgetctl\n"
	"verify'). Waits up to 600 seconds unless --timeout is given.\n"
	"\n"
	"  --path PATH          the backup file to create (path); may also be given alone\n"
	COMMON_HELP;
/* clang-format on */

static int cmd_backup(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,
	        OPT("path", O_PATH),
	        OPTS_END,
	};
	bc_backup_result res;
	bc_client *client;
	bc_error err;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, backup_help, &a)) >= 0)
		return rc;
	if (!a.path && a.npositional > 0) {
		if ((rc = nonempty(c, "backup path", a.positional[0], &a.path)))
			return rc;
		a.positional++;
		a.npositional--;
	}
	if ((rc = no_positional(c, &a)) || (rc = need(c, a.path, "the backup path (PATH)")))
		return rc;
	if (a.path[0] != '/')
		return cli_usage_error(c,
		                       "the backup path must be absolute: it is a path on the"
		                       " server's filesystem, not '%s'",
		                       a.path);
	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	rc = bc_backup(client, a.path, admin_deadline_ms(c), &res, &err);
	bc_client_free(client);
	if (rc != 0)
		return cli_grpc_error(c, what(c, "Backup"), &err);
	if (c->json) {
		json_t *o = json_object_or_die();

		json_set(o, "path", json_str(res.path));
		json_set(o, "bytes", json_u64(res.bytes));
		json_set(o, "commitIndex", json_u64(res.commit_index));
		json_set(o, "verified", json_boolean(res.verified));
		json_set(o, "summary", json_str(res.summary));
		json_set(o, "materializedSeq", json_u64(res.materialized_seq));
		json_set(o, "mismatches", json_mismatches(res.mismatches, res.n_mismatches));
		json_set(o, "mismatchCount", json_u64(res.mismatch_count));
		rc = json_print(o);
	} else {
		table *t = table_new(2, NULL);

		table_kv(t, "path", "%s", res.path);
		kv_u64(t, "bytes", res.bytes);
		kv_u64(t, "commit_index", res.commit_index);
		kv_u64(t, "materialized_seq", res.materialized_seq);
		table_kv(t, "verified", "%s", res.verified ? "true" : "false");
		table_kv(t, "summary", "%s", res.summary);
		kv_mismatches(t, res.mismatches, res.n_mismatches, res.mismatch_count);
		table_print(t, stdout);
	}
	if (rc == 0 && !res.verified)
		rc = EXIT_DENIED;
	bc_backup_result_free(&res);
	return rc;
}

/* clang-format off */
static const char verify_help[] =
	"usage: budgetctl verify [options]\n"
	"\n"
	"BudgetAdmin.Verify: replay the server's mutation log from its first event and\n"
	"check the ledger, on one snapshot, while the server keeps serving: event_seq\n"
	"runs without a gap; every event is well-formed; every decision is the one its\n"
	"limits give; every event's after-values equal the replay's; holds move only\n"
	"along their lifecycle; usage records, holds and the log's indexes equal the\n"
	"replay. Prints a summary and the first mismatches. Exit status 0 when the\n"
	"ledger is consistent, 1 on any mismatch. Waits up to 600 seconds unless\n"
	"--timeout is given. (budgetd --verify --db PATH checks a database file\n"
	"without a running server.)\n"
	COMMON_HELP;
/* clang-format on */

static int cmd_verify(cli *c, int argc, char **argv)
{
	static const struct option opts[] = {
	        CLI_COMMON_OPTIONS,
	        OPTS_END,
	};
	bc_verify_result res;
	bc_client *client;
	bc_error err;
	args a;
	int rc;

	if ((rc = parse(c, argc, argv, opts, verify_help, &a)) >= 0)
		return rc;
	if ((rc = no_positional(c, &a)))
		return rc;
	if ((rc = cli_connect(c, &client)) != 0)
		return rc;
	rc = bc_verify(client, admin_deadline_ms(c), &res, &err);
	bc_client_free(client);
	if (rc != 0)
		return cli_grpc_error(c, what(c, "Verify"), &err);
	if (c->json) {
		json_t *o = json_object_or_die();

		json_set(o, "ok", json_boolean(res.ok));
		json_set(o, "summary", json_str(res.summary));
		json_set(o, "mismatches", json_mismatches(res.mismatches, res.n_mismatches));
		json_set(o, "mismatchCount", json_u64(res.mismatch_count));
		json_set(o, "events", json_u64(res.events));
		json_set(o, "commitIndex", json_u64(res.commit_index));
		json_set(o, "materializedSeq", json_u64(res.materialized_seq));
		json_set(o, "usageRecords", json_u64(res.usage_records));
		json_set(o, "holds", json_u64(res.holds));
		json_set(o, "openHolds", json_u64(res.open_holds));
		rc = json_print(o);
	} else {
		table *t = table_new(2, NULL);

		table_kv(t, "ok", "%s", res.ok ? "true" : "false");
		table_kv(t, "summary", "%s", res.summary);
		kv_u64(t, "events", res.events);
		kv_u64(t, "commit_index", res.commit_index);
		kv_u64(t, "materialized_seq", res.materialized_seq);
		kv_u64(t, "usage_records", res.usage_records);
		kv_u64(t, "holds", res.holds);
		kv_u64(t, "open_holds", res.open_holds);
		kv_mismatches(t, res.mismatches, res.n_mismatches, res.mismatch_count);
		table_print(t, stdout);
	}
	if (rc == 0 && !res.ok)
		rc = EXIT_DENIED;
	bc_verify_result_free(&res);
	return rc;
}

const command cli_commands[] = {
        {"authorize", "authorize a hold (AuthorizeHold)", authorize_help, cmd_authorize},
        {"release", "release exposure (ReleaseHold)", release_help, cmd_release},
        {"reverse", "reverse a hold whose call never ran (ReverseHold)", reverse_help, cmd_reverse},
        {"reconcile", "settle a hold with the actual spend (ReconcileHold)", reconcile_help,
         cmd_reconcile},
        {"capture", "the same as reconcile (CaptureHold)", capture_help, cmd_capture},
        {"extend", "move the deadline of an open hold (ExtendHold)", extend_help, cmd_extend},
        {"increment", "count an invocation without cost (IncrementInvocation)", increment_help,
         cmd_increment},
        {"usage", "show the usage of one grant (GetUsage)", usage_help, cmd_usage},
        {"usages", "list usage records (ListUsages)", usages_help, cmd_usages},
        {"events", "list the mutation log (ListMutationEvents)", events_help, cmd_events},
        {"hold", "show one hold (GetHold)", hold_help, cmd_hold},
        {"holds", "list holds (ListHolds)", holds_help, cmd_holds},
        {"info", "show the server's version and guarantees (GetServerInfo)", info_help, cmd_info},
        {"health", "check the server's health (grpc.health.v1.Health/Check)", health_help,
         cmd_health},
        {"backup", "copy the server's database to a file on the server (Backup)", backup_help,
         cmd_backup},
        {"verify", "replay the mutation log and check the ledger (Verify)", verify_help,
         cmd_verify},
};
const size_t cli_command_count = sizeof(cli_commands) / sizeof(cli_commands[0]);
