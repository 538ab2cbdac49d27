#include "layout_map.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "hdf5_io/tensor_io.hpp"

namespace hdf5_io::detail {

namespace {

constexpr const char* kMagic = "mpitrain-checkpoint-layout 1";

struct Extent {
  hsize_t begin = 0, end = 0;
  std::string path;
};

struct Walk {
  hid_t file = -1;
  hsize_t base = 0;
  std::vector<Extent> extents;
};

void widen(Extent& e, hsize_t begin, hsize_t size) {
  if (e.end == 0) e.begin = begin;
  e.begin = std::min(e.begin, begin);
  e.end = std::max(e.end, begin + size);
}

// Object header plus data of one dataset. Chunks are allocated in the order they are written, so
// the first and the last chunk bound the rest (looked up by index: no walk over every chunk).
herr_t visit(hid_t, const char* name, const H5O_info_t* info, void* op_data) {
  auto& w = *static_cast<Walk*>(op_data);
  if (info->type != H5O_TYPE_DATASET) return 0;
  Extent e{0, 0, std::string("/") + name};
  widen(e, w.base + info->addr, info->hdr.space.total);
  const hid_t ds = H5Dopen2(w.file, name, H5P_DEFAULT);
  if (ds < 0) return -1;
  const hid_t dcpl = H5Dget_create_plist(ds);
  const H5D_layout_t layout = dcpl >= 0 ? H5Pget_layout(dcpl) : H5D_LAYOUT_ERROR;
  if (dcpl >= 0) H5Pclose(dcpl);
  if (layout == H5D_CHUNKED) {
    const hid_t space = H5Dget_space(ds);  // (HDF5 1.10 does not take H5S_ALL here)
    hsize_t n = 0;
    if (space >= 0 && H5Dget_num_chunks(ds, space, &n) >= 0 && n > 0)
      for (hsize_t i : {hsize_t(0), n - 1}) {
        unsigned mask = 0;
        haddr_t addr = HADDR_UNDEF;
        hsize_t size = 0;
        if (H5Dget_chunk_info(ds, space, i, nullptr, &mask, &addr, &size) >= 0 && addr != HADDR_UNDEF)
          widen(e, w.base + addr, size);
      }
    if (space >= 0) H5Sclose(space);
  } else if (layout == H5D_CONTIGUOUS) {
    const haddr_t offset = H5Dget_offset(ds);  // already absolute
    if (offset != HADDR_UNDEF) widen(e, offset, H5Dget_storage_size(ds));
  }
  H5Dclose(ds);
  if (e.path.find('\n') == std::string::npos) w.extents.push_back(std::move(e));
  return 0;
}

}  // namespace

std::string collect_layout(const H5::H5File& file) {
  Walk w;
  w.file = file.getId();
  const hid_t fcpl = H5Fget_create_plist(w.file);
  if (fcpl >= 0) {
    H5Pget_userblock(fcpl, &w.base);
    H5Pclose(fcpl);
  }
  if (H5Ovisit2(w.file, H5_INDEX_NAME, H5_ITER_NATIVE, visit, &w, H5O_INFO_BASIC | H5O_INFO_HDR) < 0)
    throw CheckpointError("cannot map the datasets of " + file.getFileName());
  std::sort(w.extents.begin(), w.extents.end(), [](const Extent& a, const Extent& b) { return a.end > b.end; });
  std::ostringstream out;
  for (auto& e : w.extents) out << e.begin << ' ' << e.end << ' ' << e.path << '\n';
  return out.str();
}

void write_layout(const std::string& path, const std::string& layout) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw CheckpointError("cannot stat " + path + ": " + ec.message());
  std::string block = std::string(kMagic) + "\nfile_size " + std::to_string(size) + "\n";
  // Whole lines only, as many as fit (the map is sorted by reach, so the cut drops the first-written).
  const size_t room = size_t(kUserblockBytes) - 1;  // the map ends at a NUL
  for (size_t p = 0; p < layout.size();) {
    const size_t q = layout.find('\n', p) + 1;
    if (block.size() + (q - p) > room) break;
    block.append(layout, p, q - p);
    p = q;
  }
  block.push_back('\0');
  const int fd = ::open(path.c_str(), O_WRONLY);
  const bool ok = fd >= 0 && ::pwrite(fd, block.data(), block.size(), 0) == ssize_t(block.size());
  const int err = errno;
  if (fd >= 0) ::close(fd);
  if (!ok) throw CheckpointError("cannot write the layout map of " + path + ": " + std::strerror(err));
}

std::optional<std::string> truncation_report(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string block(size_t(kUserblockBytes), '\0');
  in.read(block.data(), std::streamsize(block.size()));
  block.resize(size_t(in.gcount()));
  block.resize(std::min(block.size(), block.find('\0')));
  std::istringstream map(block);
  std::string line, word;
  hsize_t written = 0;
  if (!std::getline(map, line) || line != kMagic) return std::nullopt;
  if (!(map >> word >> written) || word != "file_size") return std::nullopt;
  std::error_code ec;
  const hsize_t present = std::filesystem::file_size(path, ec);
  if (ec || present >= written) return std::nullopt;
  std::vector<std::string> cut;
  hsize_t begin = 0, end = 0;
  while (map >> begin >> end && std::getline(map >> std::ws, line))
    if (end > present) cut.push_back(line);
  std::reverse(cut.begin(), cut.end());  // in file order
  std::string msg = "checkpoint " + path + " is truncated (" + std::to_string(present) + " of " +
                    std::to_string(written) + " bytes): ";
  if (cut.empty()) return msg + "its datasets are whole but HDF5's index at the end of the file is cut off";
  msg += cut.size() > 1 ? "datasets " : "dataset ";
  constexpr size_t kNamed = 4;
  for (size_t i = 0; i < std::min(cut.size(), kNamed); ++i) msg += (i ? ", " : "") + cut[i];
  if (cut.size() > kNamed) msg += " and " + std::to_string(cut.size() - kNamed) + " more";
  return msg + (cut.size() > 1 ? " are" : " is") + " cut off";
}

}  // namespace hdf5_io::detail
