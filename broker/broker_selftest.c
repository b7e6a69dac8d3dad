/*  broker_selftest - broker_test(): the broker actor in-process, driven over
    its real ZeroMQ socket by a raw DEALER
    SPDX-License-Identifier: MIT
*/
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "broker_sync.h"
#include "nsq_curve.h"
#include "nsq_wire.h"

static size_t s_discard(char *data, size_t size, size_t count, void *arg)
{
    (void) data;
    (void) arg;
    return size * count;
}

// Sends command with seq; returns 0 or -1.
static int s_send(zsock_t *dealer, Nsq__Command *command, uint64_t seq)
{
    command->seq = seq;
    return nsq_wire_send_command(zsock_resolve(dealer), command, 0);
}

// Receives one frame within a second. Caller frees it; NULL on timeout.
static Nsq__Frame *s_receive(zsock_t *dealer)
{
    zpoller_t *poller = zpoller_new(dealer, NULL);
    void *ready = zpoller_wait(poller, 1000);
    zpoller_destroy(&poller);
    if (!ready)
        return NULL;
    zframe_t *frame = zframe_recv(dealer);
    Nsq__Frame *decoded =
        frame ? nsq_wire_frame_unpack(zframe_data(frame), zframe_size(frame)) : NULL;
    zframe_destroy(&frame);
    return decoded;
}

// True if the next frame is a Response with seq and text.
static bool s_expect_response(zsock_t *dealer, uint64_t seq, const char *text)
{
    Nsq__Frame *frame = s_receive(dealer);
    bool ok = frame && frame->frame_case == NSQ__FRAME__FRAME_RESPONSE
              && frame->response->seq == seq && (!text || streq(frame->response->text, text));
    nsq__frame__free_unpacked(frame, NULL);
    return ok;
}

// True if the next frame is an Error with code.
static bool s_expect_error(zsock_t *dealer, const char *code)
{
    Nsq__Frame *frame = s_receive(dealer);
    bool ok =
        frame && frame->frame_case == NSQ__FRAME__FRAME_ERROR && streq(frame->error->code, code);
    nsq__frame__free_unpacked(frame, NULL);
    return ok;
}

static int s_subscribe(zsock_t *consumer)
{
    Nsq__Command command = NSQ__COMMAND__INIT;
    Nsq__Sub sub = NSQ__SUB__INIT;
    sub.topic = nsq_wire_bytes("orders");
    sub.channel = nsq_wire_bytes("billing");
    command.cmd_case = NSQ__COMMAND__CMD_SUB;
    command.sub = &sub;
    if (s_send(consumer, &command, 1) || !s_expect_error(consumer, "E_INVALID"))
        return -1;  // SUB before IDENTIFY is refused
    Nsq__Identify identify = NSQ__IDENTIFY__INIT;
    identify.client_id = "selftest";
    Nsq__Command hello = NSQ__COMMAND__INIT;
    hello.cmd_case = NSQ__COMMAND__CMD_IDENTIFY;
    hello.identify = &identify;
    if (s_send(consumer, &hello, 2) || !s_expect_response(consumer, 2, NULL))
        return -1;
    if (s_send(consumer, &command, 3) || !s_expect_response(consumer, 3, "OK"))
        return -1;
    Nsq__Rdy rdy = NSQ__RDY__INIT;
    rdy.count = 100000;  // above max-rdy-count
    Nsq__Command credit = NSQ__COMMAND__INIT;
    credit.cmd_case = NSQ__COMMAND__CMD_RDY;
    credit.rdy = &rdy;
    if (s_send(consumer, &credit, 4) || !s_expect_error(consumer, "E_INVALID"))
        return -1;
    rdy.count = 10;
    return s_send(consumer, &credit, 5);
}

static int s_publish(zsock_t *producer)
{
    ProtobufCBinaryData bodies[2] = {{5, (uint8_t *) "hello"}, {5, (uint8_t *) "world"}};
    Nsq__Pub pub = NSQ__PUB__INIT;
    pub.topic = nsq_wire_bytes("orders");
    pub.n_bodies = 2;
    pub.bodies = bodies;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_PUB;
    command.pub = &pub;
    if (s_send(producer, &command, 9) || !s_expect_response(producer, 9, "OK"))
        return -1;
    pub.topic = nsq_wire_bytes("bad/name");
    return s_send(producer, &command, 10) || !s_expect_error(producer, "E_BAD_TOPIC") ? -1 : 0;
}

// Receives the two messages, FINs them (and one unknown id).
static int s_consume(zsock_t *consumer)
{
    Nsq__Frame *frame = s_receive(consumer);
    int rc = -1;
    if (frame && frame->frame_case == NSQ__FRAME__FRAME_MESSAGES && frame->messages->n_messages == 2
        && frame->messages->messages[0]->attempts == 1
        && memcmp(frame->messages->messages[1]->body.data, "world", 5) == 0) {
        uint64_t ids[3] = {frame->messages->messages[0]->id, frame->messages->messages[1]->id, 42};
        Nsq__Fin fin = NSQ__FIN__INIT;
        fin.n_ids = 3;
        fin.ids = ids;
        Nsq__Command command = NSQ__COMMAND__INIT;
        command.cmd_case = NSQ__COMMAND__CMD_FIN;
        command.fin = &fin;
        if (s_send(consumer, &command, 6) == 0 && s_expect_error(consumer, "E_FIN_FAILED"))
            rc = 0;
    }
    nsq__frame__free_unpacked(frame, NULL);
    return rc;
}

// Starts a broker actor on 127.0.0.1 with config; connects two dealers to
// its ZeroMQ port and puts its HTTP port in *http (when not NULL). Returns
// the actor, NULL if it did not get ready.
static zactor_t *s_start(broker_config_t *config, zsock_t **dealer, zsock_t **second,
                         uint16_t *http)
{
    strcpy(config->http_address, "127.0.0.1:0");
    strcpy(config->zmq_address, "127.0.0.1:0");
    zactor_t *broker = zactor_new(broker_actor, config);
    char *status = NULL, *http_port = NULL, *zmq_port = NULL;
    zstr_recvx(broker, &status, &http_port, &zmq_port, NULL);
    bool ready = status && streq(status, "READY");
    if (ready) {
        *dealer = zsock_new_dealer(NULL);
        zsock_connect(*dealer, "tcp://127.0.0.1:%s", zmq_port);
        *second = zsock_new_dealer(NULL);
        zsock_connect(*second, "tcp://127.0.0.1:%s", zmq_port);
        if (http)
            *http = (uint16_t) atoi(http_port);
    } else {
        zactor_destroy(&broker);
    }
    zstr_free(&status);
    zstr_free(&http_port);
    zstr_free(&zmq_port);
    return broker;
}

// Publishes count bodies named prefix-1..count to topic over ZeroMQ.
// Returns 0 or -1.
static int s_publish_named(zsock_t *producer, const char *topic, const char *prefix, int count)
{
    char text[3][16];
    ProtobufCBinaryData bodies[3];
    for (int i = 0; i < count && i < 3; i++) {
        bodies[i].len = (size_t) snprintf(text[i], sizeof text[i], "%s-%d", prefix, i + 1);
        bodies[i].data = (uint8_t *) text[i];
    }
    Nsq__Pub pub = NSQ__PUB__INIT;
    pub.topic = nsq_wire_bytes(topic);
    pub.n_bodies = (size_t) (count < 3 ? count : 3);
    pub.bodies = bodies;
    Nsq__Command command = NSQ__COMMAND__INIT;
    command.cmd_case = NSQ__COMMAND__CMD_PUB;
    command.pub = &pub;
    return s_send(producer, &command, 20) || !s_expect_response(producer, 20, "OK") ? -1 : 0;
}

// Identifies, subscribes to topic/c and gives credit 10. Returns 0 or -1.
static int s_consumer_start(zsock_t *consumer, const char *topic)
{
    Nsq__Identify identify = NSQ__IDENTIFY__INIT;
    Nsq__Command hello = NSQ__COMMAND__INIT;
    hello.cmd_case = NSQ__COMMAND__CMD_IDENTIFY;
    hello.identify = &identify;
    Nsq__Sub sub = NSQ__SUB__INIT;
    sub.topic = nsq_wire_bytes(topic);
    sub.channel = nsq_wire_bytes("c");
    Nsq__Command subscribe = NSQ__COMMAND__INIT;
    subscribe.cmd_case = NSQ__COMMAND__CMD_SUB;
    subscribe.sub = &sub;
    Nsq__Rdy rdy = NSQ__RDY__INIT;
    rdy.count = 10;
    Nsq__Command credit = NSQ__COMMAND__INIT;
    credit.cmd_case = NSQ__COMMAND__CMD_RDY;
    credit.rdy = &rdy;
    if (s_send(consumer, &hello, 1) || !s_expect_response(consumer, 1, NULL)
        || s_send(consumer, &subscribe, 2) || !s_expect_response(consumer, 2, "OK")
        || s_send(consumer, &credit, 3))
        return -1;
    return 0;
}

// Subscribes to clock/c and receives six messages; puts the highest id of
// the "old-" bodies in *old_max and the lowest of the "new-" ones in
// *new_min. Returns how many distinct ids arrived.
static int s_receive_six(zsock_t *consumer, uint64_t *old_max, uint64_t *new_min)
{
    if (s_consumer_start(consumer, "clock") != 0)
        return -1;
    uint64_t ids[6];
    int count = 0;
    *old_max = 0;
    *new_min = UINT64_MAX;
    Nsq__Frame *frame;
    while (count < 6 && (frame = s_receive(consumer))) {
        for (size_t i = 0; frame->frame_case == NSQ__FRAME__FRAME_MESSAGES
                           && i < frame->messages->n_messages && count < 6;
             i++) {
            Nsq__Message *message = frame->messages->messages[i];
            bool old = message->body.len > 4 && memcmp(message->body.data, "old-", 4) == 0;
            if (old && message->id > *old_max)
                *old_max = message->id;
            if (!old && message->id < *new_min)
                *new_min = message->id;
            bool seen = false;
            for (int j = 0; j < count; j++)
                seen = seen || ids[j] == message->id;
            if (!seen)
                ids[count++] = message->id;
        }
        nsq__frame__free_unpacked(frame, NULL);
    }
    return count;
}

// A restart with the clock an hour behind the previous run: the messages
// the first run stored keep their (later) ids, and every id the second
// run hands out is above them, so none collides and all six arrive.
static int s_test_clock_back(void)
{
    char dir[] = "/tmp/broker-test-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    broker_config_t config;
    broker_config_for_test(&config, dir, 0, 0);
    config.test_clock_offset_ms = 3600000;
    zsock_t *producer = NULL, *consumer = NULL;
    zactor_t *broker = s_start(&config, &producer, &consumer, NULL);
    int rc = broker && s_publish_named(producer, "clock", "old", 3) == 0 ? 0 : -1;
    zsock_destroy(&producer);
    zsock_destroy(&consumer);
    zactor_destroy(&broker);  // stores the three messages
    config.test_clock_offset_ms = 0;
    broker = rc == 0 ? s_start(&config, &producer, &consumer, NULL) : NULL;
    uint64_t old_max = 0, new_min = 0;
    if (!broker || s_publish_named(producer, "clock", "new", 3) != 0
        || s_receive_six(consumer, &old_max, &new_min) != 6)
        rc = -1;
    if (rc == 0 && new_min <= old_max) {
        fprintf(stderr, "broker_test: new id %016" PRIx64 " is not above old id %016" PRIx64 "\n",
                new_min, old_max);
        rc = -1;
    }
    zsock_destroy(&consumer);
    zsock_destroy(&producer);
    zactor_destroy(&broker);
    char command[64];
    snprintf(command, sizeof command, "rm -rf %s", dir);
    if (system(command) != 0)
        rc = -1;
    return rc;
}

// Posts body to /pub?topic=topic on port; returns the HTTP status (0 if
// the request failed).
static long s_http_pub(uint16_t port, const char *topic, const char *body)
{
    CURL *curl = curl_easy_init();
    if (!curl)
        return 0;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/pub?topic=%s", port, topic);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_discard);
    long status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(curl);
    return status;
}

// True if the consumer's next frames hold exactly count messages whose
// bodies start with prefix (any order).
static bool s_receive_prefixed(zsock_t *consumer, const char *prefix, size_t count)
{
    size_t seen = 0;
    Nsq__Frame *frame;
    while (seen < count && (frame = s_receive(consumer))) {
        for (size_t i = 0;
             frame->frame_case == NSQ__FRAME__FRAME_MESSAGES && i < frame->messages->n_messages;
             i++) {
            ProtobufCBinaryData body = frame->messages->messages[i]->body;
            if (body.len >= strlen(prefix) && memcmp(body.data, prefix, strlen(prefix)) == 0)
                seen++;
            else
                seen = count + 1;  // another broker's message: fails below
        }
        nsq__frame__free_unpacked(frame, NULL);
    }
    return seen == count;
}

// Two brokers in one process, each with its own ports and data path: each
// takes publishes over HTTP and ZeroMQ and delivers only its own, and one
// stopping leaves the other serving (nothing is shared between them).
static int s_test_two_brokers(void)
{
    char dirs[2][32] = {"/tmp/broker-two-XXXXXX", "/tmp/broker-two-XXXXXX"};
    zactor_t *brokers[2] = {NULL, NULL};
    zsock_t *producers[2] = {NULL, NULL}, *consumers[2] = {NULL, NULL};
    uint16_t http[2] = {0, 0};
    int rc = -1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (int i = 0; i < 2; i++) {
        if (!mkdtemp(dirs[i]))
            goto done;
        broker_config_t config;
        broker_config_for_test(&config, dirs[i], 0, 0);
        config.drain_timeout_ms = 0;  // stop at once: what is in flight goes to disk
        brokers[i] = s_start(&config, &producers[i], &consumers[i], &http[i]);
        if (!brokers[i])
            goto done;
    }
    const char *names[2] = {"first", "second"};
    for (int i = 0; i < 2; i++)
        if (s_http_pub(http[i], "two", names[i]) != 200
            || s_publish_named(producers[i], "two", names[i], 2) != 0
            || s_consumer_start(consumers[i], "two") != 0
            || !s_receive_prefixed(consumers[i], names[i], 3))
            goto done;
    zsock_destroy(&producers[0]);
    zsock_destroy(&consumers[0]);
    zactor_destroy(&brokers[0]);
    if (s_http_pub(http[1], "two", "second-after") != 200
        || !s_receive_prefixed(consumers[1], "second-after", 1))
        goto done;
    rc = 0;
done:
    for (int i = 0; i < 2; i++) {
        zsock_destroy(&producers[i]);
        zsock_destroy(&consumers[i]);
        zactor_destroy(&brokers[i]);
        char command[64];
        snprintf(command, sizeof command, "rm -rf %s", dirs[i]);
        if (strchr(dirs[i], 'X') == NULL && system(command) != 0)
            rc = -1;
    }
    curl_global_cleanup();
    return rc;
}

// A DEALER to the broker's ZeroMQ port as a CURVE client with keys.
static zsock_t *s_curve_dealer(const nsq_curve_client_t *keys, const char *port)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    if (dealer) {
        zsock_set_linger(dealer, 0);
        nsq_curve_client_apply(keys, dealer);
        zsock_connect(dealer, "tcp://127.0.0.1:%s", port);
    }
    return dealer;
}

// Two CURVE brokers in one process, each with its own allow-list: each
// takes a publish from the client it allows and refuses the other's.
static int s_test_two_brokers_curve(void)
{
    char dir[] = "/tmp/broker-two-curve-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    char path[256], secret[264], error[512] = "";
    zactor_t *brokers[2] = {NULL, NULL};
    char *ports[2] = {NULL, NULL};
    nsq_curve_client_t clients[2];
    int rc = -1;
    snprintf(path, sizeof path, "%s/server", dir);
    if (nsq_curve_keys_write(path, error, sizeof error))
        goto done;
    snprintf(secret, sizeof secret, "%s_secret", path);
    for (int i = 0; i < 2; i++) {
        // client i is on broker i's list alone
        char allow[272], client[280], client_secret[288];
        snprintf(allow, sizeof allow, "%s/allow-%d", dir, i);
        snprintf(client, sizeof client, "%s/client", allow);
        snprintf(client_secret, sizeof client_secret, "%s_secret", client);
        if (mkdir(allow, 0700) || nsq_curve_keys_write(client, error, sizeof error)
            || nsq_curve_client_load(&clients[i], client_secret, path, error, sizeof error))
            goto done;
        unlink(client_secret);  // the allow directory holds public certificates
        broker_config_t config;
        snprintf(path + strlen(dir), sizeof path - strlen(dir), "/data-%d", i);
        if (mkdir(path, 0700))
            goto done;
        broker_config_for_test(&config, path, 0, 0);
        snprintf(path, sizeof path, "%s/server", dir);
        config.drain_timeout_ms = 0;
        strcpy(config.http_address, "127.0.0.1:0");
        strcpy(config.zmq_address, "127.0.0.1:0");
        snprintf(config.zmq_curve_secret_key_file, sizeof config.zmq_curve_secret_key_file, "%s",
                 secret);
        snprintf(config.zmq_curve_allow_dir, sizeof config.zmq_curve_allow_dir, "%s", allow);
        brokers[i] = zactor_new(broker_actor, &config);
        char *status = NULL, *http = NULL;
        zstr_recvx(brokers[i], &status, &http, &ports[i], NULL);
        bool ready = status && streq(status, "READY");
        zstr_free(&status);
        zstr_free(&http);
        if (!ready)
            goto done;
    }
    rc = 0;
    for (int i = 0; i < 2 && rc == 0; i++)
        for (int client = 0; client < 2 && rc == 0; client++) {
            zsock_t *dealer = s_curve_dealer(&clients[client], ports[i]);
            bool published = dealer && s_publish_named(dealer, "curve", "x", 1) == 0;
            if (published != (client == i))
                rc = -1;
            zsock_destroy(&dealer);
        }
done:
    if (rc)
        fprintf(stderr, "broker_two_brokers_curve: failed (%s)\n", error);
    for (int i = 0; i < 2; i++) {
        zactor_destroy(&brokers[i]);
        zstr_free(&ports[i]);
    }
    char command[PATH_MAX + 16];
    snprintf(command, sizeof command, "rm -rf %s", dir);
    if (system(command) != 0)
        rc = -1;
    return rc;
}

int broker_test_two_brokers(void)
{
    return s_test_two_brokers();
}

int broker_test_two_brokers_curve(void)
{
    return s_test_two_brokers_curve();
}

int broker_test(void)
{
    broker_config_t config;
    broker_config_for_test(&config, "", 0, 0);  // memory only
    strcpy(config.http_address, "127.0.0.1:0");
    strcpy(config.zmq_address, "127.0.0.1:0");
    zactor_t *broker = zactor_new(broker_actor, &config);
    char *status = NULL, *http_port = NULL, *zmq_port = NULL;
    zstr_recvx(broker, &status, &http_port, &zmq_port, NULL);
    int rc = -1;
    zsock_t *consumer = NULL, *producer = NULL;
    if (!status || !streq(status, "READY"))
        goto done;
    consumer = zsock_new_dealer(NULL);
    producer = zsock_new_dealer(NULL);
    zsock_connect(consumer, "tcp://127.0.0.1:%s", zmq_port);
    zsock_connect(producer, "tcp://127.0.0.1:%s", zmq_port);
    // Garbage is answered with an error, not a crash.
    zstr_send(producer, "\xff\xff\xff\xff garbage");
    if (!s_expect_error(producer, "E_BAD_COMMAND"))
        goto done;
    if (s_subscribe(consumer) || s_publish(producer) || s_consume(consumer))
        goto done;
    rc = s_test_clock_back() || broker_sync_test() ? -1 : 0;
done:
    zsock_destroy(&consumer);
    zsock_destroy(&producer);
    zstr_free(&status);
    zstr_free(&http_port);
    zstr_free(&zmq_port);
    zactor_destroy(&broker);
    return rc;
}
