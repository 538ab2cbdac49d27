// TensorBoard's event file format, written by hand: a few protobuf fields do not justify a
// protobuf dependency (and Debian's libtorch does not export one for us to reuse).
//   record = uint64 length | uint32 masked_crc32c(length) | data | uint32 masked_crc32c(data)
//   Event  { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>

#include "mpitrain/errors.hpp"
#include "mpitrain/train/loggers.hpp"

#include "hdf5_io/crc32c.hpp"

namespace mpitrain {

namespace {


uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

void put_varint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(char(v | 0x80));
    v >>= 7;
  }
  s.push_back(char(v));
}
void put_key(std::string& s, int field, int wire) { put_varint(s, uint64_t(field) << 3 | uint64_t(wire)); }
void put_bytes(std::string& s, int field, const std::string& b) {
  put_key(s, field, 2);
  put_varint(s, b.size());
  s += b;
}
template <class T>
void put_fixed(std::string& s, int field, T v) {
  put_key(s, field, sizeof(T) == 8 ? 1 : 5);
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian, as protobuf's fixed types
  s.append(b, sizeof(T));
}

double now() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

}  // namespace

uint32_t crc32c(const void* data, size_t n) { return hdf5_io::crc32c(data, n); }

TensorBoardLogger::TensorBoardLogger(const std::string& dir) {
  std::filesystem::create_directories(dir);
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  path_ = dir + "/events.out.tfevents." + std::to_string(int64_t(now())) + "." + host;
  out_.open(path_, std::ios::binary);
  if (!out_) throw ConfigError("cannot write TensorBoard events to " + path_);
  std::string first;
  put_fixed(first, 1, now());
  put_bytes(first, 3, "brain.Event:2");
  write_record(first);
}

void TensorBoardLogger::write_record(const std::string& data) {
  const uint64_t len = data.size();
  char header[12];
  std::memcpy(header, &len, 8);
  const uint32_t lcrc = masked(crc32c(header, 8));
  std::memcpy(header + 8, &lcrc, 4);
  const uint32_t dcrc = masked(crc32c(data.data(), data.size()));
  out_.write(header, 12);
  out_.write(data.data(), std::streamsize(data.size()));
  out_.write(reinterpret_cast<const char*>(&dcrc), 4);
  out_.flush();  // a crashed run keeps what it logged
}

void TensorBoardLogger::log_metrics(const std::map<std::string, double>& metrics, int64_t step) {
  std::string summary;
  for (auto& [tag, v] : metrics) {
    std::string value;
    put_bytes(value, 1, tag);
    put_fixed(value, 2, float(v));
    put_bytes(summary, 1, value);
  }
  std::string event;
  put_fixed(event, 1, now());
  put_key(event, 2, 0);
  put_varint(event, uint64_t(step));
  put_bytes(event, 5, summary);
  write_record(event);
}

}  // namespace mpitrain
