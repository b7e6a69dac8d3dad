/*  nsq-lookupd - which brokers hold which topics: brokers register over
    ZeroMQ, consumers and tools ask over HTTP
    SPDX-License-Identifier: MIT

    A thin shell: options (flags and NSQ_LOOKUPD_* environment, declared in
    lookupd_config.c, where each fills its field of lookupd_config_t), logging,
    start the lookupd actor, print the READY line, wait for SIGTERM/SIGINT,
    stop the actor, exit 0. Bad configuration or a failed start exits 1 with
    one line on stderr.
*/
#include <czmq.h>
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "lookupd.h"
#include "nsq_curve.h"
#include "nsq_daemon.h"
#include "nsq_http_client.h"
#include "nsq_log.h"
#include "nsq_options.h"

// --zmq-curve-broker-key-file: a public certificate, used with our own
// key pair (as a broker's --zmq-curve-lookupd-key-file is). Returns 0, or
// -1 with a reason.
static int s_broker_key_check(const lookupd_config_t *config, char *error, size_t size)
{
    if (!config->zmq_curve_broker_key_file[0])
        return 0;
    if (!config->zmq_curve_secret_key_file[0])
        return snprintf(error, size,
                        "--zmq-curve-broker-key-file needs --zmq-curve-secret-key-file (the "
                        "lookupd's key pair)"),
               -1;
    return nsq_curve_public_check("zmq-curve-broker-key-file", config->zmq_curve_broker_key_file,
                                  error, size);
}

// Checks what the table cannot and fills the broadcast address. Returns 0,
// or -1 with a reason.
static int s_configure(nsq_options_t *options, void *config_p, char *error, size_t size)
{
    (void) options;
    lookupd_config_t *config = config_p;
    lookupd_config_default_broadcast(config);
    for (size_t i = 0; i < config->peer_count; i++)
        if (!strrchr(config->peers[i], ':'))
            return snprintf(error, size, "--peer-http-address %s is not HOST:PORT",
                            config->peers[i]),
                   -1;
    if (!strrchr(config->http_address, ':') || !strrchr(config->zmq_address, ':'))
        return snprintf(error, size, "--http-address and --zmq-address must be HOST:PORT"), -1;
    nsq_http_tls_t tls = NSQ_HTTP_TLS_OF(config);
    nsq_http_client_tls_t client = {config->http_client_tls_root_ca_file,
                                    config->http_client_tls_cert, config->http_client_tls_key};
    if (nsq_curve_server_check(config->zmq_curve_secret_key_file, config->zmq_curve_allow_dir,
                               error, size)
        || nsq_http_client_tls_check(&client, "http-client-tls-key", error, size)
        || s_broker_key_check(config, error, size))
        return -1;
    return nsq_http_tls_check(&tls, config->https_address, error, size);
}

int main(int argc, char **argv)
{
    lookupd_config_t config;
    lookupd_config_defaults(&config);
    int exit_code =
        nsq_daemon_configure("nsq-lookupd", "NSQ_LOOKUPD", lookupd_config_options,
                             lookupd_config_option_count, argc, argv, s_configure, &config);
    nsq_options_hide(argc, argv, "auth-secret");  // config has its copy
    if (exit_code >= 0)
        return exit_code;
    const char *listening[] = {config.http_address, config.https_address, config.zmq_address};
    nsq_daemon_warn_if_open(listening, 3,
                            config.zmq_curve_secret_key_file[0] || config.tls_required);
    // libcurl (the console's polls) is set up here, before any thread: its
    // TLS library keeps per-thread state for the thread that initialises it.
    curl_global_init(CURL_GLOBAL_DEFAULT);
    exit_code = nsq_daemon_run(lookupd_actor, &config, config.http_address, config.zmq_address);
    curl_global_cleanup();
    return exit_code;
}
