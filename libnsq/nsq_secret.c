/*  nsq_secret - files that hold secrets (TLS keys, CURVE secret keys)
    SPDX-License-Identifier: MIT
*/
#include "nsq_secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define S_READ_MAX (1024 * 1024)  // no key, certificate or CA bundle of ours is larger

int nsq_secret_file_check(const char *option, const char *path, char *error, size_t size)
{
    struct stat status;
    if (stat(path, &status) != 0) {
        snprintf(error, size, "--%s=%s: %s", option, path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(status.st_mode)) {
        snprintf(error, size, "--%s=%s: not a regular file", option, path);
        return -1;
    }
    unsigned mode = (unsigned) status.st_mode & 07777;
    if (mode & 077) {
        snprintf(error, size, "--%s=%s: mode %04o is wider than 0600 (chmod 600 %s)", option, path,
                 mode, path);
        return -1;
    }
    return 0;
}

char *nsq_secret_file_read(const char *option, const char *path, size_t *length, char *error,
                           size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat status;
    if (fd < 0 || fstat(fd, &status) != 0) {
        snprintf(error, size, "--%s=%s: %s", option, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    if (status.st_size > S_READ_MAX) {
        snprintf(error, size, "--%s=%s: larger than %d bytes", option, path, S_READ_MAX);
        close(fd);
        return NULL;
    }
    char *data = malloc((size_t) status.st_size + 1);
    size_t got = 0;
    while (data && got < (size_t) status.st_size) {
        ssize_t chunk = read(fd, data + got, (size_t) status.st_size - got);
        if (chunk < 0 && errno == EINTR)
            continue;
        if (chunk <= 0)
            break;
        got += (size_t) chunk;
    }
    close(fd);
    if (!data || got != (size_t) status.st_size) {
        snprintf(error, size, "--%s=%s: cannot read it", option, path);
        free(data);
        return NULL;
    }
    data[got] = '\0';
    if (length)
        *length = got;
    return data;
}

int nsq_secret_test(void)
{
    char path[] = "/tmp/nsq_secret_test.XXXXXX";
    int fd = mkstemp(path);  // mode 0600
    if (fd < 0)
        return -1;
    int failed = write(fd, "key", 3) != 3;
    close(fd);
    char error[256] = "";
    failed |= nsq_secret_file_check("tls-key", path, error, sizeof error) != 0;
    size_t length = 0;
    char *data = nsq_secret_file_read("tls-key", path, &length, error, sizeof error);
    failed |= !data || length != 3 || strcmp(data, "key") != 0;
    free(data);
    chmod(path, 0640);
    failed |= nsq_secret_file_check("tls-key", path, error, sizeof error) == 0;
    failed |= !strstr(error, "--tls-key=") || !strstr(error, "mode 0640 is wider than 0600");
    chmod(path, 0400);
    failed |= nsq_secret_file_check("tls-key", path, error, sizeof error) != 0;
    unlink(path);
    failed |= nsq_secret_file_check("tls-key", path, error, sizeof error) == 0;
    failed |= nsq_secret_file_read("tls-key", path, NULL, error, sizeof error) != NULL;
    failed |= nsq_secret_file_check("tls-key", "/tmp", error, sizeof error) == 0;
    return failed ? -1 : 0;
}
