/*  broker_config - the broker's settings, filled once from the options table
    SPDX-License-Identifier: MIT

    Each option of broker_config_options names the field it fills, so the
    table is the one place an option and its default are written.

    Plain data, read-only after start-up; shared by the core and the HTTP
    server threads without locks because nobody writes it after broker_new.
    Two exceptions, used by the core thread alone: disk_listing, the one
    listing of the data directory that the core makes at start and every
    disk queue opens from (the queues take their entries from it), and
    diskio, the disk I/O actor the queues hand their blocking work to.
*/
#ifndef BROKER_CONFIG_H
#define BROKER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "nsq_diskqueue.h"
#include "nsq_http_server.h"
#include "nsq_options.h"

#define BROKER_ADDRESS_MAX 256
#define BROKER_LOOKUPD_MAX 16  // --lookupd-address values
#define BROKER_AUTHD_MAX   8   // --auth-http-address values

typedef struct {
    char http_address[BROKER_ADDRESS_MAX];       // host:port for HTTP; port 0 = any free port
    char zmq_address[BROKER_ADDRESS_MAX];        // host:port for the ROUTER; port 0 = any
    char tcp_address[BROKER_ADDRESS_MAX];        // host:port for NSQ TCP V2; "" = none
    bool deflate;                                // TCP clients may negotiate deflate
    int64_t max_deflate_level;                   // 1..9, the most a client gets
    bool snappy;                                 // TCP clients may negotiate snappy
    int64_t output_buffer_timeout_ms;            // TCP: default wait before buffered frames go
    int64_t min_output_buffer_timeout_ms;        // TCP: shortest a client may ask for
    int64_t max_output_buffer_timeout_ms;        // TCP: longest a client may ask for
    int64_t max_output_buffer_size;              // TCP: largest output buffer a client may ask
    char broadcast_address[BROKER_ADDRESS_MAX];  // what we tell others to dial
    char data_path[1024];                        // directory for disk queues and metadata
    int64_t mem_queue_size;                      // messages kept in memory per queue
    int64_t mem_queue_bytes;                     // body bytes kept in memory per queue
    int64_t max_bytes_per_file;                  // disk queue segment size
    int64_t sync_every;                          // fsync after this many writes
    int64_t sync_timeout_ms;                     // fsync at least this often
    bool durable;                                // acknowledge publishes only once synced
    int64_t msg_timeout_ms;                      // default in-flight timeout
    int64_t max_msg_timeout_ms;                  // upper bound for IDENTIFY msg_timeout and TOUCH
    int64_t max_req_timeout_ms;                  // upper bound for REQ delay and defer
    int64_t max_msg_size;                        // bytes per message body
    int64_t max_body_size;                       // bytes per /mpub or MPUB request
    int64_t max_rdy_count;                       // upper bound for RDY
    int64_t heartbeat_interval_ms;               // default client heartbeat interval
    int64_t max_heartbeat_interval_ms;           // upper bound for IDENTIFY heartbeat
    int64_t drain_timeout_ms;                    // on $TERM, wait this long for in-flight FINs
    int64_t node_id;                             // 0..1023, part of every message id
    int http_threads;                            // libmicrohttpd thread pool size
    NSQ_HTTP_TLS_FIELDS;                         // --https-address, --tls-* (nsq_http_server.h)
    char zmq_curve_secret_key_file[1024];        // CURVE server key pair ("" = no CURVE)
    char zmq_curve_allow_dir[1024];              // allowed clients' public keys ("" = any)
    char zmq_curve_lookupd_key_file[1024];       // lookupd's public certificate (CURVE to lookupd)
    char lookupd_addresses[BROKER_LOOKUPD_MAX][BROKER_ADDRESS_MAX];  // lookupd ZeroMQ host:port
    int lookupd_count;                                               // entries used
    int64_t lookupd_heartbeat_ms;                                    // heartbeat to each lookupd
    char auth_http_addresses[BROKER_AUTHD_MAX][BROKER_ADDRESS_MAX];  // auth servers; none: no auth
    int auth_http_count;                                             // entries used
    int64_t auth_http_timeout_ms;                                    // per auth request
    nsq_diskqueue_listing_t *disk_listing;  // data_path's files at start, owned by the core
                                            // (NULL: each disk queue lists the directory)
    nsq_diskio_t *diskio;          // the node's disk I/O actor: queues run in async mode over it
                                   // (NULL: synchronous queues, for self-tests)
    int64_t test_clock_offset_ms;  // tests only: added to the wall clock message ids come from
    size_t test_disk_pending_max;  // tests only: disk queues' write buffer bound (0: default)
    int test_datasync_errno;       // tests only: the disk I/O actor's first fdatasync fails so
} broker_config_t;

// nsq-broker's options: one row per flag, with its default and its field.
extern const nsq_option_spec_t broker_config_options[];
extern const size_t broker_config_option_count;

// Fills self with the defaults of broker_config_options (NSQ's where NSQ
// has one), zeroes the rest, and sets the broadcast address to the
// hostname.
void broker_config_defaults(broker_config_t *self);

// What the self-tests start from: the defaults, data_path ("" = memory
// only), the NSQ TCP door on 127.0.0.1 at a free port, and the memory
// bounds (0 keeps a default).
void broker_config_for_test(broker_config_t *self, const char *data_path, int64_t mem_queue_size,
                            int64_t mem_queue_bytes);

// Sets an empty broadcast address to the hostname ("localhost" if there
// is none), as nsqd does.
void broker_config_default_broadcast(broker_config_t *self);

#endif
