#!/usr/bin/python3
"""reflection_check.py - checks budgetd's gRPC server reflection end to end.

usage: /usr/bin/python3 tests/reflection_check.py HOST:PORT [DESCRIPTOR_SET]

Acts like `grpcurl list` / `grpcurl describe`: lists the services, fetches
the files defining them (with their dependencies), loads those into a fresh
descriptor pool and checks that the methods and their comments are there.
It also checks error answers, the v1alpha path, several requests on one
stream, a client cancelling mid-stream and an undecodable request. With
DESCRIPTOR_SET (build/proto/budgetd_descriptor_set.pb) every served file
must equal the one in the set.

Uses only Debian's python3-grpcio and python3-protobuf (no grpc_reflection
module, no generated code): the reflection messages are described by hand
below. Exits 1 and prints every failed check.
"""

import queue
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
NOT_FOUND = 5
INVALID_ARGUMENT = 3
TIMEOUT_S = 30
REQUESTS_MAX = 1000  # BD_REFLECTION_REQUESTS_MAX
NAME_LEN_MAX = 512  # BD_REFLECTION_NAME_LEN_MAX

failures = []


def check(cond, what):
    if cond:
        print("ok   " + what)
    else:
        print("FAIL " + what)
        failures.append(what)
    return cond


# ---- the reflection messages (grpc/reflection/v1/reflection.proto) ----

F = descriptor_pb2.FieldDescriptorProto


def reflection_classes():
    fdp = descriptor_pb2.FileDescriptorProto(
        name="reflection_check/reflection.proto",
        package="grpc.reflection.v1",
        syntax="proto3",
    )

    def message(name, fields, oneof=None):
        m = fdp.message_type.add(name=name)
        if oneof:
            m.oneof_decl.add(name=oneof)
        for fname, number, ftype, label, type_name, in_oneof in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = ".grpc.reflection.v1." + type_name
            if in_oneof:
                f.oneof_index = 0

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    s, i32, b, msg = F.TYPE_STRING, F.TYPE_INT32, F.TYPE_BYTES, F.TYPE_MESSAGE
    message(
        "ServerReflectionRequest",
        [
            ("host", 1, s, opt, None, False),
            ("file_by_filename", 3, s, opt, None, True),
            ("file_containing_symbol", 4, s, opt, None, True),
            ("file_containing_extension", 5, msg, opt, "ExtensionRequest", True),
            ("all_extension_numbers_of_type", 6, s, opt, None, True),
            ("list_services", 7, s, opt, None, True),
        ],
        oneof="message_request",
    )
    message(
        "ExtensionRequest",
        [("containing_type", 1, s, opt, None, False), ("extension_number", 2, i32, opt, None, False)],
    )
    message(
        "ServerReflectionResponse",
        [
            ("valid_host", 1, s, opt, None, False),
            ("original_request", 2, msg, opt, "ServerReflectionRequest", False),
            ("file_descriptor_response", 4, msg, opt, "FileDescriptorResponse", True),
            ("all_extension_numbers_response", 5, msg, opt, "ExtensionNumberResponse", True),
            ("list_services_response", 6, msg, opt, "ListServiceResponse", True),
            ("error_response", 7, msg, opt, "ErrorResponse", True),
        ],
        oneof="message_response",
    )
    message("FileDescriptorResponse", [("file_descriptor_proto", 1, b, rep, None, False)])
    message(
        "ExtensionNumberResponse",
        [("base_type_name", 1, s, opt, None, False), ("extension_number", 2, i32, rep, None, False)],
    )
    message("ListServiceResponse", [("service", 1, msg, rep, "ServiceResponse", False)])
    message("ServiceResponse", [("name", 1, s, opt, None, False)])
    message(
        "ErrorResponse",
        [("error_code", 1, i32, opt, None, False), ("error_message", 2, s, opt, None, False)],
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    factory = message_factory.MessageFactory(pool)

    def cls(name):
        d = pool.FindMessageTypeByName("grpc.reflection.v1." + name)
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(d)
        return factory.GetPrototype(d)

    return cls("ServerReflectionRequest"), cls("ServerReflectionResponse"), cls("ExtensionRequest")


Request, Response, ExtensionRequest = reflection_classes()


class Stream:
    """One reflection stream, driven one request and one response at a time."""

    def __init__(self, channel, path=V1, serializer=None):
        self.requests = queue.Queue()
        rpc = channel.stream_stream(
            path,
            request_serializer=serializer or (lambda m: m.SerializeToString()),
            response_deserializer=Response.FromString,
        )
        self.call = rpc(iter(self.requests.get, None), timeout=TIMEOUT_S)

    def ask(self, request):
        self.requests.put(request)
        return next(self.call)

    def close(self):
        """Half-closes; returns (remaining responses, status code)."""
        self.requests.put(None)
        rest = []
        try:
            rest = list(self.call)
        except grpc.RpcError:
            pass
        return rest, self.call.code()


def files_of(response):
    return [descriptor_pb2.FileDescriptorProto.FromString(b) for b in response.file_descriptor_response.file_descriptor_proto]


def check_files_answer(stream, what, request, first_file, must_include=()):
    r = stream.ask(request)
    if not check(r.WhichOneof("message_response") == "file_descriptor_response", what + ": a file_descriptor_response"):
        print("     got: %s" % r)
        return []
    files = files_of(r)
    names = [f.name for f in files]
    check(names and names[0] == first_file, "%s: first file is %s (got %s)" % (what, first_file, names))
    check(len(names) == len(set(names)), "%s: each file at most once (%s)" % (what, names))
    for n in must_include:
        check(n in names, "%s: includes dependency %s" % (what, n))
    # Every dependency of a returned file is returned too (transitive closure).
    for f in files:
        for dep in f.dependency:
            check(dep in names, "%s: dependency %s of %s is included" % (what, dep, f.name))
    check(r.original_request == request, what + ": original_request echoes the request")
    check(r.valid_host == request.host, what + ": valid_host echoes host")
    return files


def check_error(stream, what, request, code, message=None):
    r = stream.ask(request)
    if not check(r.WhichOneof("message_response") == "error_response", what + ": an error_response"):
        print("     got: %s" % r)
        return
    check(r.error_response.error_code == code, "%s: error_code %d (got %d)" % (what, code, r.error_response.error_code))
    if message is not None:
        check(r.error_response.error_message == message, "%s: message %r (got %r)" % (what, message, r.error_response.error_message))
    check(r.original_request == request, what + ": original_request echoes the request")


def load_pool(files):
    """Adds files to a fresh pool, dependencies first (as grpcurl does)."""
    by_name = {f.name: f for f in files}
    pool = descriptor_pool.DescriptorPool()
    added = set()

    def add(name, depth=0):
        if name in added or depth > 100:
            return
        for dep in by_name[name].dependency:
            add(dep, depth + 1)
        pool.AddSerializedFile(by_name[name].SerializeToString())
        added.add(name)

    for name in by_name:
        add(name)
    return pool


def comments(fdp):
    return {tuple(loc.path): loc.leading_comments for loc in fdp.source_code_info.location}


def check_describe(channel, services):
    """`grpcurl describe` for every listed service."""
    stream = Stream(channel)
    files = {}
    for svc in services:
        r = stream.ask(Request(file_containing_symbol=svc))
        if not check(r.WhichOneof("message_response") == "file_descriptor_response", "describe %s: files returned" % svc):
            continue
        for f in files_of(r):
            if f.name in files:
                check(files[f.name] == f, "describe %s: %s is the same in every answer" % (svc, f.name))
            files[f.name] = f
    rest, code = stream.close()
    check(code == grpc.StatusCode.OK and not rest, "describe: the stream ends with OK after half-close")
    try:
        pool = load_pool(list(files.values()))
    except Exception as e:  # noqa: BLE001 - any failure to load is the finding
        check(False, "describe: the returned files load into a DescriptorPool (%s)" % e)
        return
    check(True, "describe: the returned files load into a DescriptorPool")
    for svc in services:
        try:
            sd = pool.FindServiceByName(svc)
        except KeyError:
            check(False, "describe: %s is in the pool" % svc)
            continue
        check(len(sd.methods) > 0, "describe: %s has methods (%s)" % (svc, [m.name for m in sd.methods]))
        for m in sd.methods:
            # The types resolve (grpcurl describes them next).
            check(m.input_type.full_name and m.output_type.full_name, "describe: %s types resolve" % m.full_name)

    # Comments survive for budgetd's own API.
    bf = files.get("budgetd/v1/budget_authority.proto")
    if check(bf is not None, "describe: budgetd/v1/budget_authority.proto was returned"):
        c = comments(bf)
        si = [s.name for s in bf.service].index("BudgetAuthority")
        check("BudgetAuthority enforces spending budgets" in c.get((6, si), ""), "describe: the BudgetAuthority service comment is there")
        for mi, m in enumerate(bf.service[si].method):
            check(c.get((6, si, 2, mi), "").strip() != "", "describe: method %s has its comment" % m.name)
        sd = pool.FindServiceByName("budgetd.v1.BudgetAuthority")
        check("AuthorizeHold" in sd.methods_by_name, "describe: BudgetAuthority.AuthorizeHold is a method")


def check_main_stream(channel):
    s = Stream(channel)
    r = s.ask(Request(host="budgetd.test", list_services=""))
    ok = check(r.WhichOneof("message_response") == "list_services_response", "list_services: a list_services_response")
    services = [x.name for x in r.list_services_response.service] if ok else []
    check("budgetd.v1.BudgetAuthority" in services, "list_services: has budgetd.v1.BudgetAuthority (%s)" % services)
    check(r.valid_host == "budgetd.test", "list_services: valid_host echoed")
    check(r.original_request.list_services == "" and r.original_request.WhichOneof("message_request") == "list_services", "list_services: original_request echoed")

    bf = "budgetd/v1/budget_authority.proto"
    ts = "google/protobuf/timestamp.proto"
    for sym in ["budgetd.v1.BudgetAuthority", "budgetd.v1.AuthorizeHoldRequest", "budgetd.v1.BudgetAuthority.AuthorizeHold"]:
        check_files_answer(s, "file_containing_symbol %s" % sym, Request(host="budgetd.test", file_containing_symbol=sym), bf, [ts])
    files = check_files_answer(s, "file_by_filename %s" % ts, Request(file_by_filename=ts), ts)
    check(len(files) == 1, "file_by_filename %s: no other file (%d)" % (ts, len(files)))
    check_files_answer(s, "file_by_filename %s" % bf, Request(file_by_filename=bf), bf, [ts])
    check_files_answer(s, "file_containing_symbol google.protobuf.Timestamp", Request(file_containing_symbol="google.protobuf.Timestamp"), ts)

    check_error(s, "unknown symbol", Request(file_containing_symbol="budgetd.v1.NoSuchThing"), NOT_FOUND, "symbol not found: budgetd.v1.NoSuchThing")
    check_error(s, "unknown file", Request(file_by_filename="no/such.proto"), NOT_FOUND)
    check_error(s, "file_containing_extension", Request(file_containing_extension=ExtensionRequest(containing_type="budgetd.v1.AuthorizeHoldRequest", extension_number=100)), NOT_FOUND)
    r = s.ask(Request(all_extension_numbers_of_type="budgetd.v1.AuthorizeHoldRequest"))
    if check(r.WhichOneof("message_response") == "all_extension_numbers_response", "all_extension_numbers_of_type: an answer for a known type"):
        e = r.all_extension_numbers_response
        check(e.base_type_name == "budgetd.v1.AuthorizeHoldRequest" and len(e.extension_number) == 0, "all_extension_numbers_of_type: no extensions (%s)" % e)
    check_error(s, "all_extension_numbers_of_type unknown type", Request(all_extension_numbers_of_type="budgetd.v1.Nope"), NOT_FOUND)
    check_error(s, "a name over the limit", Request(file_containing_symbol="x" * (NAME_LEN_MAX + 1)), INVALID_ARGUMENT)
    check_error(s, "a request without message_request", Request(host="h"), 12)  # UNIMPLEMENTED
    # The stream still works after errors.
    check_files_answer(s, "after errors", Request(file_containing_symbol="budgetd.v1.BudgetAuthority"), bf)
    rest, code = s.close()
    check(code == grpc.StatusCode.OK and not rest, "half-close ends the stream with OK (%s)" % code)
    return services


def check_v1alpha(channel):
    s = Stream(channel, V1ALPHA)
    r = s.ask(Request(list_services=""))
    check(r.WhichOneof("message_response") == "list_services_response" and any(x.name == "budgetd.v1.BudgetAuthority" for x in r.list_services_response.service), "v1alpha: list_services")
    check_files_answer(s, "v1alpha: file_containing_symbol", Request(file_containing_symbol="budgetd.v1.BudgetAuthority"), "budgetd/v1/budget_authority.proto")
    rest, code = s.close()
    check(code == grpc.StatusCode.OK and not rest, "v1alpha: half-close ends with OK")


def check_cancel(channel):
    s = Stream(channel)
    r = s.ask(Request(file_containing_symbol="budgetd.v1.BudgetAuthority"))
    check(r.WhichOneof("message_response") == "file_descriptor_response", "cancel: first answer arrives")
    s.call.cancel()
    check(s.call.code() == grpc.StatusCode.CANCELLED, "cancel: the call is cancelled")
    # Cancel while the server is waiting for a request, with nothing sent.
    s2 = Stream(channel)
    s2.call.cancel()
    # Cancel with requests queued and unanswered.
    s3 = Stream(channel)
    for _ in range(20):
        s3.requests.put(Request(file_containing_symbol="budgetd.v1.BudgetAuthority"))
    next(s3.call)
    s3.call.cancel()
    # The server is still fine.
    s4 = Stream(channel)
    r = s4.ask(Request(list_services=""))
    check(r.WhichOneof("message_response") == "list_services_response", "cancel: a new stream works afterwards")
    s4.close()


def check_invalid(channel):
    s = Stream(channel, V1, serializer=lambda b: b)
    s.requests.put(b"\xff\xff\xff\xff")
    s.requests.put(None)
    try:
        list(s.call)
    except grpc.RpcError:
        pass
    check(s.call.code() == grpc.StatusCode.INVALID_ARGUMENT, "undecodable request: INVALID_ARGUMENT (%s %s)" % (s.call.code(), s.call.details()))


def check_request_limit(channel):
    rpc = channel.stream_stream(V1, request_serializer=lambda m: m.SerializeToString(), response_deserializer=Response.FromString)
    call = rpc(iter([Request(list_services="")] * (REQUESTS_MAX + 1)), timeout=TIMEOUT_S)
    n = 0
    try:
        for _ in call:
            n += 1
    except grpc.RpcError:
        pass
    check(n == REQUESTS_MAX and call.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, "%d requests on one stream: %d answers then RESOURCE_EXHAUSTED (got %d, %s)" % (REQUESTS_MAX + 1, REQUESTS_MAX, n, call.code()))


def check_against_set(channel, path):
    with open(path, "rb") as f:
        fds = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    s = Stream(channel)
    for want in fds.file:
        r = s.ask(Request(file_by_filename=want.name))
        got = files_of(r)
        check(got and got[0] == want, "served %s equals the descriptor set's (source info included)" % want.name)
    s.close()


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    channel = grpc.insecure_channel(sys.argv[1])
    try:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT_S)
    except grpc.FutureTimeoutError:
        print("FAIL cannot connect to %s" % sys.argv[1])
        return 1
    try:
        services = check_main_stream(channel)
        check_describe(channel, services)
        check_v1alpha(channel)
        check_cancel(channel)
        check_invalid(channel)
        check_request_limit(channel)
        if len(sys.argv) == 3:
            check_against_set(channel, sys.argv[2])
    except grpc.RpcError as e:
        check(False, "unexpected RPC failure: %s %s" % (e.code(), e.details()))
    channel.close()
    if failures:
        print("%d reflection checks failed:" % len(failures))
        for f in failures:
            print("  " + f)
        return 1
    print("all reflection checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
