/*  it_security_tls - TLS on the HTTP servers, and the hygiene around its keys
    SPDX-License-Identifier: MIT

    What an operator relies on when TLS is switched on:
      - /ping answers over HTTPS on the broker, lookupd and worker to a
        client that trusts the CA; --tls-required refuses plain HTTP; the
        client-certificate policies refuse who they must;
      - bytes captured between client and server (a relay in this test)
        hold the message body with TLS off, and not with it on;
      - a key file wider than 0600 is refused, and the key shows in no log
        or /info; nsq-pub, the worker, lookupd's console and nsq-ctl speak
        HTTPS.
    Certificates come from openssl, keys from nsq-keygen ($NSQ_KEYGEN).
*/
#include "harness.h"
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

// ---- TLS ------------------------------------------------------------------------

// TLS flags for a daemon: HTTPS on a free port with the server certificate,
// plus extra (NULL-terminated, may be NULL). Borrowed; static storage.
static const char **s_tls_flags(const char *const *extra)
{
    static char cert[600], key[600], ca[600];
    static const char *flags[16];
    snprintf(cert, sizeof cert, "--tls-cert=%s", sec_path("server.pem"));
    snprintf(key, sizeof key, "--tls-key=%s", sec_path("server.key"));
    snprintf(ca, sizeof ca, "--tls-root-ca-file=%s", sec_path("ca.pem"));
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
    return sec_request("GET", url, NULL, cert, reply);
}

// curl --cacert reaches /ping over HTTPS on the broker, lookupd and worker;
// a client that does not trust the CA is refused.
static void https_ping(void)
{
    sec_certificates();
    char reply[1024];
    it_broker_t *broker = it_broker_start(s_tls_flags(NULL));
    int port = sec_https_port(broker);
    IT_ASSERT_INT(s_get(port, "/ping", NULL, reply), ==, 200);
    IT_ASSERT_STR(reply, "OK");
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/pub?topic=" SEC_TOPIC, port);
    IT_ASSERT_INT(sec_request("POST", url, SEC_BODY, NULL, reply), ==, 200);
    IT_ASSERT_INT(it_topic_stat(broker, SEC_TOPIC, "message_count"), ==, 1);
    IT_ASSERT_INT(it_http_status(broker, "GET", "/ping", NULL), ==, 200);  // plain still there

    // The curl command line, as a user types it
    char command[1024];
    snprintf(command, sizeof command,
             "curl -sS --fail --cacert ca.pem https://127.0.0.1:%d/ping > curl.out", port);
    sec_run(command);
    char *out = sec_slurp(sec_path("curl.out"));
    IT_ASSERT_STR(out, "OK");
    free(out);
    snprintf(command, sizeof command,
             "! curl -sS --fail https://127.0.0.1:%d/ping 2> untrusted.err", port);
    sec_run(command);  // no --cacert: the certificate is not trusted

    it_broker_t *lookupd = it_lookupd_start(s_tls_flags(NULL));
    IT_ASSERT_INT(s_get(sec_https_port(lookupd), "/ping", NULL, reply), ==, 200);

    it_child_t *worker = it_worker_start(broker, SEC_TOPIC, SEC_CHANNEL, s_tls_flags(NULL));
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
    sec_certificates();
    const char *extra[] = {"--tls-required", NULL};
    it_broker_t *broker = it_broker_start(s_tls_flags(extra));
    int port = sec_https_port(broker);
    char reply[1024], url[128];
    it_http_expect(broker, "GET", "/ping", NULL, 0, 403, "TLS_REQUIRED");
    it_http_expect(broker, "POST", "/pub?topic=" SEC_TOPIC, SEC_BODY, strlen(SEC_BODY), 403,
                   "TLS_REQUIRED");
    IT_ASSERT_INT(s_get(port, "/ping", NULL, reply), ==, 200);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ping", port);
    IT_ASSERT(sec_request("GET", url, NULL, NULL, reply) != 200, "plain HTTP on the HTTPS port");
    IT_ASSERT_INT(it_topic_stat(broker, SEC_TOPIC, "message_count"), ==, -1);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// --tls-client-auth-policy: require-verify takes only certificates the CA
// signed; require takes any certificate; neither takes none.
static void tls_client_certificates(void)
{
    sec_certificates();
    char reply[1024];
    const char *verify[] = {"--tls-client-auth-policy=require-verify", NULL};
    it_broker_t *broker = it_broker_start(s_tls_flags(verify));
    int port = sec_https_port(broker);
    IT_ASSERT_INT(s_get(port, "/ping", "client", reply), ==, 200);
    IT_ASSERT_INT(s_get(port, "/ping", NULL, reply), ==, 403);
    IT_ASSERT(strstr(reply, "TLS_CLIENT_CERT_REQUIRED"), "got: %s", reply);
    IT_ASSERT_INT(s_get(port, "/ping", "stranger", reply), ==, 403);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);

    const char *any[] = {"--tls-client-auth-policy=require", NULL};
    broker = it_broker_start(s_tls_flags(any));
    port = sec_https_port(broker);
    IT_ASSERT_INT(s_get(port, "/ping", "stranger", reply), ==, 200);
    IT_ASSERT_INT(s_get(port, "/ping", "client", reply), ==, 200);
    IT_ASSERT_INT(s_get(port, "/ping", NULL, reply), ==, 403);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// What crosses the wire: the /pub body in clear over HTTP, not over HTTPS.
static void tls_capture(void)
{
    sec_certificates();
    it_broker_t *broker = it_broker_start(s_tls_flags(NULL));
    char reply[1024], url[128];
    sec_relay_t *relay = sec_relay_new(sec_port(it_broker_http(broker)));
    snprintf(url, sizeof url, "http://127.0.0.1:%d/pub?topic=" SEC_TOPIC, relay->port);
    IT_ASSERT_INT(sec_request("POST", url, SEC_BODY, NULL, reply), ==, 200);
    IT_ASSERT(sec_relay_saw(relay, SEC_BODY), "the relay misses plain bytes: it cannot tell");

    relay = sec_relay_new(sec_https_port(broker));
    snprintf(url, sizeof url, "https://127.0.0.1:%d/pub?topic=" SEC_TOPIC, relay->port);
    IT_ASSERT_INT(sec_request("POST", url, SEC_BODY, NULL, reply), ==, 200);
    IT_ASSERT_INT(it_topic_stat(broker, SEC_TOPIC, "message_count"), ==, 2);
    IT_ASSERT(!sec_relay_saw(relay, SEC_BODY), "the body crossed in clear over HTTPS");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A TLS key wider than 0600 stops the broker at start with one line; the
// key's contents appear in no log.
static void tls_key_hygiene(void)
{
    sec_certificates();
    sec_run("chmod 644 server.key");
    char line[512];
    IT_ASSERT_INT(it_broker_refuses(s_tls_flags(NULL), line, sizeof line), ==, 1);
    IT_ASSERT(strstr(line, "--tls-key=") && strstr(line, "mode 0644 is wider than 0600"), "got: %s",
              line);
    sec_run("chmod 600 server.key");
    it_broker_t *broker = it_broker_start(s_tls_flags(NULL));
    char *info = NULL;
    IT_ASSERT_INT(it_http(broker, "GET", "/info", NULL, 0, &info), ==, 200);
    IT_ASSERT(!strstr(info, "server.key") && !strstr(info, "PRIVATE"), "/info: %s", info);
    free(info);
    char *key = sec_slurp(sec_path("server.key"));
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
    sec_certificates();
    it_broker_t *lookupd = it_lookupd_start(s_tls_flags(NULL));
    char to_lookupd[300];
    snprintf(to_lookupd, sizeof to_lookupd, "--lookupd-address=%s", it_broker_zmq(lookupd));
    const char *extra[] = {"--tls-client-auth-policy=require-verify", to_lookupd,
                           "--broadcast-address=127.0.0.1", "--lookupd-heartbeat-interval=200ms",
                           NULL};
    it_broker_t *broker = it_broker_start(s_tls_flags(extra));
    int port = sec_https_port(broker);
    char command[1024];
    snprintf(command, sizeof command,
             "echo " SEC_BODY " | '%s' --topic=" SEC_TOPIC " --http-address=https://127.0.0.1:%d"
             " --tls-root-ca-file=ca.pem --tls-cert=client.pem --tls-key=client.key",
             getenv("NSQ_PUB"), port);
    sec_run(command);
    snprintf(command, sizeof command,
             "! echo refused | '%s' --topic=" SEC_TOPIC " --http-address=https://127.0.0.1:%d"
             " --tls-root-ca-file=ca.pem --timeout=2s",
             getenv("NSQ_PUB"), port);
    sec_run(command);
    IT_ASSERT_INT(it_topic_stat(broker, SEC_TOPIC, "message_count"), ==, 1);

    char lookup_https[64], ca[600];
    snprintf(lookup_https, sizeof lookup_https, "https://127.0.0.1:%d", sec_https_port(lookupd));
    snprintf(ca, sizeof ca, "--tls-root-ca-file=%s", sec_path("ca.pem"));
    const char *trust[] = {ca, NULL};
    it_child_t *worker = sec_worker_via_lookupd(lookup_https, trust);
    sec_expect_body(worker);
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
    if (it_http(arg, "GET", "/api/topics?topic=" SEC_TOPIC, NULL, 0, &reply) == 200) {
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
    sec_certificates();
    char ca[600];
    snprintf(ca, sizeof ca, "--http-client-tls-root-ca-file=%s", sec_path("ca.pem"));
    const char *console[] = {"--stats-interval=100ms", ca, NULL};
    it_broker_t *lookupd = it_lookupd_start(s_tls_flags(console));
    char to_lookupd[300];
    snprintf(to_lookupd, sizeof to_lookupd, "--lookupd-address=%s", it_broker_zmq(lookupd));
    const char *extra[] = {"--tls-required", to_lookupd, "--broadcast-address=127.0.0.1",
                           "--lookupd-heartbeat-interval=200ms", NULL};
    it_broker_t *broker = it_broker_start(s_tls_flags(extra));
    char reply[1024], url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/pub?topic=" SEC_TOPIC, sec_https_port(broker));
    IT_ASSERT_INT(sec_request("POST", url, SEC_BODY, NULL, reply), ==, 200);
    it_http_expect(broker, "GET", "/stats?format=json", NULL, 0, 403, "TLS_REQUIRED");
    IT_ASSERT(it_wait_until(s_console_counted, lookupd, 15000),
              "the console never showed the topic's message from the broker");

    char command[1024];
    snprintf(command, sizeof command,
             "'%s' --lookupd-http-address=%s stats " SEC_TOPIC " --json > stats.json",
             getenv("NSQ_CTL"), it_broker_http(lookupd));
    sec_run(command);
    char *stats = sec_slurp(sec_path("stats.json"));
    const char *topics = it_json_get(stats, "topics");
    int64_t count = -1;
    IT_ASSERT(topics && topics[0] == '['
                  && it_json_int(it_json_get(topics + 1, "message_count"), &count) && count == 1,
              "nsq-ctl stats: %s", stats);
    free(stats);
    snprintf(command, sizeof command,
             "'%s' --lookupd-http-address=https://127.0.0.1:%d --tls-root-ca-file=ca.pem"
             " --count=1 --timeout=10s tail " SEC_TOPIC " > tail.out",
             getenv("NSQ_CTL"), sec_https_port(lookupd));
    sec_run(command);
    char *tail = sec_slurp(sec_path("tail.out"));
    IT_ASSERT(strstr(tail, SEC_BODY), "nsq-ctl tail printed: %s", tail);
    free(tail);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
}

int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const it_case_t cases[] = {
        {"https_ping", https_ping},
        {"tls_required", tls_required},
        {"tls_client_certificates", tls_client_certificates},
        {"tls_capture", tls_capture},
        {"tls_key_hygiene", tls_key_hygiene},
        {"tls_clients", tls_clients},
        {"tls_console", tls_console},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof *cases);
}
