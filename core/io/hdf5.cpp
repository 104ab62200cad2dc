#include "core/io/hdf5.hpp"

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace expt::io::h5 {

namespace {

// H5Ewalk2 callback: appends "function: description" for one stack entry. It must not throw
// through the C library, so allocation failures end the walk instead.
herr_t append_error_entry(unsigned, const H5E_error2_t* entry, void* client_data) noexcept {
  try {
    auto* out = static_cast<std::string*>(client_data);
    std::string desc = entry->desc != nullptr ? entry->desc : "";
    if (desc.empty()) {
      char minor[256] = {0};
      if (H5Eget_msg(entry->min_num, nullptr, minor, sizeof minor) > 0) desc = minor;
    }
    if (!out->empty()) *out += "; ";
    *out += (entry->func_name != nullptr ? entry->func_name : "?");
    *out += ": ";
    *out += desc;
    return 0;
  } catch (...) {
    return -1;
  }
}

std::string describe(const H5Handle& parent, const std::string& name) { return parent.where() + "/" + name; }

PropertyList file_access_list(const std::string& where) {
  PropertyList fapl(check_id(H5Pcreate(H5P_FILE_ACCESS), "create file access list for " + where), H5Pclose,
                    "file access list");
  // SEMI: H5Fclose fails (instead of silently deferring) while objects of the file are still open.
  check_status(H5Pset_fclose_degree(fapl.id(), H5F_CLOSE_SEMI), "set close degree for " + where);
  // Lock files where the filesystem supports it; where it does not (some NFS/Lustre mounts), go on.
  check_status(H5Pset_file_locking(fapl.id(), 1, 1), "set file locking for " + where);
  return fapl;
}

// "file.h5:" is the location of a file's root group; objects below are "file.h5:/a/b".
std::string file_where(const std::filesystem::path& path) { return path.string() + ":"; }

template <class T>
hid_t native_type();
template <>
hid_t native_type<float>() {
  return H5T_NATIVE_FLOAT;
}
template <>
hid_t native_type<double>() {
  return H5T_NATIVE_DOUBLE;
}
template <>
hid_t native_type<std::int64_t>() {
  return H5T_NATIVE_INT64;
}
template <>
hid_t native_type<std::uint8_t>() {
  return H5T_NATIVE_UINT8;
}
template <class T>
H5T_class_t type_class() {
  return std::is_floating_point_v<T> ? H5T_FLOAT : H5T_INTEGER;
}

H5T_class_t class_of(hid_t type, const std::string& what) {
  const H5T_class_t cls = H5Tget_class(type);
  if (cls == H5T_NO_CLASS) throw_hdf5_error(what);
  return cls;
}

Datatype type_of(const Dataset& dataset) {
  return Datatype(check_id(H5Dget_type(dataset.id()), "get type of " + dataset.where()), H5Tclose, dataset.where());
}

Dataspace space_of(const Dataset& dataset) {
  return Dataspace(check_id(H5Dget_space(dataset.id()), "get dataspace of " + dataset.where()), H5Sclose,
                   dataset.where());
}

std::vector<hsize_t> space_dims(const Dataspace& space) {
  const int rank = check_status(H5Sget_simple_extent_ndims(space.id()), "get rank of " + space.where());
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  if (rank > 0)
    check_status(H5Sget_simple_extent_dims(space.id(), dims.data(), nullptr), "get dims of " + space.where());
  return dims;
}

hsize_t product(const std::vector<hsize_t>& dims) {
  return std::accumulate(dims.begin(), dims.end(), hsize_t{1}, std::multiplies<hsize_t>());
}

Attribute open_attribute(const H5Handle& object, const std::string& name) {
  const std::string where = object.where() + "@" + name;
  return Attribute(check_id(H5Aopen(object.id(), name.c_str(), H5P_DEFAULT), "open attribute " + where), H5Aclose,
                   where);
}

// Creates (replacing an existing one) an attribute of the given type and dataspace.
Attribute create_attribute(const H5Handle& object, const std::string& name, hid_t type, hid_t space) {
  const std::string where = object.where() + "@" + name;
  if (check_status(H5Aexists(object.id(), name.c_str()), "look up attribute " + where) > 0)
    check_status(H5Adelete(object.id(), name.c_str()), "delete attribute " + where);
  return Attribute(check_id(H5Acreate2(object.id(), name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT),
                            "create attribute " + where),
                   H5Aclose, where);
}

Dataspace scalar_space(const std::string& where) {
  return Dataspace(check_id(H5Screate(H5S_SCALAR), "create scalar dataspace for " + where), H5Sclose, where);
}

Dataspace simple_space(const std::vector<hsize_t>& dims, const std::vector<hsize_t>* maxdims,
                       const std::string& where) {
  if (dims.empty()) return scalar_space(where);
  return Dataspace(check_id(H5Screate_simple(static_cast<int>(dims.size()), dims.data(),
                                             maxdims != nullptr ? maxdims->data() : nullptr),
                            "create dataspace for " + where),
                   H5Sclose, where);
}

// The class of an attribute's stored type, and that it holds exactly one element.
H5T_class_t scalar_attribute_class(const Attribute& attr) {
  Datatype type(check_id(H5Aget_type(attr.id()), "get type of " + attr.where()), H5Tclose, attr.where());
  Dataspace space(check_id(H5Aget_space(attr.id()), "get dataspace of " + attr.where()), H5Sclose, attr.where());
  const hssize_t n = H5Sget_simple_extent_npoints(space.id());
  if (n != 1)
    throw std::runtime_error("attribute " + attr.where() + " is not a scalar (" + std::to_string(n) + " elements)");
  return class_of(type.id(), "get type class of " + attr.where());
}

}  // namespace

// ---- H5Handle ----

H5Handle::H5Handle(H5Handle&& other) noexcept
    : id_(std::exchange(other.id_, H5I_INVALID_HID)), closer_(other.closer_), where_(std::move(other.where_)) {}

H5Handle& H5Handle::operator=(H5Handle&& other) noexcept {
  if (this != &other) {
    H5Handle previous(std::move(*this));  // closes the id held so far when it goes out of scope
    id_ = std::exchange(other.id_, H5I_INVALID_HID);
    closer_ = other.closer_;
    where_ = std::move(other.where_);
  }
  return *this;
}

H5Handle::~H5Handle() {
  if (id_ < 0) return;
  try {
    close();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "expt: %s\n", e.what());
  }
}

void H5Handle::close() {
  if (id_ < 0) return;
  ErrorGuard guard;
  // On failure the id stays held (HDF5 keeps it valid, e.g. a file with open objects under close
  // degree SEMI), so that closing can be retried and the destructor tries once more.
  if (closer_(id_) < 0) throw_hdf5_error("close " + where_);
  id_ = H5I_INVALID_HID;
}

// ---- errors ----

// HDF5's atexit handler closes every id still open, and crashes (1.10) on a file whose flush
// failed (disk full): such an id stays open by design (see close()). Every file is closed by its
// owner before exit, so the handler has nothing to do; it must be disabled before HDF5's first use.
[[maybe_unused]] const herr_t kNoAtexit = H5dont_atexit();

ErrorGuard::ErrorGuard() {
  H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

ErrorGuard::~ErrorGuard() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }

void throw_hdf5_error(const std::string& what) {
  std::string stack;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, append_error_entry, &stack);
  H5Eclear2(H5E_DEFAULT);
  // A failed system call (disk full, file too large, permission) is named first: HDF5 buries its
  // strerror text deep in the stack as "error message = '<text>'".
  std::string cause;
  const std::string marker = "error message = '";
  if (const std::size_t at = stack.find(marker); at != std::string::npos) {
    const std::size_t from = at + marker.size(), to = stack.find('\'', from);
    if (to != std::string::npos) cause = ": " + stack.substr(from, to - from);
  }
  throw std::runtime_error("HDF5: cannot " + what + cause + (stack.empty() ? std::string() : " (" + stack + ")"));
}

hid_t check_id(hid_t id, const std::string& what) {
  if (id < 0) throw_hdf5_error(what);
  return id;
}

herr_t check_status(herr_t status, const std::string& what) {
  if (status < 0) throw_hdf5_error(what);
  return status;
}

// ---- files and groups ----

File create_file(const std::filesystem::path& path, bool exclusive) {
  ErrorGuard guard;
  const std::string where = file_where(path);
  PropertyList fapl = file_access_list(where);
  return File(check_id(H5Fcreate(path.c_str(), exclusive ? H5F_ACC_EXCL : H5F_ACC_TRUNC, H5P_DEFAULT, fapl.id()),
                       "create file " + path.string()),
              H5Fclose, where);
}

File open_file(const std::filesystem::path& path, bool writable) {
  ErrorGuard guard;
  const std::string where = file_where(path);
  PropertyList fapl = file_access_list(where);
  return File(check_id(H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, fapl.id()),
                       "open file " + path.string()),
              H5Fclose, where);
}

Group create_group(const H5Handle& parent, const std::string& name) {
  ErrorGuard guard;
  const std::string where = describe(parent, name);
  PropertyList lcpl(check_id(H5Pcreate(H5P_LINK_CREATE), "create link property list for " + where), H5Pclose, where);
  check_status(H5Pset_create_intermediate_group(lcpl.id(), 1), "set intermediate groups for " + where);
  return Group(
      check_id(H5Gcreate2(parent.id(), name.c_str(), lcpl.id(), H5P_DEFAULT, H5P_DEFAULT), "create group " + where),
      H5Gclose, where);
}

Group open_group(const H5Handle& parent, const std::string& name) {
  ErrorGuard guard;
  const std::string where = describe(parent, name);
  return Group(check_id(H5Gopen2(parent.id(), name.c_str(), H5P_DEFAULT), "open group " + where), H5Gclose, where);
}

bool link_exists(const H5Handle& parent, const std::string& path) {
  ErrorGuard guard;
  // H5Lexists fails (rather than returning false) when an intermediate component is missing, so
  // each prefix is checked in turn.
  std::size_t pos = 0;
  while (true) {
    const std::size_t slash = path.find('/', pos);
    const std::string prefix = path.substr(0, slash);
    if (check_status(H5Lexists(parent.id(), prefix.c_str(), H5P_DEFAULT), "look up " + describe(parent, prefix)) <= 0)
      return false;
    if (slash == std::string::npos) return true;
    pos = slash + 1;
  }
}

std::vector<std::string> member_names(const H5Handle& group) {
  ErrorGuard guard;
  H5G_info_t info;
  check_status(H5Gget_info(group.id(), &info), "list members of " + group.where());
  std::vector<std::string> names;
  names.reserve(info.nlinks);
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = H5Lget_name_by_idx(group.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) throw_hdf5_error("get member name of " + group.where());
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    if (H5Lget_name_by_idx(group.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT) < 0)
      throw_hdf5_error("get member name of " + group.where());
    name.resize(static_cast<std::size_t>(len));
    names.push_back(std::move(name));
  }
  return names;
}

ObjectKind object_kind(const H5Handle& parent, const std::string& name) {
  ErrorGuard guard;
  H5O_info_t info;
  check_status(H5Oget_info_by_name2(parent.id(), name.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT),
               "get object info of " + describe(parent, name));
  switch (info.type) {
    case H5O_TYPE_GROUP:
      return ObjectKind::group;
    case H5O_TYPE_DATASET:
      return ObjectKind::dataset;
    default:
      return ObjectKind::other;
  }
}

// ---- datatypes ----

Datatype string_type(std::size_t size) {
  ErrorGuard guard;
  const std::string where = "string type of " + std::to_string(size) + " bytes";
  Datatype type(check_id(H5Tcopy(H5T_C_S1), "copy " + where), H5Tclose, where);
  check_status(H5Tset_size(type.id(), std::max<std::size_t>(size, 1)), "set size of " + where);
  check_status(H5Tset_strpad(type.id(), H5T_STR_NULLPAD), "set padding of " + where);
  check_status(H5Tset_cset(type.id(), H5T_CSET_UTF8), "set character set of " + where);
  return type;
}

Datatype make_compound(std::span<const CompoundField> fields, std::vector<std::size_t>* offsets_out) {
  ErrorGuard guard;
  if (fields.empty()) throw std::invalid_argument("a compound type needs at least one field");
  std::vector<std::size_t> offsets;
  std::size_t size = 0;
  for (const auto& f : fields) {
    offsets.push_back(size);
    const std::size_t s = H5Tget_size(f.type);
    if (s == 0) throw_hdf5_error("get size of the type of compound field '" + f.name + "'");
    size += s;
  }
  Datatype type(check_id(H5Tcreate(H5T_COMPOUND, size), "create compound type"), H5Tclose, "compound type");
  for (std::size_t i = 0; i < fields.size(); ++i)
    check_status(H5Tinsert(type.id(), fields[i].name.c_str(), offsets[i], fields[i].type),
                 "insert compound field '" + fields[i].name + "'");
  if (offsets_out != nullptr) *offsets_out = std::move(offsets);
  return type;
}

std::vector<std::string> compound_field_names(const Dataset& dataset) {
  ErrorGuard guard;
  Datatype type = type_of(dataset);
  if (class_of(type.id(), "get type class of " + dataset.where()) != H5T_COMPOUND)
    throw std::runtime_error(dataset.where() + " is not a compound dataset");
  const int n = check_status(H5Tget_nmembers(type.id()), "count fields of " + dataset.where());
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    char* name = H5Tget_member_name(type.id(), static_cast<unsigned>(i));
    if (name == nullptr) throw_hdf5_error("get field name of " + dataset.where());
    names.emplace_back(name);
    H5free_memory(name);
  }
  return names;
}

// ---- attributes ----

bool has_attribute(const H5Handle& object, const std::string& name) {
  ErrorGuard guard;
  return check_status(H5Aexists(object.id(), name.c_str()), "look up attribute " + object.where() + "@" + name) > 0;
}

std::vector<std::string> attribute_names(const H5Handle& object) {
  ErrorGuard guard;
  H5O_info_t info;
  check_status(H5Oget_info2(object.id(), &info, H5O_INFO_NUM_ATTRS), "count attributes of " + object.where());
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.num_attrs; ++i) {
    const ssize_t len = H5Aget_name_by_idx(object.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    if (len < 0) throw_hdf5_error("get attribute name of " + object.where());
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    if (H5Aget_name_by_idx(object.id(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT) < 0)
      throw_hdf5_error("get attribute name of " + object.where());
    name.resize(static_cast<std::size_t>(len));
    names.push_back(std::move(name));
  }
  return names;
}

void write_attribute(const H5Handle& object, const std::string& name, std::int64_t value) {
  ErrorGuard guard;
  Dataspace space = scalar_space(object.where());
  Attribute attr = create_attribute(object, name, H5T_STD_I64LE, space.id());
  check_status(H5Awrite(attr.id(), H5T_NATIVE_INT64, &value), "write attribute " + attr.where());
  attr.close();
}

void write_attribute(const H5Handle& object, const std::string& name, double value) {
  ErrorGuard guard;
  Dataspace space = scalar_space(object.where());
  Attribute attr = create_attribute(object, name, H5T_IEEE_F64LE, space.id());
  check_status(H5Awrite(attr.id(), H5T_NATIVE_DOUBLE, &value), "write attribute " + attr.where());
  attr.close();
}

void write_attribute(const H5Handle& object, const std::string& name, std::string_view value) {
  ErrorGuard guard;
  Datatype type = string_type(value.size());
  Dataspace space = scalar_space(object.where());
  Attribute attr = create_attribute(object, name, type.id(), space.id());
  std::string buffer(value);
  buffer.resize(std::max<std::size_t>(value.size(), 1), '\0');
  check_status(H5Awrite(attr.id(), type.id(), buffer.data()), "write attribute " + attr.where());
  attr.close();
}

void write_attribute(const H5Handle& object, const std::string& name, std::span<const std::int64_t> values) {
  ErrorGuard guard;
  if (values.empty()) throw std::invalid_argument("attribute " + object.where() + "@" + name + " would be empty");
  Dataspace space = simple_space({static_cast<hsize_t>(values.size())}, nullptr, object.where());
  Attribute attr = create_attribute(object, name, H5T_STD_I64LE, space.id());
  check_status(H5Awrite(attr.id(), H5T_NATIVE_INT64, values.data()), "write attribute " + attr.where());
  attr.close();
}

std::int64_t read_int_attribute(const H5Handle& object, const std::string& name) {
  ErrorGuard guard;
  Attribute attr = open_attribute(object, name);
  if (scalar_attribute_class(attr) != H5T_INTEGER)
    throw std::runtime_error("attribute " + attr.where() + " is not an integer");
  std::int64_t value = 0;
  check_status(H5Aread(attr.id(), H5T_NATIVE_INT64, &value), "read attribute " + attr.where());
  return value;
}

double read_double_attribute(const H5Handle& object, const std::string& name) {
  ErrorGuard guard;
  Attribute attr = open_attribute(object, name);
  const H5T_class_t cls = scalar_attribute_class(attr);
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    throw std::runtime_error("attribute " + attr.where() + " is not a number");
  double value = 0;
  check_status(H5Aread(attr.id(), H5T_NATIVE_DOUBLE, &value), "read attribute " + attr.where());
  return value;
}

std::string read_string_attribute(const H5Handle& object, const std::string& name) {
  ErrorGuard guard;
  Attribute attr = open_attribute(object, name);
  if (scalar_attribute_class(attr) != H5T_STRING)
    throw std::runtime_error("attribute " + attr.where() + " is not a string");
  Datatype type(check_id(H5Aget_type(attr.id()), "get type of " + attr.where()), H5Tclose, attr.where());
  if (check_status(H5Tis_variable_str(type.id()), "inspect type of " + attr.where()) > 0) {
    // Variable-length strings (as h5py writes by default): HDF5 allocates, we free.
    char* text = nullptr;
    check_status(H5Aread(attr.id(), type.id(), &text), "read attribute " + attr.where());
    std::string value = text != nullptr ? text : "";
    H5free_memory(text);
    return value;
  }
  std::string value(H5Tget_size(type.id()), '\0');
  check_status(H5Aread(attr.id(), type.id(), value.data()), "read attribute " + attr.where());
  // Fixed-length strings are NULL-padded (or NULL-terminated) to the type size.
  value.resize(std::min(value.size(), value.find('\0')));
  return value;
}

std::vector<std::int64_t> read_int_array_attribute(const H5Handle& object, const std::string& name) {
  ErrorGuard guard;
  Attribute attr = open_attribute(object, name);
  Datatype type(check_id(H5Aget_type(attr.id()), "get type of " + attr.where()), H5Tclose, attr.where());
  if (class_of(type.id(), "get type class of " + attr.where()) != H5T_INTEGER)
    throw std::runtime_error("attribute " + attr.where() + " is not an integer array");
  Dataspace space(check_id(H5Aget_space(attr.id()), "get dataspace of " + attr.where()), H5Sclose, attr.where());
  const hssize_t n = H5Sget_simple_extent_npoints(space.id());
  if (n < 0) throw_hdf5_error("count elements of " + attr.where());
  std::vector<std::int64_t> values(static_cast<std::size_t>(n));
  if (n > 0) check_status(H5Aread(attr.id(), H5T_NATIVE_INT64, values.data()), "read attribute " + attr.where());
  return values;
}

AttributeClass attribute_class(const H5Handle& object, const std::string& name) {
  ErrorGuard guard;
  Attribute attr = open_attribute(object, name);
  switch (scalar_attribute_class(attr)) {
    case H5T_INTEGER:
      return AttributeClass::integer;
    case H5T_FLOAT:
      return AttributeClass::floating;
    case H5T_STRING:
      return AttributeClass::string;
    default:
      return AttributeClass::other;
  }
}

// ---- plain datasets ----

Dataset open_dataset(const H5Handle& parent, const std::string& name) {
  ErrorGuard guard;
  const std::string where = describe(parent, name);
  return Dataset(check_id(H5Dopen2(parent.id(), name.c_str(), H5P_DEFAULT), "open dataset " + where), H5Dclose, where);
}

namespace {
Dataset create_dataset(const H5Handle& parent, const std::string& name, hid_t type, const Dataspace& space,
                       hid_t dcpl) {
  const std::string where = describe(parent, name);
  PropertyList lcpl(check_id(H5Pcreate(H5P_LINK_CREATE), "create link property list for " + where), H5Pclose, where);
  check_status(H5Pset_create_intermediate_group(lcpl.id(), 1), "set intermediate groups for " + where);
  return Dataset(check_id(H5Dcreate2(parent.id(), name.c_str(), type, space.id(), lcpl.id(), dcpl, H5P_DEFAULT),
                          "create dataset " + where),
                 H5Dclose, where);
}
}  // namespace

void write_string_dataset(const H5Handle& parent, const std::string& name, std::string_view value) {
  ErrorGuard guard;
  Datatype type = string_type(value.size());
  Dataspace space = scalar_space(describe(parent, name));
  Dataset dataset = create_dataset(parent, name, type.id(), space, H5P_DEFAULT);
  std::string buffer(value);
  buffer.resize(std::max<std::size_t>(value.size(), 1), '\0');
  check_status(H5Dwrite(dataset.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buffer.data()),
               "write dataset " + dataset.where());
  write_attribute(dataset, "length", static_cast<std::int64_t>(value.size()));
  dataset.close();
}

std::string read_string_dataset(const H5Handle& parent, const std::string& name) {
  ErrorGuard guard;
  Dataset dataset = open_dataset(parent, name);
  Datatype type = type_of(dataset);
  if (class_of(type.id(), "get type class of " + dataset.where()) != H5T_STRING ||
      check_status(H5Tis_variable_str(type.id()), "inspect type of " + dataset.where()) > 0)
    throw std::runtime_error(dataset.where() + " is not a fixed-length string dataset");
  Dataspace space = space_of(dataset);
  if (H5Sget_simple_extent_npoints(space.id()) != 1)
    throw std::runtime_error(dataset.where() + " does not hold exactly one string");
  std::string value(H5Tget_size(type.id()), '\0');
  check_status(H5Dread(dataset.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, value.data()),
               "read dataset " + dataset.where());
  if (has_attribute(dataset, "length")) {
    const std::int64_t length = read_int_attribute(dataset, "length");
    if (length < 0 || static_cast<std::size_t>(length) > value.size())
      throw std::runtime_error(dataset.where() + ": attribute length=" + std::to_string(length) +
                               " does not fit the stored string");
    value.resize(static_cast<std::size_t>(length));
  } else {
    value.resize(std::min(value.size(), value.find('\0')));
  }
  return value;
}

namespace {

Datatype variable_string_type(const std::string& where) {
  Datatype type(check_id(H5Tcopy(H5T_C_S1), "copy string type for " + where), H5Tclose, where);
  check_status(H5Tset_size(type.id(), H5T_VARIABLE), "make a variable-length string type for " + where);
  check_status(H5Tset_cset(type.id(), H5T_CSET_UTF8), "set character set for " + where);
  return type;
}

}  // namespace

Dataset write_string_array(const H5Handle& parent, const std::string& name, const std::vector<std::string>& values) {
  ErrorGuard guard;
  const std::string where = describe(parent, name);
  Datatype type = variable_string_type(where);
  Dataspace space = simple_space({static_cast<hsize_t>(values.size())}, nullptr, where);
  Dataset dataset = create_dataset(parent, name, type.id(), space, H5P_DEFAULT);
  std::vector<const char*> pointers;
  pointers.reserve(values.size());
  for (const std::string& v : values) pointers.push_back(v.c_str());
  if (!values.empty())
    check_status(H5Dwrite(dataset.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()),
                 "write dataset " + where);
  return dataset;
}

std::vector<std::string> read_string_array(const Dataset& dataset) {
  ErrorGuard guard;
  Datatype stored = type_of(dataset);
  if (class_of(stored.id(), "get type class of " + dataset.where()) != H5T_STRING ||
      check_status(H5Tis_variable_str(stored.id()), "inspect type of " + dataset.where()) <= 0)
    throw std::runtime_error(dataset.where() + " is not a dataset of variable-length strings");
  Dataspace space = space_of(dataset);
  const std::vector<hsize_t> dims = space_dims(space);
  if (dims.size() != 1) throw std::runtime_error(dataset.where() + " is not 1-D");
  Datatype type = variable_string_type(dataset.where());
  std::vector<char*> pointers(static_cast<std::size_t>(dims[0]), nullptr);
  std::vector<std::string> values;
  if (pointers.empty()) return values;
  check_status(H5Dread(dataset.id(), type.id(), H5S_ALL, H5S_ALL, H5P_DEFAULT, pointers.data()),
               "read dataset " + dataset.where());
  for (const char* p : pointers) values.emplace_back(p != nullptr ? p : "");
  // HDF5 allocated the strings; give them back.
  check_status(H5Dvlen_reclaim(type.id(), space.id(), H5P_DEFAULT, pointers.data()),
               "free the strings read from " + dataset.where());
  return values;
}

template <class T>
Dataset write_array(const H5Handle& parent, const std::string& name, std::span<const T> data,
                    const std::vector<hsize_t>& dims) {
  ErrorGuard guard;
  const std::string where = describe(parent, name);
  if (product(dims) != data.size())
    throw std::invalid_argument("dataset " + where + ": " + std::to_string(data.size()) +
                                " values do not match its shape");
  Dataspace space = simple_space(dims, nullptr, where);
  Dataset dataset = create_dataset(parent, name, native_type<T>(), space, H5P_DEFAULT);
  // A zero-size dataset has nothing to write (and HDF5 rejects a write of nothing).
  if (!data.empty())
    check_status(H5Dwrite(dataset.id(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()),
                 "write dataset " + where);
  return dataset;
}

template <class T>
std::vector<T> read_array(const Dataset& dataset, std::vector<hsize_t>* dims_out) {
  ErrorGuard guard;
  Datatype type = type_of(dataset);
  if (class_of(type.id(), "get type class of " + dataset.where()) != type_class<T>())
    throw std::runtime_error(dataset.where() + (type_class<T>() == H5T_FLOAT ? " is not a floating-point dataset"
                                                                             : " is not an integer dataset"));
  Dataspace space = space_of(dataset);
  std::vector<hsize_t> dims = space_dims(space);
  std::vector<T> values(static_cast<std::size_t>(product(dims)));
  if (!values.empty())
    check_status(H5Dread(dataset.id(), native_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()),
                 "read dataset " + dataset.where());
  if (dims_out != nullptr) *dims_out = std::move(dims);
  return values;
}

template Dataset write_array<float>(const H5Handle&, const std::string&, std::span<const float>,
                                    const std::vector<hsize_t>&);
template Dataset write_array<double>(const H5Handle&, const std::string&, std::span<const double>,
                                     const std::vector<hsize_t>&);
template Dataset write_array<std::int64_t>(const H5Handle&, const std::string&, std::span<const std::int64_t>,
                                           const std::vector<hsize_t>&);
template Dataset write_array<std::uint8_t>(const H5Handle&, const std::string&, std::span<const std::uint8_t>,
                                           const std::vector<hsize_t>&);
template std::vector<std::uint8_t> read_array<std::uint8_t>(const Dataset&, std::vector<hsize_t>*);
template std::vector<float> read_array<float>(const Dataset&, std::vector<hsize_t>*);
template std::vector<double> read_array<double>(const Dataset&, std::vector<hsize_t>*);
template std::vector<std::int64_t> read_array<std::int64_t>(const Dataset&, std::vector<hsize_t>*);

std::vector<hsize_t> dataset_dims(const Dataset& dataset) {
  ErrorGuard guard;
  return space_dims(space_of(dataset));
}

ElementInfo element_info(const Dataset& dataset) {
  ErrorGuard guard;
  Datatype type = type_of(dataset);
  ElementInfo info{};
  info.type_class = class_of(type.id(), "get type class of " + dataset.where());
  info.size = H5Tget_size(type.id());
  if (info.size == 0) throw_hdf5_error("get type size of " + dataset.where());
  if (info.type_class == H5T_INTEGER) {
    const H5T_sign_t sign = H5Tget_sign(type.id());
    if (sign == H5T_SGN_ERROR) throw_hdf5_error("get signedness of " + dataset.where());
    info.is_signed = sign == H5T_SGN_2;
  }
  return info;
}

// ---- extendible row datasets ----

Dataset create_row_dataset(const H5Handle& parent, const std::string& name, hid_t type,
                           const std::vector<hsize_t>& row_dims, hsize_t chunk_rows) {
  ErrorGuard guard;
  const std::string where = describe(parent, name);
  if (chunk_rows == 0) throw std::invalid_argument("dataset " + where + ": chunk_rows must be positive");
  std::vector<hsize_t> dims{0}, maxdims{H5S_UNLIMITED}, chunk{chunk_rows};
  for (hsize_t d : row_dims) {
    if (d == 0) throw std::invalid_argument("dataset " + where + ": a row dimension is zero");
    dims.push_back(d);
    maxdims.push_back(d);
    chunk.push_back(d);
  }
  Dataspace space = simple_space(dims, &maxdims, where);
  PropertyList dcpl(check_id(H5Pcreate(H5P_DATASET_CREATE), "create dataset property list for " + where), H5Pclose,
                    where);
  check_status(H5Pset_chunk(dcpl.id(), static_cast<int>(chunk.size()), chunk.data()), "set chunks of " + where);
  return create_dataset(parent, name, type, space, dcpl.id());
}

void append_rows(const Dataset& dataset, hid_t mem_type, const void* data, hsize_t n_rows) {
  if (n_rows == 0) return;
  ErrorGuard guard;
  std::vector<hsize_t> dims = space_dims(space_of(dataset));
  if (dims.empty()) throw std::runtime_error(dataset.where() + " is not a row dataset");
  const hsize_t old_rows = dims[0];
  dims[0] += n_rows;
  check_status(H5Dset_extent(dataset.id(), dims.data()), "extend " + dataset.where());
  Dataspace file_space = space_of(dataset);
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  start[0] = old_rows;
  count[0] = n_rows;
  check_status(H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
               "select rows of " + dataset.where());
  Dataspace mem_space = simple_space(count, nullptr, dataset.where());
  check_status(H5Dwrite(dataset.id(), mem_type, mem_space.id(), file_space.id(), H5P_DEFAULT, data),
               "append rows to " + dataset.where());
}

void read_rows(const Dataset& dataset, hid_t mem_type, void* data, hsize_t n_rows) {
  if (n_rows == 0) return;
  ErrorGuard guard;
  Dataspace file_space = space_of(dataset);
  std::vector<hsize_t> dims = space_dims(file_space);
  if (dims.empty() || dims[0] < n_rows)
    throw std::runtime_error(dataset.where() + " has fewer than " + std::to_string(n_rows) + " rows");
  std::vector<hsize_t> start(dims.size(), 0), count = dims;
  count[0] = n_rows;
  check_status(H5Sselect_hyperslab(file_space.id(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
               "select rows of " + dataset.where());
  Dataspace mem_space = simple_space(count, nullptr, dataset.where());
  check_status(H5Dread(dataset.id(), mem_type, mem_space.id(), file_space.id(), H5P_DEFAULT, data),
               "read rows of " + dataset.where());
}

std::string library_version() {
  unsigned major = 0, minor = 0, release = 0;
  ErrorGuard guard;
  check_status(H5get_libversion(&major, &minor, &release), "get the HDF5 library version");
  return std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release);
}

}  // namespace expt::io::h5
