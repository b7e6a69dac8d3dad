/*  nsq_http_server - one libmicrohttpd server for the broker, lookupd and
    worker: plain HTTP, HTTPS, or both
    SPDX-License-Identifier: MIT

    Each address is a door: a libmicrohttpd daemon whose access handler is
    s_access, which applies the door's TLS rules on the first call of a
    request (headers in, no body read) and then hands every call to the
    caller's handler unchanged. A refusal leaves the request context NULL
    and closes the connection, so the caller never sees that request
    (libmicrohttpd calls its completion callback with a NULL context).

    Client certificates are checked per request: libmicrohttpd asks for one
    (GNUTLS_CERT_REQUEST) when it has a trust list, and leaves verifying it
    to the application.
*/
#include "nsq_http_server.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nsq_address.h"
#include "nsq_http.h"
#include "nsq_log.h"
#include "nsq_secret.h"

#define S_CONNECTION_LIMIT_MAX 10000  // upper bound, lowered to fit RLIMIT_NOFILE
#define S_TIMEOUT_DEFAULT_S    30
#define S_JSON                 "application/json"

typedef enum { S_POLICY_NONE, S_POLICY_REQUIRE, S_POLICY_REQUIRE_VERIFY } s_policy_t;

//  The PEM files of the HTTPS door, read into memory (libmicrohttpd wants
//  them so). Freed by s_files_free.
typedef struct {
    char *cert, *key, *trust;
} s_files_t;

typedef struct {
    nsq_http_server_t *server;  // owner
    struct MHD_Daemon *daemon;  // NULL if this address is not served
    bool tls;                   // the HTTPS door
    uint16_t port;              // bound port
} s_door_t;

struct _nsq_http_server_t {
    s_door_t plain;                    // --http-address
    s_door_t secure;                   // --https-address
    bool tls_required;                 // the plain door answers 403 TLS_REQUIRED
    s_policy_t policy;                 // client certificates on the HTTPS door
    MHD_AccessHandlerCallback access;  // the caller's
    void *access_arg;                  //   and its argument
    atomic_bool starting;              // libmicrohttpd's errors go to start_error
    char start_error[256];             // why a door could not start
    s_files_t files;                   // PEM texts; libmicrohttpd keeps pointers to them
};

//  --------------------------------------------------------------------------
//  Settings

const char *nsq_http_tls_priorities(const char *min_version)
{
    if (!min_version || !*min_version || strcmp(min_version, "tls1.2") == 0)
        return "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
    if (strcmp(min_version, "tls1.3") == 0)
        return "NORMAL:-VERS-ALL:+VERS-TLS1.3";
    if (strcmp(min_version, "tls1.1") == 0)
        return "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:+VERS-TLS1.1";
    if (strcmp(min_version, "tls1.0") == 0)
        return "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:+VERS-TLS1.1:+VERS-TLS1.0";
    return NULL;
}

static bool s_set(const char *text)
{
    return text && *text;
}

static int s_policy(const char *text, s_policy_t *policy)
{
    if (!s_set(text))
        *policy = S_POLICY_NONE;
    else if (strcmp(text, "require") == 0)
        *policy = S_POLICY_REQUIRE;
    else if (strcmp(text, "require-verify") == 0)
        *policy = S_POLICY_REQUIRE_VERIFY;
    else
        return -1;
    return 0;
}

int nsq_http_tls_check(const nsq_http_tls_t *tls, const char *https_address, char *error,
                       size_t size)
{
    s_policy_t policy;
    if (s_set(tls->cert_file) != s_set(tls->key_file)) {
        snprintf(error, size, "--tls-cert and --tls-key go together");
        return -1;
    }
    if (s_policy(tls->client_auth_policy, &policy) != 0) {
        snprintf(error, size, "--tls-client-auth-policy=%s: want require or require-verify",
                 tls->client_auth_policy);
        return -1;
    }
    if (policy != S_POLICY_NONE && !s_set(tls->root_ca_file)) {
        snprintf(error, size, "--tls-client-auth-policy needs --tls-root-ca-file");
        return -1;
    }
    if (!nsq_http_tls_priorities(tls->min_version)) {
        snprintf(error, size, "--tls-min-version=%s: want tls1.0, tls1.1, tls1.2 or tls1.3",
                 tls->min_version);
        return -1;
    }
    if (s_set(https_address) && !s_set(tls->cert_file)) {
        snprintf(error, size, "--https-address needs --tls-cert and --tls-key");
        return -1;
    }
    if (s_set(tls->key_file) && nsq_secret_file_check("tls-key", tls->key_file, error, size) != 0)
        return -1;
    return 0;
}

//  --------------------------------------------------------------------------
//  Callbacks

//  The TLS rule of the door for a new request: NULL if it may go on, else
//  the refusal's code.
static const char *s_refusal(const s_door_t *door, struct MHD_Connection *connection)
{
    const nsq_http_server_t *self = door->server;
    if (!door->tls)
        return self->tls_required ? "TLS_REQUIRED" : NULL;
    if (self->policy == S_POLICY_NONE)
        return NULL;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = info ? (gnutls_session_t) info->tls_session : NULL;
    unsigned count = 0;
    if (!session || !gnutls_certificate_get_peers(session, &count) || count == 0)
        return "TLS_CLIENT_CERT_REQUIRED";
    unsigned status = 0;
    if (self->policy == S_POLICY_REQUIRE_VERIFY
        && (gnutls_certificate_verify_peers2(session, &status) != GNUTLS_E_SUCCESS || status))
        return "TLS_CLIENT_CERT_REQUIRED";
    return NULL;
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *connection, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **request_context)
{
    s_door_t *door = cls;
    nsq_http_server_t *self = door->server;
    if (!*request_context) {
        const char *code = s_refusal(door, connection);
        if (code) {
            char body[64];
            snprintf(body, sizeof body, "{\"message\":\"%s\"}", code);
            return nsq_http_refuse(connection, MHD_HTTP_FORBIDDEN, S_JSON, body);
        }
    }
    return self->access(self->access_arg, connection, url, method, version, upload_data,
                        upload_data_size, request_context);
}

static void s_log(void *cls, const char *format, va_list args)
{
    nsq_http_server_t *self = cls;
    char text[512];
    vsnprintf(text, sizeof text, format, args);
    size_t size = strlen(text);
    while (size && (text[size - 1] == '\n' || text[size - 1] == ' '))
        text[--size] = '\0';
    if (atomic_load(&self->starting))
        snprintf(self->start_error, sizeof self->start_error, "%s", text);
    else
        nsq_warn("http: %s", text);
}

//  --------------------------------------------------------------------------
//  Server

//  As many connections as file descriptors allow, keeping some for the rest.
static unsigned s_connection_limit(void)
{
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
        return S_CONNECTION_LIMIT_MAX;
    rlim_t usable = limit.rlim_cur > 256 ? limit.rlim_cur - 128 : limit.rlim_cur / 2;
    return usable < S_CONNECTION_LIMIT_MAX ? (unsigned) usable : S_CONNECTION_LIMIT_MAX;
}

static void s_files_free(s_files_t *files)
{
    free(files->cert);
    if (files->key)
        explicit_bzero(files->key, strlen(files->key));
    free(files->key);
    free(files->trust);
    memset(files, 0, sizeof *files);
}

static int s_files_read(const nsq_http_tls_t *tls, s_files_t *files, char *error, size_t size)
{
    memset(files, 0, sizeof *files);
    files->cert = nsq_secret_file_read("tls-cert", tls->cert_file, NULL, error, size);
    if (files->cert)
        files->key = nsq_secret_file_read("tls-key", tls->key_file, NULL, error, size);
    if (files->key && s_set(tls->root_ca_file))
        files->trust =
            nsq_secret_file_read("tls-root-ca-file", tls->root_ca_file, NULL, error, size);
    if (files->key && (!s_set(tls->root_ca_file) || files->trust))
        return 0;
    s_files_free(files);
    return -1;
}

static int s_door_start(nsq_http_server_t *self, s_door_t *door, const char *text,
                        const nsq_http_server_config_t *config, const s_files_t *files, char *error,
                        size_t size)
{
    struct sockaddr_storage address;
    const char *flag = door->tls ? "--https-address" : "--http-address";
    if (nsq_address_parse(text, &address) != 0) {
        snprintf(error, size, "invalid %s %s: not a host:port or [ipv6]:port", flag, text);
        return -1;
    }
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | nsq_http_address_flags(&address)
        | (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_AUTO);
    flags |= (config->turbo ? MHD_USE_TURBO : 0)
             | (config->suspend_resume ? MHD_ALLOW_SUSPEND_RESUME : 0)
             | (door->tls ? MHD_USE_TLS : 0);
    // What only some doors take: a pool (libmicrohttpd warns about a size of
    // 0 or 1), the TLS files.
    struct MHD_OptionItem options[8];
    size_t count = 0;
    if (config->threads > 1)
        options[count++] =
            (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, config->threads, NULL};
    if (door->tls) {
        options[count++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, files->cert};
        options[count++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, files->key};
        options[count++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                    (void *) nsq_http_tls_priorities(config->tls.min_version)};
    }
    if (door->tls && files->trust)
        options[count++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, files->trust};
    options[count] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    unsigned timeout =
        config->connection_timeout_s ? config->connection_timeout_s : S_TIMEOUT_DEFAULT_S;
    atomic_store(&self->starting, true);
    self->start_error[0] = '\0';
    door->daemon = MHD_start_daemon(
        flags, nsq_address_port(&address), NULL, NULL, s_access, door,  //
        MHD_OPTION_SOCK_ADDR, &address,                                 //
        MHD_OPTION_CONNECTION_LIMIT, s_connection_limit(),              //
        MHD_OPTION_CONNECTION_TIMEOUT, timeout,                         //
        MHD_OPTION_NOTIFY_CONNECTION, config->notify_connection, config->notify_connection_arg,
        MHD_OPTION_NOTIFY_COMPLETED, config->notify_completed, config->notify_completed_arg,
        MHD_OPTION_EXTERNAL_LOGGER, s_log, self,  //
        MHD_OPTION_ARRAY, options,                //
        MHD_OPTION_END);
    atomic_store(&self->starting, false);
    if (!door->daemon) {
        snprintf(error, size, "cannot listen on %s %s: %s", flag, text,
                 self->start_error[0] ? self->start_error : strerror(errno));
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(door->daemon, MHD_DAEMON_INFO_BIND_PORT);
    door->port = info ? info->port : nsq_address_port(&address);
    return 0;
}

nsq_http_server_t *nsq_http_server_new(const nsq_http_server_config_t *config, char *error,
                                       size_t size)
{
    if (nsq_http_tls_check(&config->tls, config->https_address, error, size) != 0)
        return NULL;
    nsq_http_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(error, size, "out of memory");
        return NULL;
    }
    self->plain = (s_door_t){self, NULL, false, 0};
    self->secure = (s_door_t){self, NULL, true, 0};
    self->tls_required = config->tls.required;
    s_policy(config->tls.client_auth_policy, &self->policy);
    self->access = config->access;
    self->access_arg = config->access_arg;
    int rc = 0;
    if (s_set(config->https_address)) {
        rc = s_files_read(&config->tls, &self->files, error, size);
        if (rc == 0)
            rc = s_door_start(self, &self->secure, config->https_address, config, &self->files,
                              error, size);
    }
    if (rc == 0 && s_set(config->http_address))
        rc = s_door_start(self, &self->plain, config->http_address, config, &self->files, error,
                          size);
    if (rc != 0)
        nsq_http_server_destroy(&self);
    else if (config->tls.required && !self->secure.daemon)
        nsq_warn("http: --tls-required without --https-address: every HTTP request gets 403 "
                 "TLS_REQUIRED (as nsqd's)");
    return self;
}

uint16_t nsq_http_server_port(const nsq_http_server_t *self)
{
    return self->plain.port;
}

uint16_t nsq_http_server_https_port(const nsq_http_server_t *self)
{
    return self->secure.port;
}

bool nsq_http_server_is_tls(struct MHD_Connection *connection)
{
    return MHD_get_connection_info(connection, MHD_CONNECTION_INFO_GNUTLS_SESSION) != NULL;
}

void nsq_http_server_destroy(nsq_http_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_http_server_t *self = *self_p;
    if (self->plain.daemon)
        MHD_stop_daemon(self->plain.daemon);
    if (self->secure.daemon)
        MHD_stop_daemon(self->secure.daemon);
    s_files_free(&self->files);
    free(self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  Self-test: the settings checks, and a plain server that passes requests
//  through (HTTPS is driven by tests/integration/it_tls with real files)

static enum MHD_Result s_test_access(void *cls, struct MHD_Connection *connection, const char *url,
                                     const char *method, const char *version, const char *upload,
                                     size_t *upload_size, void **state)
{
    (void) cls, (void) url, (void) method, (void) version, (void) upload, (void) upload_size;
    if (!*state) {
        *state = connection;
        return MHD_YES;
    }
    return nsq_http_answer(connection, MHD_HTTP_OK, "text/plain",
                           nsq_http_server_is_tls(connection) ? "tls" : "plain");
}

int nsq_http_server_test(void)
{
    char error[256];
    char key[] = "/tmp/nsq_http_server_test.XXXXXX";
    int fd = mkstemp(key);
    if (fd < 0)
        return -1;
    close(fd);
    const struct {
        nsq_http_tls_t tls;
        const char *https;
        const char *error;  // NULL: accepted
    } cases[] = {
        {{NULL, NULL, NULL, NULL, NULL, false}, NULL, NULL},
        {{"", "", "", "", "", false}, "", NULL},
        {{key, key, NULL, NULL, "tls1.3", false}, "127.0.0.1:0", NULL},
        {{key, key, key, "require-verify", NULL, true}, "127.0.0.1:0", NULL},
        {{key, NULL, NULL, NULL, NULL, false}, NULL, "go together"},
        {{key, key, NULL, "require", NULL, false}, "127.0.0.1:0", "needs --tls-root-ca-file"},
        {{key, key, key, "optional", NULL, false}, "127.0.0.1:0", "want require"},
        {{key, key, NULL, NULL, "ssl3.0", false}, "127.0.0.1:0", "--tls-min-version=ssl3.0"},
        {{NULL, NULL, NULL, NULL, NULL, false}, "127.0.0.1:0", "needs --tls-cert"},
        {{key, key, NULL, NULL, NULL, true}, NULL, NULL},
        {{key, "/nonexistent/key.pem", NULL, NULL, NULL, false}, NULL, "--tls-key=/nonexistent"},
    };
    int failed = 0;
    for (size_t index = 0; index < sizeof cases / sizeof *cases; index++) {
        error[0] = '\0';
        int rc = nsq_http_tls_check(&cases[index].tls, cases[index].https, error, sizeof error);
        if (cases[index].error ? rc == 0 || !strstr(error, cases[index].error) : rc != 0) {
            fprintf(stderr, "nsq_http_server_test: case %zu: rc %d, \"%s\"\n", index, rc, error);
            failed = 1;
        }
    }
    // The one mapping of --tls-min-version (the broker's TCP door takes it too).
    failed |= strcmp(nsq_http_tls_priorities(""), nsq_http_tls_priorities("tls1.2")) != 0;
    failed |= strstr(nsq_http_tls_priorities("tls1.3"), "TLS1.2") != NULL;
    failed |= !strstr(nsq_http_tls_priorities("tls1.0"), "TLS1.0");
    chmod(key, 0644);
    nsq_http_tls_t wide = {key, key, NULL, NULL, NULL, false};
    failed |= nsq_http_tls_check(&wide, NULL, error, sizeof error) == 0;
    failed |= !strstr(error, "mode 0644 is wider than 0600");
    unlink(key);

    nsq_http_server_config_t config = {0};
    config.http_address = "127.0.0.1:0";
    config.access = s_test_access;
    nsq_http_server_t *self = nsq_http_server_new(&config, error, sizeof error);
    failed |= !self || nsq_http_server_port(self) == 0 || nsq_http_server_https_port(self) != 0;
    if (self) {
        char taken[64];
        snprintf(taken, sizeof taken, "127.0.0.1:%u", nsq_http_server_port(self));
        config.http_address = taken;
        error[0] = '\0';
        nsq_http_server_t *refused = nsq_http_server_new(&config, error, sizeof error);
        failed |= refused != NULL || !strstr(error, "cannot listen on --http-address 127.0.0.1:");
        nsq_http_server_destroy(&refused);
    }
    nsq_http_server_destroy(&self);
    nsq_http_server_destroy(&self);
    return failed ? -1 : 0;
}
