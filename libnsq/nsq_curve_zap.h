/*  nsq_curve_zap - the process's one ZAP handler, shared by every CURVE
    server in it (internal to libnsq: nsq_curve.c is its only user)
    SPDX-License-Identifier: MIT

    libzmq asks ZAP (RFC 27) of one handler per context, bound at
    inproc://zeromq.zap.01, and czmq gives a process one context. So two
    CURVE servers in one process (two brokers, a broker and a lookupd in a
    test) share one handler: each server joins with a ZAP domain of its
    own ("nsq-N", set on its sockets) and its allow-list, and the handler
    answers a request from the list of the request's domain. The first
    server to join starts the handler's thread; the last to leave stops it.

    Locking: the domains and their lists are read by the handler's thread
    and written by the servers' threads (a reload after SIGHUP), under one
    mutex held only for a lookup or a swap. A CURVE request for a domain
    that is not (or no longer) joined is refused: a socket that outlives
    its server admits nobody.

    API in call order: nsq_curve_zap_join, nsq_curve_zap_domain,
    nsq_curve_zap_allow (a reload), nsq_curve_zap_leave; nsq_curve_limit_pass
    (rate-limited refusal lines, for the monitors too).
*/
#ifndef NSQ_CURVE_ZAP_H
#define NSQ_CURVE_ZAP_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Refusals come again with every reconnection of the client (every 100 ms
// by default): one line per kind per NSQ_CURVE_LOG_INTERVAL_MS, with a
// count of those not logged.
#define NSQ_CURVE_LOG_INTERVAL_MS 10000

typedef struct {
    int64_t last_ms;      // when the last line was logged
    unsigned suppressed;  // refusals since, not logged
} nsq_curve_limit_t;

// True if a line may be logged now (then *suppressed gets how many were
// not since the last one); false counts one more suppressed.
bool nsq_curve_limit_pass(nsq_curve_limit_t *self, unsigned *suppressed);

typedef struct _nsq_curve_zap_domain_t nsq_curve_zap_domain_t;

// Joins the handler (starting it if this is the first domain) with an
// allow-list: *allowed_p (public keys in Z85 -> anything; NULL = any client
// with the server's key) is taken and nulled. Caller owns the result; NULL
// with one line in error if the handler cannot start.
nsq_curve_zap_domain_t *nsq_curve_zap_join(zhashx_t **allowed_p, char *error, size_t size);

// The domain's name, for zsock_set_zap_domain. Borrowed; valid until leave.
const char *nsq_curve_zap_domain(const nsq_curve_zap_domain_t *self);

// Replaces the domain's allow-list with *allowed_p (taken and nulled; NULL
// = any client). Safe while the handler answers.
void nsq_curve_zap_allow(nsq_curve_zap_domain_t *self, zhashx_t **allowed_p);

// Leaves (the handler stops with its last domain); later CURVE requests for
// this domain are refused. Nulls *self_p; accepts NULL.
void nsq_curve_zap_leave(nsq_curve_zap_domain_t **self_p);

#endif
