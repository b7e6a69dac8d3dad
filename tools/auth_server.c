/*  nsq-auth-server - the reference auth server: a static file of secrets
    and what each may do, served on GET /auth as nsqd (and nsq-broker's
    --auth-http-address) asks for it
    SPDX-License-Identifier: MIT

    The file (--auth-file, JSON) maps each secret to its answer:

        {"secrets": {"s3cret": {"ttl": 3600, "identity": "billing",
           "identity_url": "", "authorizations": [{"topic": "^orders$",
           "channels": [".*"], "permissions": ["subscribe", "publish"]}]}}}

    GET /auth?secret=S (remote_ip, tls and common_name are accepted and
    ignored) answers the secret's object as it is, or 403
    {"message":"AUTH_FAILED"} for a secret the file does not list. The file
    is read again when its modification time or size changes, so secrets
    are added and revoked without a restart (a broker sees the change after
    the answer's ttl). A file that does not parse keeps the last good one
    (logged); at start it is an error. Secrets are never logged.

    Small on purpose: one libmicrohttpd thread, the file in memory. Prints
    "READY http=HOST:PORT" on stdout once it listens (port 0 picks one).
*/
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    const char *path;       // --auth-file
    pthread_mutex_t lock;   // guards the fields below (MHD's thread and reloads)
    json_t *secrets;        // the "secrets" object of the last good file
    struct timespec mtime;  // of the file read
    off_t size;             // of the file read
} auth_file_t;

// Reads the file if it changed. Returns 0, or -1 (the last good one stays).
static int s_reload(auth_file_t *file)
{
    struct stat status;
    if (stat(file->path, &status) != 0) {
        fprintf(stderr, "nsq-auth-server: cannot read %s: %s\n", file->path, strerror(errno));
        return -1;
    }
    if (file->secrets && status.st_mtim.tv_sec == file->mtime.tv_sec
        && status.st_mtim.tv_nsec == file->mtime.tv_nsec && status.st_size == file->size)
        return 0;
    json_error_t error;
    json_t *root = json_load_file(file->path, JSON_REJECT_DUPLICATES, &error);
    json_t *secrets = json_object_get(root, "secrets");
    if (!json_is_object(secrets)) {
        fprintf(stderr, "nsq-auth-server: %s: not {\"secrets\": {...}} (line %d: %s)\n", file->path,
                error.line, root ? "no secrets object" : error.text);
        json_decref(root);
        return -1;
    }
    json_incref(secrets);
    json_decref(root);
    json_decref(file->secrets);
    file->secrets = secrets;
    file->mtime = status.st_mtim;
    file->size = status.st_size;
    fprintf(stderr, "nsq-auth-server: %s: %zu secrets\n", file->path, json_object_size(secrets));
    return 0;
}

static enum MHD_Result s_answer(struct MHD_Connection *mhd, unsigned status, char *body)
{
    if (!body)
        return MHD_NO;
    struct MHD_Response *response =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result result = MHD_queue_response(mhd, status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result s_access(void *cls, struct MHD_Connection *mhd, const char *url,
                                const char *method, const char *version, const char *upload,
                                size_t *upload_size, void **context)
{
    (void) version, (void) upload, (void) upload_size, (void) context;
    auth_file_t *file = cls;
    if (strcmp(url, "/ping") == 0)
        return s_answer(mhd, MHD_HTTP_OK, strdup("OK"));
    if (strcmp(url, "/auth") != 0)
        return s_answer(mhd, MHD_HTTP_NOT_FOUND, strdup("{\"message\":\"NOT_FOUND\"}"));
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        return s_answer(mhd, MHD_HTTP_METHOD_NOT_ALLOWED,
                        strdup("{\"message\":\"METHOD_NOT_ALLOWED\"}"));
    const char *secret = NULL;
    size_t size = 0;
    if (MHD_lookup_connection_value_n(mhd, MHD_GET_ARGUMENT_KIND, "secret", 6, &secret, &size)
            != MHD_YES
        || !secret || size == 0 || strlen(secret) != size)
        return s_answer(mhd, MHD_HTTP_FORBIDDEN, strdup("{\"message\":\"AUTH_FAILED\"}"));
    pthread_mutex_lock(&file->lock);
    s_reload(file);
    json_t *grant = json_object_get(file->secrets, secret);
    char *body = grant ? json_dumps(grant, JSON_COMPACT) : NULL;
    pthread_mutex_unlock(&file->lock);
    if (!grant)
        return s_answer(mhd, MHD_HTTP_FORBIDDEN, strdup("{\"message\":\"AUTH_FAILED\"}"));
    return s_answer(mhd, MHD_HTTP_OK, body);
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: nsq-auth-server --auth-file=FILE [--http-address=HOST:PORT]\n"
                 "  --auth-file     JSON {\"secrets\": {SECRET: {ttl, identity, identity_url,\n"
                 "                  authorizations}}}, re-read when it changes\n"
                 "                  (env NSQ_AUTH_SERVER_AUTH_FILE)\n"
                 "  --http-address  where to listen (default 127.0.0.1:4181; port 0 picks one)\n"
                 "                  (env NSQ_AUTH_SERVER_HTTP_ADDRESS)\n");
}

// Parses "IPv4:port" into address. Returns 0 or -1.
static int s_address(const char *text, struct sockaddr_in *address)
{
    const char *colon = strrchr(text, ':');
    char host[64];
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || (size_t) (colon - text) >= sizeof host || *end || port < 0 || port > 65535)
        return -1;
    snprintf(host, sizeof host, "%.*s", (int) (colon - text), text);
    memset(address, 0, sizeof *address);
    address->sin_family = AF_INET;
    address->sin_port = htons((uint16_t) port);
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0)
        address->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
                       &address->sin_addr)
             != 1)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = getenv("NSQ_AUTH_SERVER_AUTH_FILE");
    const char *listen = getenv("NSQ_AUTH_SERVER_HTTP_ADDRESS");
    listen = listen ? listen : "127.0.0.1:4181";
    static const struct option options[] = {{"auth-file", required_argument, NULL, 'f'},
                                            {"http-address", required_argument, NULL, 'a'},
                                            {"help", no_argument, NULL, 'h'},
                                            {NULL, 0, NULL, 0}};
    for (int option; (option = getopt_long(argc, argv, "", options, NULL)) != -1;) {
        if (option == 'f')
            path = optarg;
        else if (option == 'a')
            listen = optarg;
        else
            return s_usage(option == 'h' ? stdout : stderr), option == 'h' ? 0 : 1;
    }
    struct sockaddr_in address;
    if (!path || optind != argc)
        return s_usage(stderr), 1;
    if (s_address(listen, &address) != 0)
        return fprintf(stderr, "nsq-auth-server: --http-address %s is not IPv4:PORT\n", listen), 1;
    auth_file_t file = {.path = path};
    pthread_mutex_init(&file.lock, NULL);
    if (s_reload(&file) != 0)
        return 1;
    sigset_t signals;  // blocked before MHD's thread starts, so it inherits the mask
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    struct MHD_Daemon *daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                         ntohs(address.sin_port), NULL, NULL, s_access, &file, MHD_OPTION_SOCK_ADDR,
                         &address, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 30, MHD_OPTION_END);
    if (!daemon)
        return fprintf(stderr, "nsq-auth-server: cannot listen on %s\n", listen), 1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    char host[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &address.sin_addr, host, sizeof host);
    printf("READY http=%s:%u\n", host, info ? info->port : ntohs(address.sin_port));
    fflush(stdout);
    int received;
    sigwait(&signals, &received);
    MHD_stop_daemon(daemon);
    json_decref(file.secrets);
    pthread_mutex_destroy(&file.lock);
    return 0;
}
