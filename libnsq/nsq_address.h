/*  nsq_address - "host:port" listen addresses, as every daemon's flags give them
    SPDX-License-Identifier: MIT

    Listeners are IPv4: an empty host or "*" means every interface, a dotted
    quad is taken as is, anything else ("localhost", a hostname) is resolved.
*/
#ifndef NSQ_ADDRESS_H
#define NSQ_ADDRESS_H

#include <netinet/in.h>

// Parses "host:port" (port 0..65535) into *address. Returns 0, or -1 if the
// text is malformed or the host does not resolve to an IPv4 address.
int nsq_address_parse(const char *text, struct sockaddr_in *address);

// Self-test; returns 0 on success.
int nsq_address_test(void);

#endif
