#include "harness.h"
int main(int argc, char **argv)
{
    return it_run(argc, argv, NULL, 0);
}
