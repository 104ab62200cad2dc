// A small RAII layer over the HDF5 C API (Debian 12: HDF5 1.10.8).
//
// Every HDF5 object id (file, group, dataset, datatype, dataspace, attribute, property list) is
// held by one H5Handle that knows its close function and a human-readable location ("file.h5:/a/b")
// used in error messages. Every helper here checks every HDF5 return value; a failure becomes a
// std::runtime_error naming the location, the operation and the HDF5 error stack. HDF5's own
// printing of error stacks to stderr is switched off for the duration of each helper (ErrorGuard),
// so a failure is reported once, by the exception, and never passes silently.
//
// Files are opened with close degree SEMI (closing a file with objects still open is an error,
// not a deferred close: a file we rename or fsync has really been closed) and with file locking that
// is ignored where the filesystem does not support it (NFS/Lustre "unable to lock file").
// The default (earliest) file format is used on purpose: no superblock-v3 "open for write" flag,
// so a file left by a killed process never needs h5clear to be opened.
#pragma once

#include <hdf5.h>

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace expt::io::h5 {

// Owns one hid_t. Move-only. The destructor closes the id; a failed close there is reported on
// stderr (destructors must not throw); call close() to have it thrown instead.
class H5Handle {
 public:
  using Closer = herr_t (*)(hid_t);

  H5Handle() = default;
  H5Handle(hid_t id, Closer closer, std::string where) : id_(id), closer_(closer), where_(std::move(where)) {}
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& other) noexcept;
  H5Handle& operator=(H5Handle&& other) noexcept;
  ~H5Handle();

  hid_t id() const { return id_; }
  const std::string& where() const { return where_; }
  bool valid() const { return id_ >= 0; }
  void close();  // throws std::runtime_error when HDF5 reports a failure (the id stays held)

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
  std::string where_;
};

// Names for readability; all are H5Handle.
using File = H5Handle;
using Group = H5Handle;
using Dataset = H5Handle;
using Datatype = H5Handle;
using Dataspace = H5Handle;
using Attribute = H5Handle;
using PropertyList = H5Handle;

// Switches HDF5's automatic error printing off for its lifetime and restores the previous handler.
// Nestable. Every helper below holds one while it calls HDF5.
class ErrorGuard {
 public:
  ErrorGuard();
  ~ErrorGuard();
  ErrorGuard(const ErrorGuard&) = delete;
  ErrorGuard& operator=(const ErrorGuard&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

// Throws std::runtime_error("<what>: <HDF5 error stack>") and clears the stack.
[[noreturn]] void throw_hdf5_error(const std::string& what);
// Return-value checks: a negative id / status throws with `what` and the error stack.
hid_t check_id(hid_t id, const std::string& what);
herr_t check_status(herr_t status, const std::string& what);

// ---- files and groups ----
// create_file: exclusive=true fails when the file exists; false truncates it.
File create_file(const std::filesystem::path& path, bool exclusive);
File open_file(const std::filesystem::path& path, bool writable = false);
// Creates the group and any missing intermediate groups ("a/b/c").
Group create_group(const H5Handle& parent, const std::string& name);
Group open_group(const H5Handle& parent, const std::string& name);
// True when every component of `path` (relative to parent, "a/b/c") exists.
bool link_exists(const H5Handle& parent, const std::string& path);
// Names of the direct members of a group, in name order.
std::vector<std::string> member_names(const H5Handle& group);
enum class ObjectKind { group, dataset, other };
ObjectKind object_kind(const H5Handle& parent, const std::string& name);

// ---- datatypes ----
// Fixed-length string type of `size` bytes (at least 1), NULL-padded, UTF-8. h5py reads it as bytes.
Datatype string_type(std::size_t size);
struct CompoundField {
  std::string name;  // may contain any character except '\0' ("loss@32" is fine)
  hid_t type;        // borrowed: a predefined type or the id of a live Datatype
};
// A packed compound type (no padding) with the fields in order. offsets_out, when given, receives
// the byte offset of each field; the row size is H5Tget_size of the result.
Datatype make_compound(std::span<const CompoundField> fields, std::vector<std::size_t>* offsets_out = nullptr);
// Field names of a compound dataset's type, in stored order.
std::vector<std::string> compound_field_names(const Dataset& dataset);

// ---- attributes (on a file, group or dataset) ----
bool has_attribute(const H5Handle& object, const std::string& name);
std::vector<std::string> attribute_names(const H5Handle& object);  // in name order
// Scalar attributes; an existing attribute of that name is replaced.
void write_attribute(const H5Handle& object, const std::string& name, std::int64_t value);
void write_attribute(const H5Handle& object, const std::string& name, double value);
void write_attribute(const H5Handle& object, const std::string& name, std::string_view value);
// 1-D int64 attribute (must not be empty).
void write_attribute(const H5Handle& object, const std::string& name, std::span<const std::int64_t> values);
// Readers convert any stored integer / float type; they throw when the attribute is missing or of
// another class.
std::int64_t read_int_attribute(const H5Handle& object, const std::string& name);
double read_double_attribute(const H5Handle& object, const std::string& name);
std::string read_string_attribute(const H5Handle& object, const std::string& name);
std::vector<std::int64_t> read_int_array_attribute(const H5Handle& object, const std::string& name);
enum class AttributeClass { integer, floating, string, other };
AttributeClass attribute_class(const H5Handle& object, const std::string& name);

// ---- plain datasets ----
Dataset open_dataset(const H5Handle& parent, const std::string& name);
// Scalar dataset holding one fixed-length string of value.size() bytes (1 byte when empty). The
// byte length is also stored as attribute "length" so that trailing '\0' bytes survive.
void write_string_dataset(const H5Handle& parent, const std::string& name, std::string_view value);
std::string read_string_dataset(const H5Handle& parent, const std::string& name);
// 1-D dataset of variable-length UTF-8 strings, each of any length (h5py reads them as str
// objects; with h5py < 3 as bytes).
Dataset write_string_array(const H5Handle& parent, const std::string& name, const std::vector<std::string>& values);
std::vector<std::string> read_string_array(const Dataset& dataset);
// N-D contiguous dataset of T (float, double, int64, uint8) with the given dims (product = data.size()).
// Instantiated in hdf5.cpp for float, double, std::int64_t and std::uint8_t.
template <class T>
Dataset write_array(const H5Handle& parent, const std::string& name, std::span<const T> data,
                    const std::vector<hsize_t>& dims);
// Reads a whole dataset converted to T; dims_out receives its dims.
template <class T>
std::vector<T> read_array(const Dataset& dataset, std::vector<hsize_t>* dims_out);
std::vector<hsize_t> dataset_dims(const Dataset& dataset);
// The stored element type of a dataset: class, size in bytes, and (integers) signedness.
struct ElementInfo {
  H5T_class_t type_class;
  std::size_t size;
  bool is_signed;
};
ElementInfo element_info(const Dataset& dataset);

// ---- extendible row datasets (time series) ----
// Chunked dataset of rows: dims {0, row_dims...}, maxdims {unlimited, row_dims...}, chunks of
// chunk_rows rows. type is the file (and memory) type of one element.
Dataset create_row_dataset(const H5Handle& parent, const std::string& name, hid_t type,
                           const std::vector<hsize_t>& row_dims, hsize_t chunk_rows);
// Appends n_rows rows (H5Dset_extent + hyperslab write). mem_type describes one element of `data`.
void append_rows(const Dataset& dataset, hid_t mem_type, const void* data, hsize_t n_rows);
// Reads rows [0, n_rows) of a row dataset into `data` (room for n_rows rows of mem_type).
void read_rows(const Dataset& dataset, hid_t mem_type, void* data, hsize_t n_rows);

// Version of the HDF5 library in use, "1.10.8".
std::string library_version();

}  // namespace expt::io::h5
