#include "src/cli.h"
int kvshare_main(int, char**) { return 0; }
