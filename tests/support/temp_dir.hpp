// A fresh directory per test under the system's temporary directory, removed with everything in
// it when the test ends. Shared by the unit tests of every layer.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>
#include <system_error>

namespace mpitrain::test {

struct TempDir {
  explicit TempDir(const std::string& prefix = "mpitrain-test")
      : path(std::filesystem::temp_directory_path() /
             (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return (path / name).string(); }

  std::filesystem::path path;
  static inline int counter = 0;
};

}  // namespace mpitrain::test
