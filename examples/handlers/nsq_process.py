"""nsq_process - write an nsq-worker --process handler in Python 3, no dependencies.

    import nsq_process

    def handle(message):
        # message.body (bytes), .id, .attempts, .timestamp (ns), .topic, .channel
        if not message.body:
            raise nsq_process.Requeue(delay_ms=5000)   # REQ after 5 s
        return message.body.upper()                    # FIN; the output goes to --publish-topic

    nsq_process.run(handle)

and run it with `nsq-worker ... --process='python3 my_handler.py'`.

handle(message) returns None (FIN, no output), bytes or str (FIN with that
output; str is sent as UTF-8), or raises: Requeue(delay_ms) asks for a REQ
after that delay, any other exception is printed to stderr (the worker logs
each line) and means REQ with the worker's own delay (--requeue-delay times
the attempt, and a dead letter after --max-attempts). message.touch() tells
the worker the message is still being worked on: call it from a long
handler, at least once per --max-msg-timeout.

This file speaks protocol version 1 (README, "Handlers in any language"):
one JSON header line plus exactly "size" bytes of body each way. Messages
are handled one at a time, in order; replies are written in batches (as
soon as no more input is waiting, or 10 ms after the last write), so a
window of messages keeps the process busy. At the end of its input (the
worker is shutting down) run() answers what it read and returns. Anything
printed goes to stderr: stdout belongs to the protocol.
"""

import json
import os
import sys
import time
import traceback

PROTOCOL = 1
_FLUSH_AFTER = 0.01  # seconds: replies wait at most this long while more input is handled


class Requeue(Exception):
    """Raise from handle() to have the message requeued after delay_ms (None: the worker's)."""

    def __init__(self, delay_ms=None):
        super().__init__("requeue" if delay_ms is None else "requeue after %d ms" % delay_ms)
        self.delay_ms = delay_ms


class Message:
    """One message: id, attempts, timestamp (ns), topic, channel, body (bytes)."""

    __slots__ = ("id", "attempts", "timestamp", "topic", "channel", "body", "_link")

    def __init__(self, header, body, link):
        self.id = header["id"]
        self.attempts = header["attempts"]
        self.timestamp = header["timestamp"]
        self.topic = header["topic"]
        self.channel = header["channel"]
        self.body = body
        self._link = link

    def touch(self):
        """Tells the worker this message is still being worked on (resets its timeout)."""
        self._link.send(b'{"id":"%s","op":"touch"}\n' % self.id.encode())
        self._link.flush()


class _Link:
    """Replies waiting to be written to stdout, written in one go."""

    def __init__(self, fd):
        self.fd = fd
        self.parts = []
        self.last_flush = time.monotonic()

    def send(self, data):
        self.parts.append(data)

    def flush(self):
        data = b"".join(self.parts)
        self.parts.clear()
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        self.last_flush = time.monotonic()


def _reply(message, handle):
    """The reply to one message: what handle says, as a header line (and output)."""
    ident = message.id.encode()
    try:
        output = handle(message)
    except Requeue as requeue:
        if requeue.delay_ms is None:
            return b'{"id":"%s","op":"req"}\n' % ident
        return b'{"id":"%s","op":"req","delay_ms":%d}\n' % (ident, max(0, int(requeue.delay_ms)))
    except Exception:  # the handler failed: log it, the worker requeues the message
        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        return b'{"id":"%s","op":"req"}\n' % ident
    if output is None:
        return b'{"id":"%s","op":"fin"}\n' % ident
    if isinstance(output, str):
        output = output.encode("utf-8")
    output = bytes(output)
    if not output:
        return b'{"id":"%s","op":"fin"}\n' % ident
    return b'{"id":"%s","op":"fin","size":%d}\n%s' % (ident, len(output), output)


def run(handle, stdin_fd=0, stdout_fd=1):
    """Handles every message on stdin_fd until its end; replies go to stdout_fd."""
    if stdout_fd == 1:
        sys.stdout = sys.stderr  # a print() must not break the protocol
    link = _Link(stdout_fd)
    buffer = bytearray()
    start = 0
    chunk = bytearray(1 << 18)  # reused: a fresh bytes object per read costs an mmap and munmap
    chunk_view = memoryview(chunk)
    while True:
        while True:  # every complete message in the buffer
            newline = buffer.find(b"\n", start)
            if newline < 0:
                break
            header = json.loads(buffer[start:newline])
            end = newline + 1 + header["size"]
            if len(buffer) < end:
                break
            message = Message(header, bytes(buffer[newline + 1:end]), link)
            start = end
            link.send(_reply(message, handle))
            if time.monotonic() - link.last_flush >= _FLUSH_AFTER:
                link.flush()
        del buffer[:start]
        start = 0
        if link.parts:
            link.flush()
        got = os.readv(stdin_fd, [chunk])
        if not got:
            return  # EOF: the worker is done with us
        buffer += chunk_view[:got]


if __name__ == "__main__":
    run(lambda message: None)  # a handler that FINs everything: `python3 nsq_process.py`
