/*  nsq_client_test - internal declarations shared by the client modules
    SPDX-License-Identifier: MIT

    Not installed. The consumer and the producer share the endpoint check;
    tests/selftest.c runs their self-tests, which drive each class against
    a fake broker (a ROUTER on tcp://127.0.0.1:*) in-process.

    API: nsq_client_endpoint, nsq_client_test_msg_new,
    nsq_client_test_fake_broker_read, nsq_consumer_test, nsq_producer_test.
*/
#ifndef NSQ_CLIENT_TEST_H
#define NSQ_CLIENT_TEST_H

#include "nsq.h"

#include <stddef.h>

// Longest endpoint accepted, NUL included.
#define NSQ_CLIENT_ENDPOINT_MAX 256

// Turns "host:port" or "tcp://host:port" into "tcp://host:port" in
// endpoint (size bytes). Returns 0, or -1 with errno EINVAL if the host is
// empty or holds spaces, the port is not 1..65535, or it does not fit.
int nsq_client_endpoint(const char *address, char *endpoint, size_t size);

// A message outside any consumer, for handlers' self-tests: a copy of body,
// id 1, attempts 1, timeout 60 s, broker "tcp://127.0.0.1:1". Settle it by
// free(); never pass it to a consumer. NULL if out of memory.
nsq_msg_t *nsq_client_test_msg_new(const void *body, size_t size);

// A fake broker's answer, for self-tests of publishers: reads one message
// from router (a ROUTER) and answers a Pub with OK (adding its bodies to
// *accepted), topic "bad" with E_BAD_TOPIC, topic "silent" not at all.
void nsq_client_test_fake_broker_read(zsock_t *router, size_t *accepted);

// Self-tests; return 0 on success.
int nsq_consumer_test(void);
int nsq_producer_test(void);

#endif
