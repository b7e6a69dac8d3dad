/*  it_security - CURVE on the ZeroMQ links, and the modes of client keys
    SPDX-License-Identifier: MIT

    What an operator relies on when CURVE is switched on:
      - a CURVE broker refuses a plain client, a client that has the wrong
        server key, and a key that is not on its allow-list, and logs each;
        a key added to the list is accepted after SIGHUP; a refused worker
        backs off (a few attempts in 3 s, not one every 100 ms);
      - publish and consume work end to end with CURVE on every link
        (nsq-pub -> broker, worker -> broker, broker -> lookupd);
      - bytes captured between client and server (a relay in this test)
        hold the message body with security off, and not with it on;
      - the broker's secret key shows in no log, /info or /stats, and one
        wider than 0600 stops the broker at start; client secret keys
        (CURVE and TLS) wider than 0600 are refused by every tool, with
        one line.
    Keys come from nsq-keygen ($NSQ_KEYGEN), certificates from openssl.
    TLS on the HTTP servers is in it_security_tls.c.
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

// ---- CURVE ----------------------------------------------------------------------

// Keys: server (the broker's), allowed (a client on the list), other (a
// client not on it), impostor (a server key the broker does not have).
static void s_curve_keys(void)
{
    sec_keygen("server");
    sec_keygen("allowed");
    sec_keygen("other");
    sec_keygen("impostor");
    sec_run("mkdir -m 700 allow && cp allowed allow/");
}

static it_broker_t *s_curve_broker(void)
{
    char secret[600], allow[600];
    snprintf(secret, sizeof secret, "--zmq-curve-secret-key-file=%s", sec_path("server_secret"));
    snprintf(allow, sizeof allow, "--zmq-curve-allow-dir=%s", sec_path("allow"));
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
    const char *server = sec_path("server");
    IT_ASSERT_INT(sec_publish(zmq, sec_path("allowed_secret"), server, "one"), ==, 0);
    IT_ASSERT_INT(sec_publish(zmq, NULL, NULL, "plain"), ==, -1);
    s_expect_log(broker, "zmq: refused a client on");  // either side may see the mismatch first
    IT_ASSERT_INT(sec_publish(zmq, sec_path("allowed_secret"), sec_path("impostor"), "lost"), ==,
                  -1);
    s_expect_log(broker, "wrong server key");
    IT_ASSERT_INT(sec_publish(zmq, sec_path("other_secret"), server, "other"), ==, -1);
    s_expect_log(broker, "is not in --zmq-curve-allow-dir");
    IT_ASSERT_INT(it_topic_stat(broker, SEC_TOPIC, "message_count"), ==, 1);

    // On the list, and SIGHUP: accepted from then on
    sec_run("cp other allow/");
    IT_ASSERT_INT(kill(it_broker_pid(broker), SIGHUP), ==, 0);
    s_expect_log(broker, "SIGHUP: 2 CURVE client keys allowed");
    IT_ASSERT_INT(sec_publish(zmq, sec_path("other_secret"), server, "two"), ==, 0);
    IT_ASSERT_INT(it_topic_stat(broker, SEC_TOPIC, "message_count"), ==, 2);

    // No secret key in the log or the HTTP API
    char *key = sec_secret_key(sec_path("server_secret")), *info = NULL, line[512];
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
// A worker whose key the broker refuses backs off instead of starting
// over ten times a second: over 3 s it says so a few times, not 30.
static void curve_refused_backs_off(void)
{
    s_curve_keys();
    it_broker_t *broker = s_curve_broker();
    char key[600], server_key[600];
    snprintf(key, sizeof key, "--zmq-curve-key-file=%s", sec_path("other_secret"));
    snprintf(server_key, sizeof server_key, "--zmq-curve-server-key-file=%s", sec_path("server"));
    const char *flags[] = {key, server_key, NULL};
    it_child_t *worker = it_worker_start(broker, SEC_TOPIC, SEC_CHANNEL, flags);
    s_expect_log(broker, "is not in --zmq-curve-allow-dir");
    it_sleep_ms(3000);
    char log[1024];
    snprintf(log, sizeof log, "%s", it_child_log_path(worker));
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    int refused = it_count_lines(log, "closed the connection before IDENTIFY");
    int restarted = it_count_lines(log, "starting a new session");
    it_note("over 3 s: %d refusals logged, %d new sessions", refused, restarted);
    IT_ASSERT(refused >= 1, "the worker never said the broker closed the connection");
    IT_ASSERT(refused + restarted <= 4, "%d reconnections in 3 s", refused + restarted);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void curve_key_mode(void)
{
    sec_keygen("server");
    sec_run("chmod 640 server_secret");
    char secret[600], line[512];
    snprintf(secret, sizeof secret, "--zmq-curve-secret-key-file=%s", sec_path("server_secret"));
    const char *flags[] = {secret, NULL};
    IT_ASSERT_INT(it_broker_refuses(flags, line, sizeof line), ==, 1);
    IT_ASSERT(strstr(line, "mode 0640 is wider than 0600"), "got: %s", line);
}

// nsq-pub -> broker -> worker, and broker -> lookupd, all with CURVE; the
// worker finds the broker through the lookupd.
static void curve_end_to_end(void)
{
    s_curve_keys();
    sec_keygen("lookupd");
    sec_run("cp server allowed_broker && mkdir -m 700 brokers && cp server brokers/");
    char lookupd_secret[600], lookupd_allow[600];
    snprintf(lookupd_secret, sizeof lookupd_secret, "--zmq-curve-secret-key-file=%s",
             sec_path("lookupd_secret"));
    snprintf(lookupd_allow, sizeof lookupd_allow, "--zmq-curve-allow-dir=%s", sec_path("brokers"));
    const char *lookupd_flags[] = {lookupd_secret, lookupd_allow, "--inactive-producer-timeout=5s",
                                   NULL};
    it_broker_t *lookupd = it_lookupd_start(lookupd_flags);

    char secret[600], allow[600], to_lookupd[600], lookupd_key[600];
    snprintf(secret, sizeof secret, "--zmq-curve-secret-key-file=%s", sec_path("server_secret"));
    snprintf(allow, sizeof allow, "--zmq-curve-allow-dir=%s", sec_path("allow"));
    snprintf(to_lookupd, sizeof to_lookupd, "--lookupd-address=%s", it_broker_zmq(lookupd));
    snprintf(lookupd_key, sizeof lookupd_key, "--zmq-curve-lookupd-key-file=%s",
             sec_path("lookupd"));
    const char *flags[] = {secret,      allow,
                           to_lookupd,  "--broadcast-address=127.0.0.1",
                           lookupd_key, "--lookupd-heartbeat-interval=200ms",
                           NULL};
    it_broker_t *broker = it_broker_start(flags);
    it_post_ok(broker, "/topic/create?topic=" SEC_TOPIC);

    char lookup_http[300], key[600], server_key[600];
    snprintf(lookup_http, sizeof lookup_http, "--lookupd-http-address=%s", it_broker_http(lookupd));
    snprintf(key, sizeof key, "--zmq-curve-key-file=%s", sec_path("allowed_secret"));
    snprintf(server_key, sizeof server_key, "--zmq-curve-server-key-file=%s", sec_path("server"));
    const char *worker_argv[] = {getenv("NSQ_WORKER"),
                                 "--topic=" SEC_TOPIC,
                                 "--channel=" SEC_CHANNEL,
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
                              "echo " SEC_BODY " | \"$0\" \"$@\"",
                              getenv("NSQ_PUB"),
                              "--topic=" SEC_TOPIC,
                              broker_flag,
                              key,
                              server_key,
                              NULL};
    it_child_t *pub = it_child_start("pub", pub_argv);
    IT_ASSERT_INT(it_child_stop(&pub, 0, 10000), ==, 0);
    sec_expect_body(worker);
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
}

// What crosses the wire: the body in clear without CURVE, not with it.
static void curve_capture(void)
{
    s_curve_keys();
    it_broker_t *plain = it_broker_start(NULL);
    sec_relay_t *relay = sec_relay_new(sec_port(it_broker_zmq(plain)));
    char through[64];
    snprintf(through, sizeof through, "127.0.0.1:%d", relay->port);
    IT_ASSERT_INT(sec_publish(through, NULL, NULL, SEC_BODY), ==, 0);
    IT_ASSERT(sec_relay_saw(relay, SEC_BODY), "the relay misses plain bytes: it cannot tell");

    it_broker_t *broker = s_curve_broker();
    relay = sec_relay_new(sec_port(it_broker_zmq(broker)));
    snprintf(through, sizeof through, "127.0.0.1:%d", relay->port);
    IT_ASSERT_INT(sec_publish(through, sec_path("allowed_secret"), sec_path("server"), SEC_BODY),
                  ==, 0);
    IT_ASSERT_INT(it_topic_stat(broker, SEC_TOPIC, "message_count"), ==, 1);
    IT_ASSERT(!sec_relay_saw(relay, SEC_BODY), "the body crossed in clear with CURVE on");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&plain), ==, 0);
}

// Client secret keys wider than 0600 are refused with one line naming the
// flag: nsq-pub's and nsq-ctl's --tls-key, lookupd's
// --http-client-tls-key, and nsq-pub's and nsq-bench's --zmq-curve-key-file;
// public certificates may stay readable.
static void client_key_mode(void)
{
    sec_certificates();
    sec_keygen("server");
    sec_keygen("client");
    sec_run("chmod 644 client.key client_secret && chmod 644 client.pem");
    char command[1024];
    snprintf(command, sizeof command,
             "echo x | '%s' --topic=" SEC_TOPIC " --http-address=https://127.0.0.1:1"
             " --tls-cert=client.pem --tls-key=client.key 2> pub.err; test $? = 2"
             " && test $(wc -l < pub.err) = 1 && grep -q 'tls-key=client.key: mode 0644 is wider"
             " than 0600' pub.err",
             getenv("NSQ_PUB"));
    sec_run(command);
    snprintf(command, sizeof command,
             "echo x | '%s' --topic=" SEC_TOPIC " --broker-address=127.0.0.1:1"
             " --zmq-curve-key-file=client_secret --zmq-curve-server-key-file=server 2> curve.err;"
             " test $? = 2 && test $(wc -l < curve.err) = 1"
             " && grep -q 'zmq-curve-key-file=client_secret: mode 0644 is wider' curve.err",
             getenv("NSQ_PUB"));
    sec_run(command);
    snprintf(command, sizeof command,
             "'%s' --mode=zmq-pub --count=1 --zmq-address=127.0.0.1:1"
             " --zmq-curve-key-file=client_secret --zmq-curve-server-key-file=server 2> bench.err;"
             " test $? = 2 && test $(wc -l < bench.err) = 1"
             " && grep -q 'zmq-curve-key-file=client_secret: mode 0644 is wider' bench.err",
             getenv("NSQ_BENCH"));
    sec_run(command);
    snprintf(command, sizeof command,
             "'%s' --broker-http-address=https://127.0.0.1:1 --tls-cert=client.pem"
             " --tls-key=client.key topics 2> ctl.err; test $? = 2"
             " && grep -q 'tls-key=client.key: mode 0644 is wider' ctl.err",
             getenv("NSQ_CTL"));
    sec_run(command);
    snprintf(command, sizeof command,
             "'%s' --http-address=127.0.0.1:0 --zmq-address=127.0.0.1:0"
             " --http-client-tls-cert=client.pem --http-client-tls-key=client.key 2> lookupd.err;"
             " test $? = 1 && grep -q 'http-client-tls-key=client.key: mode 0644 is wider'"
             " lookupd.err",
             getenv("NSQ_LOOKUPD"));
    sec_run(command);
}

int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const it_case_t cases[] = {
        {"curve_refuses", curve_refuses},
        {"curve_key_mode", curve_key_mode},
        {"curve_refused_backs_off", curve_refused_backs_off},
        {"curve_end_to_end", curve_end_to_end},
        {"curve_capture", curve_capture},
        {"client_key_mode", client_key_mode},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof *cases);
}
