/*  nsq_selftest - the self-tests of the classes whose API is nsq.h
    SPDX-License-Identifier: MIT

    Not installed. nsq.h is the installed client API and declares nothing
    for tests, so the consumer's and the producer's self-tests, which
    tests/selftest.c runs by name, are declared here.
*/
#ifndef NSQ_SELFTEST_H
#define NSQ_SELFTEST_H

// Self-tests; return 0 on success.
int nsq_consumer_test(void);
int nsq_producer_test(void);

#endif
