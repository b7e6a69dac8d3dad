/*  nsq_message - a published message, refcounted so fan-out never copies it
    SPDX-License-Identifier: MIT
*/
#include "nsq_message.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nsq_message_t *nsq_message_new_uninit(size_t size)
{
    if (size > UINT32_MAX)
        return NULL;
    nsq_message_t *self = malloc(sizeof(nsq_message_t) + size);
    if (!self)
        return NULL;
    self->id = 0;
    self->timestamp = 0;
    self->disk_position = 0;
    self->refs = 1;
    self->size = (uint32_t) size;
    return self;
}

nsq_message_t *nsq_message_new(const void *body, size_t size)
{
    nsq_message_t *self = nsq_message_new_uninit(size);
    if (self && size)
        memcpy(self->body, body, size);
    return self;
}

nsq_message_t *nsq_message_ref(nsq_message_t *self)
{
    assert(self->refs > 0);
    self->refs++;
    return self;
}

void nsq_message_unref(nsq_message_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    nsq_message_t *self = *self_p;
    *self_p = NULL;
    assert(self->refs > 0);
    if (--self->refs == 0)
        free(self);
}

void nsq_message_id_format(uint64_t id, char out[NSQ_MESSAGE_ID_HEX_SIZE + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = NSQ_MESSAGE_ID_HEX_SIZE - 1; i >= 0; i--) {
        out[i] = digits[id & 0xf];
        id >>= 4;
    }
    out[NSQ_MESSAGE_ID_HEX_SIZE] = '\0';
}

static int s_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int nsq_message_id_parse(const char *text, uint64_t *id)
{
    if (!text || strlen(text) != NSQ_MESSAGE_ID_HEX_SIZE)
        return -1;
    uint64_t value = 0;
    for (int i = 0; i < NSQ_MESSAGE_ID_HEX_SIZE; i++) {
        int digit = s_hex_value(text[i]);
        if (digit < 0)
            return -1;
        value = (value << 4) | (uint64_t) digit;
    }
    *id = value;
    return 0;
}

int nsq_message_test(void)
{
    nsq_message_t *message = nsq_message_new("hello", 5);
    if (!message || message->size != 5 || memcmp(message->body, "hello", 5) || message->refs != 1)
        return -1;
    nsq_message_t *second = nsq_message_ref(message);
    if (second != message || message->refs != 2)
        return -1;
    nsq_message_unref(&second);
    if (second != NULL || message->refs != 1)
        return -1;
    nsq_message_unref(&message);
    if (message != NULL)
        return -1;
    nsq_message_unref(&message);  // NULL is accepted

    nsq_message_t *empty = nsq_message_new(NULL, 0);
    if (!empty || empty->size != 0)
        return -1;
    nsq_message_unref(&empty);

    char hex[NSQ_MESSAGE_ID_HEX_SIZE + 1];
    nsq_message_id_format(0x0123456789abcdefULL, hex);
    if (strcmp(hex, "0123456789abcdef"))
        return -1;
    uint64_t id = 0;
    if (nsq_message_id_parse("0123456789ABCDEF", &id) || id != 0x0123456789abcdefULL)
        return -1;
    if (nsq_message_id_parse("0123", &id) == 0
        || nsq_message_id_parse("012345678zabcdef", &id) == 0)
        return -1;
    if (nsq_message_id_parse(NULL, &id) == 0)
        return -1;
    return 0;
}
