/*  it_tcp_tls_version - the NSQ TCP door's TLS versions and the names of
    its sessions, through the real broker and a raw V2 client
    SPDX-License-Identifier: MIT

    --tls-min-version bounds the TLS versions of the TCP door as it does
    those of the HTTPS door: with tls1.3 a client that IDENTIFYs with
    tls_v1 and then offers only TLS 1.2 fails its handshake, and one that
    offers TLS 1.3 gets its OK and publishes; without the option (tls1.2)
    the TLS 1.2 client is served, so the refusal is the option's doing.

    Every TCP session has a name of its own in the broker's log: two
    connections in a row (the second reuses the first's I/O slot) are
    logged under different names, each holding the client's address.
*/
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "broker_tls.h"
#include "v2_client.h"

#define S_RESPONSE 0
#define S_ONLY_12  "NORMAL:-VERS-ALL:+VERS-TLS1.2"
#define S_ONLY_13  "NORMAL:-VERS-ALL:+VERS-TLS1.3"
#define S_TLS_V1   "{\"feature_negotiation\":true,\"tls_v1\":true}"

// A client of broker's TCP port that sent the magic and IDENTIFY json,
// whose reply starts with reply.
static v2_client_t *s_identified(it_broker_t *broker, const char *json, const char *reply)
{
    v2_client_t *client = v2_client_connect(it_broker_tcp_port(broker));
    IT_ASSERT(client, "cannot connect to the TCP port");
    IT_ASSERT(v2_client_send(client, "  V2", 4) == 0, "cannot send the magic");
    IT_ASSERT(v2_client_command(client, "IDENTIFY\n", json, strlen(json)) == 0, "send IDENTIFY");
    IT_ASSERT(v2_client_expect(client, S_RESPONSE, reply), "IDENTIFY %s: no %s", json, reply);
    return client;
}

// Whether a tls_v1 client offering only the versions in priorities
// completes its handshake; if so it must get its OK and publish.
static bool s_tls_served(it_broker_t *broker, const char *cert, const char *priorities)
{
    v2_client_t *client = s_identified(broker, S_TLS_V1, "{");
    v2_client_set_tls_priorities(client, priorities);
    bool served = v2_client_start_tls(client, cert) == 0;
    if (served) {
        IT_ASSERT(v2_client_expect(client, S_RESPONSE, "OK"), "no OK after TLS");
        IT_ASSERT(v2_client_command(client, "PUB t\n", "over tls", 8) == 0, "send PUB");
        IT_ASSERT(v2_client_expect(client, S_RESPONSE, "OK"), "PUB over TLS: no OK");
    } else {
        IT_ASSERT(v2_client_ended(client, 5000), "the broker kept a failed TLS client");
    }
    v2_client_destroy(&client);
    return served;
}

static void s_min_version(void)
{
    char cert[512], key[512], cert_flag[600], key_flag[600];
    snprintf(cert, sizeof cert, "%s/cert.pem", it_tmp_dir());
    snprintf(key, sizeof key, "%s/key.pem", it_tmp_dir());
    IT_ASSERT(broker_tls_write_test_pair(cert, key) == 0, "cannot write a test certificate");
    snprintf(cert_flag, sizeof cert_flag, "--tls-cert=%s", cert);
    snprintf(key_flag, sizeof key_flag, "--tls-key=%s", key);
    const char *tls12[] = {cert_flag, key_flag, NULL};
    it_broker_t *broker = it_broker_start(tls12);
    IT_ASSERT(s_tls_served(broker, cert, S_ONLY_12), "TLS 1.2 refused under the default tls1.2");
    IT_ASSERT(s_tls_served(broker, cert, S_ONLY_13), "TLS 1.3 refused under the default tls1.2");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    const char *tls13[] = {cert_flag, key_flag, "--tls-min-version=tls1.3", NULL};
    broker = it_broker_start(tls13);
    IT_ASSERT(!s_tls_served(broker, cert, S_ONLY_12), "TLS 1.2 accepted under tls1.3");
    IT_ASSERT(s_tls_served(broker, cert, S_ONLY_13), "TLS 1.3 refused under tls1.3");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Connects as client_id and disconnects; reads the session's name from the
// broker's "client NAME (client_id): disconnected" line into name, and
// what it should hold, "@127.0.0.1:<the client's port>", into address.
static void s_logged_name(it_broker_t *broker, const char *client_id, char *name, size_t size,
                          char address[64])
{
    char json[128], line[1024], suffix[160];
    snprintf(json, sizeof json, "{\"client_id\":\"%s\"}", client_id);
    v2_client_t *client = s_identified(broker, json, "OK");
    struct sockaddr_in local;
    socklen_t length = sizeof local;
    IT_ASSERT(getsockname(v2_client_fd(client), (struct sockaddr *) &local, &length) == 0,
              "getsockname");
    snprintf(address, 64, "@127.0.0.1:%u", ntohs(local.sin_port));
    v2_client_destroy(&client);
    snprintf(suffix, sizeof suffix, " (%s): disconnected", client_id);
    IT_ASSERT(it_broker_wait_log(broker, suffix, line, sizeof line, 5000),
              "no disconnection logged for %s", client_id);
    const char *start = strstr(line, "client ");
    const char *end = strstr(line, suffix);
    IT_ASSERT(start && end && start + 7 < end, "no name in: %s", line);
    snprintf(name, size, "%.*s", (int) (end - start - 7), start + 7);
}

// The second connection comes after the first has gone, so it reuses the
// first's I/O slot (what the old names were made of).
static void s_session_names(void)
{
    it_broker_t *broker = it_broker_start(NULL);
    char first[128], second[128], first_address[64], second_address[64];
    s_logged_name(broker, "first", first, sizeof first, first_address);
    s_logged_name(broker, "second", second, sizeof second, second_address);
    IT_ASSERT(strcmp(first, second) != 0, "two connections both named %s", first);
    IT_ASSERT(strstr(first, first_address), "name %s without %s", first, first_address + 1);
    IT_ASSERT(strstr(second, second_address), "name %s without %s", second, second_address + 1);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"min_version", s_min_version},
        {"session_names", s_session_names},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
