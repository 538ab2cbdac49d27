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

#include "chunk_writer.hpp"
#include "hdf5_io/tensor_io.hpp"

namespace hdf5_io::detail {

namespace {

constexpr const char* kMagic = "mpitrain-checkpoint-layout 1";

// The object-info struct with a header address (HDF5 1.12 renamed the 1.10 one; H5Ovisit2 takes it).
#if H5_VERSION_GE(1, 12, 0)
using ObjectInfo = H5O_info1_t;
#else
using ObjectInfo = H5O_info_t;
#endif

struct Extent {
  hsize_t begin = 0, end = 0;
  std::string path;
};

struct Walk {
  hid_t file = -1;
  hsize_t userblock = 0, chunk_base = 0;  // object addresses are relative to the user block's end
  std::vector<Extent> extents;
};

void widen(Extent& e, hsize_t begin, hsize_t size) {
  if (e.end == 0) e.begin = begin;
  e.begin = std::min(e.begin, begin);
  e.end = std::max(e.end, begin + size);
}

std::string printable(std::string s) {  // one line per dataset, whatever its name holds
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return s;
}

// Object header plus data of one dataset. Chunks are allocated in the order they are written, so
// the first and the last chunk bound the rest (looked up by index: no walk over every chunk).
void add_dataset(Walk& w, const char* name, const ObjectInfo& info) {
  Extent e{0, 0, printable(std::string("/") + name)};
  widen(e, w.userblock + info.addr, info.hdr.space.total);
  const hid_t ds = H5Dopen2(w.file, name, H5P_DEFAULT);
  if (ds < 0) throw CheckpointError("cannot open " + e.path);
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
          widen(e, w.chunk_base + addr, size);
      }
    if (space >= 0) H5Sclose(space);
  } else if (layout == H5D_CONTIGUOUS) {
    const hsize_t size = H5Dget_storage_size(ds);
    const haddr_t offset = size > 0 ? H5Dget_offset(ds) : HADDR_UNDEF;  // already absolute
    if (offset != HADDR_UNDEF) widen(e, offset, size);
  }
  H5Dclose(ds);
  w.extents.push_back(std::move(e));
}

herr_t visit(hid_t, const char* name, const ObjectInfo* info, void* op_data) {
  if (info->type != H5O_TYPE_DATASET) return 0;
  try {  // nothing may unwind through HDF5's C frames
    add_dataset(*static_cast<Walk*>(op_data), name, *info);
    return 0;
  } catch (...) {
    return -1;
  }
}

}  // namespace

std::optional<std::string> collect_layout(const H5::H5File& file) {
  Walk w;
  w.file = file.getId();
  const hid_t fcpl = H5Fget_create_plist(w.file);
  if (fcpl >= 0) {
    H5Pget_userblock(fcpl, &w.userblock);
    H5Pclose(fcpl);
  }
  w.chunk_base = chunk_address_base(w.file);
  if (H5Ovisit2(w.file, H5_INDEX_NAME, H5_ITER_NATIVE, visit, &w, H5O_INFO_BASIC | H5O_INFO_HDR) < 0)
    return std::nullopt;  // the map only serves error messages: never fail a save for it
  std::sort(w.extents.begin(), w.extents.end(), [](const Extent& a, const Extent& b) { return a.end > b.end; });
  std::ostringstream out;
  for (auto& e : w.extents) out << e.begin << ' ' << e.end << ' ' << e.path << '\n';
  return out.str();
}

void write_layout(const std::string& path, const std::optional<std::string>& layout) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw CheckpointError("cannot stat " + path + ": " + ec.message());
  const long datasets = layout ? long(std::count(layout->begin(), layout->end(), '\n')) : -1;
  std::string block = std::string(kMagic) + "\nfile_size " + std::to_string(size) + "\ndatasets " +
                      std::to_string(datasets) + "\n";
  // Whole lines only, as many as fit (the map is sorted by reach, so the cut drops the first-written).
  const size_t room = size_t(kUserblockBytes) - 1;  // the map ends at a NUL
  for (size_t p = 0; layout && p < layout->size();) {
    const size_t q = layout->find('\n', p) + 1;
    if (block.size() + (q - p) > room) break;
    block.append(*layout, p, q - p);
    p = q;
  }
  block.push_back('\0');
  const int fd = ::open(path.c_str(), O_WRONLY);
  const ssize_t n = fd >= 0 ? ::pwrite(fd, block.data(), block.size(), 0) : -1;
  const int err = errno;
  if (fd >= 0) ::close(fd);
  if (n != ssize_t(block.size()))
    throw CheckpointError("cannot write the layout map of " + path + ": " + (n < 0 ? std::strerror(err) : "short write"));
}

std::optional<std::string> truncation_report(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string block(size_t(kUserblockBytes), '\0');
  in.read(block.data(), std::streamsize(block.size()));
  block.resize(size_t(in.gcount()));
  block.resize(std::min(block.size(), block.find('\0')));
  std::istringstream map(block);
  std::string line, word1, word2;
  hsize_t written = 0;
  long datasets = -1;
  if (!std::getline(map, line) || line != kMagic) return std::nullopt;
  if (!(map >> word1 >> written >> word2 >> datasets) || word1 != "file_size" || word2 != "datasets") return std::nullopt;
  std::error_code ec;
  const hsize_t present = std::filesystem::file_size(path, ec);
  if (ec || present >= written) return std::nullopt;
  std::string msg = "checkpoint " + path + " is truncated (" + std::to_string(present) + " of " +
                    std::to_string(written) + " bytes): ";
  if (datasets < 0) return msg + "which datasets are cut off is unknown (no dataset map)";
  std::vector<std::string> cut;
  hsize_t begin = 0, end = 0, first_listed = written;
  long listed = 0;
  while (map >> begin >> end && std::getline(map >> std::ws, line)) {
    ++listed;
    first_listed = std::min(first_listed, begin);
    if (end > present) cut.push_back(line);
  }
  std::reverse(cut.begin(), cut.end());  // in file order
  // A map too long for the user block lists the datasets nearest the end; the others come before.
  const long unlisted = std::max(0L, datasets - listed);
  const std::string more = unlisted > 0 && present < first_listed
                               ? " (and possibly some of the " + std::to_string(unlisted) + " written before them)"
                               : "";
  if (cut.empty() && more.empty()) return msg + "its datasets are whole but HDF5's index at the end of the file is cut off";
  if (cut.empty()) return msg + "datasets cut off: some of the " + std::to_string(unlisted) + " written first";
  msg += cut.size() > 1 ? "datasets " : "dataset ";
  constexpr size_t kNamed = 4;
  for (size_t i = 0; i < std::min(cut.size(), kNamed); ++i) msg += (i ? ", " : "") + cut[i];
  if (cut.size() > kNamed) msg += " and " + std::to_string(cut.size() - kNamed) + " more";
  return msg + (cut.size() > 1 ? " are" : " is") + " cut off" + more;
}

}  // namespace hdf5_io::detail
