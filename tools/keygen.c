/*  nsq-keygen - write a CURVE key pair in czmq's certificate format
    SPDX-License-Identifier: MIT

    nsq-keygen NAME writes NAME (the public certificate: give it to the
    other side, or put it in a server's --zmq-curve-allow-dir) and
    NAME_secret (the key pair, mode 0600: --zmq-curve-secret-key-file for
    a broker or lookupd, --zmq-curve-key-file for a client). It refuses to
    overwrite either file. Prints the public key on stdout; the secret key
    is never printed.
*/
#include <czmq.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "nsq_curve.h"

static int s_usage(FILE *out)
{
    fprintf(out, "Usage: nsq-keygen NAME\n"
                 "Writes a CURVE key pair as czmq certificates: NAME (public) and NAME_secret\n"
                 "(mode 0600). Existing files are never overwritten.\n");
    return out == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
        return s_usage(stdout);
    if (argc == 2 && strcmp(argv[1], "--version") == 0)
        return printf("nsq-keygen %s\n", NSQ_VERSION) < 0;
    if (argc != 2 || argv[1][0] == '-' || !argv[1][0])
        return s_usage(stderr);
    char secret[4096];
    snprintf(secret, sizeof secret, "%s_secret", argv[1]);
    struct stat status;
    if (stat(argv[1], &status) == 0 || stat(secret, &status) == 0) {
        fprintf(stderr, "nsq-keygen: %s or %s exists already; not overwritten\n", argv[1], secret);
        return 1;
    }
    char error[512];
    if (nsq_curve_keys_write(argv[1], error, sizeof error) != 0) {
        fprintf(stderr, "nsq-keygen: %s\n", error);
        return 1;
    }
    zcert_t *cert = zcert_load(argv[1]);
    printf("%s\n", cert ? zcert_public_txt(cert) : "");
    zcert_destroy(&cert);
    return 0;
}
