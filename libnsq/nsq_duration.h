/*  nsq_duration - Go-style durations ("250ms", "60s", "1h30m") in milliseconds
    SPDX-License-Identifier: MIT

    Command lines and HTTP parameters write durations as Go does, so NSQ
    users' habits carry over. We keep milliseconds: every timeout in the
    system is coarser than that, and an int64_t of milliseconds never
    overflows in practice.

    API: nsq_duration_parse, nsq_duration_format.
*/
#ifndef NSQ_DURATION_H
#define NSQ_DURATION_H

#include <stddef.h>
#include <stdint.h>

// Longest text nsq_duration_format writes, NUL included.
#define NSQ_DURATION_TEXT_MAX 32

// Parses text into *milliseconds. Accepts one or more <number><unit>
// components with units ms, s, m, h (e.g. "250ms", "1.5s", "1h30m"), a bare
// integer meaning milliseconds ("250"), and "0". Fractions must come to a
// whole number of milliseconds. Returns 0, or -1 with errno EINVAL for NULL,
// empty, negative, unknown units, garbage or a value above INT64_MAX ms;
// *milliseconds is untouched on failure.
int nsq_duration_parse(const char *text, int64_t *milliseconds);

// Writes milliseconds in the largest unit that divides it exactly: 250ms,
// 60000 -> "1m", 90000 -> "90s", 3600000 -> "1h", 0 -> "0s". The result
// parses back to the same value. Truncates to size (NUL-terminated if
// size > 0); NSQ_DURATION_TEXT_MAX always suffices.
void nsq_duration_format(int64_t milliseconds, char *out, size_t size);

// Self-test; returns 0 on success.
int nsq_duration_test(void);

#endif
