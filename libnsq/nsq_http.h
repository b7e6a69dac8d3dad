/*  nsq_http - what our libmicrohttpd servers share (broker, lookupd, worker)
    SPDX-License-Identifier: MIT

    Listening: nsq_http_address_flags gives the start flags a parsed listen
    address needs (IPv6, dual stack for "[::]"); pass the address itself
    with MHD_OPTION_SOCK_ADDR.

    Request smuggling: a request whose body length two parsers could read
    differently (two Content-Length headers, Content-Length together with
    Transfer-Encoding, a Transfer-Encoding other than plain "chunked") is
    refused before its body is read. libmicrohttpd 0.9.75 accepts these and
    picks one reading; a proxy in front of us may pick the other, and the
    rest of the body would then be taken as a second request.
    Call nsq_http_framing_is_ambiguous on the first call of the access
    handler (the headers are in) and answer with nsq_http_refuse, which
    closes the connection: nothing after such a request can be trusted.

    API: nsq_http_address_flags, nsq_http_framing_is_ambiguous,
    nsq_http_answer, nsq_http_refuse.
*/
#ifndef NSQ_HTTP_H
#define NSQ_HTTP_H

#include <microhttpd.h>
#include <stdbool.h>
#include <sys/socket.h>

// MHD_start_daemon flags to add for address (from nsq_address_parse):
// MHD_USE_IPv6 for an IPv6 address, MHD_USE_DUAL_STACK for "[::]", else 0.
unsigned nsq_http_address_flags(const struct sockaddr_storage *address);

// True if the request's headers make its body length ambiguous (see above).
bool nsq_http_framing_is_ambiguous(struct MHD_Connection *connection);

// Queues status with body (copied) of content_type. Returns what
// MHD_queue_response returned (MHD_NO if out of memory: libmicrohttpd then
// drops the connection).
enum MHD_Result nsq_http_answer(struct MHD_Connection *connection, unsigned status,
                                const char *content_type, const char *body);

// nsq_http_answer, and the connection is closed once the answer is sent.
enum MHD_Result nsq_http_refuse(struct MHD_Connection *connection, unsigned status,
                                const char *content_type, const char *body);

// Self-test; returns 0 on success.
int nsq_http_test(void);

#endif
