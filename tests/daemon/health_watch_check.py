#!/usr/bin/python3
"""health_watch_check.py - grpc.health.v1.Health/Watch against budgetd.

usage: health_watch_check.py HOST:PORT PID

Watches the whole server: the first answer must be SERVING. Then it sends
SIGTERM to PID: the stream must report NOT_SERVING and end with
UNAVAILABLE. A second watch of an unknown service must answer
SERVICE_UNKNOWN. HealthCheckRequest/Response are encoded by hand with the
protobuf library's wire helpers (one string field, one enum field).
"""

import os
import signal
import sys

import grpc

SERVING, NOT_SERVING, SERVICE_UNKNOWN = 1, 2, 3
TIMEOUT_S = 30


def request(service):
    data = service.encode()
    return (b"\x0a" + bytes([len(data)]) + data) if data else b""


def status_of(payload):
    # HealthCheckResponse { ServingStatus status = 1; }: b"\x08" + varint
    return payload[1] if len(payload) == 2 and payload[0] == 0x08 else 0


def main():
    addr, pid = sys.argv[1], int(sys.argv[2])
    channel = grpc.insecure_channel(addr)
    watch = channel.unary_stream("/grpc.health.v1.Health/Watch",
                                 request_serializer=lambda b: b,
                                 response_deserializer=lambda b: b)
    unknown = watch(request("no.such.Service"), timeout=TIMEOUT_S)
    first = status_of(next(unknown))
    unknown.cancel()
    if first != SERVICE_UNKNOWN:
        print(f"FAIL unknown service: status {first}, expected SERVICE_UNKNOWN")
        return 1
    stream = watch(request(""), timeout=TIMEOUT_S)
    first = status_of(next(stream))
    if first != SERVING:
        print(f"FAIL first status {first}, expected SERVING")
        return 1
    os.kill(pid, signal.SIGTERM)
    seen = []
    try:
        for payload in stream:
            seen.append(status_of(payload))
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNAVAILABLE:
            print(f"FAIL stream ended with {e.code()}: {e.details()}")
            return 1
    else:
        print("FAIL stream ended with OK, expected UNAVAILABLE")
        return 1
    if seen != [NOT_SERVING]:
        print(f"FAIL statuses after SIGTERM: {seen}, expected [NOT_SERVING]")
        return 1
    print("ok   Watch: SERVING, then NOT_SERVING and UNAVAILABLE at shutdown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
