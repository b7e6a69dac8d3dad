"""process_handler.py - --process handlers for it_process and it_pipeline.

Speaks protocol version 1 by hand (no helper), so that the tests check the
worker, not the helper. Usage: python3 process_handler.py MODE LOG

Each message is appended to LOG as one line: "<NSQ_PROCESS_INDEX> <attempts>
<id> <wall clock ms> <body, or its size if it is not short text>", then
answered by MODE:
  echo   by body: "fin*" fin; "req:MS" req with delay MS on attempt 1;
         "touch:MS" touch every 200 ms for MS, then fin; "crash" exit 3 on
         attempt 1 (with others in flight); "hang" never answer on attempt 1
         (and ignore SIGTERM); "garbage" write a line that is not the
         protocol on attempt 1; "empty" fin with output of 0 bytes; "out:X"
         fin with output X; anything else fin with the body as output.
  batch  hold messages until 25 arrived, then fin them all (the window test).
  slow   sleep 50 ms per message, then fin.
  gated  wait until the file LOG.go exists, then answer as echo.
"""

import json
import os
import signal
import sys
import time

mode, log_path = sys.argv[1], sys.argv[2]
index = os.environ.get("NSQ_PROCESS_INDEX", "?")
stdin = sys.stdin.buffer
stdout = sys.stdout.buffer


def note(header, body):
    shown = body.decode() if len(body) < 64 and body.isascii() and b"\n" not in body else len(body)
    with open(log_path, "a") as log:
        log.write("%s %d %s %d %s\n" % (index, header["attempts"], header["id"],
                                        int(time.time() * 1000), shown))


def reply(ident, op, output=b"", **fields):
    head = {"id": ident, "op": op, **fields}
    if output or op == "fin" and "size" in fields:
        head["size"] = len(output)
    stdout.write(json.dumps(head).encode() + b"\n" + output)
    stdout.flush()


def answer(header, body):
    ident, first = header["id"], header["attempts"] == 1
    if body.startswith(b"fin"):
        reply(ident, "fin")
    elif body.startswith(b"req:") and first:
        reply(ident, "req", delay_ms=int(body[4:]))
    elif body.startswith(b"touch:"):
        end = time.monotonic() + int(body[6:]) / 1000
        while time.monotonic() < end:
            time.sleep(0.2)
            reply(ident, "touch")
        reply(ident, "fin")
    elif body == b"crash" and first:
        os._exit(3)
    elif body == b"hang" and first:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:
            time.sleep(1)
    elif body == b"garbage" and first:
        stdout.write(b"this is not json\n")
        stdout.flush()
    elif body == b"empty":
        reply(ident, "fin", size=0)
    elif body.startswith(b"out:"):
        reply(ident, "fin", body[4:])
    elif body in (b"req:0", b"crash", b"hang", b"garbage") or body.startswith(b"req:"):
        reply(ident, "fin")
    else:
        reply(ident, "fin", body)


held = []
while True:
    line = stdin.readline()
    if not line:
        break  # EOF: the worker is shutting down
    header = json.loads(line)
    body = stdin.read(header["size"])
    note(header, body)
    if mode == "batch":
        held.append(header["id"])
        if len(held) == 25:
            for ident in held:
                reply(ident, "fin")
            held = []
    elif mode == "gated":
        while not os.path.exists(log_path + ".go"):
            time.sleep(0.02)
        answer(header, body)
    elif mode == "slow":
        time.sleep(0.05)
        reply(header["id"], "fin")
    else:
        answer(header, body)
