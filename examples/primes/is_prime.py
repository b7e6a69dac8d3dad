"""is_prime.py - the checking stage of the primes example (examples/primes/README.md).

An nsq-worker --process handler: each message is an integer; a prime is
answered with itself as the output (nsq-worker --publish-topic sends it on
to the next stage), anything else with no output (nothing is published).
Not a number: a line on stderr and the message is finished (retrying
would not help).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "handlers"))
import nsq_process  # noqa: E402


def is_prime(n):
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    divisor = 3
    while divisor * divisor <= n:
        if n % divisor == 0:
            return False
        divisor += 2
    return True


def handle(message):
    try:
        n = int(message.body)
    except ValueError:
        print("not an integer: %r" % message.body[:40], file=sys.stderr)
        return None
    return message.body if is_prime(n) else None


nsq_process.run(handle)
