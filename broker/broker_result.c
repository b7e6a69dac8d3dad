/*  broker_result - what a core operation answered, in no door's words
    SPDX-License-Identifier: MIT
*/
#include "broker_result.h"

#include <stddef.h>

const char *broker_result_name(broker_result_t result)
{
    static const char *const names[] = {
        [BROKER_OK] = "OK",
        [BROKER_PENDING] = "PENDING",
        [BROKER_INVALID] = "INVALID",
        [BROKER_BAD_TOPIC] = "BAD_TOPIC",
        [BROKER_BAD_CHANNEL] = "BAD_CHANNEL",
        [BROKER_BAD_BODY] = "BAD_BODY",
        [BROKER_BAD_MESSAGE] = "BAD_MESSAGE",
        [BROKER_OUT_OF_RANGE] = "OUT_OF_RANGE",
        [BROKER_NOT_IN_FLIGHT] = "NOT_IN_FLIGHT",
        [BROKER_TOPIC_NOT_FOUND] = "TOPIC_NOT_FOUND",
        [BROKER_CHANNEL_NOT_FOUND] = "CHANNEL_NOT_FOUND",
        [BROKER_QUEUE_FULL] = "QUEUE_FULL",
        [BROKER_DISK_FAILED] = "DISK_FAILED",
        [BROKER_SYNC_FAILED] = "SYNC_FAILED",
        [BROKER_TOO_MANY_FILES] = "TOO_MANY_FILES",
        [BROKER_NO_MEMORY] = "NO_MEMORY",
        [BROKER_EXITING] = "EXITING",
        [BROKER_AUTH_FAILED] = "AUTH_FAILED",
        [BROKER_UNAUTHORIZED] = "UNAUTHORIZED",
        [BROKER_AUTH_UNAVAILABLE] = "AUTH_UNAVAILABLE",
        [BROKER_AUTH_PENDING] = "AUTH_PENDING",
        [BROKER_AUTH_FIRST] = "AUTH_FIRST",
        [BROKER_AUTH_DISABLED] = "AUTH_DISABLED",
    };
    if ((unsigned) result >= sizeof names / sizeof *names || !names[result])
        return "UNKNOWN";
    return names[result];
}
