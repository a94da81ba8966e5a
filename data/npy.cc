// .npy parsing and writing (format: numpy.lib.format, versions 1.0-3.0 read, 1.0 written).
#include "data/npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <algorithm>

namespace medtl::data {
namespace {

struct NpyDtype {
  const char* descr;
  DType dtype;
};
constexpr NpyDtype kDtypes[] = {{"<f4", DType::Float32}, {"<f8", DType::Float64}, {"<i8", DType::Int64},
                                {"<i4", DType::Int32},   {"|u1", DType::UInt8},   {"|b1", DType::Bool}};

// The value of 'key' in the header's Python dict literal, as raw text.
std::string header_field(const std::string& header, const std::string& key, const std::string& name) {
  const size_t at = header.find("'" + key + "'");
  MEDTL_CHECK(at != std::string::npos, "npy '", name, "': header has no '", key, "' field: ", header);
  size_t start = header.find(':', at) + 1;
  while (start < header.size() && header[start] == ' ') ++start;
  size_t end = start;
  if (header[start] == '(') end = header.find(')', start) + 1;
  else if (header[start] == '\'') end = header.find('\'', start + 1) + 1;
  else end = header.find_first_of(",}", start);
  return header.substr(start, end - start);
}

}  // namespace

Tensor parse_npy(const std::string& bytes, const std::string& name) {
  MEDTL_CHECK(bytes.size() >= 10 && bytes.compare(0, 6, "\x93NUMPY") == 0, "npy '", name,
              "': not a NumPy .npy file (bad magic bytes); save arrays with numpy.save");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else {
    MEDTL_CHECK(bytes.size() >= 12, "npy '", name, "': truncated header");
    for (int i = 0; i < 4; ++i) header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
    header_start = 12;
  }
  MEDTL_CHECK(header_start + header_len <= bytes.size(), "npy '", name, "': truncated header");
  const std::string header = bytes.substr(header_start, header_len);

  std::string descr = header_field(header, "descr", name);
  descr = descr.substr(1, descr.size() - 2);
  const NpyDtype* found = nullptr;
  for (const auto& d : kDtypes)
    if (descr == d.descr) found = &d;
  MEDTL_CHECK(found != nullptr, "npy '", name, "': dtype '", descr,
              "' is not supported (use float32, float64, int64, int32, uint8 or bool, little-endian)");
  const bool fortran = header_field(header, "fortran_order", name) == "True";

  Shape shape;
  std::stringstream dims(header_field(header, "shape", name));
  char c;
  dims >> c;  // '('
  int64_t value;
  while (dims >> value) {
    shape.push_back(value);
    dims >> c;  // ',' or ')'
  }
  // Fortran order is row-major order of the reversed shape; read that, then permute back.
  Shape stored = shape;
  if (fortran) std::reverse(stored.begin(), stored.end());
  Tensor out = empty(stored, found->dtype);
  const size_t data_bytes = static_cast<size_t>(out.numel() * dtype_size(found->dtype));
  const size_t data_start = header_start + header_len;
  MEDTL_CHECK(bytes.size() - data_start >= data_bytes, "npy '", name, "': the header promises shape ", shape_str(shape),
              " (", data_bytes, " bytes) but only ", bytes.size() - data_start, " bytes follow; the file is truncated");
  std::memcpy(out.raw_data(), bytes.data() + data_start, data_bytes);
  if (!fortran) return out;
  std::vector<int64_t> reverse_dims(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) reverse_dims[i] = static_cast<int64_t>(shape.size() - 1 - i);
  return out.permute(reverse_dims).contiguous();
}

Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MEDTL_CHECK(in.good(), "cannot open '", path, "': no such file or no permission");
  std::stringstream buffer;
  buffer << in.rdbuf();
  return parse_npy(buffer.str(), path);
}

std::string serialize_npy(const Tensor& t) {
  const NpyDtype* found = nullptr;
  for (const auto& d : kDtypes)
    if (t.dtype() == d.dtype) found = &d;
  MEDTL_CHECK(found != nullptr, "write_npy: dtype ", dtype_name(t.dtype()), " has no .npy equivalent here");
  std::string shape = "(";
  for (int64_t s : t.shape()) shape += std::to_string(s) + ", ";
  if (t.dim() > 1) shape.resize(shape.size() - 2);
  if (t.dim() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string header = std::string("{'descr': '") + found->descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces so magic + length + header + '\n' is a multiple of 64 bytes.
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  const Tensor data = t.contiguous();
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(static_cast<const char*>(data.raw_data()), static_cast<size_t>(data.numel() * dtype_size(data.dtype())));
  return out;
}

void write_npy(const std::string& path, const Tensor& t) {
  const std::string bytes = serialize_npy(t);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    MEDTL_CHECK(out.good(), "write_npy: cannot create '", tmp, "' (does the folder exist? is it writable?)");
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    MEDTL_CHECK(out.good(), "write_npy: writing '", tmp, "' failed (disk full?)");
  }
  MEDTL_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "write_npy: cannot rename '", tmp, "' to '", path, "'");
}

}  // namespace medtl::data
