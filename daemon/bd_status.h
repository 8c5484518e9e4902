/* bd_status.h - the one mapping from store errors to gRPC status codes. */
#ifndef BD_STATUS_H
#define BD_STATUS_H

#include <grpc/status.h>

/* A bs_err (store error) as the gRPC status a caller can branch on. */
grpc_status_code bd_status_from_store(int store_error);

#endif
