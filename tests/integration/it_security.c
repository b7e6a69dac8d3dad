/*  it_security - CURVE on the ZeroMQ links, TLS on the HTTP servers, and
    the hygiene around their keys
    SPDX-License-Identifier: MIT

    What an operator relies on when security is switched on:
      - a CURVE broker refuses a plain client, a client that has the wrong
        server key, and a key that is not on its allow-list, and logs each;
        a key added to the list is accepted after SIGHUP;
      - publish and consume work end to end with CURVE on every link
        (nsq-pub -> broker, worker -> broker, broker -> lookupd);
      - /ping answers over HTTPS on the broker, lookupd and worker to a
        client that trusts the CA; --tls-required refuses plain HTTP; the
        client-certificate policies refuse who they must;
      - bytes captured between client and server (a relay in this test)
        hold the message body with security off, and not with it on;
      - key files wider than 0600 are refused, and secrets show in no log,
        /info or /stats.
    Keys come from nsq-keygen ($NSQ_KEYGEN), certificates from openssl.
*/
#include "harness.h"

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

#define S_TOPIC   "secrets"
#define S_CHANNEL "reader"
#define S_BODY    "BODY-THAT-MUST-NOT-LEAK-7f3a9c"

// ---- files ----------------------------------------------------------------------

// it_tmp_dir()/name, in a static ring of buffers.
static const char *s_path(const char *name)
{
    static char paths[16][512];
    static int next;
    char *path = paths[next++ % 16];
    snprintf(path, 512, "%s/%s", it_tmp_dir(), name);
    return path;
}

static void s_run(const char *command)
{
    char line[2048];
    snprintf(line, sizeof line, "cd '%s' && (%s) >>tools.log 2>&1", it_tmp_dir(), command);
    IT_ASSERT(system(line) == 0, "failed: %s (see %s)", command, s_path("tools.log"));
}

// nsq-keygen NAME in the case's directory.
static void s_keygen(const char *name)
{
    char command[1024];
    snprintf(command, sizeof command, "'%s' %s", getenv("NSQ_KEYGEN"), name);
    s_run(command);
}

// A CA, a server certificate for 127.0.0.1 signed by it, a client
// certificate signed by it, and a self-signed client certificate (a
// stranger). Keys mode 0600.
static void s_certificates(void)
{
    s_run("printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext;"
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

// The contents of a file (NUL-terminated); caller frees.
static char *s_slurp(const char *path)
{
    FILE *file = fopen(path, "r");
    IT_ASSERT(file, "cannot open %s", path);
    char *data = calloc(1, 1 << 20);
    size_t got = fread(data, 1, (1 << 20) - 1, file);
    data[got] = '\0';
    fclose(file);
    return data;
}

// The Z85 secret key in a czmq secret certificate; caller frees.
static char *s_secret_key(const char *path)
{
    zconfig_t *root = zconfig_load(path);
    IT_ASSERT(root, "cannot read %s", path);
    char *key = strdup(zconfig_get(root, "curve/secret-key", ""));
    zconfig_destroy(&root);
    IT_ASSERT(strlen(key) == 40, "no secret key in %s", path);
    return key;
}

// ---- clients --------------------------------------------------------------------

// Publishes body to S_TOPIC at "host:port" with CURVE keys (NULL = plain).
// Returns the producer's result (0 or -1 after a 1.5 s timeout).
static int s_publish(const char *address, const char *key, const char *server_key, const char *body)
{
    nsq_producer_t *producer = nsq_producer_new(address);
    IT_ASSERT(producer, "no producer for %s", address);
    nsq_producer_set_timeout(producer, 1500);
    if (key)
        IT_ASSERT(nsq_producer_set_curve(producer, key, server_key) == 0, "keys refused");
    int rc = nsq_producer_publish(producer, S_TOPIC, body, strlen(body));
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

// method url (body may be NULL) with libcurl, as `curl --cacert ca [--cert
// cert --key key]` would. Returns the status, or -1 if no answer came (TLS
// refused, connection closed); reply gets the body (1 KiB).
static long s_request(const char *method, const char *url, const char *body, const char *cert,
                      char *reply)
{
    CURL *curl = curl_easy_init();
    reply[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_CAINFO, s_path("ca.pem"));
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

// The HTTPS port a daemon logged ("http: HTTPS on port N").
static int s_https_port(it_broker_t *daemon)
{
    char line[512];
    IT_ASSERT(it_broker_wait_log(daemon, "HTTPS on port ", line, sizeof line, 10000),
              "no HTTPS port in the log");
    return atoi(strstr(line, "HTTPS on port ") + strlen("HTTPS on port "));
}

// ---- a relay that records what crosses it ----------------------------------------

typedef struct {
    int listener;          // accepting on 127.0.0.1:port
    int port;              //
    int target;            // 127.0.0.1 port relayed to
    pthread_mutex_t lock;  // guards the capture
    char *captured;        // every byte both ways
    size_t size;           //
} s_relay_t;

typedef struct {
    s_relay_t *relay;
    int client;
} s_pair_t;

static void s_record(s_relay_t *relay, const char *data, size_t size)
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
    s_relay_t *relay = arg;
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

// A relay from a fresh loopback port to target; lives until the case ends.
static s_relay_t *s_relay_new(int target)
{
    s_relay_t *relay = calloc(1, sizeof *relay);
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

static bool s_relay_saw(s_relay_t *relay, const char *text)
{
    pthread_mutex_lock(&relay->lock);
    bool seen = memmem(relay->captured, relay->size, text, strlen(text)) != NULL;
    size_t size = relay->size;
    pthread_mutex_unlock(&relay->lock);
    it_note("relay :%d -> :%d carried %zu bytes; body %s", relay->port, relay->target, size,
            seen ? "seen" : "not seen");
    return seen;
}

// The port of "host:port".
static int s_port(const char *address)
{
    return atoi(strrchr(address, ':') + 1);
}

// nsq-worker --stdout finding S_TOPIC's brokers through lookupd_http
// ("host:port" or "https://host:port"), plus extra (NULL-terminated).
static it_child_t *s_worker_via_lookupd(const char *lookupd_http, const char *const *extra)
{
    static char lookup_flag[300];
    snprintf(lookup_flag, sizeof lookup_flag, "--lookupd-http-address=%s", lookupd_http);
    const char *argv[16] = {getenv("NSQ_WORKER"),
                            "--topic=" S_TOPIC,
                            "--channel=" S_CHANNEL,
                            lookup_flag,
                            "--lookupd-poll-interval=200ms",
                            "--stdout",
                            "--http-address=127.0.0.1:0"};
    for (size_t index = 0; extra[index] && index < 8; index++)
        argv[7 + index] = extra[index];
    return it_child_start("worker", argv);
}

// Reads the worker's first line of output: S_BODY, within 15 s.
static void s_expect_body(it_child_t *worker)
{
    char line[256] = "";
    IT_ASSERT(it_child_read_line(worker, line, sizeof line, 15000) == 1, "the worker got nothing");
    IT_ASSERT_STR(line, S_BODY);
}

// ---- CURVE ----------------------------------------------------------------------

// Keys: server (the broker's), allowed (a client on the list), other (a
// client not on it), impostor (a server key the broker does not have).
static void s_curve_keys(void)
{
    s_keygen("server");
    s_keygen("allowed");
    s_keygen("other");
    s_keygen("impostor");
    s_run("mkdir -m 700 allow && cp allowed allow/");
}

static it_broker_t *s_curve_broker(void)
{
    char secret[600], allow[600];
    snprintf(secret, sizeof secret, "--zmq-curve-secret-key-file=%s", s_path("server_secret"));
    snprintf(allow, sizeof allow, "--zmq-curve-allow-dir=%s", s_path("allow"));
    const char *flags[] = {secret, allow, NULL};
    return it_broker_start(flags);
}

static void s_expect_log(it_broker_t *daemon, const char *text)
{
    char line[512];
    IT_ASSERT(it_broker_wait_log(daemon, text, line, sizeof line, 5000), "no log line with '%s'",
              text);
}

static void curve_refuses(void)
{
    s_curve_keys();
    it_broker_t *broker = s_curve_broker();
    const char *zmq = it_broker_zmq(broker);
    const char *server = s_path("server");
    IT_ASSERT_INT(s_publish(zmq, s_path("allowed_secret"), server, "one"), ==, 0);
    IT_ASSERT_INT(s_publish(zmq, NULL, NULL, "plain"), ==, -1);
    s_expect_log(broker, "zmq: refused a client on");  // either side may see the mismatch first
    IT_ASSERT_INT(s_publish(zmq, s_path("allowed_secret"), s_path("impostor"), "lost"), ==, -1);
    s_expect_log(broker, "wrong server key");
    IT_ASSERT_INT(s_publish(zmq, s_path("other_secret"), server, "other"), ==, -1);
    s_expect_log(broker, "is not in --zmq-curve-allow-dir");
    IT_ASSERT_INT(it_topic_stat(broker, S_TOPIC, "message_count"), ==, 1);

    // On the list, and SIGHUP: accepted from then on
    s_run("cp other allow/");
    IT_ASSERT_INT(kill(it_broker_pid(broker), SIGHUP), ==, 0);
    s_expect_log(broker, "SIGHUP: 2 CURVE client keys allowed");
    IT_ASSERT_INT(s_publish(zmq, s_path("other_secret"), server, "two"), ==, 0);
    IT_ASSERT_INT(it_topic_stat(broker, S_TOPIC, "message_count"), ==, 2);

    // No secret key in the log or the HTTP API
    char *key = s_secret_key(s_path("server_secret")), *info = NULL, line[512];
    char *stats = it_stats(broker);
    IT_ASSERT(stats && !strstr(stats, key), "the secret key is in /stats");
    IT_ASSERT_INT(it_http(broker, "GET", "/info", NULL, 0, &info), ==, 200);
    IT_ASSERT(!strstr(info, key), "the secret key is in /info");
    IT_ASSERT(!it_broker_wait_log(broker, key, line, sizeof line, 100), "the key is in the log");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    free(info);
    free(stats);
    free(key);
}

// The secret key file must be 0600: a wider one stops the broker at start.
static void curve_key_mode(void)
{
    s_keygen("server");
    s_run("chmod 640 server_secret");
    char secret[600], line[512];
    snprintf(secret, sizeof secret, "--zmq-curve-secret-key-file=%s", s_path("server_secret"));
    const char *flags[] = {secret, NULL};
    IT_ASSERT_INT(it_broker_refuses(flags, line, sizeof line), ==, 1);
    IT_ASSERT(strstr(line, "mode 0640 is wider than 0600"), "got: %s", line);
}

// nsq-pub -> broker -> worker, and broker -> lookupd, all with CURVE; the
// worker finds the broker through the lookupd.
static void curve_end_to_end(void)
{
    s_curve_keys();
    s_keygen("lookupd");
    s_run("cp server allowed_broker && mkdir -m 700 brokers && cp server brokers/");
    char lookupd_secret[600], lookupd_allow[600];
    snprintf(lookupd_secret, sizeof lookupd_secret, "--zmq-curve-secret-key-file=%s",
             s_path("lookupd_secret"));
    snprintf(lookupd_allow, sizeof lookupd_allow, "--zmq-curve-allow-dir=%s", s_path("brokers"));
    const char *lookupd_flags[] = {lookupd_secret, lookupd_allow, "--inactive-producer-timeout=5s",
                                   NULL};
    it_broker_t *lookupd = it_lookupd_start(lookupd_flags);

    char secret[600], allow[600], to_lookupd[600], lookupd_key[600];
    snprintf(secret, sizeof secret, "--zmq-curve-secret-key-file=%s", s_path("server_secret"));
    snprintf(allow, sizeof allow, "--zmq-curve-allow-dir=%s", s_path("allow"));
    snprintf(to_lookupd, sizeof to_lookupd, "--lookupd-address=%s", it_broker_zmq(lookupd));
    snprintf(lookupd_key, sizeof lookupd_key, "--zmq-curve-lookupd-key-file=%s", s_path("lookupd"));
    const char *flags[] = {secret,      allow,
                           to_lookupd,  "--broadcast-address=127.0.0.1",
                           lookupd_key, "--lookupd-heartbeat-interval=200ms",
                           NULL};
    it_broker_t *broker = it_broker_start(flags);
    it_post_ok(broker, "/topic/create?topic=" S_TOPIC);

    char lookup_http[300], key[600], server_key[600];
    snprintf(lookup_http, sizeof lookup_http, "--lookupd-http-address=%s", it_broker_http(lookupd));
    snprintf(key, sizeof key, "--zmq-curve-key-file=%s", s_path("allowed_secret"));
    snprintf(server_key, sizeof server_key, "--zmq-curve-server-key-file=%s", s_path("server"));
    const char *worker_argv[] = {getenv("NSQ_WORKER"),
                                 "--topic=" S_TOPIC,
                                 "--channel=" S_CHANNEL,
                                 lookup_http,
                                 "--lookupd-poll-interval=200ms",
                                 "--stdout",
                                 "--http-address=127.0.0.1:0",
                                 key,
                                 server_key,
                                 NULL};
    it_child_t *worker = it_child_start("worker", worker_argv);

    char broker_flag[300];
    snprintf(broker_flag, sizeof broker_flag, "--broker-address=%s", it_broker_zmq(broker));
    const char *pub_argv[] = {"/bin/sh",
                              "-c",
                              "echo " S_BODY " | \"$0\" \"$@\"",
                              getenv("NSQ_PUB"),
                              "--topic=" S_TOPIC,
                              broker_flag,
                              key,
                              server_key,
                              NULL};
    it_child_t *pub = it_child_start("pub", pub_argv);
    IT_ASSERT_INT(it_child_stop(&pub, 0, 10000), ==, 0);
    s_expect_body(worker);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
}

// What crosses the wire: the body in clear without CURVE, not with it.
static void curve_capture(void)
{
    s_curve_keys();
    it_broker_t *plain = it_broker_start(NULL);
    s_relay_t *relay = s_relay_new(s_port(it_broker_zmq(plain)));
    char through[64];
    snprintf(through, sizeof through, "127.0.0.1:%d", relay->port);
    IT_ASSERT_INT(s_publish(through, NULL, NULL, S_BODY), ==, 0);
    IT_ASSERT(s_relay_saw(relay, S_BODY), "the relay misses plain bytes: it cannot tell");

    it_broker_t *broker = s_curve_broker();
    relay = s_relay_new(s_port(it_broker_zmq(broker)));
    snprintf(through, sizeof through, "127.0.0.1:%d", relay->port);
    IT_ASSERT_INT(s_publish(through, s_path("allowed_secret"), s_path("server"), S_BODY), ==, 0);
    IT_ASSERT_INT(it_topic_stat(broker, S_TOPIC, "message_count"), ==, 1);
    IT_ASSERT(!s_relay_saw(relay, S_BODY), "the body crossed in clear with CURVE on");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&plain), ==, 0);
}

// ---- TLS ------------------------------------------------------------------------

// TLS flags for a daemon: HTTPS on a free port with the server certificate,
// plus extra (NULL-terminated, may be NULL). Borrowed; static storage.
static const char **s_tls_flags(const char *const *extra)
{
    static char cert[600], key[600], ca[600];
    static const char *flags[16];
    snprintf(cert, sizeof cert, "--tls-cert=%s", s_path("server.pem"));
    snprintf(key, sizeof key, "--tls-key=%s", s_path("server.key"));
    snprintf(ca, sizeof ca, "--tls-root-ca-file=%s", s_path("ca.pem"));
    size_t count = 0;
    flags[count++] = "--https-address=127.0.0.1:0";
    flags[count++] = cert;
    flags[count++] = key;
    flags[count++] = ca;
    for (size_t index = 0; extra && extra[index] && count < 15; index++)
        flags[count++] = extra[index];
    flags[count] = NULL;
    return flags;
}

static long s_get(int port, const char *path, const char *cert, char *reply)
{
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d%s", port, path);
    return s_request("GET", url, NULL, cert, reply);
}

// curl --cacert reaches /ping over HTTPS on the broker, lookupd and worker;
// a client that does not trust the CA is refused.
static void https_ping(void)
{
    s_certificates();
    char reply[1024];
    it_broker_t *broker = it_broker_start(s_tls_flags(NULL));
    int port = s_https_port(broker);
    IT_ASSERT_INT(s_get(port, "/ping", NULL, reply), ==, 200);
    IT_ASSERT_STR(reply, "OK");
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/pub?topic=" S_TOPIC, port);
    IT_ASSERT_INT(s_request("POST", url, S_BODY, NULL, reply), ==, 200);
    IT_ASSERT_INT(it_topic_stat(broker, S_TOPIC, "message_count"), ==, 1);
    IT_ASSERT_INT(it_http_status(broker, "GET", "/ping", NULL), ==, 200);  // plain still there

    // The curl command line, as a user types it
    char command[1024];
    snprintf(command, sizeof command,
             "curl -sS --fail --cacert ca.pem https://127.0.0.1:%d/ping > curl.out", port);
    s_run(command);
    char *out = s_slurp(s_path("curl.out"));
    IT_ASSERT_STR(out, "OK");
    free(out);
    snprintf(command, sizeof command,
             "! curl -sS --fail https://127.0.0.1:%d/ping 2> untrusted.err", port);
    s_run(command);  // no --cacert: the certificate is not trusted

    it_broker_t *lookupd = it_lookupd_start(s_tls_flags(NULL));
    IT_ASSERT_INT(s_get(s_https_port(lookupd), "/ping", NULL, reply), ==, 200);

    it_child_t *worker = it_worker_start(broker, S_TOPIC, S_CHANNEL, s_tls_flags(NULL));
    char line[512];
    IT_ASSERT(it_child_wait_log(worker, "READY", line, sizeof line, 10000), "worker not ready");
    IT_ASSERT(it_child_wait_log(worker, "", line, sizeof line, 1), "no log");
    FILE *log = fopen(it_child_log_path(worker), "r");
    int worker_port = 0;
    while (log && fgets(line, sizeof line, log))
        if (strstr(line, "HTTPS on port "))
            worker_port = atoi(strstr(line, "HTTPS on port ") + strlen("HTTPS on port "));
    if (log)
        fclose(log);
    IT_ASSERT(worker_port > 0, "the worker logged no HTTPS port");
    IT_ASSERT_INT(s_get(worker_port, "/healthz", NULL, reply), ==, 200);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// --tls-required: plain HTTP gets 403 TLS_REQUIRED, HTTPS works; plain
// HTTP sent to the HTTPS port gets no HTTP answer.
static void tls_required(void)
{
    s_certificates();
    const char *extra[] = {"--tls-required", NULL};
    it_broker_t *broker = it_broker_start(s_tls_flags(extra));
    int port = s_https_port(broker);
    char reply[1024], url[128];
    it_http_expect(broker, "GET", "/ping", NULL, 0, 403, "TLS_REQUIRED");
    it_http_expect(broker, "POST", "/pub?topic=" S_TOPIC, S_BODY, strlen(S_BODY), 403,
                   "TLS_REQUIRED");
    IT_ASSERT_INT(s_get(port, "/ping", NULL, reply), ==, 200);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ping", port);
    IT_ASSERT(s_request("GET", url, NULL, NULL, reply) != 200, "plain HTTP on the HTTPS port");
    IT_ASSERT_INT(it_topic_stat(broker, S_TOPIC, "message_count"), ==, -1);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// --tls-client-auth-policy: require-verify takes only certificates the CA
// signed; require takes any certificate; neither takes none.
static void tls_client_certificates(void)
{
    s_certificates();
    char reply[1024];
    const char *verify[] = {"--tls-client-auth-policy=require-verify", NULL};
    it_broker_t *broker = it_broker_start(s_tls_flags(verify));
    int port = s_https_port(broker);
    IT_ASSERT_INT(s_get(port, "/ping", "client", reply), ==, 200);
    IT_ASSERT_INT(s_get(port, "/ping", NULL, reply), ==, 403);
    IT_ASSERT(strstr(reply, "TLS_CLIENT_CERT_REQUIRED"), "got: %s", reply);
    IT_ASSERT_INT(s_get(port, "/ping", "stranger", reply), ==, 403);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);

    const char *any[] = {"--tls-client-auth-policy=require", NULL};
    broker = it_broker_start(s_tls_flags(any));
    port = s_https_port(broker);
    IT_ASSERT_INT(s_get(port, "/ping", "stranger", reply), ==, 200);
    IT_ASSERT_INT(s_get(port, "/ping", "client", reply), ==, 200);
    IT_ASSERT_INT(s_get(port, "/ping", NULL, reply), ==, 403);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// What crosses the wire: the /pub body in clear over HTTP, not over HTTPS.
static void tls_capture(void)
{
    s_certificates();
    it_broker_t *broker = it_broker_start(s_tls_flags(NULL));
    char reply[1024], url[128];
    s_relay_t *relay = s_relay_new(s_port(it_broker_http(broker)));
    snprintf(url, sizeof url, "http://127.0.0.1:%d/pub?topic=" S_TOPIC, relay->port);
    IT_ASSERT_INT(s_request("POST", url, S_BODY, NULL, reply), ==, 200);
    IT_ASSERT(s_relay_saw(relay, S_BODY), "the relay misses plain bytes: it cannot tell");

    relay = s_relay_new(s_https_port(broker));
    snprintf(url, sizeof url, "https://127.0.0.1:%d/pub?topic=" S_TOPIC, relay->port);
    IT_ASSERT_INT(s_request("POST", url, S_BODY, NULL, reply), ==, 200);
    IT_ASSERT_INT(it_topic_stat(broker, S_TOPIC, "message_count"), ==, 2);
    IT_ASSERT(!s_relay_saw(relay, S_BODY), "the body crossed in clear over HTTPS");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A TLS key wider than 0600 stops the broker at start with one line; the
// key's contents appear in no log.
static void tls_key_hygiene(void)
{
    s_certificates();
    s_run("chmod 644 server.key");
    char line[512];
    IT_ASSERT_INT(it_broker_refuses(s_tls_flags(NULL), line, sizeof line), ==, 1);
    IT_ASSERT(strstr(line, "--tls-key=") && strstr(line, "mode 0644 is wider than 0600"), "got: %s",
              line);
    s_run("chmod 600 server.key");
    it_broker_t *broker = it_broker_start(s_tls_flags(NULL));
    char *info = NULL;
    IT_ASSERT_INT(it_http(broker, "GET", "/info", NULL, 0, &info), ==, 200);
    IT_ASSERT(!strstr(info, "server.key") && !strstr(info, "PRIVATE"), "/info: %s", info);
    free(info);
    char *key = s_slurp(s_path("server.key"));
    char *middle = strchr(key, '\n') + 1;  // the first line of base64
    middle[strcspn(middle, "\n")] = '\0';
    IT_ASSERT(!it_broker_wait_log(broker, middle, line, sizeof line, 100), "the key is in the log");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    free(key);
}

// The libcurl clients over HTTPS: nsq-pub with a client certificate to a
// broker that requires one (and refused without it), and a worker that
// finds its broker through an https:// lookupd.
static void tls_clients(void)
{
    s_certificates();
    it_broker_t *lookupd = it_lookupd_start(s_tls_flags(NULL));
    char to_lookupd[300];
    snprintf(to_lookupd, sizeof to_lookupd, "--lookupd-address=%s", it_broker_zmq(lookupd));
    const char *extra[] = {"--tls-client-auth-policy=require-verify", to_lookupd,
                           "--broadcast-address=127.0.0.1", "--lookupd-heartbeat-interval=200ms",
                           NULL};
    it_broker_t *broker = it_broker_start(s_tls_flags(extra));
    int port = s_https_port(broker);
    char command[1024];
    snprintf(command, sizeof command,
             "echo " S_BODY " | '%s' --topic=" S_TOPIC " --http-address=https://127.0.0.1:%d"
             " --tls-root-ca-file=ca.pem --tls-cert=client.pem --tls-key=client.key",
             getenv("NSQ_PUB"), port);
    s_run(command);
    snprintf(command, sizeof command,
             "! echo refused | '%s' --topic=" S_TOPIC " --http-address=https://127.0.0.1:%d"
             " --tls-root-ca-file=ca.pem --timeout=2s",
             getenv("NSQ_PUB"), port);
    s_run(command);
    IT_ASSERT_INT(it_topic_stat(broker, S_TOPIC, "message_count"), ==, 1);

    char lookup_https[64], ca[600];
    snprintf(lookup_https, sizeof lookup_https, "https://127.0.0.1:%d", s_https_port(lookupd));
    snprintf(ca, sizeof ca, "--tls-root-ca-file=%s", s_path("ca.pem"));
    const char *trust[] = {ca, NULL};
    it_child_t *worker = s_worker_via_lookupd(lookup_https, trust);
    s_expect_body(worker);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
}

// The topic's message_count as the lookupd console last polled it (from
// the broker's /stats); -1 until a poll reached the broker.
static bool s_console_counted(void *arg)
{
    char *reply = NULL;
    int64_t count = -1;
    if (it_http(arg, "GET", "/api/topics?topic=" S_TOPIC, NULL, 0, &reply) == 200) {
        const char *topics = it_json_get(reply, "topics");
        const char *count_text =
            topics && topics[0] == '[' ? it_json_get(topics + 1, "message_count") : NULL;
        if (!count_text || !it_json_int(count_text, &count))
            count = -1;
    }
    free(reply);
    return count == 1;
}

// Brokers on --tls-required (plain HTTP answers 403) announce their HTTPS
// port to lookupd, which polls them there with --http-client-tls-root-ca-file:
// the console shows their topics, nsq-ctl's stats through lookupd too, and
// nsq-ctl tail finds the broker through an https:// lookupd.
static void tls_console(void)
{
    s_certificates();
    char ca[600];
    snprintf(ca, sizeof ca, "--http-client-tls-root-ca-file=%s", s_path("ca.pem"));
    const char *console[] = {"--stats-interval=100ms", ca, NULL};
    it_broker_t *lookupd = it_lookupd_start(s_tls_flags(console));
    char to_lookupd[300];
    snprintf(to_lookupd, sizeof to_lookupd, "--lookupd-address=%s", it_broker_zmq(lookupd));
    const char *extra[] = {"--tls-required", to_lookupd, "--broadcast-address=127.0.0.1",
                           "--lookupd-heartbeat-interval=200ms", NULL};
    it_broker_t *broker = it_broker_start(s_tls_flags(extra));
    char reply[1024], url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/pub?topic=" S_TOPIC, s_https_port(broker));
    IT_ASSERT_INT(s_request("POST", url, S_BODY, NULL, reply), ==, 200);
    it_http_expect(broker, "GET", "/stats?format=json", NULL, 0, 403, "TLS_REQUIRED");
    IT_ASSERT(it_wait_until(s_console_counted, lookupd, 15000),
              "the console never showed the topic's message from the broker");

    char command[1024];
    snprintf(command, sizeof command,
             "'%s' --lookupd-http-address=%s stats " S_TOPIC " --json > stats.json",
             getenv("NSQ_CTL"), it_broker_http(lookupd));
    s_run(command);
    char *stats = s_slurp(s_path("stats.json"));
    const char *topics = it_json_get(stats, "topics");
    int64_t count = -1;
    IT_ASSERT(topics && topics[0] == '['
                  && it_json_int(it_json_get(topics + 1, "message_count"), &count) && count == 1,
              "nsq-ctl stats: %s", stats);
    free(stats);
    snprintf(command, sizeof command,
             "'%s' --lookupd-http-address=https://127.0.0.1:%d --tls-root-ca-file=ca.pem"
             " --count=1 --timeout=10s tail " S_TOPIC " > tail.out",
             getenv("NSQ_CTL"), s_https_port(lookupd));
    s_run(command);
    char *tail = s_slurp(s_path("tail.out"));
    IT_ASSERT(strstr(tail, S_BODY), "nsq-ctl tail printed: %s", tail);
    free(tail);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
}

// Client secret keys wider than 0600 are refused with one line naming the
// flag: nsq-pub's and nsq-ctl's --tls-key, lookupd's
// --http-client-tls-key, and nsq-pub's and nsq-bench's --zmq-curve-key-file;
// public certificates may stay readable.
static void client_key_mode(void)
{
    s_certificates();
    s_keygen("server");
    s_keygen("client");
    s_run("chmod 644 client.key client_secret && chmod 644 client.pem");
    char command[1024];
    snprintf(command, sizeof command,
             "echo x | '%s' --topic=" S_TOPIC " --http-address=https://127.0.0.1:1"
             " --tls-cert=client.pem --tls-key=client.key 2> pub.err; test $? = 2"
             " && test $(wc -l < pub.err) = 1 && grep -q 'tls-key=client.key: mode 0644 is wider"
             " than 0600' pub.err",
             getenv("NSQ_PUB"));
    s_run(command);
    snprintf(command, sizeof command,
             "echo x | '%s' --topic=" S_TOPIC " --broker-address=127.0.0.1:1"
             " --zmq-curve-key-file=client_secret --zmq-curve-server-key-file=server 2> curve.err;"
             " test $? = 2 && test $(wc -l < curve.err) = 1"
             " && grep -q 'zmq-curve-key-file=client_secret: mode 0644 is wider' curve.err",
             getenv("NSQ_PUB"));
    s_run(command);
    snprintf(command, sizeof command,
             "'%s' --mode=zmq-pub --count=1 --zmq-address=127.0.0.1:1"
             " --zmq-curve-key-file=client_secret --zmq-curve-server-key-file=server 2> bench.err;"
             " test $? = 2 && test $(wc -l < bench.err) = 1"
             " && grep -q 'zmq-curve-key-file=client_secret: mode 0644 is wider' bench.err",
             getenv("NSQ_BENCH"));
    s_run(command);
    snprintf(command, sizeof command,
             "'%s' --broker-http-address=https://127.0.0.1:1 --tls-cert=client.pem"
             " --tls-key=client.key topics 2> ctl.err; test $? = 2"
             " && grep -q 'tls-key=client.key: mode 0644 is wider' ctl.err",
             getenv("NSQ_CTL"));
    s_run(command);
    snprintf(command, sizeof command,
             "'%s' --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0"
             " --http-client-tls-cert=client.pem --http-client-tls-key=client.key 2> lookupd.err;"
             " test $? = 1 && grep -q 'http-client-tls-key=client.key: mode 0644 is wider'"
             " lookupd.err",
             getenv("NSQ_LOOKUPD"));
    s_run(command);
}

int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const it_case_t cases[] = {
        {"curve_refuses", curve_refuses},
        {"curve_key_mode", curve_key_mode},
        {"curve_end_to_end", curve_end_to_end},
        {"curve_capture", curve_capture},
        {"https_ping", https_ping},
        {"tls_required", tls_required},
        {"tls_client_certificates", tls_client_certificates},
        {"tls_capture", tls_capture},
        {"tls_key_hygiene", tls_key_hygiene},
        {"tls_clients", tls_clients},
        {"tls_console", tls_console},
        {"client_key_mode", client_key_mode},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof *cases);
}
