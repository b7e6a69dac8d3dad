/*  worker_http - the worker's probes and metrics over HTTP (libmicrohttpd)
    SPDX-License-Identifier: MIT

    GET /healthz: 200 while the process runs. GET /readyz: 200 when the
    worker is not draining and has reached its brokers or lookupds (a
    broker connected, or a lookupd answered, also with "topic not found":
    a fresh install whose topic nobody has published to yet is ready),
    else 503. No Service routes to workers (they pull), so readiness only
    gates rollouts: a new pod replaces an old one once it is configured
    well enough to reach the cluster. GET /metrics: Prometheus text.
    /ping answers like /healthz.

    The server runs on libmicrohttpd's own thread and only reads
    worker_metrics (atomics the loop thread publishes), so a slow scraper
    never stalls message handling.

    worker_http_start applies the worker's configuration: an address given
    by flag or environment must be bound (worker_new fails otherwise); the
    default one (http_address_optional) may be taken, e.g. by another
    worker on the same host, and the worker then runs without probes after
    a warning.

    API in call order: worker_http_start or worker_http_new,
    worker_http_port, worker_http_destroy.
*/
#ifndef WORKER_HTTP_H
#define WORKER_HTTP_H

#include "nsq_http_server.h"
#include "worker.h"
#include "worker_metrics.h"

#include <stddef.h>
#include <stdint.h>

typedef struct _worker_http_t worker_http_t;

// Listens on address ("host:port" or "[ipv6]:port", port 0 = any free port;
// "" host = all; NULL or "" = no plain HTTP) and on https_address with tls
// (NULL or "" = no HTTPS; nsq_http_server.h), and serves metrics
// (borrowed: must outlive the server).
// NULL if the address is malformed or cannot be bound, with the reason in
// error (size bytes); nothing is logged, so the caller decides how loud
// that is.
worker_http_t *worker_http_new(const char *address, const char *https_address,
                               const nsq_http_tls_t *tls, worker_metrics_t *metrics, char *error,
                               size_t size);

// Starts the probes config asks for (http_address, https_address with
// its TLS; neither: none), serving metrics (borrowed: must outlive the
// server), into *http (NULL if none). Returns 0, also when the address
// cannot be bound but config->http_address_optional (a warning is logged
// and *http stays NULL), or -1 (logged) if an address asked for cannot be
// bound.
int worker_http_start(const worker_config_t *config, worker_metrics_t *metrics,
                      worker_http_t **http);

// Stops the server and nulls *self_p; accepts NULL.
void worker_http_destroy(worker_http_t **self_p);

// The port it listens on (the real one when 0 was asked for).
uint16_t worker_http_port(worker_http_t *self);

// Self-test; returns 0 on success.
int worker_http_test(void);

#endif
