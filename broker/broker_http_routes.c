/*  broker_http_routes - the HTTP door's routes and argument checks: a
    request's path, method, query and body become a broker_http_request_t,
    or a refusal with NSQ's status and code
    SPDX-License-Identifier: MIT
*/
#include "broker_http_routes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker_mpub.h"
#include "nsq_names.h"

#define S_CHUNKED_FIRST 4096       // first buffer for a body of unknown length
#define S_DISCARD_MAX   (8 << 20)  // refused body bytes read and dropped before we hang up

typedef enum {
    ARGS_NONE,     // no arguments
    ARGS_PUB,      // ?topic=&defer=, one message from the body
    ARGS_MPUB,     // ?topic=&defer=&binary=, messages split from the body
    ARGS_STATS,    // ?format=&topic=&channel=
    ARGS_TOPIC,    // ?topic=
    ARGS_CHANNEL,  // ?topic=&channel=
} args_t;

enum { METHOD_GET = 1, METHOD_HEAD = 2, METHOD_POST = 4, METHOD_PUT = 8 };

typedef struct {
    const char *path;             // exact path, query excluded
    unsigned methods;             // METHOD_* accepted
    broker_http_action_t action;  // what the door does
    args_t args;                  // what is read and checked
    broker_http_kind_t kind;      // what the core is asked to do
} route_t;

static const route_t s_routes[] = {
    {"/pub", METHOD_POST | METHOD_PUT, BROKER_HTTP_TO_CORE, ARGS_PUB, BROKER_HTTP_PUB},
    {"/mpub", METHOD_POST | METHOD_PUT, BROKER_HTTP_TO_CORE, ARGS_MPUB, BROKER_HTTP_PUB},
    {"/ping", METHOD_GET | METHOD_HEAD, BROKER_HTTP_PING, ARGS_NONE, BROKER_HTTP_PUB},
    {"/info", METHOD_GET | METHOD_HEAD, BROKER_HTTP_INFO, ARGS_NONE, BROKER_HTTP_PUB},
    {"/stats", METHOD_GET | METHOD_HEAD, BROKER_HTTP_TO_CORE, ARGS_STATS, BROKER_HTTP_STATS_TEXT},
    {"/metrics", METHOD_GET | METHOD_HEAD, BROKER_HTTP_TO_CORE, ARGS_NONE, BROKER_HTTP_METRICS},
    {"/topic/create", METHOD_POST, BROKER_HTTP_TO_CORE, ARGS_TOPIC, BROKER_HTTP_TOPIC_CREATE},
    {"/topic/delete", METHOD_POST, BROKER_HTTP_TO_CORE, ARGS_TOPIC, BROKER_HTTP_TOPIC_DELETE},
    {"/topic/empty", METHOD_POST, BROKER_HTTP_TO_CORE, ARGS_TOPIC, BROKER_HTTP_TOPIC_EMPTY},
    {"/topic/pause", METHOD_POST, BROKER_HTTP_TO_CORE, ARGS_TOPIC, BROKER_HTTP_TOPIC_PAUSE},
    {"/topic/unpause", METHOD_POST, BROKER_HTTP_TO_CORE, ARGS_TOPIC, BROKER_HTTP_TOPIC_UNPAUSE},
    {"/channel/create", METHOD_POST, BROKER_HTTP_TO_CORE, ARGS_CHANNEL, BROKER_HTTP_CHANNEL_CREATE},
    {"/channel/delete", METHOD_POST, BROKER_HTTP_TO_CORE, ARGS_CHANNEL, BROKER_HTTP_CHANNEL_DELETE},
    {"/channel/empty", METHOD_POST, BROKER_HTTP_TO_CORE, ARGS_CHANNEL, BROKER_HTTP_CHANNEL_EMPTY},
    {"/channel/pause", METHOD_POST, BROKER_HTTP_TO_CORE, ARGS_CHANNEL, BROKER_HTTP_CHANNEL_PAUSE},
    {"/channel/unpause", METHOD_POST, BROKER_HTTP_TO_CORE, ARGS_CHANNEL,
     BROKER_HTTP_CHANNEL_UNPAUSE},
};

#define S_ROUTE_COUNT (sizeof(s_routes) / sizeof(s_routes[0]))

//  Records a refusal; always returns false so callers can `return s_fail(...)`.
static bool s_fail(broker_http_call_t *call, unsigned status, const char *code)
{
    if (!call->error_status) {
        call->error_status = status;
        call->error_code = code;
    }
    return false;
}

//  Drops the messages handed (or about to be handed) to the core.
static void s_messages_release(broker_http_call_t *call)
{
    broker_http_request_t *request = &call->request;
    for (size_t index = 0; index < request->message_count; index++)
        nsq_message_unref(&request->messages[index]);
    if (request->messages != call->single)
        free(request->messages);
    request->messages = NULL;
    request->message_count = 0;
}

void broker_http_call_release(broker_http_call_t *call)
{
    s_messages_release(call);
    nsq_message_unref(&call->body);
    broker_stats_destroy(&call->request.stats);
}

void broker_http_call_reset(broker_http_call_t *call)
{
    broker_http_call_release(call);
    memset(call, 0, sizeof(*call));
}

//  --------------------------------------------------------------------------
//  Routing and arguments

static const route_t *s_route_find(const char *url)
{
    for (size_t index = 0; index < S_ROUTE_COUNT; index++)
        if (strcmp(url, s_routes[index].path) == 0)
            return &s_routes[index];
    return NULL;
}

static unsigned s_method(const char *method)
{
    if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
        return METHOD_POST;
    if (strcmp(method, MHD_HTTP_METHOD_GET) == 0)
        return METHOD_GET;
    if (strcmp(method, MHD_HTTP_METHOD_PUT) == 0)
        return METHOD_PUT;
    if (strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)
        return METHOD_HEAD;
    return 0;
}

//  A query argument, decoded: "%00" is a NUL inside it, so it is read with
//  its size, never as a C string that would stop there.
typedef struct {
    const char *text;  // NULL when absent
    size_t size;       // decoded bytes
} arg_t;

static arg_t s_arg(struct MHD_Connection *mhd, const char *key)
{
    arg_t arg = {NULL, 0};
    if (MHD_lookup_connection_value_n(mhd, MHD_GET_ARGUMENT_KIND, key, strlen(key), &arg.text,
                                      &arg.size)
        != MHD_YES)
        arg.text = NULL;
    if (!arg.text)
        arg.size = 0;
    return arg;
}

//  True if arg is exactly expected.
static bool s_arg_is(arg_t arg, const char *expected)
{
    return arg.text && arg.size == strlen(expected) && memcmp(arg.text, expected, arg.size) == 0;
}

//  Copies a required name argument into out (NSQ_NAME_MAX + 1 bytes).
static bool s_name_arg(broker_http_call_t *call, struct MHD_Connection *mhd, const char *key,
                       char *out, const char *missing, const char *invalid)
{
    arg_t value = s_arg(mhd, key);
    if (!value.text)
        return s_fail(call, MHD_HTTP_BAD_REQUEST, missing);
    if (nsq_name_copy(out, value.text, value.size))
        return s_fail(call, MHD_HTTP_BAD_REQUEST, invalid);
    return true;
}

static bool s_topic_arg(broker_http_call_t *call, struct MHD_Connection *mhd)
{
    return s_name_arg(call, mhd, "topic", call->request.topic, "MISSING_ARG_TOPIC",
                      "INVALID_TOPIC");
}

static bool s_channel_arg(broker_http_call_t *call, struct MHD_Connection *mhd)
{
    return s_name_arg(call, mhd, "channel", call->request.channel, "MISSING_ARG_CHANNEL",
                      "INVALID_ARG_CHANNEL");
}

//  Parses a decimal integer that fills all size bytes of text.
static bool s_parse_int(const char *text, size_t size, long long *value)
{
    if (!text || size == 0 || *text == ' ' || *text == '\t')
        return false;
    char *end;
    errno = 0;
    *value = strtoll(text, &end, 10);
    return errno == 0 && end == text + size;
}

//  defer=ms, for /pub and /mpub alike: 0..--max-req-timeout.
static bool s_defer_arg(broker_http_call_t *call, struct MHD_Connection *mhd,
                        const broker_config_t *config)
{
    arg_t text = s_arg(mhd, "defer");
    if (!text.text)
        return true;
    long long defer;
    if (!s_parse_int(text.text, text.size, &defer) || defer < 0
        || defer > config->max_req_timeout_ms)
        return s_fail(call, MHD_HTTP_BAD_REQUEST, "INVALID_DEFER");
    call->request.defer_ms = defer;
    return true;
}

static bool s_stats_args(broker_http_call_t *call, struct MHD_Connection *mhd)
{
    arg_t format = s_arg(mhd, "format");
    if (!format.text || s_arg_is(format, "text"))
        call->request.kind = BROKER_HTTP_STATS_TEXT;
    else if (s_arg_is(format, "json"))
        call->request.kind = BROKER_HTTP_STATS_JSON;
    else
        return s_fail(call, MHD_HTTP_BAD_REQUEST, "INVALID_FORMAT");
    // Filters are optional; a name that cannot exist is still a mistake
    if (s_arg(mhd, "topic").text && !s_topic_arg(call, mhd))
        return false;
    if (s_arg(mhd, "channel").text && !s_channel_arg(call, mhd))
        return false;
    return true;
}

bool broker_http_routes_body_follows(struct MHD_Connection *mhd)
{
    const char *length =
        MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length)
        return strcmp(length, "0") != 0;
    return MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING)
           != NULL;
}

//  Sets the body limit; refuses a declared Content-Length over it.
static bool s_publish_args(broker_http_call_t *call, struct MHD_Connection *mhd, bool pub,
                           const broker_config_t *config)
{
    call->body_limit = (size_t) (pub ? config->max_msg_size : config->max_body_size);
    call->too_big = pub ? "MSG_TOO_BIG" : "BODY_TOO_BIG";
    if (!s_topic_arg(call, mhd) || !s_defer_arg(call, mhd, config))
        return false;
    arg_t binary = s_arg(mhd, "binary");
    call->split = !pub;
    call->binary = !pub && binary.text && !s_arg_is(binary, "false") && !s_arg_is(binary, "0");
    long long length;
    const char *length_text =
        MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length_text && s_parse_int(length_text, strlen(length_text), &length) && length > 0) {
        if ((unsigned long long) length > call->body_limit)
            return s_fail(call, MHD_HTTP_CONTENT_TOO_LARGE, call->too_big);
        call->body_expected = (size_t) length;
    }
    return true;
}

//  The client's IP, for the auth server.
static void s_remote_ip(struct MHD_Connection *mhd, char *out, size_t size)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *address = info ? info->client_addr : NULL;
    out[0] = '\0';
    if (address && address->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *) address)->sin_addr, out,
                  (socklen_t) size);
    else if (address && address->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) address)->sin6_addr, out,
                  (socklen_t) size);
}

//  With auth on, a request for the core needs "Authorization: Bearer
//  SECRET": without one it is refused here (401) and never reaches the core.
static bool s_auth_args(broker_http_call_t *call, struct MHD_Connection *mhd)
{
    const char *header = NULL;
    size_t size = 0;
    if (MHD_lookup_connection_value_n(mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION,
                                      strlen(MHD_HTTP_HEADER_AUTHORIZATION), &header, &size)
            != MHD_YES
        || !header || size < 7 || strncasecmp(header, "Bearer ", 7) != 0)
        return s_fail(call, MHD_HTTP_UNAUTHORIZED, "AUTH_FAILED");
    const char *secret = header + 7;
    size -= 7;
    while (size && *secret == ' ')
        secret++, size--;
    while (size && secret[size - 1] == ' ')
        size--;
    broker_http_request_t *request = &call->request;
    if (size == 0 || size > sizeof request->secret)
        return s_fail(call, MHD_HTTP_UNAUTHORIZED, "AUTH_FAILED");
    memcpy(request->secret, secret, size);
    request->secret_size = size;
    request->has_secret = true;
    s_remote_ip(mhd, request->remote_ip, sizeof request->remote_ip);
    return true;
}

void broker_http_routes_begin(broker_http_call_t *call, struct MHD_Connection *mhd, const char *url,
                              const char *method, const broker_config_t *config)
{
    const route_t *route = s_route_find(url);
    if (!route) {
        s_fail(call, MHD_HTTP_NOT_FOUND, "NOT_FOUND");
        return;
    }
    if (!(route->methods & s_method(method))) {
        s_fail(call, MHD_HTTP_METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
        return;
    }
    call->action = route->action;
    call->request.kind = route->kind;
    if (config->auth_http_count > 0 && route->action == BROKER_HTTP_TO_CORE
        && !s_auth_args(call, mhd))
        return;
    switch (route->args) {
    case ARGS_PUB:
    case ARGS_MPUB:
        s_publish_args(call, mhd, route->args == ARGS_PUB, config);
        break;
    case ARGS_STATS:
        s_stats_args(call, mhd);
        break;
    case ARGS_TOPIC:
        s_topic_arg(call, mhd);
        break;
    case ARGS_CHANNEL:
        if (s_topic_arg(call, mhd))
            s_channel_arg(call, mhd);
        break;
    default:
        break;
    }
}

//  --------------------------------------------------------------------------
//  Bodies

//  Makes room for needed bytes: the declared length at once, else doubling.
static int s_body_grow(broker_http_call_t *call, size_t needed)
{
    size_t capacity = call->body_capacity   ? call->body_capacity * 2
                      : call->body_expected ? call->body_expected
                                            : S_CHUNKED_FIRST;
    while (capacity < needed)
        capacity *= 2;
    if (capacity > call->body_limit)
        capacity = call->body_limit;  // needed never exceeds it
    nsq_message_t *grown = nsq_message_new_uninit(capacity);
    if (!grown)
        return -1;
    if (call->body_size)
        memcpy(grown->body, call->body->body, call->body_size);
    nsq_message_unref(&call->body);
    call->body = grown;
    call->body_capacity = capacity;
    return 0;
}

enum MHD_Result broker_http_routes_body(broker_http_call_t *call, const char *data, size_t size)
{
    bool wanted = !call->error_status && call->too_big;  // set for /pub and /mpub only
    if (wanted && size > call->body_limit - call->body_size) {
        nsq_message_unref(&call->body);
        s_fail(call, MHD_HTTP_CONTENT_TOO_LARGE, call->too_big);
        wanted = false;
    }
    if (!wanted) {
        call->discarded += size;
        return call->discarded <= S_DISCARD_MAX ? MHD_YES : MHD_NO;
    }
    if (call->body_size + size > call->body_capacity
        && s_body_grow(call, call->body_size + size) != 0) {
        s_fail(call, MHD_HTTP_SERVICE_UNAVAILABLE, "OUT_OF_MEMORY");
        return MHD_YES;
    }
    memcpy(call->body->body + call->body_size, data, size);
    call->body_size += size;
    return MHD_YES;
}

//  Moves the /pub body into the request as its one message.
static bool s_take_pub(broker_http_call_t *call)
{
    if (call->body_size == 0)
        return s_fail(call, MHD_HTTP_BAD_REQUEST, "MSG_EMPTY");
    call->body->size = (uint32_t) call->body_size;
    call->single[0] = call->body;
    call->body = NULL;
    call->request.messages = call->single;
    call->request.message_count = 1;
    return true;
}

//  Splits the /mpub body into messages, all or nothing.
static bool s_take_mpub(broker_http_call_t *call, const broker_config_t *config)
{
    const uint8_t *body = call->body ? call->body->body : NULL;
    const char *code = NULL;
    size_t count =
        broker_mpub_check(body, call->body_size, call->binary, (uint64_t) config->max_msg_size,
                          (uint64_t) config->max_body_size, &code);
    if (count == 0)
        return s_fail(call,
                      strcmp(code, "MSG_EMPTY") == 0 ? MHD_HTTP_BAD_REQUEST
                                                     : MHD_HTTP_CONTENT_TOO_LARGE,
                      code);
    broker_http_request_t *request = &call->request;
    request->messages = calloc(count, sizeof(nsq_message_t *));
    if (!request->messages)
        return s_fail(call, MHD_HTTP_SERVICE_UNAVAILABLE, "OUT_OF_MEMORY");
    size_t offset = 0, start, length;
    while (request->message_count < count
           && broker_mpub_next(body, call->body_size, call->binary, &offset, &start, &length)) {
        nsq_message_t *message = nsq_message_new(body + start, length);
        if (!message) {
            s_messages_release(call);
            return s_fail(call, MHD_HTTP_SERVICE_UNAVAILABLE, "OUT_OF_MEMORY");
        }
        request->messages[request->message_count++] = message;
    }
    nsq_message_unref(&call->body);
    return true;
}

bool broker_http_routes_finish(broker_http_call_t *call, const broker_config_t *config)
{
    if (call->error_status)
        return false;
    if (call->action != BROKER_HTTP_TO_CORE || call->request.kind != BROKER_HTTP_PUB)
        return true;
    return call->split ? s_take_mpub(call, config) : s_take_pub(call);
}
