/*  worker_http - the worker's probes and metrics over HTTP (libmicrohttpd)
    SPDX-License-Identifier: MIT

    Every answer is computed from worker_metrics on the server's thread; the
    worker's loop is never asked. See worker_http.h for the routes and for
    how worker_http_start treats an address that cannot be bound. Bodies
    are ignored, but a request whose body length is ambiguous is refused
    (nsq_http.h).
*/
#include "worker_http.h"
#include "nsq_address.h"

#include "nsq_http.h"
#include "nsq_http_server.h"
#include "nsq_log.h"

#include <curl/curl.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _worker_http_t {
    nsq_http_server_t *server;  // the running servers (HTTP, HTTPS)
    worker_metrics_t *metrics;  // what it reports (borrowed)
    uint16_t port;              // bound port
};

static enum MHD_Result s_answer(struct MHD_Connection *connection, unsigned status,
                                const char *text, bool copy, const char *type)
{
    struct MHD_Response *response = MHD_create_response_from_buffer(
        strlen(text), (void *) text, copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_MUST_FREE);
    if (!response)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    enum MHD_Result result = MHD_queue_response(connection, status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result s_access(void *arg, struct MHD_Connection *connection, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **state)
{
    (void) version;
    (void) upload;
    worker_http_t *self = arg;
    if (!*state) {  // headers only so far: answer on the next call
        *state = self;
        if (nsq_http_framing_is_ambiguous(connection))
            return nsq_http_refuse(connection, MHD_HTTP_BAD_REQUEST, "text/plain; charset=utf-8",
                                   "ambiguous request framing\n");
        return MHD_YES;
    }
    *upload_size = 0;  // bodies are ignored
    const char *plain = "text/plain; charset=utf-8";
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return s_answer(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", true,
                        plain);
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/ping") == 0)
        return s_answer(connection, MHD_HTTP_OK, "OK\n", true, plain);
    if (strcmp(url, "/readyz") == 0) {
        bool draining = worker_metrics_get(self->metrics, WORKER_METRIC_DRAINING) != 0;
        bool reached = worker_metrics_get(self->metrics, WORKER_METRIC_CONNECTIONS) != 0
                       || worker_metrics_get(self->metrics, WORKER_METRIC_LOOKUPD_OK) != 0;
        if (draining)
            return s_answer(connection, MHD_HTTP_SERVICE_UNAVAILABLE, "draining\n", true, plain);
        if (!reached)
            return s_answer(connection, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "no broker connected and no lookupd answered\n", true, plain);
        return s_answer(connection, MHD_HTTP_OK, "OK\n", true, plain);
    }
    if (strcmp(url, "/metrics") == 0) {
        char *text = worker_metrics_render(self->metrics);
        if (!text)
            return s_answer(connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", true,
                            plain);
        return s_answer(connection, MHD_HTTP_OK, text, false, "text/plain; version=0.0.4");
    }
    return s_answer(connection, MHD_HTTP_NOT_FOUND, "not found\n", true, plain);
}

worker_http_t *worker_http_new(const char *address, const char *https_address,
                               const nsq_http_tls_t *tls, worker_metrics_t *metrics, char *error,
                               size_t size)
{
    worker_http_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(error, size, "out of memory");
        return NULL;
    }
    self->metrics = metrics;
    nsq_http_server_config_t server = {0};
    server.http_address = address;
    server.https_address = https_address;
    if (tls)
        server.tls = *tls;
    server.access = s_access;
    server.access_arg = self;
    self->server = nsq_http_server_new(&server, error, size);
    if (!self->server) {
        free(self);
        return NULL;
    }
    self->port = nsq_http_server_port(self->server);
    if (nsq_http_server_https_port(self->server))
        nsq_info("http: HTTPS on port %u", nsq_http_server_https_port(self->server));
    return self;
}

int worker_http_start(const worker_config_t *config, worker_metrics_t *metrics,
                      worker_http_t **http)
{
    *http = NULL;
    if (!(config->http_address && *config->http_address) && !config->https_address[0])
        return 0;
    char error[320];
    nsq_http_tls_t tls = NSQ_HTTP_TLS_OF(config);
    *http = worker_http_new(config->http_address, config->https_address, &tls, metrics, error,
                            sizeof error);
    if (*http)
        return 0;
    if (!config->http_address_optional) {
        nsq_error("%s", error);
        return -1;
    }
    nsq_warn("%s; as that is the default, running without /healthz, /readyz and /metrics "
             "(set --http-address to require them, or to \"\" for none)",
             error);
    return 0;
}

void worker_http_destroy(worker_http_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_http_server_destroy(&(*self_p)->server);
    free(*self_p);
    *self_p = NULL;
}

uint16_t worker_http_port(worker_http_t *self)
{
    return self->port;
}

// ---- self-test ---------------------------------------------------------------

static size_t s_test_discard(char *data, size_t size, size_t count, void *arg)
{
    (void) data;
    (void) arg;
    return size * count;
}

static long s_test_get(uint16_t port, const char *path)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u%s", port, path);
    CURL *curl = curl_easy_init();
    long status = -1;
    if (!curl)
        return -1;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_test_discard);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    return status;
}

int worker_http_test(void)
{
    worker_metrics_t *metrics = worker_metrics_new();
    char error[256] = "";
    worker_http_t *refused =
        worker_http_new("127.0.0.1:99999", NULL, NULL, metrics, error, sizeof error);
    int failed = refused || !strstr(error, "127.0.0.1:99999");
    worker_http_t *self = worker_http_new("127.0.0.1:0", NULL, NULL, metrics, error, sizeof error);
    failed |= !metrics || !self || worker_http_port(self) == 0;
    if (!failed) {
        uint16_t port = worker_http_port(self);
        char taken[64];
        snprintf(taken, sizeof taken, "127.0.0.1:%u", port);
        error[0] = '\0';
        refused =
            worker_http_new(taken, NULL, NULL, metrics, error, sizeof error);  // the port is ours
        failed |= refused || !strstr(error, taken) || !strstr(error, ": ");
        worker_http_destroy(&refused);
        failed |= s_test_get(port, "/healthz") != 200;
        failed |= s_test_get(port, "/readyz") != 503;              // no broker yet
        worker_metrics_set(metrics, WORKER_METRIC_LOOKUPD_OK, 1);  // topic not found counts
        failed |= s_test_get(port, "/readyz") != 200;
        worker_metrics_set(metrics, WORKER_METRIC_LOOKUPD_OK, 0);
        worker_metrics_set(metrics, WORKER_METRIC_CONNECTIONS, 1);
        failed |= s_test_get(port, "/readyz") != 200;
        worker_metrics_set(metrics, WORKER_METRIC_DRAINING, 1);
        failed |= s_test_get(port, "/readyz") != 503;
        failed |= s_test_get(port, "/metrics") != 200;
        failed |= s_test_get(port, "/other") != 404;
    }
    worker_http_destroy(&self);
    worker_http_destroy(&self);
    worker_metrics_destroy(&metrics);
    return failed ? -1 : 0;
}
