// Shared by the test binaries that call fit() alone (spawn mode) and under mpirun (SPMD): a fresh
// directory per test and job, and a main() that only lets rank 0 print.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "mpitrain/launch/runtime.hpp"

namespace mpitrain::test {

/// Under mpirun every rank names the same directory (the job's PMIx namespace) and nobody deletes
/// it while another rank may be reading it; spawn mode owns its own.
struct FreshDir {
  std::string path;
  FreshDir(const std::string& suite, const std::string& name) {
    const char* job = std::getenv("PMIX_NAMESPACE");
    path = ::testing::TempDir() + "/mpitrain-" + suite + "-" + name + "-" + (job ? job : std::to_string(::getpid()));
    if (!job) std::filesystem::remove_all(path);
  }
  ~FreshDir() {  // after the last collective fit, so every rank is done with the files
    if (Runtime::current()->env().rank == 0) std::filesystem::remove_all(path);
  }
};

/// The body of main(): a Runtime first (spawned workers serve their task in it and exit), then the
/// tests, printed by rank 0 only under mpirun.
inline int run_fit_tests(int argc, char** argv) {
  Runtime rt(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (rt.role() == Role::Spmd && rt.env().rank != 0) {
    auto& l = ::testing::UnitTest::GetInstance()->listeners();
    delete l.Release(l.default_result_printer());
  }
  return RUN_ALL_TESTS();
}

}  // namespace mpitrain::test
