/* fuzz_request.c - libFuzzer target: one request as budgetd receives it.
 *
 * Input: byte 0 picks the request type (byte 0 % N_TYPES), into how many
 * gRPC slices the payload is cut (byte 0 / N_TYPES % 3 + 1), whether a
 * mutation carries the caller identity "unix" (byte 0 / N_TYPES / 3 % 2)
 * and whether an authorize gets server defaults for what it leaves unset
 * (--hold-ttl 3600 --on-expiry release; byte 0 / N_TYPES / 6 % 2); the
 * remaining bytes are the protobuf wire payload. It is decoded by the daemon's own
 * bd_unpack (a grpc_byte_buffer, the arena allocator, the canonical-encoding
 * check). Mutation requests then go through bd_translate_mutation into one
 * process-wide :memory: store, exactly as the handlers of daemon/bd_budget.c
 * hand them to the writer; read requests call the store's read with the
 * decoded fields as bd_budget.c does (ListHolds through
 * bd_translate_hold_query, page token included).
 *
 * Checked after every input (store/RULES.md, bs_store.h): a string field
 * bd_unpack accepted holds no NUL byte; the store answers a bad request with
 * a message and leaves it exactly as it was; an applied mutation takes the
 * next sequence value and changes its usage row and hold by exactly what the
 * rules say; the commit index never decreases; every row, hold and event a
 * read returns is well-formed (committed == exposed + realized, without
 * overflow), in the documented order and within the requested filter/limit.
 *
 * The store keeps its state across inputs (so holds opened by one input can
 * be settled by another) and is replaced by a fresh one every
 * RESET_EVENTS events. BUDGETD_FUZZ_FRESH=1 gives every input a fresh store,
 * for reproducing a crash from its input alone. BUDGETD_FUZZ_STATS=1 prints
 * what the run reached (per type, per store answer) at exit.
 */
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bd_arena.h"
#include "bd_grpc.h"
#include "bd_status.h"
#include "bd_translate.h"
#include "bs_store.h"
#include "budgetd/v1/budget_authority.pb-c.h"
#include "fuzz_util.h"
#include "grpc/health/v1/health.pb-c.h"

#define RESET_EVENTS 100000
#define WHY_MAX      256
#define MESSAGES_MAX 128 /* distinct store error messages kept for the stats */

typedef enum req_class {
	MUTATION,
	GET_USAGE,
	LIST_USAGES,
	LIST_EVENTS,
	GET_HOLD,
	LIST_HOLDS,
	SERVER_INFO,
	HEALTH_CHECK,
} req_class;

typedef struct req_type {
	const ProtobufCMessageDescriptor *d;
	req_class cls;
	bs_kind kind; /* mutations only */
} req_type;

/* Every request message budgetd decodes from a unary call. */
static const req_type types[] = {
        {&budgetd__v1__authorize_hold_request__descriptor, MUTATION, BS_KIND_AUTHORIZE_EXPOSURE},
        {&budgetd__v1__release_hold_request__descriptor, MUTATION, BS_KIND_RELEASE_EXPOSURE},
        {&budgetd__v1__reverse_hold_request__descriptor, MUTATION, BS_KIND_REVERSE_EXPOSURE},
        {&budgetd__v1__reconcile_hold_request__descriptor, MUTATION, BS_KIND_RECONCILE_SPEND},
        {&budgetd__v1__capture_hold_request__descriptor, MUTATION, BS_KIND_RECONCILE_SPEND},
        {&budgetd__v1__increment_invocation_request__descriptor, MUTATION,
         BS_KIND_INCREMENT_INVOCATION},
        {&budgetd__v1__get_usage_request__descriptor, GET_USAGE, 0},
        {&budgetd__v1__list_usages_request__descriptor, LIST_USAGES, 0},
        {&budgetd__v1__list_mutation_events_request__descriptor, LIST_EVENTS, 0},
        {&budgetd__v1__get_hold_request__descriptor, GET_HOLD, 0},
        {&budgetd__v1__get_server_info_request__descriptor, SERVER_INFO, 0},
        {&grpc__health__v1__health_check_request__descriptor, HEALTH_CHECK, 0},
        {&budgetd__v1__extend_hold_request__descriptor, MUTATION, BS_KIND_EXTEND_HOLD},
        {&budgetd__v1__list_holds_request__descriptor, LIST_HOLDS, 0},
};
#define N_TYPES (sizeof(types) / sizeof(types[0]))

/* What an authorize leaves unset, when the input asks for server defaults. */
static const bd_hold_defaults server_defaults = {3600, BS_EXPIRY_RELEASE};

static bs_store *store;
static uint64_t last_commit_index; /* of the current store */
static bool fresh_each_input;

/* ---- stats (BUDGETD_FUZZ_STATS) ---- */

static bool stats_on;
static struct {
	unsigned long decoded[N_TYPES], rejected[N_TYPES], by_result[N_TYPES][7];
	unsigned long replayed, denied, resets;
	size_t max_arena, max_arena_input; /* the largest decode, and its input size */
	struct {
		char text[96];
		unsigned long n;
	} messages[MESSAGES_MAX];
	size_t n_messages;
} stats;

/* Counts a message with digits and `quoted` parts blanked out. */
static void count_message(const char *msg)
{
	char norm[96];
	size_t j = 0;
	bool quoted = false;

	for (const char *p = msg; *p && j < sizeof(norm) - 2; p++) {
		if (*p == '`') {
			quoted = !quoted;
			norm[j++] = quoted ? '`' : '_';
			if (!quoted)
				norm[j++] = '`';
		} else if (!quoted && (*p < '0' || *p > '9')) {
			norm[j++] = *p;
		} else if (!quoted && (j == 0 || norm[j - 1] != '#')) {
			norm[j++] = '#';
		}
	}
	norm[j] = '\0';
	for (size_t i = 0; i < stats.n_messages; i++) {
		if (strcmp(stats.messages[i].text, norm) == 0) {
			stats.messages[i].n++;
			return;
		}
	}
	if (stats.n_messages < MESSAGES_MAX) {
		memcpy(stats.messages[stats.n_messages].text, norm, j + 1);
		stats.messages[stats.n_messages++].n = 1;
	}
}

static void count_result(const req_type *t, int rc, const bs_error *err)
{
	if (!stats_on)
		return;
	stats.by_result[t - types][rc <= 0 && rc >= -6 ? -rc : 6]++;
	if (rc != BS_OK)
		count_message(err->message);
}

static void print_stats(void)
{
	fprintf(stderr, "\nbudgetd fuzz_request: per type: decoded, rejected by bd_unpack, then "
	                "store ok/einval/eprecondition/econflict/eoverflow/estorage/einternal\n");
	for (size_t i = 0; i < N_TYPES; i++) {
		fprintf(stderr, "  %-42s %8lu %8lu  ", types[i].d->name, stats.decoded[i],
		        stats.rejected[i]);
		for (int k = 0; k < 7; k++)
			fprintf(stderr, " %lu", stats.by_result[i][k]);
		fputc('\n', stderr);
	}
	fprintf(stderr,
	        "  replayed %lu, denied %lu, store resets %lu, largest decode %zu arena bytes"
	        " for %zu input bytes\n  store messages:\n",
	        stats.replayed, stats.denied, stats.resets, stats.max_arena, stats.max_arena_input);
	for (size_t i = 0; i < stats.n_messages; i++)
		fprintf(stderr, "  %8lu  %s\n", stats.messages[i].n, stats.messages[i].text);
}

/* ---- the store ---- */

static void store_open(void)
{
	bs_error err;

	memset(&err, 0, sizeof(err));
	if (bs_store_open(":memory:", NULL, &store, &err) != BS_OK)
		fuzz_fail("cannot open a :memory: store: %s", err.message);
	last_commit_index = 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	grpc_init();
	fresh_each_input = getenv("BUDGETD_FUZZ_FRESH") != NULL;
	stats_on = getenv("BUDGETD_FUZZ_STATS") != NULL;
	if (stats_on && atexit(print_stats) != 0)
		fuzz_fail("atexit failed");
	store_open();
	return 0;
}

/* ---- the wire ---- */

/* The payload as gRPC hands it over: one to three slices. */
static grpc_byte_buffer *make_buffer(const uint8_t *p, size_t n, unsigned n_slices)
{
	grpc_slice slices[3];
	size_t at = 0;

	if (n_slices > n)
		n_slices = n ? (unsigned)n : 1;
	for (unsigned i = 0; i < n_slices; i++) {
		size_t end = i + 1 == n_slices ? n : n * (i + 1) / n_slices;
		slices[i] = grpc_slice_from_copied_buffer((const char *)p + at, end - at);
		at = end;
	}
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, n_slices);
	for (unsigned i = 0; i < n_slices; i++)
		grpc_slice_unref(slices[i]);
	FUZZ_CHECK(bb != NULL, "grpc_raw_byte_buffer_create failed");
	return bb;
}

static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
		uint8_t b = *(*p)++;
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/* Whether a length-delimited field that `d` declares a string holds a NUL
 * byte, in the message or (recursively) in its message fields. The wire is
 * one bd_unpack accepted; anything unexpected just ends the walk. */
static bool string_with_nul(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                            int depth)
{
	const uint8_t *end = p + n;
	uint64_t tag, v;

	while (p < end && read_varint(&p, end, &tag)) {
		const ProtobufCFieldDescriptor *f =
		        tag >> 3 <= UINT32_MAX
		                ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3))
		                : NULL;
		switch (tag & 7) {
		case 0:
			if (!read_varint(&p, end, &v))
				return false;
			break;
		case 1:
			if (end - p < 8)
				return false;
			p += 8;
			break;
		case 5:
			if (end - p < 4)
				return false;
			p += 4;
			break;
		case 2:
			if (!read_varint(&p, end, &v) || v > (uint64_t)(end - p))
				return false;
			if (f && f->type == PROTOBUF_C_TYPE_STRING && memchr(p, '\0', v))
				return true;
			if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < 8 &&
			    string_with_nul(f->descriptor, p, v, depth + 1))
				return true;
			p += v;
			break;
		default:
			return false;
		}
	}
	return false;
}

/* ---- reads of the touched state ---- */

typedef struct usage_copy {
	bool found;
	char cap[BS_ID_LEN_MAX + 1];
	bs_usage u;
} usage_copy;

static int copy_usage(void *ctx, const bs_usage *u)
{
	usage_copy *c = ctx;

	FUZZ_CHECK(!c->found, "get_usage called its visitor twice");
	FUZZ_CHECK(u->capability_id.len <= BS_ID_LEN_MAX, "usage row with a %zu-byte capability",
	           u->capability_id.len);
	c->found = true;
	c->u = *u;
	memcpy(c->cap, u->capability_id.ptr, u->capability_id.len);
	c->u.capability_id.ptr = c->cap;
	return 0;
}

typedef struct hold_copy {
	bool found;
	char id[BS_ID_LEN_MAX + 1], cap[BS_ID_LEN_MAX + 1];
	char authority_id[BS_ID_LEN_MAX + 1], lease_id[BS_ID_LEN_MAX + 1];
	bs_hold h;
} hold_copy;

static void copy_str(char *buf, bs_str *s)
{
	if (!s->ptr)
		return;
	FUZZ_CHECK(s->len <= BS_ID_LEN_MAX, "a %zu-byte id", s->len);
	memcpy(buf, s->ptr, s->len);
	s->ptr = buf;
}

static int copy_hold(void *ctx, const bs_hold *h)
{
	hold_copy *c = ctx;

	FUZZ_CHECK(!c->found, "get_hold called its visitor twice");
	c->found = true;
	c->h = *h;
	copy_str(c->id, &c->h.hold_id);
	copy_str(c->cap, &c->h.capability_id);
	copy_str(c->authority_id, &c->h.authority.authority_id);
	copy_str(c->lease_id, &c->h.authority.lease_id);
	return 0;
}

/* The usage row of (cap, grant): BS_OK, or BS_EINVAL when the pair is not
 * a valid read (a mutation naming it fails validation too). */
static int read_usage(bs_str cap, uint64_t grant, usage_copy *out, bs_error *err)
{
	bool found = false;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	int rc = bs_store_get_usage(store, cap, grant, copy_usage, out, &found, err);
	if (rc == BS_EINVAL)
		return rc;
	FUZZ_CHECK(rc == BS_OK, "get_usage failed: %d %s", rc, err->message);
	FUZZ_CHECK(found == out->found, "get_usage: found=%d but visited=%d", found, out->found);
	if (found) {
		FUZZ_CHECK(fuzz_str_eq(out->u.capability_id, cap) && out->u.grant_index == grant,
		           "get_usage returned another row");
		fuzz_check_usage("get_usage", &out->u, fuzz_commit_index(store));
	}
	return rc;
}

/* The hold `hold_id`: BS_OK, or BS_EINVAL for a malformed or absent id. */
static int read_hold(bs_str hold_id, hold_copy *out, bs_error *err)
{
	bool found = false;

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	int rc = bs_store_get_hold(store, hold_id, copy_hold, out, &found, err);
	if (rc == BS_EINVAL)
		return rc;
	FUZZ_CHECK(rc == BS_OK, "get_hold failed: %d %s", rc, err->message);
	FUZZ_CHECK(found == out->found, "get_hold: found=%d but visited=%d", found, out->found);
	if (found) {
		FUZZ_CHECK(fuzz_str_eq(out->h.hold_id, hold_id), "get_hold returned another hold");
		fuzz_check_hold("get_hold", &out->h);
	}
	return rc;
}

static bool same_usage(const usage_copy *a, const usage_copy *b)
{
	return a->found == b->found &&
	       (!a->found || (a->u.invocation_count == b->u.invocation_count &&
	                      a->u.total_cost_exposed == b->u.total_cost_exposed &&
	                      a->u.total_cost_realized_spend == b->u.total_cost_realized_spend &&
	                      a->u.seq == b->u.seq && a->u.updated_at_ns == b->u.updated_at_ns));
}

static bool same_hold(const hold_copy *a, const hold_copy *b)
{
	return a->found == b->found &&
	       (!a->found ||
	        (a->h.remaining_units == b->h.remaining_units &&
	         a->h.authorized_units == b->h.authorized_units &&
	         a->h.disposition == b->h.disposition && a->h.updated_at_ns == b->h.updated_at_ns &&
	         a->h.expires_at_ns == b->h.expires_at_ns && a->h.on_expiry == b->h.on_expiry));
}

/* ---- mutations ---- */

/* What an applied, not replayed mutation must have done to its usage row
 * (store/RULES.md): `before` and `after` are the row around the apply. */
static void check_row_change(const bs_mutation *m, const bs_outcome *o, const usage_copy *before,
                             const usage_copy *after)
{
	const bs_usage *b = &before->u, *a = &after->u;
	uint64_t units = m->exposure_units;

	if (!o->allowed) {
		FUZZ_CHECK(same_usage(before, after), "a denied %s changed its usage row",
		           bs_kind_name(m->kind));
		FUZZ_CHECK(o->invocation_count_after == (after->found ? a->invocation_count : 0) &&
		                   o->exposed_after == (after->found ? a->total_cost_exposed : 0) &&
		                   o->realized_after ==
		                           (after->found ? a->total_cost_realized_spend : 0),
		           "a denied %s reports other values than its usage row",
		           bs_kind_name(m->kind));
		return;
	}
	FUZZ_CHECK(after->found, "an applied %s left no usage row", bs_kind_name(m->kind));
	FUZZ_CHECK(a->seq == o->commit_index && a->invocation_count == o->invocation_count_after &&
	                   a->total_cost_exposed == o->exposed_after &&
	                   a->total_cost_realized_spend == o->realized_after,
	           "usage row (seq %" PRIu64 " count %u exposed %" PRIu64 " realized %" PRIu64
	           ") differs from the outcome (%" PRIu64 " %u %" PRIu64 " %" PRIu64 ")",
	           a->seq, a->invocation_count, a->total_cost_exposed, a->total_cost_realized_spend,
	           o->commit_index, o->invocation_count_after, o->exposed_after, o->realized_after);
	uint32_t count = before->found ? b->invocation_count : 0;
	uint64_t exposed = before->found ? b->total_cost_exposed : 0;
	uint64_t realized = before->found ? b->total_cost_realized_spend : 0;
	switch (m->kind) {
	case BS_KIND_AUTHORIZE_EXPOSURE:
		count++, exposed += units;
		break;
	case BS_KIND_INCREMENT_INVOCATION:
		count++;
		break;
	case BS_KIND_RELEASE_EXPOSURE:
		exposed -= units;
		break;
	case BS_KIND_REVERSE_EXPOSURE:
		count--, exposed -= units;
		break;
	case BS_KIND_RECONCILE_SPEND:
		exposed -= units, realized += m->realized_units;
		break;
	case BS_KIND_EXTEND_HOLD: /* only the deadline moves */
		break;
	case BS_KIND_EXPIRE_EXPOSURE:
		FUZZ_CHECK(false, "expire_exposure was applied from a request");
		break;
	}
	FUZZ_CHECK(before->found || m->kind == BS_KIND_AUTHORIZE_EXPOSURE ||
	                   m->kind == BS_KIND_INCREMENT_INVOCATION,
	           "a %s was applied without a usage row", bs_kind_name(m->kind));
	FUZZ_CHECK(a->invocation_count == count && a->total_cost_exposed == exposed &&
	                   a->total_cost_realized_spend == realized,
	           "%s: usage row count %u exposed %" PRIu64 " realized %" PRIu64
	           ", the rules give %u %" PRIu64 " %" PRIu64,
	           bs_kind_name(m->kind), a->invocation_count, a->total_cost_exposed,
	           a->total_cost_realized_spend, count, exposed, realized);
}

/* An authorize opens its hold with the deadline and policy asked for. */
static void check_new_deadline(const bs_mutation *m, const bs_outcome *o, const bs_hold *a)
{
	FUZZ_CHECK(a->expires_at_ns == o->expires_at_ns,
	           "authorize: hold deadline %" PRId64 ", outcome %" PRId64, a->expires_at_ns,
	           o->expires_at_ns);
	FUZZ_CHECK((m->ttl_seconds > 0) == (a->expires_at_ns != 0),
	           "authorize: ttl %u gave deadline %" PRId64, m->ttl_seconds, a->expires_at_ns);
	FUZZ_CHECK(m->ttl_seconds == 0 ||
	                   (a->on_expiry == m->on_expiry &&
	                    a->expires_at_ns >=
	                            a->created_at_ns + (int64_t)m->ttl_seconds * 1000000000),
	           "authorize: hold policy %d deadline %" PRId64
	           " for ttl %u policy %d (created %" PRId64 ")",
	           (int)a->on_expiry, a->expires_at_ns, m->ttl_seconds, (int)m->on_expiry,
	           a->created_at_ns);
}

/* An extend leaves the hold open and its amounts alone, and never moves
 * its deadline earlier. */
static void check_extended(const bs_mutation *m, const bs_outcome *o, const bs_hold *b,
                           const bs_hold *a)
{
	FUZZ_CHECK(a->disposition == BS_HOLD_OPEN && a->remaining_units == b->remaining_units,
	           "extend: hold %s with %" PRIu64 " remaining (was %" PRIu64 ")",
	           bs_disposition_name(a->disposition), a->remaining_units, b->remaining_units);
	FUZZ_CHECK(a->expires_at_ns == o->expires_at_ns && a->expires_at_ns >= b->expires_at_ns &&
	                   a->expires_at_ns > 0,
	           "extend: deadline %" PRId64 " -> %" PRId64 " (outcome %" PRId64 ", ttl %u)",
	           b->expires_at_ns, a->expires_at_ns, o->expires_at_ns, m->ttl_seconds);
	FUZZ_CHECK(a->on_expiry == (b->on_expiry ? b->on_expiry : BS_EXPIRY_CAPTURE),
	           "extend: policy %d -> %d", (int)b->on_expiry, (int)a->on_expiry);
}

static void check_hold_change(const bs_mutation *m, const bs_outcome *o, const hold_copy *before,
                              const hold_copy *after)
{
	const bs_hold *b = &before->h, *a = &after->h;

	if (m->kind == BS_KIND_AUTHORIZE_EXPOSURE) {
		if (!o->allowed) {
			FUZZ_CHECK(same_hold(before, after), "a denied authorize changed its hold");
			return;
		}
		FUZZ_CHECK(!before->found && after->found && a->disposition == BS_HOLD_OPEN &&
		                   a->authorized_units == m->exposure_units &&
		                   a->remaining_units == m->exposure_units &&
		                   fuzz_str_eq(a->capability_id, m->capability_id) &&
		                   a->grant_index == m->grant_index &&
		                   a->has_authority == m->has_authority,
		           "authorize: the hold was not opened as requested");
		FUZZ_CHECK(!m->has_authority ||
		                   (fuzz_str_eq(a->authority.authority_id,
		                                m->authority.authority_id) &&
		                    fuzz_str_eq(a->authority.lease_id, m->authority.lease_id) &&
		                    a->authority.lease_epoch == m->authority.lease_epoch),
		           "authorize: the hold's authority is not the request's");
		check_new_deadline(m, o, a);
		return;
	}
	FUZZ_CHECK(before->found && b->disposition == BS_HOLD_OPEN && after->found,
	           "%s applied to a hold that was missing or not open", bs_kind_name(m->kind));
	FUZZ_CHECK(fuzz_str_eq(b->capability_id, m->capability_id) &&
	                   b->grant_index == m->grant_index,
	           "%s applied to a hold of another capability/grant", bs_kind_name(m->kind));
	FUZZ_CHECK(a->authorized_units == b->authorized_units,
	           "%s changed the hold's authorized units", bs_kind_name(m->kind));
	switch (m->kind) {
	case BS_KIND_EXTEND_HOLD:
		check_extended(m, o, b, a);
		break;
	case BS_KIND_RELEASE_EXPOSURE:
		FUZZ_CHECK(b->remaining_units >= m->exposure_units &&
		                   a->remaining_units == b->remaining_units - m->exposure_units &&
		                   a->disposition ==
		                           (a->remaining_units ? BS_HOLD_OPEN : BS_HOLD_RELEASED),
		           "release: hold remaining %" PRIu64 " -> %" PRIu64 " (%s) for %" PRIu64,
		           b->remaining_units, a->remaining_units,
		           bs_disposition_name(a->disposition), m->exposure_units);
		break;
	case BS_KIND_REVERSE_EXPOSURE:
		FUZZ_CHECK(b->remaining_units == m->exposure_units && a->remaining_units == 0 &&
		                   a->disposition == BS_HOLD_REVERSED,
		           "reverse: hold remaining %" PRIu64 " -> %" PRIu64 " (%s) for %" PRIu64,
		           b->remaining_units, a->remaining_units,
		           bs_disposition_name(a->disposition), m->exposure_units);
		break;
	default:
		FUZZ_CHECK(b->remaining_units == m->exposure_units && a->remaining_units == 0 &&
		                   a->disposition == BS_HOLD_RECONCILED,
		           "reconcile: hold remaining %" PRIu64 " -> %" PRIu64 " (%s) for %" PRIu64,
		           b->remaining_units, a->remaining_units,
		           bs_disposition_name(a->disposition), m->exposure_units);
		break;
	}
	FUZZ_CHECK(b->has_authority == m->has_authority, "%s passed the authority rule wrongly",
	           bs_kind_name(m->kind));
}

/* Applies `m` and checks what it did to the store; returns the result. */
static int apply_checked(const req_type *t, const bs_mutation *m, bs_outcome *out, bs_error *err)
{
	usage_copy row_before, row_after;
	hold_copy hold_before, hold_after;
	bs_error rerr;

	bool has_row = read_usage(m->capability_id, m->grant_index, &row_before, &rerr) == BS_OK;
	bool has_hold = m->hold_id.ptr && read_hold(m->hold_id, &hold_before, &rerr) == BS_OK;
	uint64_t before = fuzz_commit_index(store);

	memset(out, 0, sizeof(*out));
	memset(err, 0, sizeof(*err));
	int rc = bs_store_apply(store, m, out, err);
	uint64_t after = fuzz_commit_index(store);
	count_result(t, rc, err);
	FUZZ_CHECK(rc <= 0 && rc >= BS_EINTERNAL, "bs_store_apply returned %d", rc);
	FUZZ_CHECK((bd_status_from_store(rc) == GRPC_STATUS_OK) == (rc == BS_OK) &&
	                   bd_status_from_store(rc) != GRPC_STATUS_INTERNAL,
	           "store result %d maps to gRPC status %d", rc, (int)bd_status_from_store(rc));
	FUZZ_CHECK(!has_row ||
	                   read_usage(m->capability_id, m->grant_index, &row_after, &rerr) == BS_OK,
	           "get_usage of the mutation's row failed");
	FUZZ_CHECK(!has_hold || read_hold(m->hold_id, &hold_after, &rerr) == BS_OK,
	           "get_hold of the mutation's hold failed");
	if (rc != BS_OK) {
		FUZZ_CHECK(rc != BS_ESTORAGE && rc != BS_EINTERNAL, "%s: %s (%d)", t->d->name,
		           err->message, rc);
		FUZZ_CHECK(err->code == rc && err->message[0] &&
		                   memchr(err->message, '\0', sizeof(err->message)),
		           "error %d with code %d and no message", rc, err->code);
		FUZZ_CHECK(after == before,
		           "a failed %s took sequence values %" PRIu64 "..%" PRIu64, t->d->name,
		           before, after);
		FUZZ_CHECK(!has_row || same_usage(&row_before, &row_after),
		           "a failed %s (%s) changed its usage row", t->d->name, err->message);
		FUZZ_CHECK(!has_hold || same_hold(&hold_before, &hold_after),
		           "a failed %s (%s) changed its hold", t->d->name, err->message);
		return rc;
	}
	fuzz_check_outcome(m, out);
	if (out->replayed || out->dry_run) {
		if (stats_on)
			stats.replayed += out->replayed;
		FUZZ_CHECK(after == before && out->event_seq <= before,
		           "a %s moved the commit index %" PRIu64 " -> %" PRIu64
		           " (event_seq %" PRIu64 ")",
		           out->replayed ? "replay" : "dry run", before, after, out->event_seq);
		FUZZ_CHECK(same_usage(&row_before, &row_after) &&
		                   (!has_hold || same_hold(&hold_before, &hold_after)),
		           "a %s changed state", out->replayed ? "replay" : "dry run");
		return rc;
	}
	if (stats_on && !out->allowed)
		stats.denied++;
	FUZZ_CHECK(after == before + 1 && out->event_seq == after,
	           "an applied %s moved the commit index %" PRIu64 " -> %" PRIu64
	           " with event_seq %" PRIu64,
	           t->d->name, before, after, out->event_seq);
	FUZZ_CHECK(has_row, "an applied %s names an unreadable capability/grant", t->d->name);
	check_row_change(m, out, &row_before, &row_after);
	if (m->hold_id.ptr) {
		FUZZ_CHECK(has_hold, "an applied %s names an unreadable hold", t->d->name);
		check_hold_change(m, out, &hold_before, &hold_after);
	}
	return rc;
}

/* A dry run answers what the same authorize would answer now; the harness
 * then applies it for real to compare (unless the real one is answered from
 * the log: a dry run ignores the event_id). */
static void check_dry_run(int rc, const bs_outcome *o, const bs_error *e, int real_rc,
                          const bs_outcome *real, const bs_error *real_e)
{
	if ((real_rc == BS_OK && real->replayed) ||
	    (real_rc == BS_ECONFLICT && strstr(real_e->message, "was reused for a different")))
		return;
	FUZZ_CHECK(rc == real_rc, "dry run answered %d (%s), the authorize %d (%s)", rc,
	           rc ? e->message : "ok", real_rc, real_rc ? real_e->message : "ok");
	if (rc != BS_OK) {
		FUZZ_CHECK(strcmp(e->message, real_e->message) == 0,
		           "dry run failed with `%s`, the authorize with `%s`", e->message,
		           real_e->message);
		return;
	}
	FUZZ_CHECK(o->allowed == real->allowed && o->denial == real->denial &&
	                   o->invocation_count_after == real->invocation_count_after &&
	                   o->exposed_after == real->exposed_after &&
	                   o->realized_after == real->realized_after &&
	                   o->committed_after == real->committed_after &&
	                   strcmp(o->budget_term, real->budget_term) == 0,
	           "dry run predicted allowed=%d denial=%d count=%u exposed=%" PRIu64
	           " realized=%" PRIu64 ", the authorize gave %d %d %u %" PRIu64 " %" PRIu64,
	           o->allowed, o->denial, o->invocation_count_after, o->exposed_after,
	           o->realized_after, real->allowed, real->denial, real->invocation_count_after,
	           real->exposed_after, real->realized_after);
}

static void run_mutation(const req_type *t, const ProtobufCMessage *msg, bool with_caller,
                         bool with_defaults)
{
	const Budgetd__V1__Authority *authority = NULL;
	bs_outcome out, real;
	bs_error err, real_err;
	bs_mutation m;

	FUZZ_CHECK(bd_translate_mutation(msg, with_defaults ? &server_defaults : NULL, &m,
	                                 &authority) == 0,
	           "bd_translate_mutation refused a %s", t->d->name);
	FUZZ_CHECK(m.kind == t->kind, "%s translated to kind %d", t->d->name, (int)m.kind);
	/* As handle_mutation does for an authenticated identity. */
	if (with_caller)
		m.caller = bs_str_from("unix");
	int rc = apply_checked(t, &m, &out, &err);
	if (!m.dry_run)
		return;
	m.dry_run = false;
	int real_rc = apply_checked(t, &m, &real, &real_err);
	check_dry_run(rc, &out, &err, real_rc, &real, &real_err);
}

/* ---- reads ---- */

typedef struct list_ctx {
	uint32_t limit;
	bs_str cap; /* filter, or absent */
	bool has_grant;
	uint64_t grant;
	uint64_t after_seq;
	uint64_t commit_index;
	size_t n;
	bs_usage prev_usage;
	char prev_cap[BS_ID_LEN_MAX + 1];
	uint64_t prev_seq;
} list_ctx;

static int visit_usage(void *ctx, const bs_usage *u)
{
	list_ctx *l = ctx;

	fuzz_check_usage("list_usages", u, l->commit_index);
	FUZZ_CHECK(++l->n <= l->limit, "list_usages returned more than %u rows", l->limit);
	FUZZ_CHECK(!l->cap.ptr || fuzz_str_eq(u->capability_id, l->cap),
	           "list_usages returned a row of another capability");
	if (l->n > 1) {
		const bs_usage *p = &l->prev_usage;
		size_t n = p->capability_id.len < u->capability_id.len ? p->capability_id.len
		                                                       : u->capability_id.len;
		int c = memcmp(p->capability_id.ptr, u->capability_id.ptr, n);
		if (c == 0)
			c = (p->capability_id.len > u->capability_id.len) -
			    (p->capability_id.len < u->capability_id.len);
		FUZZ_CHECK(p->updated_at_ns > u->updated_at_ns ||
		                   (p->updated_at_ns == u->updated_at_ns &&
		                    (c < 0 || (c == 0 && p->grant_index < u->grant_index))),
		           "list_usages: row %zu is out of order", l->n);
	}
	l->prev_usage = *u;
	memcpy(l->prev_cap, u->capability_id.ptr, u->capability_id.len);
	l->prev_usage.capability_id.ptr = l->prev_cap;
	return 0;
}

static int visit_event(void *ctx, const bs_event *e)
{
	list_ctx *l = ctx;

	fuzz_check_event("list_events", e, l->commit_index);
	FUZZ_CHECK(++l->n <= l->limit, "list_events returned more than %u events", l->limit);
	FUZZ_CHECK(e->event_seq > l->prev_seq, "list_events: event %" PRIu64 " after %" PRIu64,
	           e->event_seq, l->prev_seq);
	/* Every event takes the next value: unfiltered pages have no gaps. */
	FUZZ_CHECK(l->cap.ptr || l->has_grant || e->event_seq == l->prev_seq + 1,
	           "list_events: gap between %" PRIu64 " and %" PRIu64, l->prev_seq, e->event_seq);
	FUZZ_CHECK(!l->cap.ptr || fuzz_str_eq(e->capability_id, l->cap),
	           "list_events returned an event of another capability");
	FUZZ_CHECK(!l->has_grant || e->grant_index == l->grant,
	           "list_events returned an event of another grant");
	l->prev_seq = e->event_seq;
	return 0;
}

/* ListHolds: the page is in (created_at, hold_id) order after the cursor,
 * within the filters, and each hold's page token reads back as its
 * position. */
typedef struct holds_ctx {
	const bs_hold_query *q;
	uint32_t limit;
	size_t n;
	int64_t prev_created;
	char prev_id[BS_ID_LEN_MAX];
	size_t prev_len;
} holds_ctx;

static int cmp_position(int64_t created_a, bs_str id_a, int64_t created_b, bs_str id_b)
{
	if (created_a != created_b)
		return created_a < created_b ? -1 : 1;
	size_t n = id_a.len < id_b.len ? id_a.len : id_b.len;
	int c = memcmp(id_a.ptr, id_b.ptr, n);
	return c ? c : (id_a.len > id_b.len) - (id_a.len < id_b.len);
}

static void check_page_token(const bs_hold *h)
{
	Budgetd__V1__ListHoldsRequest r = BUDGETD__V1__LIST_HOLDS_REQUEST__INIT;
	char token[BD_PAGE_TOKEN_LEN_MAX + 1], id[BS_ID_LEN_MAX], why[WHY_MAX];
	bs_hold_query q;

	bd_page_token(h, token);
	r.page_token = token;
	FUZZ_CHECK(bd_translate_hold_query(&r, &q, id, why, sizeof(why)) == 0,
	           "the page token `%s` did not read back: %s", token, why);
	FUZZ_CHECK(q.has_after && q.after_created_ns == h->created_at_ns &&
	                   fuzz_str_eq(q.after_hold_id, h->hold_id),
	           "the page token `%s` reads back as another position", token);
}

static int visit_hold(void *ctx, const bs_hold *h)
{
	holds_ctx *l = ctx;
	const bs_hold_query *q = l->q;

	fuzz_check_hold("list_holds", h);
	FUZZ_CHECK(++l->n <= l->limit, "list_holds returned more than %u holds", l->limit);
	FUZZ_CHECK((!q->capability_id.ptr || fuzz_str_eq(h->capability_id, q->capability_id)) &&
	                   (!q->has_disposition || h->disposition == q->disposition) &&
	                   (!q->has_older_than || h->created_at_ns < q->older_than_ns),
	           "list_holds returned a hold outside its filters");
	FUZZ_CHECK(!q->has_after || cmp_position(q->after_created_ns, q->after_hold_id,
	                                         h->created_at_ns, h->hold_id) < 0,
	           "list_holds returned a hold at or before its cursor");
	FUZZ_CHECK(l->n == 1 || cmp_position(l->prev_created, (bs_str){l->prev_id, l->prev_len},
	                                     h->created_at_ns, h->hold_id) < 0,
	           "list_holds: hold %zu is out of order", l->n);
	check_page_token(h);
	l->prev_created = h->created_at_ns;
	l->prev_len = h->hold_id.len <= BS_ID_LEN_MAX ? h->hold_id.len : BS_ID_LEN_MAX;
	memcpy(l->prev_id, h->hold_id.ptr, l->prev_len);
	return 0;
}

static int list_holds(const Budgetd__V1__ListHoldsRequest *r, bs_error *err)
{
	char id[BS_ID_LEN_MAX], why[WHY_MAX];
	bs_hold_query q;

	if (bd_translate_hold_query(r, &q, id, why, sizeof(why)) != 0) {
		FUZZ_CHECK(why[0] && memchr(why, '\0', sizeof(why)),
		           "a refused query says nothing");
		(void)snprintf(err->message, sizeof(err->message), "%s", why);
		err->code = BS_EINVAL;
		return BS_EINVAL;
	}
	holds_ctx l = {.q = &q, .limit = q.limit ? q.limit : BS_LIST_LIMIT_DEFAULT};
	return bs_store_list_holds(store, &q, visit_hold, &l, err);
}

static void read_result(const req_type *t, int rc, const bs_error *err)
{
	count_result(t, rc, err);
	FUZZ_CHECK(rc == BS_OK || rc == BS_EINVAL, "%s: store read failed: %d %s", t->d->name, rc,
	           err->message);
	FUZZ_CHECK(rc == BS_OK || (err->code == rc && err->message[0]),
	           "%s: error %d without a message", t->d->name, rc);
}

static uint32_t effective_limit(uint32_t limit)
{
	return limit ? limit : BS_LIST_LIMIT_DEFAULT;
}

static void run_read(const req_type *t, const ProtobufCMessage *msg)
{
	list_ctx l;
	bs_error err;
	int rc;

	memset(&l, 0, sizeof(l));
	memset(&err, 0, sizeof(err));
	l.commit_index = fuzz_commit_index(store);
	switch (t->cls) {
	case GET_USAGE: {
		const Budgetd__V1__GetUsageRequest *r = (const void *)msg;
		usage_copy row;
		rc = read_usage(bd_required_str(r->capability_id), r->grant_index, &row, &err);
		read_result(t, rc, &err);
		break;
	}
	case LIST_USAGES: {
		const Budgetd__V1__ListUsagesRequest *r = (const void *)msg;
		l.limit = effective_limit(r->limit);
		l.cap = bd_optional_str(r->_capability_id_case, r->capability_id);
		rc = bs_store_list_usages(store, r->limit, l.cap, visit_usage, &l, &err);
		read_result(t, rc, &err);
		FUZZ_CHECK(rc == BS_OK || r->limit > BS_LIST_LIMIT_MAX || l.cap.ptr,
		           "list_usages refused limit %u without a capability: %s", r->limit,
		           err.message);
		break;
	}
	case LIST_EVENTS: {
		const Budgetd__V1__ListMutationEventsRequest *r = (const void *)msg;
		l.limit = effective_limit(r->limit);
		l.cap = bd_optional_str(r->_capability_id_case, r->capability_id);
		l.has_grant = r->_grant_index_case != 0;
		l.grant = r->grant_index;
		l.after_seq = l.prev_seq = r->after_commit_index;
		rc = bs_store_list_events(store, r->limit, l.cap, l.has_grant, l.grant,
		                          r->after_commit_index, visit_event, &l, &err);
		read_result(t, rc, &err);
		if (rc == BS_OK && !l.cap.ptr && !l.has_grant) {
			uint64_t left =
			        l.commit_index > l.after_seq ? l.commit_index - l.after_seq : 0;
			FUZZ_CHECK(l.n == (left < l.limit ? left : l.limit),
			           "list_events after %" PRIu64 " (limit %u, commit index %" PRIu64
			           ") returned %zu events",
			           l.after_seq, l.limit, l.commit_index, l.n);
		}
		break;
	}
	case GET_HOLD: {
		const Budgetd__V1__GetHoldRequest *r = (const void *)msg;
		hold_copy h;
		rc = read_hold(bd_required_str(r->hold_id), &h, &err);
		read_result(t, rc, &err);
		break;
	}
	case LIST_HOLDS:
		rc = list_holds((const void *)msg, &err);
		read_result(t, rc, &err);
		break;
	case SERVER_INFO:
		FUZZ_CHECK(fuzz_commit_index(store) == l.commit_index,
		           "commit index moved on a read");
		break;
	case HEALTH_CHECK: {
		/* The handlers only compare the service name (bd_health.c). */
		const Grpc__Health__V1__HealthCheckRequest *r = (const void *)msg;
		FUZZ_CHECK(r->service != NULL, "health check without a service string");
		break;
	}
	case MUTATION:
		break;
	}
	FUZZ_CHECK(fuzz_commit_index(store) == l.commit_index, "a read moved the commit index");
}

/* ---- the input ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[WHY_MAX];
	bd_arena arena;

	if (size == 0)
		return 0;
	if (fresh_each_input || last_commit_index >= RESET_EVENTS) {
		bs_store_close(store);
		store_open();
		if (stats_on)
			stats.resets++;
	}
	const req_type *t = &types[data[0] % N_TYPES];
	grpc_byte_buffer *bb = make_buffer(data + 1, size - 1, data[0] / N_TYPES % 3 + 1);

	bd_arena_init(&arena);
	why[0] = '\0';
	ProtobufCMessage *msg = bd_unpack(t->d, bb, &arena, why, sizeof(why));
	grpc_byte_buffer_destroy(bb);
	if (!msg) {
		FUZZ_CHECK(why[0] != '\0' && memchr(why, '\0', sizeof(why)),
		           "bd_unpack failed without a reason");
		if (stats_on)
			stats.rejected[t - types]++;
	} else {
		FUZZ_CHECK(msg->descriptor == t->d, "bd_unpack returned a %s for a %s",
		           msg->descriptor->name, t->d->name);
		FUZZ_CHECK(!string_with_nul(t->d, data + 1, size - 1, 0),
		           "bd_unpack accepted a %s whose string field holds a NUL byte",
		           t->d->name);
		if (stats_on) {
			stats.decoded[t - types]++;
			if (arena.total > stats.max_arena) {
				stats.max_arena = arena.total;
				stats.max_arena_input = size;
			}
		}
		const Budgetd__V1__Authority *a = NULL;
		bs_mutation m;
		int trc = bd_translate_mutation(msg, NULL, &m, &a);
		FUZZ_CHECK((trc == 0) == (t->cls == MUTATION) && (trc == 0 || trc == -EINVAL),
		           "bd_translate_mutation returned %d for a %s", trc, t->d->name);
		if (t->cls == MUTATION)
			run_mutation(t, msg, data[0] / N_TYPES / 3 % 2, data[0] / N_TYPES / 6 % 2);
		else
			run_read(t, msg);
	}
	bd_arena_reset(&arena);
	uint64_t ci = fuzz_commit_index(store);
	FUZZ_CHECK(ci >= last_commit_index,
	           "the commit index went back from %" PRIu64 " to %" PRIu64, last_commit_index,
	           ci);
	last_commit_index = ci;
	return 0;
}
