/* output.c - budgetctl: aligned text tables and protobuf-style JSON. */
#define _GNU_SOURCE
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* ---- tables ---------------------------------------------------------------- */

struct table {
	size_t ncols;
	const char *const *headers; /* NULL: a "key: value" block */
	bool right[16];             /* right-aligned columns */
	char **cells;               /* nrows * ncols, row-major, owned */
	size_t nrows, cap;
};

#define TABLE_COLS_MAX 16

static void oom(void)
{
	fprintf(stderr, "%s: out of memory\n", CLI_NAME);
	exit(EXIT_GRPC_BASE);
}

table *table_new(size_t ncols, const char *const *headers)
{
	table *t = calloc(1, sizeof(*t));

	if (!t || ncols == 0 || ncols > TABLE_COLS_MAX)
		oom();
	t->ncols = ncols;
	t->headers = headers;
	return t;
}

void table_right_align(table *t, size_t col)
{
	if (col < t->ncols)
		t->right[col] = true;
}

static void add_row(table *t, char **row)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **cells = reallocarray(t->cells, cap * t->ncols, sizeof(*cells));

		if (!cells)
			oom();
		t->cells = cells;
		t->cap = cap;
	}
	memcpy(&t->cells[t->nrows * t->ncols], row, t->ncols * sizeof(*row));
	t->nrows++;
}

void table_add(table *t, ...)
{
	char *row[TABLE_COLS_MAX];
	va_list ap;

	va_start(ap, t);
	for (size_t i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);

		row[i] = strdup(s ? s : "");
		if (!row[i])
			oom();
	}
	va_end(ap);
	add_row(t, row);
}

void table_add_cells(table *t, const char *const *cells)
{
	char *row[TABLE_COLS_MAX];

	for (size_t i = 0; i < t->ncols; i++) {
		row[i] = strdup(cells[i] ? cells[i] : "");
		if (!row[i])
			oom();
	}
	add_row(t, row);
}

void table_kv(table *t, const char *key, const char *fmt, ...)
{
	char *row[2];
	va_list ap;
	int n;

	row[0] = strdup(key);
	va_start(ap, fmt);
	n = vasprintf(&row[1], fmt, ap);
	va_end(ap);
	if (!row[0] || n < 0)
		oom();
	add_row(t, row);
}

/* Display width of a UTF-8 string, counting code points (ids are UTF-8). */
static size_t width_of(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static void pad(FILE *f, size_t n)
{
	while (n-- > 0)
		fputc(' ', f);
}

void table_print(table *t, FILE *f)
{
	size_t width[TABLE_COLS_MAX] = {0};

	if (t->headers)
		for (size_t c = 0; c < t->ncols; c++)
			width[c] = width_of(t->headers[c]);
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t w = width_of(t->cells[r * t->ncols + c]) + (!t->headers && c == 0);

			if (w > width[c])
				width[c] = w;
		}

	if (t->headers) {
		for (size_t c = 0; c < t->ncols; c++) {
			size_t gap = width[c] - width_of(t->headers[c]);
			bool last = c + 1 == t->ncols;

			if (t->right[c])
				pad(f, gap);
			fputs(t->headers[c], f);
			if (!last && !t->right[c])
				pad(f, gap);
			fputs(last ? "\n" : "  ", f);
		}
	}
	for (size_t r = 0; r < t->nrows; r++) {
		char **row = &t->cells[r * t->ncols];

		if (!t->headers) { /* key: value */
			fprintf(f, "%s:", row[0]);
			pad(f, width[0] - width_of(row[0]));
			fprintf(f, "%s\n", row[1]);
			continue;
		}
		for (size_t c = 0; c < t->ncols; c++) {
			size_t gap = width[c] - width_of(row[c]);
			bool last = c + 1 == t->ncols;

			if (t->right[c])
				pad(f, gap);
			fputs(row[c], f);
			if (!last && !t->right[c])
				pad(f, gap);
			fputs(last ? "\n" : "  ", f);
		}
	}
	table_free(t);
}

void table_free(table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

/* ---- formats --------------------------------------------------------------- */

const char *fmt_u64(char buf[CLI_NUM_SIZE], uint64_t v)
{
	snprintf(buf, CLI_NUM_SIZE, "%" PRIu64, v);
	return buf;
}

/* RFC 3339 in UTC with 0, 3, 6 or 9 fractional digits, as protobuf's JSON
 * mapping writes a Timestamp. */
static void rfc3339(char buf[CLI_TIME_SIZE], const bc_timestamp *t)
{
	time_t secs = (time_t)t->seconds;
	int32_t ns = t->nanos;
	struct tm tm;
	size_t n;

	if (ns < 0 || ns > 999999999 || !gmtime_r(&secs, &tm)) {
		snprintf(buf, CLI_TIME_SIZE, "%" PRId64 "s", t->seconds);
		return;
	}
	n = strftime(buf, CLI_TIME_SIZE, "%Y-%m-%dT%H:%M:%S", &tm);
	if (ns == 0)
		snprintf(buf + n, CLI_TIME_SIZE - n, "Z");
	else if (ns % 1000000 == 0)
		snprintf(buf + n, CLI_TIME_SIZE - n, ".%03dZ", (int)(ns / 1000000));
	else if (ns % 1000 == 0)
		snprintf(buf + n, CLI_TIME_SIZE - n, ".%06dZ", (int)(ns / 1000));
	else
		snprintf(buf + n, CLI_TIME_SIZE - n, ".%09dZ", (int)ns);
}

const char *fmt_time(char buf[CLI_TIME_SIZE], bool has, const bc_timestamp *t)
{
	if (!has) {
		snprintf(buf, CLI_TIME_SIZE, "-");
		return buf;
	}
	rfc3339(buf, t);
	return buf;
}

const char *enum_short(const char *full, const char *prefix, int value)
{
	static char buf[96];
	size_t plen = strlen(prefix);
	size_t i;

	if (!full) {
		snprintf(buf, sizeof(buf), "unknown(%d)", value);
		return buf;
	}
	if (strncmp(full, prefix, plen) == 0)
		full += plen;
	for (i = 0; full[i] && i + 1 < sizeof(buf); i++)
		buf[i] = (char)tolower((unsigned char)full[i]);
	buf[i] = '\0';
	return buf;
}

/* ---- JSON ------------------------------------------------------------------ */

json_t *json_u64(uint64_t v)
{
	char buf[CLI_NUM_SIZE];

	return json_string(fmt_u64(buf, v));
}

json_t *json_enum(const char *name, int value)
{
	/* protobuf's JSON mapping writes an unknown enum value as its number. */
	return name ? json_string(name) : json_integer(value);
}

json_t *json_time(const bc_timestamp *t)
{
	char buf[CLI_TIME_SIZE];

	rfc3339(buf, t);
	return json_string(buf);
}

/* json_object_set_new that cannot be ignored silently: a NULL value (out
 * of memory) ends the program. */
static void set(json_t *o, const char *key, json_t *v)
{
	if (!v || json_object_set_new(o, key, v) != 0)
		oom();
}

static json_t *object(void)
{
	json_t *o = json_object();

	if (!o)
		oom();
	return o;
}

json_t *json_str(const char *s)
{
	json_t *j = json_string(s ? s : "");
	char *copy;

	if (j)
		return j;
	/* Not UTF-8 (the server validates ids, so this is a broken server):
	 * keep the ASCII and mark every other byte. */
	copy = strdup(s);
	if (!copy)
		oom();
	for (char *p = copy; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

json_t *json_authority(const bc_authority_info *a)
{
	json_t *o = object();

	set(o, "authorityId", json_str(a->authority_id));
	set(o, "leaseId", json_str(a->lease_id));
	set(o, "leaseEpoch", json_u64(a->lease_epoch));
	return o;
}

json_t *json_object_or_die(void)
{
	return object();
}

void json_set(json_t *o, const char *key, json_t *v)
{
	set(o, key, v);
}

json_t *json_metadata(const bc_commit_metadata *m)
{
	json_t *o = object();

	if (m->has_authority)
		set(o, "authority", json_authority(&m->authority));
	set(o, "guaranteeLevel",
	    json_enum(bc_guarantee_level_name(m->guarantee_level), m->guarantee_level));
	set(o, "budgetProfile",
	    json_enum(bc_budget_profile_name(m->budget_profile), m->budget_profile));
	set(o, "meteringProfile",
	    json_enum(bc_metering_profile_name(m->metering_profile), m->metering_profile));
	if (m->has_budget_commit_index)
		set(o, "budgetCommitIndex", json_u64(m->budget_commit_index));
	set(o, "eventId", json_str(m->event_id));
	if (m->budget_term)
		set(o, "budgetTerm", json_str(m->budget_term));
	set(o, "replayed", json_boolean(m->replayed));
	set(o, "dryRun", json_boolean(m->dry_run));
	return o;
}

json_t *json_usage(const bc_usage_record *u)
{
	json_t *o = object();

	set(o, "capabilityId", json_str(u->capability_id));
	set(o, "grantIndex", json_u64(u->grant_index));
	set(o, "invocationCount", json_integer(u->invocation_count));
	set(o, "totalCostExposed", json_u64(u->total_cost_exposed));
	set(o, "totalCostRealizedSpend", json_u64(u->total_cost_realized_spend));
	set(o, "committedCostUnits", json_u64(u->committed_cost_units));
	set(o, "seq", json_u64(u->seq));
	if (u->has_updated_at)
		set(o, "updatedAt", json_time(&u->updated_at));
	return o;
}

json_t *json_event(const bc_mutation_event *e)
{
	json_t *o = object();

	set(o, "eventId", json_str(e->event_id));
	if (e->hold_id)
		set(o, "holdId", json_str(e->hold_id));
	set(o, "capabilityId", json_str(e->capability_id));
	set(o, "grantIndex", json_u64(e->grant_index));
	set(o, "kind", json_enum(bc_mutation_kind_name(e->kind), e->kind));
	if (e->has_allowed)
		set(o, "allowed", json_boolean(e->allowed));
	set(o, "denialReason",
	    json_enum(bc_denial_reason_name(e->denial_reason), e->denial_reason));
	if (e->has_recorded_at)
		set(o, "recordedAt", json_time(&e->recorded_at));
	set(o, "eventSeq", json_u64(e->event_seq));
	if (e->has_usage_seq)
		set(o, "usageSeq", json_u64(e->usage_seq));
	set(o, "exposureUnits", json_u64(e->exposure_units));
	set(o, "realizedSpendUnits", json_u64(e->realized_spend_units));
	if (e->has_max_invocations)
		set(o, "maxInvocations", json_u64(e->max_invocations));
	if (e->has_max_cost_per_invocation)
		set(o, "maxCostPerInvocation", json_u64(e->max_cost_per_invocation));
	if (e->has_max_total_cost_units)
		set(o, "maxTotalCostUnits", json_u64(e->max_total_cost_units));
	set(o, "invocationCountAfter", json_integer(e->invocation_count_after));
	set(o, "totalCostExposedAfter", json_u64(e->total_cost_exposed_after));
	set(o, "totalCostRealizedSpendAfter", json_u64(e->total_cost_realized_spend_after));
	if (e->has_authority)
		set(o, "authority", json_authority(&e->authority));
	set(o, "caller", json_string(e->caller ? e->caller : ""));
	if (e->has_ttl_seconds)
		set(o, "ttlSeconds", json_integer(e->ttl_seconds));
	if (e->has_expires_at)
		set(o, "expiresAt", json_time(&e->expires_at));
	set(o, "onExpiry", json_enum(bc_expiry_policy_name(e->on_expiry), e->on_expiry));
	return o;
}

json_t *json_hold(const bc_hold *h)
{
	json_t *o = object();

	set(o, "holdId", json_str(h->hold_id));
	set(o, "capabilityId", json_str(h->capability_id));
	set(o, "grantIndex", json_u64(h->grant_index));
	set(o, "authorizedExposureUnits", json_u64(h->authorized_exposure_units));
	set(o, "remainingExposureUnits", json_u64(h->remaining_exposure_units));
	set(o, "debitedInvocation", json_boolean(h->debited_invocation));
	set(o, "disposition", json_enum(bc_hold_disposition_name(h->disposition), h->disposition));
	if (h->has_authority)
		set(o, "authority", json_authority(&h->authority));
	if (h->has_created_at)
		set(o, "createdAt", json_time(&h->created_at));
	if (h->has_updated_at)
		set(o, "updatedAt", json_time(&h->updated_at));
	if (h->has_expires_at)
		set(o, "expiresAt", json_time(&h->expires_at));
	set(o, "onExpiry", json_enum(bc_expiry_policy_name(h->on_expiry), h->on_expiry));
	return o;
}

int json_print(json_t *root)
{
	int rc;

	if (!root)
		oom();
	rc = json_dumpf(root, stdout, JSON_INDENT(2));
	json_decref(root);
	if (rc != 0 || fputc('\n', stdout) == EOF) {
		fprintf(stderr, "%s: cannot write the JSON output\n", CLI_NAME);
		return EXIT_GRPC_BASE;
	}
	return 0;
}
