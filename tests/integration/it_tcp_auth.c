/*  it_tcp_auth - AUTH on the NSQ TCP door, through a raw V2 client
    SPDX-License-Identifier: MIT

    Against the reference auth server (nsq-auth-server), as nsqd: grants
    per topic and channel, refusals, pipelined commands behind AUTH, the
    bound on what a client holds while the auth server is asked, ttl
    expiry; and against a fake auth server (libmicrohttpd) that shows what
    the broker asks over TLS (tls, common_name).
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

// ---- AUTH ----------------------------------------------------------------------
// Against the reference auth server (nsq-auth-server), as nsqd: AUTH once,
// then every SUB and publish needs a grant for its topic (and channel),
// asked again past its ttl; every refusal is fatal, and an auth server
// that cannot be asked never lets a command through.

// "pub-a" publishes on topic a only; "sub-a" subscribes to a's channel
// billing only; "ops" may do everything; "none" is known but granted
// nothing; "brief" and "short" publish on a for one second at a time.
static const char *s_auth_file =
    "{\"secrets\": {\n"
    " \"pub-a\": {\"ttl\": 60, \"identity\": \"producer-a\", \"authorizations\": [\n"
    "   {\"topic\": \"^a$\", \"channels\": [\".*\"], \"permissions\": [\"publish\"]}]},\n"
    " \"sub-a\": {\"ttl\": 60, \"identity\": \"consumer-a\", \"identity_url\": \"https://id/c\",\n"
    "   \"authorizations\": [\n"
    "   {\"topic\": \"^a$\", \"channels\": [\"^billing$\"], \"permissions\": [\"subscribe\"]}]},\n"
    " \"ops\": {\"ttl\": 60, \"identity\": \"ops\", \"authorizations\": [\n"
    "   {\"topic\": \".*\", \"channels\": [\".*\"],\n"
    "    \"permissions\": [\"admin\", \"publish\", \"subscribe\"]}]},\n"
    " \"none\": {\"ttl\": 60, \"identity\": \"nobody\", \"authorizations\": []},\n"
    " \"brief\": {\"ttl\": 1, \"identity\": \"brief\", \"authorizations\": [\n"
    "   {\"topic\": \"^a$\", \"channels\": [\".*\"], \"permissions\": [\"publish\"]}]},\n"
    " \"short\": {\"ttl\": 1, \"identity\": \"short\", \"authorizations\": [\n"
    "   {\"topic\": \"^a$\", \"channels\": [\".*\"], \"permissions\": [\"publish\"]}]}\n"
    "}}\n";

// A broker asking the auth server at address; timeout is its
// --auth-http-timeout, more (or NULL) one more flag.
static it_broker_t *s_auth_broker(const char *address, const char *timeout, const char *more)
{
    char flag[128], timeout_flag[64];
    snprintf(flag, sizeof flag, "--auth-http-address=%s", address);
    snprintf(timeout_flag, sizeof timeout_flag, "--auth-http-timeout=%s", timeout);
    const char *flags[] = {flag, timeout_flag, more, NULL};
    return it_broker_start(flags);
}

// Reads the AUTH answer and checks it is nsqd's JSON with identity.
static void s_auth_answer(v2_client_t *client, const char *identity)
{
    char data[512], check[256];
    int type = -1;
    IT_ASSERT(v2_client_frame(client, &type, data, sizeof data, 10000) > 0, "no AUTH answer");
    IT_ASSERT(type == TCP_RESPONSE, "AUTH answered %d %s", type, data);
    snprintf(check, sizeof check,
             "doc['identity'] == '%s' and doc['permission_count'] == 1 and 'identity_url' in doc",
             identity);
    IT_ASSERT(it_json_parses(data, check), "AUTH answer %s", data);
}

// Sends AUTH secret and expects nsqd's JSON answer with identity.
static void s_auth_ok(v2_client_t *client, const char *secret, const char *identity)
{
    IT_ASSERT(tcp_cmd(client, "AUTH", secret, strlen(secret)) == 0, "send AUTH");
    s_auth_answer(client, identity);
}

// The body of GET /stats?format=json of a broker with auth (Bearer ops);
// caller frees.
static char *s_auth_stats(it_broker_t *broker)
{
    size_t size = 1 << 16;
    char *reply = malloc(size);
    IT_ASSERT(reply, "out of memory");
    IT_ASSERT_INT(it_http_raw(it_broker_http(broker),
                              "GET /stats?format=json HTTP/1.1\r\nHost: x\r\n"
                              "Authorization: Bearer ops\r\nConnection: close\r\n\r\n",
                              reply, size),
                  ==, 200);
    char *body = strstr(reply, "\r\n\r\n");
    IT_ASSERT(body, "no body in %s", reply);
    memmove(reply, body + 4, strlen(body + 4) + 1);
    return reply;
}

// Publishing: refused before AUTH (the door fails closed), allowed on
// topic a, E_UNAUTHORIZED (fatal) on topic b.
static void s_auth_publish(void)
{
    it_authd_t authd = it_authd_start(s_auth_file);
    it_broker_t *broker = s_auth_broker(authd.address, "2s", NULL);
    v2_client_t *client = tcp_connect(broker);
    IT_ASSERT(tcp_cmd(client, "IDENTIFY", "{\"feature_negotiation\":true}", 28) == 0, "IDENTIFY");
    char data[1024];
    int type = -1;
    IT_ASSERT(v2_client_frame(client, &type, data, sizeof data, 5000) > 0, "no IDENTIFY reply");
    IT_ASSERT(it_json_parses(data, "doc['auth_required'] == True"), "IDENTIFY reply %s", data);
    tcp_error(client, "PUB a", "x", 1, "E_AUTH_FIRST AUTH required before PUB", true);
    v2_client_destroy(&client);
    client = tcp_connect(broker);
    tcp_error(client, "MPUB a", "\0\0\0\1\0\0\0\1x", 9, "E_AUTH_FIRST AUTH required before MPUB",
              true);
    v2_client_destroy(&client);
    client = tcp_connect(broker);
    s_auth_ok(client, "pub-a", "producer-a");
    tcp_ok(client, "PUB a", "allowed");
    tcp_ok(client, "DPUB a 10", "deferred");
    tcp_error(client, "PUB b", "x", 1, "E_UNAUTHORIZED AUTH failed for PUB on \"b\" \"\"", true);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

// Subscribing: before AUTH refused; a channel outside the grant's regex is
// E_UNAUTHORIZED (fatal); the granted channel gets its messages; /stats
// shows who AUTHed, as nsqd's.
static void s_auth_subscribe(void)
{
    it_authd_t authd = it_authd_start(s_auth_file);
    it_broker_t *broker = s_auth_broker(authd.address, "2s", NULL);
    v2_client_t *client = tcp_connect(broker);
    tcp_error(client, "SUB a billing", NULL, 0, "E_AUTH_FIRST AUTH required before SUB", true);
    v2_client_destroy(&client);
    client = tcp_connect(broker);
    s_auth_ok(client, "sub-a", "consumer-a");
    tcp_error(client, "SUB a audit", NULL, 0,
              "E_UNAUTHORIZED AUTH failed for SUB on \"a\" \"audit\"", true);
    v2_client_destroy(&client);
    client = tcp_connect(broker);
    s_auth_ok(client, "pub-a", "producer-a");
    tcp_error(client, "SUB a billing", NULL, 0, "E_UNAUTHORIZED", true);  // publish only
    v2_client_destroy(&client);
    client = tcp_connect(broker);
    s_auth_ok(client, "sub-a", "consumer-a");
    tcp_ok(client, "SUB a billing", NULL);
    IT_ASSERT(tcp_cmd(client, "RDY 1", NULL, 0) == 0, "RDY");
    v2_client_t *producer = tcp_connect(broker);
    s_auth_ok(producer, "pub-a", "producer-a");
    tcp_ok(producer, "PUB a", "for billing");
    tcp_message_t message;
    tcp_message(client, &message, 5000);
    IT_ASSERT_STR(message.body, "for billing");
    char *stats = s_auth_stats(broker);
    IT_ASSERT(strstr(stats, "\"authed\":true,\"auth_identity\":\"consumer-a\","
                            "\"auth_identity_url\":\"https://id/c\""),
              "stats %s", stats);
    free(stats);
    v2_client_destroy(&producer);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

// AUTH's own errors, as nsqd's: an unknown secret, a second AUTH, a secret
// granted nothing; all fatal.
static void s_auth_errors(void)
{
    it_authd_t authd = it_authd_start(s_auth_file);
    it_broker_t *broker = s_auth_broker(authd.address, "2s", NULL);
    v2_client_t *client = tcp_connect(broker);
    tcp_error(client, "AUTH", "not-a-secret", 12, "E_AUTH_FAILED AUTH failed", true);
    v2_client_destroy(&client);
    client = tcp_connect(broker);
    s_auth_ok(client, "pub-a", "producer-a");
    tcp_error(client, "AUTH", "ops", 3, "E_INVALID AUTH already set", true);
    v2_client_destroy(&client);
    client = tcp_connect(broker);
    tcp_error(client, "AUTH", "none", 4, "E_UNAUTHORIZED AUTH no authorizations found", true);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

// Commands sent in one write right behind AUTH wait for its answer (the
// auth server is asked first) and are answered after it, in order.
static void s_auth_pipelined(void)
{
    it_authd_t authd = it_authd_start(s_auth_file);
    it_broker_t *broker = s_auth_broker(authd.address, "2s", NULL);
    v2_client_t *client = tcp_connect(broker);
    char bytes[512];
    size_t size = tcp_append(bytes, 0, "AUTH", "pub-a");
    size = tcp_append(bytes, size, "PUB a", "one");
    size = tcp_append(bytes, size, "NOP", NULL);
    size = tcp_append(bytes, size, "MPUB a", NULL);
    memcpy(bytes + size, "\0\0\0\x0e\0\0\0\2\0\0\0\1x\0\0\0\1y", 18);
    size += 18;
    size = tcp_append(bytes, size, "PUB b", "refused");
    size = tcp_append(bytes, size, "PUB a", "never");
    IT_ASSERT(v2_client_send(client, bytes, size) == 0, "send");
    s_auth_answer(client, "producer-a");
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, "OK"), "PUB a behind AUTH: no OK");
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, "OK"), "MPUB a behind AUTH: no OK");
    IT_ASSERT(v2_client_expect(client, TCP_ERROR, "E_UNAUTHORIZED"), "PUB b behind AUTH");
    IT_ASSERT(v2_client_ended(client, 5000), "E_UNAUTHORIZED did not close the connection");
    v2_client_destroy(&client);
    char *stats = s_auth_stats(broker);
    IT_ASSERT(it_json_parses(stats, "[t['message_count'] for t in doc['topics'] "
                                    "if t['topic_name'] == 'a'] == [3]"),
              "topic a should hold the 3 messages published before the refusal: %s", stats);
    free(stats);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

// An auth server that takes connections and never answers: what a client
// pipelines behind its AUTH is held, but not without bound (past it the
// client is refused, long before the auth server's timeout), and the
// AUTH itself ends refused, never granted.
static void s_auth_hold_bound(void)
{
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);  // not the broker's
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    socklen_t length = sizeof address;
    IT_ASSERT(listener >= 0 && bind(listener, (struct sockaddr *) &address, sizeof address) == 0
                  && listen(listener, 16) == 0
                  && getsockname(listener, (struct sockaddr *) &address, &length) == 0,
              "cannot listen");
    char silent[64];
    snprintf(silent, sizeof silent, "127.0.0.1:%u", ntohs(address.sin_port));
    it_broker_t *broker = s_auth_broker(silent, "60s", NULL);
    v2_client_t *client = tcp_connect(broker);
    IT_ASSERT(tcp_cmd(client, "AUTH", "pub-a", 5) == 0, "send AUTH");
    size_t size = 1 << 20;  // --max-msg-size
    char *body = malloc(size);
    IT_ASSERT(body, "out of memory");
    memset(body, 'x', size);
    // 20 MiB behind the AUTH; the broker may close before all of it is sent.
    for (int i = 0; i < 20 && tcp_cmd(client, "PUB a", body, size) == 0; i++)
        ;
    free(body);
    char data[256];
    int type = -1;
    if (v2_client_frame(client, &type, data, sizeof data, 20000) > 0)
        IT_ASSERT(type == TCP_ERROR && strncmp(data, "E_AUTH_FAILED", 13) == 0, "answered %d %s",
                  type, data);
    IT_ASSERT(v2_client_ended(client, 5000),
              "still open while the auth server is silent: the hold has no bound");
    v2_client_destroy(&client);
    close(listener);  // the broker's question fails now: refused, not granted
    client = tcp_connect(broker);
    tcp_error(client, "AUTH", "pub-a", 5, "E_AUTH_FAILED AUTH failed", true);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A grant past its ttl is asked again: a secret revoked in the auth
// server's file stops publishing on the open connection (fatal); with the
// auth server gone, a grant past its ttl never lets a publish through.
static void s_auth_ttl(void)
{
    it_authd_t authd = it_authd_start(s_auth_file);
    it_broker_t *broker = s_auth_broker(authd.address, "2s", NULL);
    v2_client_t *client = tcp_connect(broker);
    s_auth_ok(client, "short", "short");
    tcp_ok(client, "PUB a", "while granted");
    char revoked[4096];
    snprintf(revoked, sizeof revoked, "%s", s_auth_file);
    char *entry = strstr(revoked, ",\n \"short\"");
    IT_ASSERT(entry, "the file has no short entry");
    snprintf(entry, sizeof revoked - (size_t) (entry - revoked), "\n}}\n");
    it_write_file(authd.path, revoked);
    char data[256];
    int type = TCP_RESPONSE;
    int64_t deadline = it_now_ms() + 10000;
    while (type == TCP_RESPONSE && it_now_ms() < deadline) {
        IT_ASSERT(tcp_cmd(client, "PUB a", "until revoked", 13) == 0, "send PUB");
        IT_ASSERT(v2_client_frame(client, &type, data, sizeof data, 5000) > 0, "no answer");
    }
    IT_ASSERT(type == TCP_ERROR && strncmp(data, "E_AUTH_FAILED AUTH failed", 25) == 0,
              "a revoked secret still publishes after its ttl: %d %s", type, data);
    IT_ASSERT(v2_client_ended(client, 5000), "not closed after E_AUTH_FAILED");
    v2_client_destroy(&client);
    // The auth server goes: a grant past its ttl is refused, never kept.
    client = tcp_connect(broker);
    s_auth_ok(client, "brief", "brief");
    IT_ASSERT_INT(it_child_stop(&authd.child, SIGTERM, 5000), ==, 0);
    type = TCP_RESPONSE;
    deadline = it_now_ms() + 10000;
    while (type == TCP_RESPONSE && it_now_ms() < deadline) {
        IT_ASSERT(tcp_cmd(client, "PUB a", "until expired", 13) == 0, "send PUB");
        IT_ASSERT(v2_client_frame(client, &type, data, sizeof data, 5000) > 0, "no answer");
    }
    IT_ASSERT(type == TCP_ERROR && strncmp(data, "E_AUTH_FAILED AUTH failed", 25) == 0,
              "an expired grant still publishes with the auth server down: %d %s", type, data);
    v2_client_destroy(&client);
    client = tcp_connect(broker);
    tcp_error(client, "AUTH", "pub-a", 5, "E_AUTH_FAILED AUTH failed", true);
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// A fake auth server (libmicrohttpd) that keeps the tls and common_name of
// the last query and grants everything.
typedef struct {
    pthread_mutex_t lock;
    char tls[16];          // the last query's tls
    char common_name[64];  // and its common_name
} s_fake_auth_t;

static enum MHD_Result s_fake_auth_answer(void *cls, struct MHD_Connection *connection,
                                          const char *url, const char *method, const char *version,
                                          const char *upload_data, size_t *upload_data_size,
                                          void **state)
{
    (void) url, (void) method, (void) version, (void) upload_data, (void) upload_data_size;
    (void) state;
    s_fake_auth_t *fake = cls;
    const char *tls = MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "tls");
    const char *name =
        MHD_lookup_connection_value(connection, MHD_GET_ARGUMENT_KIND, "common_name");
    pthread_mutex_lock(&fake->lock);
    snprintf(fake->tls, sizeof fake->tls, "%s", tls ? tls : "(none)");
    snprintf(fake->common_name, sizeof fake->common_name, "%s", name ? name : "(none)");
    pthread_mutex_unlock(&fake->lock);
    static const char grant[] =
        "{\"ttl\":60,\"identity\":\"fake\",\"authorizations\":[{\"topic\":\".*\","
        "\"channels\":[\".*\"],\"permissions\":[\"publish\",\"subscribe\"]}]}";
    struct MHD_Response *response =
        MHD_create_response_from_buffer(sizeof grant - 1, (void *) grant, MHD_RESPMEM_PERSISTENT);
    enum MHD_Result result = MHD_queue_response(connection, 200, response);
    MHD_destroy_response(response);
    return result;
}

// What the fake auth server saw last: "tls=... common_name=...".
static void s_fake_auth_query(s_fake_auth_t *fake, char *query, size_t size)
{
    pthread_mutex_lock(&fake->lock);
    snprintf(query, size, "tls=%s common_name=%s", fake->tls, fake->common_name);
    pthread_mutex_unlock(&fake->lock);
}

// Starts a broker with TLS (the test pair in it_tmp_dir: cert.pem, key.pem)
// asking the auth server at address; more: one more flag or NULL.
static it_broker_t *s_tls_auth_broker(const char *address, const char *more, char *cert, char *key,
                                      size_t size)
{
    snprintf(cert, size, "%s/cert.pem", it_tmp_dir());
    snprintf(key, size, "%s/key.pem", it_tmp_dir());
    if (access(cert, R_OK) != 0)
        IT_ASSERT(broker_tls_write_test_pair(cert, key) == 0, "cannot write a test certificate");
    char cert_flag[700], key_flag[700], auth_flag[128], ca_flag[700];
    snprintf(cert_flag, sizeof cert_flag, "--tls-cert=%s", cert);
    snprintf(key_flag, sizeof key_flag, "--tls-key=%s", key);
    snprintf(ca_flag, sizeof ca_flag, "--tls-root-ca-file=%s", cert);
    snprintf(auth_flag, sizeof auth_flag, "--auth-http-address=%s", address);
    const char *flags[] = {auth_flag, cert_flag, key_flag, ca_flag, more, NULL};
    return it_broker_start(flags);
}

// A client over tls_v1 (showing the test pair as its certificate when
// with_cert) that AUTHs; returns what the auth server was told.
static void s_tls_auth_query(it_broker_t *broker, s_fake_auth_t *fake, const char *cert,
                             const char *key, bool with_cert, char *query, size_t size)
{
    v2_client_t *client = tcp_connect(broker);
    tcp_identify(client, "{\"feature_negotiation\":true,\"tls_v1\":true}", "{");
    IT_ASSERT(v2_client_start_tls_as(client, cert, with_cert ? cert : NULL, with_cert ? key : NULL)
                  == 0,
              "TLS handshake failed");
    IT_ASSERT(v2_client_expect(client, TCP_RESPONSE, "OK"), "no OK after TLS");
    IT_ASSERT(tcp_cmd(client, "AUTH", "over-tls", 8) == 0, "send AUTH");
    s_auth_answer(client, "fake");
    s_fake_auth_query(fake, query, size);
    tcp_ok(client, "PUB t", "over tls");
    v2_client_destroy(&client);
}

// After a tls_v1 upgrade the auth server hears tls=true, as nsqd tells it
// (a plain connection tls=false), and with --tls-client-auth-policy the
// common name of the client's certificate.
static void s_auth_tls(void)
{
    static s_fake_auth_t fake = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct MHD_Daemon *daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, s_fake_auth_answer, &fake,
        MHD_OPTION_SOCK_ADDR,
        &(struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)},
        MHD_OPTION_END);
    IT_ASSERT(daemon, "cannot start the fake auth server");
    char address[64], cert[600], key[600], query[128];
    snprintf(address, sizeof address, "127.0.0.1:%u",
             MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT)->port);
    it_broker_t *broker = s_tls_auth_broker(address, NULL, cert, key, sizeof cert);
    s_tls_auth_query(broker, &fake, cert, key, false, query, sizeof query);
    IT_ASSERT_STR(query, "tls=true common_name=");
    v2_client_t *client = tcp_connect(broker);
    IT_ASSERT(tcp_cmd(client, "AUTH", "in-clear", 8) == 0, "send AUTH");
    s_auth_answer(client, "fake");
    s_fake_auth_query(&fake, query, sizeof query);
    IT_ASSERT_STR(query, "tls=false common_name=");
    v2_client_destroy(&client);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    // require-verify: the certificate's common name (the test pair's).
    broker = s_tls_auth_broker(address, "--tls-client-auth-policy=require-verify", cert, key,
                               sizeof cert);
    s_tls_auth_query(broker, &fake, cert, key, true, query, sizeof query);
    IT_ASSERT_STR(query, "tls=true common_name=127.0.0.1");
    // No certificate, or one the root CA did not sign: no TLS session.
    char other_cert[700], other_key[700];
    snprintf(other_cert, sizeof other_cert, "%s/other-cert.pem", it_tmp_dir());
    snprintf(other_key, sizeof other_key, "%s/other-key.pem", it_tmp_dir());
    IT_ASSERT(broker_tls_write_test_pair(other_cert, other_key) == 0, "cannot write a pair");
    for (int i = 0; i < 2; i++) {
        client = tcp_connect(broker);
        tcp_identify(client, "{\"feature_negotiation\":true,\"tls_v1\":true}", "{");
        IT_ASSERT(v2_client_start_tls_as(client, cert, i ? other_cert : NULL, other_key) != 0
                      || !v2_client_expect(client, TCP_RESPONSE, "OK"),
                  "TLS %s under require-verify",
                  i ? "with a certificate the root CA did not sign" : "without a certificate");
        v2_client_destroy(&client);
    }
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    MHD_stop_daemon(daemon);
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"auth_publish", s_auth_publish},
        {"auth_subscribe", s_auth_subscribe},
        {"auth_errors", s_auth_errors},
        {"auth_pipelined", s_auth_pipelined},
        {"auth_hold_bound", s_auth_hold_bound},
        {"auth_ttl", s_auth_ttl},
        {"auth_tls", s_auth_tls},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
