/*  broker_tcp_snappy - snappy's framing format, as NSQ's snappy upgrade
    speaks it
    SPDX-License-Identifier: MIT
*/
#include "broker_tcp_snappy.h"

#include <snappy-c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nsq_crc32c.h"

#define CHUNK_COMPRESSED   0x00
#define CHUNK_UNCOMPRESSED 0x01
#define CHUNK_PADDING      0xfe
#define CHUNK_IDENTIFIER   0xff

static const uint8_t s_identifier[10] = {0xff, 6, 0, 0, 's', 'N', 'a', 'P', 'p', 'Y'};

// The framing format's checksum: CRC32C, rotated and offset so that a
// CRC of data holding CRCs does not degenerate.
static uint32_t s_masked_crc(const void *data, size_t size)
{
    uint32_t crc = nsq_crc32c(0, data, size);
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static void s_put_u24(uint8_t *out, size_t value)
{
    out[0] = (uint8_t) value;
    out[1] = (uint8_t) (value >> 8);
    out[2] = (uint8_t) (value >> 16);
}

static void s_put_u32(uint8_t *out, uint32_t value)
{
    s_put_u24(out, value);
    out[3] = (uint8_t) (value >> 24);
}

static uint32_t s_get_u32(const uint8_t *in)
{
    return (uint32_t) in[0] | (uint32_t) in[1] << 8 | (uint32_t) in[2] << 16
           | (uint32_t) in[3] << 24;
}

// Appends one data chunk of size (<= BROKER_TCP_SNAPPY_CHUNK) bytes.
static int s_encode_chunk(const uint8_t *data, size_t size, broker_buffer_t *out)
{
    size_t most = snappy_max_compressed_length(size);
    uint8_t *room = broker_buffer_reserve(out, 8 + (most > size ? most : size));
    if (!room)
        return -1;
    size_t compressed = most;
    uint8_t type = CHUNK_COMPRESSED;
    if (snappy_compress((const char *) data, size, (char *) room + 8, &compressed) != SNAPPY_OK
        || compressed >= size - size / 8) {
        type = CHUNK_UNCOMPRESSED;
        compressed = size;
        memcpy(room + 8, data, size);
    }
    room[0] = type;
    s_put_u24(room + 1, 4 + compressed);
    s_put_u32(room + 4, s_masked_crc(data, size));
    broker_buffer_commit(out, 8 + compressed);
    return 0;
}

int broker_tcp_snappy_encode(bool *started, const void *data, size_t size, broker_buffer_t *out)
{
    if (!*started) {
        if (broker_buffer_append(out, s_identifier, sizeof s_identifier))
            return -1;
        *started = true;
    }
    const uint8_t *bytes = data;
    while (size > 0) {
        size_t piece = size < BROKER_TCP_SNAPPY_CHUNK ? size : BROKER_TCP_SNAPPY_CHUNK;
        if (s_encode_chunk(bytes, piece, out))
            return -1;
        bytes += piece;
        size -= piece;
    }
    return 0;
}

// Decodes one data chunk's payload (checksum + data) into out.
static int s_decode_chunk(uint8_t type, const uint8_t *payload, size_t size, broker_buffer_t *out)
{
    if (size < 4)
        return -1;
    uint32_t crc = s_get_u32(payload);
    const uint8_t *data = payload + 4;
    size -= 4;
    size_t length = size;
    if (type == CHUNK_COMPRESSED
        && (snappy_uncompressed_length((const char *) data, size, &length) != SNAPPY_OK
            || length > BROKER_TCP_SNAPPY_CHUNK))
        return -1;
    if (type == CHUNK_UNCOMPRESSED && length > BROKER_TCP_SNAPPY_CHUNK)
        return -1;
    uint8_t *room = broker_buffer_reserve(out, length ? length : 1);
    if (!room)
        return -1;
    if (type == CHUNK_COMPRESSED) {
        if (snappy_uncompress((const char *) data, size, (char *) room, &length) != SNAPPY_OK)
            return -1;
    } else if (length) {
        memcpy(room, data, length);
    }
    if (s_masked_crc(room, length) != crc)
        return -1;
    broker_buffer_commit(out, length);
    return 0;
}

int broker_tcp_snappy_decode(bool *started, broker_buffer_t *in, broker_buffer_t *out, size_t limit)
{
    while (broker_buffer_size(in) >= 4 && broker_buffer_size(out) < limit) {
        const uint8_t *chunk = broker_buffer_data(in);
        size_t length = (size_t) chunk[1] | (size_t) chunk[2] << 8 | (size_t) chunk[3] << 16;
        uint8_t type = chunk[0];
        if (!*started && type != CHUNK_IDENTIFIER)
            return -1;  // Go's reader wants the identifier first
        // A data chunk holds at most its checksum and the compressed form
        // of 64 KiB; anything longer is not worth waiting for.
        if (type <= CHUNK_UNCOMPRESSED
            && length > 4 + snappy_max_compressed_length(BROKER_TCP_SNAPPY_CHUNK))
            return -1;
        if (broker_buffer_size(in) - 4 < length)
            break;
        const uint8_t *payload = chunk + 4;
        if (type == CHUNK_IDENTIFIER) {
            if (length != 6 || memcmp(payload, s_identifier + 4, 6) != 0)
                return -1;
            *started = true;
        } else if (type <= CHUNK_UNCOMPRESSED) {
            if (s_decode_chunk(type, payload, length, out))
                return -1;
        } else if (type < 0x80) {
            return -1;  // reserved unskippable
        }               // padding and reserved skippable chunks are skipped
        broker_buffer_consume(in, 4 + length);
    }
    return 0;
}

// ---- self-test -----------------------------------------------------------

#define S_CHECK(condition)                                                                         \
    do {                                                                                           \
        if (!(condition)) {                                                                        \
            fprintf(stderr, "broker_tcp_snappy_test: %s:%d: %s\n", __FILE__, __LINE__,             \
                    #condition);                                                                   \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)

int broker_tcp_snappy_test(void)
{
    int rc = -1;
    broker_buffer_t *wire = broker_buffer_new(), *plain = broker_buffer_new();
    broker_buffer_t *in = broker_buffer_new(), *one = broker_buffer_new();
    size_t size = 3 * BROKER_TCP_SNAPPY_CHUNK + 1000;
    uint8_t *data = malloc(size);
    S_CHECK(wire && plain && in && one && data);
    // Compressible text first, then bytes that do not compress.
    for (size_t i = 0; i < size; i++)
        data[i] = i < size / 2 ? (uint8_t) ('a' + i % 7) : (uint8_t) (i * 2654435761u >> 13);
    bool wrote = false, read = false;
    S_CHECK(broker_tcp_snappy_encode(&wrote, data, size, wire) == 0 && wrote);
    S_CHECK(memcmp(broker_buffer_data(wire), s_identifier, sizeof s_identifier) == 0);
    S_CHECK(broker_buffer_size(wire) < size);  // the first half compressed
    // A known chunk, byte for byte: "a" is stored (compressing saves nothing).
    bool one_started = true;
    S_CHECK(broker_tcp_snappy_encode(&one_started, "a", 1, one) == 0);
    const uint8_t *chunk = broker_buffer_data(one);
    S_CHECK(broker_buffer_size(one) == 9 && chunk[0] == CHUNK_UNCOMPRESSED && chunk[1] == 5);
    S_CHECK(s_get_u32(chunk + 4) == s_masked_crc("a", 1) && chunk[8] == 'a');
    // Decoded a few bytes at a time, with padding and a skippable chunk
    // in between: the same bytes come back.
    const uint8_t extra[] = {0xfe, 2, 0, 0, 0, 0, 0x80, 1, 0, 0, 9};
    S_CHECK(broker_buffer_append(wire, extra, sizeof extra) == 0);
    S_CHECK(broker_tcp_snappy_encode(&wrote, "tail", 4, wire) == 0);
    const uint8_t *bytes = broker_buffer_data(wire);
    for (size_t fed = 0; fed < broker_buffer_size(wire); fed += 777) {
        size_t piece = broker_buffer_size(wire) - fed < 777 ? broker_buffer_size(wire) - fed : 777;
        broker_buffer_append(in, bytes + fed, piece);
        S_CHECK(broker_tcp_snappy_decode(&read, in, plain, SIZE_MAX) == 0);
    }
    S_CHECK(broker_buffer_size(in) == 0 && broker_buffer_size(plain) == size + 4);
    S_CHECK(memcmp(broker_buffer_data(plain), data, size) == 0);
    S_CHECK(memcmp(broker_buffer_data(plain) + size, "tail", 4) == 0);
    // The limit stops decoding between chunks.
    broker_buffer_clear(plain);
    broker_buffer_clear(in);
    read = false;
    broker_buffer_append(in, broker_buffer_data(wire), broker_buffer_size(wire));
    S_CHECK(broker_tcp_snappy_decode(&read, in, plain, 10) == 0);
    S_CHECK(broker_buffer_size(plain) == BROKER_TCP_SNAPPY_CHUNK && broker_buffer_size(in) > 0);
    // Corruption: a flipped data byte fails its checksum; no identifier;
    // an unskippable reserved chunk; an absurd length.
    const uint8_t *copy = broker_buffer_data(wire);
    size_t wire_size = broker_buffer_size(wire);
    for (int variant = 0; variant < 4; variant++) {
        broker_buffer_clear(in);
        broker_buffer_clear(plain);
        read = false;
        if (variant == 0) {
            broker_buffer_append(in, copy, wire_size);
            broker_buffer_data(in)[30] ^= 1;
        } else if (variant == 1) {
            broker_buffer_append(in, copy + sizeof s_identifier, wire_size - sizeof s_identifier);
        } else {
            broker_buffer_append(in, s_identifier, sizeof s_identifier);
            const uint8_t bad[2][4] = {{0x02, 0, 0, 0}, {0x00, 0xff, 0xff, 0xff}};
            broker_buffer_append(in, bad[variant - 2], 4);
        }
        S_CHECK(broker_tcp_snappy_decode(&read, in, plain, SIZE_MAX) == -1);
    }
    rc = 0;
done:
    free(data);
    broker_buffer_destroy(&wire);
    broker_buffer_destroy(&plain);
    broker_buffer_destroy(&in);
    broker_buffer_destroy(&one);
    return rc;
}
