/*  lookupd_fetch - HTTP requests to brokers and peers, off the actor's thread
    SPDX-License-Identifier: MIT

    The thread waits on its pipe while nothing runs; while transfers run it
    alternates curl_multi_poll (at most S_POLL_MS) with a non-blocking look
    at the pipe, so a new job or $TERM waits at most that long. Messages:
    owner -> thread ["JOB", job, (method, url, timeout_ms)...] and $TERM;
    thread -> owner ["RESULT", job, index, status, error, body] per request
    and ["DONE", job] once all of a job's requests were reported.
*/
#include "lookupd_fetch.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_POLL_MS            20  // longest wait for curl while transfers run
#define S_CONNECT_TIMEOUT_MS 2000
#define S_CONNECTIONS_MAX    64  // transfers at once; curl queues the rest

struct _lookupd_fetch_t {
    zactor_t *actor;            // the thread
    struct curl_slist *auth;    // "Authorization: Bearer ..." for every request, or NULL
    char *tls_files[3];         // CA, client certificate, its key (owned; NULL = unset)
    nsq_http_client_tls_t tls;  // borrows tls_files; read by the thread
};

typedef struct {
    uint64_t job;    // owner's number
    size_t pending;  // requests not reported yet
} s_job_t;

typedef struct {
    s_job_t *job;                 // shared by the job's transfers
    size_t index;                 // within the job
    CURL *easy;                   // the transfer
    char *body;                   // what came so far
    size_t size, capacity;        // of body
    bool overflow;                // the answer passed LOOKUPD_FETCH_BODY_MAX
    char error[CURL_ERROR_SIZE];  // curl's reason
} s_transfer_t;

typedef struct {
    zsock_t *pipe;                 // to the owner
    CURLM *multi;                  // every transfer
    zlistx_t *transfers;           // s_transfer_t, owned
    const lookupd_fetch_t *owner;  // its header list and TLS files (read only)
} s_thread_t;

static pthread_once_t s_curl_once = PTHREAD_ONCE_INIT;

static void s_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t s_on_data(char *data, size_t size, size_t count, void *arg)
{
    s_transfer_t *transfer = arg;
    size_t bytes = size * count;
    if (transfer->size + bytes > LOOKUPD_FETCH_BODY_MAX) {
        transfer->overflow = true;
        return 0;  // curl stops the transfer with CURLE_WRITE_ERROR
    }
    if (transfer->size + bytes + 1 > transfer->capacity) {
        size_t capacity = transfer->capacity ? transfer->capacity : 16384;
        while (capacity < transfer->size + bytes + 1)
            capacity *= 2;
        char *grown = realloc(transfer->body, capacity);
        if (!grown)
            return 0;
        transfer->body = grown;
        transfer->capacity = capacity;
    }
    memcpy(transfer->body + transfer->size, data, bytes);
    transfer->size += bytes;
    transfer->body[transfer->size] = '\0';
    return bytes;
}

static void s_transfer_destroy(s_transfer_t **self_p)
{
    s_transfer_t *self = *self_p;
    if (!self)
        return;
    curl_easy_cleanup(self->easy);
    free(self->body);
    free(self);
    *self_p = NULL;
}

static void s_send_done(s_thread_t *self, uint64_t job)
{
    zmsg_t *message = zmsg_new();
    zmsg_addstr(message, "DONE");
    zmsg_addstrf(message, "%llu", (unsigned long long) job);
    zmsg_send(&message, self->pipe);
}

// Reports a finished transfer and frees it (and its job after the last).
static void s_report(s_thread_t *self, s_transfer_t *transfer, CURLcode code)
{
    long status = 0;
    if (code == CURLE_OK)
        curl_easy_getinfo(transfer->easy, CURLINFO_RESPONSE_CODE, &status);
    const char *error = transfer->overflow   ? "answer too large"
                        : code == CURLE_OK   ? ""
                        : transfer->error[0] ? transfer->error
                                             : curl_easy_strerror(code);
    zmsg_t *message = zmsg_new();
    zmsg_addstr(message, "RESULT");
    zmsg_addstrf(message, "%llu", (unsigned long long) transfer->job->job);
    zmsg_addstrf(message, "%zu", transfer->index);
    zmsg_addstrf(message, "%ld", status);
    zmsg_addstr(message, error);
    zmsg_addmem(message, status ? transfer->body : NULL, status ? transfer->size : 0);
    zmsg_send(&message, self->pipe);
    s_job_t *job = transfer->job;
    if (--job->pending == 0) {
        s_send_done(self, job->job);
        free(job);
    }
    curl_multi_remove_handle(self->multi, transfer->easy);
}

static void s_collect(s_thread_t *self)
{
    CURLMsg *info;
    int left;
    while ((info = curl_multi_info_read(self->multi, &left))) {
        if (info->msg != CURLMSG_DONE)
            continue;
        s_transfer_t *transfer = NULL;
        curl_easy_getinfo(info->easy_handle, CURLINFO_PRIVATE, (char **) &transfer);
        CURLcode code = info->data.result;
        s_report(self, transfer, code);
        void *handle = zlistx_find(self->transfers, transfer);
        if (handle)
            zlistx_delete(self->transfers, handle);
    }
}

static s_transfer_t *s_transfer_new(s_thread_t *self, s_job_t *job, size_t index,
                                    const char *method, const char *url, long timeout_ms)
{
    s_transfer_t *transfer = calloc(1, sizeof *transfer);
    if (!transfer)
        return NULL;
    transfer->job = job;
    transfer->index = index;
    transfer->easy = curl_easy_init();
    if (!transfer->easy) {
        free(transfer);
        return NULL;
    }
    CURL *easy = transfer->easy;
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout_ms < S_CONNECT_TIMEOUT_MS ? timeout_ms : (long) S_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "nsq-lookupd/" NSQ_VERSION);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, s_on_data);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, transfer);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, transfer->error);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, transfer);
    if (self->owner->auth)
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, self->owner->auth);
    nsq_http_client_tls_apply(easy, &self->owner->tls);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(easy, CURLOPT_POST, 1L);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, 0L);
    }
    return transfer;
}

// Starts the requests of a JOB message (its command already popped).
static void s_start_job(s_thread_t *self, zmsg_t *message)
{
    char *job_text = zmsg_popstr(message);
    s_job_t *job = job_text ? calloc(1, sizeof *job) : NULL;
    if (!job) {
        zstr_free(&job_text);
        return;
    }
    job->job = strtoull(job_text, NULL, 10);
    zstr_free(&job_text);
    job->pending = 1;  // held by us until every request is started
    for (size_t index = 0; zmsg_size(message) >= 3; index++) {
        char *method = zmsg_popstr(message), *url = zmsg_popstr(message);
        char *timeout = zmsg_popstr(message);
        long timeout_ms = timeout ? atol(timeout) : 0;
        s_transfer_t *transfer = method && url ? s_transfer_new(self, job, index, method, url,
                                                                timeout_ms > 0 ? timeout_ms : 1)
                                               : NULL;
        job->pending++;
        if (!transfer || !zlistx_add_end(self->transfers, transfer)
            || curl_multi_add_handle(self->multi, transfer->easy) != CURLM_OK) {
            // Reported as failed so the owner still hears of every request.
            s_transfer_t failed = {.job = job, .index = index};
            snprintf(failed.error, sizeof failed.error, "out of memory");
            if (transfer) {
                void *handle = zlistx_find(self->transfers, transfer);
                if (handle)
                    zlistx_detach(self->transfers, handle);
                s_transfer_destroy(&transfer);
            }
            s_report(self, &failed, CURLE_OUT_OF_MEMORY);
        }
        zstr_free(&method);
        zstr_free(&url);
        zstr_free(&timeout);
    }
    if (--job->pending == 0) {
        s_send_done(self, job->job);
        free(job);
    }
}

// Handles one message from the owner; returns -1 on $TERM.
static int s_on_pipe(s_thread_t *self)
{
    zmsg_t *message = zmsg_recv(self->pipe);
    if (!message)
        return -1;  // interrupted
    char *command = zmsg_popstr(message);
    int rc = 0;
    if (command && streq(command, "$TERM"))
        rc = -1;
    else if (command && streq(command, "JOB"))
        s_start_job(self, message);
    zstr_free(&command);
    zmsg_destroy(&message);
    return rc;
}

static void s_transfer_destructor(void **item)
{
    s_transfer_destroy((s_transfer_t **) item);
}

static void s_actor(zsock_t *pipe, void *args)
{
    s_thread_t self = {pipe, curl_multi_init(), zlistx_new(), args};
    zsock_signal(pipe, 0);
    if (!self.multi || !self.transfers) {
        // Nothing can run: answer $TERM only.
        while (s_on_pipe(&self) == 0)
            ;
    } else {
        zlistx_set_destructor(self.transfers, s_transfer_destructor);
        curl_multi_setopt(self.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) S_CONNECTIONS_MAX);
        for (;;) {
            if (zlistx_size(self.transfers) == 0) {
                if (s_on_pipe(&self))
                    break;
                continue;
            }
            int running = 0;
            curl_multi_poll(self.multi, NULL, 0, S_POLL_MS, NULL);
            curl_multi_perform(self.multi, &running);
            s_collect(&self);
            if ((zsock_events(pipe) & ZMQ_POLLIN) && s_on_pipe(&self))
                break;
        }
    }
    // Abandoned jobs are never reported: the owner is going away.
    for (s_transfer_t *transfer = zlistx_first(self.transfers); transfer;
         transfer = zlistx_next(self.transfers)) {
        curl_multi_remove_handle(self.multi, transfer->easy);
        if (--transfer->job->pending == 0)
            free(transfer->job);
    }
    zlistx_destroy(&self.transfers);
    curl_multi_cleanup(self.multi);
}

// Copies tls's files into self. Returns 0, or -1 if out of memory.
static int s_tls_copy(lookupd_fetch_t *self, const nsq_http_client_tls_t *tls)
{
    const char *given[3] = {tls ? tls->root_ca_file : NULL, tls ? tls->cert_file : NULL,
                            tls ? tls->key_file : NULL};
    for (int i = 0; i < 3; i++)
        if (given[i] && *given[i] && !(self->tls_files[i] = strdup(given[i])))
            return -1;
    self->tls = (nsq_http_client_tls_t){self->tls_files[0], self->tls_files[1], self->tls_files[2]};
    return 0;
}

lookupd_fetch_t *lookupd_fetch_new(const char *auth_secret, const nsq_http_client_tls_t *tls)
{
    pthread_once(&s_curl_once, s_curl_init);
    lookupd_fetch_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    if (auth_secret && *auth_secret) {
        char *header = zsys_sprintf("Authorization: Bearer %s", auth_secret);
        self->auth = header ? curl_slist_append(NULL, header) : NULL;  // curl copies it
        if (header)
            memset(header, 0, strlen(header));
        zstr_free(&header);
        if (!self->auth) {
            lookupd_fetch_destroy(&self);
            return NULL;
        }
    }
    if (s_tls_copy(self, tls) || !(self->actor = zactor_new(s_actor, self)))
        lookupd_fetch_destroy(&self);
    return self;
}

void lookupd_fetch_destroy(lookupd_fetch_t **self_p)
{
    lookupd_fetch_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    zactor_destroy(&self->actor);
    curl_slist_free_all(self->auth);  // the thread has ended
    for (int i = 0; i < 3; i++)
        free(self->tls_files[i]);
    free(self);
    *self_p = NULL;
}

int lookupd_fetch_submit(lookupd_fetch_t *self, uint64_t job,
                         const lookupd_fetch_request_t *requests, size_t count)
{
    zmsg_t *message = zmsg_new();
    if (!message)
        return -1;
    zmsg_addstr(message, "JOB");
    zmsg_addstrf(message, "%llu", (unsigned long long) job);
    for (size_t i = 0; i < count; i++) {
        zmsg_addstr(message, requests[i].method);
        zmsg_addstr(message, requests[i].url);
        zmsg_addstrf(message, "%d", requests[i].timeout_ms);
    }
    return zmsg_send(&message, self->actor);
}

zsock_t *lookupd_fetch_sock(lookupd_fetch_t *self)
{
    return zactor_sock(self->actor);
}

int lookupd_fetch_recv(lookupd_fetch_t *self, lookupd_fetch_result_t *result)
{
    memset(result, 0, sizeof *result);
    zmsg_t *message = zmsg_recv(self->actor);
    char *kind = message ? zmsg_popstr(message) : NULL;
    char *job = message ? zmsg_popstr(message) : NULL;
    int rc = -1;
    if (kind && job && streq(kind, "DONE")) {
        result->job = strtoull(job, NULL, 10);
        result->done = true;
        rc = 0;
    } else if (kind && job && streq(kind, "RESULT") && zmsg_size(message) == 4) {
        result->job = strtoull(job, NULL, 10);
        char *index = zmsg_popstr(message), *status = zmsg_popstr(message);
        char *error = zmsg_popstr(message);
        zframe_t *body = zmsg_pop(message);
        result->index = index ? strtoul(index, NULL, 10) : 0;
        result->status = status ? atol(status) : 0;
        snprintf(result->error, sizeof result->error, "%s", error ? error : "");
        result->size = body ? zframe_size(body) : 0;
        result->body = malloc(result->size + 1);
        if (result->body) {
            if (result->size)
                memcpy(result->body, zframe_data(body), result->size);
            result->body[result->size] = '\0';
            rc = 0;
        }
        zstr_free(&index);
        zstr_free(&status);
        zstr_free(&error);
        zframe_destroy(&body);
    }
    zstr_free(&kind);
    zstr_free(&job);
    zmsg_destroy(&message);
    return rc;
}

void lookupd_fetch_result_clear(lookupd_fetch_result_t *result)
{
    free(result->body);
    result->body = NULL;
    result->size = 0;
}

// ---- self-test ----------------------------------------------------------------

// A one-shot HTTP server on a ZeroMQ STREAM socket: answers every request
// with 200 and body, so the test needs no other server.
static void s_test_server(zsock_t *pipe, void *args)
{
    const char *body = args;
    zsock_t *stream = zsock_new(ZMQ_STREAM);
    int port = stream ? zsock_bind(stream, "tcp://127.0.0.1:*") : -1;
    zsock_signal(pipe, 0);
    zstr_sendf(pipe, "%d", port);
    zpoller_t *poller = zpoller_new(pipe, stream, NULL);
    while (poller && port > 0) {
        zsock_t *which = zpoller_wait(poller, -1);
        if (which != stream)
            break;
        zframe_t *identity = zframe_recv(stream);
        zframe_t *data = zframe_recv(stream);
        if (identity && data && zframe_size(data) > 0) {
            char answer[256];
            snprintf(answer, sizeof answer,
                     "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     strlen(body), body);
            zframe_send(&identity, stream, ZFRAME_MORE | ZFRAME_REUSE);
            zstr_send(stream, answer);
            zframe_send(&identity, stream, ZFRAME_MORE);
            zmq_send(zsock_resolve(stream), "", 0, 0);  // close the connection
        }
        zframe_destroy(&identity);
        zframe_destroy(&data);
    }
    zpoller_destroy(&poller);
    zsock_destroy(&stream);
}

int lookupd_fetch_test(void)
{
    zactor_t *server = zactor_new(s_test_server, "{\"ok\":1}");
    char *port = server ? zstr_recv(server) : NULL;
    lookupd_fetch_t *fetch = lookupd_fetch_new(NULL, NULL);
    int failed = !server || !port || atoi(port) <= 0 || !fetch;
    char good[64], refused[64];
    snprintf(good, sizeof good, "http://127.0.0.1:%s/stats", port ? port : "0");
    snprintf(refused, sizeof refused, "http://127.0.0.1:1/stats");  // nothing listens there
    lookupd_fetch_request_t requests[] = {{"GET", good, 2000}, {"POST", refused, 2000}};
    if (!failed)
        failed =
            lookupd_fetch_submit(fetch, 7, requests, 2) || lookupd_fetch_submit(fetch, 8, NULL, 0);
    bool seen[2] = {false, false}, done7 = false, done8 = false;
    zpoller_t *poller = fetch ? zpoller_new(lookupd_fetch_sock(fetch), NULL) : NULL;
    while (!failed && !(done7 && done8)) {
        lookupd_fetch_result_t result;
        if (!zpoller_wait(poller, 5000) || lookupd_fetch_recv(fetch, &result)) {
            failed = 1;
            break;
        }
        if (result.done)
            *(result.job == 7 ? &done7 : &done8) = true;
        else if (result.job == 7 && result.index == 0)
            seen[0] = result.status == 200 && streq(result.body, "{\"ok\":1}");
        else if (result.job == 7 && result.index == 1)
            seen[1] = result.status == 0 && result.error[0] && result.size == 0;
        lookupd_fetch_result_clear(&result);
    }
    if (failed || !seen[0] || !seen[1])
        fprintf(stderr, "lookupd_fetch_test: results %d %d, failed %d\n", seen[0], seen[1], failed);
    zpoller_destroy(&poller);
    // Destroy with a request just submitted: it is abandoned, not leaked.
    if (fetch)
        lookupd_fetch_submit(fetch, 9, requests, 1);
    lookupd_fetch_destroy(&fetch);
    zstr_free(&port);
    zactor_destroy(&server);
    return failed || !seen[0] || !seen[1] ? -1 : 0;
}
