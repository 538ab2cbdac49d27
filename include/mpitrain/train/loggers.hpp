// Metric loggers written by rank 0: CSV, and TensorBoard event files that TensorBoard's own
// reader loads (records framed with length + masked CRC32C, Event/Summary protobufs).
#pragma once
#include <cstdint>
#include <fstream>
#include <map>
#include <string>

namespace mpitrain {

class Logger {
 public:
  virtual ~Logger() = default;
  virtual void log_metrics(const std::map<std::string, double>& metrics, int64_t step) = 0;
};

/// <dir>/metrics.csv: step,name,value
class CsvLogger : public Logger {
 public:
  enum Existing { Replace, Append };  ///< Append: keep an existing metrics.csv (a resumed run)
  explicit CsvLogger(const std::string& dir, Existing existing = Replace);
  void log_metrics(const std::map<std::string, double>& metrics, int64_t step) override;

 private:
  std::string path_;
};

/// <dir>/events.out.tfevents.<seconds>.<host>: one scalar summary per metric and step.
class TensorBoardLogger : public Logger {
 public:
  explicit TensorBoardLogger(const std::string& dir);
  void log_metrics(const std::map<std::string, double>& metrics, int64_t step) override;
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& data);
  std::string path_;
  std::ofstream out_;
};

/// CRC-32C (Castagnoli), as TFRecord framing uses; exposed for tests.
uint32_t crc32c(const void* data, size_t n);

}  // namespace mpitrain
