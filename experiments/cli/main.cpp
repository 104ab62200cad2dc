#include "experiments/cli/cli.hpp"

int main(int argc, char** argv) { return expt::experiments::run_cli(argc, argv); }
