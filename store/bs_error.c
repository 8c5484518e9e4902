/* bs_error.c - error values and the names of the store's enums. */
#include <stdarg.h>
#include <stdio.h>

#include "bs_internal.h"

int bs_errorf(bs_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		/* Truncation is acceptable: messages are bounded by the id limits. */
		(void)vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
		err->code = code;
	}
	return code;
}

const char *bs_err_name(int code)
{
	switch (code) {
	case BS_OK:
		return "ok";
	case BS_EINVAL:
		return "invalid_argument";
	case BS_EPRECONDITION:
		return "failed_precondition";
	case BS_ECONFLICT:
		return "conflict";
	case BS_EOVERFLOW:
		return "overflow";
	case BS_ESTORAGE:
		return "storage_failure";
	case BS_EINTERNAL:
		return "internal";
	}
	return "unknown";
}

const char *bs_kind_name(bs_kind kind)
{
	switch (kind) {
	case BS_KIND_INCREMENT_INVOCATION:
		return "increment_invocation";
	case BS_KIND_AUTHORIZE_EXPOSURE:
		return "authorize_exposure";
	case BS_KIND_REVERSE_EXPOSURE:
		return "reverse_exposure";
	case BS_KIND_RELEASE_EXPOSURE:
		return "release_exposure";
	case BS_KIND_RECONCILE_SPEND:
		return "reconcile_spend";
	case BS_KIND_EXPIRE_EXPOSURE:
		return "expire_exposure";
	case BS_KIND_EXTEND_HOLD:
		return "extend_hold";
	}
	return "unknown";
}

const char *bs_disposition_name(bs_disposition d)
{
	switch (d) {
	case BS_HOLD_OPEN:
		return "open";
	case BS_HOLD_RELEASED:
		return "released";
	case BS_HOLD_REVERSED:
		return "reversed";
	case BS_HOLD_RECONCILED:
		return "reconciled";
	case BS_HOLD_EXPIRED:
		return "expired";
	}
	return "unknown";
}

const char *bs_expiry_name(bs_expiry e)
{
	switch (e) {
	case BS_EXPIRY_NONE:
		return "";
	case BS_EXPIRY_CAPTURE:
		return "capture";
	case BS_EXPIRY_RELEASE:
		return "release";
	case BS_EXPIRY_REVERSE:
		return "reverse";
	}
	return "unknown";
}

const char *bs_denial_name(bs_denial d)
{
	switch (d) {
	case BS_DENIAL_NONE:
		return "none";
	case BS_DENIAL_MAX_INVOCATIONS:
		return "max_invocations";
	case BS_DENIAL_MAX_COST_PER_INVOCATION:
		return "max_cost_per_invocation";
	case BS_DENIAL_MAX_TOTAL_COST:
		return "max_total_cost";
	}
	return "unknown";
}

const char *bs_guarantee_name(bs_guarantee g)
{
	switch (g) {
	case BS_GUARANTEE_SINGLE_NODE_ATOMIC:
		return "single_node_atomic";
	}
	return "unknown";
}
