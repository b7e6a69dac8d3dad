/*  nsq_address - "host:port" listen addresses, as every daemon's flags give them
    SPDX-License-Identifier: MIT
*/
#include "nsq_address.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_HOST_MAX 253  // longest DNS name, without the final dot

// Parses the decimal port that fills text (0..65535); -1 if it does not.
static long s_port(const char *text)
{
    if (*text < '0' || *text > '9')
        return -1;  // strtol would take signs and spaces
    char *end = NULL;
    long port = strtol(text, &end, 10);
    if (*end || port > 65535)
        return -1;
    return port;
}

// Resolves an IPv6 literal (a scope such as "%lo" allowed) into *address.
static int s_parse_ipv6(const char *host, struct sockaddr_storage *address)
{
    struct addrinfo hints = {.ai_family = AF_INET6, .ai_flags = AI_NUMERICHOST}, *found = NULL;
    if (getaddrinfo(host, NULL, &hints, &found) != 0 || !found)
        return -1;
    memcpy(address, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    return 0;
}

// Fills *address for an IPv4 host: "", "*", a dotted quad, or a name.
static int s_parse_ipv4(const char *host, struct sockaddr_storage *address)
{
    struct sockaddr_in *ipv4 = (struct sockaddr_in *) address;
    ipv4->sin_family = AF_INET;
    if (!host[0] || strcmp(host, "*") == 0) {
        ipv4->sin_addr.s_addr = htonl(INADDR_ANY);
        return 0;
    }
    if (strchr(host, ':'))
        return -1;  // IPv6 needs brackets
    if (inet_pton(AF_INET, host, &ipv4->sin_addr) == 1)
        return 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *found = NULL;
    if (getaddrinfo(host, NULL, &hints, &found) != 0 || !found)
        return -1;
    ipv4->sin_addr = ((struct sockaddr_in *) found->ai_addr)->sin_addr;
    freeaddrinfo(found);
    return 0;
}

int nsq_address_parse(const char *text, struct sockaddr_storage *address)
{
    const char *colon = text ? strrchr(text, ':') : NULL;
    long port = colon ? s_port(colon + 1) : -1;
    if (port < 0)
        return -1;
    char host[256];
    size_t host_size = (size_t) (colon - text);
    bool bracketed = host_size >= 2 && text[0] == '[' && text[host_size - 1] == ']';
    if (bracketed)
        text++, host_size -= 2;
    if (host_size >= sizeof host)
        return -1;
    memcpy(host, text, host_size);
    host[host_size] = '\0';
    memset(address, 0, sizeof *address);
    if (bracketed ? s_parse_ipv6(host, address) : s_parse_ipv4(host, address))
        return -1;
    if (address->ss_family == AF_INET6)
        ((struct sockaddr_in6 *) address)->sin6_port = htons((uint16_t) port);
    else
        ((struct sockaddr_in *) address)->sin_port = htons((uint16_t) port);
    return 0;
}

uint16_t nsq_address_port(const struct sockaddr_storage *address)
{
    if (address->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *) address)->sin6_port);
    return ntohs(((const struct sockaddr_in *) address)->sin_port);
}

bool nsq_address_is_ipv6_any(const struct sockaddr_storage *address)
{
    return address->ss_family == AF_INET6
           && IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *) address)->sin6_addr);
}

// True for a DNS name: dot-separated labels of [A-Za-z0-9_-], 1..63 each.
static bool s_is_dns_name(const char *host, size_t size)
{
    if (size > 0 && host[size - 1] == '.')
        size--;
    if (size == 0 || size > S_HOST_MAX)
        return false;
    size_t label = 0;
    for (size_t index = 0; index < size; index++) {
        char c = host[index];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                   || c == '-' || c == '_') {
            if (++label > 63)
                return false;
        } else
            return false;
    }
    return label > 0;
}

bool nsq_address_host_is_valid(const void *data, size_t size)
{
    const char *host = data;
    if (!host || size == 0 || size > S_HOST_MAX + 1 || memchr(host, '\0', size))
        return false;
    if (s_is_dns_name(host, size))
        return true;
    char text[S_HOST_MAX + 2];
    bool bracketed = size >= 2 && host[0] == '[' && host[size - 1] == ']';
    size_t inner = bracketed ? size - 2 : size;
    memcpy(text, host + bracketed, inner);
    text[inner] = '\0';
    struct in6_addr ipv6;
    return inet_pton(AF_INET6, text, &ipv6) == 1;
}

bool nsq_address_ipv6_loopback_usable(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 loopback = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool usable = fd >= 0 && bind(fd, (struct sockaddr *) &loopback, sizeof loopback) == 0;
    if (fd >= 0)
        close(fd);
    return usable;
}

void nsq_address_hostname(char *name, size_t size)
{
    if (size == 0)
        return;
    name[size - 1] = '\0';  // gethostname does not terminate a name it cuts
    if (gethostname(name, size - 1) != 0 || !name[0])
        snprintf(name, size, "localhost");
}

//  --------------------------------------------------------------------------
//  Self-test

static bool s_test_ipv6(const char *text, const struct in6_addr *expected, uint16_t port)
{
    struct sockaddr_storage address;
    return nsq_address_parse(text, &address) == 0 && address.ss_family == AF_INET6
           && memcmp(&((struct sockaddr_in6 *) &address)->sin6_addr, expected, sizeof *expected)
                  == 0
           && nsq_address_port(&address) == port;
}

static int s_test_hosts(void)
{
    const char *valid[] = {"localhost", "10.1.2.3",  "broker-0.nsq.svc.cluster.local.",
                           "my_host",   "::1",       "[::1]",
                           "fe80::1",   "2001:db8::"};
    for (size_t i = 0; i < sizeof valid / sizeof *valid; i++)
        if (!nsq_address_host_is_valid(valid[i], strlen(valid[i])))
            return -1;
    char long_label[80];
    memset(long_label, 'a', 64);
    long_label[64] = '\0';
    const char *invalid[] = {"",       "\xff", "a b",     "a..b",      ".a",       "a/b",
                             "host\"", "[::1", "1::2::3", "h\xc3\xa9", long_label, "host:4151"};
    for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
        if (nsq_address_host_is_valid(invalid[i], strlen(invalid[i])))
            return -1;
    if (nsq_address_host_is_valid("10.0.0.1\0evil", 13) || nsq_address_host_is_valid(NULL, 1))
        return -1;
    return 0;
}

int nsq_address_test(void)
{
    struct sockaddr_storage address;
    struct sockaddr_in *ipv4 = (struct sockaddr_in *) &address;
    if (nsq_address_parse("127.0.0.1:4151", &address) || address.ss_family != AF_INET
        || nsq_address_port(&address) != 4151 || ipv4->sin_addr.s_addr != htonl(INADDR_LOOPBACK))
        return -1;
    if (nsq_address_parse(":0", &address) || ipv4->sin_addr.s_addr != htonl(INADDR_ANY))
        return -1;
    if (nsq_address_parse("*:80", &address) || nsq_address_parse("localhost:1", &address)
        || ipv4->sin_addr.s_addr != htonl(INADDR_LOOPBACK) || nsq_address_is_ipv6_any(&address))
        return -1;
    if (!s_test_ipv6("[::1]:4151", &in6addr_loopback, 4151)
        || !s_test_ipv6("[::]:0", &in6addr_any, 0) || nsq_address_parse("[::]:1", &address)
        || !nsq_address_is_ipv6_any(&address))
        return -1;
    const char *bad[] = {NULL,
                         "",
                         "4151",
                         "host:",
                         "host:x",
                         "host:65536",
                         "host:-1",
                         "no-such-host.invalid:80",
                         "::1:4151",
                         "[::1]",
                         "[::1]4151",
                         "[::1:4151",
                         "[127.0.0.1]:1",
                         "[]:1",
                         "[nohost]:1",
                         "[::1]:+1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (nsq_address_parse(bad[i], &address) == 0)
            return -1;
    char name[256], small[4];
    nsq_address_hostname(name, sizeof name);
    nsq_address_hostname(small, sizeof small);
    if (!name[0] || strlen(small) > 3)
        return -1;
    return s_test_hosts();
}
