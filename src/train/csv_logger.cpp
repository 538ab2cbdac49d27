#include <filesystem>
#include <iomanip>

#include "mpitrain/train/loggers.hpp"

namespace mpitrain {

CsvLogger::CsvLogger(const std::string& dir, Existing existing) : path_(dir + "/metrics.csv") {
  std::filesystem::create_directories(dir);
  if (existing == Append && std::filesystem::exists(path_)) return;  // a resumed run continues the same table
  std::ofstream(path_) << "step,name,value\n";
}

void CsvLogger::log_metrics(const std::map<std::string, double>& metrics, int64_t step) {
  std::ofstream f(path_, std::ios::app);
  for (auto& [k, v] : metrics) f << step << "," << k << "," << std::setprecision(9) << v << "\n";
}

}  // namespace mpitrain
