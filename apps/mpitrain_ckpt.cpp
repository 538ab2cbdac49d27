// mpitrain-ckpt: look into, check and slim down mpitrain checkpoints (HDF5; see train/checkpoint.hpp).
//   inspect CKPT        tree of groups and datasets with dtypes, shapes, sizes, and the metadata
//   verify CKPT...      reads every dataset through its Fletcher-32 checksum
//   export CKPT OUT     writes the model weights (/model, /buffers) only
// Exit codes: 0 ok, 1 a checkpoint is missing, unreadable, corrupt or of another format, 2 usage.
#include <boost/program_options.hpp>
#include <H5Cpp.h>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "hdf5_io/checkpoint_file.hpp"

namespace po = boost::program_options;
namespace h5 = hdf5_io;

namespace {

constexpr const char* kUsage =
    "usage: mpitrain-ckpt inspect CKPT [--full]\n"
    "       mpitrain-ckpt verify CKPT [CKPT...]\n"
    "       mpitrain-ckpt export CKPT OUT\n"
    "CKPT may also be a checkpoint directory: its `latest` checkpoint is used.\n";

std::string human_bytes(double b) {
  std::ostringstream s;
  const char* unit[] = {"B", "KiB", "MiB", "GiB"};
  int u = 0;
  while (b >= 1024 && u < 3) b /= 1024, ++u;
  s << std::fixed << std::setprecision(u ? 1 : 0) << b << " " << unit[u];
  return s.str();
}

std::string attribute_text(const H5::H5Object& obj, const std::string& name, bool full) {
  H5::Attribute a = obj.openAttribute(name);
  if (a.getTypeClass() == H5T_INTEGER) return std::to_string(h5::get_int_attribute(obj, name));
  if (a.getTypeClass() != H5T_STRING) return "<non-string attribute>";
  std::string v = h5::get_attribute(obj, name);
  if (!full && v.size() > 100) v = v.substr(0, 97) + "...";
  return v;
}

void print_attributes(const H5::H5Object& obj, const std::string& indent, bool full) {
  for (int i = 0; i < obj.getNumAttrs(); ++i) {
    const std::string name = obj.openAttribute(unsigned(i)).getName();
    if (name == "dtype") continue;  // shown with the dataset
    std::cout << indent << "@" << name << " = " << attribute_text(obj, name, full) << "\n";
  }
}

void print_group(const H5::Group& g, const std::string& path, int depth, bool full, int64_t& datasets, double& bytes) {
  const std::string indent(size_t(depth) * 2, ' ');
  print_attributes(g, indent, full);
  for (hsize_t i = 0; i < g.getNumObjs(); ++i) {
    const std::string name = g.getObjnameByIdx(i), child = (path == "/" ? "" : path) + "/" + name;
    if (g.getObjTypeByIdx(i) == H5G_GROUP) {
      std::cout << indent << name << "/\n";
      print_group(g.openGroup(name), child, depth + 1, full, datasets, bytes);
      continue;
    }
    H5::DataSet ds = g.openDataSet(name);
    H5::DataSpace space = ds.getSpace();
    std::vector<hsize_t> dims(size_t(space.getSimpleExtentNdims()));
    if (!dims.empty()) space.getSimpleExtentDims(dims.data());
    std::ostringstream shape;
    shape << "[";
    for (size_t d = 0; d < dims.size(); ++d) shape << (d ? ", " : "") << dims[d];
    shape << "]";
    const double size = double(space.getSimpleExtentNpoints()) * double(ds.getDataType().getSize());
    const std::string dtype = h5::has_attribute(ds, "dtype") ? h5::get_attribute(ds, "dtype") : "?";
    std::cout << indent << std::left << std::setw(std::max<int>(1, 44 - depth * 2)) << name << " " << std::setw(9) << dtype
              << " " << std::setw(16) << shape.str() << " " << human_bytes(size) << "\n";
    ++datasets;
    bytes += size;
  }
}

// A directory means "its latest checkpoint".
std::string resolve(const std::string& p) {
  if (std::filesystem::is_directory(p)) {
    const std::string latest = h5::read_latest(p);
    if (latest.empty()) throw h5::CheckpointError(p + " is a directory without a `latest` checkpoint");
    return latest;
  }
  return p;
}

int inspect(const std::string& arg, bool full) {
  const std::string path = resolve(arg);
  H5::H5File f = h5::open_checkpoint(path);
  std::cout << path << " (" << h5::get_attribute(f.openGroup("/"), "format") << " v"
            << h5::get_int_attribute(f.openGroup("/"), "format_version") << ", "
            << human_bytes(double(std::filesystem::file_size(path))) << " on disk)\n";
  int64_t datasets = 0;
  double bytes = 0;
  print_group(f.openGroup("/"), "/", 0, full, datasets, bytes);
  std::cout << datasets << " datasets, " << human_bytes(bytes) << " of data\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string command;
  std::vector<std::string> files;
  bool full = false;
  po::options_description desc(std::string(kUsage) + "Options");
  desc.add_options()("help,h", "show this help")("full", po::bool_switch(&full), "inspect: show long attributes whole");
  po::options_description hidden;
  hidden.add_options()("command", po::value(&command))("files", po::value(&files));
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description pos;
  pos.add("command", 1).add("files", -1);
  try {
    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    if (command.empty()) throw po::error("no command given");
    if (command == "inspect" || command == "verify") {
      if (files.empty() || (command == "inspect" && files.size() != 1))
        throw po::error(command + " needs " + (command == "inspect" ? "one checkpoint" : "checkpoints"));
    } else if (command == "export") {
      if (files.size() != 2) throw po::error("export needs CKPT and OUT");
    } else {
      throw po::error("unknown command '" + command + "' (expected inspect, verify or export)");
    }
  } catch (const po::error& e) {
    std::cerr << "mpitrain-ckpt: " << e.what() << "\n" << kUsage;
    return 2;
  }
  try {
    if (command == "inspect") return inspect(files[0], full);
    if (command == "verify") {
      for (const auto& f : files) {
        const std::string path = resolve(f);
        const int64_t n = h5::verify_checkpoint(path);
        std::cout << "ok: " << path << ": " << n << " datasets read, every chunk's checksum verified\n";
      }
      return 0;
    }
    const std::string src = resolve(files[0]);
    h5::export_weights(src, files[1]);
    std::cout << "exported the weights of " << src << " to " << files[1] << "\n";
    return 0;
  } catch (const h5::CheckpointError& e) {
    std::cerr << "mpitrain-ckpt: CheckpointError: " << e.what() << "\n";
    return 1;
  } catch (const H5::Exception& e) {
    std::cerr << "mpitrain-ckpt: CheckpointError: HDF5 error in " << e.getFuncName() << ": " << e.getDetailMsg() << "\n";
    return 1;
  } catch (const std::exception& e) {  // e.g. a file system error on the path
    std::cerr << "mpitrain-ckpt: " << e.what() << "\n";
    return 1;
  }
}
