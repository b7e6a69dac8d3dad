"""helper_handler.py - a --process handler written with examples/handlers/nsq_process.py.

it_process runs it to use the Python helper for real: the body upper-cased
is the output; "boom" raises on its first attempt (the worker logs the
traceback and requeues), "later" asks for a REQ after 300 ms on its first
attempt, "quiet" finishes without output, "long" touches its message
every 200 ms for 1.5 s.
"""

import os
import sys
import time

sys.path.insert(0, os.path.join(os.environ["NSQ_SOURCE_DIR"], "examples", "handlers"))
import nsq_process  # noqa: E402


def handle(message):
    if message.body == b"boom" and message.attempts == 1:
        raise ValueError("boom on the first attempt")
    if message.body == b"later" and message.attempts == 1:
        raise nsq_process.Requeue(delay_ms=300)
    if message.body == b"quiet":
        return None
    if message.body == b"long":
        for _ in range(8):
            time.sleep(0.2)
            message.touch()
    return message.body.upper()


nsq_process.run(handle)
