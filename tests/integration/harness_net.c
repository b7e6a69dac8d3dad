/*  harness_net - plain loopback sockets: held ports, TCP connects, raw HTTP
    SPDX-License-Identifier: MIT

    What curl will not do: hold a port nothing listens on, connect a bare
    TCP socket, and send a request as exact bytes (it_http_raw), which the
    request-smuggling check (it_http_expect_smuggling_refused) builds on.
*/
#include "harness.h"
#include "harness_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

// ---- misc -------------------------------------------------------------

int it_port_hold(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    IT_ASSERT(fd >= 0 && bind(fd, (struct sockaddr *) &address, sizeof address) == 0
                  && getsockname(fd, (struct sockaddr *) &address, &length) == 0,
              "cannot hold a loopback port: %s", strerror(errno));
    *port = ntohs(address.sin_port);
    return fd;
}

int it_tcp_connect(const char *address)
{
    char text[128];
    snprintf(text, sizeof text, "%s", address);
    char *colon = strrchr(text, ':'), *host = text;
    if (!colon)
        return -1;
    *colon = '\0';
    if (host[0] == '[' && colon > host + 1 && colon[-1] == ']') {  // "[::1]:PORT"
        host++;
        colon[-1] = '\0';
    }
    struct addrinfo hints = {0}, *found = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &found) != 0)
        return -1;
    int fd = socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(found);
    return fd;
}

// The framings two HTTP parsers can read differently (request smuggling):
// each must get one 400 and a closed connection, and nothing of it may be
// taken as a request. Each hides a second request that publishes to (or
// creates) "smuggled" after a first body for "smuggle"; the larger lengths
// cover that hidden request (74 bytes) too, as a proxy would read them.
#define S_SMUGGLED                                                                                 \
    "POST /topic/create?topic=smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
static const char *const s_smuggling[] = {
    "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 79\r\n\r\n"
    "hello" S_SMUGGLED,
    "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"
    "hello" S_SMUGGLED,
    "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 89\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\nhello\r\n0\r\n\r\n" S_SMUGGLED,
    "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
    "5\r\nhello\r\n0\r\n\r\n" S_SMUGGLED,
    "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    "5\r\nhello\r\n0\r\n\r\n" S_SMUGGLED,
    "POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
    "chunked\r\n\r\n"
    "5\r\nhello\r\n0\r\n\r\n" S_SMUGGLED,
};

void it_http_expect_smuggling_refused(const char *address, const char *path)
{
    for (size_t i = 0; i < sizeof s_smuggling / sizeof *s_smuggling; i++) {
        char request[1024], reply[4096];
        snprintf(request, sizeof request, s_smuggling[i], path);
        int status = it_http_raw(address, request, reply, sizeof reply);
        IT_ASSERT(status == 400, "smuggling request %zu to %s answered %d: %.300s", i, address,
                  status, reply);
        const char *second = strstr(reply + 1, "HTTP/1.");
        IT_ASSERT(!second, "smuggling request %zu: a second answer came: %.300s", i, second);
    }
}

int it_http_raw(const char *address, const char *request, char *reply, size_t size)
{
    int fd = it_tcp_connect(address);
    IT_ASSERT(fd >= 0, "cannot connect to %s", address);
    size_t length = strlen(request);
    IT_ASSERT(write(fd, request, length) == (ssize_t) length, "cannot send to %s", address);
    size_t got = 0;
    reply[0] = '\0';
    int64_t deadline = it_now_ms() + 5000;
    while (got < size - 1 && it_now_ms() < deadline) {
        struct pollfd item = {fd, POLLIN, 0};
        if (poll(&item, 1, (int) (deadline - it_now_ms())) <= 0)
            break;
        ssize_t chunk = read(fd, reply + got, size - 1 - got);
        if (chunk <= 0)
            break;  // the server closed the connection
        got += (size_t) chunk;
        reply[got] = '\0';
    }
    close(fd);
    int status = 0;
    sscanf(reply, "HTTP/1.%*d %d", &status);
    return status;
}
