/*  nsq_secret - files that hold secrets (TLS keys, CURVE secret keys)
    SPDX-License-Identifier: MIT

    A secret file must be a regular file that neither its group nor others
    can read or write (mode 0600 or narrower), like ssh's private keys: a
    key others can read is as good as published. A daemon refuses a wider
    one at start with one line that names the option, the file and its
    mode. The contents are never logged; the path may be.

    API: nsq_secret_file_check, nsq_secret_file_read.
*/
#ifndef NSQ_SECRET_H
#define NSQ_SECRET_H

#include <stddef.h>

// Checks that path (given by --option) is a regular file of mode 0600 or
// narrower. Returns 0, or -1 with one line in error, e.g.
// "--tls-key=/k.pem: mode 0644 is wider than 0600 (chmod 600 /k.pem)".
int nsq_secret_file_check(const char *option, const char *path, char *error, size_t size);

// Reads the whole file (at most 1 MiB) into a NUL-terminated buffer.
// Caller frees; *length gets the size (may be NULL). NULL with one line
// in error if the file cannot be read or is too large. Does not check the
// mode: call nsq_secret_file_check for a secret.
char *nsq_secret_file_read(const char *option, const char *path, size_t *length, char *error,
                           size_t size);

// Self-test; returns 0 on success.
int nsq_secret_test(void);

#endif
