// Placeholders for the run and plan commands, until RunCommand.cpp and
// PlanCommand.cpp replace this file.
#include "Commands.hpp"

#include <iostream>

namespace ringattn::driver {

int plan_command(const RunConfig &, const CommandLine &) {
  std::cerr << "ringattn plan: not implemented yet\n";
  return exit_failure;
}

} // namespace ringattn::driver
