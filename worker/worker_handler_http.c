/*  worker_handler_http - POST each body to a URL with libcurl
    SPDX-License-Identifier: MIT

    One curl multi handle driven by the consumer's zloop through curl's
    socket interface: curl tells us which descriptors to watch (s_on_curl_socket
    adds a zloop poller per descriptor) and when to call it back
    (s_on_curl_timer arms a one-shot zloop timer), and the pollers and the
    timer hand the events back with curl_multi_socket_action. So many
    requests run at once on the loop thread without blocking it, and the
    multi handle's connection cache keeps connections to the endpoint alive
    between messages; finished easy handles are kept for reuse.

    Results: 2xx → OK; 4xx → REJECT (the endpoint refuses this message for
    good: FIN and log); 5xx, other statuses, timeouts and connection errors →
    RETRY. The body is sent straight from the message (it stays valid until
    the job is done), with X-NSQ-Message-Id and X-NSQ-Attempts headers so
    that an endpoint can recognise a redelivery. When the output is
    captured (--publish-topic) the response body of a 2xx is the job's
    output; a body over max_output fails the request.

    Loop safety: a poller removed earlier in the same zloop pass may still be
    called; curl ignores a descriptor it no longer knows. The timer callback
    never ends the timer that is running (zloop frees it after it returns).
*/
#include "worker_handler.h"

#include "nsq_log.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

typedef struct _s_request_t s_request_t;
struct _s_request_t {
    worker_job_t *job;           // what it delivers
    CURL *easy;                  // its transfer
    struct curl_slist *headers;  // its request headers
    size_t output_max;           // a longer response body fails the request
    s_request_t *next;           // the handler's list of running requests
};

typedef struct {
    worker_handler_t base;             // first: the runtime's view
    worker_handler_context_t context;  // loop and done callback
    char *url;                         // where bodies go
    int64_t request_timeout_ms;        // per request
    CURLM *multi;                      // all transfers
    int timer;                         // curl's zloop timer, 0 if none
    s_request_t *running;              // in progress
    CURL **idle;                       // finished handles for reuse
    size_t idle_count;
    size_t idle_capacity;
} s_http_t;

static void s_check_done(s_http_t *self);

static int s_on_socket_event(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void) loop;
    s_http_t *self = arg;
    int events = (item->revents & ZMQ_POLLIN ? CURL_CSELECT_IN : 0)
                 | (item->revents & ZMQ_POLLOUT ? CURL_CSELECT_OUT : 0)
                 | (item->revents & ZMQ_POLLERR ? CURL_CSELECT_ERR : 0);
    int running = 0;
    curl_multi_socket_action(self->multi, item->fd, events, &running);
    s_check_done(self);
    return 0;
}

static int s_on_timeout(zloop_t *loop, int timer_id, void *arg)
{
    (void) loop;
    (void) timer_id;
    s_http_t *self = arg;
    self->timer = 0;  // one-shot: zloop removes it after we return
    int running = 0;
    curl_multi_socket_action(self->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    s_check_done(self);
    return 0;
}

static int s_on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void) easy;
    (void) socketp;
    s_http_t *self = userp;
    zmq_pollitem_t item = {NULL, fd, 0, 0};
    zloop_poller_end(self->context.loop, &item);
    if (what == CURL_POLL_REMOVE)
        return 0;
    item.events = (what & CURL_POLL_IN ? ZMQ_POLLIN : 0) | (what & CURL_POLL_OUT ? ZMQ_POLLOUT : 0);
    if (zloop_poller(self->context.loop, &item, s_on_socket_event, self))
        return -1;
    zloop_poller_set_tolerant(self->context.loop, &item);
    return 0;
}

static int s_on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void) multi;
    s_http_t *self = userp;
    if (self->timer)
        zloop_timer_end(self->context.loop, self->timer);
    self->timer = 0;
    if (timeout_ms >= 0) {
        self->timer = zloop_timer(self->context.loop, (size_t) timeout_ms, 1, s_on_timeout, self);
        if (self->timer < 0) {
            self->timer = 0;
            return -1;
        }
    }
    return 0;
}

static size_t s_discard(char *data, size_t size, size_t count, void *arg)
{
    (void) data;
    (void) arg;
    return size * count;
}

// Keeps the response body as the job's output; more than max_output ends
// the transfer (CURLE_WRITE_ERROR).
static size_t s_keep(char *data, size_t size, size_t count, void *arg)
{
    s_request_t *request = arg;
    if (worker_job_output_add(request->job, data, size * count, request->output_max))
        return 0;
    return size * count;
}

static void s_unlink(s_http_t *self, s_request_t *request)
{
    for (s_request_t **at = &self->running; *at; at = &(*at)->next)
        if (*at == request) {
            *at = request->next;
            return;
        }
}

// Takes the transfer off the multi handle and keeps the easy handle.
static void s_release(s_http_t *self, s_request_t *request)
{
    curl_multi_remove_handle(self->multi, request->easy);
    curl_slist_free_all(request->headers);
    request->headers = NULL;
    s_unlink(self, request);
    if (self->idle_count < self->idle_capacity)
        self->idle[self->idle_count++] = request->easy;
    else
        curl_easy_cleanup(request->easy);
    request->job->state = NULL;
}

static worker_result_t s_result(s_http_t *self, s_request_t *request, CURLcode code)
{
    const char *id = nsq_msg_id(request->job->msg);
    long status = 0;
    curl_easy_getinfo(request->easy, CURLINFO_RESPONSE_CODE, &status);
    worker_job_t *job = request->job;
    if (code == CURLE_OPERATION_TIMEDOUT) {
        worker_metrics_add(self->context.metrics, WORKER_METRIC_TIMEOUTS, 1);
        worker_job_fail(job, NSQ_FAILURE_TIMEOUT, self->request_timeout_ms,
                        "no answer within %lld ms", (long long) self->request_timeout_ms);
    } else if (code == CURLE_WRITE_ERROR)
        worker_job_fail(job, NSQ_FAILURE_ERROR, code,
                        "response body over --max-output-size (%zu bytes) or out of memory",
                        self->context.max_output);
    else if (code != CURLE_OK)
        worker_job_fail(job, NSQ_FAILURE_ERROR, code, "%s", curl_easy_strerror(code));
    if (code != CURLE_OK) {
        nsq_info("http handler: message %s: %s", id, job->failure.detail);
        return WORKER_RESULT_RETRY;
    }
    if (status >= 200 && status < 300)
        return WORKER_RESULT_OK;
    if (status >= 400 && status < 500) {
        nsq_warn("http handler: message %s refused with HTTP %ld: finished without retry", id,
                 status);
        return WORKER_RESULT_REJECT;
    }
    worker_job_fail(job, NSQ_FAILURE_HTTP, status, "HTTP %ld", status);
    nsq_info("http handler: message %s: HTTP %ld, will retry", id, status);
    return WORKER_RESULT_RETRY;
}

static void s_check_done(s_http_t *self)
{
    CURLMsg *info;
    int left = 0;
    while ((info = curl_multi_info_read(self->multi, &left))) {
        if (info->msg != CURLMSG_DONE)
            continue;
        s_request_t *request = NULL;
        curl_easy_getinfo(info->easy_handle, CURLINFO_PRIVATE, (char **) &request);
        if (!request)
            continue;
        worker_result_t result = s_result(self, request, info->data.result);
        worker_job_t *job = request->job;
        s_release(self, request);
        free(request);
        self->context.done(self->context.done_arg, job, result);
    }
}

// Content type, no "Expect: 100-continue" round trip, and the message's id
// and attempt so that the endpoint can deduplicate redeliveries.
static struct curl_slist *s_headers(nsq_msg_t *msg)
{
    char id[64], attempts[64];
    snprintf(id, sizeof id, "X-NSQ-Message-Id: %s", nsq_msg_id(msg));
    snprintf(attempts, sizeof attempts, "X-NSQ-Attempts: %u", nsq_msg_attempts(msg));
    const char *lines[] = {"Content-Type: application/octet-stream", "Expect:", id, attempts};
    struct curl_slist *headers = NULL;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        struct curl_slist *more = curl_slist_append(headers, lines[i]);
        if (!more) {
            curl_slist_free_all(headers);
            return NULL;
        }
        headers = more;
    }
    return headers;
}

static CURL *s_easy(s_http_t *self, s_request_t *request)
{
    nsq_msg_t *msg = request->job->msg;
    request->headers = s_headers(msg);
    CURL *easy = self->idle_count ? self->idle[--self->idle_count] : curl_easy_init();
    if (!easy || !request->headers) {
        if (easy)
            curl_easy_cleanup(easy);
        curl_slist_free_all(request->headers);
        request->headers = NULL;
        return NULL;
    }
    curl_easy_reset(easy);
    curl_easy_setopt(easy, CURLOPT_URL, self->url);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, nsq_msg_body(msg));
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) nsq_msg_size(msg));
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, request->headers);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) self->request_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) self->request_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    nsq_http_client_tls_apply(easy, &self->context.tls);
    if (self->context.capture_output) {
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, s_keep);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, request);
    } else
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, request);
    return easy;
}

static int s_start(worker_handler_t *base, worker_job_t *job)
{
    s_http_t *self = (s_http_t *) base;
    s_request_t *request = calloc(1, sizeof *request);
    if (!request)
        return -1;
    request->job = job;
    request->output_max = self->context.max_output;
    request->easy = s_easy(self, request);
    if (!request->easy || curl_multi_add_handle(self->multi, request->easy) != CURLM_OK) {
        if (request->easy)
            curl_easy_cleanup(request->easy);
        curl_slist_free_all(request->headers);
        free(request);
        return -1;
    }
    request->next = self->running;
    self->running = request;
    job->state = request;
    return 0;
}

static void s_abort_all(worker_handler_t *base)
{
    s_http_t *self = (s_http_t *) base;
    while (self->running) {
        s_request_t *request = self->running;
        worker_job_t *job = request->job;
        s_release(self, request);
        free(request);
        self->context.done(self->context.done_arg, job, WORKER_RESULT_RETRY);
    }
}

static void s_destroy(worker_handler_t *base)
{
    s_http_t *self = (s_http_t *) base;
    while (self->running) {
        s_request_t *request = self->running;
        s_release(self, request);
        free(request);
    }
    for (size_t i = 0; i < self->idle_count; i++)
        curl_easy_cleanup(self->idle[i]);
    if (self->multi)
        curl_multi_cleanup(self->multi);  // calls s_on_curl_socket for open sockets
    if (self->timer)
        zloop_timer_end(self->context.loop, self->timer);
    free(self->idle);
    free(self->url);
    free(self);
}

static const worker_handler_ops_t s_ops = {
    .start = s_start,
    .abort_all = s_abort_all,
    .destroy = s_destroy,
};

worker_handler_t *worker_handler_http_new(const worker_handler_context_t *context, const char *url,
                                          int64_t request_timeout_ms)
{
    s_http_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->base.ops = &s_ops;
    self->base.name = "http";
    self->context = *context;
    self->request_timeout_ms = request_timeout_ms > 0 ? request_timeout_ms : 30000;
    self->url = strdup(url);
    self->multi = curl_multi_init();
    self->idle_capacity = 64;
    self->idle = calloc(self->idle_capacity, sizeof *self->idle);
    if (!self->url || !self->multi || !self->idle) {
        s_destroy(&self->base);
        return NULL;
    }
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETFUNCTION, s_on_curl_socket);
    curl_multi_setopt(self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERFUNCTION, s_on_curl_timer);
    curl_multi_setopt(self->multi, CURLMOPT_TIMERDATA, self);
    return &self->base;
}
