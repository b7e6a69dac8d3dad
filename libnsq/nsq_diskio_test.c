#include "nsq_diskqueue_internal.h"
int nsq_diskio_test(void){return 0;}
