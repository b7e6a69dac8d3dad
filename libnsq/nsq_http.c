/*  nsq_http - what our libmicrohttpd servers share (broker, lookupd, worker)
    SPDX-License-Identifier: MIT
*/
#include "nsq_http.h"

#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "nsq_address.h"

unsigned nsq_http_address_flags(const struct sockaddr_storage *address)
{
    if (address->ss_family != AF_INET6)
        return 0;
    return nsq_address_is_ipv6_any(address) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
}

typedef struct {
    unsigned content_lengths;     // Content-Length headers seen
    unsigned transfer_encodings;  // Transfer-Encoding headers seen
    bool chunked;                 // the last Transfer-Encoding was exactly "chunked"
} s_framing_t;

static bool s_is(const char *text, size_t size, const char *expected)
{
    return size == strlen(expected) && strncasecmp(text, expected, size) == 0;
}

static enum MHD_Result s_on_header(void *arg, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    (void) kind;
    s_framing_t *framing = arg;
    if (s_is(key, key_size, MHD_HTTP_HEADER_CONTENT_LENGTH))
        framing->content_lengths++;
    else if (s_is(key, key_size, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        framing->transfer_encodings++;
        framing->chunked = value && s_is(value, value_size, "chunked");
    }
    return MHD_YES;
}

bool nsq_http_framing_is_ambiguous(struct MHD_Connection *connection)
{
    s_framing_t framing = {0, 0, false};
    MHD_get_connection_values_n(connection, MHD_HEADER_KIND, s_on_header, &framing);
    if (framing.transfer_encodings)
        return framing.transfer_encodings > 1 || framing.content_lengths > 0 || !framing.chunked;
    return framing.content_lengths > 1;
}

static enum MHD_Result s_answer(struct MHD_Connection *connection, unsigned status,
                                const char *content_type, const char *body, bool close)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(body), (void *) body, MHD_RESPMEM_MUST_COPY);
    if (!response)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (close)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result result = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return result;
}

enum MHD_Result nsq_http_answer(struct MHD_Connection *connection, unsigned status,
                                const char *content_type, const char *body)
{
    return s_answer(connection, status, content_type, body, false);
}

enum MHD_Result nsq_http_refuse(struct MHD_Connection *connection, unsigned status,
                                const char *content_type, const char *body)
{
    return s_answer(connection, status, content_type, body, true);
}

//  --------------------------------------------------------------------------
//  Self-test: a server that refuses ambiguous framing, driven over raw TCP

static enum MHD_Result s_test_access(void *cls, struct MHD_Connection *connection, const char *url,
                                     const char *method, const char *version, const char *upload,
                                     size_t *upload_size, void **state)
{
    (void) cls, (void) url, (void) method, (void) version, (void) upload;
    if (!*state) {
        *state = connection;
        if (nsq_http_framing_is_ambiguous(connection))
            return nsq_http_refuse(connection, MHD_HTTP_BAD_REQUEST, "text/plain", "ambiguous");
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    return nsq_http_answer(connection, MHD_HTTP_OK, "text/plain", "OK");
}

// Sends request to address and reads until the server closes (or 3 s
// pass). Returns the number of "HTTP/1.1 " status lines in the answer and
// stores the first status in *status; -1 if it cannot connect.
static int s_test_exchange(const struct sockaddr_storage *address, const char *request, int *status)
{
    int fd = socket(address->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t size =
        address->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (fd < 0 || connect(fd, (const struct sockaddr *) address, size) != 0
        || write(fd, request, strlen(request)) != (ssize_t) strlen(request)) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char reply[4096] = "";
    size_t got = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    now = start;
    while (got < sizeof reply - 1 && now.tv_sec - start.tv_sec < 3) {
        struct pollfd item = {fd, POLLIN, 0};
        ssize_t chunk = poll(&item, 1, 100) > 0 ? read(fd, reply + got, sizeof reply - 1 - got) : 1;
        if (chunk <= 0)
            break;  // closed: the answer is complete
        if (item.revents)
            got += (size_t) chunk;
        reply[got] = '\0';
        clock_gettime(CLOCK_MONOTONIC, &now);
    }
    close(fd);
    *status = 0;
    sscanf(reply, "HTTP/1.1 %d", status);
    int answers = 0;
    for (const char *at = reply; (at = strstr(at, "HTTP/1.1 ")); at++)
        answers++;
    return answers;
}

static struct MHD_Daemon *s_test_start(const char *text, struct sockaddr_storage *address)
{
    if (nsq_address_parse(text, address))
        return NULL;
    struct MHD_Daemon *daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | nsq_http_address_flags(address), 0, NULL,
                         NULL, s_test_access, NULL, MHD_OPTION_SOCK_ADDR, address,
                         MHD_OPTION_CONNECTION_TIMEOUT, 5u, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        daemon ? MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (address->ss_family == AF_INET6)
        ((struct sockaddr_in6 *) address)->sin6_port = htons(info ? info->port : 0);
    else
        ((struct sockaddr_in *) address)->sin_port = htons(info ? info->port : 0);
    return daemon;
}

#define S_HEAD "POST /x HTTP/1.1\r\nHost: test\r\n"

int nsq_http_test(void)
{
    if (nsq_http_address_flags(&(struct sockaddr_storage){.ss_family = AF_INET}) != 0)
        return -1;
    struct sockaddr_storage address;
    struct MHD_Daemon *daemon = s_test_start("127.0.0.1:0", &address);
    if (!daemon)
        return -1;
    const struct {
        const char *request;
        int status;
    } cases[] = {
        {S_HEAD "Connection: close\r\nContent-Length: 3\r\n\r\nabc", 200},
        {S_HEAD "Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
         200},
        {S_HEAD "Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde", 400},
        {S_HEAD "Content-Length: 3\r\ncontent-length: 3\r\n\r\nabc", 400},
        {S_HEAD "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
         400},
        {S_HEAD "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
         400},
        {S_HEAD "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        {S_HEAD "Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400},
        {S_HEAD "Transfer-Encoding: identity\r\nContent-Length: 3\r\n\r\nabc", 400},
    };
    int failed = 0;
    for (size_t index = 0; index < sizeof cases / sizeof *cases; index++) {
        int status = 0;
        // One answer only: a refused request's body is never read as another
        int answers = s_test_exchange(&address, cases[index].request, &status);
        if (answers != 1 || status != cases[index].status) {
            fprintf(stderr, "nsq_http_test: case %zu: %d answers, status %d, want 1 and %d\n",
                    index, answers, status, cases[index].status);
            failed = 1;
        }
    }
    MHD_stop_daemon(daemon);
    if (!nsq_address_ipv6_loopback_usable()) {
        fprintf(stderr, "nsq_http_test: no IPv6 loopback here, [::1] not tried\n");
        return failed ? -1 : 0;
    }
    const char *ipv6[] = {"[::1]:0", "[::]:0"};
    for (size_t index = 0; index < 2 && !failed; index++) {
        daemon = s_test_start(ipv6[index], &address);
        int status = 0;
        if (!daemon || address.ss_family != AF_INET6 || nsq_address_port(&address) == 0
            || s_test_exchange(&address, S_HEAD "Connection: close\r\nContent-Length: 0\r\n\r\n",
                               &status)
                   != 1
            || status != 200) {
            fprintf(stderr, "nsq_http_test: cannot serve on %s\n", ipv6[index]);
            failed = 1;
        }
        if (daemon)
            MHD_stop_daemon(daemon);
    }
    return failed ? -1 : 0;
}
