// The layout map: where each dataset of a checkpoint lies in the file, written as text into the
// file's HDF5 user block (the first kUserblockBytes, which HDF5 and h5py skip). HDF5 keeps its
// index (B-trees, heaps) mostly at the end of a file, so a truncated file cannot be opened at all,
// let alone walked; the map sits at the front and survives, so the error can still name the
// datasets that were cut off.
#pragma once
#include <H5Cpp.h>

#include <optional>
#include <string>

namespace hdf5_io::detail {

/// User block reserved in every checkpoint for the map (a hole on disk where unused). A map that
/// does not fit keeps the datasets nearest the end of the file, the ones a truncation cuts first.
inline constexpr hsize_t kUserblockBytes = 64 * 1024;

/// The map of the open `file`: one "<begin> <end> <path>" line per dataset (absolute byte
/// offsets covering its object header and its data), longest-reaching first. Nothing if the
/// file could not be walked (the map only serves error messages: a save never fails for it).
std::optional<std::string> collect_layout(const H5::H5File& file);

/// Writes `layout` into the user block of the closed file at `path`, with the file's size and
/// the number of datasets (-1: unknown).
void write_layout(const std::string& path, const std::optional<std::string>& layout);

/// If the file at `path` is shorter than its map says it was written, a one-line description
/// naming the datasets that are cut off; otherwise (no map, or not truncated) nothing.
std::optional<std::string> truncation_report(const std::string& path);

}  // namespace hdf5_io::detail
