/*  it_lookup_util - what the it_lookup* cases share: names, registered brokers
    SPDX-License-Identifier: MIT

    Plain helpers over the harness; see it_lookup_util.h.
*/
#include "it_lookup_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

it_broker_t *lookup_broker(it_broker_t *const *lookupds)
{
    char flags_storage[4][96];
    const char *flags[8] = {"--broadcast-address=127.0.0.1", LOOKUP_HEARTBEAT_FLAG};
    size_t count = 2;
    for (size_t i = 0; lookupds[i] && i < 4; i++) {
        snprintf(flags_storage[i], sizeof flags_storage[i], "--lookupd-address=%s",
                 it_broker_zmq(lookupds[i]));
        flags[count++] = flags_storage[i];
    }
    return it_broker_start(flags);
}

int lookup_producers(it_broker_t *lookupd, const char *topic)
{
    char path[128], *reply = NULL;
    snprintf(path, sizeof path, "/lookup?topic=%s", topic);
    int status = it_http(lookupd, "GET", path, NULL, 0, &reply);
    int count = -1;
    if (status == 200) {
        count = 0;
        for (const char *at = reply; (at = strstr(at, "\"broadcast_address\"")); at++)
            count++;
    }
    free(reply);
    return count;
}
