/*  broker_http_test - broker_http_test(): the HTTP door against a fake core
    that takes its requests as the broker's loop would, driven by a libcurl
    client: routes, argument checks, bodies, answers, the exiting flag and
    requests abandoned at shutdown
    SPDX-License-Identifier: MIT
*/
#include <czmq.h>
#include <curl/curl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_http.h"
#include "broker_http_answer.h"

typedef struct {
    int requests;                    // requests the core saw
    broker_http_kind_t kind;         // of the last request
    char topic[NSQ_NAME_MAX + 1];    // of the last request
    char channel[NSQ_NAME_MAX + 1];  // of the last request
    int64_t defer_ms;                // of the last request
    size_t message_count;            // of the last request
    size_t body_bytes;               // sizes of its messages, summed
    char bodies[512];                // its bodies, joined by '|'
} test_record_t;

typedef struct {
    broker_http_t *server;  // whose requests the fake core takes
    atomic_bool stop;       // the fake core's thread ends
    pthread_t thread;       // the fake core's thread
    pthread_mutex_t lock;   // guards record
    test_record_t record;   // what the core saw
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
static bool s_test_core_handle(test_core_t *core, broker_http_request_t *request)
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
    request->result = BROKER_OK;
    request->stats = NULL;
    if (strcmp(request->topic, "missing") == 0)
        request->result = BROKER_TOPIC_NOT_FOUND;
    else if (request->kind == BROKER_HTTP_STATS_JSON)
        request->stats = broker_stats_new(0);  // an empty broker, started at 0
    return true;
}

static bool s_test_core_handler(void *arg, broker_http_request_t *request)
{
    return s_test_core_handle(arg, request);
}

//  The fake core's thread: takes requests as the broker's loop would.
static void *s_test_core_thread(void *arg)
{
    test_core_t *core = arg;
    struct pollfd wakeup = {broker_http_handoff_fd(core->server), POLLIN, 0};
    while (!atomic_load(&core->stop))
        if (poll(&wakeup, 1, 10) > 0)
            broker_http_take(core->server, s_test_core_handler, core);
    return NULL;
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
    return s_test_answer(client, status, body)
           && strstr(client->headers, BROKER_HTTP_APPLICATION_JSON)
           && strstr(client->headers, "X-NSQ-Content-Type: " BROKER_HTTP_NSQ_CONTENT_TYPE);
}

//  True if the fake core saw `requests` requests, the last matching the rest.
static bool s_test_core_saw(test_core_t *core, int requests, broker_http_kind_t kind,
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
    bool good =
        s_test_http(client, "GET", "/ping", NULL, 0, false) && s_test_answer(client, 200, "OK")
        && strstr(client->headers, BROKER_HTTP_TEXT_PLAIN)
        && s_test_http(client, "GET", "/info", NULL, 0, false) && s_test_answer(client, 200, NULL)
        && strstr(client->body, port) && strstr(client->body, "\"version\":\"" NSQ_VERSION "\"")
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
                && s_test_core_saw(core, 1, BROKER_HTTP_PUB, "orders", 1, "hello")
                && s_test_record(core).defer_ms == 0
                && s_test_http(client, "PUT", "/pub?topic=orders&defer=1500", "later", 5, false)
                && s_test_answer(client, 200, "OK")
                && s_test_core_saw(core, 2, BROKER_HTTP_PUB, "orders", 1, "later")
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
                && s_test_core_saw(core, ++seen, BROKER_HTTP_PUB, "t", 3, "a|bb|ccc")
                && s_test_record(core).defer_ms == 0
                && s_test_http(client, "POST", "/mpub?topic=t&defer=250", "d\ne", 3, false)
                && s_test_answer(client, 200, "OK")
                && s_test_core_saw(core, ++seen, BROKER_HTTP_PUB, "t", 2, "d|e")
                && s_test_record(core).defer_ms == 250
                && s_test_http(client, "POST", "/mpub?topic=t&defer=60001", "d", 1, false)
                && s_test_error(client, 400, "INVALID_DEFER")
                && s_test_http(client, "POST", "/mpub?topic=t", "\n\n", 2, false)
                && s_test_error(client, 400, "MSG_EMPTY");
    uint8_t body[256];
    size_t size = s_test_binary(body, 3, (const char *[]){"x", "yy", "zzz"}, 3);
    good = good && s_test_http(client, "POST", "/mpub?topic=t&binary=true", body, size, false)
           && s_test_answer(client, 200, "OK")
           && s_test_core_saw(core, ++seen, BROKER_HTTP_PUB, "t", 3, "x|yy|zzz");
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
                && s_test_core_saw(core, ++seen, BROKER_HTTP_TOPIC_CREATE, "t", 0, "")
                && s_test_http(client, "POST", "/topic/pause?topic=missing", NULL, 0, false)
                && s_test_error(client, 404, "TOPIC_NOT_FOUND") && ++seen
                && s_test_http(client, "POST", "/channel/create?topic=t&channel=c", NULL, 0, false)
                && s_test_answer(client, 200, "")
                && s_test_core_saw(core, ++seen, BROKER_HTTP_CHANNEL_CREATE, "t", 0, "")
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
           && s_test_core_saw(core, ++seen, BROKER_HTTP_STATS_TEXT, "", 0, "")
           && s_test_http(client, "GET", "/stats?format=json&topic=t", NULL, 0, false)
           && s_test_answer(client, 200,
                            "{\"version\":\"" NSQ_VERSION "\",\"health\":\"OK\",\"start_time\":0,"
                            "\"topics\":[],\"producers\":[],\"client_count\":0,"
                            "\"send_blocked_count\":0}")
           && strstr(client->headers, BROKER_HTTP_APPLICATION_JSON)
           && s_test_core_saw(core, ++seen, BROKER_HTTP_STATS_JSON, "t", 0, "")
           && s_test_http(client, "GET", "/metrics", NULL, 0, false)
           && s_test_core_saw(core, ++seen, BROKER_HTTP_METRICS, "", 0, "");
    return good;
}

//  A core that is going away: nothing more reaches it.
static bool s_test_exiting(test_client_t *client, test_core_t *core)
{
    int seen = s_test_record(core).requests;
    broker_http_set_exiting(core->server, true);
    bool good = s_test_http(client, "POST", "/pub?topic=t", "x", 1, false)
                && s_test_error(client, 503, "EXITING") && s_test_record(core).requests == seen;
    broker_http_set_exiting(core->server, false);
    good = good && s_test_http(client, "POST", "/pub?topic=t", "after", 5, false)
           && s_test_answer(client, 200, "OK")
           && s_test_core_saw(core, ++seen, BROKER_HTTP_PUB, "t", 1, "after");
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
    bool good = s_test_core_saw(core, seen + 1, BROKER_HTTP_PUB, "vanish", 1, "gone");
    atomic_store(&core->stop, true);  // a core that stopped: it takes nothing more
    pthread_join(core->thread, NULL);
    broker_http_set_exiting(*server_p, true);
    broker_http_destroy(server_p);
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
    broker_http_t *server = broker_http_new(&bad);
    bool refused = !server;
    broker_http_destroy(&server);
    snprintf(bad.http_address, sizeof(bad.http_address), "127.0.0.1:%u", port_in_use);
    server = broker_http_new(&bad);
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
    broker_http_t *server = broker_http_new(&config);
    core.server = server;
    bool core_started =
        server && pthread_create(&core.thread, NULL, s_test_core_thread, &core) == 0;
    char *big = malloc(40000);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_client_t *client = calloc(1, sizeof(test_client_t));
    bool good = core_started && big && client && (client->curl = curl_easy_init());
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
    if (core_started && !atomic_load(&core.stop)) {
        atomic_store(&core.stop, true);
        pthread_join(core.thread, NULL);
    }
    broker_http_destroy(&server);
    broker_http_destroy(&server);  // NULL is accepted
    pthread_mutex_destroy(&core.lock);
    return good ? 0 : -1;
}
