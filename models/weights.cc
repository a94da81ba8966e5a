// Weight files in HDF5: writing a module's state_dict with its preprocessing attributes, reading
// them back, and loading them into a module strictly or for transfer. Format: docs/weights.md.
#include "models/weights.h"

#include <hdf5.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <utility>

#include "tensor/ops/copy.h"

namespace medtl::models {
namespace {

constexpr const char* kFormat = "medtl-weights";
constexpr int64_t kFormatVersion = 1;
constexpr const char* kHint =
    "Is this an HDF5 weight file written by medtl? Re-run the converter (tools/convert_keras_tfjs.py, "
    "tools/convert_torch_checkpoint.py) or tools/fetch_weights.sh; the format is in docs/weights.md.";

// HDF5 prints its own error stack to stderr by default; we report errors ourselves.
void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

// The innermost entry of HDF5's error stack ("H5Fopen: unable to open file"), or "".
std::string hdf5_error_detail() {
  std::string detail;
  auto walk = [](unsigned n, const H5E_error2_t* err, void* data) -> herr_t {
    auto* out = static_cast<std::string*>(data);
    if (n == 0 && err != nullptr)
      *out = std::string(err->func_name ? err->func_name : "?") + ": " + (err->desc ? err->desc : "");
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, walk, &detail);
  H5Eclear2(H5E_DEFAULT);
  return detail;
}

template <typename T>
T check_h5(T result, const char* call, const std::string& path, const char* file, int line) {
  if (result >= 0) return result;
  const std::string detail = hdf5_error_detail();
  throw Error(str_cat("HDF5 call ", call, " failed for '", path, "' (", file, ":", line, ")",
                      detail.empty() ? "" : " [" + detail + "]", ". ", kHint));
}

// Every HDF5 call goes through this: a negative return throws medtl::Error naming the call, the
// weight file, and the source line.
#define MEDTL_H5_CHECK(call, path) check_h5((call), #call, (path), __FILE__, __LINE__)

// Owns an HDF5 identifier and closes it with the matching H5?close.
class H5Handle {
 public:
  H5Handle() = default;
  H5Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = -1; }
  H5Handle& operator=(H5Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.id_;
      close_ = other.close_;
      other.id_ = -1;
    }
    return *this;
  }
  ~H5Handle() { reset(); }
  hid_t get() const { return id_; }
  hid_t release() {
    const hid_t id = id_;
    id_ = -1;
    return id;
  }
  void reset() {
    if (id_ >= 0 && close_ != nullptr) close_(id_);  // errors while unwinding are not actionable
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

// ---------------------------------------------------------------- attributes

H5Handle utf8_string_type(const std::string& path) {
  H5Handle type(MEDTL_H5_CHECK(H5Tcopy(H5T_C_S1), path), H5Tclose);
  MEDTL_H5_CHECK(H5Tset_size(type.get(), H5T_VARIABLE), path);
  MEDTL_H5_CHECK(H5Tset_cset(type.get(), H5T_CSET_UTF8), path);
  return type;
}

void write_string_attr(hid_t loc, const char* name, const std::string& value, const std::string& path) {
  H5Handle type = utf8_string_type(path);
  H5Handle space(MEDTL_H5_CHECK(H5Screate(H5S_SCALAR), path), H5Sclose);
  H5Handle attr(MEDTL_H5_CHECK(H5Acreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), path),
                H5Aclose);
  const char* data = value.c_str();
  MEDTL_H5_CHECK(H5Awrite(attr.get(), type.get(), &data), path);
}

void write_doubles_attr(hid_t loc, const char* name, const std::vector<double>& values, bool scalar,
                        const std::string& path) {
  const hsize_t n = values.size();
  H5Handle space(MEDTL_H5_CHECK(scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr), path), H5Sclose);
  H5Handle attr(
      MEDTL_H5_CHECK(H5Acreate2(loc, name, H5T_IEEE_F64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), path),
      H5Aclose);
  MEDTL_H5_CHECK(H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, values.data()), path);
}

void write_int_attr(hid_t loc, const char* name, int64_t value, const std::string& path) {
  H5Handle space(MEDTL_H5_CHECK(H5Screate(H5S_SCALAR), path), H5Sclose);
  H5Handle attr(
      MEDTL_H5_CHECK(H5Acreate2(loc, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), path),
      H5Aclose);
  MEDTL_H5_CHECK(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), path);
}

void write_uint_attr(hid_t loc, const char* name, uint64_t value, const std::string& path) {
  H5Handle space(MEDTL_H5_CHECK(H5Screate(H5S_SCALAR), path), H5Sclose);
  H5Handle attr(
      MEDTL_H5_CHECK(H5Acreate2(loc, name, H5T_STD_U64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), path),
      H5Aclose);
  MEDTL_H5_CHECK(H5Awrite(attr.get(), H5T_NATIVE_UINT64, &value), path);
}

bool has_attr(hid_t loc, const char* name, const std::string& path) {
  return MEDTL_H5_CHECK(H5Aexists(loc, name), path) > 0;
}

H5Handle open_attr(hid_t loc, const char* name, const std::string& path) {
  MEDTL_CHECK(has_attr(loc, name, path), "weight file '", path, "' lacks the root attribute '", name,
              "' (format_version ", kFormatVersion, " requires it). ", kHint);
  return H5Handle(MEDTL_H5_CHECK(H5Aopen(loc, name, H5P_DEFAULT), path), H5Aclose);
}

std::string read_string_attr(hid_t loc, const char* name, const std::string& path) {
  H5Handle attr = open_attr(loc, name, path);
  H5Handle ftype(MEDTL_H5_CHECK(H5Aget_type(attr.get()), path), H5Tclose);
  MEDTL_CHECK(H5Tget_class(ftype.get()) == H5T_STRING, "weight file '", path, "': attribute '", name,
              "' should be a string. ", kHint);
  H5Handle space(MEDTL_H5_CHECK(H5Aget_space(attr.get()), path), H5Sclose);
  MEDTL_CHECK(MEDTL_H5_CHECK(H5Sget_simple_extent_npoints(space.get()), path) == 1, "weight file '", path,
              "': attribute '", name, "' should hold one string. ", kHint);
  if (MEDTL_H5_CHECK(H5Tis_variable_str(ftype.get()), path) > 0) {
    H5Handle mtype = utf8_string_type(path);
    char* data = nullptr;
    MEDTL_H5_CHECK(H5Aread(attr.get(), mtype.get(), &data), path);
    std::string value = data != nullptr ? data : "";
    H5free_memory(data);
    return value;
  }
  const size_t size = H5Tget_size(ftype.get());
  MEDTL_CHECK(size > 0, "weight file '", path, "': H5Tget_size failed for attribute '", name, "'. ", kHint);
  H5Handle mtype(MEDTL_H5_CHECK(H5Tcopy(H5T_C_S1), path), H5Tclose);
  MEDTL_H5_CHECK(H5Tset_size(mtype.get(), size), path);
  std::string buffer(size, '\0');
  MEDTL_H5_CHECK(H5Aread(attr.get(), mtype.get(), &buffer[0]), path);
  return std::string(buffer.c_str());  // fixed-length strings may be NUL- or space-padded
}

std::vector<double> read_doubles_attr(hid_t loc, const char* name, int64_t expected, const std::string& path) {
  H5Handle attr = open_attr(loc, name, path);
  H5Handle ftype(MEDTL_H5_CHECK(H5Aget_type(attr.get()), path), H5Tclose);
  const H5T_class_t cls = H5Tget_class(ftype.get());
  MEDTL_CHECK(cls == H5T_FLOAT || cls == H5T_INTEGER, "weight file '", path, "': attribute '", name,
              "' should be numeric. ", kHint);
  H5Handle space(MEDTL_H5_CHECK(H5Aget_space(attr.get()), path), H5Sclose);
  const int64_t n = MEDTL_H5_CHECK(H5Sget_simple_extent_npoints(space.get()), path);
  MEDTL_CHECK(n == expected, "weight file '", path, "': attribute '", name, "' holds ", n, " values, expected ",
              expected, ". ", kHint);
  std::vector<double> values(n);
  MEDTL_H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, values.data()), path);
  return values;
}

int64_t read_int_attr(hid_t loc, const char* name, const std::string& path) {
  H5Handle attr = open_attr(loc, name, path);
  H5Handle ftype(MEDTL_H5_CHECK(H5Aget_type(attr.get()), path), H5Tclose);
  const H5T_class_t cls = H5Tget_class(ftype.get());
  MEDTL_CHECK(cls == H5T_INTEGER || cls == H5T_FLOAT, "weight file '", path, "': attribute '", name,
              "' should be an integer. ", kHint);
  if (cls == H5T_FLOAT) {  // tolerate 1.0 written by a tool that has only floats
    const double v = read_doubles_attr(loc, name, 1, path)[0];
    MEDTL_CHECK(v == static_cast<double>(static_cast<int64_t>(v)), "weight file '", path, "': attribute '", name,
                "' = ", v, " is not a whole number. ", kHint);
    return static_cast<int64_t>(v);
  }
  H5Handle space(MEDTL_H5_CHECK(H5Aget_space(attr.get()), path), H5Sclose);
  MEDTL_CHECK(MEDTL_H5_CHECK(H5Sget_simple_extent_npoints(space.get()), path) == 1, "weight file '", path,
              "': attribute '", name, "' should hold one integer. ", kHint);
  int64_t value = 0;
  MEDTL_H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), path);
  return value;
}

// ---------------------------------------------------------------- files

// Opens any existing HDF5 file read-only, with clear errors for a missing or non-HDF5 file.
H5Handle open_hdf5_file(const std::string& path) {
  silence_hdf5();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw Error(str_cat("weight file not found: '", path, "'. Get the ImageNet ResNet-50 weights with ",
                        "tools/fetch_weights.sh (writes $MEDTL_CACHE or ~/.cache/medtl/resnet50_keras_imagenet.h5), ",
                        "or convert a PyTorch checkpoint with tools/convert_torch_checkpoint.py; see docs/weights.md."));
  }
  MEDTL_CHECK(!std::filesystem::is_directory(path, ec), "weight file '", path, "' is a directory, not a file");
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 <= 0) {
    const std::string detail = is_hdf5 < 0 ? hdf5_error_detail() : "";
    throw Error(str_cat("'", path, "' is not an HDF5 file (no HDF5 signature",
                        detail.empty() ? "" : "; " + detail, "): it may be truncated, a PyTorch .pth or a ",
                        "download error page. Re-run tools/fetch_weights.sh or the converter that made it."));
  }
  return H5Handle(MEDTL_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), path), H5Fclose);
}

// Opens an existing weight file read-only after checking it exists, is HDF5 and is ours.
H5Handle open_weight_file(const std::string& path) {
  H5Handle file = open_hdf5_file(path);
  MEDTL_CHECK(has_attr(file.get(), "format", path), "'", path, "' is an HDF5 file but not a medtl weight file: ",
              "it has no root attribute 'format' = \"", kFormat, "\". Convert it with tools/convert_*.py; ",
              "see docs/weights.md.");
  const std::string format = read_string_attr(file.get(), "format", path);
  MEDTL_CHECK(format == kFormat, "'", path, "' has format \"", format, "\", expected \"", kFormat,
              "\": not a medtl weight file. Convert it with tools/convert_*.py; see docs/weights.md.");
  const int64_t version = read_int_attr(file.get(), "format_version", path);
  MEDTL_CHECK(version >= 1 && version <= kFormatVersion, "'", path, "' has format_version ", version,
              "; this build reads version ", kFormatVersion, ". Update medtl or re-run the converter.");
  return file;
}

// One dataset as the file describes it.
struct DatasetEntry {
  std::string key;   // dotted: "layer1.0.conv1.weight"
  std::string name;  // HDF5 path relative to the root: "layer1/0/conv1/weight"
  Shape shape;
  DType dtype = DType::Float32;  // Float32, Float64 or Int64
};

struct VisitState {
  std::vector<std::string> names;
  std::string error;
};

herr_t collect_dataset(hid_t group, const char* name, const H5L_info_t* info, void* data) {
  auto* state = static_cast<VisitState*>(data);
  try {
    if (info->type != H5L_TYPE_HARD) return 0;
    const hid_t obj = H5Oopen(group, name, H5P_DEFAULT);
    if (obj < 0) {
      state->error = str_cat("H5Oopen(\"", name, "\") failed");
      return -1;
    }
    const bool is_dataset = H5Iget_type(obj) == H5I_DATASET;
    H5Oclose(obj);
    if (is_dataset) state->names.emplace_back(name);
    return 0;
  } catch (const std::exception& e) {  // never unwind through HDF5's C frames
    state->error = e.what();
    return -1;
  }
}

std::vector<DatasetEntry> list_datasets(hid_t file, const std::string& path) {
  VisitState state;
  // Creation order (what save_weights and the converters track) keeps the state_dict order;
  // files written without it fall back to name order.
  if (H5Lvisit(file, H5_INDEX_CRT_ORDER, H5_ITER_INC, collect_dataset, &state) < 0) {
    MEDTL_CHECK(state.error.empty(), "reading the dataset list of '", path, "': ", state.error, ". ", kHint);
    H5Eclear2(H5E_DEFAULT);
    state = VisitState{};
    const herr_t visited = H5Lvisit(file, H5_INDEX_NAME, H5_ITER_INC, collect_dataset, &state);
    MEDTL_CHECK(state.error.empty(), "reading the dataset list of '", path, "': ", state.error, ". ", kHint);
    MEDTL_H5_CHECK(visited, path);
  }
  std::vector<DatasetEntry> entries;
  for (const std::string& name : state.names) {
    DatasetEntry e;
    e.name = name;
    e.key = name;
    for (char& c : e.key)
      if (c == '/') c = '.';
    H5Handle dset(MEDTL_H5_CHECK(H5Dopen2(file, name.c_str(), H5P_DEFAULT), path), H5Dclose);
    H5Handle space(MEDTL_H5_CHECK(H5Dget_space(dset.get()), path), H5Sclose);
    const H5S_class_t space_class = H5Sget_simple_extent_type(space.get());
    MEDTL_CHECK(space_class == H5S_SCALAR || space_class == H5S_SIMPLE, "weight file '", path, "': dataset '", name,
                "' has no data (null dataspace). ", kHint);
    const int ndims = MEDTL_H5_CHECK(H5Sget_simple_extent_ndims(space.get()), path);
    std::vector<hsize_t> dims(ndims);
    if (ndims > 0) MEDTL_H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), path);
    e.shape.assign(dims.begin(), dims.end());
    H5Handle type(MEDTL_H5_CHECK(H5Dget_type(dset.get()), path), H5Tclose);
    const H5T_class_t cls = H5Tget_class(type.get());
    const size_t size = H5Tget_size(type.get());
    if (cls == H5T_FLOAT && size == 4) e.dtype = DType::Float32;
    else if (cls == H5T_FLOAT && size == 8) e.dtype = DType::Float64;
    else if (cls == H5T_INTEGER) e.dtype = DType::Int64;
    else
      throw Error(str_cat("weight file '", path, "': dataset '", name, "' has an unsupported element type (HDF5 class ",
                          static_cast<int>(cls), ", ", size, " bytes); weights must be float32, float64 or integer. ",
                          kHint));
    entries.push_back(std::move(e));
  }
  return entries;
}

hid_t memory_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return H5T_NATIVE_FLOAT;
    case DType::Float64: return H5T_NATIVE_DOUBLE;
    case DType::Int64: return H5T_NATIVE_INT64;
    default: return -1;
  }
}

// Reads one dataset into `dst` (same shape). Reads straight into dst's memory when it is a
// contiguous CPU tensor of a type HDF5 converts to; otherwise through a temporary and copy_.
void read_into(hid_t file, const DatasetEntry& entry, const Tensor& dst, const std::string& path) {
  if (dst.numel() == 0) return;
  H5Handle dset(MEDTL_H5_CHECK(H5Dopen2(file, entry.name.c_str(), H5P_DEFAULT), path), H5Dclose);
  const hid_t direct_type = memory_type(dst.dtype());
  if (dst.device().is_cpu() && dst.is_contiguous() && direct_type >= 0) {
    MEDTL_H5_CHECK(H5Dread(dset.get(), direct_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst.raw_data()), path);
    return;
  }
  Tensor tmp = empty(entry.shape, entry.dtype);
  MEDTL_H5_CHECK(H5Dread(dset.get(), memory_type(entry.dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, tmp.raw_data()), path);
  if (dst.device().is_cpu()) {
    ops::copy_(dst, tmp);
  } else {
    ops::copy_(dst, tmp.to(dst.dtype()).to(dst.device()));
  }
}

void validate_info(const WeightFileInfo& info, const std::string& path) {
  MEDTL_CHECK(!info.architecture.empty(), "save_weights('", path, "'): WeightFileInfo.architecture is empty");
  MEDTL_CHECK(!info.variant.empty(), "save_weights('", path, "'): WeightFileInfo.variant is empty");
  MEDTL_CHECK(info.channel_order == "RGB" || info.channel_order == "BGR", "save_weights('", path,
              "'): channel_order must be \"RGB\" or \"BGR\", got \"", info.channel_order, "\"");
  MEDTL_CHECK(info.num_classes >= 0, "save_weights('", path, "'): num_classes is negative");
  MEDTL_CHECK(info.value_scale > 0.0, "save_weights('", path, "'): value_scale must be > 0");
  MEDTL_CHECK(info.bn_eps > 0.0, "save_weights('", path, "'): bn_eps must be > 0");
  for (double s : info.std) MEDTL_CHECK(s > 0.0, "save_weights('", path, "'): every std must be > 0");
}

void write_all(hid_t file, const nn::NamedTensors& state, const WeightFileInfo& info, const std::string& path) {
  H5Handle gcpl(MEDTL_H5_CHECK(H5Pcreate(H5P_GROUP_CREATE), path), H5Pclose);
  MEDTL_H5_CHECK(H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), path);
  std::set<std::string> groups;
  std::set<std::string> keys;
  for (const auto& [key, tensor] : state) {
    MEDTL_CHECK(keys.insert(key).second, "save_weights('", path, "'): the module has two tensors named '", key, "'");
    const std::string dpath = dataset_path_for_key(key);
    for (size_t pos = dpath.find('/', 1); pos != std::string::npos; pos = dpath.find('/', pos + 1)) {
      const std::string group = dpath.substr(0, pos);
      if (!groups.insert(group).second) continue;
      H5Handle g(MEDTL_H5_CHECK(H5Gcreate2(file, group.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), path),
                 H5Gclose);
    }
    MEDTL_CHECK(tensor.defined(), "save_weights('", path, "'): tensor '", key, "' is undefined");
    const bool integer = !is_floating(tensor.dtype());
    const DType stored = integer ? DType::Int64 : DType::Float32;
    const Tensor data = tensor.to(Device::cpu()).to(stored).contiguous();
    std::vector<hsize_t> dims(data.shape().begin(), data.shape().end());
    H5Handle space(MEDTL_H5_CHECK(dims.empty() ? H5Screate(H5S_SCALAR)
                                               : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                                  path),
                   H5Sclose);
    H5Handle dset(MEDTL_H5_CHECK(H5Dcreate2(file, dpath.c_str(), integer ? H5T_STD_I64LE : H5T_IEEE_F32LE,
                                            space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
                                 path),
                  H5Dclose);
    if (data.numel() > 0)
      MEDTL_H5_CHECK(H5Dwrite(dset.get(), memory_type(stored), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.raw_data()), path);
  }
  write_string_attr(file, "format", kFormat, path);
  write_int_attr(file, "format_version", kFormatVersion, path);
  write_string_attr(file, "architecture", info.architecture, path);
  write_string_attr(file, "variant", info.variant, path);
  write_int_attr(file, "num_classes", info.num_classes, path);
  write_string_attr(file, "channel_order", info.channel_order, path);
  write_doubles_attr(file, "mean", {info.mean.begin(), info.mean.end()}, false, path);
  write_doubles_attr(file, "std", {info.std.begin(), info.std.end()}, false, path);
  write_doubles_attr(file, "value_scale", {info.value_scale}, true, path);
  write_doubles_attr(file, "bn_eps", {info.bn_eps}, true, path);
  write_string_attr(file, "source", info.source, path);
  if (!info.class_names_file.empty()) write_string_attr(file, "class_names_file", info.class_names_file, path);
}

}  // namespace

WeightFileInfo WeightFileInfo::torchvision(const std::string& architecture, int64_t num_classes,
                                           const std::string& source) {
  WeightFileInfo info;
  info.architecture = architecture;
  info.variant = "torchvision";
  info.num_classes = num_classes;
  info.channel_order = "RGB";
  info.mean = {0.485, 0.456, 0.406};
  info.std = {0.229, 0.224, 0.225};
  info.value_scale = 1.0;
  info.bn_eps = 1e-5;
  info.source = source;
  return info;
}

std::string dataset_path_for_key(const std::string& key) {
  MEDTL_CHECK(!key.empty() && key.front() != '.' && key.back() != '.' && key.find("..") == std::string::npos &&
                  key.find('/') == std::string::npos,
              "weight key '", key, "' cannot name an HDF5 dataset (empty part, or contains '/')");
  std::string out = "/" + key;
  for (char& c : out)
    if (c == '.') c = '/';
  return out;
}

void save_weights(const std::string& path, const nn::Module& module, const WeightFileInfo& info) {
  silence_hdf5();
  validate_info(info, path);
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  MEDTL_CHECK(parent.empty() || std::filesystem::is_directory(parent, ec), "save_weights: the directory of '", path,
              "' does not exist; create it first");
  const nn::NamedTensors state = module.state_dict();
  const std::string tmp = path + ".tmp";
  std::remove(tmp.c_str());  // a stale one from a crashed run
  H5Handle fcpl(MEDTL_H5_CHECK(H5Pcreate(H5P_FILE_CREATE), tmp), H5Pclose);
  MEDTL_H5_CHECK(H5Pset_link_creation_order(fcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), tmp);
  try {
    H5Handle file(MEDTL_H5_CHECK(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, fcpl.get(), H5P_DEFAULT), tmp), H5Fclose);
    write_all(file.get(), state, info, tmp);
    MEDTL_H5_CHECK(H5Fclose(file.release()), tmp);
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(tmp.c_str());
    throw Error(str_cat("save_weights: renaming '", tmp, "' to '", path, "' failed: ", reason));
  }
}

WeightFileInfo read_weight_info(const std::string& path) {
  H5Handle file = open_weight_file(path);
  const hid_t f = file.get();
  WeightFileInfo info;
  info.architecture = read_string_attr(f, "architecture", path);
  info.variant = read_string_attr(f, "variant", path);
  info.num_classes = read_int_attr(f, "num_classes", path);
  info.channel_order = read_string_attr(f, "channel_order", path);
  MEDTL_CHECK(info.channel_order == "RGB" || info.channel_order == "BGR", "weight file '", path,
              "': channel_order is \"", info.channel_order, "\", expected \"RGB\" or \"BGR\". ", kHint);
  const std::vector<double> mean = read_doubles_attr(f, "mean", 3, path);
  const std::vector<double> stddev = read_doubles_attr(f, "std", 3, path);
  for (int c = 0; c < 3; ++c) {
    info.mean[c] = mean[c];
    info.std[c] = stddev[c];
  }
  info.value_scale = read_doubles_attr(f, "value_scale", 1, path)[0];
  if (has_attr(f, "bn_eps", path)) info.bn_eps = read_doubles_attr(f, "bn_eps", 1, path)[0];
  info.source = read_string_attr(f, "source", path);
  if (has_attr(f, "class_names_file", path)) info.class_names_file = read_string_attr(f, "class_names_file", path);
  return info;
}

namespace {
nn::NamedTensors read_all_datasets(const H5Handle& file, const std::string& path) {
  nn::NamedTensors out;
  for (const DatasetEntry& e : list_datasets(file.get(), path)) {
    Tensor t = empty(e.shape, e.dtype);
    read_into(file.get(), e, t, path);
    out.emplace_back(e.key, t);
  }
  return out;
}
}  // namespace

nn::NamedTensors read_weight_tensors(const std::string& path) { return read_all_datasets(open_weight_file(path), path); }

nn::NamedTensors read_hdf5_tensors(const std::string& path) { return read_all_datasets(open_hdf5_file(path), path); }

std::string LoadReport::summary() const {
  std::ostringstream out;
  out << "loaded " << loaded.size() << " tensors";
  auto section = [&](const char* what, const std::vector<std::string>& names) {
    out << "; " << names.size() << " " << what;
    if (!names.empty()) out << ": " << join(names, ", ");
  };
  section("missing (kept as initialised)", missing);
  section("unexpected (ignored)", unexpected);
  section("shape-mismatched (kept as initialised)", shape_mismatched);
  section("skipped by prefix", skipped);
  return out.str();
}

LoadReport load_weights(const std::string& path, nn::Module& module, LoadMode mode,
                        const std::vector<std::string>& skip_prefixes) {
  H5Handle file = open_weight_file(path);
  const std::vector<DatasetEntry> entries = list_datasets(file.get(), path);
  const nn::NamedTensors state = module.state_dict();
  auto skipped = [&](const std::string& key) {
    for (const std::string& p : skip_prefixes)
      if (starts_with(key, p)) return true;
    return false;
  };
  std::map<std::string, size_t> in_file, in_module;
  for (size_t i = 0; i < entries.size(); ++i) in_file[entries[i].key] = i;
  for (size_t i = 0; i < state.size(); ++i) in_module[state[i].first] = i;

  LoadReport report;
  std::vector<std::pair<size_t, size_t>> to_load;  // (entry, state) indices
  for (size_t i = 0; i < state.size(); ++i) {
    const auto& [key, tensor] = state[i];
    if (skipped(key)) {
      report.skipped.push_back(key);
      continue;
    }
    const auto it = in_file.find(key);
    if (it == in_file.end()) {
      report.missing.push_back(key);
    } else if (entries[it->second].shape != tensor.shape()) {
      report.shape_mismatched.push_back(str_cat(key, ": file ", shape_str(entries[it->second].shape), " vs module ",
                                                shape_str(tensor.shape())));
    } else {
      to_load.emplace_back(it->second, i);
    }
  }
  for (const DatasetEntry& e : entries) {
    if (in_module.count(e.key)) continue;
    if (skipped(e.key)) report.skipped.push_back(e.key);
    else report.unexpected.push_back(e.key);
  }

  const bool clean = report.missing.empty() && report.unexpected.empty() && report.shape_mismatched.empty();
  if (mode == LoadMode::Strict && !clean) {
    std::ostringstream msg;
    msg << "load_weights (strict): '" << path << "' does not match the " << module.type_name() << " module: "
        << report.missing.size() << " missing, " << report.unexpected.size() << " unexpected, "
        << report.shape_mismatched.size() << " shape-mismatched; nothing was loaded.";
    if (!report.missing.empty()) msg << "\n  missing (in the module, not in the file): " << join(report.missing, ", ");
    if (!report.unexpected.empty())
      msg << "\n  unexpected (in the file, not in the module): " << join(report.unexpected, ", ");
    if (!report.shape_mismatched.empty()) msg << "\n  shape mismatch: " << join(report.shape_mismatched, "; ");
    msg << "\nUse LoadMode::Transfer to load only the matching tensors, or skip_prefixes to leave some out.";
    throw Error(msg.str());
  }
  if (mode == LoadMode::Transfer && to_load.empty() && !report.missing.empty() &&
      (!report.unexpected.empty() || !report.shape_mismatched.empty())) {
    throw Error(str_cat("load_weights (transfer): no tensor of '", path, "' matches the ", module.type_name(),
                        " module by name and shape; file keys look like '",
                        entries.empty() ? std::string("(none)") : entries[0].key, "', module keys like '",
                        report.missing[0], "'. ", report.summary()));
  }
  for (const auto& [e, s] : to_load) {
    read_into(file.get(), entries[e], state[s].second, path);
    report.loaded.push_back(state[s].first);
  }
  return report;
}

// ---------------------------------------------------------------- generic files

namespace {

// Creates the groups of every key and one dataset per tensor, each in its own dtype.
// No object carries a modification time (HDF5's default does), so the same content gives the
// same file bytes.
void write_exact_tensors(hid_t file, const nn::NamedTensors& tensors, const std::string& path) {
  H5Handle gcpl(MEDTL_H5_CHECK(H5Pcreate(H5P_GROUP_CREATE), path), H5Pclose);
  MEDTL_H5_CHECK(H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), path);
  MEDTL_H5_CHECK(H5Pset_obj_track_times(gcpl.get(), false), path);
  H5Handle dcpl(MEDTL_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE), path), H5Pclose);
  MEDTL_H5_CHECK(H5Pset_obj_track_times(dcpl.get(), false), path);
  std::set<std::string> groups, keys;
  for (const auto& [key, tensor] : tensors) {
    MEDTL_CHECK(keys.insert(key).second, "write_hdf5_file('", path, "'): two tensors are named '", key, "'");
    MEDTL_CHECK(tensor.defined(), "write_hdf5_file('", path, "'): tensor '", key, "' is undefined");
    const DType dtype = tensor.dtype();
    MEDTL_CHECK(dtype == DType::Float32 || dtype == DType::Float64 || dtype == DType::Int64, "write_hdf5_file('",
                path, "'): tensor '", key, "' is ", dtype_name(dtype),
                "; only float32, float64 and int64 are stored exactly (convert it with .to(DType))");
    const std::string dpath = dataset_path_for_key(key);
    MEDTL_CHECK(!groups.count(dpath), "write_hdf5_file('", path, "'): '", key,
                "' names both a tensor and a group of other tensors");
    for (size_t pos = dpath.find('/', 1); pos != std::string::npos; pos = dpath.find('/', pos + 1)) {
      const std::string group = dpath.substr(0, pos);
      std::string group_key = group.substr(1);
      for (char& c : group_key)
        if (c == '/') c = '.';
      MEDTL_CHECK(!keys.count(group_key), "write_hdf5_file('", path, "'): '", group_key,
                  "' names both a tensor and a group of other tensors");
      if (!groups.insert(group).second) continue;
      H5Handle g(MEDTL_H5_CHECK(H5Gcreate2(file, group.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), path),
                 H5Gclose);
    }
    const hid_t file_type = dtype == DType::Float32   ? H5T_IEEE_F32LE
                            : dtype == DType::Float64 ? H5T_IEEE_F64LE
                                                      : H5T_STD_I64LE;
    const Tensor data = tensor.to(Device::cpu()).contiguous();
    std::vector<hsize_t> dims(data.shape().begin(), data.shape().end());
    H5Handle space(MEDTL_H5_CHECK(dims.empty() ? H5Screate(H5S_SCALAR)
                                               : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                                  path),
                   H5Sclose);
    H5Handle dset(MEDTL_H5_CHECK(H5Dcreate2(file, dpath.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(),
                                            H5P_DEFAULT),
                                 path),
                  H5Dclose);
    if (data.numel() > 0)
      MEDTL_H5_CHECK(H5Dwrite(dset.get(), memory_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.raw_data()), path);
  }
}

// fsync on a file or directory; `what` names it in the error.
void sync_path(const std::string& target, bool directory, const std::string& what) {
  const int fd = ::open(target.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  MEDTL_CHECK(fd >= 0, what, ": cannot open '", target, "' to flush it to disk: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  MEDTL_CHECK(rc == 0, what, ": fsync('", target, "') failed: ", std::strerror(saved));
}

struct AttributeVisit {
  Hdf5Attributes* out;
  std::string path;
  std::string error;
};

herr_t collect_attribute(hid_t loc, const char* name, const H5A_info_t*, void* data) {
  auto* visit = static_cast<AttributeVisit*>(data);
  try {
    H5Handle attr(MEDTL_H5_CHECK(H5Aopen(loc, name, H5P_DEFAULT), visit->path), H5Aclose);
    H5Handle type(MEDTL_H5_CHECK(H5Aget_type(attr.get()), visit->path), H5Tclose);
    H5Handle space(MEDTL_H5_CHECK(H5Aget_space(attr.get()), visit->path), H5Sclose);
    const H5T_class_t cls = H5Tget_class(type.get());
    const int64_t n = MEDTL_H5_CHECK(H5Sget_simple_extent_npoints(space.get()), visit->path);
    MEDTL_CHECK(n == 1, "'", visit->path, "': root attribute '", name, "' holds ", n,
                " values; read_hdf5_attributes reads scalars only");
    if (cls == H5T_STRING) {
      visit->out->strings[name] = read_string_attr(loc, name, visit->path);
    } else if (cls == H5T_INTEGER && H5Tget_sign(type.get()) == H5T_SGN_NONE) {
      uint64_t v = 0;
      MEDTL_H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_UINT64, &v), visit->path);
      visit->out->uints[name] = v;
    } else if (cls == H5T_INTEGER) {
      int64_t v = 0;
      MEDTL_H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_INT64, &v), visit->path);
      visit->out->ints[name] = v;
    } else if (cls == H5T_FLOAT) {
      double v = 0;
      MEDTL_H5_CHECK(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &v), visit->path);
      visit->out->doubles[name] = v;
    } else {
      throw Error(str_cat("'", visit->path, "': root attribute '", name, "' has an unsupported type (HDF5 class ",
                          static_cast<int>(cls), ")"));
    }
    return 0;
  } catch (const std::exception& e) {  // never unwind through HDF5's C frames
    visit->error = e.what();
    return -1;
  }
}

}  // namespace

void write_hdf5_file(const std::string& path, const nn::NamedTensors& tensors, const Hdf5Attributes& attrs) {
  silence_hdf5();
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  MEDTL_CHECK(parent.empty() || std::filesystem::is_directory(parent, ec), "write_hdf5_file: the directory of '", path,
              "' does not exist; create it first");
  const std::string tmp = path + ".tmp";
  std::remove(tmp.c_str());  // a stale one from a crashed run
  try {
    H5Handle fcpl(MEDTL_H5_CHECK(H5Pcreate(H5P_FILE_CREATE), tmp), H5Pclose);
    MEDTL_H5_CHECK(H5Pset_link_creation_order(fcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), tmp);
    MEDTL_H5_CHECK(H5Pset_obj_track_times(fcpl.get(), false), tmp);  // the root group too
    H5Handle file(MEDTL_H5_CHECK(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, fcpl.get(), H5P_DEFAULT), tmp), H5Fclose);
    write_exact_tensors(file.get(), tensors, tmp);
    for (const auto& [name, value] : attrs.strings) write_string_attr(file.get(), name.c_str(), value, tmp);
    for (const auto& [name, value] : attrs.ints) write_int_attr(file.get(), name.c_str(), value, tmp);
    for (const auto& [name, value] : attrs.uints) write_uint_attr(file.get(), name.c_str(), value, tmp);
    for (const auto& [name, value] : attrs.doubles) write_doubles_attr(file.get(), name.c_str(), {value}, true, tmp);
    MEDTL_H5_CHECK(H5Fclose(file.release()), tmp);
    sync_path(tmp, false, "write_hdf5_file");
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(tmp.c_str());
    throw Error(str_cat("write_hdf5_file: renaming '", tmp, "' to '", path, "' failed: ", reason));
  }
  sync_path(parent.empty() ? std::string(".") : parent.string(), true, "write_hdf5_file");
}

Hdf5Attributes read_hdf5_attributes(const std::string& path) {
  H5Handle file = open_hdf5_file(path);
  Hdf5Attributes out;
  AttributeVisit visit{&out, path, ""};
  hsize_t index = 0;
  const herr_t rc = H5Aiterate2(file.get(), H5_INDEX_NAME, H5_ITER_INC, &index, collect_attribute, &visit);
  MEDTL_CHECK(visit.error.empty(), visit.error);
  MEDTL_H5_CHECK(rc, path);
  return out;
}

std::string weights_cache_dir() {
  if (const char* cache = std::getenv("MEDTL_CACHE"); cache != nullptr && cache[0] != '\0') return cache;
  const char* home = std::getenv("HOME");
  MEDTL_CHECK(home != nullptr && home[0] != '\0', "weights_cache_dir: neither MEDTL_CACHE nor HOME is set");
  return std::string(home) + "/.cache/medtl";
}

}  // namespace medtl::models
