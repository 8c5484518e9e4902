/* budgetd_descriptor_set.h - the serialized FileDescriptorSet of budgetd's
 * gRPC services, embedded at build time for server reflection.
 *
 * It holds budgetd/v1/budget_authority.proto, grpc/health/v1/health.proto,
 * grpc/reflection/v1/reflection.proto and
 * grpc/reflection/v1alpha/reflection.proto with all their imports
 * (google/protobuf/timestamp.proto), each once, dependencies before the files
 * that import them, with source info (comments) included. Parse it with
 * google__protobuf__file_descriptor_set__unpack()
 * ("google/protobuf/descriptor.pb-c.h" from proto_dep).
 */
#ifndef BUDGETD_DESCRIPTOR_SET_H
#define BUDGETD_DESCRIPTOR_SET_H

#include <stddef.h>

extern const unsigned char bd_descriptor_set[];
extern const size_t bd_descriptor_set_len;

#endif
