#include "src/commands/cli.h"
#include "src/omp_wait.h"
int main(int argc, char** argv) {
    spin_briefly_in_openmp_waits(argv);
    return kvshare_main(argc, argv);
}
