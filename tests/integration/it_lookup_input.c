/*  it_lookup_input - nsq-lookupd's answers to bad input, and IPv6
    SPDX-License-Identifier: MIT

    Unknown topics, wrong methods, garbage and incomplete registrations on
    the ZeroMQ port (sent as raw LookupCommand bytes through a DEALER),
    names with a NUL, registrations whose host is no host, ambiguous HTTP
    body lengths: clear errors, valid JSON afterwards, no crash. Then
    lookupd, broker and worker listening on IPv6 and dual-stack addresses.
*/
#include "harness.h"
#include "it_lookup_util.h"
#include "nsq_address.h"

#include <czmq.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Sends bytes to lookupd's ZeroMQ port and returns the LookupFrame answer.
static Nsq__LookupFrame *s_raw_call(zsock_t *dealer, const void *data, size_t size)
{
    IT_ASSERT(zsock_resolve(dealer) && zmq_send(zsock_resolve(dealer), data, size, 0) >= 0,
              "cannot send to lookupd");
    zframe_t *frame = zframe_recv(dealer);
    IT_ASSERT(frame, "lookupd did not answer within 2 s");
    Nsq__LookupFrame *answer =
        nsq__lookup_frame__unpack(NULL, zframe_size(frame), zframe_data(frame));
    zframe_destroy(&frame);
    IT_ASSERT(answer, "lookupd's answer is not a LookupFrame");
    return answer;
}

static void s_expect_error(Nsq__LookupFrame *answer, const char *code)
{
    IT_ASSERT(answer->frame_case == NSQ__LOOKUP_FRAME__FRAME_ERROR,
              "expected error %s, got frame case %d", code, answer->frame_case);
    IT_ASSERT_STR(answer->error->code, code);
    nsq__lookup_frame__free_unpacked(answer, NULL);
}

// Unknown topics, wrong methods, garbage and incomplete registrations on the
// ZeroMQ port, unresolvable lookupd addresses: clear errors, no crash.
static void s_bad_input(void)
{
    it_broker_t *lookupd = it_lookupd_start(NULL);
    it_http_expect(lookupd, "GET", "/lookup?topic=nothing", NULL, 0, 404, "TOPIC_NOT_FOUND");
    it_http_expect(lookupd, "GET", "/lookup", NULL, 0, 400, "MISSING_ARG_TOPIC");
    it_http_expect(lookupd, "GET", "/lookup?topic=bad%20name", NULL, 0, 400, "INVALID_ARG_TOPIC");
    it_http_expect(lookupd, "GET", "/topic/create?topic=t", NULL, 0, 405, "METHOD_NOT_ALLOWED");
    it_http_expect(lookupd, "POST", "/lookup?topic=t", NULL, 0, 405, "METHOD_NOT_ALLOWED");
    it_http_expect(lookupd, "POST", "/channel/create?topic=t", NULL, 0, 400, "MISSING_ARG_CHANNEL");
    it_http_expect(lookupd, "GET", "/nope", NULL, 0, 404, NULL);

    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    zsock_set_rcvtimeo(dealer, 2000);
    IT_ASSERT_INT(zsock_connect(dealer, "tcp://%s", it_broker_zmq(lookupd)), ==, 0);
    s_expect_error(s_raw_call(dealer, "\xff\xff\xff garbage", 12), "E_BAD_COMMAND");
    // An identify without a broadcast address is refused, and so is a
    // registration from a broker that never identified.
    Nsq__LookupIdentify identify = NSQ__LOOKUP_IDENTIFY__INIT;
    identify.http_port = 30151;  // announced only: nothing listens or connects there
    identify.zmq_port = 30152;
    Nsq__LookupCommand command = NSQ__LOOKUP_COMMAND__INIT;
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_IDENTIFY;
    command.identify = &identify;
    uint8_t buffer[256];
    s_expect_error(s_raw_call(dealer, buffer, nsq__lookup_command__pack(&command, buffer)),
                   "E_BAD_BODY");
    Nsq__Register reg = NSQ__REGISTER__INIT;
    reg.topic = nsq_wire_bytes("t");
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_REG;
    command.reg = &reg;
    s_expect_error(s_raw_call(dealer, buffer, nsq__lookup_command__pack(&command, buffer)),
                   "E_NOT_IDENTIFIED");
    zsock_destroy(&dealer);
    it_http_expect(lookupd, "GET", "/ping", NULL, 0, 200, NULL);
    IT_ASSERT_INT(lookup_producers(lookupd, "t"), ==, -1);

    // Lookupd addresses that do not resolve: the consumer keeps running,
    // a broker starts and says why it cannot reach it.
    nsq_consumer_t *consumer = nsq_consumer_new(LOOKUP_TOPIC, LOOKUP_CHANNEL);
    IT_ASSERT_INT(nsq_consumer_connect_lookupd(consumer, "no-port"), ==, -1);
    IT_ASSERT_INT(nsq_consumer_connect_lookupd(consumer, "no-such-host.invalid:30161"), ==, 0);
    nsq_consumer_set_lookupd_poll_interval(consumer, 50);
    nsq_consumer_poll(consumer, 300);
    IT_ASSERT_INT(nsq_consumer_connection_count(consumer), ==, 0);
    nsq_consumer_destroy(&consumer);
    const char *flags[] = {"--lookupd-address=no-such-host.invalid:30160", NULL};
    it_broker_t *broker = it_broker_start(flags);
    it_pub(broker, "t", "still works");
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    char line[512];
    const char *bad[] = {"--lookupd-address=nohostport", NULL};
    IT_ASSERT_INT(it_broker_refuses(bad, line, sizeof line), ==, 1);
    IT_ASSERT(strstr(line, "lookupd"), "unclear refusal: %s", line);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
}

// Packs command, sends it to lookupd and returns the answer (caller frees).
static Nsq__LookupFrame *s_raw_command(zsock_t *dealer, Nsq__LookupCommand *command)
{
    uint8_t buffer[1024];
    IT_ASSERT(nsq__lookup_command__get_packed_size(command) <= sizeof buffer, "command too big");
    return s_raw_call(dealer, buffer, nsq__lookup_command__pack(command, buffer));
}

static void s_expect_ok(Nsq__LookupFrame *answer, const char *what)
{
    IT_ASSERT(answer->frame_case != NSQ__LOOKUP_FRAME__FRAME_ERROR, "%s refused: %s %s", what,
              answer->error->code, answer->error->text);
    nsq__lookup_frame__free_unpacked(answer, NULL);
}

// A DEALER on lookupd's ZeroMQ port (2 s receive timeout).
static zsock_t *s_raw_dealer(it_broker_t *lookupd)
{
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    IT_ASSERT(dealer, "cannot create a DEALER");
    zsock_set_rcvtimeo(dealer, 2000);
    if (it_broker_zmq(lookupd)[0] == '[')
        zsock_set_ipv6(dealer, 1);
    IT_ASSERT_INT(zsock_connect(dealer, "tcp://%s", it_broker_zmq(lookupd)), ==, 0);
    return dealer;
}

// An identify as a broker would send it; the strings are borrowed.
static Nsq__LookupFrame *s_raw_identify(zsock_t *dealer, ProtobufCBinaryData broadcast,
                                        ProtobufCBinaryData hostname, const char *version)
{
    Nsq__LookupIdentify identify = NSQ__LOOKUP_IDENTIFY__INIT;
    identify.broadcast_address = broadcast;
    identify.hostname = hostname;
    identify.version = (char *) version;
    identify.http_port = 30151;  // announced only: nothing listens or connects there
    identify.zmq_port = 30152;
    Nsq__LookupCommand command = NSQ__LOOKUP_COMMAND__INIT;
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_IDENTIFY;
    command.identify = &identify;
    return s_raw_command(dealer, &command);
}

// A register (or unregister) of topic and channel, given as raw bytes.
static Nsq__LookupFrame *s_raw_registration(zsock_t *dealer, bool registering,
                                            ProtobufCBinaryData topic, ProtobufCBinaryData channel)
{
    Nsq__Register reg = NSQ__REGISTER__INIT;
    Nsq__Unregister unreg = NSQ__UNREGISTER__INIT;
    Nsq__LookupCommand command = NSQ__LOOKUP_COMMAND__INIT;
    if (registering) {
        reg.topic = topic, reg.channel = channel;
        command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_REG;
        command.reg = &reg;
    } else {
        unreg.topic = topic, unreg.channel = channel;
        command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_UNREG;
        command.unreg = &unreg;
    }
    return s_raw_command(dealer, &command);
}

#define S_BYTES(literal) ((ProtobufCBinaryData){sizeof(literal) - 1, (uint8_t *) (literal)})

// Names with a NUL (escaped "%00" over HTTP, inside a bytes field over
// ZeroMQ) are refused whole, never taken as the shorter name before it.
static void s_nul_in_names(void)
{
    it_broker_t *lookupd = it_lookupd_start(NULL);
    it_post_ok(lookupd, "/channel/create?topic=lk&channel=c");
    it_http_expect(lookupd, "GET", "/lookup?topic=lk%00zzz", NULL, 0, 400, "INVALID_ARG_TOPIC");
    it_http_expect(lookupd, "GET", "/channels?topic=lk%00zzz", NULL, 0, 400, "INVALID_ARG_TOPIC");
    it_http_expect(lookupd, "POST", "/topic/create?topic=qq%00x", NULL, 0, 400,
                   "INVALID_ARG_TOPIC");
    it_http_expect(lookupd, "POST", "/channel/create?topic=qq&channel=c%00!", NULL, 0, 400,
                   "INVALID_ARG_CHANNEL");
    it_http_expect(lookupd, "POST", "/topic/delete?topic=lk%00zzz", NULL, 0, 400,
                   "INVALID_ARG_TOPIC");
    it_http_expect(lookupd, "POST", "/channel/delete?topic=lk&channel=c%00zzz", NULL, 0, 400,
                   "INVALID_ARG_CHANNEL");
    it_http_expect(lookupd, "POST", "/topic/tombstone?topic=lk%00zzz&node=127.0.0.1:30151", NULL, 0,
                   400, "INVALID_ARG_TOPIC");

    zsock_t *dealer = s_raw_dealer(lookupd);
    s_expect_ok(s_raw_identify(dealer, S_BYTES("127.0.0.1"), S_BYTES("broker-1"), "1"), "identify");
    s_expect_ok(s_raw_registration(dealer, true, S_BYTES("lk"), S_BYTES("")), "register lk");
    it_http_expect(lookupd, "POST", "/topic/tombstone?topic=lk&node=127.0.0.1:30151%00x", NULL, 0,
                   404, "PRODUCER_NOT_FOUND");
    s_expect_error(s_raw_registration(dealer, true, S_BYTES("zz\0x"), S_BYTES("")), "E_BAD_TOPIC");
    s_expect_error(s_raw_registration(dealer, true, S_BYTES("zz"), S_BYTES("c\0!")),
                   "E_BAD_CHANNEL");
    s_expect_error(s_raw_registration(dealer, false, S_BYTES("lk\0zzz"), S_BYTES("")),
                   "E_BAD_TOPIC");
    Nsq__LookupChannelsQuery query = NSQ__LOOKUP_CHANNELS_QUERY__INIT;
    query.topic = S_BYTES("lk\0zzz");
    Nsq__LookupCommand command = NSQ__LOOKUP_COMMAND__INIT;
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_CHANNELS;
    command.channels = &query;
    s_expect_error(s_raw_command(dealer, &command), "E_BAD_TOPIC");
    zsock_destroy(&dealer);

    // Nothing was created, deleted or hidden under the shorter names
    char *reply = NULL;
    IT_ASSERT_INT(it_http(lookupd, "GET", "/topics", NULL, 0, &reply), ==, 200);
    IT_ASSERT(it_json_parses(reply, "doc['topics'] == ['lk']"), "/topics: %s", reply);
    free(reply);
    IT_ASSERT_INT(it_http(lookupd, "GET", "/channels?topic=lk", NULL, 0, &reply), ==, 200);
    IT_ASSERT(it_json_parses(reply, "doc['channels'] == ['c']"), "/channels: %s", reply);
    free(reply);
    IT_ASSERT_INT(lookup_producers(lookupd, "lk"), ==, 1);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
}

// A registration with bytes that are no host is refused (E_BAD_BODY), so
// /nodes and /lookup stay valid JSON for every consumer; a version that is
// not UTF-8 is kept, replaced where it is bad.
static void s_bad_registration(void)
{
    it_broker_t *lookupds[] = {it_lookupd_start(NULL), NULL};
    it_broker_t *broker = lookup_broker(lookupds);
    it_post_ok(broker, "/topic/create?topic=" LOOKUP_TOPIC);
    IT_ASSERT_EVENTUALLY(lookup_producers(lookupds[0], LOOKUP_TOPIC) == 1, 5000,
                         "the broker is not listed");
    zsock_t *dealer = s_raw_dealer(lookupds[0]);
    const ProtobufCBinaryData bad_hosts[] = {S_BYTES("\xff"), S_BYTES("10.0.0.1\0x"),
                                             S_BYTES("host name"), S_BYTES("h\"}"),
                                             S_BYTES("h\xc3\xa9")};
    for (size_t i = 0; i < sizeof bad_hosts / sizeof *bad_hosts; i++) {
        s_expect_error(s_raw_identify(dealer, bad_hosts[i], S_BYTES(""), "1"), "E_BAD_BODY");
        s_expect_error(s_raw_identify(dealer, S_BYTES("10.0.0.9"), bad_hosts[i], "1"),
                       "E_BAD_BODY");
    }
    s_expect_ok(s_raw_identify(dealer, S_BYTES("10.0.0.9"), S_BYTES("raw"), "v\xff\x01"),
                "identify with a bad version");
    s_expect_ok(s_raw_registration(dealer, true, S_BYTES(LOOKUP_TOPIC), S_BYTES("")), "register");
    char *reply = NULL;
    IT_ASSERT_INT(it_http(lookupds[0], "GET", "/nodes", NULL, 0, &reply), ==, 200);
    IT_ASSERT(it_json_parses(reply, "sorted(p['broadcast_address'] for p in doc['producers']) "
                                    "== ['10.0.0.9', '127.0.0.1'] and '\\ufffd' in "
                                    "[p['version'] for p in doc['producers']][0] + "
                                    "[p['version'] for p in doc['producers']][1]"),
              "/nodes: %.400s", reply);
    free(reply);
    IT_ASSERT_INT(it_http(lookupds[0], "GET", "/lookup?topic=" LOOKUP_TOPIC, NULL, 0, &reply), ==,
                  200);
    IT_ASSERT(it_json_parses(reply, "len(doc['producers']) == 2"), "/lookup: %.400s", reply);
    free(reply);
    zsock_destroy(&dealer);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupds[0]), ==, 0);
}

// lookupd refuses requests whose body length is ambiguous.
static void s_smuggling(void)
{
    it_broker_t *lookupd = it_lookupd_start(NULL);
    it_http_expect_smuggling_refused(it_broker_http(lookupd), "/topic/create?topic=smuggle");
    char *reply = NULL;
    IT_ASSERT_INT(it_http(lookupd, "GET", "/topics", NULL, 0, &reply), ==, 200);
    IT_ASSERT(it_json_parses(reply, "doc['topics'] == []"), "/topics: %s", reply);
    free(reply);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
}

// Listens on [::1]:0 and answers there (HTTP and ZeroMQ).
static void s_assert_serves_ipv6(it_broker_t *daemon, const char *program)
{
    IT_ASSERT(strncmp(it_broker_http(daemon), "[::1]:", 6) == 0
                  && strncmp(it_broker_zmq(daemon), "[::1]:", 6) == 0,
              "%s READY does not name [::1]: http=%s zmq=%s", program, it_broker_http(daemon),
              it_broker_zmq(daemon));
    it_http_expect(daemon, "GET", "/ping", NULL, 0, 200, NULL);
}

// Every listen address takes IPv6 in brackets: broker, lookupd (HTTP and
// ZeroMQ) and the worker's probes on [::1]:0, a broker on [::]:0 (dual
// stack: reachable over IPv4 and IPv6). READY names them in the same form.
// Clients given a bracketed address reach them: the broker registers with
// the lookupd, a worker consumes from the broker.
static void s_ipv6_listen(void)
{
    if (!nsq_address_ipv6_loopback_usable()) {
        it_note("SKIPPED: this machine has no IPv6 loopback (cannot bind ::1)");
        return;
    }
    const char *ipv6[] = {"--http-address=[::1]:0", "--zmq-address=[::1]:0", NULL};
    it_broker_t *lookupd = it_lookupd_start(ipv6);
    s_assert_serves_ipv6(lookupd, "nsq-lookupd");

    char lookupd_flag[96];
    snprintf(lookupd_flag, sizeof lookupd_flag, "--lookupd-address=%s", it_broker_zmq(lookupd));
    const char *broker_flags[] = {
        ipv6[0], ipv6[1], lookupd_flag, "--broadcast-address=127.0.0.1", LOOKUP_HEARTBEAT_FLAG,
        NULL};
    it_broker_t *broker = it_broker_start(broker_flags);
    s_assert_serves_ipv6(broker, "nsq-broker");
    it_pub(broker, "six", "over-ipv6");
    IT_ASSERT_EVENTUALLY(lookup_producers(lookupd, "six") == 1, 5000,
                         "the broker did not register with lookupd over IPv6");

    const char *probes[] = {"--http-address=[::1]:0", NULL};
    it_child_t *worker = it_worker_start(broker, "six", "c", probes);
    char http[128], line[256];
    it_worker_wait_ready(worker, http, sizeof http);
    IT_ASSERT(strncmp(http, "[::1]:", 6) == 0, "worker READY http=%s", http);
    IT_ASSERT_INT(it_http_to(http, "GET", "/healthz", NULL, 0, NULL), ==, 200);
    IT_ASSERT_INT(it_child_read_line(worker, line, sizeof line, 5000), ==, 1);
    IT_ASSERT_STR(line, "over-ipv6");
    IT_ASSERT_INT(it_child_stop(&worker, SIGTERM, 10000), ==, 0);

    const char *dual[] = {"--http-address=[::]:0", NULL};
    it_broker_t *both = it_broker_start(dual);
    const char *port = strrchr(it_broker_http(both), ':') + 1;
    IT_ASSERT(strncmp(it_broker_http(both), "[::]:", 5) == 0, "READY http=%s",
              it_broker_http(both));
    char v4[64], v6[64];
    snprintf(v4, sizeof v4, "127.0.0.1:%s", port);
    snprintf(v6, sizeof v6, "[::1]:%s", port);
    IT_ASSERT_INT(it_http_to(v4, "GET", "/ping", NULL, 0, NULL), ==, 200);
    IT_ASSERT_INT(it_http_to(v6, "GET", "/ping", NULL, 0, NULL), ==, 200);
    IT_ASSERT_INT(it_broker_stop(&both), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&broker), ==, 0);
    IT_ASSERT_INT(it_broker_stop(&lookupd), ==, 0);
}

int main(int argc, char **argv)
{
    const it_case_t cases[] = {
        {"bad_input", s_bad_input},
        {"nul_in_names", s_nul_in_names},
        {"bad_registration", s_bad_registration},
        {"smuggling", s_smuggling},
        {"ipv6_listen", s_ipv6_listen},
    };
    return it_run(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
