/*  bench_http - nsq-bench's HTTP modes: N x POST /pub (http-pub) or /mpub
    with --batch messages each (http-mpub) over --connections keep-alive
    connections
    SPDX-License-Identifier: MIT

    API: bench_http_run.
*/
#ifndef BENCH_HTTP_H
#define BENCH_HTTP_H

#include "bench.h"

#include <stdbool.h>

// Publishes config->count messages to config->topic over HTTP: POST /pub,
// or /mpub?binary=true (mpub) in batches of config->batch, with the
// Authorization header when config->auth_secret is set; prints the result
// line. Returns 0 if every message was answered 200, else 1.
int bench_http_run(const bench_config_t *config, bool mpub);

#endif
