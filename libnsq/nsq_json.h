/*  nsq_json - the little JSON writing our HTTP APIs share
    SPDX-License-Identifier: MIT

    Our JSON is written with fprintf into memory streams; only strings that
    come from outside (client ids, hostnames, names) need escaping.
*/
#ifndef NSQ_JSON_H
#define NSQ_JSON_H

#include <stdio.h>

// Writes text to out as a JSON string, quotes included: '"' and '\' are
// escaped, control characters become \u00XX. text must not be NULL.
void nsq_json_write_string(FILE *out, const char *text);

// Self-test; returns 0 on success.
int nsq_json_test(void);

#endif
