/*  broker_allocator - the memory allocator's settings for nsq-broker
    SPDX-License-Identifier: MIT

    Linked only when nsq-broker is built with jemalloc (meson option
    jemalloc, on by default where libjemalloc-dev is installed and no
    sanitizer runs).

    Why: a broker whose consumers fall behind grows its in-memory queues by
    hundreds of megabytes at the rate messages arrive, and every fresh 4 KiB
    page costs a page fault (on this project's machines, under a hypervisor,
    more than half the broker's CPU while a backlog builds). glibc's malloc
    backs its thread arenas with 4 KiB pages unless GLIBC_TUNABLES is set
    before the process starts. jemalloc reads its settings from this symbol
    at its first allocation:
    - thp:always backs its memory with transparent huge pages where the
      kernel allows them on request (the "madvise" mode of Debian's
      kernels): one fault per 2 MiB;
    - narenas:1 keeps one arena for all threads (each thread still has its
      own cache), so an idle broker holds a few huge pages, not a few per
      arena.
    MALLOC_CONF in the environment still overrides each setting.
*/

//  Read by jemalloc (a weak symbol in libjemalloc that this one replaces).
extern const char *malloc_conf;
const char *malloc_conf = "thp:always,narenas:1";
