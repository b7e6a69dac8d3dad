/*  nsq_endpoint - the broker addresses clients dial, and the DEALER that dials one
    SPDX-License-Identifier: MIT

    Users write a broker's ZeroMQ address as "host:port", "tcp://host:port"
    or, for IPv6, "[address]:port" (as in URLs); libzmq wants
    "tcp://host:port" and, for an IPv6 literal, the socket's IPv6 option
    set before it connects. The consumer and the producer both go through
    here, so they accept and refuse the same addresses.

    Servers (daemons, test brokers) bind with nsq_endpoint_bind, so that
    port 0 gets a random free port from the kernel.

    API: nsq_endpoint_parse, nsq_endpoint_is_ipv6, nsq_endpoint_dealer,
    nsq_endpoint_bind.
*/
#ifndef NSQ_ENDPOINT_H
#define NSQ_ENDPOINT_H

#include <czmq.h>
#include "nsq_curve.h"
#include <stdbool.h>
#include <stddef.h>

// Longest endpoint accepted, NUL included.
#define NSQ_ENDPOINT_MAX 256

// Turns address ("host:port", "tcp://host:port", "[ipv6]:port") into
// "tcp://host:port" in endpoint (size bytes). The host is a DNS name or an
// IPv4 address (nsq_address_host_is_valid), or an IPv6 address in
// brackets; the port is 1..65535. Returns 0, or -1 with errno EINVAL if
// the address is malformed or the endpoint does not fit.
int nsq_endpoint_parse(const char *address, char *endpoint, size_t size);

// True if endpoint (as nsq_endpoint_parse wrote it) names an IPv6 address.
bool nsq_endpoint_is_ipv6(const char *endpoint);

// A DEALER connecting to endpoint (as nsq_endpoint_parse wrote it), with
// hwm as both high-water marks and linger_ms as its linger, set before it
// connects, and CURVE keys when curve is enabled (NULL = plain). Caller
// owns the result; NULL (errno) if it cannot be created.
// The connection itself is made, and retried, by ZeroMQ in the background.
zsock_t *nsq_endpoint_dealer(const char *endpoint, int hwm, int linger_ms,
                             const nsq_curve_client_t *curve);

// Binds sock to "tcp://host:port", host being host_length bytes ("[::1]"
// for IPv6, with the socket's IPv6 option set). Port "0" lets the kernel
// pick a free port at random: czmq's "*" would take the lowest free one
// from 49152 up, the port an earlier server on this machine most likely
// had, where that server's clients may still be reconnecting. Returns the
// port bound, or -1 (errno).
int nsq_endpoint_bind(zsock_t *sock, const char *host, size_t host_length, const char *port);

// Self-test; returns 0 on success.
int nsq_endpoint_test(void);

#endif
