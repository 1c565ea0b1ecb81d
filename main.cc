// istio-ca: all behaviour lives in the libraries; this only hands over the command line.
#include "ca/cmd/cli.h"

int main(int argc, char** argv) { return istioca::ca::RunCli(argc, argv); }
