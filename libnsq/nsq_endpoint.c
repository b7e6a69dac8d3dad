/*  nsq_endpoint - the broker addresses clients dial, and the DEALER that dials one
    SPDX-License-Identifier: MIT

    The port is the text after the last colon; everything before it is the
    host. A bare IPv6 address ("::1:4152") is refused rather than guessed
    at: without brackets its last colon is part of the address.
*/
#include "nsq_endpoint.h"

#include "nsq_address.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define S_SCHEME "tcp://"

// The decimal port that fills text, 1..65535; -1 if it is not one.
static long s_port(const char *text)
{
    if (*text < '0' || *text > '9')
        return -1;  // strtol would take signs and spaces
    char *end = NULL;
    long port = strtol(text, &end, 10);
    return *end || port < 1 || port > 65535 ? -1 : port;
}

// True if the size bytes at host are a host to dial: bracketed IPv6, or a
// name or IPv4 address without a colon.
static bool s_host_is_valid(const char *host, size_t size)
{
    bool bracketed = size >= 2 && host[0] == '[' && host[size - 1] == ']';
    if (!bracketed && memchr(host, ':', size))
        return false;
    if (bracketed && size == 2)
        return false;
    return nsq_address_host_is_valid(host, size);
}

int nsq_endpoint_parse(const char *address, char *endpoint, size_t size)
{
    if (!address || !endpoint) {
        errno = EINVAL;
        return -1;
    }
    if (strncmp(address, S_SCHEME, strlen(S_SCHEME)) == 0)
        address += strlen(S_SCHEME);
    const char *colon = strrchr(address, ':');
    if (!colon || s_port(colon + 1) < 0 || !s_host_is_valid(address, (size_t) (colon - address))) {
        errno = EINVAL;
        return -1;
    }
    int length = snprintf(endpoint, size, S_SCHEME "%s", address);
    if (length < 0 || (size_t) length >= size) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

bool nsq_endpoint_is_ipv6(const char *endpoint)
{
    if (strncmp(endpoint, S_SCHEME, strlen(S_SCHEME)) == 0)
        endpoint += strlen(S_SCHEME);
    return endpoint[0] == '[';
}

zsock_t *nsq_endpoint_dealer(const char *endpoint, int hwm, int linger_ms,
                             const nsq_curve_client_t *curve)
{
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    if (!sock)
        return NULL;
    // Before connect: libzmq applies options to later connections only
    zsock_set_linger(sock, linger_ms);
    zsock_set_sndhwm(sock, hwm);
    zsock_set_rcvhwm(sock, hwm);
    zsock_set_ipv6(sock, nsq_endpoint_is_ipv6(endpoint));
    nsq_curve_client_apply(curve, sock);
    if (zsock_connect(sock, "%s", endpoint)) {
        int saved = errno;
        zsock_destroy(&sock);
        errno = saved;
    }
    return sock;
}

int nsq_endpoint_bind(zsock_t *sock, const char *host, size_t host_length, const char *port)
{
    if (strcmp(port, "0") != 0)
        return zsock_bind(sock, S_SCHEME "%.*s:%s", (int) host_length, host, port);
    char endpoint[NSQ_ENDPOINT_MAX];
    size_t size = sizeof endpoint;
    snprintf(endpoint, sizeof endpoint, S_SCHEME "%.*s:*", (int) host_length, host);
    if (zmq_bind(zsock_resolve(sock), endpoint)
        || zmq_getsockopt(zsock_resolve(sock), ZMQ_LAST_ENDPOINT, endpoint, &size))
        return -1;
    const char *colon = strrchr(endpoint, ':');
    return colon ? atoi(colon + 1) : -1;
}

// ---- self-test ---------------------------------------------------------------

// Waits up to 2 s until port can be bound on 127.0.0.1 again. Returns true
// once it can.
static bool s_test_port_free(int port)
{
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int64_t deadline = zclock_mono() + 2000;
    bool available = false;
    while (!available && zclock_mono() < deadline) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int on = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
        available = fd >= 0 && bind(fd, (struct sockaddr *) &address, sizeof address) == 0;
        if (fd >= 0)
            close(fd);
        if (!available)
            zclock_sleep(10);
    }
    return available;
}

int nsq_endpoint_test(void)
{
    char endpoint[NSQ_ENDPOINT_MAX];
    const struct {
        const char *address;   // given
        const char *endpoint;  // expected
    } good[] = {
        {"localhost:4152", "tcp://localhost:4152"},
        {"tcp://10.0.0.1:1", "tcp://10.0.0.1:1"},
        {"broker-0.nsq.svc.cluster.local:65535", "tcp://broker-0.nsq.svc.cluster.local:65535"},
        {"[::1]:4152", "tcp://[::1]:4152"},
        {"tcp://[2001:db8::7]:4152", "tcp://[2001:db8::7]:4152"},
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (nsq_endpoint_parse(good[i].address, endpoint, sizeof endpoint)
            || strcmp(endpoint, good[i].endpoint) != 0) {
            fprintf(stderr, "nsq_endpoint_test: %s refused or misread\n", good[i].address);
            return -1;
        }
    const char *bad[] = {"",           "host",     ":4152",    "host:",   "host:0",
                         "host:65536", "host:12x", "ho st:1",  "host:-1", "host:+1",
                         "tcp://",     "::1:4152", "[::1]",    "[]:4152", "[::1:1",
                         "[host]:1",   "a\tb:1",   "tcp://:1", "h/x:1",   "[::1]x:1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (nsq_endpoint_parse(bad[i], endpoint, sizeof endpoint) != -1 || errno != EINVAL) {
            fprintf(stderr, "nsq_endpoint_test: %s accepted\n", bad[i]);
            return -1;
        }
    char small[16];
    if (nsq_endpoint_parse("localhost:4152", small, sizeof small) != -1
        || nsq_endpoint_parse(NULL, endpoint, sizeof endpoint) != -1)
        return -1;
    if (!nsq_endpoint_is_ipv6("tcp://[::1]:1") || nsq_endpoint_is_ipv6("tcp://127.0.0.1:1"))
        return -1;
    zsock_t *dealer = nsq_endpoint_dealer("tcp://127.0.0.1:9", 10, 0, NULL);
    bool ok = dealer && zsock_sndhwm(dealer) == 10 && zsock_linger(dealer) == 0;
    zsock_destroy(&dealer);
    // Port 0 is the kernel's pick, in its ephemeral range, not czmq's
    // lowest free port from 49152 up; a given port is bound as given.
    zsock_t *first = zsock_new(ZMQ_ROUTER), *second = zsock_new(ZMQ_ROUTER);
    int port = first ? nsq_endpoint_bind(first, "127.0.0.1", 9, "0") : -1;
    char text[8];
    snprintf(text, sizeof text, "%d", port);
    ok = ok && port > 0 && second && nsq_endpoint_bind(second, "127.0.0.1", 9, text) == -1
         && nsq_endpoint_bind(second, "127.0.0.1", 9, "0") > 0;
    if (!ok)
        fprintf(stderr, "nsq_endpoint_test: port 0 bound as %d\n", port);
    zsock_destroy(&first);
    zsock_destroy(&second);
    // A server that comes after another gets another port, so the first
    // one's clients, still reconnecting, do not reach it (the kernel's pick
    // is random: the same port comes back once in some 28,000 runs). Once
    // libzmq has really closed the first (it does so in its own thread).
    ok = ok && s_test_port_free(port);
    zsock_t *later = ok ? zsock_new(ZMQ_ROUTER) : NULL;
    int again = later ? nsq_endpoint_bind(later, "127.0.0.1", 9, "0") : -1;
    zsock_destroy(&later);
    if (ok && again == port) {
        fprintf(stderr, "nsq_endpoint_test: port %d came back to the next server\n", port);
        ok = false;
    }
    return ok ? 0 : -1;
}
