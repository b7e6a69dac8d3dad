/*  it_tcp_streams - the NSQ TCP door's deflate, snappy and TLS streams and
    its bad input, through a raw V2 client (v2_client.c)
    SPDX-License-Identifier: MIT

    A publish and a delivery through each upgraded stream (deflate,
    snappy, TLS with the test certificates), then bad input (wrong magic,
    oversized frames, MPUB whose count lies, silent and vanishing clients)
    while other clients are served.
*/
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "broker_tls.h"
#include "it_tcp_util.h"
#include "v2_client.h"

// ---- streams -------------------------------------------------------------------

// A publish and a delivery through an upgraded stream.
static void s_round_trip(v2_client_t *client, const char *topic)
{
    char line[128];
    snprintf(line, sizeof line, "PUB %s", topic);
    tcp_ok(client, line, "through the stream");
    snprintf(line, sizeof line, "SUB %s c", topic);
    tcp_ok(client, line, NULL);
    IT_ASSERT(tcp_cmd(client, "RDY 1", NULL, 0) == 0, "RDY");
    tcp_message_t message;
    tcp_message(client, &message, 5000);
    IT_ASSERT_STR(message.body, "through the stream");
    tcp_fin(client, message.id);
}

static void s_compression(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    v2_client_t *client = tcp_connect(broker);
    tcp_identify(client, "{\"feature_negotiation\":true,\"deflate\":true,\"deflate_level\":9}",
                 "{");
    v2_client_compress(client, false, 6);
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, "OK"), "no OK after deflate");
    s_round_trip(client, "deflated");
    v2_client_destroy(&client);
    client = tcp_connect(broker);
    tcp_identify(client, "{\"feature_negotiation\":true,\"snappy\":true}", "{");
    v2_client_compress(client, true, 0);
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, "OK"), "no OK after snappy");
    s_round_trip(client, "snappied");
    char *stats = it_stats(broker);
    IT_ASSERT(stats && strstr(stats, "\"snappy\":true"), "stats show no snappy client");
    free(stats);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

static void s_tls(void)
{
    char dir[] = "/tmp/it_tcp_tls_XXXXXX";
    IT_ASSERT(mkdtemp(dir), "mkdtemp");
    char cert[64], key[64], cert_flag[96], key_flag[96];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    IT_ASSERT(broker_tls_write_test_pair(cert, key) == 0, "cannot write a test certificate");
    snprintf(cert_flag, sizeof cert_flag, "--tls-cert=%s", cert);
    snprintf(key_flag, sizeof key_flag, "--tls-key=%s", key);
    const char *required[] = {cert_flag, key_flag, "--tls-required", NULL};
    it_broker_t *broker = it_broker_start(required);
    // --tls-required: nothing but IDENTIFY before TLS (plain HTTP is refused
    // too, as nsqd's --tls-required=true, so /stats is read from a second
    // broker below).
    v2_client_t *client = tcp_connect(broker);
    tcp_error(client, "PUB t", "x", 1, "E_INVALID", true);
    v2_client_destroy(&client);
    client = tcp_connect(broker);
    tcp_identify(client, "{\"feature_negotiation\":true,\"tls_v1\":true}", "{");
    IT_ASSERT(v2_client_start_tls(client, cert) == 0, "TLS handshake failed");
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, "OK"), "no OK after TLS");
    s_round_trip(client, "secret");
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    const char *optional[] = {cert_flag, key_flag, NULL};
    broker = it_broker_start(optional);
    client = tcp_connect(broker);
    tcp_identify(client, "{\"feature_negotiation\":true,\"tls_v1\":true}", "{");
    IT_ASSERT(v2_client_start_tls(client, cert) == 0, "TLS handshake failed");
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, "OK"), "no OK after TLS");
    s_round_trip(client, "secret");
    char *stats = it_stats(broker);
    IT_ASSERT(stats && strstr(stats, "\"tls\":true"), "stats show no TLS client");
    free(stats);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    unlink(cert);
    unlink(key);
    rmdir(dir);
}

// ---- bad input -------------------------------------------------------------------

static void s_bad_input(void)
{
    const char *flags[] = {"--max-msg-size=100", "--max-body-size=1000", NULL};
    it_broker_t *broker = it_broker_start(flags);
    // A wrong magic: E_BAD_PROTOCOL, closed.
    v2_client_t *client = v2_client_connect(it_broker_tcp_port(broker));
    IT_ASSERT(client && v2_client_send(client, "  V1", 4) == 0, "connect");
    IT_ASSERT(v2_client_expect(client, TCP_ERROR, "E_BAD_PROTOCOL"), "wrong magic");
    IT_ASSERT(v2_client_ended(client, 5000), "not closed after a wrong magic");
    v2_client_destroy(&client);
    char big[200];
    memset(big, 'x', sizeof big);
    struct {
        const char *line;
        const void *body;
        size_t size;
        const char *code;
    } cases[] = {
        {"PUB big", big, 101, "E_BAD_MESSAGE PUB message too big 101 > 100"},
        {"DPUB big 0", big, 101, "E_BAD_MESSAGE DPUB message too big"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        client = tcp_connect(broker);
        tcp_error(client, cases[i].line, cases[i].body, cases[i].size, cases[i].code, true);
        v2_client_destroy(&client);
    }
    // MPUB over --max-body-size, with a message over --max-msg-size, and
    // with a count that does not match its data.
    const char *long_bodies[] = {big};
    big[150] = '\0';
    size_t size;
    char *mpub = tcp_mpub_body(1, long_bodies, 1, &size);
    client = tcp_connect(broker);
    tcp_error(client, "MPUB big", mpub, size, "E_BAD_MESSAGE", true);
    v2_client_destroy(&client);
    free(mpub);
    const char *bodies[] = {"a", "b"};
    mpub = tcp_mpub_body(3, bodies, 2, &size);
    client = tcp_connect(broker);
    tcp_error(client, "MPUB lie", mpub, size,
              "E_BAD_MESSAGE MPUB failed to read message(2) body size", true);
    v2_client_destroy(&client);
    free(mpub);
    char *huge = calloc(1, 1100);
    IT_ASSERT(huge, "oom");
    client = tcp_connect(broker);
    tcp_error(client, "MPUB huge", huge, 1100, "E_BAD_BODY MPUB body too big 1100 > 1000", true);
    v2_client_destroy(&client);
    client = tcp_connect(broker);
    tcp_error(client, "IDENTIFY", huge, 1001, "E_BAD_BODY IDENTIFY body too big 1001 > 1000", true);
    v2_client_destroy(&client);
    free(huge);
    // A line longer than nsqd's 16 KiB buffer.
    char *line = malloc(20000);
    IT_ASSERT(line, "oom");
    memset(line, 'A', 19999);
    line[19999] = '\0';
    client = tcp_connect(broker);
    IT_ASSERT(v2_client_send(client, line, 19999) == 0, "send");
    IT_ASSERT(v2_client_expect(client, TCP_ERROR, "E_INVALID"), "long line");
    IT_ASSERT(v2_client_ended(client, 5000), "not closed after a long line");
    v2_client_destroy(&client);
    free(line);
    client = tcp_connect(broker);
    tcp_ok(client, "PUB after", "served");
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A client that connects and says nothing is dropped after two heartbeat
// intervals; 1,000 that connect and vanish cost nothing; others are served
// meanwhile.
static void s_silent_and_vanishing(void)
{
    const char *flags[] = {"--heartbeat-interval=500ms", NULL};
    it_broker_t *broker = it_broker_start(flags);
    v2_client_t *silent = v2_client_connect(it_broker_tcp_port(broker));
    IT_ASSERT(silent, "connect");
    v2_client_t *producer = tcp_connect(broker);
    for (int i = 0; i < 1000; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in address = {.sin_family = AF_INET,
                                      .sin_port = htons(it_broker_tcp_port(broker))};
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        IT_ASSERT(fd >= 0 && connect(fd, (struct sockaddr *) &address, sizeof address) == 0,
                  "connect %d", i);
        if (i % 3 == 1)
            IT_ASSERT(write(fd, "  V2PUB x\n\0\0", 12) > 0, "write");  // half a command
        close(fd);
        if (i % 100 == 0)
            tcp_ok_beating(producer, "PUB alive", "x");
    }
    IT_ASSERT(v2_client_ended(silent, 5000), "a silent client was not dropped");
    v2_client_destroy(&silent);
    IT_ASSERT_EVENTUALLY(it_topic_stat(broker, "alive", "message_count") == 10, 5000, "count");
    v2_client_destroy(&producer);
    char *metrics = NULL;
    IT_ASSERT_EVENTUALLY((free(metrics), metrics = NULL,
                          it_http(broker, "GET", "/metrics", NULL, 0, &metrics) == 200
                              && strstr(metrics, "nsq_broker_clients 0")),
                         10000, "clients left: %s", metrics ? metrics : "");
    free(metrics);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"compression", s_compression},
        {"tls", s_tls},
        {"bad_input", s_bad_input},
        {"silent_and_vanishing", s_silent_and_vanishing},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
