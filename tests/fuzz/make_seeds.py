#!/usr/bin/env python3
"""make_seeds.py - (re)write the seed corpora of the fuzz targets.

    tests/fuzz/make_seeds.py          # from the repository root or anywhere

The seeds are committed binary inputs; this script documents what they are
and rewrites them (the files it does not name are left alone, e.g. crash
reproducers added after a fix).

corpus/fuzz_request/<name>: byte 0 = the request type index of fuzz_request.c
(+14 per extra slice, +42 for the caller identity "unix", +84 for the server
defaults of an authorize), then the message
encoded by `protoc --encode` from the text format below, or raw bytes for
encodings protoc will not produce (NUL in a string, non-canonical forms).

corpus/fuzz_sequence/<name>: programs of 8-byte instructions, see the header
of fuzz_sequence.c; `ins()` below spells one instruction out.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PROTO_PATH = [os.path.join(ROOT, "proto"), "/usr/include", "/usr/share/grpc-proto"]

# The order of `types` in fuzz_request.c.
TYPES = {
    "AuthorizeHoldRequest": 0,
    "ReleaseHoldRequest": 1,
    "ReverseHoldRequest": 2,
    "ReconcileHoldRequest": 3,
    "CaptureHoldRequest": 4,
    "IncrementInvocationRequest": 5,
    "GetUsageRequest": 6,
    "ListUsagesRequest": 7,
    "ListMutationEventsRequest": 8,
    "GetHoldRequest": 9,
    "GetServerInfoRequest": 10,
    "HealthCheckRequest": 11,
    "ExtendHoldRequest": 12,
    "ListHoldsRequest": 13,
}
N_TYPES = len(TYPES)

AUTH = 'authority { authority_id: "auth-1" lease_id: "lease-1" lease_epoch: 1 }'
U64MAX = 2**64 - 1

# (file name, message type, text format, extra slices, caller)
REQUESTS = [
    ("authorize-hold", "AuthorizeHoldRequest",
     'capability_id: "cap-a" grant_index: 1 requested_exposure_units: 10 hold_id: "h1"'
     ' event_id: "e1"', 0, False),
    ("authorize-limits", "AuthorizeHoldRequest",
     'capability_id: "cap-a" grant_index: 1 requested_exposure_units: 10 hold_id: "h2"'
     ' max_invocations: 5 max_cost_per_invocation: 20 max_total_cost_units: 100', 1, True),
    ("authorize-authority", "AuthorizeHoldRequest",
     'capability_id: "cap-a" grant_index: 1 requested_exposure_units: 7 hold_id: "h3" ' + AUTH,
     0, True),
    ("authorize-denied", "AuthorizeHoldRequest",
     'capability_id: "cap-b" requested_exposure_units: 5 max_total_cost_units: 0', 0, False),
    ("authorize-zero-limits", "AuthorizeHoldRequest",
     'capability_id: "cap-b" max_invocations: 0 max_cost_per_invocation: 0', 2, False),
    ("authorize-huge", "AuthorizeHoldRequest",
     'capability_id: "cap-c" grant_index: 4294967295 requested_exposure_units: %d'
     ' hold_id: "h-big" max_total_cost_units: %d' % (U64MAX, U64MAX), 0, False),
    ("authorize-grant-too-big", "AuthorizeHoldRequest",
     'capability_id: "cap-c" grant_index: 4294967296', 0, False),
    ("authorize-reserved-event", "AuthorizeHoldRequest",
     'capability_id: "cap-c" event_id: "budgetd-auto-1"', 0, False),
    ("authorize-dry-run", "AuthorizeHoldRequest",
     'capability_id: "cap-a" grant_index: 1 requested_exposure_units: 3 hold_id: "h7"'
     ' max_total_cost_units: 50 dry_run: true event_id: "e7"', 0, True),
    ("authorize-half-authority", "AuthorizeHoldRequest",
     'capability_id: "cap-c" hold_id: "h9" authority { lease_id: "lease-1" }', 0, False),
    ("release-hold", "ReleaseHoldRequest",
     'capability_id: "cap-a" grant_index: 1 hold_id: "h1" released_exposure_units: 4'
     ' event_id: "e2"', 0, True),
    ("release-grant", "ReleaseHoldRequest",
     'capability_id: "cap-b" released_exposure_units: 1', 1, False),
    ("reverse-hold", "ReverseHoldRequest",
     'capability_id: "cap-a" grant_index: 1 hold_id: "h2" reversed_exposure_units: 10', 0,
     False),
    ("reverse-grant", "ReverseHoldRequest", 'capability_id: "cap-b"', 0, True),
    ("reconcile-hold", "ReconcileHoldRequest",
     'capability_id: "cap-a" grant_index: 1 hold_id: "h3" exposed_cost_units: 7'
     ' realized_spend_units: 5 ' + AUTH, 0, False),
    ("reconcile-too-much", "ReconcileHoldRequest",
     'capability_id: "cap-a" exposed_cost_units: 1 realized_spend_units: 2', 0, False),
    ("capture-hold", "CaptureHoldRequest",
     'capability_id: "cap-a" grant_index: 1 hold_id: "h1" exposed_cost_units: 6'
     ' realized_spend_units: 6 event_id: "e3"', 2, True),
    ("increment", "IncrementInvocationRequest",
     'capability_id: "cap-a" max_invocations: 3 event_id: "e4"', 0, True),
    ("increment-plain", "IncrementInvocationRequest", 'capability_id: "cap-\u00e9"', 0, False),
    ("get-usage", "GetUsageRequest", 'capability_id: "cap-a" grant_index: 1', 0, False),
    ("list-usages", "ListUsagesRequest", 'limit: 10', 0, False),
    ("list-usages-cap", "ListUsagesRequest", 'capability_id: "cap-a"', 1, False),
    ("list-usages-limit", "ListUsagesRequest", 'limit: 1001', 0, False),
    ("list-events", "ListMutationEventsRequest", 'limit: 5', 0, False),
    ("list-events-filtered", "ListMutationEventsRequest",
     'capability_id: "cap-a" grant_index: 1 after_commit_index: 2', 0, False),
    ("list-events-grant", "ListMutationEventsRequest", 'grant_index: 0 limit: 1000', 2, False),
    ("get-hold", "GetHoldRequest", 'hold_id: "h1"', 0, False),
    ("server-info", "GetServerInfoRequest", '', 0, False),
    ("health", "HealthCheckRequest", 'service: "budgetd.v1.BudgetAuthority"', 0, False),
    ("health-all", "HealthCheckRequest", '', 0, False),
    ("authorize-ttl", "AuthorizeHoldRequest",
     'capability_id: "cap-a" grant_index: 1 requested_exposure_units: 4 hold_id: "h10"'
     ' ttl_seconds: 60 on_expiry: EXPIRY_POLICY_REVERSE', 0, False),
    ("authorize-ttl-zero", "AuthorizeHoldRequest",
     'capability_id: "cap-a" requested_exposure_units: 1 hold_id: "h11" ttl_seconds: 0', 0,
     False),
    ("authorize-policy-without-ttl", "AuthorizeHoldRequest",
     'capability_id: "cap-a" requested_exposure_units: 1 hold_id: "h12"'
     ' on_expiry: EXPIRY_POLICY_RELEASE', 0, False),
    ("extend-hold", "ExtendHoldRequest",
     'capability_id: "cap-a" grant_index: 1 hold_id: "h1" ttl_seconds: 30 event_id: "e10"',
     0, True),
    ("extend-too-long", "ExtendHoldRequest",
     'capability_id: "cap-a" grant_index: 1 hold_id: "h1" ttl_seconds: 2592001', 0, False),
    ("extend-zero", "ExtendHoldRequest", 'capability_id: "cap-a" hold_id: "h1"', 1, False),
    ("list-holds", "ListHoldsRequest", 'limit: 2', 0, False),
    ("list-holds-filtered", "ListHoldsRequest",
     'capability_id: "cap-a" disposition: HOLD_DISPOSITION_OPEN'
     ' older_than { seconds: 4102444800 }', 0, False),
    ("list-holds-page", "ListHoldsRequest", 'limit: 1 page_token: "1.0.6831"', 0, False),
    ("list-holds-bad-token", "ListHoldsRequest", 'page_token: "1.01.6831"', 0, False),
]

# Encodings protoc does not write; bd_unpack must refuse (or accept) them.
RAW_REQUESTS = [
    # capability_id "cap\0a": a NUL would cut the id short
    ("raw-nul-in-string", "AuthorizeHoldRequest", b"\x0a\x05cap\x00a\x20\x01"),
    # grant_index 0 encoded explicitly: not canonical
    ("raw-default-encoded", "GetUsageRequest", b"\x0a\x05cap-a\x10\x00"),
    # capability_id twice: the last one wins, not canonical
    ("raw-repeated-field", "IncrementInvocationRequest", b"\x0a\x01a\x0a\x05cap-a"),
    # an unknown field 15 (varint): kept and re-encoded, so accepted
    ("raw-unknown-field", "IncrementInvocationRequest", b"\x0a\x05cap-a\x78\x01"),
    # 2040 unknown varint fields: accepted (they re-encode verbatim), and each
    # 2-byte field costs about 100 bytes of the call's arena (see the report
    # of the fuzzing work: decode memory amplification)
    ("raw-unknown-fields-4k", "IncrementInvocationRequest", b"\x0a\x05cap-a" + b"\x78\x01" * 2040),
    # an over-long varint for grant_index 1
    ("raw-overlong-varint", "GetUsageRequest", b"\x0a\x05cap-a\x10\x81\x00"),
    # a truncated message
    ("raw-truncated", "ReleaseHoldRequest", b"\x0a\x05cap"),
    # capability_id not UTF-8 (protobuf-c does not check; the store must)
    ("raw-not-utf8", "IncrementInvocationRequest", b"\x0a\x02\xc0\xaf"),
    # hold_id with a control character
    ("raw-control-char", "GetHoldRequest", b"\x0a\x03h\x01x"),
    # authority sent twice: the messages are merged, not canonical
    ("raw-merged-authority", "ReleaseHoldRequest",
     b"\x0a\x05cap-a\x1a\x02h1\x32\x08\x0a\x06auth-1\x32\x09\x12\x07lease-1"),
]


def encode(msg_type, text):
    full = ("grpc.health.v1." if msg_type == "HealthCheckRequest" else "budgetd.v1.") + msg_type
    proto = ("grpc/health/v1/health.proto" if msg_type == "HealthCheckRequest"
             else "budgetd/v1/budget_authority.proto")
    args = ["protoc"] + ["-I" + p for p in PROTO_PATH] + ["--encode=" + full, proto]
    return subprocess.run(args, input=text.encode(), stdout=subprocess.PIPE,
                          check=True).stdout


def request_byte(msg_type, slices, caller, defaults=False):
    return bytes([TYPES[msg_type] +
                  N_TYPES * (slices + (3 if caller else 0) + (6 if defaults else 0))])


# ---- fuzz_sequence ----------------------------------------------------------

OPS = {"authorize": 0, "release": 4, "reverse": 6, "reconcile": 7, "increment": 9,
       "repeat": 10, "checkpoint": 11, "read": 12, "clock": 13}
# nibble values of fuzz_sequence.c
CAP_A, CAP_B, CAP_C, CAP_E, CAP_LONG, CAP_NONE, CAP_WEIRD = 0, 3, 6, 8, 9, 11, 12
GRANT0, GRANT1, GRANT2, GRANT_U32MAX, GRANT_TOO_BIG = 0, 2, 4, 5, 6
HOLD_NONE, HOLD_FRESH, HOLD_H0, HOLD_H1, HOLD_H2 = 0, 3, 4, 5, 6
HOLD_ANY, HOLD_OPEN, HOLD_EMPTY, HOLD_WEIRD = 10, 11, 14, 15
EV_NONE, EV_E0, EV_E1, EV_LONG, EV_RESERVED, EV_FRESH, EV_WEIRD = 0, 7, 8, 12, 13, 14, 15
AMOUNT = {0: 0, 1: 1, 2: 2, 3: 3, 5: 4, 8: 5, 13: 6, 100: 7, "u32max": 8, "2^32": 9,
          "half": 10, "half+1": 11, "max-2": 12, "max-1": 13, "max": 14, "dyn": 15}
REAL_ZERO, REAL_ALL, REAL_HALF, REAL_LESS1, REAL_MORE1 = 0, 1, 2, 3, 4
LIMIT = {0: 0, 1: 1, 2: 2, 3: 3, 5: 4, 8: 5, 10: 6, 20: 7, 100: 8, 1000: 9, "max": 13,
         "dyn": 14, "dyn2": 15}
AUTH_NONE, AUTH_HOLDS, AUTH_L1E1, AUTH_L1E2, AUTH_L1E0, AUTH_L2E1, AUTH_A2 = 0, 6, 7, 8, 9, 10, 11
AUTH_LONG, AUTH_NO_ID, AUTH_NO_LEASE, AUTH_WEIRD = 12, 13, 14, 15


def ins(op, raw=False, join=False, batch=False, tick=False, cap=CAP_A, grant=GRANT0,
        hold=HOLD_NONE, hold_k=0, event=EV_NONE, event_k=0, exposure=0, realized=REAL_ZERO,
        max_inv=None, max_cost=None, max_total=None, auth=AUTH_NONE, auth_k=0, caller=0,
        dry=False, b1=None):
    b0 = OPS[op] | (0x10 if raw else 0) | (0x20 if join else 0) | (0x40 if batch else 0) | \
        (0x80 if tick else 0)
    if b1 is None:
        b1 = cap | (grant << 4)
    b2 = hold | (hold_k << 4)
    b3 = event | (event_k << 4)
    b4 = AMOUNT[exposure] | (realized << 4)
    present = (max_inv is not None) | (max_cost is not None) << 1 | (max_total is not None) << 2
    b5 = present | (8 if dry else 0) | (LIMIT[max_total if max_total is not None else 0] << 4)
    b6 = LIMIT[max_inv if max_inv is not None else 0] | \
        (LIMIT[max_cost if max_cost is not None else 0] << 4)
    b7 = auth | (auth_k << 4) | (caller << 6)
    return bytes([b0, b1, b2, b3, b4, b5, b6, b7])


def read(cap=CAP_NONE, grant=GRANT0, hold=HOLD_H0, after=0, limit=0, has_grant=False,
         disposition=0, older=0, cursor=0, which=0):
    # after: index into {0, 1, 2, 5, ci-1, ci, ci+1, max}; limit: into {0,1,2,3,5,100,1000,1001}
    # list_holds: disposition into {-, open, released, reversed, reconciled, 0, 5, -},
    # older into {-, now, now+1, INT64_MIN}, cursor into {-, after hold #which,
    # (INT64_MIN, weird(which)), (INT64_MAX, "h0")}
    return bytes([OPS["read"], cap | (grant << 4), hold, after, limit,
                  1 if has_grant else 0, disposition | (older << 3) | (cursor << 5), which])


def repeat(back=0, caller=None):
    # the mutation `back` instructions ago in the history; with `caller`, sent as another caller
    b2 = 0 if caller is None else 1 | (caller << 1)
    return bytes([OPS["repeat"], back, b2, 0, 0, 0, 0, 0])


def clock(sel):
    # sel: {0, +1, +1us, +1ms, +1s, -1, -1s, set 0}
    return bytes([OPS["clock"], sel, 0, 0, 0, 0, 0, 0])


SEQUENCES = {
    "hold-lifecycle": [
        ins("authorize", hold=HOLD_H0, exposure=13, event=EV_E0, tick=True),
        ins("release", hold=HOLD_OPEN, exposure=5),
        ins("reverse", hold=HOLD_OPEN, exposure="dyn"),
        ins("authorize", hold=HOLD_H1, exposure=8, tick=True),
        ins("reconcile", hold=HOLD_OPEN, exposure="dyn", realized=REAL_HALF),
        ins("authorize", hold=HOLD_H2, exposure=100),
        ins("release", hold=HOLD_OPEN, exposure="dyn"),
        ins("release", hold=HOLD_H2, exposure=1),
        read(hold=HOLD_H2),
    ],
    "limits-boundaries": [
        ins("authorize", cap=CAP_B, exposure=5, max_total="dyn", max_inv="dyn2", max_cost="dyn"),
        ins("authorize", cap=CAP_B, exposure=5, max_total="dyn2"),
        ins("authorize", cap=CAP_B, exposure=5, max_inv="dyn"),
        ins("authorize", cap=CAP_B, exposure=5, max_cost="dyn2"),
        ins("increment", cap=CAP_B, max_inv="dyn2"),
        ins("increment", cap=CAP_B, max_inv="dyn"),
        ins("authorize", cap=CAP_B, exposure=0, max_total=0, max_inv=0, max_cost=0),
    ],
    "authority-rules": [
        ins("authorize", hold=HOLD_H0, exposure=5, auth=AUTH_L1E1),
        ins("authorize", hold=HOLD_H1, exposure=5),
        ins("release", hold=HOLD_H0, exposure=1),
        ins("release", hold=HOLD_H0, exposure=1, auth=AUTH_L1E2),
        ins("release", hold=HOLD_H0, exposure=1, auth=AUTH_L1E0),
        ins("release", hold=HOLD_H0, exposure=1, auth=AUTH_L2E1),
        ins("release", hold=HOLD_H0, exposure=1, auth=AUTH_A2),
        ins("release", hold=HOLD_H1, exposure=1, auth=AUTH_L1E1),
        ins("reconcile", hold=HOLD_H0, exposure="dyn", realized=REAL_ALL, auth=AUTH_HOLDS),
        ins("authorize", hold=HOLD_FRESH, exposure=5, auth=AUTH_LONG),
        ins("reverse", hold=HOLD_OPEN, hold_k=1, exposure="dyn", auth=AUTH_HOLDS),
        ins("authorize", hold=HOLD_FRESH, auth=AUTH_NO_ID),
        ins("authorize", hold=HOLD_FRESH, auth=AUTH_NO_LEASE),
        ins("authorize", hold=HOLD_FRESH, auth=AUTH_WEIRD, auth_k=2),
    ],
    "replays-and-conflicts": [
        ins("authorize", hold=HOLD_H0, event=EV_E0, exposure=5, caller=1),
        repeat(),
        repeat(caller=2),
        ins("authorize", hold=HOLD_H1, event=EV_E0, exposure=5),
        ins("increment", event=EV_E1, caller=2),
        ins("checkpoint"),
        repeat(),
        ins("increment", event=EV_E1, max_inv=5),
        ins("release", hold=HOLD_H0, event=EV_RESERVED, event_k=2, exposure=1),
        ins("release", hold=HOLD_H0, event=EV_LONG, exposure=1),
        repeat(),
    ],
    "batches": [
        ins("authorize", hold=HOLD_H0, exposure=5, batch=True, tick=True),
        ins("release", hold=HOLD_H0, exposure=2, join=True),
        ins("release", hold=HOLD_H0, exposure=8, join=True),
        ins("increment", join=True),
        ins("reverse", hold=HOLD_OPEN, exposure="dyn", join=True),
        ins("authorize", hold=HOLD_H0, exposure=1, join=True),
        ins("authorize", cap=CAP_WEIRD, join=True),
        ins("reconcile", join=True, exposure=1, realized=REAL_MORE1),
        ins("authorize", hold=HOLD_H1, exposure=3, batch=True),
        read(after=0, limit=2),
        read(cap=CAP_A, after=1, limit=0, has_grant=True),
    ],
    "overflow": [
        ins("authorize", cap=CAP_C, exposure="max", hold=HOLD_H0),
        ins("authorize", cap=CAP_C, exposure=1),
        ins("authorize", cap=CAP_C, exposure=1, max_total="max"),
        ins("reconcile", cap=CAP_C, hold=HOLD_H0, exposure="max", realized=REAL_ALL),
        ins("authorize", cap=CAP_C, exposure="max"),
        ins("reconcile", cap=CAP_C, exposure="max", realized=REAL_ALL),
        ins("authorize", cap=CAP_C, exposure="half", grant=GRANT_U32MAX),
        ins("authorize", cap=CAP_C, exposure="half+1", grant=GRANT_U32MAX),
        ins("authorize", cap=CAP_C, exposure=1, grant=GRANT_TOO_BIG),
    ],
    "malformed-ids": [
        # every malformed (and edge) string of weird(), as the capability
        ins("authorize", b1=CAP_WEIRD | (v << 4)) for v in range(16)
    ] + [
        ins("authorize", cap=CAP_NONE),
        ins("authorize", cap=CAP_LONG, hold=HOLD_WEIRD, hold_k=3),
        ins("authorize", cap=CAP_E, hold=HOLD_EMPTY),
        ins("authorize", cap=CAP_B, event=EV_WEIRD, event_k=4),
        ins("increment", raw=True, hold=HOLD_H0),
        ins("release", raw=True, max_cost=5),
        ins("reverse", raw=True, realized=REAL_ALL, exposure=3),
        ins("increment", raw=True, exposure=1),
    ],
    "dry-runs": [
        ins("authorize", hold=HOLD_H0, exposure=5, dry=True, event=EV_E0),
        ins("authorize", hold=HOLD_H0, exposure=5, max_total=5, event=EV_E0),
        ins("authorize", hold=HOLD_H0, exposure=5, dry=True),
        ins("authorize", hold=HOLD_H1, exposure=1, max_total="dyn2", dry=True),
        ins("authorize", hold=HOLD_H1, exposure=1, max_inv="dyn", dry=True, join=True),
        ins("authorize", hold=HOLD_H1, exposure="max", dry=True, join=True),
        ins("release", hold=HOLD_H0, exposure=1, dry=True, raw=True),
        ins("reconcile", exposure=1, realized=REAL_MORE1, dry=True, raw=True),
        ins("authorize", hold=HOLD_WEIRD, hold_k=2, dry=True),
        repeat(back=1),
    ],
    "list-holds": [
        ins("authorize", hold=HOLD_H0, exposure=5, auth=AUTH_L1E1),
        ins("authorize", cap=CAP_B, hold=HOLD_H1, exposure=3, tick=True),
        ins("authorize", hold=HOLD_H2, exposure=2, join=True),
        ins("release", hold=HOLD_H1, cap=CAP_B, exposure=3, tick=True),
        ins("reverse", hold=HOLD_H2, exposure=2),
        read(limit=0),
        read(limit=1, cursor=1, which=0),
        read(cap=CAP_A, disposition=1),
        read(disposition=3, older=2),
        read(older=1, limit=2, cursor=1, which=2),
        read(cursor=2, which=3),
        read(cursor=2, which=12),
        read(cursor=3),
        read(disposition=5),
        ins("checkpoint"),
        read(limit=7),
    ],
    "clock-and-reads": [
        ins("authorize", cap=CAP_A, exposure=1),
        clock(4),
        ins("authorize", cap=CAP_B, exposure=1),
        clock(6),
        ins("increment", cap=CAP_C),
        clock(7),
        ins("increment", cap=CAP_A, grant=GRANT2),
        read(after=4, limit=1),
        read(cap=CAP_B, limit=7),
        ins("checkpoint"),
        read(after=6, limit=6),
    ],
}


def write(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def main():
    out = os.path.join(HERE, "corpus", "fuzz_request")
    for name, msg_type, text, slices, caller in REQUESTS:
        write(out, name, request_byte(msg_type, slices, caller) + encode(msg_type, text))
    write(out, "authorize-server-defaults",
          request_byte("AuthorizeHoldRequest", 0, False, defaults=True) +
          encode("AuthorizeHoldRequest",
                 'capability_id: "cap-a" requested_exposure_units: 2 hold_id: "h13"'))
    for name, msg_type, payload in RAW_REQUESTS:
        write(out, name, request_byte(msg_type, 0, False) + payload)
    out = os.path.join(HERE, "corpus", "fuzz_sequence")
    for name, program in SEQUENCES.items():
        write(out, name, b"".join(program))
    return 0


if __name__ == "__main__":
    sys.exit(main())
