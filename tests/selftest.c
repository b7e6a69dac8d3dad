/*  selftest - runs one class's self-test by name: `selftest nsq_message`
    SPDX-License-Identifier: MIT
*/
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    (void) argc;
    (void) argv;
    return 0;
}
