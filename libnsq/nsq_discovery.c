/*  nsq_discovery - finds the brokers that hold a topic by polling lookupds
    SPDX-License-Identifier: MIT

    The owner talks to the actor with ["ADD", address], ["INTERVAL", ms]
    and $TERM; the actor answers rounds with ["BROKERS", address...]. One
    curl easy handle is reused (keep-alive); a progress callback aborts a
    transfer as soon as the owner wants the actor to stop.
*/
#include "nsq_discovery.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_http_client.h"
#include "nsq_log.h"

#define S_CONNECT_TIMEOUT_MS 1000               // per lookupd
#define S_TOTAL_TIMEOUT_MS   3000               // per lookupd
#define S_BODY_MAX           (4 * 1024 * 1024)  // larger /lookup answers are refused
#define S_INTERVAL_MIN_MS    10

struct _nsq_discovery_t {
    zactor_t *actor;  // the polling thread
    zlistx_t *taken;  // brokers nsq_discovery_apply's owner took, "host:port"
};

typedef struct {
    char *data;   // NUL-terminated
    size_t size;  // bytes
    bool overflow;
} s_buffer_t;

typedef struct {
    zsock_t *pipe;        // to the owner
    char topic[160];      // url-encoded topic
    zlistx_t *lookupds;   // "host:port", owned strings
    zhashx_t *failing;    // lookupds whose last poll failed (log once)
    int64_t interval_ms;  // between rounds
    int64_t next_poll;    // zclock_mono of the next round
    CURL *curl;           // reused handle
    char *tls[3];         // https: CA file, client certificate, its key (NULL = unset)
} s_poller_t;

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;

static void s_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

// ---- parsing ------------------------------------------------------------------

static bool s_listed(zlistx_t *list, const char *text)
{
    for (const char *item = zlistx_first(list); item; item = zlistx_next(list))
        if (streq(item, text))
            return true;
    return false;
}

// Adds "broadcast_address:zmq_port" of one producer object; false if it
// lacks either (a plain nsqlookupd's producers have no zmq_port).
static bool s_add_producer(const json_t *producer, zlistx_t *brokers)
{
    const json_t *host = json_object_get(producer, "broadcast_address");
    const json_t *port = json_object_get(producer, "zmq_port");
    if (!json_is_string(host) || !json_string_length(host) || !json_is_integer(port)
        || json_integer_value(port) < 1 || json_integer_value(port) > 65535)
        return false;
    const char *name = json_string_value(host);
    char address[300];
    bool ipv6 = strchr(name, ':') != NULL;
    snprintf(address, sizeof address, ipv6 ? "[%s]:%lld" : "%s:%lld", name,
             (long long) json_integer_value(port));
    if (!s_listed(brokers, address))
        zlistx_add_end(brokers, strdup(address));
    return true;
}

size_t nsq_discovery_parse(const char *json, zlistx_t *brokers)
{
    json_t *answer = json ? json_loads(json, 0, NULL) : NULL;
    json_t *producers = json_object_get(answer, "producers");
    if (!producers)  // nsqlookupd before 1.0 wrapped its answer in "data"
        producers = json_object_get(json_object_get(answer, "data"), "producers");
    size_t count = 0, index;
    json_t *producer;
    json_array_foreach(producers, index, producer) count += s_add_producer(producer, brokers);
    json_decref(answer);
    return count;
}

// ---- polling ------------------------------------------------------------------

static size_t s_collect(char *data, size_t size, size_t count, void *arg)
{
    s_buffer_t *buffer = arg;
    size_t bytes = size * count;
    if (buffer->size + bytes > S_BODY_MAX) {
        buffer->overflow = true;
        return 0;
    }
    char *grown = realloc(buffer->data, buffer->size + bytes + 1);
    if (!grown)
        return 0;
    memcpy(grown + buffer->size, data, bytes);
    buffer->data = grown;
    buffer->size += bytes;
    buffer->data[buffer->size] = '\0';
    return bytes;
}

// Aborts the transfer when the owner has sent something (e.g. $TERM).
static int s_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                      curl_off_t ulnow)
{
    (void) dltotal, (void) dlnow, (void) ultotal, (void) ulnow;
    s_poller_t *self = arg;
    return (zsock_events(self->pipe) & ZMQ_POLLIN) ? 1 : 0;
}

// Asks one lookupd; adds its brokers. Returns true if it answered.
static bool s_ask(s_poller_t *self, const char *lookupd, zlistx_t *brokers)
{
    char url[512], path[200];
    snprintf(path, sizeof path, "/lookup?topic=%s", self->topic);
    nsq_http_client_url(url, sizeof url, lookupd, path);
    s_buffer_t buffer = {NULL, 0, false};
    curl_easy_setopt(self->curl, CURLOPT_URL, url);
    nsq_http_client_tls_t tls = {self->tls[0], self->tls[1], self->tls[2]};
    nsq_http_client_tls_apply(self->curl, &tls);
    curl_easy_setopt(self->curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(self->curl, CURLOPT_WRITEDATA, &buffer);
    curl_easy_setopt(self->curl, CURLOPT_CONNECTTIMEOUT_MS, (long) S_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(self->curl, CURLOPT_TIMEOUT_MS, (long) S_TOTAL_TIMEOUT_MS);
    curl_easy_setopt(self->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(self->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(self->curl, CURLOPT_XFERINFOFUNCTION, s_progress);
    curl_easy_setopt(self->curl, CURLOPT_XFERINFODATA, self);
    CURLcode rc = curl_easy_perform(self->curl);
    long status = 0;
    curl_easy_getinfo(self->curl, CURLINFO_RESPONSE_CODE, &status);
    bool answered = rc == CURLE_OK && (status == 200 || status == 404);
    if (answered && status == 200)
        nsq_discovery_parse(buffer.data, brokers);
    if (!answered && !zhashx_lookup(self->failing, lookupd)) {
        nsq_warn("lookupd %s: query failed: %s", lookupd,
                 rc != CURLE_OK ? curl_easy_strerror(rc) : "unexpected HTTP status");
        zhashx_insert(self->failing, lookupd, (void *) 1);
    } else if (answered && zhashx_lookup(self->failing, lookupd)) {
        nsq_info("lookupd %s: answering again", lookupd);
        zhashx_delete(self->failing, lookupd);
    }
    free(buffer.data);
    return answered;
}

static void s_round(s_poller_t *self)
{
    zlistx_t *brokers = zlistx_new();
    zlistx_set_destructor(brokers, (zlistx_destructor_fn *) zstr_free);
    bool answered = false;
    zlistx_t *lookupds = zlistx_dup(self->lookupds);
    for (const char *lookupd = zlistx_first(lookupds); lookupd; lookupd = zlistx_next(lookupds)) {
        if (zsock_events(self->pipe) & ZMQ_POLLIN)
            break;  // the owner wants something: answer it first
        answered |= s_ask(self, lookupd, brokers);
    }
    zlistx_destroy(&lookupds);
    if (answered) {
        zmsg_t *result = zmsg_new();
        zmsg_addstr(result, "BROKERS");
        for (const char *broker = zlistx_first(brokers); broker; broker = zlistx_next(brokers))
            zmsg_addstr(result, broker);
        zmsg_send(&result, self->pipe);
    }
    zlistx_destroy(&brokers);
    int64_t jitter = self->interval_ms / 5;
    self->next_poll = zclock_mono() + self->interval_ms - (jitter ? random() % jitter : 0);
}

// Handles one owner message; returns -1 on $TERM.
static int s_on_pipe(s_poller_t *self)
{
    zmsg_t *message = zmsg_recv(self->pipe);
    char *command = message ? zmsg_popstr(message) : NULL;
    char *value = message ? zmsg_popstr(message) : NULL;
    int rc = !command || streq(command, "$TERM") ? -1 : 0;
    if (command && value && streq(command, "ADD")) {
        if (!s_listed(self->lookupds, value))
            zlistx_add_end(self->lookupds, value);  // copied by the list's duplicator
        self->next_poll = 0;
    } else if (command && value && streq(command, "TLS")) {
        for (int index = 0; index < 3; index++) {
            free(self->tls[index]);
            self->tls[index] = index ? zmsg_popstr(message) : strdup(value);
        }
    } else if (command && value && streq(command, "INTERVAL")) {
        self->interval_ms = atoll(value);
        if (self->next_poll > zclock_mono() + self->interval_ms)
            self->next_poll = zclock_mono() + self->interval_ms;
    }
    zstr_free(&command);
    zstr_free(&value);
    zmsg_destroy(&message);
    return rc;
}

static void s_actor(zsock_t *pipe, void *args)
{
    s_poller_t self = {.pipe = pipe, .interval_ms = NSQ_DISCOVERY_INTERVAL_DEFAULT_MS};
    size_t used = 0;
    for (const char *c = args; *c && used + 4 < sizeof self.topic; c++)
        used += (size_t) snprintf(self.topic + used, sizeof self.topic - used,
                                  *c == '#' ? "%%23" : "%c", *c);
    self.lookupds = zlistx_new();
    self.failing = zhashx_new();
    self.curl = curl_easy_init();
    zsock_signal(pipe, 0);
    zlistx_set_destructor(self.lookupds, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_duplicator(self.lookupds, (zlistx_duplicator_fn *) strdup);
    zpoller_t *poller = zpoller_new(pipe, NULL);
    zpoller_set_nonstop(poller, true);
    while (self.curl && poller) {
        bool polling = zlistx_size(self.lookupds) > 0;
        if (polling && zclock_mono() >= self.next_poll) {
            s_round(&self);
            continue;
        }
        int64_t wait = polling ? self.next_poll - zclock_mono() : -1;
        if (zpoller_wait(poller, (int) wait) == pipe && s_on_pipe(&self))
            break;
    }
    zpoller_destroy(&poller);
    if (self.curl)
        curl_easy_cleanup(self.curl);
    zhashx_destroy(&self.failing);
    zlistx_destroy(&self.lookupds);
    for (int index = 0; index < 3; index++)
        free(self.tls[index]);
}

// ---- owner side -----------------------------------------------------------------

nsq_discovery_t *nsq_discovery_new(const char *topic)
{
    pthread_once(&s_curl_once, s_curl_init);
    nsq_discovery_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->actor = zactor_new(s_actor, (void *) topic);
    self->taken = zlistx_new();
    if (!self->actor || !self->taken) {
        nsq_discovery_destroy(&self);
        return NULL;
    }
    zlistx_set_destructor(self->taken, (zlistx_destructor_fn *) zstr_free);
    return self;
}

void nsq_discovery_destroy(nsq_discovery_t **self_p)
{
    nsq_discovery_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    zactor_destroy(&self->actor);
    zlistx_destroy(&self->taken);
    free(self);
    *self_p = NULL;
}

int nsq_discovery_add(nsq_discovery_t *self, const char *address)
{
    bool https = strncmp(address, "https://", 8) == 0;
    const char *hostport = strncmp(address, "http://", 7) == 0 ? address + 7
                           : https                             ? address + 8
                                                               : address;
    const char *colon = strrchr(hostport, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == hostport || *end || port <= 0 || port > 65535 || strlen(hostport) > 255
        || strpbrk(hostport, "/?# ")) {
        errno = EINVAL;
        return -1;
    }
    return zstr_sendx(self->actor, "ADD", https ? address : hostport, NULL);
}

void nsq_discovery_set_tls(nsq_discovery_t *self, const char *root_ca_file, const char *cert_file,
                           const char *key_file)
{
    zstr_sendx(self->actor, "TLS", root_ca_file ? root_ca_file : "", cert_file ? cert_file : "",
               key_file ? key_file : "", NULL);
}

void nsq_discovery_set_interval(nsq_discovery_t *self, uint32_t milliseconds)
{
    char value[16];
    snprintf(value, sizeof value, "%u",
             milliseconds < S_INTERVAL_MIN_MS ? S_INTERVAL_MIN_MS : milliseconds);
    zstr_sendx(self->actor, "INTERVAL", value, NULL);
}

zsock_t *nsq_discovery_sock(nsq_discovery_t *self)
{
    return zactor_sock(self->actor);
}

zlistx_t *nsq_discovery_recv(nsq_discovery_t *self)
{
    zmsg_t *message = zmsg_recv(self->actor);
    char *kind = message ? zmsg_popstr(message) : NULL;
    zlistx_t *brokers = NULL;
    if (kind && streq(kind, "BROKERS") && (brokers = zlistx_new())) {
        zlistx_set_destructor(brokers, (zlistx_destructor_fn *) zstr_free);
        for (char *broker = zmsg_popstr(message); broker; broker = zmsg_popstr(message))
            zlistx_add_end(brokers, broker);
    }
    zstr_free(&kind);
    zmsg_destroy(&message);
    return brokers;
}

bool nsq_discovery_apply(nsq_discovery_t *self, const nsq_discovery_events_t *events, void *arg)
{
    zlistx_t *brokers = nsq_discovery_recv(self);
    if (!brokers)
        return false;
    for (const char *broker = events ? zlistx_first(brokers) : NULL; broker;
         broker = zlistx_next(brokers))
        if (!s_listed(self->taken, broker) && events->found(arg, broker) == 0)
            zlistx_add_end(self->taken, strdup(broker));
    zlistx_t *vanished = events ? zlistx_new() : NULL;
    for (char *broker = vanished ? zlistx_first(self->taken) : NULL; broker;
         broker = zlistx_next(self->taken))
        if (!s_listed(brokers, broker))
            zlistx_add_end(vanished, zlistx_cursor(self->taken));
    for (void *handle = vanished ? zlistx_first(vanished) : NULL; handle;
         handle = zlistx_next(vanished)) {
        events->lost(arg, zlistx_handle_item(handle));
        zlistx_delete(self->taken, handle);
    }
    zlistx_destroy(&vanished);
    zlistx_destroy(&brokers);
    return true;
}

// ---- self-test ------------------------------------------------------------------

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "nsq_discovery_test: %s:%d: %s\n", __FILE__, __LINE__, #cond);         \
            goto failed;                                                                           \
        }                                                                                          \
    } while (0)

int nsq_discovery_test(void)
{
    zlistx_t *brokers = zlistx_new();
    nsq_discovery_t *self = NULL;
    zlistx_set_destructor(brokers, (zlistx_destructor_fn *) zstr_free);
    const char *json =
        "{\"channels\":[\"c\"],\"producers\":[{\"remote_address\":\"1.2.3.4\",\"hostname\":\"h\","
        "\"broadcast_address\":\"10.0.0.1\",\"tcp_port\":0,\"http_port\":4151,\"zmq_port\":4152,"
        "\"version\":\"0.1.0\"},{\"broadcast_address\": \"10.0.0.2\", \"tcp_port\":4150,"
        "\"http_port\":4151},{\"broadcast_address\":\"fe80::1\",\"zmq_port\":9},"
        "{\"broadcast_address\":\"10.0.0.1\",\"zmq_port\":4152}]}";
    S_CHECK(nsq_discovery_parse(json, brokers) == 3);
    S_CHECK(zlistx_size(brokers) == 2);
    S_CHECK(streq(zlistx_first(brokers), "10.0.0.1:4152"));
    S_CHECK(streq(zlistx_next(brokers), "[fe80::1]:9"));
    S_CHECK(nsq_discovery_parse("{\"producers\":[]}", brokers) == 0);
    S_CHECK(nsq_discovery_parse("{\"data\":{\"producers\":[{\"broadcast_address\":\"h\","
                                "\"zmq_port\":7}]}}",
                                brokers)
            == 1);
    S_CHECK(streq(zlistx_last(brokers), "h:7"));
    S_CHECK(nsq_discovery_parse("{\"producers\":[{\"broadcast_address\":\"}\",\"zmq_port\":1}]}",
                                brokers)
            == 1);
    S_CHECK(nsq_discovery_parse("{\"producers\":{\"zmq_port\":1}}", brokers) == 0);
    S_CHECK(nsq_discovery_parse("garbage {", brokers) == 0);
    S_CHECK(nsq_discovery_parse(NULL, brokers) == 0);
    S_CHECK(nsq_discovery_parse("{\"producers\":[{\"broadcast_address\":\"x", brokers) == 0);

    // No answer from a lookupd: no result is reported; destroy is prompt.
    self = nsq_discovery_new("orders#ephemeral");
    S_CHECK(self);
    S_CHECK(nsq_discovery_add(self, "no-port") == -1 && errno == EINVAL);
    S_CHECK(nsq_discovery_add(self, "http://host:99999") == -1);
    S_CHECK(nsq_discovery_add(self, "http://127.0.0.1:1") == 0);
    nsq_discovery_set_interval(self, 20);
    zpoller_t *poller = zpoller_new(nsq_discovery_sock(self), NULL);
    void *which = zpoller_wait(poller, 300);
    zpoller_destroy(&poller);
    S_CHECK(which == NULL);
    int64_t start = zclock_mono();
    nsq_discovery_destroy(&self);
    S_CHECK(zclock_mono() - start < 1000);
    nsq_discovery_destroy(&self);
    zlistx_destroy(&brokers);
    return 0;
failed:
    nsq_discovery_destroy(&self);
    zlistx_destroy(&brokers);
    return -1;
}
