/*  nsq_peer - the peers of a ROUTER: reading a routed message, a peer's
    key, and where a message came from, as "IP:port"
    SPDX-License-Identifier: MIT
*/
#include "nsq_peer.h"

#include "nsq_endpoint.h"

#include <czmq.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

// Writes the numeric host and port of the address of fd (its peer's when
// peer is true, else its own). Returns 0 or -1.
static int s_numeric(int fd, bool peer, char *host, size_t host_size, char *port, size_t port_size)
{
    struct sockaddr_storage address;
    socklen_t length = sizeof address;
    int rc = peer ? getpeername(fd, (struct sockaddr *) &address, &length)
                  : getsockname(fd, (struct sockaddr *) &address, &length);
    if (rc != 0)
        return -1;
    return getnameinfo((struct sockaddr *) &address, length, host, (socklen_t) host_size, port,
                       (socklen_t) port_size, NI_NUMERICHOST | NI_NUMERICSERV)
               ? -1
               : 0;
}

int nsq_peer_recv(void *router, zmq_msg_t *identity, zmq_msg_t *body)
{
    if (zmq_msg_recv(identity, router, ZMQ_DONTWAIT) < 0)
        return -1;
    if (!zmq_msg_more(identity))
        return 0;  // no body at all: an empty one
    zmq_msg_recv(body, router, 0);
    int extra = 0;
    for (bool more = zmq_msg_more(body); more; extra = 1) {
        zmq_msg_t skip;
        zmq_msg_init(&skip);
        zmq_msg_recv(&skip, router, 0);
        more = zmq_msg_more(&skip);
        zmq_msg_close(&skip);
    }
    return extra;
}

void nsq_peer_key(const void *identity, size_t size, char *key)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *bytes = identity;
    for (size_t i = 0; i < size; i++) {
        key[2 * i] = digits[bytes[i] >> 4];
        key[2 * i + 1] = digits[bytes[i] & 0xf];
    }
    key[2 * size] = '\0';
}

const char *nsq_peer_address(zmq_msg_t *msg, char *out, size_t size)
{
    const char *ip = zmq_msg_gets(msg, "Peer-Address");
    snprintf(out, size, "%s", ip ? ip : "");
    int fd = ip ? zmq_msg_get(msg, ZMQ_SRCFD) : -1;
    char host[NI_MAXHOST], port[NI_MAXSERV];
    if (fd < 0 || s_numeric(fd, true, host, sizeof host, port, sizeof port) || strcmp(host, ip))
        return out;  // no descriptor, or it is not that connection any more
    snprintf(out, size, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
    return out;
}

// ---- self-test -------------------------------------------------------------

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "nsq_peer_test: %s:%d: %s\n", __FILE__, __LINE__, #condition);         \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

// Receives [identity][body] on router into body; returns 0 or -1.
static int s_test_receive(zsock_t *router, zmq_msg_t *identity, zmq_msg_t *body)
{
    zsock_set_rcvtimeo(router, 2000);
    void *handle = zsock_resolve(router);
    return zmq_msg_recv(identity, handle, 0) < 0 || zmq_msg_recv(body, handle, 0) < 0 ? -1 : 0;
}

int nsq_peer_test(void)
{
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    int bound = router ? nsq_endpoint_bind(router, "127.0.0.1", 9, "0") : -1;  // a random port
    zsock_t *dealer = zsock_new_dealer(NULL);
    zsock_t *inproc_router = zsock_new_router("inproc://nsq-peer-test");
    zsock_t *inproc_dealer = zsock_new_dealer("inproc://nsq-peer-test");
    zmq_msg_t identity, body, reply;
    zmq_msg_init(&identity);
    zmq_msg_init(&body);
    zmq_msg_init(&reply);
    int rc = -1;
    char address[NSQ_PEER_ADDRESS_MAX];
    S_CHECK(bound > 0 && dealer && inproc_router && inproc_dealer);
    S_CHECK(zsock_connect(dealer, "tcp://127.0.0.1:%d", bound) == 0);
    S_CHECK(zstr_send(dealer, "hello") == 0);
    S_CHECK(s_test_receive(router, &identity, &body) == 0);
    nsq_peer_address(&body, address, sizeof address);

    // The dealer's own end of the connection has the port we must see.
    S_CHECK(zmq_send(zsock_resolve(router), zmq_msg_data(&identity), zmq_msg_size(&identity),
                     ZMQ_SNDMORE)
                >= 0
            && zstr_send(router, "hi") == 0);
    zsock_set_rcvtimeo(dealer, 2000);
    S_CHECK(zmq_msg_recv(&reply, zsock_resolve(dealer), 0) >= 0);
    char host[NI_MAXHOST], port[NI_MAXSERV], expected[NSQ_PEER_ADDRESS_MAX];
    S_CHECK(s_numeric(zmq_msg_get(&reply, ZMQ_SRCFD), false, host, sizeof host, port, sizeof port)
            == 0);
    S_CHECK(snprintf(expected, sizeof expected, "%s:%s", host, port) < (int) sizeof expected);
    S_CHECK(streq(address, expected));

    // inproc has no address.
    S_CHECK(zstr_send(inproc_dealer, "hello") == 0);
    zmq_msg_close(&body);
    zmq_msg_init(&body);
    S_CHECK(s_test_receive(inproc_router, &identity, &body) == 0);
    S_CHECK(streq(nsq_peer_address(&body, address, sizeof address), ""));

    // A message of several frames is read whole, its first frame kept.
    S_CHECK(zstr_sendx(inproc_dealer, "first", "second", "third", NULL) == 0);
    S_CHECK(zstr_send(inproc_dealer, "single") == 0);
    void *handle = zsock_resolve(inproc_router);
    int64_t deadline = zclock_mono() + 2000;
    int got;
    while ((got = nsq_peer_recv(handle, &identity, &body)) < 0 && zclock_mono() < deadline)
        zclock_sleep(1);
    S_CHECK(got == 1 && zmq_msg_size(&body) == 5 && memcmp(zmq_msg_data(&body), "first", 5) == 0);
    while ((got = nsq_peer_recv(handle, &identity, &body)) < 0 && zclock_mono() < deadline)
        zclock_sleep(1);
    S_CHECK(got == 0 && zmq_msg_size(&body) == 6);
    S_CHECK(nsq_peer_recv(handle, &identity, &body) == -1);
    char key[5];
    nsq_peer_key("\x00\xab", 2, key);
    S_CHECK(streq(key, "00ab"));
    rc = 0;
done:
    zmq_msg_close(&identity);
    zmq_msg_close(&body);
    zmq_msg_close(&reply);
    zsock_destroy(&inproc_dealer);
    zsock_destroy(&inproc_router);
    zsock_destroy(&dealer);
    zsock_destroy(&router);
    return rc;
}
