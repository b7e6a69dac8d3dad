/*  nsq_json - the little JSON writing our HTTP APIs share
    SPDX-License-Identifier: MIT

    Our JSON is written with fprintf into memory streams (or snprintf into
    buffers); only strings that come from outside (client ids, hostnames,
    versions, names) need escaping, and this is the one place that does it.
    Whatever the input bytes, the output is valid JSON in valid UTF-8: '"'
    and '\' are escaped, control characters become \u00XX, and each byte
    that does not start a valid UTF-8 sequence (nsq_utf8_decode: overlong
    forms, surrogates, stray bytes) becomes U+FFFD. One bad registration or
    IDENTIFY can then never make /stats, /nodes or /lookup unparseable.

    API: nsq_json_write_string, nsq_json_write_string_n, nsq_json_escape.
*/
#ifndef NSQ_JSON_H
#define NSQ_JSON_H

#include <stddef.h>
#include <stdio.h>

// Writes text to out as a JSON string, quotes included. text must not be
// NULL.
void nsq_json_write_string(FILE *out, const char *text);

// The same for size bytes at data (a NUL among them is written as \u0000).
void nsq_json_write_string_n(FILE *out, const void *data, size_t size);

// Writes text escaped as above into out (out_size >= 1 bytes, always
// NUL-terminated), without the quotes, for a snprintf'd document. Stops at
// the last whole character or escape that fits. Returns the bytes written.
size_t nsq_json_escape(char *out, size_t out_size, const char *text);

// Self-test; returns 0 on success.
int nsq_json_test(void);

#endif
