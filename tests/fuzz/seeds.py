#!/usr/bin/env python3
"""seeds.py - writes the seed corpora of the fuzz targets (tests/fuzz/corpus/).

Run it from anywhere: `tests/fuzz/seeds.py` rewrites the seeds it owns (files
named seed-*) and leaves other files alone (regression inputs kept by hand,
named after what they found). Only the standard library: the protobuf
frames are encoded here by hand, field numbers from libnsq/nsq.proto, the
way nsq_consumer, nsq_producer and broker_lookup send them; disk records
use the CRC32C layout of nsq_diskqueue.c and broker_disk.c.

Each seed is a script in the input format its target's comment describes.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

# ---- protobuf, by hand -------------------------------------------------------


def varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3) + varint(value)


def field_bytes(number, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(number << 3 | 2) + varint(len(data)) + data


def field_fixed64(number, value):
    return varint(number << 3 | 1) + struct.pack("<Q", value)


def command(seq, number, body):
    """A Command (or LookupCommand): version 1, seq, and one oneof member."""
    return field_varint(1, 1) + field_varint(2, seq) + field_bytes(number, body)


def identify(client_id="worker-1", hostname="host-a", user_agent="nsq-worker/0.1.0",
             heartbeat=0, timeout=0):
    body = field_bytes(1, client_id) + field_bytes(2, hostname) + field_bytes(3, user_agent)
    if heartbeat:
        body += field_varint(4, heartbeat)
    if timeout:
        body += field_varint(5, timeout)
    return command(1, 10, body)


def sub(topic, channel, seq=2):
    return command(seq, 11, field_bytes(1, topic) + field_bytes(2, channel))


def rdy(count, seq=3):
    return command(seq, 12, field_varint(1, count) if count else b"")


def fin(ids, seq=4):
    return command(seq, 13, b"".join(field_fixed64(1, i) for i in ids))


def pub(topic, bodies, defer=0, seq=5):
    body = field_bytes(1, topic) + b"".join(field_bytes(2, b) for b in bodies)
    if defer:
        body += field_varint(3, defer)
    return command(seq, 16, body)


def cls(disconnect=False, seq=6):
    return command(seq, 17, field_varint(1, 1) if disconnect else b"")


def heartbeat(seq=7):
    return command(seq, 18, b"")


# ---- fuzz_broker_commands script ---------------------------------------------


def b_frame(client, frame):
    return bytes([client << 4 | 0]) + struct.pack("<H", len(frame)) + frame


def b_settle(client, kind, index=0, delay=0):
    return bytes([client << 4 | 9, kind, index]) + struct.pack("<H", delay)


def b_tick(ms):
    return bytes([11]) + struct.pack("<H", ms // 10)


def b_gone(client):
    return bytes([client << 4 | 12, 0])


def b_multiframe(client):
    return bytes([client << 4 | 12, 1])


# Kinds in the order of s_kinds in fuzz_broker_commands.c.
HTTP_KINDS = ["pub", "topic/create", "topic/delete", "topic/empty", "topic/pause",
              "topic/unpause", "channel/create", "channel/delete", "channel/empty",
              "channel/pause", "channel/unpause"]


def b_http(kind, topic, channel="", defer=0, bodies=(b"x",)):
    out = bytes([13, HTTP_KINDS.index(kind), len(topic)]) + topic.encode() + \
        bytes([len(channel)]) + channel.encode() + struct.pack("<H", defer)
    if kind == "pub":
        out += bytes([len(bodies) - 1]) + b"".join(bytes([len(b)]) + b for b in bodies)
    return out


def b_stats(topic="", channel=""):
    return bytes([14, len(topic)]) + topic.encode() + bytes([len(channel)]) + channel.encode()


def b_restart():
    return bytes([15])


def consumer(client, topic="orders", channel="billing", count=5):
    return (b_frame(client, identify(client_id="c%d" % client)) +
            b_frame(client, sub(topic, channel)) + b_frame(client, rdy(count)))


def broker_seeds():
    mem4 = bytes([4])
    yield "deliver-fin", mem4 + consumer(0) + b_frame(1, pub("orders", [b"hello"])) + \
        b_settle(0, 0) + b_stats()
    yield "mpub-two-consumers-timeout", mem4 + consumer(0) + consumer(1) + \
        b_frame(2, pub("orders", [b"a", b"bb", b"ccc", b"dddd"])) + b_tick(61000) + \
        b_settle(1, 1, 0, 500) + b_tick(1000) + b_settle(0, 0)
    yield "fan-out-two-channels", mem4 + consumer(0, channel="one") + \
        consumer(1, channel="two") + b_frame(2, pub("orders", [b"x", b"y"])) + \
        b_settle(0, 0) + b_settle(1, 2) + b_stats("orders", "two")
    yield "ephemeral-disconnect", mem4 + consumer(0, "t#ephemeral", "c#ephemeral") + \
        b_frame(1, pub("t#ephemeral", [b"gone"])) + b_frame(0, cls(disconnect=True)) + b_stats()
    yield "deferred-publish", mem4 + b_frame(1, pub("later", [b"soon"], defer=500)) + \
        consumer(0, "later", "c") + b_tick(600) + b_settle(0, 2) + b_settle(0, 0)
    yield "requeue-touch", mem4 + consumer(0, count=1) + \
        b_frame(1, pub("orders", [b"1", b"2"])) + b_settle(0, 2) + b_settle(0, 1, 0, 100) + \
        b_tick(200) + b_settle(0, 0)
    yield "protocol-misuse", mem4 + b_frame(0, sub("orders", "billing")) + \
        b_frame(1, identify()) + b_frame(1, identify()) + b_frame(1, rdy(1)) + \
        b_frame(1, sub("bad topic", "c")) + b_frame(1, sub("t", "bad!channel")) + \
        b_frame(1, rdy(1000)) + b_frame(2, pub("t", [b""])) + b_frame(2, pub("t", [b"x" * 65])) + \
        b_frame(2, pub("t", [])) + b_frame(2, pub("t", [b"x"], defer=4000000))
    yield "close-wait", mem4 + consumer(0, count=2) + b_frame(1, pub("orders", [b"p", b"q"])) + \
        b_frame(0, cls()) + b_frame(0, rdy(3)) + b_settle(0, 0) + b_settle(0, 0)
    yield "gone-client", mem4 + consumer(0) + b_frame(1, pub("orders", [b"z"])) + b_gone(0) + \
        b_tick(100) + consumer(1) + b_settle(1, 0)
    yield "heartbeats-liveness", mem4 + b_frame(0, identify(heartbeat=1000, timeout=500)) + \
        b_frame(0, sub("hb", "c")) + b_frame(0, heartbeat()) + b_tick(1000) + b_tick(3000) + \
        b_frame(1, identify(heartbeat=50)) + b_frame(1, identify(timeout=99999999))
    yield "garbage", mem4 + b_frame(0, b"\xff\xff\xff\xff\x0f\x12") + b_multiframe(1) + \
        b_frame(2, field_varint(1, 1) + field_varint(2, 9) + field_bytes(99, b"?"))
    yield "memory-full", bytes([0]) + consumer(0) + b_frame(1, pub("full", [b"no room"])) + \
        b_frame(1, pub("orders", [b"a"] * 3))
    yield "idle-consumer-tick", bytes([7]) + b_frame(0, identify()) + b_frame(0, sub("o", "c")) + \
        b_frame(1, pub("o", [b"m"] * 8)) + b_frame(0, rdy(8)) + b_tick(655350)
    # With a data path (config bit 3): spill to disk, restart with messages
    # queued, in flight and deferred, consume after the restart.
    disk1 = bytes([8 | 1])
    yield "disk-spill-restart", disk1 + consumer(0, count=2) + \
        b_frame(1, pub("orders", [b"m%d" % i for i in range(6)])) + \
        b_frame(1, pub("orders", [b"later"], defer=5000)) + b_settle(0, 1, 0, 1000) + \
        b_restart() + consumer(1, count=10) + b_settle(1, 0) + b_tick(6000) + b_settle(1, 0) + \
        b_stats()
    yield "disk-topic-holds", disk1 + b_frame(1, pub("held", [b"a", b"b", b"c"])) + b_restart() + \
        consumer(0, "held", "first") + b_settle(0, 0) + b_restart() + b_frame(0, rdy(0))
    yield "http-admin", mem4 + consumer(0, count=3) + b_http("pub", "orders", bodies=(b"1", b"2")) + \
        b_http("channel/pause", "orders", "billing") + b_http("pub", "orders", defer=100) + \
        b_http("channel/unpause", "orders", "billing") + b_http("channel/empty", "orders", "billing") + \
        b_http("topic/pause", "orders") + b_http("pub", "orders") + b_http("topic/unpause", "orders") + \
        b_http("channel/create", "orders", "other") + b_http("channel/delete", "orders", "billing") + \
        b_settle(0, 0) + b_http("topic/empty", "orders") + b_http("topic/create", "new") + \
        b_http("topic/delete", "orders") + b_stats()
    yield "disk-http-delete-in-flight", disk1 + consumer(0, count=4) + consumer(1, count=4) + \
        b_http("pub", "orders", bodies=(b"a", b"b", b"c")) + \
        b_http("channel/delete", "orders", "billing") + b_settle(0, 0) + b_restart() + \
        consumer(2, count=4) + b_http("pub", "orders") + b_http("topic/delete", "orders") + \
        b_settle(2, 0) + b_restart()
    yield "disk-ephemeral-and-durable", bytes([8]) + consumer(0, "t", "c#ephemeral") + \
        consumer(1, "t", "d") + b_frame(2, pub("t", [b"x", b"y"])) + b_restart() + \
        consumer(2, "t", "d") + b_settle(2, 0) + b_settle(2, 0)


# ---- fuzz_lookupd_commands script --------------------------------------------


def lookup_identify(address="10.0.0.1", hostname="broker-a", http=4151, zmq=4152, tcp=0,
                    version="0.1.0"):
    body = field_bytes(1, address) + field_bytes(2, hostname) + field_varint(3, http) + \
        field_varint(4, zmq) + (field_varint(5, tcp) if tcp else b"") + field_bytes(6, version)
    return command(1, 10, body)


def lookup_reg(topic, channel="", unregister=False, seq=2):
    body = field_bytes(1, topic) + (field_bytes(2, channel) if channel else b"")
    return command(seq, 12 if unregister else 11, body)


def lookup_simple(number, seq=3):
    return command(seq, number, b"")


def lookup_channels(topic, seq=4):
    return command(seq, 15, field_bytes(1, topic))


def l_frame(broker, frame):
    return bytes([broker << 4 | 0]) + struct.pack("<H", len(frame)) + frame


def l_string(text):
    data = text.encode() if isinstance(text, str) else text
    return bytes([len(data)]) + data


def l_http(kind, topic, channel="", node=""):
    return bytes([10, kind]) + l_string(topic) + l_string(channel) + l_string(node)


def l_tick(ms):
    return bytes([11]) + struct.pack("<H", ms // 100)


def l_query(topic):
    return bytes([12]) + l_string(topic)


def lookupd_seeds():
    yield "register-query", l_frame(0, lookup_identify()) + \
        l_frame(0, lookup_reg("orders", "billing")) + l_frame(0, lookup_channels("orders")) + \
        l_query("orders")
    yield "two-brokers-unregister", l_frame(0, lookup_identify()) + \
        l_frame(1, lookup_identify("10.0.0.2", "broker-b")) + l_frame(0, lookup_reg("t", "c")) + \
        l_frame(1, lookup_reg("t")) + l_frame(0, lookup_reg("t", "c", unregister=True)) + \
        l_frame(1, lookup_reg("t", unregister=True)) + l_query("t")
    yield "goodbye-heartbeat", l_frame(0, lookup_identify()) + l_frame(0, lookup_simple(13)) + \
        l_frame(0, lookup_reg("x#ephemeral", "y#ephemeral")) + l_frame(0, lookup_simple(14)) + \
        l_frame(0, lookup_simple(13)) + l_query("x#ephemeral")
    yield "http-writes-tombstone", l_frame(0, lookup_identify()) + l_frame(0, lookup_reg("t")) + \
        l_http(0, "made") + l_http(1, "made", "chan") + l_http(4, "t", node="10.0.0.1:4151") + \
        l_query("t") + l_tick(5000) + l_http(3, "made", "chan") + l_http(2, "made") + l_query("made")
    yield "expiry", l_frame(0, lookup_identify()) + l_frame(0, lookup_reg("t", "c")) + \
        l_tick(31000) + l_frame(0, lookup_simple(13)) + l_query("t")
    yield "refusals", l_frame(0, lookup_simple(13)) + l_frame(0, lookup_identify(address="")) + \
        l_frame(0, lookup_reg("bad topic")) + l_frame(0, lookup_channels("bad topic")) + \
        l_frame(1, b"garbage\xff\xff") + bytes([13]) + l_frame(2, command(1, 99, b""))
    many = b"".join(l_http(1, "orders", "c%03d" % i) + l_http(0, "t%03d" % i)
                    for i in range(199, -1, -1))
    yield "many-topics-sorted", many + l_query("orders")
    yield "identify-again", l_frame(0, lookup_identify()) + l_frame(0, lookup_reg("t")) + \
        l_frame(0, lookup_identify(hostname="renamed", tcp=4150)) + l_query("t")


# ---- fuzz_diskqueue files ----------------------------------------------------


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def record(data):
    length = struct.pack("<I", len(data))
    return length + struct.pack("<I", crc32c(data, crc32c(length))) + data


def broker_record(body, attempts=1, defer_until=0, msg_id=0x0123456789ABCDEF,
                  timestamp=1700000000000000000):
    header = struct.pack("<QqIq", msg_id, timestamp, attempts, defer_until)
    return record(header + body)


def meta(depth, read_file, read_pos, write_file, write_pos):
    return ("nsqdq 1\n%d\n%d,%d\n%d,%d\n" % (depth, read_file, read_pos, write_file,
                                             write_pos)).encode()


def disk(flags, meta_bytes, segments):
    out = bytes([flags]) + struct.pack("<H", len(meta_bytes)) + meta_bytes
    for number, data in segments:
        out += bytes([number]) + struct.pack("<H", len(data)) + data
    return out


def disk_seeds():
    three = record(b"one") + record(b"two") + record(b"three")
    yield "clean", disk(0, meta(3, 0, 0, 0, len(three)), [(0, three)])
    yield "half-read", disk(0, meta(2, 0, 11, 0, len(three)), [(0, three)])
    yield "two-segments", disk(4, meta(4, 0, 0, 1, len(three)), [(0, three + record(b"")),
                                                              (1, three)])
    yield "no-metadata", disk(1, b"", [(0, three), (1, record(b"four"))])
    yield "torn-tail", disk(0, meta(3, 0, 0, 0, len(three) + 20), [(0, three + b"\x09\x00\x00")])
    yield "metadata-behind", disk(0, meta(1, 0, 0, 0, 11), [(0, three)])
    yield "flipped-byte", disk(0, meta(3, 0, 0, 0, len(three)),
                               [(0, three[:9] + b"X" + three[10:])])
    yield "bad-length", disk(0, meta(2, 0, 0, 0, 30), [(0, b"\xff\xff\x00\x00" + b"\x00" * 26)])
    yield "damaged-metadata", disk(0, b"nsqdq 7\n-1\nx\n", [(0, three)])
    yield "gap", disk(0, meta(2, 0, 0, 2, 11), [(0, record(b"one")), (2, record(b"two"))])
    messages = broker_record(b"first") + broker_record(b"deferred", 2, 1893456000000) + \
        broker_record(b"x" * 40, 3)
    yield "broker-records", disk(2, meta(3, 0, 0, 0, len(messages)), [(0, messages)])
    yield "broker-short-record", disk(3, b"", [(0, record(b"short") + broker_record(b"ok"))])
    yield "small-segments", disk(0x02, meta(2, 3, 0, 4, 0),
                                 [(3, broker_record(b"a") + broker_record(b"b")), (4, b"")])


# ---- fuzz_broker_state files -------------------------------------------------


def state_seeds():
    header = "nsq-broker-state 1\n"
    yield "empty", header
    yield "topics-channels", header + "topic orders 0\nchannel orders billing 0\n" \
        "channel orders shipping 1\ntopic audit 1\n"
    yield "ephemeral-lines", header + "topic t#ephemeral 0\nchannel t#ephemeral c 0\n" \
        "topic u 0\nchannel u c#ephemeral 0\n"
    yield "bad-lines", header + "topic bad/name 0\nchannel nosuch c 0\ntopic\nchannel a\n" \
        "topic ok 7\nnonsense\n"
    yield "not-a-state-file", "nsq-broker-state 2\ntopic t 0\n"
    yield "long-line", header + "topic " + "a" * 300 + " 0\ntopic b 0\n"
    yield "no-newline", header + "topic last 1"


# ---- fuzz_parsers inputs -----------------------------------------------------


def parser_seeds():
    def mpub(binary, max_msg, max_body, body):
        return bytes([0, binary, max_msg]) + struct.pack("<H", max_body) + body

    def binary_body(messages, count=None):
        out = struct.pack(">I", len(messages) if count is None else count)
        for m in messages:
            out += struct.pack(">I", len(m)) + m
        return out

    yield "mpub-text", mpub(0, 16, 1024, b"one\ntwo\n\nthree\n")
    yield "mpub-text-too-big", mpub(0, 4, 1024, b"ok\ntoolong\n")
    yield "mpub-binary", mpub(1, 16, 1024, binary_body([b"x", b"yy", b"zzz"]))
    yield "mpub-binary-count-mismatch", mpub(1, 16, 1024, binary_body([b"x"], count=5))
    yield "mpub-binary-trailing", mpub(1, 16, 1024, binary_body([b"x"]) + b"!")
    names = ["orders", "a.b_c-9", "x#ephemeral", "#ephemeral", "a" * 64, "a" * 65, "bad name",
             "caf\xc3\xa9"]
    for index, name in enumerate(names):
        yield "name-%d" % index, b"\x01" + name.encode("latin-1")
    for text in ["250ms", "1h30m", "1.5s", "0", "9223372036854775807", "9223372036854775808",
                 ".5s", "1s1s", "-1s", "1.0001s"]:
        yield "duration-" + text.replace(".", "_"), b"\x02" + text.encode()
    for text in ["0123456789abcdef", "0123456789ABCDEF", "0123", "012345678zabcdef"]:
        yield "id-" + text, b"\x03" + text.encode()


def write(target, seeds):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    for old in os.listdir(directory):
        if old.startswith("seed-"):
            os.unlink(os.path.join(directory, old))
    count = 0
    for name, data in seeds:
        if isinstance(data, str):
            data = data.encode()
        with open(os.path.join(directory, "seed-" + name), "wb") as out:
            out.write(data)
        count += 1
    print("%s: %d seeds" % (target, count))


def main():
    write("fuzz_broker_commands", broker_seeds())
    write("fuzz_lookupd_commands", lookupd_seeds())
    write("fuzz_diskqueue", disk_seeds())
    write("fuzz_broker_state", state_seeds())
    write("fuzz_parsers", parser_seeds())
    return 0


if __name__ == "__main__":
    sys.exit(main())
