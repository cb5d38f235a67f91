#include "src/cli.h"
int main(int argc, char** argv) { return kvshare_main(argc, argv); }
