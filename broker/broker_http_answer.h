/*  broker_http_answer - the HTTP door's answers: a core result as NSQ's
    status and JSON code, a stats snapshot as a document, and the fixed
    answers (/ping, /info)
    SPDX-License-Identifier: MIT

    Errors are NSQ's: a status and {"message":"CODE"}, with the
    X-NSQ-Content-Type header every answer carries. Runs on the HTTP
    threads; nothing here touches the core.

    API: broker_http_answer_status, broker_http_answer_error,
    broker_http_answer_shared_new, broker_http_answer_shared,
    broker_http_answer_request, broker_http_answer_info.
*/
#ifndef BROKER_HTTP_ANSWER_H
#define BROKER_HTTP_ANSWER_H

#include <microhttpd.h>
#include <stdint.h>

#include "broker_config.h"
#include "broker_http_request.h"

#define BROKER_HTTP_TEXT_PLAIN       "text/plain; charset=utf-8"
#define BROKER_HTTP_APPLICATION_JSON "application/json; charset=utf-8"
#define BROKER_HTTP_NSQ_CONTENT_TYPE "nsq; version=1.0"

// The status and NSQ code a core result answers with (result != BROKER_OK).
void broker_http_answer_status(broker_result_t result, unsigned *status, const char **code);

// Queues {"message":"code"} with status.
enum MHD_Result broker_http_answer_error(struct MHD_Connection *mhd, unsigned status,
                                         const char *code);

// A 200 text/plain answer with text (static), shareable by every thread.
// Caller owns it (MHD_destroy_response); NULL if out of memory.
struct MHD_Response *broker_http_answer_shared_new(const char *text);

// Queues a shared 200 answer.
enum MHD_Result broker_http_answer_shared(struct MHD_Connection *mhd,
                                          struct MHD_Response *response);

// Queues what the core answered to request: an error, a stats document
// (the snapshot is freed), or ok (a publish) or empty (the rest), both
// shared.
enum MHD_Result broker_http_answer_request(struct MHD_Connection *mhd,
                                           broker_http_request_t *request, struct MHD_Response *ok,
                                           struct MHD_Response *empty);

// What /info shows beyond config.
typedef struct {
    const char *hostname;  // this host's name
    uint16_t http_port;    // bound HTTP port
    uint16_t zmq_port;     // bound ZeroMQ port
    uint16_t tcp_port;     // bound NSQ TCP port, 0 if none
    int64_t start_time;    // unix seconds
} broker_http_info_t;

// Queues /info: the version, addresses, ports and limits, as JSON.
enum MHD_Result broker_http_answer_info(struct MHD_Connection *mhd, const broker_config_t *config,
                                        const broker_http_info_t *info);

#endif
