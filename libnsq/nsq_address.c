/*  nsq_address - "host:port" listen addresses, as every daemon's flags give them
    SPDX-License-Identifier: MIT
*/
#include "nsq_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int nsq_address_parse(const char *text, struct sockaddr_in *address)
{
    const char *colon = text ? strrchr(text, ':') : NULL;
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || end == colon + 1 || *end || port < 0 || port > 65535)
        return -1;
    char host[256];
    if ((size_t) (colon - text) >= sizeof host)
        return -1;
    snprintf(host, sizeof host, "%.*s", (int) (colon - text), text);
    memset(address, 0, sizeof *address);
    address->sin_family = AF_INET;
    address->sin_port = htons((uint16_t) port);
    if (!host[0] || strcmp(host, "*") == 0) {
        address->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (inet_pton(AF_INET, host, &address->sin_addr) != 1) {
        struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *found = NULL;
        if (getaddrinfo(host, NULL, &hints, &found) != 0 || !found)
            return -1;
        address->sin_addr = ((struct sockaddr_in *) found->ai_addr)->sin_addr;
        freeaddrinfo(found);
    }
    return 0;
}

int nsq_address_test(void)
{
    struct sockaddr_in address;
    if (nsq_address_parse("127.0.0.1:4151", &address) || ntohs(address.sin_port) != 4151
        || address.sin_addr.s_addr != htonl(INADDR_LOOPBACK))
        return -1;
    if (nsq_address_parse(":0", &address) || address.sin_addr.s_addr != htonl(INADDR_ANY))
        return -1;
    if (nsq_address_parse("*:80", &address) || nsq_address_parse("localhost:1", &address)
        || address.sin_addr.s_addr != htonl(INADDR_LOOPBACK))
        return -1;
    const char *bad[] = {
        NULL, "", "4151", "host:", "host:x", "host:65536", "host:-1", "no-such-host.invalid:80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (nsq_address_parse(bad[i], &address) == 0)
            return -1;
    return 0;
}
