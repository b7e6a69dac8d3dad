/*  lookupd_test - lookupd's self-test: the actor started in-process, and
    brokers' commands sent to it over a DEALER
    SPDX-License-Identifier: MIT
*/
#include <curl/curl.h>
#include <stdio.h>

#include "lookupd.h"
#include "nsq_wire.h"

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "lookupd_test: %s:%d: %s\n", __FILE__, __LINE__, #cond);               \
            goto failed;                                                                           \
        }                                                                                          \
    } while (0)

// Sends command on dealer and returns the answer (caller frees), or NULL.
static Nsq__LookupFrame *s_test_call(zsock_t *dealer, Nsq__LookupCommand *command)
{
    if (command && nsq_wire_send_lookup_command(zsock_resolve(dealer), command, 0))
        return NULL;
    zframe_t *frame = zframe_recv(dealer);
    Nsq__LookupFrame *answer =
        frame ? nsq__lookup_frame__unpack(NULL, zframe_size(frame), zframe_data(frame)) : NULL;
    zframe_destroy(&frame);
    return answer;
}

static bool s_test_answer(Nsq__LookupFrame *answer, const char *error_code)
{
    bool ok = answer
              && (error_code ? answer->frame_case == NSQ__LOOKUP_FRAME__FRAME_ERROR
                                   && streq(answer->error->code, error_code)
                             : answer->frame_case != NSQ__LOOKUP_FRAME__FRAME_ERROR);
    if (answer)
        nsq__lookup_frame__free_unpacked(answer, NULL);
    return ok;
}

int lookupd_test(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);  // here, as main does: not on the actor's thread
    lookupd_config_t config;
    lookupd_config_defaults(&config);
    snprintf(config.http_address, sizeof config.http_address, "127.0.0.1:0");
    snprintf(config.zmq_address, sizeof config.zmq_address, "127.0.0.1:0");
    zactor_t *actor = zactor_new(lookupd_actor, &config);
    zsock_t *dealer = NULL;
    char *status = NULL, *http_port = NULL, *zmq_port = NULL;
    int rc = -1;
    S_CHECK(actor);
    zstr_recvx(actor, &status, &http_port, &zmq_port, NULL);
    S_CHECK(status && streq(status, "READY") && zmq_port);
    dealer = zsock_new_dealer(NULL);
    zsock_set_rcvtimeo(dealer, 2000);
    S_CHECK(zsock_connect(dealer, "tcp://127.0.0.1:%s", zmq_port) == 0);

    // Garbage gets an error frame and lookupd keeps serving.
    S_CHECK(zstr_send(dealer, "garbage\xff\xff") == 0);
    S_CHECK(s_test_answer(s_test_call(dealer, NULL), "E_BAD_COMMAND"));
    Nsq__LookupHeartbeat heartbeat = NSQ__LOOKUP_HEARTBEAT__INIT;
    Nsq__LookupCommand command = NSQ__LOOKUP_COMMAND__INIT;
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_HEARTBEAT;
    command.heartbeat = &heartbeat;
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_NOT_IDENTIFIED"));

    // Identify without an address is refused; with one, registration works.
    Nsq__LookupIdentify identify = NSQ__LOOKUP_IDENTIFY__INIT;
    identify.http_port = 4151;
    identify.zmq_port = 4152;
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_IDENTIFY;
    command.identify = &identify;
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_BODY"));
    // Hosts that are no host (a NUL inside, bytes a JSON parser rejects)
    identify.broadcast_address = (ProtobufCBinaryData){10, (uint8_t *) "10.1.2.3\0x"};
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_BODY"));
    identify.broadcast_address = nsq_wire_bytes("10.1.2.3");
    identify.hostname = nsq_wire_bytes("host\xff");
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_BODY"));
    identify.hostname = nsq_wire_bytes("broker-1");
    S_CHECK(s_test_answer(s_test_call(dealer, &command), NULL));
    Nsq__Register reg = NSQ__REGISTER__INIT;
    reg.topic = nsq_wire_bytes("bad topic");
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_REG;
    command.reg = &reg;
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_TOPIC"));
    reg.topic = (ProtobufCBinaryData){6, (uint8_t *) "lk\0zzz"};
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_TOPIC"));
    reg.topic = nsq_wire_bytes("orders");
    reg.channel = (ProtobufCBinaryData){3, (uint8_t *) "c\0!"};
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_CHANNEL"));
    reg.channel = nsq_wire_bytes("billing");
    S_CHECK(s_test_answer(s_test_call(dealer, &command), NULL));
    Nsq__LookupChannelsQuery query = NSQ__LOOKUP_CHANNELS_QUERY__INIT;
    query.topic = (ProtobufCBinaryData){8, (uint8_t *) "orders\0x"};
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_CHANNELS;
    command.channels = &query;
    S_CHECK(s_test_answer(s_test_call(dealer, &command), "E_BAD_TOPIC"));
    query.topic = nsq_wire_bytes("orders");
    Nsq__LookupFrame *answer = s_test_call(dealer, &command);
    bool listed = answer && answer->frame_case == NSQ__LOOKUP_FRAME__FRAME_CHANNELS
                  && answer->channels->n_channels == 1
                  && streq(answer->channels->channels[0], "billing");
    if (answer)
        nsq__lookup_frame__free_unpacked(answer, NULL);
    S_CHECK(listed);
    command.cmd_case = NSQ__LOOKUP_COMMAND__CMD_HEARTBEAT;
    S_CHECK(s_test_answer(s_test_call(dealer, &command), NULL));
    rc = 0;
failed:
    zsock_destroy(&dealer);
    zstr_free(&status);
    zstr_free(&http_port);
    zstr_free(&zmq_port);
    zactor_destroy(&actor);
    curl_global_cleanup();
    return rc;
}
