#include "hdf5_io/checkpoint_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "error_stack.hpp"
#include "layout_map.hpp"

namespace hdf5_io {

namespace fs = std::filesystem;

void set_int_attribute(H5::H5Object& obj, const std::string& name, int64_t value) {
  if (obj.attrExists(name)) obj.removeAttr(name);
  H5::Attribute a = obj.createAttribute(name, H5::PredType::NATIVE_INT64, H5::DataSpace(H5S_SCALAR));
  a.write(H5::PredType::NATIVE_INT64, &value);
}

int64_t get_int_attribute(const H5::H5Object& obj, const std::string& name) {
  try {
    if (!obj.attrExists(name)) throw CheckpointError("attribute '" + name + "' missing on " + obj.getObjName());
    H5::Attribute a = obj.openAttribute(name);
    if (a.getTypeClass() != H5T_INTEGER)
      throw CheckpointError("attribute '" + name + "' of " + obj.getObjName() + " is not an integer");
    int64_t v = 0;
    a.read(H5::PredType::NATIVE_INT64, &v);
    return v;
  } catch (const H5::Exception& e) {
    throw CheckpointError("cannot read attribute '" + name + "' of " + obj.getObjName() + ": " + detail::hdf5_cause(e));
  }
}

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) throw CheckpointError("cannot open " + path + " to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw CheckpointError("fsync of " + path + " failed: " + std::strerror(err));
}

namespace {
std::string parent_dir(const std::string& path) {
  fs::path p = fs::path(path).parent_path();
  return p.empty() ? "." : p.string();
}
}  // namespace

CheckpointWriter::CheckpointWriter(std::string path) : path_(std::move(path)), tmp_(path_ + ".tmp") {
  file_ = create_file(tmp_, detail::kUserblockBytes);  // the user block holds the layout map
  H5::Group root = file_.openGroup("/");
  set_attribute(root, "format", kFormatName);
  set_int_attribute(root, "format_version", kFormatVersion);
}

CheckpointWriter::~CheckpointWriter() {
  if (committed_) return;
  try {
    file_.close();
  } catch (...) {
  }
  std::error_code ec;
  fs::remove(tmp_, ec);
}

void CheckpointWriter::commit() {
  std::optional<std::string> layout;
  try {
    file_.flush(H5F_SCOPE_GLOBAL);
    layout = detail::collect_layout(file_);
    // HDF5 closes a file only when its last handle goes: one still open elsewhere would mean the
    // fsync below runs before the last writes. Callers close their group handles first.
    if (H5Fget_obj_count(file_.getId(), H5F_OBJ_ALL | H5F_OBJ_LOCAL) > 1)
      throw CheckpointError("internal error: " + tmp_ + " still has open objects at commit");
    file_.close();
  } catch (const H5::Exception& e) {
    throw CheckpointError("cannot write " + tmp_ + ": " + e.getDetailMsg());
  }
  detail::write_layout(tmp_, layout);
  fsync_path(tmp_);
  // Test hook (fault injection): die after the data is durable but before it is renamed.
  if (const char* crash = std::getenv("MPITRAIN_TEST_CRASH_BEFORE_RENAME"); crash && *crash == '1') ::_exit(86);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    throw CheckpointError("cannot rename " + tmp_ + " to " + path_ + ": " + std::strerror(errno));
  committed_ = true;
  fsync_path(parent_dir(path_), true);
}

H5::H5File open_checkpoint(const std::string& path) {
  if (!fs::exists(path)) throw CheckpointError("checkpoint " + path + " does not exist");
  H5::H5File file;
  try {
    file = open_file(path);
  } catch (const CheckpointError&) {
    if (auto report = detail::truncation_report(path)) throw CheckpointError(*report);  // names the datasets
    throw;
  }
  H5::Group root;
  try {
    root = file.openGroup("/");
  } catch (const H5::Exception& e) {
    throw CheckpointError("cannot read the root group of " + path + " (corrupt?): " + detail::hdf5_cause(e));
  }
  if (!has_attribute(root, "format") || get_attribute(root, "format") != kFormatName)
    throw CheckpointError(path + " is an HDF5 file but not an mpitrain checkpoint (no format=\"" +
                          std::string(kFormatName) + "\" attribute)");
  const int64_t version = get_int_attribute(root, "format_version");
  if (version > kFormatVersion || version < 1)
    throw CheckpointError("checkpoint " + path + " has format version " + std::to_string(version) +
                          "; this mpitrain reads versions 1 to " + std::to_string(kFormatVersion) +
                          (version > kFormatVersion ? " (written by a newer mpitrain?)" : ""));
  return file;
}

namespace {
// Opening an object checks its header's checksum (attributes stored there included); every
// attribute is read as well, whatever its type (other tools may have added some), through our
// own string reader where mpitrain wrote it (which checks a large one's own checksum).
void verify_attributes(const H5::H5Object& obj) {
  for (int i = 0; i < obj.getNumAttrs(); ++i) {
    H5::Attribute a = obj.openAttribute(unsigned(i));
    H5::DataSpace space = a.getSpace();
    const hssize_t points = space.getSimpleExtentNpoints();
    H5::DataType file_type = a.getDataType();
    if (points <= 0) continue;  // a null dataspace holds nothing
    if (file_type.getClass() == H5T_STRING && space.getSimpleExtentType() == H5S_SCALAR &&
        !a.getStrType().isVariableStr()) {
      get_attribute(obj, a.getName());
      continue;
    }
    const hid_t native = H5Tget_native_type(file_type.getId(), H5T_DIR_ASCEND);
    if (native < 0) throw CheckpointError("attribute '" + a.getName() + "' of " + obj.getObjName() + " has an unreadable type");
    std::vector<char> bytes(size_t(points) * H5Tget_size(native));
    const herr_t rc = H5Aread(a.getId(), native, bytes.data());
    std::string cause = rc < 0 ? detail::hdf5_cause("H5Aread failed") : "";
    if (rc >= 0) H5Dvlen_reclaim(native, space.getId(), H5P_DEFAULT, bytes.data());  // frees what HDF5 allocated, if any
    H5Tclose(native);
    if (rc < 0) throw CheckpointError("cannot read attribute '" + a.getName() + "' of " + obj.getObjName() + ": " + cause);
  }
}

void verify_group(const H5::Group& g, int64_t& count) {
  for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
    const std::string name = g.getObjnameByIdx(i), path = (g.getObjName() == "/" ? "/" : g.getObjName() + "/") + name;
    try {
      const H5G_obj_t type = g.getObjTypeByIdx(i);  // reads the object's header: checks its checksum
      if (type == H5G_GROUP) {
        H5::Group child = g.openGroup(name);
        verify_attributes(child);
        verify_group(child, count);
      } else if (type == H5G_DATASET) {
        read_tensor(g, name);  // through Fletcher-32; throws naming the dataset
        verify_attributes(g.openDataSet(name));
        ++count;
      }
    } catch (const H5::Exception& e) {
      throw CheckpointError("cannot read " + path + " (corrupt?): " + detail::hdf5_cause(e));
    }
  }
}
}  // namespace

int64_t verify_checkpoint(const std::string& path) {
  H5::H5File file = open_checkpoint(path);
  int64_t count = 0;
  try {
    H5::Group root = file.openGroup("/");
    verify_attributes(root);
    verify_group(root, count);
  } catch (const H5::Exception& e) {
    throw CheckpointError("cannot walk " + path + " (corrupt?): " + detail::hdf5_cause(e));
  }
  return count;
}

void export_weights(const std::string& src, const std::string& dst) {
  if (fs::exists(dst) && fs::equivalent(src, dst)) throw CheckpointError("export would overwrite its source " + src);
  H5::H5File in = open_checkpoint(src);
  H5::Group in_root = in.openGroup("/");
  CheckpointWriter w(dst);
  H5::Group root = w.file().openGroup("/");
  set_attribute(root, "kind", "weights");
  for (const char* a : {"module", "config", "strategy", "library_version"})
    if (has_attribute(in_root, a)) set_attribute(root, a, get_attribute(in_root, a));
  for (const char* group : {"/model", "/buffers"}) {
    H5::Group out = require_group(w.file(), group);
    if (!in.nameExists(group)) continue;
    H5::Group g = in.openGroup(group);
    for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
      const std::string n = g.getObjnameByIdx(i);
      write_tensor(out, n, read_tensor(g, n));
    }
  }
  root.close();  // every handle into the file closed: commit() really closes it before the fsync
  w.commit();
}

std::string read_latest(const std::string& dir) {
  std::ifstream in(fs::path(dir) / "latest");
  std::string name;
  if (!in || !std::getline(in, name) || name.empty()) return "";
  return (fs::path(dir) / name).string();
}

void write_latest(const std::string& dir, const std::string& file_name) {
  const std::string tmp = (fs::path(dir) / "latest.tmp").string(), dst = (fs::path(dir) / "latest").string();
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << file_name << "\n";
    out.flush();
    if (!out) throw CheckpointError("cannot write " + tmp);
  }
  fsync_path(tmp);
  if (::rename(tmp.c_str(), dst.c_str()) != 0)
    throw CheckpointError("cannot rename " + tmp + " to " + dst + ": " + std::strerror(errno));
  fsync_path(dir, true);
}

int remove_stale_temporaries(const std::string& dir) {
  // Only names this library writes ("<checkpoint>.h5.tmp", "latest.tmp", "last.h5.tmp"): the
  // directory may hold other people's files.
  auto ours = [](const std::string& name) {
    return name == "latest.tmp" || (name.size() > 7 && name.compare(name.size() - 7, 7, ".h5.tmp") == 0);
  };
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && ours(e.path().filename().string()) && fs::remove(e.path(), ec)) ++n;
  return n;
}

}  // namespace hdf5_io
