/* bd_reflection.h - gRPC server reflection (grpc.reflection.v1 and v1alpha).
 *
 * Serves /grpc.reflection.v1.ServerReflection/ServerReflectionInfo and its
 * wire-identical v1alpha twin from one serialized FileDescriptorSet, so that
 * grpcurl, grpc_cli and similar tools can list and describe budgetd's
 * services without a copy of the .proto files.
 *
 * The set is parsed once by bd_reflection_create: every file is re-packed
 * once (source info, i.e. comments, included) and indexed by name, every
 * fully-qualified symbol (messages and enums at any nesting depth, fields,
 * oneofs, enum values, services, methods as "pkg.Service.Method",
 * extensions) by name, every extension by (extendee, number). A request
 * never parses descriptors: it looks up an index and sends bytes packed at
 * start.
 *
 * Each reflection stream answers its requests one at a time, in order:
 *   list_services                  the services given to create
 *   file_by_filename               the file, then its transitive dependencies
 *   file_containing_symbol         the defining file, then its dependencies
 *   file_containing_extension      the file defining the extension, or
 *                                  error_response NOT_FOUND
 *   all_extension_numbers_of_type  the extension numbers of a message type
 *                                  (often none), NOT_FOUND if no such type
 * Each file is sent at most once per response. An unknown file or symbol is
 * an error_response {NOT_FOUND, "symbol not found: X"} (the stream goes on);
 * an undecodable request ends the stream with INVALID_ARGUMENT; a client's
 * half-close ends it with OK. Every response echoes `host` as valid_host and
 * the request as original_request.
 *
 * Limits: BD_REFLECTION_STREAMS_MAX open streams (more are answered
 * RESOURCE_EXHAUSTED), BD_REFLECTION_REQUESTS_MAX requests per stream,
 * names of at most BD_REFLECTION_NAME_LEN_MAX bytes, responses of at most
 * BD_REFLECTION_RESPONSE_BYTES_MAX bytes (the server's max_send_bytes must be
 * at least the size of the largest file plus its dependencies plus the
 * largest request: about 64 KiB + max_receive_bytes for budgetd's set).
 * A stream holds at most one request and one response at a time.
 *
 * Everything runs on the server's loop thread.
 */
#ifndef BD_REFLECTION_H
#define BD_REFLECTION_H

#include <stddef.h>

#include "bd_grpc.h"

#define BD_REFLECTION_FILES_MAX          256       /* files in the descriptor set */
#define BD_REFLECTION_SYMBOLS_MAX        65536     /* indexed symbols, all files */
#define BD_REFLECTION_EXTENSIONS_MAX     4096      /* indexed extensions, all files */
#define BD_REFLECTION_SERVICES_MAX       64        /* services in list_services */
#define BD_REFLECTION_NESTING_MAX        32        /* message nesting depth */
#define BD_REFLECTION_NAME_LEN_MAX       512       /* file or symbol name, bytes */
#define BD_REFLECTION_STREAMS_MAX        64        /* open reflection streams */
#define BD_REFLECTION_REQUESTS_MAX       1000      /* requests per stream */
#define BD_REFLECTION_RESPONSE_BYTES_MAX (4 << 20) /* one packed response */

typedef struct bd_reflection bd_reflection;

/* Parses the serialized FileDescriptorSet `set` (which must contain every
 * file's dependencies, as `protoc --include_imports` writes it) and indexes
 * it. `services` are the fully-qualified service names list_services
 * reports; each must be defined in the set. Neither `set` nor `services` is
 * referenced after the call. *out is owned by the caller
 * (bd_reflection_destroy). Returns 0, -EINVAL (undecodable or inconsistent
 * set: a missing dependency, a duplicate file or symbol), -ENOENT (a
 * service not in the set), -ENAMETOOLONG, -E2BIG (a limit above is
 * exceeded) or -ENOMEM. */
int bd_reflection_create(const unsigned char *set, size_t len, const char *const *services,
                         size_t n_services, bd_reflection **out);

/* Registers both ServerReflectionInfo methods (v1 and v1alpha) on `server`,
 * before bd_server_start. `r` must outlive the server. 0 or -EINVAL. */
int bd_reflection_register(bd_reflection *r, bd_server *server);

/* After bd_server_destroy (every stream has ended then). NULL is a no-op. */
void bd_reflection_destroy(bd_reflection *r);

#endif
