"""A stock gRPC client (Python grpcio, no generated code) against the platform listener.

Usage: stock_client.py HOST:PORT CA_FILE REGISTER SUBMISSION_JSON

Trusts only the CA certificate in CA_FILE. Messages are encoded and decoded by hand (a few
protobuf fields), so nothing but grpcio is needed. Prints one line per call; the Rust test
checks them.
"""

import sys

import grpc


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_int(num, value):
    return varint(num << 3) + varint(value)


def message(*fields):
    return b"".join(fields)


def decode(data):
    """Field number -> list of values (ints for varints, bytes for length-delimited)."""
    fields, i = {}, 0

    def read_varint():
        nonlocal i
        shift, n = 0, 0
        while True:
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(data):
        key = read_varint()
        num, wire = key >> 3, key & 7
        if wire == 0:
            value = read_varint()
        elif wire == 2:
            length = read_varint()
            value, i = data[i : i + length], i + length
        elif wire == 1:
            value, i = data[i : i + 8], i + 8
        elif wire == 5:
            value, i = data[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        fields.setdefault(num, []).append(value)
    return fields


def first(fields, num, default):
    return fields.get(num, [default])[0]


def main():
    target, ca_file, register, submission = sys.argv[1:5]
    with open(ca_file, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    channel = grpc.secure_channel(target, credentials)
    grpc.channel_ready_future(channel).result(timeout=15)

    def unary(path, request):
        call = channel.unary_unary(path)
        return decode(call(request, timeout=15))

    answer = unary(
        "/sorcha.peer.DocketSyncService/GetLatestDocketNumber",
        message(field_bytes(1, register.encode())),
    )
    print(
        "latest", first(answer, 1, 0), first(answer, 2, b"").decode(), first(answer, 4, 0)
    )

    answer = unary(
        "/sorcha.peer.sync.RegisterSync/GetRegisterSyncStatus",
        message(field_bytes(1, register.encode())),
    )
    print("status", first(answer, 2, 0), first(answer, 6, 0))

    pull = channel.unary_stream("/sorcha.peer.sync.RegisterSync/PullDocketChain")
    request = message(field_bytes(1, register.encode()))
    versions = [first(decode(e), 2, 0) for e in pull(request, timeout=15)]
    print("chain", " ".join(str(v) for v in versions))

    # Submitted last of the reads, so what they see does not depend on when it is sealed.
    answer = unary(
        "/sorcha.peer.transaction.TransactionDistribution/SubmitTransaction",
        message(
            field_bytes(1, register.encode()),
            field_bytes(2, submission.encode()),
            field_bytes(3, b"blueprint-service"),
            field_int(4, 1_700_000_000_000),
        ),
    )
    print("submitted", first(answer, 1, 0), first(answer, 3, 0))

    try:
        unary(
            "/sorcha.peer.sync.RegisterSync/GetRegisterSyncStatus",
            message(field_bytes(1, b"bad/name")),
        )
        print("bad answered")
    except grpc.RpcError as e:
        print("bad", e.code().name)
    channel.close()


if __name__ == "__main__":
    main()
