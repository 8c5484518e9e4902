/* bd_status.c - see bd_status.h. */
#include "bd_status.h"
#include "bs_store.h"

grpc_status_code bd_status_from_store(int store_error)
{
	switch (store_error) {
	case BS_OK:
		return GRPC_STATUS_OK;
	case BS_EINVAL:
		return GRPC_STATUS_INVALID_ARGUMENT;
	case BS_EPRECONDITION:
		return GRPC_STATUS_FAILED_PRECONDITION;
	case BS_ECONFLICT:
		return GRPC_STATUS_ALREADY_EXISTS;
	case BS_EOVERFLOW:
		return GRPC_STATUS_OUT_OF_RANGE;
	case BS_ESTORAGE:
		/* Nothing was applied: the caller may retry with the same event_id. */
		return GRPC_STATUS_UNAVAILABLE;
	default:
		return GRPC_STATUS_INTERNAL;
	}
}
