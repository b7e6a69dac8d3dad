/*  nsq_version - the library's version, for nsq.h users and the user agent
    every connection announces
    SPDX-License-Identifier: MIT
*/
#include "nsq.h"

const char *nsq_library_version(void)
{
    return NSQ_VERSION;
}
