/*  it_worker_util - what the it_worker* cases share: metrics, probes, counts
    SPDX-License-Identifier: MIT

    Plain helpers over the harness; see it_worker_util.h.
*/
#include "it_worker_util.h"

#include <dirent.h>
#include <string.h>

int64_t worker_metric(const char *http, const char *name)
{
    return it_worker_metric(http, name);
}

int worker_probe(const char *http, const char *path)
{
    return it_http_to(http, "GET", path, NULL, 0, NULL);
}

int worker_count_lines(const char *path, const char *needle)
{
    return it_count_lines(path, needle);
}

void worker_wait_subscribed(it_broker_t *broker, const char *topic, const char *channel)
{
    IT_ASSERT_EVENTUALLY(it_channel_stat(broker, topic, channel, "client_count") == 1, 5000,
                         "the worker never subscribed to %s/%s", topic, channel);
}

int worker_count_files(const char *prefix)
{
    DIR *dir = opendir(it_tmp_dir());
    int count = 0;
    for (struct dirent *entry = dir ? readdir(dir) : NULL; entry; entry = readdir(dir))
        count += strncmp(entry->d_name, prefix, strlen(prefix)) == 0;
    if (dir)
        closedir(dir);
    return count;
}

bool worker_settled(it_broker_t *broker, const char *topic, const char *channel)
{
    return it_channel_settled(broker, topic, channel);
}
