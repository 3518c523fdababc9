// tocsin: parses the command line and hands over to the app library.
#include "app/cli.h"

int main(int argc, char** argv) { return tocsin::app::run_cli(argc, argv); }
