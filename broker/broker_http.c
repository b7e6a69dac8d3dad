/*  broker_http - the broker's HTTP API (libmicrohttpd), NSQ-compatible paths
    SPDX-License-Identifier: MIT

    Routes: POST|PUT /pub?topic=T[&defer=ms], POST|PUT /mpub?topic=T[&binary=true][&defer=ms],
    GET /stats?format=text|json[&topic=T&channel=C], GET /metrics,
    POST /topic/{create,delete,empty,pause,unpause}?topic=T,
    POST /channel/{create,delete,empty,pause,unpause}?topic=T&channel=C,
    GET /ping and GET /info (answered here, without the core).
    Errors are NSQ's: {"message":"CODE"} with X-NSQ-Content-Type.

    libmicrohttpd calls the access handler several times per request: when
    the headers are in (refuse ambiguous framing, see nsq_http.h; route;
    validate every argument with its decoded length, so "%00" cannot cut a
    name short; refuse an oversized Content-Length before a byte of body is
    read), once per piece of body (copied straight into an nsq_message_t,
    never beyond the limit), and once at the end.
    A refusal found with a body still on the wire is answered at once
    (libmicrohttpd then closes the connection); otherwise at the end, so
    keep-alive survives.

    At the end the request goes to the core (broker_request_send) and the
    connection is suspended, so an HTTP thread never waits for the core and
    keeps many requests in flight; the core takes them in batches. The core
    calls broker_request_done, our s_on_done resumes the connection, and the
    handler runs once more to render the answer. That doubled /pub's rate
    over waiting for the core on each HTTP thread. Suspended connections sit
    on a list so that destroy can answer those the core will never read.

    The per-request state (connection_t, holding the broker_request_t the
    core reads) lives in the TCP connection's socket context: allocated once
    per connection and reused by every request on it. So a /pub allocates
    only its message; the fixed answers ("OK", empty) are built once and
    shared by all threads.
*/
#include "broker_http.h"
#include "nsq_address.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "broker_mpub.h"
#include "broker_request.h"
#include "nsq_http.h"
#include "nsq_json.h"
#include "nsq_log.h"
#include "nsq_names.h"

#define S_CONNECTION_TIMEOUT_S 60         // idle connections are closed after this
#define S_CONNECTION_LIMIT_MAX 10000      // upper bound, lowered to fit RLIMIT_NOFILE
#define S_CHUNKED_FIRST        4096       // first buffer for a body of unknown length
#define S_DISCARD_MAX          (8 << 20)  // refused body bytes read and dropped before we hang up
#define S_ABANDON_WAIT_S       1          // destroy waits this long for its 503s to leave
#define S_TEXT_PLAIN           "text/plain; charset=utf-8"
#define S_APPLICATION_JSON     "application/json; charset=utf-8"
#define S_NSQ_CONTENT_TYPE     "nsq; version=1.0"

_Static_assert(BROKER_NAME_MAX == NSQ_NAME_MAX, "request name buffers hold any valid name");

typedef enum {
    ACTION_PING,     // answered here
    ACTION_INFO,     // answered here
    ACTION_PUB,      // one message from the body
    ACTION_MPUB,     // messages split from the body
    ACTION_STATS,    // format and filters, then the core
    ACTION_CORE,     // no arguments, straight to the core
    ACTION_TOPIC,    // ?topic=, then the core
    ACTION_CHANNEL,  // ?topic=&channel=, then the core
} action_t;

enum { METHOD_GET = 1, METHOD_HEAD = 2, METHOD_POST = 4, METHOD_PUT = 8 };

typedef struct {
    const char *path;            // exact path, query excluded
    unsigned methods;            // METHOD_* accepted
    action_t action;             // what the HTTP thread does
    broker_request_kind_t kind;  // what the core is asked to do
} route_t;

static const route_t s_routes[] = {
    {"/pub", METHOD_POST | METHOD_PUT, ACTION_PUB, BROKER_REQUEST_PUB},
    {"/mpub", METHOD_POST | METHOD_PUT, ACTION_MPUB, BROKER_REQUEST_PUB},
    {"/ping", METHOD_GET | METHOD_HEAD, ACTION_PING, BROKER_REQUEST_PUB},
    {"/info", METHOD_GET | METHOD_HEAD, ACTION_INFO, BROKER_REQUEST_PUB},
    {"/stats", METHOD_GET | METHOD_HEAD, ACTION_STATS, BROKER_REQUEST_STATS_TEXT},
    {"/metrics", METHOD_GET | METHOD_HEAD, ACTION_CORE, BROKER_REQUEST_METRICS},
    {"/topic/create", METHOD_POST, ACTION_TOPIC, BROKER_REQUEST_TOPIC_CREATE},
    {"/topic/delete", METHOD_POST, ACTION_TOPIC, BROKER_REQUEST_TOPIC_DELETE},
    {"/topic/empty", METHOD_POST, ACTION_TOPIC, BROKER_REQUEST_TOPIC_EMPTY},
    {"/topic/pause", METHOD_POST, ACTION_TOPIC, BROKER_REQUEST_TOPIC_PAUSE},
    {"/topic/unpause", METHOD_POST, ACTION_TOPIC, BROKER_REQUEST_TOPIC_UNPAUSE},
    {"/channel/create", METHOD_POST, ACTION_CHANNEL, BROKER_REQUEST_CHANNEL_CREATE},
    {"/channel/delete", METHOD_POST, ACTION_CHANNEL, BROKER_REQUEST_CHANNEL_DELETE},
    {"/channel/empty", METHOD_POST, ACTION_CHANNEL, BROKER_REQUEST_CHANNEL_EMPTY},
    {"/channel/pause", METHOD_POST, ACTION_CHANNEL, BROKER_REQUEST_CHANNEL_PAUSE},
    {"/channel/unpause", METHOD_POST, ACTION_CHANNEL, BROKER_REQUEST_CHANNEL_UNPAUSE},
};

#define S_ROUTE_COUNT (sizeof(s_routes) / sizeof(s_routes[0]))

typedef struct _connection_t connection_t;

struct _broker_http_t {
    broker_config_t config;      // our copy, read-only
    char *core_endpoint;         // the core's inproc ROUTER
    struct MHD_Daemon *daemon;   // the running server
    struct MHD_Response *ok;     // 200 "OK", shared by every thread
    struct MHD_Response *empty;  // 200 with an empty body, shared
    char hostname[256];          // for /info
    int64_t start_time;          // unix seconds, for /info
    uint16_t port;               // bound HTTP port
    _Atomic uint16_t zmq_port;   // for /info; set by the core
    atomic_bool starting;        // libmicrohttpd's log goes to start_error
    char start_error[256];       // why the server could not start
    pthread_mutex_t lock;        // guards the four fields below
    connection_t *waiting;       // connections suspended until the core is done
    bool stopping;               // destroy has begun: hand nothing more over
    size_t abandoned;            // abandoned requests not yet answered
    pthread_cond_t answered;     // signalled as abandoned drops
};

struct _connection_t {
    broker_http_t *server;       // the server this connection belongs to
    const route_t *route;        // the current request's route
    broker_request_t request;    // what the core reads, by address
    nsq_message_t *body;         // upload read in place; NULL until the first byte
    size_t body_size;            // bytes read so far
    size_t body_capacity;        // bytes body can hold
    size_t body_expected;        // Content-Length; 0 if unknown
    size_t body_limit;           // max_msg_size for /pub, max_body_size for /mpub
    size_t discarded;            // bytes of a refused body dropped so far
    const char *too_big;         // error code when the body passes body_limit
    int error_status;            // != 0: refuse with error_code
    const char *error_code;      // static NSQ code
    bool binary;                 // /mpub framing is binary
    bool answered;               // a response is queued already
    bool sent;                   // handed to the core; the connection is suspended
    bool abandoned;              // the core will never answer: destroy resumed us
    nsq_message_t *single[1];    // the messages array of /pub
    struct MHD_Connection *mhd;  // to resume it
    connection_t *prev, *next;   // on server->waiting while sent
};

//  --------------------------------------------------------------------------
//  Responses

static enum MHD_Result s_queue(struct MHD_Connection *mhd, unsigned status,
                               struct MHD_Response *response, const char *content_type)
{
    if (!response)
        return MHD_NO;
    if (content_type)
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(response, "X-NSQ-Content-Type", S_NSQ_CONTENT_TYPE);
    enum MHD_Result result = MHD_queue_response(mhd, status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result s_answer_copy(struct MHD_Connection *mhd, unsigned status, const char *text,
                                     const char *content_type)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(text), (void *) text, MHD_RESPMEM_MUST_COPY);
    return s_queue(mhd, status, response, content_type);
}

static enum MHD_Result s_answer_error(connection_t *conn, struct MHD_Connection *mhd, int status,
                                      const char *code)
{
    char escaped[128], text[160];
    nsq_json_escape(escaped, sizeof(escaped), code);
    snprintf(text, sizeof(text), "{\"message\":\"%s\"}", escaped);
    conn->answered = true;
    return s_answer_copy(mhd, (unsigned) status, text, S_APPLICATION_JSON);
}

static enum MHD_Result s_answer_shared(connection_t *conn, struct MHD_Connection *mhd,
                                       struct MHD_Response *response)
{
    conn->answered = true;
    return MHD_queue_response(mhd, MHD_HTTP_OK, response);
}

static enum MHD_Result s_answer_info(connection_t *conn, struct MHD_Connection *mhd)
{
    broker_http_t *self = conn->server;
    const broker_config_t *config = &self->config;
    char hostname[sizeof(self->hostname) * 6], broadcast[BROKER_ADDRESS_MAX * 6], text[4096];
    nsq_json_escape(hostname, sizeof(hostname), self->hostname);
    nsq_json_escape(broadcast, sizeof(broadcast), config->broadcast_address);
    snprintf(text, sizeof(text),
             "{\"version\":\"%s\",\"broadcast_address\":\"%s\",\"hostname\":\"%s\","
             "\"http_port\":%u,\"tcp_port\":0,\"zmq_port\":%u,\"start_time\":%lld,"
             "\"max_msg_size\":%lld,\"max_body_size\":%lld,\"max_rdy_count\":%lld,"
             "\"msg_timeout\":%lld,\"max_msg_timeout\":%lld,\"max_heartbeat_interval\":%lld}",
             NSQ_VERSION, broadcast, hostname, self->port, (unsigned) atomic_load(&self->zmq_port),
             (long long) self->start_time, (long long) config->max_msg_size,
             (long long) config->max_body_size, (long long) config->max_rdy_count,
             (long long) config->msg_timeout_ms, (long long) config->max_msg_timeout_ms,
             (long long) config->max_heartbeat_interval_ms);
    conn->answered = true;
    return s_answer_copy(mhd, MHD_HTTP_OK, text, S_APPLICATION_JSON);
}

//  Renders what the core answered; the body moves into the response.
static enum MHD_Result s_answer_request(connection_t *conn, struct MHD_Connection *mhd)
{
    broker_request_t *request = &conn->request;
    char *body = request->body;
    request->body = NULL;
    if (request->error_code) {
        free(body);
        int status = request->status >= 400 ? request->status : MHD_HTTP_INTERNAL_SERVER_ERROR;
        return s_answer_error(conn, mhd, status, request->error_code);
    }
    unsigned status = request->status >= 100 ? (unsigned) request->status : MHD_HTTP_OK;
    const char *content_type = request->content_type ? request->content_type : S_TEXT_PLAIN;
    bool plain = strcmp(content_type, S_TEXT_PLAIN) == 0;
    if (status == MHD_HTTP_OK && plain && (!body || strcmp(body, "OK") == 0)) {
        struct MHD_Response *shared = body ? conn->server->ok : conn->server->empty;
        free(body);
        return s_answer_shared(conn, mhd, shared);
    }
    struct MHD_Response *response = NULL;
    if (body) {
        response = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!response)
            free(body);
    } else
        response = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT);
    conn->answered = true;
    return s_queue(mhd, status, response, content_type);
}

static struct MHD_Response *s_shared_response(const char *text)
{
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(text), (void *) text, MHD_RESPMEM_PERSISTENT);
    if (response) {
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, S_TEXT_PLAIN);
        MHD_add_response_header(response, "X-NSQ-Content-Type", S_NSQ_CONTENT_TYPE);
    }
    return response;
}

//  --------------------------------------------------------------------------
//  Per-request state

//  Drops the messages handed (or about to be handed) to the core.
static void s_messages_release(connection_t *conn, bool unref)
{
    broker_request_t *request = &conn->request;
    if (unref)
        for (size_t index = 0; index < request->message_count; index++)
            nsq_message_unref(&request->messages[index]);
    if (request->messages != conn->single)
        free(request->messages);
    request->messages = NULL;
    request->message_count = 0;
}

//  Frees whatever the last request left behind (a client may vanish anywhere).
static void s_connection_release(connection_t *conn)
{
    s_messages_release(conn, true);
    nsq_message_unref(&conn->body);
    free(conn->request.body);
    conn->request.body = NULL;
}

static void s_connection_reset(connection_t *conn)
{
    s_connection_release(conn);
    broker_http_t *server = conn->server;
    memset(conn, 0, sizeof(*conn));
    conn->server = server;
}

//  Records a refusal; always returns false so callers can `return s_fail(...)`.
static bool s_fail(connection_t *conn, int status, const char *code)
{
    if (!conn->error_status) {
        conn->error_status = status;
        conn->error_code = code;
    }
    return false;
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

//  Copies a required name argument into out (BROKER_NAME_MAX + 1 bytes).
static bool s_name_arg(connection_t *conn, struct MHD_Connection *mhd, const char *key, char *out,
                       const char *missing, const char *invalid)
{
    arg_t value = s_arg(mhd, key);
    if (!value.text)
        return s_fail(conn, MHD_HTTP_BAD_REQUEST, missing);
    if (nsq_name_copy(out, value.text, value.size))
        return s_fail(conn, MHD_HTTP_BAD_REQUEST, invalid);
    return true;
}

static bool s_topic_arg(connection_t *conn, struct MHD_Connection *mhd)
{
    return s_name_arg(conn, mhd, "topic", conn->request.topic, "MISSING_ARG_TOPIC",
                      "INVALID_TOPIC");
}

static bool s_channel_arg(connection_t *conn, struct MHD_Connection *mhd)
{
    return s_name_arg(conn, mhd, "channel", conn->request.channel, "MISSING_ARG_CHANNEL",
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
static bool s_defer_arg(connection_t *conn, struct MHD_Connection *mhd)
{
    arg_t text = s_arg(mhd, "defer");
    if (!text.text)
        return true;
    long long defer;
    if (!s_parse_int(text.text, text.size, &defer) || defer < 0
        || defer > conn->server->config.max_req_timeout_ms)
        return s_fail(conn, MHD_HTTP_BAD_REQUEST, "INVALID_DEFER");
    conn->request.defer_ms = defer;
    return true;
}

static bool s_stats_args(connection_t *conn, struct MHD_Connection *mhd)
{
    arg_t format = s_arg(mhd, "format");
    if (!format.text || s_arg_is(format, "text"))
        conn->request.kind = BROKER_REQUEST_STATS_TEXT;
    else if (s_arg_is(format, "json"))
        conn->request.kind = BROKER_REQUEST_STATS_JSON;
    else
        return s_fail(conn, MHD_HTTP_BAD_REQUEST, "INVALID_FORMAT");
    // Filters are optional; a name that cannot exist is still a mistake
    if (s_arg(mhd, "topic").text && !s_topic_arg(conn, mhd))
        return false;
    if (s_arg(mhd, "channel").text && !s_channel_arg(conn, mhd))
        return false;
    return true;
}

//  True if a body follows the headers (so an answer now skips reading it).
static bool s_body_follows(struct MHD_Connection *mhd)
{
    const char *length =
        MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length)
        return strcmp(length, "0") != 0;
    return MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING)
           != NULL;
}

//  Sets the body limit; refuses a declared Content-Length over it.
static bool s_publish_args(connection_t *conn, struct MHD_Connection *mhd)
{
    const broker_config_t *config = &conn->server->config;
    bool pub = conn->route->action == ACTION_PUB;
    conn->body_limit = (size_t) (pub ? config->max_msg_size : config->max_body_size);
    conn->too_big = pub ? "MSG_TOO_BIG" : "BODY_TOO_BIG";
    if (!s_topic_arg(conn, mhd) || !s_defer_arg(conn, mhd))
        return false;
    arg_t binary = s_arg(mhd, "binary");
    conn->binary = !pub && binary.text && !s_arg_is(binary, "false") && !s_arg_is(binary, "0");
    long long length;
    const char *length_text =
        MHD_lookup_connection_value(mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (length_text && s_parse_int(length_text, strlen(length_text), &length) && length > 0) {
        if ((unsigned long long) length > conn->body_limit)
            return s_fail(conn, MHD_HTTP_CONTENT_TOO_LARGE, conn->too_big);
        conn->body_expected = (size_t) length;
    }
    return true;
}

//  First call, headers complete: route and validate before any body is read.
static enum MHD_Result s_begin(connection_t *conn, struct MHD_Connection *mhd, const char *url,
                               const char *method)
{
    if (nsq_http_framing_is_ambiguous(mhd)) {
        conn->answered = true;  // and the connection closes: its next bytes mean nothing
        return nsq_http_refuse(mhd, MHD_HTTP_BAD_REQUEST, S_APPLICATION_JSON,
                               "{\"message\":\"BAD_REQUEST\"}");
    }
    conn->route = s_route_find(url);
    if (!conn->route)
        s_fail(conn, MHD_HTTP_NOT_FOUND, "NOT_FOUND");
    else if (!(conn->route->methods & s_method(method)))
        s_fail(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    else {
        conn->request.kind = conn->route->kind;
        switch (conn->route->action) {
        case ACTION_PUB:
        case ACTION_MPUB:
            s_publish_args(conn, mhd);
            break;
        case ACTION_STATS:
            s_stats_args(conn, mhd);
            break;
        case ACTION_TOPIC:
            s_topic_arg(conn, mhd);
            break;
        case ACTION_CHANNEL:
            if (s_topic_arg(conn, mhd))
                s_channel_arg(conn, mhd);
            break;
        default:
            break;
        }
    }
    if (conn->error_status && s_body_follows(mhd))
        return s_answer_error(conn, mhd, conn->error_status, conn->error_code);
    return MHD_YES;
}

//  --------------------------------------------------------------------------
//  Bodies

//  Makes room for needed bytes: the declared length at once, else doubling.
static int s_body_grow(connection_t *conn, size_t needed)
{
    size_t capacity = conn->body_capacity   ? conn->body_capacity * 2
                      : conn->body_expected ? conn->body_expected
                                            : S_CHUNKED_FIRST;
    while (capacity < needed)
        capacity *= 2;
    if (capacity > conn->body_limit)
        capacity = conn->body_limit;  // needed never exceeds it
    nsq_message_t *grown = nsq_message_new_uninit(capacity);
    if (!grown)
        return -1;
    if (conn->body_size)
        memcpy(grown->body, conn->body->body, conn->body_size);
    nsq_message_unref(&conn->body);
    conn->body = grown;
    conn->body_capacity = capacity;
    return 0;
}

//  Takes one piece of body. libmicrohttpd cannot answer in the middle of an
//  upload, so a refused body is dropped as it comes and answered at its end,
//  like the body of a route that takes none; past S_DISCARD_MAX we hang up.
static enum MHD_Result s_read_body(connection_t *conn, const char *data, size_t size)
{
    bool wanted = !conn->error_status && conn->too_big;  // set for /pub and /mpub only
    if (wanted && size > conn->body_limit - conn->body_size) {
        nsq_message_unref(&conn->body);
        s_fail(conn, MHD_HTTP_CONTENT_TOO_LARGE, conn->too_big);
        wanted = false;
    }
    if (!wanted) {
        conn->discarded += size;
        return conn->discarded <= S_DISCARD_MAX ? MHD_YES : MHD_NO;
    }
    if (conn->body_size + size > conn->body_capacity
        && s_body_grow(conn, conn->body_size + size) != 0) {
        s_fail(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "OUT_OF_MEMORY");
        return MHD_YES;
    }
    memcpy(conn->body->body + conn->body_size, data, size);
    conn->body_size += size;
    return MHD_YES;
}

//  Moves the /pub body into the request as its one message.
static bool s_take_pub(connection_t *conn)
{
    if (conn->body_size == 0)
        return s_fail(conn, MHD_HTTP_BAD_REQUEST, "MSG_EMPTY");
    conn->body->size = (uint32_t) conn->body_size;
    conn->single[0] = conn->body;
    conn->body = NULL;
    conn->request.messages = conn->single;
    conn->request.message_count = 1;
    return true;
}

//  Splits the /mpub body into messages, all or nothing.
static bool s_take_mpub(connection_t *conn)
{
    const broker_config_t *config = &conn->server->config;
    const uint8_t *body = conn->body ? conn->body->body : NULL;
    const char *code = NULL;
    size_t count =
        broker_mpub_check(body, conn->body_size, conn->binary, (uint64_t) config->max_msg_size,
                          (uint64_t) config->max_body_size, &code);
    if (count == 0)
        return s_fail(conn,
                      strcmp(code, "MSG_EMPTY") == 0 ? MHD_HTTP_BAD_REQUEST
                                                     : MHD_HTTP_CONTENT_TOO_LARGE,
                      code);
    broker_request_t *request = &conn->request;
    request->messages = calloc(count, sizeof(nsq_message_t *));
    if (!request->messages)
        return s_fail(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "OUT_OF_MEMORY");
    size_t offset = 0, start, length;
    while (request->message_count < count
           && broker_mpub_next(body, conn->body_size, conn->binary, &offset, &start, &length)) {
        nsq_message_t *message = nsq_message_new(body + start, length);
        if (!message) {
            s_messages_release(conn, true);
            return s_fail(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "OUT_OF_MEMORY");
        }
        request->messages[request->message_count++] = message;
    }
    nsq_message_unref(&conn->body);
    return true;
}

//  --------------------------------------------------------------------------
//  Hand-over to the core

static void s_waiting_add(broker_http_t *self, connection_t *conn)
{
    conn->prev = NULL;
    conn->next = self->waiting;
    if (self->waiting)
        self->waiting->prev = conn;
    self->waiting = conn;
}

static void s_waiting_remove(broker_http_t *self, connection_t *conn)
{
    if (conn->prev)
        conn->prev->next = conn->next;
    else
        self->waiting = conn->next;
    if (conn->next)
        conn->next->prev = conn->prev;
    conn->prev = conn->next = NULL;
}

//  Core thread: the core is done with the request (broker_request_done).
static void s_on_done(broker_request_t *request, void *arg)
{
    connection_t *conn = arg;
    broker_http_t *self = conn->server;
    request->message_count = 0;       // the core took them; the array stays ours
    pthread_mutex_lock(&self->lock);  // waits for s_hand_over to have suspended it
    s_waiting_remove(self, conn);
    pthread_mutex_unlock(&self->lock);
    MHD_resume_connection(conn->mhd);
}

//  Passes the request to the core and suspends the connection until s_on_done.
//  Send and suspend happen under the lock, so s_on_done (which takes it too)
//  can never resume a connection that is not suspended yet.
static enum MHD_Result s_hand_over(connection_t *conn, struct MHD_Connection *mhd)
{
    broker_http_t *self = conn->server;
    pthread_mutex_lock(&self->lock);
    int rc = -1;
    if (!self->stopping)
        rc = broker_request_send(self->core_endpoint, &conn->request, s_on_done, conn);
    if (rc == 0) {
        conn->sent = true;
        conn->mhd = mhd;
        MHD_suspend_connection(mhd);
        s_waiting_add(self, conn);
    }
    pthread_mutex_unlock(&self->lock);
    if (rc == 0)
        return MHD_YES;
    s_messages_release(conn, true);  // still ours
    return s_answer_error(conn, mhd, MHD_HTTP_SERVICE_UNAVAILABLE, "EXITING");
}

//  Resumed: renders what the core answered, or 503 if it never will.
static enum MHD_Result s_answer_core(connection_t *conn, struct MHD_Connection *mhd)
{
    if (conn->abandoned) {
        s_messages_release(conn, true);  // the core never read them
        return s_answer_error(conn, mhd, MHD_HTTP_SERVICE_UNAVAILABLE, "EXITING");
    }
    s_messages_release(conn, false);
    return s_answer_request(conn, mhd);
}

//  Answers 503 to every request the core will never read (it has stopped),
//  and waits a little for those answers to leave.
static void s_abandon_waiting(broker_http_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->stopping = true;
    while (self->waiting) {
        connection_t *conn = self->waiting;
        s_waiting_remove(self, conn);
        conn->abandoned = true;
        self->abandoned++;
        MHD_resume_connection(conn->mhd);
    }
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += S_ABANDON_WAIT_S;
    while (self->abandoned > 0)
        if (pthread_cond_timedwait(&self->answered, &self->lock, &deadline) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&self->lock);
}

//  --------------------------------------------------------------------------
//  libmicrohttpd callbacks

//  Last call, the whole request is in: answer here or through the core.
static enum MHD_Result s_finish(connection_t *conn, struct MHD_Connection *mhd)
{
    if (conn->answered)
        return MHD_YES;
    if (conn->sent)
        return s_answer_core(conn, mhd);  // resumed
    if (!conn->error_status) {
        switch (conn->route->action) {
        case ACTION_PING:
            return s_answer_shared(conn, mhd, conn->server->ok);
        case ACTION_INFO:
            return s_answer_info(conn, mhd);
        case ACTION_PUB:
            s_take_pub(conn);
            break;
        case ACTION_MPUB:
            s_take_mpub(conn);
            break;
        default:
            break;
        }
    }
    if (conn->error_status)
        return s_answer_error(conn, mhd, conn->error_status, conn->error_code);
    return s_hand_over(conn, mhd);
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *mhd, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **request_context)
{
    (void) cls;
    (void) version;
    connection_t *conn = *request_context;
    if (!conn) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        conn = info ? info->socket_context : NULL;
        if (!conn)
            return MHD_NO;  // no memory for it when the connection came
        s_connection_reset(conn);
        *request_context = conn;
        return s_begin(conn, mhd, url, method);
    }
    if (*upload_data_size) {
        size_t size = *upload_data_size;
        *upload_data_size = 0;
        return s_read_body(conn, upload_data, size);
    }
    return s_finish(conn, mhd);
}

static void s_request_completed(void *cls, struct MHD_Connection *mhd, void **request_context,
                                enum MHD_RequestTerminationCode code)
{
    (void) cls;
    (void) mhd;
    (void) code;
    connection_t *conn = *request_context;
    if (conn && conn->abandoned) {
        broker_http_t *self = conn->server;
        pthread_mutex_lock(&self->lock);
        conn->abandoned = false;
        self->abandoned--;
        pthread_cond_signal(&self->answered);
        pthread_mutex_unlock(&self->lock);
    }
    if (conn)
        s_connection_release(conn);
    *request_context = NULL;
}

static void s_connection_notify(void *cls, struct MHD_Connection *mhd, void **socket_context,
                                enum MHD_ConnectionNotificationCode code)
{
    (void) mhd;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        connection_t *conn = calloc(1, sizeof(connection_t));
        if (conn)
            conn->server = cls;
        *socket_context = conn;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        s_connection_release(*socket_context);
        free(*socket_context);
        *socket_context = NULL;
    }
}

static void s_log(void *cls, const char *format, va_list args)
{
    broker_http_t *self = cls;
    char text[512];
    vsnprintf(text, sizeof(text), format, args);
    size_t size = strlen(text);
    while (size && (text[size - 1] == '\n' || text[size - 1] == ' '))
        text[--size] = '\0';
    if (atomic_load(&self->starting))
        snprintf(self->start_error, sizeof(self->start_error), "%s", text);
    else
        nsq_warn("http: %s", text);
}

//  --------------------------------------------------------------------------
//  Server

//  The port of "host:port", or 0.
static uint16_t s_address_port(const char *text)
{
    const char *colon = strrchr(text, ':');
    long long port;
    if (!colon || !s_parse_int(colon + 1, strlen(colon + 1), &port) || port < 0 || port > 65535)
        return 0;
    return (uint16_t) port;
}

//  As many connections as file descriptors allow, keeping some for the rest.
static unsigned s_connection_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
        return S_CONNECTION_LIMIT_MAX;
    rlim_t usable = limit.rlim_cur > 256 ? limit.rlim_cur - 128 : limit.rlim_cur / 2;
    return usable < S_CONNECTION_LIMIT_MAX ? (unsigned) usable : S_CONNECTION_LIMIT_MAX;
}

static struct MHD_Daemon *s_start(broker_http_t *self, struct sockaddr_storage *address)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_TURBO
                     | MHD_ALLOW_SUSPEND_RESUME | nsq_http_address_flags(address);
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_AUTO;
    unsigned threads = self->config.http_threads > 0 ? (unsigned) self->config.http_threads : 1;
    return MHD_start_daemon(flags, nsq_address_port(address), NULL, NULL, s_access, self,  //
                            MHD_OPTION_SOCK_ADDR, address,                                 //
                            MHD_OPTION_THREAD_POOL_SIZE, threads,                          //
                            MHD_OPTION_CONNECTION_LIMIT, s_connection_limit(),             //
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) S_CONNECTION_TIMEOUT_S,
                            MHD_OPTION_NOTIFY_CONNECTION, s_connection_notify, self,  //
                            MHD_OPTION_NOTIFY_COMPLETED, s_request_completed, self,   //
                            MHD_OPTION_EXTERNAL_LOGGER, s_log, self,                  //
                            MHD_OPTION_END);
}

//  The lock is held for a few instructions at a time by the HTTP threads and
//  the core: spin briefly rather than sleep at once. The wait for abandoned
//  answers uses the monotonic clock.
static void s_sync_init(broker_http_t *self)
{
    pthread_mutexattr_t lock_attributes;
    pthread_mutexattr_init(&lock_attributes);
    pthread_mutexattr_settype(&lock_attributes, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&self->lock, &lock_attributes);
    pthread_mutexattr_destroy(&lock_attributes);
    pthread_condattr_t cond_attributes;
    pthread_condattr_init(&cond_attributes);
    pthread_condattr_setclock(&cond_attributes, CLOCK_MONOTONIC);
    pthread_cond_init(&self->answered, &cond_attributes);
    pthread_condattr_destroy(&cond_attributes);
}

broker_http_t *broker_http_new(const broker_config_t *config, const char *core_endpoint)
{
    struct sockaddr_storage address;
    if (nsq_address_parse(config->http_address, &address) != 0) {
        nsq_error("http: cannot listen on '%s': not a host:port or [ipv6]:port",
                  config->http_address);
        return NULL;
    }
    broker_http_t *self = calloc(1, sizeof(broker_http_t));
    if (!self)
        return NULL;
    self->config = *config;
    s_sync_init(self);
    self->core_endpoint = strdup(core_endpoint);
    self->start_time = (int64_t) time(NULL);
    if (gethostname(self->hostname, sizeof(self->hostname) - 1) != 0)
        snprintf(self->hostname, sizeof(self->hostname), "localhost");
    atomic_store(&self->zmq_port, s_address_port(config->zmq_address));
    self->ok = s_shared_response("OK");
    self->empty = s_shared_response("");
    if (self->core_endpoint && self->ok && self->empty) {
        atomic_store(&self->starting, true);
        self->daemon = s_start(self, &address);
        atomic_store(&self->starting, false);
    }
    if (!self->daemon) {
        nsq_error("http: cannot listen on %s: %s", config->http_address,
                  self->start_error[0] ? self->start_error : "out of memory");
        broker_http_destroy(&self);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(self->daemon, MHD_DAEMON_INFO_BIND_PORT);
    self->port = info ? info->port : nsq_address_port(&address);
    return self;
}

uint16_t broker_http_port(broker_http_t *self)
{
    return self->port;
}

void broker_http_set_zmq_port(broker_http_t *self, uint16_t port)
{
    atomic_store(&self->zmq_port, port);
}

void broker_http_destroy(broker_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    broker_http_t *self = *self_p;
    if (self->daemon) {
        s_abandon_waiting(self);
        MHD_stop_daemon(self->daemon);
    }
    if (self->ok)
        MHD_destroy_response(self->ok);
    if (self->empty)
        MHD_destroy_response(self->empty);
    free(self->core_endpoint);
    pthread_cond_destroy(&self->answered);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  Self-test: a fake core on an inproc ROUTER, driven through libcurl

typedef struct {
    int requests;                       // requests the core saw
    broker_request_kind_t kind;         // of the last request
    char topic[BROKER_NAME_MAX + 1];    // of the last request
    char channel[BROKER_NAME_MAX + 1];  // of the last request
    int64_t defer_ms;                   // of the last request
    size_t message_count;               // of the last request
    size_t body_bytes;                  // sizes of its messages, summed
    char bodies[512];                   // its bodies, joined by '|'
} test_record_t;

typedef struct {
    char endpoint[64];     // where the fake core listens
    pthread_mutex_t lock;  // guards record
    test_record_t record;  // what the core saw
} test_core_t;

//  A copy of what the fake core saw so far.
static test_record_t s_test_record(test_core_t *core)
{
    pthread_mutex_lock(&core->lock);
    test_record_t record = core->record;
    pthread_mutex_unlock(&core->lock);
    return record;
}

//  Records request and answers like a core would. False: never answer it.
static bool s_test_core_handle(test_core_t *core, broker_request_t *request)
{
    // Decide first: once the record shows it, a vanishing request may be freed
    bool vanish = strcmp(request->topic, "vanish") == 0;
    pthread_mutex_lock(&core->lock);
    test_record_t *record = &core->record;
    record->requests++;
    record->kind = request->kind;
    memcpy(record->topic, request->topic, sizeof(record->topic));
    memcpy(record->channel, request->channel, sizeof(record->channel));
    record->defer_ms = request->defer_ms;
    record->message_count = request->message_count;
    record->bodies[0] = '\0';
    record->body_bytes = 0;
    for (size_t index = 0; index < request->message_count; index++) {
        record->body_bytes += request->messages[index]->size;
        size_t used = strlen(record->bodies);
        snprintf(record->bodies + used, sizeof(record->bodies) - used, "%s%.*s", index ? "|" : "",
                 (int) request->messages[index]->size, (char *) request->messages[index]->body);
    }
    pthread_mutex_unlock(&core->lock);
    if (vanish)
        return false;  // as a core that stopped before reading it
    for (size_t index = 0; index < request->message_count; index++)
        nsq_message_unref(&request->messages[index]);
    request->status = 200;
    if (strcmp(request->topic, "missing") == 0) {
        request->status = 404;
        request->error_code = "TOPIC_NOT_FOUND";
    } else if (request->kind == BROKER_REQUEST_PUB) {
        request->body = strdup("OK");
        request->content_type = S_TEXT_PLAIN;
    } else if (request->kind == BROKER_REQUEST_STATS_JSON) {
        request->body = strdup("{\"topics\":[]}");
        request->content_type = S_APPLICATION_JSON;
    }
    return true;
}

static void s_test_core_actor(zsock_t *pipe, void *args)
{
    test_core_t *core = args;
    zsock_t *router = zsock_new_router(core->endpoint);
    zsock_signal(pipe, router ? 0 : 1);
    zpoller_t *poller = router ? zpoller_new(pipe, router, NULL) : NULL;
    while (poller && zpoller_wait(poller, -1) == router) {
        zmsg_t *msg = zmsg_recv(router);
        zframe_t *identity = zmsg_pop(msg);
        zframe_t *pointer = zmsg_pop(msg);
        broker_request_t *request = NULL;
        if (identity && pointer && zframe_size(pointer) == sizeof(request))
            memcpy(&request, zframe_data(pointer), sizeof(request));
        if (request && s_test_core_handle(core, request))
            broker_request_done(request);
        zframe_destroy(&identity);
        zframe_destroy(&pointer);
        zmsg_destroy(&msg);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&router);
}

typedef struct {
    CURL *curl;       // one handle, so connections are reused
    uint16_t port;    // of the server under test
    long status;      // of the last answer
    char body[8192];  // of the last answer, NUL-terminated, truncated
    size_t body_size;
    char headers[4096];  // of the last answer
    size_t headers_size;
    const char *upload;  // chunked upload source
    size_t upload_size;
    size_t upload_sent;
} test_client_t;

static size_t s_test_append(char *out, size_t out_max, size_t *used, const char *data, size_t size)
{
    size_t room = out_max - 1 - *used;
    size_t take = size < room ? size : room;
    memcpy(out + *used, data, take);
    *used += take;
    out[*used] = '\0';
    return size;
}

static size_t s_test_on_body(char *data, size_t size, size_t count, void *arg)
{
    test_client_t *client = arg;
    return s_test_append(client->body, sizeof(client->body), &client->body_size, data,
                         size * count);
}

static size_t s_test_on_header(char *data, size_t size, size_t count, void *arg)
{
    test_client_t *client = arg;
    return s_test_append(client->headers, sizeof(client->headers), &client->headers_size, data,
                         size * count);
}

static size_t s_test_on_upload(char *data, size_t size, size_t count, void *arg)
{
    test_client_t *client = arg;
    size_t take = client->upload_size - client->upload_sent;
    if (take > size * count)
        take = size * count;
    if (take > 1000)
        take = 1000;  // several chunks
    memcpy(data, client->upload + client->upload_sent, take);
    client->upload_sent += take;
    return take;
}

//  Sends one request; body NULL = none; chunked uploads it without a length.
//  Returns the status (0 if the transfer failed).
static long s_test_http(test_client_t *client, const char *method, const char *path,
                        const void *body, size_t body_size, bool chunked)
{
    CURL *curl = client->curl;
    curl_easy_reset(curl);  // keeps the connection cache
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", client->port, path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_test_on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, client);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, s_test_on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, client);
    struct curl_slist *headers = curl_slist_append(NULL, "Expect: 100-continue");
    if (body && chunked) {
        client->upload = body;
        client->upload_size = body_size;
        client->upload_sent = 0;
        curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(curl, CURLOPT_READFUNCTION, s_test_on_upload);
        curl_easy_setopt(curl, CURLOPT_READDATA, client);
        headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
    } else if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long) body_size);
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    client->status = 0;
    client->body_size = client->headers_size = 0;
    client->body[0] = client->headers[0] = '\0';
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &client->status);
    curl_slist_free_all(headers);
    return client->status;
}

//  True if the last answer was status with exactly body (NULL: not checked).
static bool s_test_answer(test_client_t *client, long status, const char *body)
{
    if (client->status == status && (!body || strcmp(client->body, body) == 0))
        return true;
    fprintf(stderr, "broker_http_test: expected %ld '%s', got %ld '%s'\n", status,
            body ? body : "*", client->status, client->body);
    return false;
}

//  True if the last answer was NSQ's JSON error code with status.
static bool s_test_error(test_client_t *client, long status, const char *code)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"message\":\"%s\"}", code);
    return s_test_answer(client, status, body) && strstr(client->headers, S_APPLICATION_JSON)
           && strstr(client->headers, "X-NSQ-Content-Type: " S_NSQ_CONTENT_TYPE);
}

//  True if the fake core saw `requests` requests, the last matching the rest.
static bool s_test_core_saw(test_core_t *core, int requests, broker_request_kind_t kind,
                            const char *topic, size_t count, const char *bodies)
{
    test_record_t seen = s_test_record(core);
    bool same = seen.requests == requests && seen.kind == kind && strcmp(seen.topic, topic) == 0
                && seen.message_count == count && strcmp(seen.bodies, bodies) == 0;
    if (!same)
        fprintf(stderr, "broker_http_test: core saw %d requests, kind %d topic '%s' %zu '%s'\n",
                seen.requests, (int) seen.kind, seen.topic, seen.message_count, seen.bodies);
    return same;
}

static bool s_test_fixed(test_client_t *client, test_core_t *core)
{
    char port[32];
    snprintf(port, sizeof(port), "\"http_port\":%u,", client->port);
    bool good = s_test_http(client, "GET", "/ping", NULL, 0, false)
                && s_test_answer(client, 200, "OK") && strstr(client->headers, S_TEXT_PLAIN)
                && s_test_http(client, "GET", "/info", NULL, 0, false)
                && s_test_answer(client, 200, NULL) && strstr(client->body, port)
                && strstr(client->body, "\"version\":\"" NSQ_VERSION "\"")
                && strstr(client->body, "\"zmq_port\":4999,")
                && strstr(client->body, "\"max_msg_size\":10000,");
    good = good && s_test_http(client, "GET", "/nope", NULL, 0, false)
           && s_test_error(client, 404, "NOT_FOUND")
           && s_test_http(client, "GET", "/pub?topic=t", NULL, 0, false)
           && s_test_error(client, 405, "METHOD_NOT_ALLOWED")
           && s_test_http(client, "DELETE", "/ping", NULL, 0, false)
           && s_test_error(client, 405, "METHOD_NOT_ALLOWED");
    return good && s_test_record(core).requests == 0;
}

static bool s_test_pub(test_client_t *client, test_core_t *core, char *big)
{
    char long_name[128];
    snprintf(long_name, sizeof(long_name), "/pub?topic=%.65s", big);  // 65 'a's
    bool good = s_test_http(client, "POST", "/pub?topic=orders", "hello", 5, false)
                && s_test_answer(client, 200, "OK")
                && s_test_core_saw(core, 1, BROKER_REQUEST_PUB, "orders", 1, "hello")
                && s_test_record(core).defer_ms == 0
                && s_test_http(client, "PUT", "/pub?topic=orders&defer=1500", "later", 5, false)
                && s_test_answer(client, 200, "OK")
                && s_test_core_saw(core, 2, BROKER_REQUEST_PUB, "orders", 1, "later")
                && s_test_record(core).defer_ms == 1500;
    const char *refused[][3] = {
        {"/pub?topic=t&defer=-1", "400", "INVALID_DEFER"},
        {"/pub?topic=t&defer=abc", "400", "INVALID_DEFER"},
        {"/pub?topic=t&defer=60001", "400", "INVALID_DEFER"},
        {"/pub", "400", "MISSING_ARG_TOPIC"},
        {"/pub?topic=bad%20topic", "400", "INVALID_TOPIC"},
        {"/pub?topic=a%00b", "400", "INVALID_TOPIC"},
        {"/pub?topic=t&defer=1%00", "400", "INVALID_DEFER"},
        {long_name, "400", "INVALID_TOPIC"},
    };
    for (size_t index = 0; good && index < sizeof(refused) / sizeof(refused[0]); index++)
        good = s_test_http(client, "POST", refused[index][0], "x", 1, false)
               && s_test_error(client, atol(refused[index][1]), refused[index][2]);
    good = good && s_test_http(client, "POST", "/pub?topic=t", "", 0, false)
           && s_test_error(client, 400, "MSG_EMPTY")
           && s_test_http(client, "POST", "/pub?topic=t", big, 10001, false)
           && s_test_error(client, 413, "MSG_TOO_BIG")
           && s_test_http(client, "PUT", "/pub?topic=t", big, 10001, true)
           && s_test_error(client, 413, "MSG_TOO_BIG") && s_test_record(core).requests == 2;
    good = good && s_test_http(client, "POST", "/pub?topic=t", big, 10000, false)
           && s_test_answer(client, 200, "OK") && s_test_record(core).requests == 3
           && s_test_record(core).body_bytes == 10000
           && s_test_http(client, "PUT", "/pub?topic=t", big, 9000, true)
           && s_test_answer(client, 200, "OK") && s_test_record(core).requests == 4
           && s_test_record(core).body_bytes == 9000;
    return good;
}

//  Writes a binary /mpub body declaring count messages; returns its size.
static size_t s_test_binary(uint8_t *out, uint32_t count, const char **bodies, size_t body_count)
{
    size_t size = 0;
    uint32_t values[1 + 16];
    values[0] = count;
    for (size_t index = 0; index < body_count; index++)
        values[1 + index] = (uint32_t) strlen(bodies[index]);
    for (size_t index = 0; index <= body_count; index++) {
        if (index > 0) {
            memcpy(out + size + 4, bodies[index - 1], values[index]);
        }
        out[size] = (uint8_t) (values[index] >> 24);
        out[size + 1] = (uint8_t) (values[index] >> 16);
        out[size + 2] = (uint8_t) (values[index] >> 8);
        out[size + 3] = (uint8_t) values[index];
        size += 4 + (index > 0 ? values[index] : 0);
    }
    return size;
}

static bool s_test_mpub(test_client_t *client, test_core_t *core, char *big)
{
    int seen = s_test_record(core).requests;
    const char *text = "a\n\nbb\nccc\n";
    bool good = s_test_http(client, "PUT", "/mpub?topic=t", text, strlen(text), false)
                && s_test_answer(client, 200, "OK")
                && s_test_core_saw(core, ++seen, BROKER_REQUEST_PUB, "t", 3, "a|bb|ccc")
                && s_test_record(core).defer_ms == 0
                && s_test_http(client, "POST", "/mpub?topic=t&defer=250", "d\ne", 3, false)
                && s_test_answer(client, 200, "OK")
                && s_test_core_saw(core, ++seen, BROKER_REQUEST_PUB, "t", 2, "d|e")
                && s_test_record(core).defer_ms == 250
                && s_test_http(client, "POST", "/mpub?topic=t&defer=60001", "d", 1, false)
                && s_test_error(client, 400, "INVALID_DEFER")
                && s_test_http(client, "POST", "/mpub?topic=t", "\n\n", 2, false)
                && s_test_error(client, 400, "MSG_EMPTY");
    uint8_t body[256];
    size_t size = s_test_binary(body, 3, (const char *[]){"x", "yy", "zzz"}, 3);
    good = good && s_test_http(client, "POST", "/mpub?topic=t&binary=true", body, size, false)
           && s_test_answer(client, 200, "OK")
           && s_test_core_saw(core, ++seen, BROKER_REQUEST_PUB, "t", 3, "x|yy|zzz");
    size = s_test_binary(body, 5, (const char *[]){"x", "yy", "zzz"}, 3);
    good = good && s_test_http(client, "POST", "/mpub?topic=t&binary=true", body, size, false)
           && s_test_error(client, 413, "BAD_MESSAGE");
    size = s_test_binary(body, 1, (const char *[]){"x"}, 1);
    good = good && s_test_http(client, "POST", "/mpub?topic=t&binary=1", body, size + 1, false)
           && s_test_error(client, 413, "BAD_BODY");
    size = s_test_binary(body, 2, (const char *[]){"x", ""}, 2);
    good = good && s_test_http(client, "POST", "/mpub?topic=t&binary=1", body, size, false)
           && s_test_error(client, 413, "BAD_MESSAGE");
    size = s_test_binary(body, 0, NULL, 0);
    good = good && s_test_http(client, "POST", "/mpub?topic=t&binary=1", body, size, false)
           && s_test_error(client, 413, "BAD_BODY");
    good = good && s_test_http(client, "POST", "/mpub?topic=t", big, 10001, false)
           && s_test_error(client, 413, "MSG_TOO_BIG")
           && s_test_http(client, "POST", "/mpub?topic=t", big, 30001, false)
           && s_test_error(client, 413, "BODY_TOO_BIG")
           && s_test_http(client, "PUT", "/mpub?topic=t", big, 30001, true)
           && s_test_error(client, 413, "BODY_TOO_BIG");
    return good && s_test_record(core).requests == seen;
}

static bool s_test_admin(test_client_t *client, test_core_t *core)
{
    int seen = s_test_record(core).requests;
    bool good = s_test_http(client, "POST", "/topic/create?topic=t", "ignored", 7, false)
                && s_test_answer(client, 200, "")
                && s_test_core_saw(core, ++seen, BROKER_REQUEST_TOPIC_CREATE, "t", 0, "")
                && s_test_http(client, "POST", "/topic/pause?topic=missing", NULL, 0, false)
                && s_test_error(client, 404, "TOPIC_NOT_FOUND") && ++seen
                && s_test_http(client, "POST", "/channel/create?topic=t&channel=c", NULL, 0, false)
                && s_test_answer(client, 200, "")
                && s_test_core_saw(core, ++seen, BROKER_REQUEST_CHANNEL_CREATE, "t", 0, "")
                && strcmp(s_test_record(core).channel, "c") == 0;
    good = good && s_test_http(client, "POST", "/channel/delete?topic=t", NULL, 0, false)
           && s_test_error(client, 400, "MISSING_ARG_CHANNEL")
           && s_test_http(client, "POST", "/channel/delete?topic=t&channel=a!", NULL, 0, false)
           && s_test_error(client, 400, "INVALID_ARG_CHANNEL")
           && s_test_http(client, "GET", "/topic/create?topic=t", NULL, 0, false)
           && s_test_error(client, 405, "METHOD_NOT_ALLOWED")
           && s_test_http(client, "GET", "/stats?format=xml", NULL, 0, false)
           && s_test_error(client, 400, "INVALID_FORMAT") && s_test_record(core).requests == seen;
    good = good && s_test_http(client, "GET", "/stats", NULL, 0, false)
           && s_test_answer(client, 200, "")
           && s_test_core_saw(core, ++seen, BROKER_REQUEST_STATS_TEXT, "", 0, "")
           && s_test_http(client, "GET", "/stats?format=json&topic=t", NULL, 0, false)
           && s_test_answer(client, 200, "{\"topics\":[]}")
           && strstr(client->headers, S_APPLICATION_JSON)
           && s_test_core_saw(core, ++seen, BROKER_REQUEST_STATS_JSON, "t", 0, "")
           && s_test_http(client, "GET", "/metrics", NULL, 0, false)
           && s_test_core_saw(core, ++seen, BROKER_REQUEST_METRICS, "", 0, "");
    return good;
}

//  A core that is going away: nothing more reaches it.
static bool s_test_exiting(test_client_t *client, test_core_t *core)
{
    int seen = s_test_record(core).requests;
    broker_request_set_exiting(true);
    bool good = s_test_http(client, "POST", "/pub?topic=t", "x", 1, false)
                && s_test_error(client, 503, "EXITING") && s_test_record(core).requests == seen;
    broker_request_set_exiting(false);
    good = good && s_test_http(client, "POST", "/pub?topic=t", "after", 5, false)
           && s_test_answer(client, 200, "OK")
           && s_test_core_saw(core, ++seen, BROKER_REQUEST_PUB, "t", 1, "after");
    return good;
}

static void *s_test_vanish_thread(void *arg)
{
    test_client_t *client = arg;
    s_test_http(client, "POST", "/pub?topic=vanish", "gone", 4, false);
    return NULL;
}

//  A request the core never answers gets 503 when the server is destroyed.
static bool s_test_abandon(broker_http_t **server_p, test_core_t *core, uint16_t port)
{
    test_client_t *client = calloc(1, sizeof(test_client_t));
    if (!client)
        return false;
    client->port = port;
    client->curl = curl_easy_init();
    pthread_t thread;
    if (!client->curl || pthread_create(&thread, NULL, s_test_vanish_thread, client) != 0) {
        curl_easy_cleanup(client->curl);
        free(client);
        return false;
    }
    int seen = s_test_record(core).requests;
    int64_t deadline = zclock_mono() + 5000;
    while (s_test_record(core).requests == seen && zclock_mono() < deadline)
        zclock_sleep(1);
    bool good = s_test_core_saw(core, seen + 1, BROKER_REQUEST_PUB, "vanish", 1, "gone");
    broker_request_set_exiting(true);
    broker_http_destroy(server_p);
    broker_request_set_exiting(false);
    pthread_join(thread, NULL);
    good = good && s_test_error(client, 503, "EXITING");
    curl_easy_cleanup(client->curl);
    free(client);
    return good;
}

//  Servers that cannot start say NULL.
static bool s_test_refusals(const broker_config_t *config, uint16_t port_in_use)
{
    broker_config_t bad = *config;
    snprintf(bad.http_address, sizeof(bad.http_address), "127.0.0.1:99999");
    broker_http_t *server = broker_http_new(&bad, "inproc://nowhere");
    bool refused = !server;
    broker_http_destroy(&server);
    snprintf(bad.http_address, sizeof(bad.http_address), "127.0.0.1:%u", port_in_use);
    server = broker_http_new(&bad, "inproc://nowhere");
    refused = refused && !server;
    broker_http_destroy(&server);
    return refused;
}

int broker_http_test(void)
{
    broker_config_t config;
    broker_config_defaults(&config);
    snprintf(config.http_address, sizeof(config.http_address), "127.0.0.1:0");
    config.max_msg_size = 10000;
    config.max_body_size = 30000;
    config.max_req_timeout_ms = 60000;
    test_core_t core = {.record.requests = 0};
    pthread_mutex_init(&core.lock, NULL);
    snprintf(core.endpoint, sizeof(core.endpoint), "inproc://broker-http-test-%p", (void *) &core);
    zactor_t *core_actor = zactor_new(s_test_core_actor, &core);
    broker_http_t *server = broker_http_new(&config, core.endpoint);
    char *big = malloc(40000);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_client_t *client = calloc(1, sizeof(test_client_t));
    bool good = core_actor && server && big && client && (client->curl = curl_easy_init());
    if (good) {
        memset(big, 'a', 40000);
        client->port = broker_http_port(server);
        broker_http_set_zmq_port(server, 4999);
        good = client->port != 0 && s_test_fixed(client, &core) && s_test_pub(client, &core, big)
               && s_test_mpub(client, &core, big) && s_test_admin(client, &core)
               && s_test_exiting(client, &core) && s_test_refusals(&config, client->port)
               && s_test_abandon(&server, &core, client->port) && !server;
    }
    if (client)
        curl_easy_cleanup(client->curl);
    free(client);
    free(big);
    curl_global_cleanup();
    broker_http_destroy(&server);
    broker_http_destroy(&server);  // NULL is accepted
    broker_request_shutdown();
    zactor_destroy(&core_actor);
    pthread_mutex_destroy(&core.lock);
    return good ? 0 : -1;
}
