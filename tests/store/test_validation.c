/* test_validation.c - requests rejected from their contents alone (BS_EINVAL).
 *
 * Every rejection must leave the store exactly as it was; apply_err checks
 * that on every call.
 */
#include "helpers.h"

#include <stdio.h>
#include <string.h>

TestSuite(validation, .init = th_setup_memory, .fini = th_teardown_memory);

static char long_id[BS_ID_LEN_MAX + 2]; /* 257 x 'a' */
static char max_id[BS_ID_LEN_MAX + 1];  /* 256 x 'b' */

static bs_str long_str(void)
{
	memset(long_id, 'a', BS_ID_LEN_MAX + 1);
	long_id[BS_ID_LEN_MAX + 1] = '\0';
	return (bs_str){long_id, BS_ID_LEN_MAX + 1};
}

static bs_str max_str(void)
{
	memset(max_id, 'b', BS_ID_LEN_MAX);
	max_id[BS_ID_LEN_MAX] = '\0';
	return (bs_str){max_id, BS_ID_LEN_MAX};
}

static bs_str bytes(const char *p, size_t n)
{
	return (bs_str){p, n};
}

static void expect_invalid(const bs_mutation *m, const char *message)
{
	apply_err(store, m, BS_EINVAL, message);
}

/* Which id field of a mutation a shape test sets. */
enum id_field { F_CAPABILITY, F_HOLD, F_EVENT, F_AUTHORITY_ID, F_LEASE_ID };

static bs_mutation with_field(enum id_field f, bs_str v)
{
	bs_mutation m = th_authorize("cap", 0, 1, NULL);

	switch (f) {
	case F_CAPABILITY:
		m.capability_id = v;
		break;
	case F_HOLD:
		m.hold_id = v;
		break;
	case F_EVENT:
		m.event_id = v;
		break;
	case F_AUTHORITY_ID:
		th_set_authority(&m, "auth", "lease", 1);
		m.authority.authority_id = v;
		break;
	case F_LEASE_ID:
		th_set_authority(&m, "auth", "lease", 1);
		m.authority.lease_id = v;
		break;
	}
	return m;
}

static const char *field_name(enum id_field f)
{
	switch (f) {
	case F_CAPABILITY:
		return "capability_id";
	case F_HOLD:
		return "hold_id";
	case F_EVENT:
		return "event_id";
	case F_AUTHORITY_ID:
		return "authority.authority_id";
	case F_LEASE_ID:
		return "authority.lease_id";
	}
	return "?";
}

static void expect_field_invalid(enum id_field f, bs_str v, const char *suffix)
{
	bs_mutation m = with_field(f, v);
	char msg[128];

	snprintf(msg, sizeof(msg), "%s %s", field_name(f), suffix);
	expect_invalid(&m, msg);
}

static void expect_field_valid(enum id_field f, bs_str v)
{
	bs_mutation m = with_field(f, v);

	apply_ok(store, &m);
}

/* The four shape checks, in order, for one field. */
static void check_all_shapes(enum id_field f)
{
	expect_field_invalid(f, bytes("", 0), "must not be empty");
	expect_field_invalid(f, long_str(), "is longer than 256 bytes");
	expect_field_invalid(f, bytes("\xff", 1), "is not valid UTF-8");
	expect_field_invalid(f, bytes("a\nb", 3), "contains a control character");
}

/* --- capability_id ------------------------------------------------------- */

Test(validation, absent_capability_id_is_required)
{
	bs_mutation m = th_authorize(NULL, 0, 1, NULL);

	expect_invalid(&m, "capability_id is required");
}

Test(validation, empty_capability_id_is_rejected)
{
	expect_field_invalid(F_CAPABILITY, bytes("", 0), "must not be empty");
}

Test(validation, capability_id_of_257_bytes_is_too_long)
{
	expect_field_invalid(F_CAPABILITY, long_str(), "is longer than 256 bytes");
}

Test(validation, capability_id_of_256_bytes_is_accepted)
{
	expect_field_valid(F_CAPABILITY, max_str());
	expect_usage(store, max_id, 0, 1, 1, 0);
}

Test(validation, id_length_counts_bytes_not_characters)
{
	char ok[BS_ID_LEN_MAX + 1], bad[BS_ID_LEN_MAX + 2];

	/* 128 x U+00E9 (2 bytes each) = 256 bytes: accepted. */
	for (int i = 0; i < 128; i++)
		memcpy(ok + 2 * i, "\xc3\xa9", 2);
	ok[256] = '\0';
	expect_field_valid(F_CAPABILITY, bytes(ok, 256));
	/* 85 x U+20AC (3 bytes each) + "ab" = 257 bytes, 87 characters. */
	for (int i = 0; i < 85; i++)
		memcpy(bad + 3 * i, "\xe2\x82\xac", 3);
	memcpy(bad + 255, "ab", 2);
	bad[257] = '\0';
	expect_field_invalid(F_CAPABILITY, bytes(bad, 257), "is longer than 256 bytes");
}

Test(validation, capability_id_with_invalid_utf8_is_rejected)
{
	static const struct {
		const char *p;
		size_t n;
	} cases[] = {
	        {"\xff", 1},             /* never valid */
	        {"ab\xc3", 3},           /* truncated sequence */
	        {"\xc3(", 2},            /* bad continuation byte */
	        {"\x80", 1},             /* lone continuation byte */
	        {"\xc0\xaf", 2},         /* overlong '/' */
	        {"\xe0\x80\xaf", 3},     /* overlong '/', 3 bytes */
	        {"\xed\xa0\x80", 3},     /* UTF-16 surrogate U+D800 */
	        {"\xf4\x90\x80\x80", 4}, /* beyond U+10FFFF */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_field_invalid(F_CAPABILITY, bytes(cases[i].p, cases[i].n),
		                     "is not valid UTF-8");
}

Test(validation, capability_id_with_control_character_is_rejected)
{
	static const struct {
		const char *p;
		size_t n;
	} cases[] = {
	        {"a\0b", 3},      /* U+0000 inside the length */
	        {"\x01", 1},      /* U+0001 */
	        {"a\tb", 3},      /* U+0009 */
	        {"a\x1f", 2},     /* U+001F */
	        {"a\x7f", 2},     /* U+007F DEL */
	        {"\xc2\x80", 2},  /* U+0080 */
	        {"a\xc2\x85", 3}, /* U+0085 NEL */
	        {"\xc2\x9f", 2},  /* U+009F */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		expect_field_invalid(F_CAPABILITY, bytes(cases[i].p, cases[i].n),
		                     "contains a control character");
}

Test(validation, printable_unicode_ids_are_accepted)
{
	expect_field_valid(F_CAPABILITY,
	                   bs_str_from("caf\xc3\xa9 \xc2\xa0 \xe2\x82\xac \xf0\x9f\x98\x80"));
	expect_field_valid(F_CAPABILITY, bs_str_from(" ~!`\"'{}"));
}

Test(validation, length_is_checked_before_utf8_and_utf8_before_control)
{
	char buf[BS_ID_LEN_MAX + 2];

	memset(buf, 'x', sizeof(buf));
	buf[0] = (char)0xff;
	expect_field_invalid(F_CAPABILITY, bytes(buf, BS_ID_LEN_MAX + 1),
	                     "is longer than 256 bytes");
	expect_field_invalid(F_CAPABILITY, bytes("\x01\xff", 2), "is not valid UTF-8");
}

/* --- the same shape checks on every other id ----------------------------- */

Test(validation, hold_id_shape_is_checked)
{
	check_all_shapes(F_HOLD);
}

Test(validation, event_id_shape_is_checked)
{
	check_all_shapes(F_EVENT);
}

Test(validation, authority_id_shape_is_checked)
{
	check_all_shapes(F_AUTHORITY_ID);
}

Test(validation, lease_id_shape_is_checked)
{
	check_all_shapes(F_LEASE_ID);
}

Test(validation, present_but_empty_hold_id_is_invalid_not_absent)
{
	bs_mutation m = th_release("cap", 0, 0, "");

	expect_invalid(&m, "hold_id must not be empty");
}

Test(validation, present_but_empty_event_id_is_invalid_not_absent)
{
	bs_mutation m = th_increment("cap", 0);

	th_set_event(&m, "");
	expect_invalid(&m, "event_id must not be empty");
}

Test(validation, ids_of_256_bytes_are_accepted_everywhere)
{
	bs_mutation m = th_authorize("cap", 0, 1, NULL);
	bs_str id = max_str();
	bs_outcome out;

	m.hold_id = id;
	m.event_id = id;
	th_set_authority(&m, "x", "y", 3);
	m.authority.authority_id = id;
	m.authority.lease_id = id;
	out = apply_ok(store, &m);
	cr_assert_str_eq(out.event_id, max_id);
	cr_assert_eq(strlen(out.budget_term), BS_ID_LEN_MAX + 2);
	cr_assert_eq(strncmp(out.budget_term, max_id, BS_ID_LEN_MAX), 0);
	cr_assert_str_eq(out.budget_term + BS_ID_LEN_MAX, ":3");
}

/* --- grant_index --------------------------------------------------------- */

Test(validation, grant_index_above_u32_is_rejected)
{
	bs_mutation m = th_authorize("cap", 4294967296ULL, 1, NULL);

	expect_invalid(&m, "grant_index 4294967296 is larger than 4294967295");
	m.grant_index = U64MAX;
	expect_invalid(&m, "grant_index 18446744073709551615 is larger than 4294967295");
}

Test(validation, grant_index_u32_max_is_accepted)
{
	bs_mutation m = th_authorize("cap", U32MAX, 1, NULL);

	apply_ok(store, &m);
	expect_usage(store, "cap", U32MAX, 1, 1, 0);
}

Test(validation, capability_is_checked_before_grant_index)
{
	bs_mutation m = th_authorize("", 4294967296ULL, 1, NULL);

	expect_invalid(&m, "capability_id must not be empty");
}

/* --- fields that do not belong to the kind ------------------------------- */

static const bs_kind all_kinds[] = {
        BS_KIND_INCREMENT_INVOCATION, BS_KIND_AUTHORIZE_EXPOSURE, BS_KIND_REVERSE_EXPOSURE,
        BS_KIND_RELEASE_EXPOSURE,     BS_KIND_RECONCILE_SPEND,
};

static bs_mutation plain(bs_kind kind)
{
	bs_mutation m;

	memset(&m, 0, sizeof(m));
	m.kind = kind;
	m.capability_id = bs_str_from("cap");
	return m;
}

static void expect_kind_field_invalid(const bs_mutation *m, const char *field)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "%s does not apply to %s", field, bs_kind_name(m->kind));
	expect_invalid(m, msg);
}

Test(validation, hold_id_does_not_apply_to_increment)
{
	bs_mutation m = plain(BS_KIND_INCREMENT_INVOCATION);

	m.hold_id = bs_str_from("h1");
	expect_invalid(&m, "hold_id does not apply to increment_invocation");
}

Test(validation, authority_does_not_apply_to_increment)
{
	bs_mutation m = plain(BS_KIND_INCREMENT_INVOCATION);

	th_set_authority(&m, "auth", "lease", 1);
	expect_invalid(&m, "authority does not apply to increment_invocation");
}

Test(validation, max_cost_per_invocation_only_applies_to_authorize)
{
	for (size_t i = 0; i < sizeof(all_kinds) / sizeof(all_kinds[0]); i++) {
		bs_mutation m = plain(all_kinds[i]);

		if (all_kinds[i] == BS_KIND_AUTHORIZE_EXPOSURE)
			continue;
		th_set_max_cost(&m, 5);
		expect_kind_field_invalid(&m, "max_cost_per_invocation");
	}
}

Test(validation, max_total_cost_units_only_applies_to_authorize)
{
	for (size_t i = 0; i < sizeof(all_kinds) / sizeof(all_kinds[0]); i++) {
		bs_mutation m = plain(all_kinds[i]);

		if (all_kinds[i] == BS_KIND_AUTHORIZE_EXPOSURE)
			continue;
		th_set_max_total(&m, 5);
		expect_kind_field_invalid(&m, "max_total_cost_units");
	}
}

Test(validation, max_invocations_only_applies_to_authorize_and_increment)
{
	for (size_t i = 0; i < sizeof(all_kinds) / sizeof(all_kinds[0]); i++) {
		bs_mutation m = plain(all_kinds[i]);

		if (all_kinds[i] == BS_KIND_AUTHORIZE_EXPOSURE ||
		    all_kinds[i] == BS_KIND_INCREMENT_INVOCATION)
			continue;
		th_set_max_invocations(&m, 5);
		expect_kind_field_invalid(&m, "max_invocations");
	}
}

Test(validation, realized_units_only_apply_to_reconcile)
{
	for (size_t i = 0; i < sizeof(all_kinds) / sizeof(all_kinds[0]); i++) {
		bs_mutation m = plain(all_kinds[i]);

		if (all_kinds[i] == BS_KIND_RECONCILE_SPEND)
			continue;
		if (all_kinds[i] != BS_KIND_INCREMENT_INVOCATION)
			m.exposure_units = 10;
		m.realized_units = 3;
		expect_kind_field_invalid(&m, "realized_units");
	}
}

Test(validation, exposure_units_do_not_apply_to_increment)
{
	bs_mutation m = plain(BS_KIND_INCREMENT_INVOCATION);

	m.exposure_units = 1;
	expect_invalid(&m, "exposure_units does not apply to increment_invocation");
}

Test(validation, limits_that_apply_are_accepted)
{
	bs_mutation a = th_authorize("cap", 0, 1, NULL);
	bs_mutation i = th_increment("cap", 1);

	th_set_max_invocations(&a, 5);
	th_set_max_cost(&a, 5);
	th_set_max_total(&a, 5);
	th_set_max_invocations(&i, 5);
	apply_ok(store, &a);
	apply_ok(store, &i);
}

Test(validation, kind_field_checks_run_in_the_documented_order)
{
	bs_mutation m;

	m = plain(BS_KIND_INCREMENT_INVOCATION);
	m.hold_id = bs_str_from("h");
	th_set_authority(&m, "a", "l", 1);
	expect_invalid(&m, "hold_id does not apply to increment_invocation");

	m = plain(BS_KIND_INCREMENT_INVOCATION);
	th_set_authority(&m, "a", "l", 1);
	th_set_max_cost(&m, 1);
	expect_invalid(&m, "authority does not apply to increment_invocation");

	m = plain(BS_KIND_RELEASE_EXPOSURE);
	th_set_max_cost(&m, 1);
	th_set_max_total(&m, 1);
	expect_invalid(&m, "max_cost_per_invocation does not apply to release_exposure");

	m = plain(BS_KIND_RELEASE_EXPOSURE);
	th_set_max_total(&m, 1);
	th_set_max_invocations(&m, 1);
	expect_invalid(&m, "max_total_cost_units does not apply to release_exposure");

	m = plain(BS_KIND_REVERSE_EXPOSURE);
	th_set_max_invocations(&m, 1);
	m.realized_units = 1;
	m.exposure_units = 1;
	expect_invalid(&m, "max_invocations does not apply to reverse_exposure");

	m = plain(BS_KIND_INCREMENT_INVOCATION);
	m.realized_units = 1;
	m.exposure_units = 1;
	expect_invalid(&m, "realized_units does not apply to increment_invocation");
}

Test(validation, grant_index_is_checked_before_kind_fields)
{
	bs_mutation m = plain(BS_KIND_INCREMENT_INVOCATION);

	m.grant_index = 4294967296ULL;
	m.exposure_units = 1;
	expect_invalid(&m, "grant_index 4294967296 is larger than 4294967295");
}

Test(validation, kind_fields_are_checked_before_id_shapes)
{
	bs_mutation m = plain(BS_KIND_RELEASE_EXPOSURE);

	th_set_max_cost(&m, 1);
	m.hold_id = bs_str_from("");
	m.event_id = bs_str_from("");
	expect_invalid(&m, "max_cost_per_invocation does not apply to release_exposure");
}

/* --- event_id, hold_id --------------------------------------------------- */

Test(validation, event_id_with_reserved_prefix_is_rejected)
{
	const char *ids[] = {"budgetd-auto-1", "budgetd-auto-", "budgetd-auto-client"};

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		bs_mutation m = th_increment("cap", 0);

		th_set_event(&m, ids[i]);
		expect_invalid(&m,
		               "event_id must not start with the reserved prefix `budgetd-auto-`");
	}
}

Test(validation, event_id_merely_resembling_the_prefix_is_accepted)
{
	const char *ids[] = {"budgetd-auto", "x-budgetd-auto-1", "budgetd_auto-1"};

	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		bs_mutation m = th_increment("cap", 0);
		bs_outcome out;

		th_set_event(&m, ids[i]);
		out = apply_ok(store, &m);
		cr_assert_str_eq(out.event_id, ids[i]);
	}
}

Test(validation, hold_id_is_checked_before_event_id)
{
	bs_mutation m = th_authorize("cap", 0, 1, "");

	th_set_event(&m, "");
	expect_invalid(&m, "hold_id must not be empty");
	m.hold_id = bs_str_from("h");
	th_set_event(&m, "budgetd-auto-7");
	m.hold_id = bytes("\xff", 1);
	expect_invalid(&m, "hold_id is not valid UTF-8");
}

Test(validation, event_id_shape_is_checked_before_the_prefix)
{
	char buf[BS_ID_LEN_MAX + 2];
	bs_mutation m = th_increment("cap", 0);

	memset(buf, 'z', sizeof(buf));
	memcpy(buf, "budgetd-auto-", 13);
	m.event_id = bytes(buf, BS_ID_LEN_MAX + 1);
	expect_invalid(&m, "event_id is longer than 256 bytes");
}

Test(validation, event_id_is_checked_before_authority)
{
	bs_mutation m = th_authorize("cap", 0, 1, NULL);

	th_set_event(&m, "budgetd-auto-1");
	th_set_authority(&m, NULL, NULL, 1);
	expect_invalid(&m, "event_id must not start with the reserved prefix `budgetd-auto-`");
}

/* --- authority ----------------------------------------------------------- */

Test(validation, authority_without_authority_id_is_rejected)
{
	bs_mutation m = th_authorize("cap", 0, 1, "h");

	th_set_authority(&m, NULL, "lease", 1);
	expect_invalid(&m, "authority.authority_id is required");
	th_set_authority(&m, NULL, NULL, 1);
	expect_invalid(&m, "authority.authority_id is required");
}

Test(validation, authority_without_lease_id_is_rejected)
{
	bs_mutation m = th_authorize("cap", 0, 1, "h");

	th_set_authority(&m, "auth", NULL, 1);
	expect_invalid(&m, "authority.lease_id is required");
}

Test(validation, authority_presence_is_checked_before_shape)
{
	bs_mutation m = th_authorize("cap", 0, 1, "h");

	th_set_authority(&m, "", NULL, 1);
	expect_invalid(&m, "authority.lease_id is required");
	th_set_authority(&m, "", "", 1);
	expect_invalid(&m, "authority.authority_id must not be empty");
	th_set_authority(&m, "auth", "", 1);
	expect_invalid(&m, "authority.lease_id must not be empty");
}

Test(validation, authority_with_any_epoch_is_accepted)
{
	bs_mutation m = th_authorize("cap", 0, 1, "h0");
	bs_outcome out;

	th_set_authority(&m, "auth", "lease", 0);
	out = apply_ok(store, &m);
	cr_assert_str_eq(out.budget_term, "auth:0");
	m.hold_id = bs_str_from("h1");
	th_set_authority(&m, "auth", "lease", U64MAX);
	out = apply_ok(store, &m);
	cr_assert_str_eq(out.budget_term, "auth:18446744073709551615");
}

/* --- reconcile ----------------------------------------------------------- */

Test(validation, reconcile_realizing_more_than_exposed_is_invalid)
{
	bs_mutation m = th_reconcile("cap", 0, 5, 6, "missing");

	/* Invalid argument even though the hold does not exist: it is checked first. */
	expect_invalid(&m, "cannot realize spend larger than exposed cost");
	m.hold_id = bs_str_from(NULL);
	expect_invalid(&m, "cannot realize spend larger than exposed cost");
}

Test(validation, authority_is_checked_before_realized_units)
{
	bs_mutation m = th_reconcile("cap", 0, 5, 6, "h");

	th_set_authority(&m, "auth", NULL, 1);
	expect_invalid(&m, "authority.lease_id is required");
}

/* --- reads --------------------------------------------------------------- */

static int never_called_usage(void *ctx, const bs_usage *u)
{
	(void)ctx;
	(void)u;
	cr_assert_fail("a visitor ran for an invalid read");
	return 1;
}

static int never_called_hold(void *ctx, const bs_hold *h)
{
	(void)ctx;
	(void)h;
	cr_assert_fail("a visitor ran for an invalid read");
	return 1;
}

static int never_called_event(void *ctx, const bs_event *e)
{
	(void)ctx;
	(void)e;
	cr_assert_fail("a visitor ran for an invalid read");
	return 1;
}

static void expect_read_error(int rc, const bs_error *err, const char *message)
{
	cr_assert_eq(rc, BS_EINVAL, "expected invalid_argument \"%s\", got %d \"%s\"", message, rc,
	             err->message);
	cr_assert_eq(err->code, BS_EINVAL);
	if (message)
		cr_assert_str_eq(err->message, message);
}

static void expect_get_usage_invalid(bs_str cap, const char *message)
{
	bs_error err;
	bool found = true;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = bs_store_get_usage(store, cap, 0, never_called_usage, NULL, &found, &err);
	expect_read_error(rc, &err, message);
}

static void expect_get_hold_invalid(bs_str hold, const char *message)
{
	bs_error err;
	bool found = true;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = bs_store_get_hold(store, hold, never_called_hold, NULL, &found, &err);
	expect_read_error(rc, &err, message);
}

Test(validation, get_usage_validates_capability_id)
{
	expect_get_usage_invalid(bytes(NULL, 0), "capability_id is required");
	expect_get_usage_invalid(bytes("", 0), "capability_id must not be empty");
	expect_get_usage_invalid(long_str(), "capability_id is longer than 256 bytes");
	expect_get_usage_invalid(bytes("\xff", 1), "capability_id is not valid UTF-8");
	expect_get_usage_invalid(bytes("a\x7f", 2), "capability_id contains a control character");
}

Test(validation, get_usage_rejects_grant_index_above_u32)
{
	bs_error err;
	bool found = true;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = bs_store_get_usage(store, bs_str_from("cap"), 4294967296ULL, never_called_usage, NULL,
	                        &found, &err);
	expect_read_error(rc, &err, NULL);
	cr_assert_not_null(strstr(err.message, "grant_index"), "message: %s", err.message);
}

Test(validation, get_hold_validates_hold_id)
{
	expect_get_hold_invalid(bytes(NULL, 0), "hold_id is required");
	expect_get_hold_invalid(bytes("", 0), "hold_id must not be empty");
	expect_get_hold_invalid(long_str(), "hold_id is longer than 256 bytes");
	expect_get_hold_invalid(bytes("\xc3", 1), "hold_id is not valid UTF-8");
	expect_get_hold_invalid(bytes("h\n", 2), "hold_id contains a control character");
}

Test(validation, list_usages_validates_capability_and_limit)
{
	bs_error err;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = bs_store_list_usages(store, 10, bytes("", 0), never_called_usage, NULL, &err);
	expect_read_error(rc, &err, "capability_id must not be empty");
	rc = bs_store_list_usages(store, 10, bytes("\xff", 1), never_called_usage, NULL, &err);
	expect_read_error(rc, &err, "capability_id is not valid UTF-8");
	rc = bs_store_list_usages(store, 1001, bytes(NULL, 0), never_called_usage, NULL, &err);
	expect_read_error(rc, &err, "limit 1001 is larger than 1000");
	rc = bs_store_list_usages(store, UINT32_MAX, bytes(NULL, 0), never_called_usage, NULL,
	                          &err);
	expect_read_error(rc, &err, "limit 4294967295 is larger than 1000");
}

Test(validation, list_events_validates_capability_grant_and_limit)
{
	bs_mutation m = th_increment("cap", 0);
	bs_error err;
	int rc;

	apply_ok(store, &m);
	memset(&err, 0, sizeof(err));
	rc = bs_store_list_events(store, 10, bytes("", 0), false, 0, 0, never_called_event, NULL,
	                          &err);
	expect_read_error(rc, &err, "capability_id must not be empty");
	rc = bs_store_list_events(store, 10, long_str(), false, 0, 0, never_called_event, NULL,
	                          &err);
	expect_read_error(rc, &err, "capability_id is longer than 256 bytes");
	rc = bs_store_list_events(store, 1001, bytes(NULL, 0), false, 0, 0, never_called_event,
	                          NULL, &err);
	expect_read_error(rc, &err, "limit 1001 is larger than 1000");
	rc = bs_store_list_events(store, 10, bytes(NULL, 0), true, 4294967296ULL, 0,
	                          never_called_event, NULL, &err);
	expect_read_error(rc, &err, NULL);
	cr_assert_not_null(strstr(err.message, "grant_index"), "message: %s", err.message);
}

/* --- batch size ---------------------------------------------------------- */

Test(validation, batch_of_zero_mutations_is_invalid)
{
	bs_batch_item item;

	memset(&item, 0, sizeof(item));
	cr_assert_eq(bs_store_apply_batch(store, &item, 0), BS_EINVAL);
	cr_assert_eq(th_commit_index(store), 0);
}

Test(validation, batch_above_the_maximum_is_invalid)
{
	static bs_batch_item items[BS_BATCH_MUTATIONS_MAX + 1];
	bs_mutation m = th_increment("cap", 0);

	for (size_t i = 0; i < BS_BATCH_MUTATIONS_MAX + 1; i++)
		items[i].mutation = &m;
	cr_assert_eq(bs_store_apply_batch(store, items, BS_BATCH_MUTATIONS_MAX + 1), BS_EINVAL);
	cr_assert_eq(th_commit_index(store), 0);
	expect_no_usage(store, "cap", 0);
}

Test(validation, batch_of_the_maximum_size_is_accepted)
{
	static bs_batch_item items[BS_BATCH_MUTATIONS_MAX];
	bs_mutation m = th_increment("cap", 0);

	for (size_t i = 0; i < BS_BATCH_MUTATIONS_MAX; i++)
		items[i].mutation = &m;
	cr_assert_eq(bs_store_apply_batch(store, items, BS_BATCH_MUTATIONS_MAX), BS_OK);
	for (size_t i = 0; i < BS_BATCH_MUTATIONS_MAX; i++)
		cr_assert_eq(items[i].result, BS_OK, "item %zu: %s", i, items[i].error.message);
	expect_usage(store, "cap", 0, BS_BATCH_MUTATIONS_MAX, 0, 0);
	cr_assert_eq(th_commit_index(store), BS_BATCH_MUTATIONS_MAX);
}
