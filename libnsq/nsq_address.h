/*  nsq_address - "host:port" listen addresses, as every daemon's flags give them
    SPDX-License-Identifier: MIT

    IPv4: an empty host or "*" means every interface, a dotted quad is
    taken as is, anything else ("localhost", a hostname) is resolved to an
    IPv4 address. IPv6 is written in brackets, as in URLs: "[::1]:4151",
    "[::]:4151" (every interface; the HTTP servers listen dual stack there).
    An IPv6 address without brackets is refused: its last colon is not a
    port separator.

    API: nsq_address_parse, nsq_address_port, nsq_address_is_ipv6_any,
    nsq_address_host_is_valid, nsq_address_ipv6_loopback_usable,
    nsq_address_hostname.
*/
#ifndef NSQ_ADDRESS_H
#define NSQ_ADDRESS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

// Parses "host:port" or "[ipv6]:port" (port 0..65535) into *address, whose
// ss_family is then AF_INET or AF_INET6. Returns 0, or -1 if the text is
// malformed or the host does not resolve.
int nsq_address_parse(const char *text, struct sockaddr_storage *address);

// The port of an address nsq_address_parse filled, in host byte order.
uint16_t nsq_address_port(const struct sockaddr_storage *address);

// True if address is the IPv6 wildcard "[::]".
bool nsq_address_is_ipv6_any(const struct sockaddr_storage *address);

// True if size bytes at data are a host a peer may announce (lookupd's
// broadcast_address and hostname): a DNS name (labels of letters, digits,
// '-' and '_', 1..63 bytes each, 253 in all, an optional final dot), an
// IPv4 address, or an IPv6 address, bare or in brackets. Every byte counts
// (a NUL makes it invalid).
bool nsq_address_host_is_valid(const void *data, size_t size);

// True if this host can bind the IPv6 loopback address ::1. Containers may
// have no IPv6 at all; tests use this to skip their IPv6 cases, and say so.
bool nsq_address_ipv6_loopback_usable(void);

// Writes this host's name into name (size bytes, NUL-terminated, cut if
// longer), or "localhost" if it has none: what a daemon announces when no
// --broadcast-address says otherwise, as nsqd does.
void nsq_address_hostname(char *name, size_t size);

// Self-test; returns 0 on success.
int nsq_address_test(void);

#endif
