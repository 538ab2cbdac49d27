// hdf5_io (DESIGN §2: its own library): tensors <-> HDF5 datasets on the serial HDF5 C++ API.
// Datasets are chunked with HDF5's Fletcher-32 checksum filter, so corruption is detected on
// read. bf16 / fp16 / bool are stored as 16-bit / 8-bit integers with a "dtype" attribute
// (HDF5 1.10 has no such native types); every dataset carries "dtype" so readers (h5py) know.
#pragma once
#include <ATen/core/Tensor.h>
#include <H5Cpp.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace hdf5_io {

/// Any failure to read or write a checkpoint-like file: names the file/dataset and the problem.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Opens (read-only) or creates (truncating) an HDF5 file; CheckpointError naming the path.
/// Files are created in the HDF5 1.8 format (readable by HDF5 >= 1.8 and every h5py), whose object
/// headers carry checksums: with fixed-length string attributes and compact 0-d datasets stored
/// inside the headers, every byte written is checksummed (chunked data by Fletcher-32).
/// `userblock`: bytes reserved at the front of the file for the caller (0 or a power of 2 >= 512).
H5::H5File open_file(const std::string& path);
H5::H5File create_file(const std::string& path, hsize_t userblock = 0);
/// The group at `path` ("/a/b"), created with its parents when missing.
H5::Group require_group(H5::H5File& file, const std::string& path);

/// Writes a contiguous CPU tensor of float32/64, bfloat16, float16, int32, int64, uint8 or bool to
/// `parent`/`name` (chunked, Fletcher-32; 0-d tensors stored as shape [] scalars inside the
/// dataset's checksummed object header).
void write_tensor(H5::Group& parent, const std::string& name, const at::Tensor& t);
/// Reads it back with the dtype and shape it was written with (datasets of other writers, without
/// the dtype attribute: float32/64, uint8, int32, int64 by their stored type). A failed checksum, a missing
/// dataset or an unsupported type raises CheckpointError naming the dataset's full path.
at::Tensor read_tensor(const H5::Group& parent, const std::string& name);
/// Rows [start, start + count) along dimension 0 only (a per-rank hyperslab).
at::Tensor read_rows(const H5::Group& parent, const std::string& name, int64_t start, int64_t count);
/// Byte offset in the file of chunk `index` (in HDF5's chunk order) of a chunked dataset, user
/// block included whatever the HDF5 version's convention. CheckpointError if it has no such chunk.
hsize_t chunk_file_offset(const H5::DataSet& ds, hsize_t index);
/// Shape of a dataset without reading it.
std::vector<int64_t> dataset_shape(const H5::Group& parent, const std::string& name);

/// String attributes, written fixed-length UTF-8 so they sit in the checksummed object header
/// (h5py returns them as bytes: `.decode()`); both fixed and variable-length ones are read.
/// JSON goes in as text.
void set_attribute(H5::H5Object& obj, const std::string& name, const std::string& value);
std::string get_attribute(const H5::H5Object& obj, const std::string& name);  // CheckpointError if missing
bool has_attribute(const H5::H5Object& obj, const std::string& name);

}  // namespace hdf5_io
