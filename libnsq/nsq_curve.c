/*  nsq_curve - CURVE security on our ZeroMQ links: key files, the client
    side, and the server side (a ZAP handler with an allow-list)
    SPDX-License-Identifier: MIT

    The ZAP handler is our own rather than czmq's zauth: zauth logs
    through czmq's log (another format, to stdout), reports every accepted
    connection, and binds the process's one ZAP endpoint per instance. Ours
    (nsq_curve_zap.c) is shared by every server of the process, each with a
    ZAP domain and allow-list of its own, and logs refusals only, in the
    daemon's log. Each server also runs an actor that adds what ZAP cannot
    see: handshakes that fail before ZAP is asked (read from the server
    socket's monitor); it also reads the allow directory again after SIGHUP
    and hands the new set of public keys to the handler.
*/
#include "nsq_curve.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nsq_curve_zap.h"
#include "nsq_log.h"
#include "nsq_secret.h"

#define S_KEY_LENGTH 40   // Z85 text of 32 bytes
#define S_POLL_MS    250  // how soon a SIGHUP is noticed

static atomic_uint s_reloads;  // SIGHUPs so far; the actors compare with theirs

struct _nsq_curve_server_t {
    char public_key[NSQ_CURVE_KEY_TEXT];  // ours
    char secret_key[NSQ_CURVE_KEY_TEXT];  // ours (never logged)
    char allow_dir[1024];                 // "" = any client
    nsq_curve_zap_domain_t *domain;       // our ZAP domain and allow-list
    zactor_t *actor;                      // the monitors' reader, the reloads
    unsigned monitors;                    // monitors started, to name their endpoints
};

//  --------------------------------------------------------------------------
//  Key files

//  Reads the Z85 keys of a czmq certificate file; secret may be NULL (not
//  wanted). Returns 0, or -1 with one line in error.
static int s_cert_read(const char *option, const char *path, char *public_key, char *secret_key,
                       char *error, size_t size)
{
    if (secret_key && nsq_secret_file_check(option, path, error, size) != 0)
        return -1;
    zconfig_t *root = zconfig_load(path);
    if (!root) {
        snprintf(error, size, "--%s=%s: cannot read it as a czmq certificate", option, path);
        return -1;
    }
    const char *found_public = zconfig_get(root, "curve/public-key", "");
    const char *found_secret = secret_key ? zconfig_get(root, "curve/secret-key", "") : "";
    int rc = 0;
    if (strlen(found_public) != S_KEY_LENGTH) {
        snprintf(error, size, "--%s=%s: no curve public-key in it", option, path);
        rc = -1;
    } else if (secret_key && strlen(found_secret) != S_KEY_LENGTH) {
        snprintf(error, size, "--%s=%s: no curve secret-key in it (give the _secret file)", option,
                 path);
        rc = -1;
    } else {
        snprintf(public_key, NSQ_CURVE_KEY_TEXT, "%s", found_public);
        if (secret_key)
            snprintf(secret_key, NSQ_CURVE_KEY_TEXT, "%s", found_secret);
    }
    zconfig_destroy(&root);
    return rc;
}

static bool s_set(const char *text)
{
    return text && *text;
}

int nsq_curve_client_load(nsq_curve_client_t *self, const char *key_file,
                          const char *server_key_file, char *error, size_t size)
{
    memset(self, 0, sizeof *self);
    if (!s_set(key_file) && !s_set(server_key_file))
        return 0;
    if (!s_set(key_file) || !s_set(server_key_file)) {
        snprintf(error, size, "--zmq-curve-key-file and --zmq-curve-server-key-file go together");
        return -1;
    }
    if (s_cert_read("zmq-curve-key-file", key_file, self->public_key, self->secret_key, error, size)
        || s_cert_read("zmq-curve-server-key-file", server_key_file, self->server_key, NULL, error,
                       size)) {
        memset(self, 0, sizeof *self);
        return -1;
    }
    self->enabled = true;
    return 0;
}

int nsq_curve_client_check(const char *key_file, const char *server_key_file, char *error,
                           size_t size)
{
    nsq_curve_client_t keys;
    int rc = nsq_curve_client_load(&keys, key_file, server_key_file, error, size);
    explicit_bzero(&keys, sizeof keys);
    return rc;
}

int nsq_curve_public_check(const char *option, const char *path, char *error, size_t size)
{
    char key[NSQ_CURVE_KEY_TEXT];
    return s_cert_read(option, path, key, NULL, error, size);
}

void nsq_curve_client_apply(const nsq_curve_client_t *self, zsock_t *socket)
{
    if (!self || !self->enabled)
        return;
    zsock_set_curve_serverkey(socket, self->server_key);
    zsock_set_curve_publickey(socket, self->public_key);
    zsock_set_curve_secretkey(socket, self->secret_key);
}

int nsq_curve_keys_write(const char *path, char *error, size_t size)
{
    zcert_t *cert = zcert_new();
    char secret[PATH_MAX + 8];
    snprintf(secret, sizeof secret, "%s_secret", path);
    int rc = cert ? zcert_save(cert, path) : -1;
    if (rc == 0)
        rc = chmod(secret, 0600);
    if (rc != 0)
        snprintf(error, size, "cannot write %s and %s: %s", path, secret, strerror(errno));
    zcert_destroy(&cert);
    return rc == 0 ? 0 : -1;
}

//  --------------------------------------------------------------------------
//  The allow-list

//  Reads every certificate file of dir into a new set of public keys.
//  NULL with one line in error if dir cannot be read.
static zhashx_t *s_allowed_load(const char *dir, char *error, size_t size)
{
    DIR *listing = opendir(dir);
    if (!listing) {
        snprintf(error, size, "--zmq-curve-allow-dir=%s: %s", dir, strerror(errno));
        return NULL;
    }
    zhashx_t *allowed = zhashx_new();
    struct dirent *entry;
    while (allowed && (entry = readdir(listing))) {
        char path[PATH_MAX], key[NSQ_CURVE_KEY_TEXT], ignored[PATH_MAX + 128];
        struct stat status;
        snprintf(path, sizeof path, "%s/%s", dir, entry->d_name);
        if (entry->d_name[0] == '.' || stat(path, &status) != 0 || !S_ISREG(status.st_mode)
            || s_cert_read("zmq-curve-allow-dir", path, key, NULL, ignored, sizeof ignored) != 0)
            continue;
        zhashx_update(allowed, key, "");
    }
    closedir(listing);
    if (!allowed)
        snprintf(error, size, "out of memory");
    return allowed;
}

//  --------------------------------------------------------------------------
//  The actor: monitor events, reloads

typedef enum { S_REFUSED_PLAIN, S_REFUSED_CRYPTO, S_REFUSED_OTHER, S_REFUSED_KINDS } s_refusal_t;

typedef struct {
    nsq_curve_server_t *server;                 // for allow_dir and the domain
    unsigned reloads;                           // s_reloads when last read
    zpoller_t *poller;                          // pipe, monitors
    zlist_t *monitors;                          // PAIR sockets, owned
    nsq_curve_limit_t limits[S_REFUSED_KINDS];  // log rate per kind of refusal
} s_actor_t;

//  Logs a failed handshake seen on a server socket's monitor.
static void s_monitor_event(s_actor_t *self, zsock_t *monitor)
{
    zframe_t *event = zframe_recv(monitor);
    char *endpoint = event && zsock_rcvmore(monitor) ? zstr_recv(monitor) : NULL;
    if (event && zframe_size(event) == 6) {
        uint16_t kind;
        uint32_t value;
        memcpy(&kind, zframe_data(event), 2);
        memcpy(&value, zframe_data(event) + 2, 4);
        const char *where = endpoint ? endpoint : "?";
        s_refusal_t refusal = S_REFUSED_OTHER;
        // A plain client may notice the mismatch first and hang up: the
        // server then sees a reset, not the mechanism.
        const char *why = "its handshake failed (a plain client hung up?)";
        if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
            && value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
            refusal = S_REFUSED_PLAIN, why = "it does not speak CURVE";
        else if (kind == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL
                 && value == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
            refusal = S_REFUSED_CRYPTO, why = "CURVE handshake failed (wrong server key?)";
        unsigned more = 0;
        if (nsq_curve_limit_pass(&self->limits[refusal], &more))
            nsq_warn("zmq: refused a client on %s: %s (0x%x; %u more refused since the last "
                     "such line)",
                     where, why, (unsigned) value, more);
    }
    zstr_free(&endpoint);
    zframe_destroy(&event);
}

static void s_reload(s_actor_t *self)
{
    self->reloads = atomic_load(&s_reloads);
    if (!self->server->allow_dir[0])
        return;
    char error[512];
    zhashx_t *allowed = s_allowed_load(self->server->allow_dir, error, sizeof error);
    if (!allowed) {
        nsq_error("zmq: SIGHUP: keeping the allow-list: %s", error);
        return;
    }
    size_t count = zhashx_size(allowed);
    nsq_curve_zap_allow(self->server->domain, &allowed);
    nsq_info("zmq: SIGHUP: %zu CURVE client keys allowed from %s", count, self->server->allow_dir);
}

//  A command from the pipe. Returns false on $TERM.
static bool s_command(s_actor_t *self, zsock_t *pipe)
{
    char *command = NULL, *endpoint = NULL;
    zstr_recvx(pipe, &command, &endpoint, NULL);
    bool running = command && !streq(command, "$TERM");
    if (command && streq(command, "MONITOR") && endpoint) {
        zsock_t *monitor = zsock_new_pair(endpoint);
        if (monitor) {
            zpoller_add(self->poller, monitor);
            zlist_append(self->monitors, monitor);
        }
        zsock_signal(pipe, monitor ? 0 : 1);
    }
    zstr_free(&command);
    zstr_free(&endpoint);
    return running;
}

static void s_actor(zsock_t *pipe, void *args)
{
    s_actor_t self = {args, atomic_load(&s_reloads), NULL, zlist_new(), {{0, 0}}};
    self.poller = zpoller_new(pipe, NULL);
    zsock_signal(pipe, 0);
    bool running = true;
    while (running) {
        void *which = zpoller_wait(self.poller, S_POLL_MS);
        if (atomic_load(&s_reloads) != self.reloads)
            s_reload(&self);
        if (which == pipe)
            running = s_command(&self, pipe);
        else if (which)
            s_monitor_event(&self, which);
        else if (zpoller_terminated(self.poller))
            running = false;
    }
    zpoller_destroy(&self.poller);
    while (zlist_size(self.monitors)) {
        zsock_t *monitor = zlist_pop(self.monitors);
        zsock_destroy(&monitor);
    }
    zlist_destroy(&self.monitors);
}

//  --------------------------------------------------------------------------
//  Server

int nsq_curve_server_check(const char *secret_key_file, const char *allow_dir, char *error,
                           size_t size)
{
    if (s_set(allow_dir) && !s_set(secret_key_file)) {
        snprintf(error, size, "--zmq-curve-allow-dir needs --zmq-curve-secret-key-file");
        return -1;
    }
    if (s_set(secret_key_file))
        return nsq_secret_file_check("zmq-curve-secret-key-file", secret_key_file, error, size);
    return 0;
}

nsq_curve_server_t *nsq_curve_server_new(const char *secret_key_file, const char *allow_dir,
                                         char *error, size_t size)
{
    nsq_curve_server_t *self = calloc(1, sizeof *self);
    if (!self) {
        snprintf(error, size, "out of memory");
        return NULL;
    }
    snprintf(self->allow_dir, sizeof self->allow_dir, "%s", s_set(allow_dir) ? allow_dir : "");
    zhashx_t *keys = NULL;
    if (s_cert_read("zmq-curve-secret-key-file", secret_key_file, self->public_key,
                    self->secret_key, error, size)
        || (self->allow_dir[0] && !(keys = s_allowed_load(self->allow_dir, error, size)))) {
        nsq_curve_server_destroy(&self);
        return NULL;
    }
    size_t allowed = keys ? zhashx_size(keys) : 0;
    self->domain = nsq_curve_zap_join(&keys, error, size);
    if (self->domain && !(self->actor = zactor_new(s_actor, self)))
        snprintf(error, size, "out of memory");
    if (!self->actor) {
        zhashx_destroy(&keys);
        nsq_curve_server_destroy(&self);
        return NULL;
    }
    if (self->allow_dir[0])
        nsq_info("zmq: CURVE on; %zu client keys allowed from %s", allowed, self->allow_dir);
    else
        nsq_info("zmq: CURVE on; any client with our public key is accepted");
    return self;
}

int nsq_curve_server_apply(nsq_curve_server_t *self, zsock_t *socket)
{
    zsock_set_zap_domain(socket, nsq_curve_zap_domain(self->domain));
    zsock_set_curve_server(socket, 1);
    zsock_set_curve_secretkey(socket, self->secret_key);
    char endpoint[96];
    snprintf(endpoint, sizeof endpoint, "inproc://nsq-curve-monitor-%p-%u", (void *) self,
             self->monitors++);
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL;
    if (zmq_socket_monitor(zsock_resolve(socket), endpoint, events) != 0)
        return -1;
    zstr_sendx(self->actor, "MONITOR", endpoint, NULL);
    return zsock_wait(self->actor) == 0 ? 0 : -1;
}

void nsq_curve_server_destroy(nsq_curve_server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_curve_server_t *self = *self_p;
    zactor_destroy(&self->actor);
    nsq_curve_zap_leave(&self->domain);
    explicit_bzero(self->secret_key, sizeof self->secret_key);
    free(self);
    *self_p = NULL;
}

void nsq_curve_reload_request(void)
{
    atomic_fetch_add(&s_reloads, 1);
}

//  --------------------------------------------------------------------------
//  Self-test: a CURVE ROUTER with an allow-list, and clients of each kind

//  True if a message sent by client reaches router within timeout_ms.
static bool s_test_reaches(zsock_t *router, zsock_t *client, int timeout_ms)
{
    zstr_send(client, "hello");
    zpoller_t *poller = zpoller_new(router, NULL);
    bool reached = zpoller_wait(poller, timeout_ms) == router;
    zpoller_destroy(&poller);
    if (reached) {
        zmsg_t *msg = zmsg_recv(router);
        zmsg_destroy(&msg);
    }
    return reached;
}

static zsock_t *s_test_client(const nsq_curve_client_t *keys, int port)
{
    zsock_t *client = zsock_new(ZMQ_DEALER);
    zsock_set_linger(client, 0);
    nsq_curve_client_apply(keys, client);
    zsock_connect(client, "tcp://127.0.0.1:%d", port);
    return client;
}

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "nsq_curve_test: %s failed (line %d)\n", #cond, __LINE__);             \
            failed = 1;                                                                            \
        }                                                                                          \
    } while (0)

int nsq_curve_test(void)
{
    char dir[] = "/tmp/nsq_curve_test.XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    char allow[PATH_MAX], server[PATH_MAX], secret[PATH_MAX + 8], a[PATH_MAX], b[PATH_MAX];
    char a_secret[PATH_MAX + 8], b_secret[PATH_MAX + 8], b_allowed[PATH_MAX], error[512] = "";
    snprintf(allow, sizeof allow, "%s/allow", dir);
    snprintf(server, sizeof server, "%s/server", dir);
    snprintf(secret, sizeof secret, "%s_secret", server);
    snprintf(a, sizeof a, "%s/allow/a", dir);
    snprintf(a_secret, sizeof a_secret, "%s_secret", a);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(b_secret, sizeof b_secret, "%s_secret", b);
    snprintf(b_allowed, sizeof b_allowed, "%s/allow/b", dir);
    int failed = mkdir(allow, 0700) != 0;
    S_CHECK(nsq_curve_keys_write(server, error, sizeof error) == 0);
    S_CHECK(nsq_curve_keys_write(a, error, sizeof error) == 0);
    S_CHECK(nsq_curve_keys_write(b, error, sizeof error) == 0);
    struct stat status;
    S_CHECK(stat(a_secret, &status) == 0 && (status.st_mode & 077) == 0);

    nsq_curve_client_t keys_a, keys_b, wrong_server, none;
    S_CHECK(nsq_curve_client_load(&none, NULL, "", error, sizeof error) == 0 && !none.enabled);
    S_CHECK(nsq_curve_client_load(&none, b_secret, NULL, error, sizeof error) == -1);
    S_CHECK(nsq_curve_client_load(&keys_b, b, server, error, sizeof error) == -1);  // public
    chmod(b, 0600);
    S_CHECK(nsq_curve_client_load(&keys_b, b, server, error, sizeof error) == -1);
    S_CHECK(strstr(error, "give the _secret file") != NULL);
    S_CHECK(nsq_curve_client_load(&keys_b, b_secret, server, error, sizeof error) == 0);
    S_CHECK(nsq_curve_client_load(&wrong_server, b_secret, b, error, sizeof error) == 0);
    S_CHECK(nsq_curve_client_load(&keys_a, a_secret, server, error, sizeof error) == 0);
    unlink(a_secret);  // the allow directory holds public certificates
    chmod(b_secret, 0644);
    S_CHECK(nsq_curve_client_load(&none, b_secret, server, error, sizeof error) == -1);
    S_CHECK(strstr(error, "wider than 0600") != NULL);
    S_CHECK(nsq_curve_client_check(b_secret, server, error, sizeof error) == -1);
    S_CHECK(nsq_curve_client_check(NULL, NULL, error, sizeof error) == 0);
    chmod(b_secret, 0600);
    S_CHECK(nsq_curve_public_check("zmq-curve-broker-key-file", server, error, sizeof error) == 0);
    S_CHECK(nsq_curve_public_check("zmq-curve-broker-key-file", allow, error, sizeof error) == -1);
    S_CHECK(strstr(error, "--zmq-curve-broker-key-file=") != NULL);

    S_CHECK(nsq_curve_server_check(NULL, "", error, sizeof error) == 0);
    S_CHECK(nsq_curve_server_check(secret, allow, error, sizeof error) == 0);
    S_CHECK(nsq_curve_server_check("", allow, error, sizeof error) == -1);
    chmod(secret, 0604);
    S_CHECK(nsq_curve_server_check(secret, NULL, error, sizeof error) == -1);
    S_CHECK(strstr(error, "mode 0604 is wider than 0600") != NULL);
    chmod(secret, 0600);
    nsq_curve_server_t *self = nsq_curve_server_new(secret, allow, error, sizeof error);
    S_CHECK(self != NULL);
    // A second server in the process, with its own list (b alone)
    char allow_second[PATH_MAX], b_second[PATH_MAX + 8];
    snprintf(allow_second, sizeof allow_second, "%s/allow-second", dir);
    snprintf(b_second, sizeof b_second, "%s/b", allow_second);
    S_CHECK(mkdir(allow_second, 0700) == 0 && link(b, b_second) == 0);
    nsq_curve_server_t *second = nsq_curve_server_new(secret, allow_second, error, sizeof error);
    S_CHECK(second != NULL);
    zsock_t *router = zsock_new(ZMQ_ROUTER), *router_second = zsock_new(ZMQ_ROUTER);
    int port = -1, port_second = -1;
    if (self && router && nsq_curve_server_apply(self, router) == 0)
        port = zsock_bind(router, "tcp://127.0.0.1:*");
    if (second && router_second && nsq_curve_server_apply(second, router_second) == 0)
        port_second = zsock_bind(router_second, "tcp://127.0.0.1:*");
    S_CHECK(port > 0 && port_second > 0);
    if (port_second > 0) {
        zsock_t *client_a = s_test_client(&keys_a, port_second);
        zsock_t *client_b = s_test_client(&keys_b, port_second);
        S_CHECK(s_test_reaches(router_second, client_b, 5000));
        S_CHECK(!s_test_reaches(router_second, client_a, 300));
        zsock_destroy(&client_a), zsock_destroy(&client_b);
    }
    if (port > 0) {
        zsock_t *plain = s_test_client(NULL, port), *client_a = s_test_client(&keys_a, port);
        zsock_t *client_b = s_test_client(&keys_b, port);
        zsock_t *lost = s_test_client(&wrong_server, port);
        S_CHECK(s_test_reaches(router, client_a, 5000));
        S_CHECK(!s_test_reaches(router, plain, 300));
        S_CHECK(!s_test_reaches(router, lost, 300));
        S_CHECK(!s_test_reaches(router, client_b, 300));
        // b is added: refused until the reload, accepted after it
        S_CHECK(rename(b, b_allowed) == 0);
        zsock_destroy(&client_b);
        client_b = s_test_client(&keys_b, port);
        S_CHECK(!s_test_reaches(router, client_b, 300));
        nsq_curve_reload_request();
        bool reached = false;
        for (int64_t deadline = zclock_mono() + 5000; !reached && zclock_mono() < deadline;) {
            zsock_destroy(&client_b);  // a refused connection is not retried at once
            client_b = s_test_client(&keys_b, port);
            reached = s_test_reaches(router, client_b, 300);
        }
        S_CHECK(reached);
        zsock_destroy(&plain), zsock_destroy(&client_a), zsock_destroy(&client_b);
        zsock_destroy(&lost);
    }
    zsock_destroy(&router);
    zsock_destroy(&router_second);
    nsq_curve_server_destroy(&second);
    nsq_curve_server_destroy(&self);
    nsq_curve_server_destroy(&self);
    char command[PATH_MAX + 16];
    snprintf(command, sizeof command, "rm -rf %s", dir);
    if (system(command) != 0)
        failed = 1;
    return failed ? -1 : 0;
}
