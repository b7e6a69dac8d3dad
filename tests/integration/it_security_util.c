/*  it_security_util - what the it_security* cases share: keys, certificates,
    clients and a recording relay
    SPDX-License-Identifier: MIT

    The relay accepts on a loopback port and runs a thread per connection
    that copies both ways to the target port, appending every byte to one
    capture under a lock. See it_security_util.h.
*/
#include "it_security_util.h"

#include <curl/curl.h>
#include <czmq.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

const char *sec_path(const char *name)
{
    static char paths[16][512];
    static int next;
    char *path = paths[next++ % 16];
    snprintf(path, 512, "%s/%s", it_tmp_dir(), name);
    return path;
}

void sec_run(const char *command)
{
    char line[2048];
    snprintf(line, sizeof line, "cd '%s' && (%s) >>tools.log 2>&1", it_tmp_dir(), command);
    IT_ASSERT(system(line) == 0, "failed: %s (see %s)", command, sec_path("tools.log"));
}

void sec_keygen(const char *name)
{
    char command[1024];
    snprintf(command, sizeof command, "'%s' %s", getenv("NSQ_KEYGEN"), name);
    sec_run(command);
}

void sec_certificates(void)
{
    sec_run("printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext;"
            " printf 'extendedKeyUsage=clientAuth\\n' > client.ext;"
            " openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
            "  -subj /CN=test-ca -keyout ca.key -out ca.pem"
            " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
            "  -subj /CN=127.0.0.1 -keyout server.key -out server.csr"
            " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1"
            "  -extfile server.ext -out server.pem"
            " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
            "  -subj /CN=client -keyout client.key -out client.csr"
            " && openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1"
            "  -extfile client.ext -out client.pem"
            " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
            "  -subj /CN=stranger -keyout stranger.key -out stranger.pem"
            " && chmod 600 ca.key server.key client.key stranger.key");
}

char *sec_slurp(const char *path)
{
    FILE *file = fopen(path, "r");
    IT_ASSERT(file, "cannot open %s", path);
    char *data = calloc(1, 1 << 20);
    size_t got = fread(data, 1, (1 << 20) - 1, file);
    data[got] = '\0';
    fclose(file);
    return data;
}

char *sec_secret_key(const char *path)
{
    zconfig_t *root = zconfig_load(path);
    IT_ASSERT(root, "cannot read %s", path);
    char *key = strdup(zconfig_get(root, "curve/secret-key", ""));
    zconfig_destroy(&root);
    IT_ASSERT(strlen(key) == 40, "no secret key in %s", path);
    return key;
}

int sec_publish(const char *address, const char *key, const char *server_key, const char *body)
{
    nsq_producer_t *producer = nsq_producer_new(address);
    IT_ASSERT(producer, "no producer for %s", address);
    nsq_producer_set_timeout(producer, 1500);
    if (key)
        IT_ASSERT(nsq_producer_set_curve(producer, key, server_key) == 0, "keys refused");
    int rc = nsq_producer_publish(producer, SEC_TOPIC, body, strlen(body));
    nsq_producer_destroy(&producer);
    return rc;
}

static size_t s_collect(char *data, size_t size, size_t count, void *arg)
{
    char *reply = arg;
    size_t have = strlen(reply), bytes = size * count, room = 1023 - have;
    memcpy(reply + have, data, bytes < room ? bytes : room);
    reply[have + (bytes < room ? bytes : room)] = '\0';
    return bytes;
}

long sec_request(const char *method, const char *url, const char *body, const char *cert,
                 char *reply)
{
    CURL *curl = curl_easy_init();
    reply[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_CAINFO, sec_path("ca.pem"));
    char cert_path[512], key_path[512];
    if (cert) {
        snprintf(cert_path, sizeof cert_path, "%s/%s.pem", it_tmp_dir(), cert);
        snprintf(key_path, sizeof key_path, "%s/%s.key", it_tmp_dir(), cert);
        curl_easy_setopt(curl, CURLOPT_SSLCERT, cert_path);
        curl_easy_setopt(curl, CURLOPT_SSLKEY, key_path);
    }
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
    long status = -1;
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    else
        it_note("%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_cleanup(curl);
    return status;
}

int sec_https_port(it_broker_t *daemon)
{
    char line[512];
    IT_ASSERT(it_broker_wait_log(daemon, "HTTPS on port ", line, sizeof line, 10000),
              "no HTTPS port in the log");
    return atoi(strstr(line, "HTTPS on port ") + strlen("HTTPS on port "));
}

typedef struct {
    sec_relay_t *relay;
    int client;
} s_pair_t;

static void s_record(sec_relay_t *relay, const char *data, size_t size)
{
    pthread_mutex_lock(&relay->lock);
    if (relay->size + size <= (8u << 20)) {
        memcpy(relay->captured + relay->size, data, size);
        relay->size += size;
    }
    pthread_mutex_unlock(&relay->lock);
}

static void *s_pair_run(void *arg)
{
    s_pair_t *pair = arg;
    int server = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET,
                                  .sin_port = htons((uint16_t) pair->relay->target),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(server, (struct sockaddr *) &address, sizeof address) == 0) {
        struct pollfd fds[2] = {{pair->client, POLLIN, 0}, {server, POLLIN, 0}};
        char buffer[65536];
        for (bool open = true; open;) {
            if (poll(fds, 2, 1000) < 0)
                break;
            for (int side = 0; side < 2 && open; side++) {
                if (!fds[side].revents)
                    continue;
                ssize_t got = read(fds[side].fd, buffer, sizeof buffer);
                if (got <= 0) {
                    open = false;
                    break;
                }
                s_record(pair->relay, buffer, (size_t) got);
                open = write(fds[1 - side].fd, buffer, (size_t) got) == got;
            }
        }
    }
    close(server);
    close(pair->client);
    free(pair);
    return NULL;
}

static void *s_relay_run(void *arg)
{
    sec_relay_t *relay = arg;
    for (;;) {
        int client = accept(relay->listener, NULL, NULL);
        if (client < 0)
            return NULL;
        s_pair_t *pair = malloc(sizeof *pair);
        *pair = (s_pair_t){relay, client};
        pthread_t thread;
        pthread_create(&thread, NULL, s_pair_run, pair);
        pthread_detach(thread);
    }
}

sec_relay_t *sec_relay_new(int target)
{
    sec_relay_t *relay = calloc(1, sizeof *relay);
    relay->captured = malloc(8u << 20);
    relay->target = target;
    pthread_mutex_init(&relay->lock, NULL);
    relay->listener = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    IT_ASSERT(bind(relay->listener, (struct sockaddr *) &address, sizeof address) == 0
                  && listen(relay->listener, 16) == 0
                  && getsockname(relay->listener, (struct sockaddr *) &address, &length) == 0,
              "relay: %s", strerror(errno));
    relay->port = ntohs(address.sin_port);
    pthread_t thread;
    pthread_create(&thread, NULL, s_relay_run, relay);
    pthread_detach(thread);
    return relay;
}

bool sec_relay_saw(sec_relay_t *relay, const char *text)
{
    pthread_mutex_lock(&relay->lock);
    bool seen = memmem(relay->captured, relay->size, text, strlen(text)) != NULL;
    size_t size = relay->size;
    pthread_mutex_unlock(&relay->lock);
    it_note("relay :%d -> :%d carried %zu bytes; body %s", relay->port, relay->target, size,
            seen ? "seen" : "not seen");
    return seen;
}

int sec_port(const char *address)
{
    return atoi(strrchr(address, ':') + 1);
}

it_child_t *sec_worker_via_lookupd(const char *lookupd_http, const char *const *extra)
{
    static char lookup_flag[300];
    snprintf(lookup_flag, sizeof lookup_flag, "--lookupd-http-address=%s", lookupd_http);
    const char *argv[16] = {getenv("NSQ_WORKER"),
                            "--topic=" SEC_TOPIC,
                            "--channel=" SEC_CHANNEL,
                            lookup_flag,
                            "--lookupd-poll-interval=200ms",
                            "--stdout",
                            "--http-address=127.0.0.1:0"};
    for (size_t index = 0; extra[index] && index < 8; index++)
        argv[7 + index] = extra[index];
    return it_child_start("worker", argv);
}

void sec_expect_body(it_child_t *worker)
{
    char line[256] = "";
    IT_ASSERT(it_child_read_line(worker, line, sizeof line, 15000) == 1, "the worker got nothing");
    IT_ASSERT_STR(line, SEC_BODY);
}
