/*  nsq_json - the little JSON writing our HTTP APIs share
    SPDX-License-Identifier: MIT
*/
#include "nsq_json.h"

#include <stdlib.h>
#include <string.h>

void nsq_json_write_string(FILE *out, const char *text)
{
    fputc('"', out);
    for (const unsigned char *c = (const unsigned char *) text; *c; c++) {
        if (*c == '"' || *c == '\\')
            fprintf(out, "\\%c", *c);
        else if (*c < 0x20)
            fprintf(out, "\\u%04x", *c);
        else
            fputc(*c, out);
    }
    fputc('"', out);
}

int nsq_json_test(void)
{
    char *buffer = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buffer, &size);
    if (!out)
        return -1;
    nsq_json_write_string(out, "a\"b\\c\n\x01-\xc3\xa9");
    nsq_json_write_string(out, "");
    fclose(out);
    int rc = strcmp(buffer, "\"a\\\"b\\\\c\\u000a\\u0001-\xc3\xa9\"\"\"") == 0 ? 0 : -1;
    free(buffer);
    return rc;
}
