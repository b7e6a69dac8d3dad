/*  nsq_utf8 - strict UTF-8 for text that came from a peer
    SPDX-License-Identifier: MIT

    Client ids, hostnames and user agents arrive as bytes; they end up in
    JSON (/stats, /nodes, /lookup) and in log lines, which must be valid
    UTF-8 whatever a peer sent. The decoder is strict (RFC 3629): overlong
    forms, surrogates (U+D800..U+DFFF), code points above U+10FFFF, stray
    continuation bytes and truncated sequences are all invalid.

    API: nsq_utf8_decode (one sequence), nsq_utf8_is_valid (a whole text),
    nsq_utf8_sanitize (a copy that is always valid, without controls).
*/
#ifndef NSQ_UTF8_H
#define NSQ_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// U+FFFD, what an invalid sequence becomes.
#define NSQ_UTF8_REPLACEMENT      "\xEF\xBF\xBD"
#define NSQ_UTF8_REPLACEMENT_SIZE 3

// Decodes the sequence that starts at data (size bytes readable, size >= 1).
// Returns its length (1..4) and stores the code point in *code_point, or 0
// if the bytes there are not a valid sequence: the caller then treats one
// byte as invalid and goes on with the next.
size_t nsq_utf8_decode(const void *data, size_t size, uint32_t *code_point);

// True if all size bytes at data are valid UTF-8 (NUL included, as U+0000).
bool nsq_utf8_is_valid(const void *data, size_t size);

// Copies size bytes at data into out (out_size >= 1 bytes, always
// NUL-terminated) as valid UTF-8 for display: each invalid sequence becomes
// U+FFFD, each control character (U+0000..U+001F, U+007F) becomes '?'.
// Stops at the last whole character that fits, never inside one. Returns
// the number of bytes written, the NUL excluded.
size_t nsq_utf8_sanitize(char *out, size_t out_size, const void *data, size_t size);

// Self-test; returns 0 on success.
int nsq_utf8_test(void);

#endif
