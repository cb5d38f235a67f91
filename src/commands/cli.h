int kvshare_main(int argc, char** argv);
