/*  nsq_diskqueue_record - the disk queue's record format
    SPDX-License-Identifier: MIT

    A record is [u32 LE length][u32 LE crc32c(length bytes + data)][data].
    The checksum covers the length so that a zero-filled tail (a crash
    before the page cache reached the disk) never reads as valid records:
    four zero bytes have a checksum that is not zero. The header is built
    over the pieces of a record (an iovec), so a caller never copies a
    payload into one buffer to checksum it.
*/
#include <string.h>

#include "nsq_crc32c.h"
#include "nsq_diskqueue_internal.h"

static void s_put_u32(uint8_t *out, uint32_t value)
{
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t) (value >> (8 * i));
}

uint32_t dq_get_u32(const uint8_t *in)
{
    return (uint32_t) in[0] | (uint32_t) in[1] << 8 | (uint32_t) in[2] << 16
           | (uint32_t) in[3] << 24;
}

// Fills header (NSQ_DISKQUEUE_HEADER_SIZE bytes) for the record made of
// the iov_count pieces of iov, size bytes in all.
void dq_record_header(uint8_t *header, const struct iovec *iov, int iov_count, size_t size)
{
    s_put_u32(header, (uint32_t) size);
    uint32_t crc = nsq_crc32c(0, header, 4);
    for (int i = 0; i < iov_count; i++)
        crc = nsq_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
    s_put_u32(header + 4, crc);
}

// True if the checksum in header matches its length and payload (the
// header's length bytes of it; payload may be NULL for an empty record).
bool dq_record_intact(const uint8_t *header, const uint8_t *payload)
{
    uint32_t length = dq_get_u32(header);
    uint32_t crc = nsq_crc32c(0, header, 4);
    if (length > 0)
        crc = nsq_crc32c(crc, payload, length);
    return crc == dq_get_u32(header + 4);
}
