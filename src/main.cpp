#include "src/commands/cli.h"
int main(int argc, char** argv) { return kvshare_main(argc, argv); }
