/*  it_auth - authorization end to end: nsq-broker --auth-http-address
    pointing at the reference auth server (nsq-auth-server, a file of
    secrets), over HTTP (Authorization: Bearer) and ZeroMQ (AUTH, IDENTIFY)
    SPDX-License-Identifier: MIT

    Every case starts its own auth server on a free port with its own
    file. What each case shows fails when its check is taken out of the
    broker: a publish or subscribe outside the grant is refused, no secret
    is 401, an expired secret is asked again, an auth server that does not
    answer never lets a request through.
*/
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

// Secrets: "pub-a" publishes on topic a only; "sub-a" subscribes to a's
// channel billing only; "ops" administers everything; "short" publishes on
// a for one second at a time.
static const char *s_file =
    "{\"secrets\": {\n"
    " \"pub-a\": {\"ttl\": 60, \"identity\": \"producer-a\", \"authorizations\": [\n"
    "   {\"topic\": \"^a$\", \"channels\": [\".*\"], \"permissions\": [\"publish\"]}]},\n"
    " \"sub-a\": {\"ttl\": 60, \"identity\": \"consumer-a\", \"identity_url\": \"https://id/c\",\n"
    "   \"authorizations\": [\n"
    "   {\"topic\": \"^a$\", \"channels\": [\"^billing$\"], \"permissions\": [\"subscribe\"]}]},\n"
    " \"ops\": {\"ttl\": 60, \"identity\": \"ops\", \"authorizations\": [\n"
    "   {\"topic\": \".*\", \"channels\": [\".*\"],\n"
    "    \"permissions\": [\"admin\", \"publish\", \"subscribe\"]}]},\n"
    " \"short\": {\"ttl\": 1, \"identity\": \"short\", \"authorizations\": [\n"
    "   {\"topic\": \"^a$\", \"channels\": [\".*\"], \"permissions\": [\"publish\"]}]}\n"
    "}}\n";

static it_broker_t *s_broker_start(const it_authd_t *authd)
{
    char flag[128];
    snprintf(flag, sizeof flag, "--auth-http-address=%s", authd->address);
    const char *flags[] = {flag, "--auth-http-timeout=2s", NULL};
    return it_broker_start(flags);
}

// ---- HTTP with a Bearer secret ----------------------------------------------

static size_t s_collect(char *data, size_t size, size_t count, void *arg)
{
    char **reply = arg;
    size_t have = *reply ? strlen(*reply) : 0, bytes = size * count;
    char *grown = realloc(*reply, have + bytes + 1);
    IT_ASSERT(grown, "out of memory");
    memcpy(grown + have, data, bytes);
    grown[have + bytes] = '\0';
    *reply = grown;
    return bytes;
}

// method path on the broker with "Authorization: Bearer secret" (NULL:
// none). Returns the status; *reply (if not NULL) gets the body.
static int s_http(it_broker_t *broker, const char *method, const char *path, const char *secret,
                  const char *body, char **reply)
{
    char url[512], header[256];
    snprintf(url, sizeof url, "http://%s%s", it_broker_http(broker), path);
    CURL *curl = curl_easy_init();
    IT_ASSERT(curl, "curl_easy_init failed");
    struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
    if (secret) {
        snprintf(header, sizeof header, "Authorization: Bearer %s", secret);
        headers = curl_slist_append(headers, header);
    }
    char *text = NULL;
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &text);
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long) (body ? strlen(body) : 0));
    }
    long status = -1;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
    if (reply)
        *reply = text ? text : strdup("");
    else
        free(text);
    return (int) status;
}

// Checks status and, for an error, its NSQ code.
#define S_EXPECT(broker, method, path, secret, body, status, code)                                 \
    do {                                                                                           \
        char *reply_ = NULL;                                                                       \
        int got_ = s_http(broker, method, path, secret, body, &reply_);                            \
        char want_[64] = "";                                                                       \
        if (code)                                                                                  \
            snprintf(want_, sizeof want_, "{\"message\":\"%s\"}", (const char *) code);            \
        if (got_ != (status) || (want_[0] && strcmp(reply_, want_) != 0))                          \
            it_fail(__FILE__, __LINE__, method " " path, "got %d %s, want %d %s", got_, reply_,    \
                    status, want_);                                                                \
        free(reply_);                                                                              \
    } while (0)

// A field of a topic (channel NULL) or channel in /stats, read with secret
// ops; -1 if absent.
static int64_t s_stat(it_broker_t *broker, const char *topic, const char *channel,
                      const char *field)
{
    char *stats = NULL;
    IT_ASSERT_INT(s_http(broker, "GET", "/stats?format=json", "ops", NULL, &stats), ==, 200);
    const char *found = it_json_find(it_json_get(stats, "topics"), "topic_name", topic);
    if (found && channel)
        found = it_json_find(it_json_get(found, "channels"), "channel_name", channel);
    int64_t value = -1;
    if (found)
        it_json_int(it_json_get(found, field), &value);
    free(stats);
    return value;
}

// ---- ZeroMQ -------------------------------------------------------------------

static void s_raw_auth(it_raw_t *raw, uint64_t seq, const char *secret)
{
    Nsq__Auth auth = NSQ__AUTH__INIT;
    auth.secret = nsq_wire_bytes(secret);
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_AUTH;
    command.auth = &auth;
    it_raw_send(raw, &command, seq);
}

static void s_raw_pub(it_raw_t *raw, uint64_t seq, const char *topic, const char *body)
{
    ProtobufCBinaryData bodies[1] = {nsq_wire_bytes(body)};
    Nsq__Pub pub = NSQ__PUB__INIT;
    pub.topic = nsq_wire_bytes(topic);
    pub.n_bodies = 1;
    pub.bodies = bodies;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_PUB;
    command.pub = &pub;
    it_raw_send(raw, &command, seq);
}

// The next answer to seq must be a Response (returned; caller frees).
static Nsq__Frame *s_expect_ok(it_raw_t *raw, uint64_t seq)
{
    Nsq__Frame *frame = it_raw_next(raw, 10000);
    IT_ASSERT(frame, "no answer to seq %llu", (unsigned long long) seq);
    IT_ASSERT(frame->frame_case == NSQ__FRAME__FRAME_RESPONSE, "seq %llu: %s (%s)",
              (unsigned long long) seq,
              frame->frame_case == NSQ__FRAME__FRAME_ERROR ? frame->error->code : "?",
              frame->frame_case == NSQ__FRAME__FRAME_ERROR ? frame->error->text : "");
    IT_ASSERT_INT(frame->response->seq, ==, seq);
    return frame;
}

// The next answer to seq must be the error code; returns its fatal flag.
static bool s_expect_error(it_raw_t *raw, uint64_t seq, const char *code)
{
    Nsq__Frame *frame = it_raw_next(raw, 10000);
    IT_ASSERT(frame, "no answer to seq %llu", (unsigned long long) seq);
    IT_ASSERT(frame->frame_case == NSQ__FRAME__FRAME_ERROR, "seq %llu: answered OK, want %s",
              (unsigned long long) seq, code);
    IT_ASSERT_STR(frame->error->code, code);
    IT_ASSERT_INT(frame->error->seq, ==, seq);
    bool fatal = frame->error->fatal;
    nsq__frame__free_unpacked(frame, NULL);
    return fatal;
}

// ---- cases ---------------------------------------------------------------------------

// HTTP: publish needs publish on the topic, stats any identity, admin
// endpoints admin; no secret or an unknown one is 401; /ping stays open.
static void s_http_permissions(void)
{
    it_authd_t authd = it_authd_start(s_file);
    it_broker_t *broker = s_broker_start(&authd);
    S_EXPECT(broker, "POST", "/pub?topic=a", NULL, "m", 401, "AUTH_FAILED");
    S_EXPECT(broker, "POST", "/pub?topic=a", "wrong", "m", 401, "AUTH_FAILED");
    S_EXPECT(broker, "POST", "/pub?topic=a", "pub-a", "m1", 200, NULL);
    S_EXPECT(broker, "POST", "/pub?topic=b", "pub-a", "m2", 403, "UNAUTHORIZED");
    S_EXPECT(broker, "POST", "/mpub?topic=b", "pub-a", "m3\nm4", 403, "UNAUTHORIZED");
    S_EXPECT(broker, "POST", "/pub?topic=a", "sub-a", "m5", 403, "UNAUTHORIZED");
    IT_ASSERT_INT(s_stat(broker, "a", NULL, "message_count"), ==, 1);
    IT_ASSERT_INT(s_stat(broker, "b", NULL, "message_count"), ==, -1);  // never created
    // stats and metrics: any identity
    S_EXPECT(broker, "GET", "/stats", NULL, NULL, 401, "AUTH_FAILED");
    S_EXPECT(broker, "GET", "/metrics", "wrong", NULL, 401, "AUTH_FAILED");
    S_EXPECT(broker, "GET", "/stats?format=json", "sub-a", NULL, 200, NULL);
    S_EXPECT(broker, "GET", "/metrics", "pub-a", NULL, 200, NULL);
    // administration: admin
    S_EXPECT(broker, "POST", "/topic/create?topic=c", NULL, NULL, 401, "AUTH_FAILED");
    S_EXPECT(broker, "POST", "/topic/create?topic=c", "pub-a", NULL, 403, "UNAUTHORIZED");
    S_EXPECT(broker, "POST", "/channel/create?topic=a&channel=x", "sub-a", NULL, 403,
             "UNAUTHORIZED");
    S_EXPECT(broker, "POST", "/topic/create?topic=c", "ops", NULL, 200, NULL);
    S_EXPECT(broker, "POST", "/channel/create?topic=c&channel=x", "ops", NULL, 200, NULL);
    S_EXPECT(broker, "POST", "/topic/pause?topic=a", "pub-a", NULL, 403, "UNAUTHORIZED");
    S_EXPECT(broker, "POST", "/topic/delete?topic=a", "pub-a", NULL, 403, "UNAUTHORIZED");
    S_EXPECT(broker, "POST", "/topic/empty?topic=a", "ops", NULL, 200, NULL);
    // probes stay open, and so does /info
    S_EXPECT(broker, "GET", "/ping", NULL, NULL, 200, NULL);
    S_EXPECT(broker, "GET", "/info", NULL, NULL, 200, NULL);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

// ZeroMQ: AUTH then PUB on a is allowed, on b E_UNAUTHORIZED; PUB without
// AUTH is E_AUTH_FIRST; an unknown secret is E_AUTH_FAILED and ends the
// session. The client API does the same with nsq_producer_set_auth_secret.
static void s_zmq_publish(void)
{
    it_authd_t authd = it_authd_start(s_file);
    it_broker_t *broker = s_broker_start(&authd);
    it_raw_t *raw = it_raw_new(broker);
    s_raw_pub(raw, 1, "a", "before-auth");
    IT_ASSERT(!s_expect_error(raw, 1, "E_AUTH_FIRST"), "E_AUTH_FIRST is not fatal");
    s_raw_auth(raw, 2, "pub-a");
    Nsq__Frame *frame = s_expect_ok(raw, 2);
    IT_ASSERT(frame->response->auth, "the AUTH answer has no AuthReply");
    IT_ASSERT_STR(frame->response->auth->identity, "producer-a");
    IT_ASSERT_INT(frame->response->auth->permission_count, ==, 1);
    nsq__frame__free_unpacked(frame, NULL);
    s_raw_pub(raw, 3, "a", "allowed");
    nsq__frame__free_unpacked(s_expect_ok(raw, 3), NULL);
    s_raw_pub(raw, 4, "b", "refused");
    IT_ASSERT(!s_expect_error(raw, 4, "E_UNAUTHORIZED"), "E_UNAUTHORIZED is not fatal");
    s_raw_pub(raw, 5, "a", "still-allowed");  // the session stays
    nsq__frame__free_unpacked(s_expect_ok(raw, 5), NULL);
    it_raw_destroy(&raw);

    raw = it_raw_new(broker);
    s_raw_auth(raw, 1, "wrong");
    IT_ASSERT(s_expect_error(raw, 1, "E_AUTH_FAILED"), "E_AUTH_FAILED is fatal");
    it_raw_destroy(&raw);

    nsq_producer_t *producer = nsq_producer_new(it_broker_zmq(broker));
    IT_ASSERT(nsq_producer_publish(producer, "a", "x", 1) == -1, "published without a secret");
    IT_ASSERT_STR(nsq_producer_error(producer), "E_AUTH_FIRST");
    nsq_producer_destroy(&producer);
    producer = nsq_producer_new(it_broker_zmq(broker));
    nsq_producer_set_auth_secret(producer, "wrong");
    IT_ASSERT(nsq_producer_publish(producer, "a", "x", 1) == -1, "published with a wrong secret");
    IT_ASSERT_STR(nsq_producer_error(producer), "E_AUTH_FAILED");
    nsq_producer_destroy(&producer);
    producer = nsq_producer_new(it_broker_zmq(broker));
    nsq_producer_set_auth_secret(producer, "pub-a");
    IT_ASSERT(nsq_producer_publish(producer, "a", "api", 3) == 0, "publish on a: %s",
              nsq_producer_error(producer));
    IT_ASSERT(nsq_producer_publish(producer, "b", "api", 3) == -1, "published on b");
    IT_ASSERT_STR(nsq_producer_error(producer), "E_UNAUTHORIZED");
    nsq_producer_destroy(&producer);
    IT_ASSERT_INT(s_stat(broker, "a", NULL, "message_count"), ==, 3);
    IT_ASSERT_INT(s_stat(broker, "b", NULL, "message_count"), ==, -1);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

// ZeroMQ: the secret in IDENTIFY; SUB is refused outside the channel
// pattern and the topic; a consumer with the secret receives messages.
static void s_zmq_subscribe(void)
{
    it_authd_t authd = it_authd_start(s_file);
    it_broker_t *broker = s_broker_start(&authd);
    it_raw_t *raw = it_raw_new(broker);
    Nsq__Identify identify = NSQ__IDENTIFY__INIT;
    identify.client_id = "it-auth";
    identify.hostname = "localhost";
    identify.user_agent = "it-auth/1";
    identify.auth_secret = nsq_wire_bytes("sub-a");
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_IDENTIFY;
    command.identify = &identify;
    it_raw_send(raw, &command, 1);
    Nsq__Frame *frame = s_expect_ok(raw, 1);
    IT_ASSERT(frame->response->identify && frame->response->identify->auth_required,
              "IdentifyReply says no auth_required");
    IT_ASSERT(frame->response->identify->auth, "IdentifyReply carries no AuthReply");
    IT_ASSERT_STR(frame->response->identify->auth->identity, "consumer-a");
    IT_ASSERT_STR(frame->response->identify->auth->identity_url, "https://id/c");
    nsq__frame__free_unpacked(frame, NULL);
    it_raw_sub(raw, 2, "a", "marketing");
    IT_ASSERT(!s_expect_error(raw, 2, "E_UNAUTHORIZED"), "not fatal");
    it_raw_sub(raw, 3, "b", "billing");
    IT_ASSERT(!s_expect_error(raw, 3, "E_UNAUTHORIZED"), "not fatal");
    it_raw_sub(raw, 4, "a", "billing");
    nsq__frame__free_unpacked(s_expect_ok(raw, 4), NULL);
    it_raw_destroy(&raw);
    S_EXPECT(broker, "GET", "/stats", "ops", NULL, 200, NULL);

    // Identified without a secret: SUB wants AUTH first.
    raw = it_raw_new(broker);
    it_raw_identify(raw, 1);
    nsq__frame__free_unpacked(s_expect_ok(raw, 1), NULL);
    it_raw_sub(raw, 2, "a", "billing");
    IT_ASSERT(!s_expect_error(raw, 2, "E_AUTH_FIRST"), "not fatal");
    it_raw_destroy(&raw);

    // The client API: the consumer's secret goes in its IDENTIFY.
    nsq_consumer_t *consumer = nsq_consumer_new("a", "billing");
    nsq_consumer_set_auth_secret(consumer, "sub-a");
    IT_ASSERT(nsq_consumer_connect(consumer, it_broker_zmq(broker)) == 0, "connect");
    S_EXPECT(broker, "POST", "/pub?topic=a", "pub-a", "for-billing", 200, NULL);
    IT_ASSERT_EVENTUALLY((nsq_consumer_poll(consumer, 10), nsq_consumer_received(consumer) == 1),
                         10000, "the authorized consumer got nothing");
    nsq_consumer_destroy(&consumer);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

// A secret is asked again after its ttl: revoked in the file, it stops
// working over HTTP and ZeroMQ within a few seconds.
static void s_ttl_expiry(void)
{
    it_authd_t authd = it_authd_start(s_file);
    it_broker_t *broker = s_broker_start(&authd);
    S_EXPECT(broker, "POST", "/pub?topic=a", "short", "m", 200, NULL);
    it_raw_t *raw = it_raw_new(broker);
    s_raw_auth(raw, 1, "short");
    nsq__frame__free_unpacked(s_expect_ok(raw, 1), NULL);
    s_raw_pub(raw, 2, "a", "z");
    nsq__frame__free_unpacked(s_expect_ok(raw, 2), NULL);

    // Revoke "short" (the file loses it; the auth server reads it again).
    char revoked[2048];
    snprintf(revoked, sizeof revoked, "%s", s_file);
    char *entry = strstr(revoked, ",\n \"short\"");
    IT_ASSERT(entry, "the file has no short entry");
    snprintf(entry, sizeof revoked - (size_t) (entry - revoked), "\n}}\n");
    it_write_file(authd.path, revoked);
    IT_ASSERT_EVENTUALLY(s_http(broker, "POST", "/pub?topic=a", "short", "m", NULL) == 401, 10000,
                         "the revoked secret still publishes");
    s_raw_pub(raw, 3, "a", "after");
    IT_ASSERT(s_expect_error(raw, 3, "E_AUTH_FAILED"), "an expired, revoked secret is fatal");
    it_raw_destroy(&raw);
    S_EXPECT(broker, "POST", "/pub?topic=a", "pub-a", "m", 200, NULL);  // the others still work
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

// An auth server that does not answer: 503 and E_AUTH_UNAVAILABLE, logged,
// never a success, for new secrets and for one whose ttl ran out.
static void s_auth_server_down(void)
{
    it_authd_t authd = it_authd_start(s_file);
    it_broker_t *broker = s_broker_start(&authd);
    S_EXPECT(broker, "POST", "/pub?topic=a", "short", "m", 200, NULL);
    IT_ASSERT_INT(it_child_stop(&authd.child, SIGTERM, 5000), ==, 0);
    S_EXPECT(broker, "POST", "/pub?topic=a", "pub-a", "m", 503, "AUTH_UNAVAILABLE");
    S_EXPECT(broker, "GET", "/stats", "ops", NULL, 503, "AUTH_UNAVAILABLE");
    S_EXPECT(broker, "POST", "/topic/delete?topic=a", "ops", NULL, 503, "AUTH_UNAVAILABLE");
    IT_ASSERT_EVENTUALLY(s_http(broker, "POST", "/pub?topic=a", "short", "m", NULL) == 503, 10000,
                         "an expired secret still publishes with the auth server down");
    it_raw_t *raw = it_raw_new(broker);
    s_raw_auth(raw, 1, "pub-a");
    s_expect_error(raw, 1, "E_AUTH_UNAVAILABLE");
    s_raw_pub(raw, 2, "a", "z");
    s_expect_error(raw, 2, "E_AUTH_FIRST");
    it_raw_destroy(&raw);
    char line[512];
    IT_ASSERT(it_broker_wait_log(broker, "no auth server answered", line, sizeof line, 5000),
              "the outage is not logged");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
}

// Secrets stay out of the broker's log and /stats, and out of a worker's
// command line.
static void s_secrets_hidden(void)
{
    it_authd_t authd = it_authd_start(s_file);
    it_broker_t *broker = s_broker_start(&authd);
    S_EXPECT(broker, "POST", "/pub?topic=a", "pub-a", "m", 200, NULL);
    S_EXPECT(broker, "POST", "/pub?topic=a", "not-a-known-secret", "m", 401, "AUTH_FAILED");
    const char *flags[] = {"--auth-secret=sub-a", NULL};
    it_child_t *worker = it_worker_start(broker, "a", "billing", flags);
    char http[64];
    it_worker_wait_ready(worker, http, sizeof http);
    IT_ASSERT_EVENTUALLY(s_stat(broker, "a", "billing", "client_count") == 1, 10000,
                         "the worker did not subscribe with its secret");
    char path[64], cmdline[4096] = "";
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int) it_child_pid(worker));
    FILE *file = fopen(path, "r");
    IT_ASSERT(file, "cannot read %s", path);
    size_t size = fread(cmdline, 1, sizeof cmdline - 1, file);
    fclose(file);
    for (size_t i = 0; i < size; i++)
        cmdline[i] = cmdline[i] ? cmdline[i] : ' ';
    IT_ASSERT(strstr(cmdline, "--auth-secret=") && !strstr(cmdline, "sub-a"),
              "the worker's command line shows its secret: %s", cmdline);
    char *stats = NULL;
    IT_ASSERT_INT(
        s_http(broker, "GET", "/stats?format=json&include_clients=true", "ops", NULL, &stats), ==,
        200);
    IT_ASSERT(!strstr(stats, "sub-a") && !strstr(stats, "pub-a"), "/stats shows a secret");
    free(stats);
    const char *worker_log = it_child_log_path(worker);
    it_child_stop(&worker, SIGTERM, 10000);
    IT_ASSERT_INT(it_count_lines(worker_log, "sub-a"), ==, 0);
    char line[512];
    IT_ASSERT(!it_broker_wait_log(broker, "pub-a", line, sizeof line, 100)
                  && !it_broker_wait_log(broker, "sub-a", line, sizeof line, 100)
                  && !it_broker_wait_log(broker, "not-a-known-secret", line, sizeof line, 100),
              "the broker's log shows a secret: %s", line);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

// Runs nsq-ctl with args (NULL-terminated); returns its exit status.
static int s_ctl(const char *const *args)
{
    const char *argv[16] = {getenv("NSQ_CTL")};
    IT_ASSERT(argv[0], "NSQ_CTL is not set");
    size_t count = 1;
    for (size_t i = 0; args[i] && count < 15; i++)
        argv[count++] = args[i];
    it_child_t *child = it_child_start("nsq-ctl", argv);
    char line[1024];
    while (it_child_read_line(child, line, sizeof line, 20000) == 1)
        ;
    return it_child_stop(&child, 0, 10000);
}

#define S_CTL(...) s_ctl((const char *const[]){__VA_ARGS__, NULL})

// The depth lookupd's console shows for topic (-1 if none): its /stats
// polls reach the broker only with lookupd's --auth-secret.
static int64_t s_console_depth(it_broker_t *lookupd, const char *topic)
{
    char path[128], *reply = NULL;
    snprintf(path, sizeof path, "/api/topics?topic=%s", topic);
    int status = it_http(lookupd, "GET", path, NULL, 0, &reply);
    const char *first = status == 200 ? it_json_get(reply, "topics") : NULL;
    int64_t depth = -1;
    if (first && first[0] == '[' && it_json_get(first + 1, "depth"))
        it_json_int(it_json_get(first + 1, "depth"), &depth);
    free(reply);
    return depth;
}

// The console (lookupd --auth-secret) and nsq-ctl (--auth-secret) keep
// working against a broker with auth; without a secret nsq-ctl is refused.
static void s_ctl_and_console(void)
{
    it_authd_t authd = it_authd_start(s_file);
    it_broker_t *lookupd =
        it_lookupd_start((const char *[]){"--stats-interval=100ms", "--auth-secret=ops", NULL});
    char auth_flag[128], lookupd_flag[128], lookupd_http[128], broker_http[128];
    snprintf(auth_flag, sizeof auth_flag, "--auth-http-address=%s", authd.address);
    snprintf(lookupd_flag, sizeof lookupd_flag, "--lookupd-address=%s", it_broker_zmq(lookupd));
    snprintf(lookupd_http, sizeof lookupd_http, "--lookupd-http-address=%s",
             it_broker_http(lookupd));
    it_broker_t *broker =
        it_broker_start((const char *[]){auth_flag, "--broadcast-address=127.0.0.1", lookupd_flag,
                                         "--lookupd-heartbeat-interval=200ms", NULL});
    snprintf(broker_http, sizeof broker_http, "--broker-http-address=%s", it_broker_http(broker));
    S_EXPECT(broker, "POST", "/pub?topic=a", "pub-a", "m1", 200, NULL);
    S_EXPECT(broker, "POST", "/pub?topic=a", "pub-a", "m2", 200, NULL);
    IT_ASSERT_EVENTUALLY(s_console_depth(lookupd, "a") == 2, 10000,
                         "the console does not see the broker's topic");
    IT_ASSERT_INT(S_CTL(lookupd_http, "pause", "a"), ==, 0);
    IT_ASSERT_INT(s_stat(broker, "a", NULL, "paused"), ==, 1);
    IT_ASSERT(S_CTL(broker_http, "unpause", "a") != 0, "nsq-ctl without a secret unpaused");
    IT_ASSERT(S_CTL(broker_http, "--auth-secret=pub-a", "unpause", "a") != 0,
              "nsq-ctl unpaused with a secret that is not admin");
    IT_ASSERT_INT(s_stat(broker, "a", NULL, "paused"), ==, 1);
    IT_ASSERT_INT(S_CTL(broker_http, "--auth-secret=ops", "unpause", "a"), ==, 0);
    IT_ASSERT_INT(s_stat(broker, "a", NULL, "paused"), ==, 0);
    IT_ASSERT_INT(S_CTL(broker_http, "--auth-secret=ops", "stats"), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
    it_child_stop(&authd.child, SIGTERM, 5000);
}

int main(int argc, char **argv)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    static const it_case_t cases[] = {
        {"http_permissions", s_http_permissions}, {"zmq_publish", s_zmq_publish},
        {"zmq_subscribe", s_zmq_subscribe},       {"ttl_expiry", s_ttl_expiry},
        {"auth_server_down", s_auth_server_down}, {"secrets_hidden", s_secrets_hidden},
        {"ctl_and_console", s_ctl_and_console},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
