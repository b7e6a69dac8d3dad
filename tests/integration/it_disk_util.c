/*  it_disk_util - what the it_disk* cases share: data dirs, brokers on them,
    numbered bodies
    SPDX-License-Identifier: MIT

    Plain helpers over the harness; see it_disk_util.h.
*/
#include "it_disk_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void disk_data_dir(char *dir, size_t size, const char *name)
{
    snprintf(dir, size, "%s/%s", it_tmp_dir(), name);
    IT_ASSERT(mkdir(dir, 0755) == 0, "mkdir %s: %s", dir, strerror(errno));
}

it_broker_t *disk_start(const char *dir, const char *extra1, const char *extra2)
{
    char data_flag[1100];
    snprintf(data_flag, sizeof data_flag, "--data-path=%s", dir);
    const char *flags[] = {data_flag, "--log-level=info", extra1, extra2, NULL};
    return it_broker_start(flags);
}

void disk_publish(it_broker_t *broker, const char *topic, int first, int count)
{
    char path[128];
    snprintf(path, sizeof path, "/mpub?topic=%s", topic);
    char *body = malloc(1000 * 9 + 1);  // sprintf adds a NUL
    IT_ASSERT(body, "out of memory");
    for (int start = first; start < first + count; start += 1000) {
        int batch = first + count - start < 1000 ? first + count - start : 1000;
        size_t size = 0;
        for (int i = 0; i < batch; i++)
            size += (size_t) sprintf(body + size, "m-%06d\n", start + i);
        it_http_expect(broker, "POST", path, body, size - 1, 200, NULL);
    }
    free(body);
}

int disk_number(const it_delivery_t *delivery)
{
    int number;
    if (delivery->size != 8 || sscanf(delivery->body, "m-%06d", &number) != 1)
        return -1;
    return number;
}
