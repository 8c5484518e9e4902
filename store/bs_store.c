/* bs_store.c - the public store API: validation, then the backend.
 *
 * Everything backend-neutral lives here, so a replicated backend only has
 * to implement bs_backend_ops.
 */
#include <stdlib.h>
#include <string.h>

#include "bs_internal.h"

struct bs_store {
	const bs_backend_ops *ops;
	void *impl;
};

int bs_store_open(const char *path, const bs_options *opts, bs_store **out, bs_error *err)
{
	static const bs_options defaults = {0};
	bs_store *s;
	int rc;

	*out = NULL;
	if (!path || !*path)
		return bs_errorf(err, BS_EINVAL, "database path is required");
	s = calloc(1, sizeof(*s));
	if (!s)
		return bs_errorf(err, BS_EINTERNAL, "out of memory");
	rc = bs_engine_open(path, opts ? opts : &defaults, &s->ops, &s->impl, err);
	if (rc) {
		free(s);
		return rc;
	}
	*out = s;
	return BS_OK;
}

void bs_store_close(bs_store *store)
{
	if (!store)
		return;
	store->ops->close(store->impl);
	free(store);
}

int bs_store_apply_batch(bs_store *store, bs_batch_item *items, size_t n)
{
	uint32_t expired;

	return bs_store_apply_batch_expire(store, items, n, 0, &expired);
}

int bs_store_apply_batch_expire(bs_store *store, bs_batch_item *items, size_t n,
                                uint32_t expire_max, uint32_t *expired)
{
	*expired = 0;
	if (n == 0 || n > BS_BATCH_MUTATIONS_MAX || expire_max > BS_BATCH_MUTATIONS_MAX)
		return BS_EINVAL;
	for (size_t i = 0; i < n; i++) {
		memset(&items[i].outcome, 0, sizeof(items[i].outcome));
		items[i].error.code = BS_OK;
		items[i].error.message[0] = '\0';
		items[i].result = bs_validate_mutation(items[i].mutation, &items[i].error);
	}
	return store->ops->apply_batch(store->impl, items, n, expire_max, expired);
}

int bs_store_apply(bs_store *store, const bs_mutation *m, bs_outcome *out, bs_error *err)
{
	bs_batch_item item = {.mutation = m};
	int rc = bs_store_apply_batch(store, &item, 1);

	if (rc == BS_OK)
		rc = item.result;
	if (rc == BS_OK)
		*out = item.outcome;
	else if (err)
		*err = item.error;
	return rc;
}

int bs_store_get_usage(bs_store *store, bs_str capability_id, uint64_t grant_index, bs_usage_cb cb,
                       void *ctx, bool *found, bs_error *err)
{
	int rc;

	*found = false;
	if ((rc = bs_validate_id("capability_id", capability_id, true, err)))
		return rc;
	if ((rc = bs_validate_grant(grant_index, err)))
		return rc;
	return store->ops->get_usage(store->impl, capability_id, (uint32_t)grant_index, cb, ctx,
	                             found, err);
}

int bs_store_list_usages(bs_store *store, uint32_t limit, bs_str capability_id, bs_usage_cb cb,
                         void *ctx, bs_error *err)
{
	uint32_t effective;
	int rc;

	if ((rc = bs_validate_limit(limit, &effective, err)))
		return rc;
	if ((rc = bs_validate_id("capability_id", capability_id, false, err)))
		return rc;
	return store->ops->list_usages(store->impl, effective, capability_id, cb, ctx, err);
}

int bs_store_list_events(bs_store *store, uint32_t limit, bs_str capability_id,
                         bool has_grant_index, uint64_t grant_index, uint64_t after_seq,
                         bs_event_cb cb, void *ctx, bs_error *err)
{
	uint32_t effective;
	int rc;

	if ((rc = bs_validate_limit(limit, &effective, err)))
		return rc;
	if ((rc = bs_validate_id("capability_id", capability_id, false, err)))
		return rc;
	if (has_grant_index && (rc = bs_validate_grant(grant_index, err)))
		return rc;
	return store->ops->list_events(store->impl, effective, capability_id, has_grant_index,
	                               (uint32_t)grant_index, after_seq, cb, ctx, err);
}

int bs_store_get_hold(bs_store *store, bs_str hold_id, bs_hold_cb cb, void *ctx, bool *found,
                      bs_error *err)
{
	int rc;

	*found = false;
	if ((rc = bs_validate_id("hold_id", hold_id, true, err)))
		return rc;
	return store->ops->get_hold(store->impl, hold_id, cb, ctx, found, err);
}

int bs_store_list_holds(bs_store *store, const bs_hold_query *q, bs_hold_cb cb, void *ctx,
                        bs_error *err)
{
	bs_hold_query v = *q;
	int rc;

	if ((rc = bs_validate_limit(q->limit, &v.limit, err)) ||
	    (rc = bs_validate_id("capability_id", q->capability_id, false, err)) ||
	    (q->has_after &&
	     (rc = bs_validate_id("page cursor hold_id", q->after_hold_id, true, err))))
		return rc;
	if (q->has_disposition &&
	    (q->disposition < BS_HOLD_OPEN || q->disposition > BS_HOLD_EXPIRED))
		return bs_errorf(err, BS_EINVAL, "disposition %d is not a hold disposition",
		                 (int)q->disposition);
	return store->ops->list_holds(store->impl, &v, cb, ctx, err);
}

int bs_store_expire_due(bs_store *store, uint32_t max, uint32_t *expired, bs_error *err)
{
	*expired = 0;
	if (max == 0 || max > BS_BATCH_MUTATIONS_MAX)
		return bs_errorf(err, BS_EINVAL, "expire_due takes 1 to %d holds, not %u",
		                 BS_BATCH_MUTATIONS_MAX, max);
	return store->ops->expire_due(store->impl, max, expired, err);
}

int bs_store_next_deadline(bs_store *store, int64_t *out_ns, bs_error *err)
{
	*out_ns = 0;
	return store->ops->next_deadline(store->impl, out_ns, err);
}

int64_t bs_store_now(const bs_store *store)
{
	return store->ops->now(store->impl);
}

int bs_store_commit_index(bs_store *store, uint64_t *out, bs_error *err)
{
	return store->ops->commit_index(store->impl, out, err);
}

int bs_store_stats(bs_store *store, bs_stats *out, bs_error *err)
{
	memset(out, 0, sizeof(*out));
	return store->ops->stats(store->impl, out, err);
}

int bs_store_checkpoint(bs_store *store, bs_error *err)
{
	return store->ops->checkpoint(store->impl, err);
}

bs_guarantee bs_store_guarantee(const bs_store *store)
{
	return store->ops->guarantee;
}
