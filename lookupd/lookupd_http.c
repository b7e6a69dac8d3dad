/*  lookupd_http - lookupd's HTTP front end (libmicrohttpd: one thread for
    HTTP, one for HTTPS when it is on; nsq_http_server)
    SPDX-License-Identifier: MIT

    The servers' threads share one REQ socket to the actor (created on
    first use), taken in turn under a lock: lookupd's requests are few and
    the actor answers in microseconds.
    The body of a POST is ignored (NSQ's lookupd reads only the query), but
    a request whose body length is ambiguous is refused (nsq_http.h).

    A request that changes something (not GET or HEAD) sent by a browser
    from another site's page (its Origin is not this host) is refused with
    403 before it reaches the actor (s_cross_site).

    The console's files (lookupd_assets.h) are answered here, without the
    actor: they are constant. Each carries its ETag and "Cache-Control:
    no-cache", so a browser asks again but gets a 304 with no body while
    the binary is the same, and a new binary's files are never stale.
*/
#include "lookupd_http.h"
#include "nsq_address.h"

#include <czmq.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lookupd_assets.h"
#include "nsq_http.h"
#include "nsq_http_server.h"
#include "nsq_log.h"

#include <netdb.h>

#define S_REPLY_TIMEOUT_MS 2000  // the actor answers in microseconds; this is a safety net

struct _lookupd_http_t {
    nsq_http_server_t *server;  // the servers and their threads
    char endpoint[128];         // inproc endpoint of the actor's ROUTER
    pthread_mutex_t lock;       // guards request
    zsock_t *request;           // REQ to the actor, used under lock
    uint16_t port;              // bound port
};

// Appends the query argument key to request as one frame of its decoded
// bytes (empty if absent): the actor checks names with their length, so an
// escaped NUL ("%00") can never cut a name short.
static void s_add_arg(zmsg_t *request, struct MHD_Connection *connection, const char *key)
{
    const char *value = NULL;
    size_t size = 0;
    if (MHD_lookup_connection_value_n(connection, MHD_GET_ARGUMENT_KIND, key, strlen(key), &value,
                                      &size)
            != MHD_YES
        || !value)
        size = 0;
    zmsg_addmem(request, value ? value : "", size);
}

// The client's "address:port" (IPv6 in brackets) into out.
static void s_remote(struct MHD_Connection *connection, char *out, size_t size)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[NI_MAXHOST] = "", port[NI_MAXSERV] = "";
    const struct sockaddr *address = info ? info->client_addr : NULL;
    socklen_t length = address && address->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                 : sizeof(struct sockaddr_in);
    if (!address
        || getnameinfo(address, length, host, sizeof host, port, sizeof port,
                       NI_NUMERICHOST | NI_NUMERICSERV)) {
        snprintf(out, size, "unknown");
        return;
    }
    bool ipv6 = strchr(host, ':') != NULL;
    snprintf(out, size, "%s%s%s:%s", ipv6 ? "[" : "", host, ipv6 ? "]" : "", port);
}

// Adds who asks: the client's address and its User-Agent (at most 200
// bytes, for the console's action log).
static void s_add_who(zmsg_t *request, struct MHD_Connection *connection)
{
    char remote[NI_MAXHOST + NI_MAXSERV + 4];
    s_remote(connection, remote, sizeof remote);
    zmsg_addstr(request, remote);
    const char *agent =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
    size_t size = agent ? strnlen(agent, 200) : 0;
    zmsg_addmem(request, agent ? agent : "", size);
}

// Answers a console file: 304 when the browser holds this version.
static enum MHD_Result s_answer_asset(struct MHD_Connection *connection,
                                      const lookupd_asset_t *asset)
{
    const char *held =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    bool fresh = held && strcmp(held, asset->etag) == 0;
    struct MHD_Response *response = MHD_create_response_from_buffer(
        fresh ? 0 : asset->size, fresh ? NULL : (void *) asset->data, MHD_RESPMEM_PERSISTENT);
    if (!response)
        return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, asset->content_type);
    MHD_add_response_header(response, MHD_HTTP_HEADER_ETAG, asset->etag);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
    // Our own files only: no inline script, nothing from elsewhere.
    MHD_add_response_header(response, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
    enum MHD_Result result =
        MHD_queue_response(connection, fresh ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, response);
    MHD_destroy_response(response);
    return result;
}

// True if a browser sent this request from a page of another site: its
// Origin header names another host than the one it asked (Host). A POST
// from such a page (a "simple" cross-site request, sent without asking)
// could otherwise pause or delete topics with an operator's access.
// Clients other than browsers send no Origin and are not concerned.
static bool s_cross_site(struct MHD_Connection *connection)
{
    const char *origin =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_ORIGIN);
    const char *host =
        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!origin)
        return false;
    const char *authority = strstr(origin, "://");
    return !host || !authority || strcmp(authority + 3, host) != 0;
}

// One round trip to the actor. Returns 0 and fills the answer, or -1 (the
// socket is then replaced, since a REQ that missed its reply is stuck).
static int s_forward(lookupd_http_t *self, struct MHD_Connection *connection, const char *method,
                     const char *url, char **status, char **type, char **body)
{
    if (!self->request) {
        self->request = zsock_new_req(self->endpoint);
        if (!self->request)
            return -1;
        zsock_set_rcvtimeo(self->request, S_REPLY_TIMEOUT_MS);
    }
    zmsg_t *request = zmsg_new();
    zmsg_addstr(request, method);
    zmsg_addstr(request, url);
    s_add_arg(request, connection, "topic");
    s_add_arg(request, connection, "channel");
    s_add_arg(request, connection, "node");
    s_add_arg(request, connection, "id");
    s_add_who(request, connection);
    if (zmsg_send(&request, self->request) == 0
        && zstr_recvx(self->request, status, type, body, NULL) == 3)
        return 0;
    zmsg_destroy(&request);
    zsock_destroy(&self->request);
    return -1;
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *connection, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **state)
{
    (void) version;
    (void) upload_data;
    lookupd_http_t *self = cls;
    if (!*state) {  // headers only so far
        *state = self;
        if (nsq_http_framing_is_ambiguous(connection))
            return nsq_http_refuse(connection, MHD_HTTP_BAD_REQUEST, "application/json",
                                   "{\"message\":\"BAD_REQUEST\"}");
        const lookupd_asset_t *asset = lookupd_assets_find(url);
        if (asset && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
            return s_answer_asset(connection, asset);
        if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 && s_cross_site(connection))
            return nsq_http_refuse(connection, MHD_HTTP_FORBIDDEN, "application/json",
                                   "{\"message\":\"CROSS_SITE_REQUEST\"}");
        return MHD_YES;
    }
    if (*upload_data_size) {  // body bytes: not used
        *upload_data_size = 0;
        return MHD_YES;
    }
    char *status = NULL, *type = NULL, *body = NULL;
    pthread_mutex_lock(&self->lock);
    int forwarded = s_forward(self, connection, method, url, &status, &type, &body);
    pthread_mutex_unlock(&self->lock);
    if (forwarded != 0)
        return nsq_http_answer(connection, 500, "application/json",
                               "{\"message\":\"INTERNAL_ERROR\"}");
    enum MHD_Result result = nsq_http_answer(connection, (unsigned) atoi(status), type, body);
    zstr_free(&status);
    zstr_free(&type);
    zstr_free(&body);
    return result;
}

lookupd_http_t *lookupd_http_new(const lookupd_config_t *config, const char *endpoint, char *error,
                                 size_t size)
{
    lookupd_http_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(error, size, "out of memory");
        return NULL;
    }
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    pthread_mutex_init(&self->lock, NULL);
    nsq_http_server_config_t server = {0};
    server.http_address = config->http_address;
    server.https_address = config->https_address;
    server.tls = NSQ_HTTP_TLS_OF(config);
    server.access = s_access;
    server.access_arg = self;
    char reason[512];
    self->server = nsq_http_server_new(&server, reason, sizeof reason);
    if (!self->server) {
        snprintf(error, size, "http: %s", reason);
        lookupd_http_destroy(&self);
        return NULL;
    }
    self->port = nsq_http_server_port(self->server);
    if (nsq_http_server_https_port(self->server))
        nsq_info("http: HTTPS on port %u", nsq_http_server_https_port(self->server));
    return self;
}

uint16_t lookupd_http_port(lookupd_http_t *self)
{
    return self->port;
}

void lookupd_http_destroy(lookupd_http_t **self_p)
{
    lookupd_http_t *self = self_p ? *self_p : NULL;
    if (!self)
        return;
    nsq_http_server_destroy(&self->server);
    zsock_destroy(&self->request);  // the threads have ended
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}
