/*  nsq_crc32c - CRC32C (Castagnoli), the checksum of every disk queue record
    SPDX-License-Identifier: MIT

    Two ways to the same value: the SSE4.2 crc32 instruction, eight bytes
    at a time, where the CPU has it (x86-64 since 2008), and a constant
    table otherwise. Which one nsq_crc32c uses is decided once, before main
    runs, so there is no state to race on and the build needs no -msse4.2.
    The self-test checks that both give the same values (random buffers of
    every length and alignment, and RFC 3720's vectors) and measures them.

    API: nsq_crc32c, nsq_crc32c_table, nsq_crc32c_hardware,
    nsq_crc32c_has_hardware.
*/
#ifndef NSQ_CRC32C_H
#define NSQ_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// CRC32C of size bytes, continuing from crc (start with 0):
// nsq_crc32c(nsq_crc32c(0, a, n), b, m) is the CRC of a followed by b.
// The fastest path this CPU has. Thread-safe.
uint32_t nsq_crc32c(uint32_t crc, const void *data, size_t size);

// The same with the constant table (every CPU): a byte at a time.
uint32_t nsq_crc32c_table(uint32_t crc, const void *data, size_t size);

// The same with the SSE4.2 instruction. Call only when
// nsq_crc32c_has_hardware() is true (otherwise it is an illegal
// instruction; on other architectures it is the table).
uint32_t nsq_crc32c_hardware(uint32_t crc, const void *data, size_t size);

// True if this CPU has SSE4.2, so that nsq_crc32c uses the instruction.
bool nsq_crc32c_has_hardware(void);

// Self-test: both paths agree, known vectors; logs bytes/s of each path.
// Returns 0 on success.
int nsq_crc32c_test(void);

#endif
