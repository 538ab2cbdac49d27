#include "hdf5_io/tensor_io.hpp"

#include "chunk_reader.hpp"
#include "chunk_writer.hpp"
#include "error_stack.hpp"
#include "integrity.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <vector>

namespace hdf5_io {

namespace {

// HDF5 prints every error stack to stderr by default; we report our own (error_stack.hpp).
// Attributes live in the object header, which the file format checksums, as long as they are
// few enough and small enough to stay there ("compact"); larger ones carry their own checksum.
constexpr unsigned kMaxCompactAttributes = 1000;
constexpr size_t kLargestCompactAttribute = 60 * 1024;  // a header message holds at most 64 KiB
constexpr const char* kChecksumSuffix = ".fletcher32";

struct Quiet {
  Quiet() { detail::capture_hdf5_errors(); }
} quiet;

std::string where(const H5::H5Object& loc, const std::string& name) {
  std::string base = loc.getObjName();
  return (base == "/" ? "" : base) + "/" + name;
}

struct TypeInfo {
  const char* name;
  H5::PredType type;
};

TypeInfo type_of(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return {"float32", H5::PredType::NATIVE_FLOAT};
    case at::kDouble: return {"float64", H5::PredType::NATIVE_DOUBLE};
    case at::kBFloat16: return {"bfloat16", H5::PredType::NATIVE_UINT16};
    case at::kHalf: return {"float16", H5::PredType::NATIVE_UINT16};
    case at::kInt: return {"int32", H5::PredType::NATIVE_INT32};
    case at::kLong: return {"int64", H5::PredType::NATIVE_INT64};
    case at::kBool: return {"bool", H5::PredType::NATIVE_UINT8};
    case at::kByte: return {"uint8", H5::PredType::NATIVE_UINT8};
    default: throw CheckpointError(std::string("cannot store tensors of dtype ") + c10::toString(t) + " in HDF5");
  }
}

at::ScalarType scalar_type_named(const std::string& n, const std::string& ds) {
  for (auto t : {at::kFloat, at::kDouble, at::kBFloat16, at::kHalf, at::kInt, at::kLong, at::kBool, at::kByte})
    if (n == type_of(t).name) return t;
  throw CheckpointError("dataset " + ds + ": unknown dtype attribute '" + n + "'");
}

// Files written by other tools (h5py, numpy) carry no dtype attribute: take the stored type.
at::ScalarType native_scalar_type(const H5::DataSet& ds, const std::string& full) {
  const H5T_class_t cls = ds.getTypeClass();
  if (cls == H5T_FLOAT) {
    const size_t size = ds.getFloatType().getSize();
    if (size == 4) return at::kFloat;
    if (size == 8) return at::kDouble;
  } else if (cls == H5T_INTEGER) {
    H5::IntType t = ds.getIntType();
    const bool is_signed = t.getSign() != H5T_SGN_NONE;
    if (t.getSize() == 1 && !is_signed) return at::kByte;
    if (t.getSize() == 4 && is_signed) return at::kInt;
    if (t.getSize() == 8 && is_signed) return at::kLong;
  }
  throw CheckpointError("dataset " + full + ": stored type is not float32/64, uint8, int32 or int64 (convert it first)");
}

std::vector<hsize_t> dims_of(const H5::DataSpace& space) {
  std::vector<hsize_t> d(size_t(space.getSimpleExtentNdims()));
  if (!d.empty()) space.getSimpleExtentDims(d.data());
  return d;
}

}  // namespace

H5::H5File open_file(const std::string& path) {
  detail::capture_hdf5_errors();  // for threads other than the one that loaded the library
  try {
    if (!H5::H5File::isHdf5(path)) throw CheckpointError(path + " is not an HDF5 file");
    return H5::H5File(path, H5F_ACC_RDONLY);
  } catch (const H5::Exception& e) {
    throw CheckpointError("cannot open " + path + " (truncated or corrupt?): " + detail::hdf5_cause(e));
  }
}

H5::H5File create_file(const std::string& path, hsize_t userblock) {
  detail::capture_hdf5_errors();
  try {
    H5::FileCreatPropList fcpl;
    if (userblock > 0) fcpl.setUserblock(userblock);
    H5Pset_attr_phase_change(fcpl.getId(), kMaxCompactAttributes, 0);  // the root group's attributes
    H5::FileAccPropList fapl;
    fapl.setLibverBounds(H5F_LIBVER_V18, H5F_LIBVER_LATEST);  // checksummed object headers
    return H5::H5File(path, H5F_ACC_TRUNC, fcpl, fapl);
  } catch (const H5::Exception& e) {
    throw CheckpointError("cannot create " + path + ": " + e.getDetailMsg());
  }
}

H5::Group require_group(H5::H5File& file, const std::string& path) {
  H5::Group g = file.openGroup("/");
  size_t p = 1;
  while (p < path.size()) {
    size_t q = path.find('/', p);
    if (q == std::string::npos) q = path.size();
    const std::string part = path.substr(p, q - p);
    if (!part.empty() && !g.nameExists(part)) {
      const hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);  // attributes stay in the checksummed header
      H5Pset_attr_phase_change(gcpl, kMaxCompactAttributes, 0);
      const hid_t id = H5Gcreate2(g.getId(), part.c_str(), H5P_DEFAULT, gcpl, H5P_DEFAULT);
      H5Pclose(gcpl);
      if (id < 0) throw CheckpointError(detail::hdf5_cause("cannot create group " + where(g, part)));
      H5Gclose(id);
    }
    if (!part.empty()) g = g.openGroup(part);
    p = q + 1;
  }
  return g;
}

void write_tensor(H5::Group& parent, const std::string& name, const at::Tensor& tensor) {
  if (!tensor.defined()) throw CheckpointError("dataset " + where(parent, name) + ": undefined tensor");
  at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
  const TypeInfo ti = type_of(t.scalar_type());
  std::vector<hsize_t> dims(t.sizes().begin(), t.sizes().end());
  try {
    H5::DataSpace space = dims.empty() ? H5::DataSpace(H5S_SCALAR) : H5::DataSpace(int(dims.size()), dims.data());
    H5::DSetCreatPropList props;
    props.setAttrPhaseChange(kMaxCompactAttributes, 0);
    const bool chunked = !dims.empty() && t.numel() > 0;
    if (dims.empty()) props.setLayout(H5D_COMPACT);  // inside the checksummed object header
    std::vector<hsize_t> chunk = dims;
    const hsize_t row = chunked ? hsize_t(t.numel() / t.size(0)) * t.element_size() : 0;
    if (chunked) {
      // Chunks of up to 1 MiB along dimension 0 (the filter needs chunking; rows stay whole for
      // hyperslabs), as equal as possible: HDF5 stores an edge chunk at full size, padding included.
      const hsize_t max_rows = std::clamp<hsize_t>((1u << 20) / row, 1, dims[0]);
      const hsize_t n_chunks = (dims[0] + max_rows - 1) / max_rows;
      chunk[0] = (dims[0] + n_chunks - 1) / n_chunks;
      props.setChunk(int(chunk.size()), chunk.data());
      props.setFletcher32();
    }
    H5::DataSet ds = parent.createDataSet(name, ti.type, space, props);
    set_attribute(ds, "dtype", ti.name);  // before the data: the header stays in one piece, ahead of it
    detail::write_digest(ds, t);
    if (chunked)  // checksummed chunks written directly (chunk_writer.hpp): the same bytes, faster
      detail::write_chunks(ds, int(dims.size()), static_cast<const uint8_t*>(t.data_ptr()), size_t(dims[0]),
                           size_t(row), size_t(chunk[0]));
    else if (t.numel() > 0)
      ds.write(t.data_ptr(), ti.type);
  } catch (const H5::Exception& e) {
    throw CheckpointError("cannot write dataset " + where(parent, name) + ": " + e.getDetailMsg());
  }
}

hsize_t chunk_file_offset(const H5::DataSet& ds, hsize_t index) {
  const hid_t space = H5Dget_space(ds.getId());
  unsigned mask = 0;
  haddr_t addr = HADDR_UNDEF;
  hsize_t size = 0;
  const herr_t rc = space >= 0 ? H5Dget_chunk_info(ds.getId(), space, index, nullptr, &mask, &addr, &size) : -1;
  if (space >= 0) H5Sclose(space);
  if (rc < 0 || addr == HADDR_UNDEF)
    throw CheckpointError(detail::hdf5_cause("dataset " + ds.getObjName() + " has no chunk " + std::to_string(index)));
  const hid_t file = H5Iget_file_id(ds.getId());
  const hsize_t base = detail::chunk_address_base(file);
  H5Fclose(file);
  return base + addr;
}

std::vector<int64_t> dataset_shape(const H5::Group& parent, const std::string& name) {
  try {
    if (!parent.nameExists(name)) throw CheckpointError("dataset " + where(parent, name) + " is missing");
    auto d = dims_of(parent.openDataSet(name).getSpace());
    return {d.begin(), d.end()};
  } catch (const H5::Exception& e) {
    throw CheckpointError("cannot read dataset " + where(parent, name) + ": " + e.getDetailMsg());
  }
}

static at::Tensor read_impl(const H5::Group& parent, const std::string& name, int64_t start, int64_t count) {
  const std::string full = where(parent, name);
  try {
    if (!parent.nameExists(name)) throw CheckpointError("dataset " + full + " is missing");
    H5::DataSet ds = parent.openDataSet(name);
    const at::ScalarType st = has_attribute(ds, "dtype") ? scalar_type_named(get_attribute(ds, "dtype"), full)
                                                         : native_scalar_type(ds, full);
    H5::DataSpace file_space = ds.getSpace();
    std::vector<hsize_t> dims = dims_of(file_space);
    std::vector<int64_t> shape(dims.begin(), dims.end());
    if (start >= 0) {
      if (dims.empty() || start + count > int64_t(dims[0]) || count < 0)
        throw CheckpointError("dataset " + full + ": rows [" + std::to_string(start) + ", " + std::to_string(start + count) +
                              ") outside its " + std::to_string(dims.empty() ? 0 : dims[0]) + " rows");
      std::vector<hsize_t> off(dims.size(), 0), cnt = dims;
      off[0] = hsize_t(start);
      cnt[0] = hsize_t(count);
      shape[0] = count;
      if (count > 0) file_space.selectHyperslab(H5S_SELECT_SET, cnt.data(), off.data());
      dims = cnt;
    }
    at::Tensor t = at::empty(shape, at::TensorOptions(st));
    if (t.numel() == 0) return t;
    const TypeInfo ti = type_of(st);
    H5::DataSpace mem = dims.empty() ? H5::DataSpace(H5S_SCALAR) : H5::DataSpace(int(dims.size()), dims.data());
    try {
      if (start < 0) detail::check_chunk_index(ds, full);  // before reading: name a damaged index
      if (start < 0 && !dims.empty() &&  // checksummed chunks read directly (chunk_reader.hpp)
          detail::read_chunks(ds, ti.type, static_cast<uint8_t*>(t.data_ptr()), size_t(dims[0]),
                              size_t(t.numel() / int64_t(dims[0])) * t.element_size())) {
        detail::check_digest(ds, t, full);
        return t;
      }
      ds.read(t.data_ptr(), ti.type, mem, file_space);
      if (start < 0) detail::check_digest(ds, t, full);
    } catch (const H5::Exception& e) {  // here, before ds's destructor clears HDF5's error stack
      // A failed Fletcher-32 check surfaces here as a read error of this dataset.
      throw CheckpointError("cannot read dataset " + full + " (corrupt or truncated?): " + detail::hdf5_cause(e));
    }
    return t;
  } catch (const H5::Exception& e) {
    throw CheckpointError("cannot read dataset " + full + " (corrupt or truncated?): " + e.getDetailMsg());
  }
}

at::Tensor read_tensor(const H5::Group& parent, const std::string& name) { return read_impl(parent, name, -1, -1); }

at::Tensor read_rows(const H5::Group& parent, const std::string& name, int64_t start, int64_t count) {
  if (start < 0) throw CheckpointError("dataset " + where(parent, name) + ": negative start row");
  return read_impl(parent, name, start, count);
}

void set_attribute(H5::H5Object& obj, const std::string& name, const std::string& value) {
  H5::StrType type(H5::PredType::C_S1, std::max<size_t>(1, value.size()));  // 0-size types do not exist
  type.setCset(H5T_CSET_UTF8);
  type.setStrpad(H5T_STR_NULLPAD);
  const std::string sum_name = name + kChecksumSuffix;
  if (obj.attrExists(name)) obj.removeAttr(name);
  if (obj.attrExists(sum_name)) obj.removeAttr(sum_name);
  H5::Attribute a = obj.createAttribute(name, type, H5::DataSpace(H5S_SCALAR));
  a.write(type, value);
  if (value.size() > kLargestCompactAttribute) {  // stored outside the header, where nothing checks it
    const int64_t sum = detail::fletcher32(reinterpret_cast<const uint8_t*>(value.data()), value.size());
    H5::Attribute s = obj.createAttribute(sum_name, H5::PredType::NATIVE_INT64, H5::DataSpace(H5S_SCALAR));
    s.write(H5::PredType::NATIVE_INT64, &sum);
  }
}

std::string get_attribute(const H5::H5Object& obj, const std::string& name) {
  std::string v;
  bool bad_sum = false;
  try {
    if (!obj.attrExists(name)) throw CheckpointError("attribute '" + name + "' missing on " + obj.getObjName());
    H5::Attribute a = obj.openAttribute(name);
    a.read(a.getStrType(), v);
    if (obj.attrExists(name + kChecksumSuffix)) {
      int64_t sum = 0;
      obj.openAttribute(name + kChecksumSuffix).read(H5::PredType::NATIVE_INT64, &sum);
      bad_sum = sum != int64_t(detail::fletcher32(reinterpret_cast<const uint8_t*>(v.data()), v.size()));
    }
  } catch (const H5::Exception& e) {
    throw CheckpointError("cannot read attribute '" + name + "' of " + obj.getObjName() + ": " + detail::hdf5_cause(e));
  }
  if (bad_sum) throw CheckpointError("attribute '" + name + "' of " + obj.getObjName() + " is corrupt (Fletcher-32 mismatch)");
  return v;
}

bool has_attribute(const H5::H5Object& obj, const std::string& name) {
  try {
    return obj.attrExists(name);
  } catch (const H5::Exception& e) {
    throw CheckpointError("cannot read the attributes of " + obj.getObjName() + ": " + detail::hdf5_cause(e));
  }
}

}  // namespace hdf5_io
