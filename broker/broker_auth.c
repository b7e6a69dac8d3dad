/*  broker_auth - the auth server client: asks --auth-http-address servers
    what a secret may do, off the core thread, and keeps the answers for
    their ttl
    SPDX-License-Identifier: MIT

    Two halves. The core's half owns the cache (query -> entry), hashed by
    the query string (remote_ip, tls, secret and common_name, URL-encoded:
    an answer may depend on each of them), and the callbacks waiting for
    an entry. The thread's half (s_client) owns the curl handles: it takes
    ["ASK", query] from the pipe and sends back [query, result, grant] with
    the parsed grant's ownership. No state is shared but the pipe.

    Stopping: the core sends "STOP"; the thread drops its transfers,
    answers "" (a marker) and waits for $TERM, so every grant still in the
    pipe is read and freed before the actor is destroyed.
*/
#include "broker_auth.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_log.h"

#define S_BODY_MAX        (1 << 20)  // a bigger answer is not an auth answer
#define S_NEGATIVE_TTL_MS 1000       // refusals and failures are kept this long
#define S_CACHE_MAX       65536      // entries, waiting ones included
#define S_PENDING_MAX     1024       // questions on their way at once
#define S_POLL_MS         100        // the thread's longest sleep between pipe checks
// A query's key: every byte of secret, IP and common name may take three.
#define S_KEY_MAX (3 * (BROKER_AUTH_SECRET_MAX + 64 + 256) + 64)

// ---- the client thread --------------------------------------------------------------

typedef struct {
    char **addresses;    // copies of --auth-http-address
    int count;           // entries of addresses
    int64_t timeout_ms;  // per request
} servers_t;

// One question on its way.
typedef struct request_s {
    char *query;  // the question, owned
    int first;    // index of the first server asked
    int tried;    // servers asked so far
    char *body;   // the answer so far
    size_t size;  // bytes in body
    CURL *easy;   // the transfer now
    char error[CURL_ERROR_SIZE];
    struct request_s *prev, *next;  // on the thread's list
} request_t;

// The address for logs: a URL's user:password is masked.
static void s_server_name(const char *address, char *out, size_t size)
{
    const char *scheme = strstr(address, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
    if (at && (!slash || at < slash))
        snprintf(out, size, "%.*s***%s", (int) (scheme + 3 - address), address, at);
    else
        snprintf(out, size, "%s", address);
}

static size_t s_on_body(char *data, size_t size, size_t count, void *arg)
{
    request_t *request = arg;
    size_t bytes = size * count;
    if (bytes > S_BODY_MAX - request->size)
        return 0;  // curl fails the transfer: not an auth answer
    char *grown = realloc(request->body, request->size + bytes + 1);
    if (!grown)
        return 0;
    memcpy(grown + request->size, data, bytes);
    request->body = grown;
    request->size += bytes;
    return bytes;
}

// The thread's state.
typedef struct {
    const servers_t *servers;  // where to ask
    zsock_t *pipe;             // the core
    CURLM *multi;              // every transfer
    request_t *requests;       // the questions on their way
} client_t;

static void s_request_free(client_t *client, request_t **request_p)
{
    request_t *request = *request_p;
    if (request->prev)
        request->prev->next = request->next;
    else if (client->requests == request)
        client->requests = request->next;
    if (request->next)
        request->next->prev = request->prev;
    CURLM *multi = client->multi;
    if (request->easy) {
        curl_multi_remove_handle(multi, request->easy);
        curl_easy_cleanup(request->easy);
    }
    free(request->body);
    free(request->query);
    free(request);
    *request_p = NULL;
}

// Starts asking the next server. Returns 0, or -1 if none is left or
// curl cannot start.
static int s_request_start(client_t *client, request_t *request)
{
    const servers_t *servers = client->servers;
    if (request->easy) {
        curl_multi_remove_handle(client->multi, request->easy);
        curl_easy_cleanup(request->easy);
        request->easy = NULL;
    }
    if (request->tried >= servers->count)
        return -1;
    const char *address = servers->addresses[(request->first + request->tried++) % servers->count];
    char *url = strstr(address, "://") ? zsys_sprintf("%s?%s", address, request->query)
                                       : zsys_sprintf("http://%s/auth?%s", address, request->query);
    request->easy = url ? curl_easy_init() : NULL;
    request->size = 0;
    request->error[0] = '\0';
    if (!request->easy) {
        zstr_free(&url);
        return -1;
    }
    curl_easy_setopt(request->easy, CURLOPT_URL, url);
    curl_easy_setopt(request->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(request->easy, CURLOPT_TIMEOUT_MS, (long) servers->timeout_ms);
    curl_easy_setopt(request->easy, CURLOPT_CONNECTTIMEOUT_MS, (long) servers->timeout_ms);
    curl_easy_setopt(request->easy, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(request->easy, CURLOPT_WRITEDATA, request);
    curl_easy_setopt(request->easy, CURLOPT_ERRORBUFFER, request->error);
    curl_easy_setopt(request->easy, CURLOPT_PRIVATE, request);
    curl_easy_setopt(request->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    zstr_free(&url);
    return curl_multi_add_handle(client->multi, request->easy) == CURLM_OK ? 0 : -1;
}

// Hands the answer to the core and frees the request.
static void s_request_answer(client_t *client, request_t **request_p, broker_result_t result,
                             broker_auth_grant_t *grant)
{
    if (zsock_send(client->pipe, "sip", (*request_p)->query, (int) result, grant) != 0)
        broker_auth_grant_destroy(&grant);
    s_request_free(client, request_p);
}

// A transfer ended: a grant, a refusal, or the next server.
static void s_request_done(client_t *client, request_t *request, CURLcode code)
{
    const servers_t *servers = client->servers;
    long status = 0;
    curl_easy_getinfo(request->easy, CURLINFO_RESPONSE_CODE, &status);
    char name[256], reason[160];
    s_server_name(servers->addresses[(request->first + request->tried - 1) % servers->count], name,
                  sizeof name);
    if (code == CURLE_OK && status == 200) {
        broker_auth_grant_t *grant = broker_auth_grant_parse(request->body ? request->body : "",
                                                             request->size, reason, sizeof reason);
        if (grant) {
            s_request_answer(client, &request, BROKER_OK, grant);
            return;
        }
        nsq_warn("auth server %s: not a valid answer: %s", name, reason);
    } else if (code == CURLE_OK && status >= 400 && status < 500) {
        s_request_answer(client, &request, BROKER_AUTH_FAILED, NULL);
        return;
    } else if (code == CURLE_OK)
        nsq_warn("auth server %s: answered HTTP %ld", name, status);
    else
        nsq_warn("auth server %s: %s", name,
                 request->error[0] ? request->error : curl_easy_strerror(code));
    if (s_request_start(client, request) == 0)
        return;
    nsq_error("auth: no auth server answered; the request is refused");
    s_request_answer(client, &request, BROKER_AUTH_UNAVAILABLE, NULL);
}

// Takes one command from the core. Returns false on STOP or $TERM.
static bool s_client_command(client_t *client)
{
    char *command = NULL, *query = NULL;
    if (zsock_recv(client->pipe, "ss", &command, &query) != 0)
        return true;
    bool go_on = command && streq(command, "ASK") && query;
    if (go_on) {
        request_t *request = calloc(1, sizeof *request);
        if (request) {
            request->query = query;
            request->first = (int) (random() % client->servers->count);
            query = NULL;
            request->next = client->requests;
            if (client->requests)
                client->requests->prev = request;
            client->requests = request;
        }
        if (!request || s_request_start(client, request) != 0) {
            nsq_error("auth: cannot start a request to an auth server");
            if (request)
                s_request_answer(client, &request, BROKER_AUTH_UNAVAILABLE, NULL);
        }
    }
    zstr_free(&command);
    zstr_free(&query);
    return go_on;
}

// Runs the transfers that can run and hands over those that ended.
static void s_client_perform(client_t *client)
{
    int active, left;
    curl_multi_perform(client->multi, &active);
    CURLMsg *done;
    while ((done = curl_multi_info_read(client->multi, &left)))
        if (done->msg == CURLMSG_DONE) {
            request_t *request = NULL;
            curl_easy_getinfo(done->easy_handle, CURLINFO_PRIVATE, (char **) &request);
            s_request_done(client, request, done->data.result);
        }
}

static void s_client(zsock_t *pipe, void *args)
{
    client_t client = {args, pipe, curl_multi_init(), NULL};
    zsock_signal(pipe, client.multi ? 0 : 1);
    bool running = client.multi != NULL;
    struct curl_waitfd wake = {(curl_socket_t) zsock_fd(pipe), CURL_WAIT_POLLIN, 0};
    while (running) {
        curl_multi_poll(client.multi, &wake, 1, S_POLL_MS, NULL);
        while (running && (zsock_events(pipe) & ZMQ_POLLIN))
            running = s_client_command(&client);
        if (running)
            s_client_perform(&client);
    }
    while (client.requests) {
        request_t *request = client.requests;
        s_request_free(&client, &request);
    }
    curl_multi_cleanup(client.multi);
    zsock_send(pipe, "sip", "", -1, NULL);  // the core reads up to here
    char *term = NULL;
    while ((term = zstr_recv(pipe)) && !streq(term, "$TERM"))
        zstr_free(&term);
    zstr_free(&term);
}

// ---- the core's half ------------------------------------------------------------------

typedef struct waiter_s {
    broker_auth_wait_fn *fn;  // called when the answer is in
    void *arg;                // its argument
    struct waiter_s *next;    // the next one waiting for the same entry
} waiter_t;

// What the cache knows of one query.
typedef struct {
    broker_result_t result;      // OK, AUTH_FAILED, AUTH_UNAVAILABLE or AUTH_PENDING (asked)
    broker_auth_grant_t *grant;  // with OK: the answer, owned
    int64_t expires;             // monotonic ms after which it is asked again
    waiter_t *waiters;           // while pending: who waits (newest first)
} entry_t;

struct _broker_auth_t {
    servers_t servers;  // what the thread reads (it runs while we live)
    zactor_t *client;   // the thread
    zhashx_t *cache;    // query -> entry_t, owned
    size_t pending;     // entries asked and not answered
    uint64_t asked;     // questions sent so far
    bool stopping;      // destroy began: nothing more is asked
};

static void s_entry_destroy(void **item)
{
    entry_t *entry = *item;
    if (!entry)
        return;
    broker_auth_grant_destroy(&entry->grant);
    while (entry->waiters) {
        waiter_t *next = entry->waiters->next;
        free(entry->waiters);
        entry->waiters = next;
    }
    free(entry);
    *item = NULL;
}

static void s_servers_free(servers_t *servers)
{
    for (int i = 0; i < servers->count; i++)
        free(servers->addresses[i]);
    free(servers->addresses);
}

broker_auth_t *broker_auth_new(const char *const *addresses, int count, int64_t timeout_ms)
{
    broker_auth_t *self = count > 0 ? calloc(1, sizeof *self) : NULL;
    if (!self)
        return NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    self->servers.timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    self->servers.addresses = calloc((size_t) count, sizeof(char *));
    for (int i = 0; self->servers.addresses && i < count; i++)
        if ((self->servers.addresses[i] = strdup(addresses[i])))
            self->servers.count++;
    self->cache = zhashx_new();
    if (self->cache)
        zhashx_set_destructor(self->cache, s_entry_destroy);
    if (self->servers.count == count && self->cache)
        self->client = zactor_new(s_client, &self->servers);
    if (!self->client) {
        zhashx_destroy(&self->cache);
        s_servers_free(&self->servers);
        free(self);
        curl_global_cleanup();
        return NULL;
    }
    return self;
}

// Reads one answer: the query, its result, the grant (ownership moves).
// Returns -1 on the stop marker or when nothing could be read.
static int s_read_answer(broker_auth_t *self, char **query, int *result,
                         broker_auth_grant_t **grant)
{
    void *pointer = NULL;
    *query = NULL;
    if (zsock_recv(self->client, "sip", query, result, &pointer) != 0)
        return -1;
    *grant = pointer;
    return *result < 0 ? -1 : 0;
}

// Calls each waiter, oldest first (the list is newest first).
static void s_call_waiters(waiter_t *waiter, bool cancelled)
{
    waiter_t *oldest = NULL;
    while (waiter) {
        waiter_t *next = waiter->next;
        waiter->next = oldest;
        oldest = waiter;
        waiter = next;
    }
    while (oldest) {
        waiter_t *next = oldest->next;
        oldest->fn(oldest->arg, cancelled);
        free(oldest);
        oldest = next;
    }
}

void broker_auth_destroy(broker_auth_t **self_p)
{
    broker_auth_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    self->stopping = true;
    zstr_send(self->client, "STOP");
    char *query;
    int result;
    broker_auth_grant_t *grant;
    while (s_read_answer(self, &query, &result, &grant) == 0) {
        broker_auth_grant_destroy(&grant);
        zstr_free(&query);
    }
    zstr_free(&query);
    zactor_destroy(&self->client);
    for (entry_t *entry = zhashx_first(self->cache); entry; entry = zhashx_next(self->cache)) {
        s_call_waiters(entry->waiters, true);
        entry->waiters = NULL;
    }
    zhashx_destroy(&self->cache);
    s_servers_free(&self->servers);
    free(self);
    curl_global_cleanup();
    *self_p = NULL;
}

zsock_t *broker_auth_socket(broker_auth_t *self)
{
    return zactor_sock(self->client);
}

uint64_t broker_auth_asked(const broker_auth_t *self)
{
    return self->asked;
}

// Appends size bytes of text to out at *used, URL-encoded (RFC 3986:
// unreserved bytes as they are, the rest %XX), as curl_easy_escape would,
// without an allocation per call. Returns -1 if out has no room.
static int s_escape(char *out, size_t capacity, size_t *used, const char *text, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < size; i++) {
        unsigned char c = (unsigned char) text[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                     || c == '-' || c == '.' || c == '_' || c == '~';
        if (*used + (plain ? 1 : 3) >= capacity)
            return -1;
        if (plain)
            out[(*used)++] = (char) c;
        else {
            out[(*used)++] = '%';
            out[(*used)++] = hex[c >> 4];
            out[(*used)++] = hex[c & 15];
        }
    }
    out[*used] = '\0';
    return 0;
}

// Appends text to out at *used. Returns -1 if out has no room.
static int s_append(char *out, size_t capacity, size_t *used, const char *text)
{
    size_t size = strlen(text);
    if (*used + size >= capacity)
        return -1;
    memcpy(out + *used, text, size + 1);
    *used += size;
    return 0;
}

// Writes the cache key and URL query of query into out. Returns 0, or -1
// if it does not fit.
static int s_query_string(const broker_auth_query_t *query, char *out, size_t capacity)
{
    const char *ip = query->remote_ip ? query->remote_ip : "";
    const char *name = query->common_name ? query->common_name : "";
    size_t used = 0;
    if (s_append(out, capacity, &used, "remote_ip=")
        || s_escape(out, capacity, &used, ip, strlen(ip))
        || s_append(out, capacity, &used, query->tls ? "&tls=true&secret=" : "&tls=false&secret=")
        || s_escape(out, capacity, &used, query->secret, query->secret_size)
        || s_append(out, capacity, &used, "&common_name=")
        || s_escape(out, capacity, &used, name, strlen(name)))
        return -1;
    return 0;
}

// Room for one more entry: expired ones nobody waits for go first.
static bool s_cache_room(broker_auth_t *self, int64_t now)
{
    if (zhashx_size(self->cache) < S_CACHE_MAX)
        return true;
    broker_auth_tick(self, now);
    return zhashx_size(self->cache) < S_CACHE_MAX;
}

// Sends the question for entry; on failure the entry holds AUTH_UNAVAILABLE.
static void s_ask(broker_auth_t *self, entry_t *entry, const char *query, int64_t now)
{
    broker_auth_grant_destroy(&entry->grant);
    entry->expires = now + S_NEGATIVE_TTL_MS;
    if (self->stopping || self->pending >= S_PENDING_MAX) {
        if (!self->stopping)
            nsq_warn("auth: %d questions already wait for an auth server; refused", S_PENDING_MAX);
        entry->result = BROKER_AUTH_UNAVAILABLE;
        return;
    }
    if (zsock_send(self->client, "ss", "ASK", query) != 0) {
        entry->result = BROKER_AUTH_UNAVAILABLE;
        return;
    }
    entry->result = BROKER_AUTH_PENDING;
    self->pending++;
    self->asked++;
}

broker_result_t broker_auth_lookup(broker_auth_t *self, const broker_auth_query_t *query,
                                   int64_t now, const broker_auth_grant_t **grant,
                                   broker_auth_wait_fn *fn, void *arg)
{
    *grant = NULL;
    char key[S_KEY_MAX];
    if (query->secret_size > BROKER_AUTH_SECRET_MAX || s_query_string(query, key, sizeof key) != 0)
        return BROKER_AUTH_FAILED;  // no auth server would know a secret this long
    entry_t *entry = zhashx_lookup(self->cache, key);
    if (!entry && s_cache_room(self, now) && (entry = calloc(1, sizeof *entry))
        && zhashx_insert(self->cache, key, entry) != 0) {
        free(entry);
        entry = NULL;
    }
    if (!entry)
        return BROKER_AUTH_UNAVAILABLE;
    if (entry->result != BROKER_AUTH_PENDING && now >= entry->expires)
        s_ask(self, entry, key, now);
    if (entry->result == BROKER_AUTH_PENDING && fn) {
        waiter_t *waiter = malloc(sizeof *waiter);
        if (!waiter)
            return BROKER_AUTH_UNAVAILABLE;
        *waiter = (waiter_t){fn, arg, entry->waiters};
        entry->waiters = waiter;
    }
    *grant = entry->grant;
    return entry->result;
}

void broker_auth_on_answer(broker_auth_t *self, int64_t now)
{
    while (zsock_events(self->client) & ZMQ_POLLIN) {
        char *query;
        int result;
        broker_auth_grant_t *grant;
        if (s_read_answer(self, &query, &result, &grant) != 0) {
            zstr_free(&query);
            return;
        }
        entry_t *entry = zhashx_lookup(self->cache, query);
        zstr_free(&query);
        if (!entry || entry->result != BROKER_AUTH_PENDING) {
            broker_auth_grant_destroy(&grant);  // cannot happen: pending entries stay
            continue;
        }
        self->pending--;
        entry->result = (broker_result_t) result;
        entry->grant = grant;
        entry->expires = now + (grant ? broker_auth_grant_ttl_ms(grant) : S_NEGATIVE_TTL_MS);
        waiter_t *waiters = entry->waiters;
        entry->waiters = NULL;
        s_call_waiters(waiters, false);  // they may look the entry up again
    }
}

void broker_auth_tick(broker_auth_t *self, int64_t now)
{
    zlistx_t *expired = zlistx_new();
    for (entry_t *entry = zhashx_first(self->cache); expired && entry;
         entry = zhashx_next(self->cache))
        if (entry->result != BROKER_AUTH_PENDING && now >= entry->expires)
            zlistx_add_end(expired, (void *) zhashx_cursor(self->cache));
    for (const char *key = expired ? zlistx_first(expired) : NULL; key; key = zlistx_next(expired))
        zhashx_delete(self->cache, key);
    zlistx_destroy(&expired);
}
