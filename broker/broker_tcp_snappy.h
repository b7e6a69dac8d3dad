/*  broker_tcp_snappy - snappy's framing format, as NSQ's snappy upgrade
    speaks it
    SPDX-License-Identifier: MIT

    nsqd wraps the connection in Go's snappy.Reader and snappy.Writer, which
    speak the framing format of snappy's framing_format.txt, not raw
    snappy blocks: a stream identifier chunk (0xff, "sNaPpY") first, then
    chunks of [type][3-byte LE length][data]. Data chunks carry a masked
    CRC32C (4 bytes LE) of their uncompressed bytes, then the bytes, either
    compressed (type 0x00) or as they are (0x01), at most 64 KiB
    uncompressed each; padding (0xfe) and reserved skippable chunks
    (0x80..0xfd) are skipped; reserved unskippable ones (0x02..0x7f) are an
    error. The blocks themselves go through libsnappy's C API.

    Pure functions over buffers; a bool per direction says whether the
    stream identifier has been written or read.

    API: broker_tcp_snappy_encode, broker_tcp_snappy_decode.
*/
#ifndef BROKER_TCP_SNAPPY_H
#define BROKER_TCP_SNAPPY_H

#include <stdbool.h>
#include <stddef.h>

#include "broker_buffer.h"

// Largest uncompressed data per chunk.
#define BROKER_TCP_SNAPPY_CHUNK 65536

// Appends size bytes as chunks to out, after the stream identifier if
// *started is false (then sets it). A chunk is stored as it is when
// compressing saves less than an eighth, as Go's writer does. Returns 0,
// or -1 if out of memory.
int broker_tcp_snappy_encode(bool *started, const void *data, size_t size, broker_buffer_t *out);

// Decodes the whole chunks at the front of in (consuming them) and appends
// their data to out, stopping early once out holds limit bytes or more; a
// partial chunk stays in in. *started records the stream identifier.
// Returns 0, or -1 if the stream is corrupt (no identifier first, a bad
// checksum, a chunk too long, an unskippable reserved chunk) or out of
// memory.
int broker_tcp_snappy_decode(bool *started, broker_buffer_t *in, broker_buffer_t *out,
                             size_t limit);

// Self-test; returns 0 on success.
int broker_tcp_snappy_test(void);

#endif
