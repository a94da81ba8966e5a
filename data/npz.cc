// .npz reading and writing: a minimal zip reader/writer (PKWARE APPNOTE 6.3: end of central
// directory, ZIP64 records, central and local headers; methods 0 stored and 8 deflate) on zlib.
#include "data/npz.h"

#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "data/npy.h"

namespace medtl::data {
namespace {

constexpr uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50, kEndOfDirectory = 0x06054b50,
                   kZip64End = 0x06064b50, kZip64Locator = 0x07064b50;

uint64_t le(const std::string& b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(b[at + i])) << (8 * i);
  return v;
}

struct Entry {
  std::string name;  // as stored, e.g. "train_images.npy"
  uint16_t method = 0;
  uint32_t crc = 0;
  uint64_t compressed = 0, uncompressed = 0, local_offset = 0;
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MEDTL_CHECK(in.good(), "cannot open npz '", path, "': no such file or no permission");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// The central directory, in archive order.
std::vector<Entry> directory(const std::string& b, const std::string& path) {
  MEDTL_CHECK(b.size() >= 22, "npz '", path, "': ", b.size(), " bytes is too short for a zip file (truncated?)");
  // The end-of-central-directory record is the last 22 bytes plus a comment of up to 65535.
  size_t eocd = std::string::npos;
  const size_t lowest = b.size() >= 22 + 65535 ? b.size() - 22 - 65535 : 0;
  for (size_t at = b.size() - 22 + 1; at-- > lowest;)
    if (le(b, at, 4) == kEndOfDirectory) { eocd = at; break; }
  MEDTL_CHECK(eocd != std::string::npos, "npz '", path,
              "': no zip end-of-directory record; not an .npz (zip) file, or truncated");
  uint64_t count = le(b, eocd + 10, 2), dir_size = le(b, eocd + 12, 4), dir_offset = le(b, eocd + 16, 4);
  if ((count == 0xffff || dir_offset == 0xffffffff || dir_size == 0xffffffff) && eocd >= 20 &&
      le(b, eocd - 20, 4) == kZip64Locator) {
    const uint64_t z64 = le(b, eocd - 20 + 8, 8);
    MEDTL_CHECK(z64 + 56 <= b.size() && le(b, z64, 4) == kZip64End, "npz '", path, "': bad ZIP64 end record");
    count = le(b, z64 + 32, 8);
    dir_size = le(b, z64 + 40, 8);
    dir_offset = le(b, z64 + 48, 8);
  }
  MEDTL_CHECK(dir_offset + dir_size <= b.size(), "npz '", path, "': the zip directory lies beyond the end of the file (",
              b.size(), " bytes); the file is truncated");
  std::vector<Entry> entries;
  size_t at = dir_offset;
  for (uint64_t i = 0; i < count; ++i) {
    MEDTL_CHECK(at + 46 <= b.size() && le(b, at, 4) == kCentralHeader, "npz '", path, "': zip directory entry ", i,
                " is damaged");
    Entry e;
    e.method = static_cast<uint16_t>(le(b, at + 10, 2));
    e.crc = static_cast<uint32_t>(le(b, at + 16, 4));
    e.compressed = le(b, at + 20, 4);
    e.uncompressed = le(b, at + 24, 4);
    const size_t name_len = le(b, at + 28, 2), extra_len = le(b, at + 30, 2), comment_len = le(b, at + 32, 2);
    e.local_offset = le(b, at + 42, 4);
    MEDTL_CHECK(at + 46 + name_len + extra_len + comment_len <= b.size(), "npz '", path, "': zip directory truncated");
    e.name = b.substr(at + 46, name_len);
    // ZIP64 extra field (id 1): the 8-byte values replace those stored as 0xffffffff, in order.
    for (size_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const uint64_t id = le(b, x, 2), size = le(b, x + 2, 2);
      if (id == 1) {
        size_t v = x + 4;
        if (e.uncompressed == 0xffffffff) { e.uncompressed = le(b, v, 8); v += 8; }
        if (e.compressed == 0xffffffff) { e.compressed = le(b, v, 8); v += 8; }
        if (e.local_offset == 0xffffffff) { e.local_offset = le(b, v, 8); }
      }
      x += 4 + size;
    }
    entries.push_back(e);
    at += 46 + name_len + extra_len + comment_len;
  }
  return entries;
}

std::string member_bytes(const std::string& b, const Entry& e, const std::string& path) {
  const std::string where = "npz '" + path + "', member '" + e.name + "'";
  MEDTL_CHECK(e.local_offset + 30 <= b.size() && le(b, e.local_offset, 4) == kLocalHeader, where,
              ": local header missing or damaged");
  const size_t data_at = e.local_offset + 30 + le(b, e.local_offset + 26, 2) + le(b, e.local_offset + 28, 2);
  MEDTL_CHECK(data_at + e.compressed <= b.size(), where, ": its ", e.compressed,
              " bytes run past the end of the file; the file is truncated");
  std::string out;
  if (e.method == 0) {
    MEDTL_CHECK(e.compressed == e.uncompressed, where, ": stored member with differing sizes");
    out = b.substr(data_at, e.compressed);
  } else if (e.method == 8) {
    out.resize(e.uncompressed);
    z_stream z{};
    MEDTL_CHECK(inflateInit2(&z, -MAX_WBITS) == Z_OK, where, ": zlib inflateInit2 failed");
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(b.data() + data_at));
    z.avail_in = static_cast<uInt>(e.compressed);
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&z, Z_FINISH);
    const uint64_t produced = z.total_out;
    inflateEnd(&z);
    MEDTL_CHECK(rc == Z_STREAM_END && produced == e.uncompressed, where, ": deflate data is corrupt (zlib: ",
                rc == Z_DATA_ERROR ? "data error" : rc == Z_BUF_ERROR ? "truncated" : std::to_string(rc), ", ",
                produced, " of ", e.uncompressed, " bytes)");
  } else {
    MEDTL_CHECK(false, where, ": zip compression method ", e.method,
                " is not supported (numpy writes 0 = stored and 8 = deflate)");
  }
  const uint32_t crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(out.data()), static_cast<uInt>(out.size())));
  MEDTL_CHECK(crc == e.crc, where, ": CRC-32 mismatch (the file is corrupt)");
  return out;
}

std::string array_name(const std::string& member) {
  const std::string suffix = ".npy";
  if (member.size() > suffix.size() && member.compare(member.size() - suffix.size(), suffix.size(), suffix) == 0)
    return member.substr(0, member.size() - suffix.size());
  return member;
}

void put(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace

std::vector<std::string> list_npz(const std::string& path) {
  std::vector<std::string> names;
  for (const Entry& e : directory(read_all(path), path)) names.push_back(array_name(e.name));
  return names;
}

std::map<std::string, Tensor> read_npz(const std::string& path) {
  const std::string b = read_all(path);
  std::map<std::string, Tensor> arrays;
  for (const Entry& e : directory(b, path))
    arrays[array_name(e.name)] = parse_npy(member_bytes(b, e, path), path + ":" + e.name);
  return arrays;
}

Tensor read_npz_array(const std::string& path, const std::string& name) {
  const std::string b = read_all(path);
  std::string names;
  for (const Entry& e : directory(b, path)) {
    if (array_name(e.name) == name) return parse_npy(member_bytes(b, e, path), path + ":" + e.name);
    names += (names.empty() ? "" : ", ") + array_name(e.name);
  }
  MEDTL_CHECK(false, "npz '", path, "' has no array '", name, "'; it has: ", names);
  return Tensor();
}

void write_npz(const std::string& path, const std::map<std::string, Tensor>& arrays, bool compress) {
  std::string file, central;
  for (const auto& [name, tensor] : arrays) {
    const std::string member = name + ".npy";
    const std::string raw = serialize_npy(tensor);
    MEDTL_CHECK(raw.size() < 0xffffffffull, "write_npz: array '", name, "' is over 4 GiB (ZIP64 writing is not supported)");
    std::string data = raw;
    if (compress) {
      data.resize(compressBound(static_cast<uLong>(raw.size())) + 64);
      z_stream z{};
      MEDTL_CHECK(deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK,
                  "write_npz: zlib deflateInit2 failed");
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
      z.avail_in = static_cast<uInt>(raw.size());
      z.next_out = reinterpret_cast<Bytef*>(data.data());
      z.avail_out = static_cast<uInt>(data.size());
      const int rc = deflate(&z, Z_FINISH);
      data.resize(z.total_out);
      deflateEnd(&z);
      MEDTL_CHECK(rc == Z_STREAM_END, "write_npz: zlib deflate failed (", rc, ")");
    }
    const uint32_t crc = static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(raw.data()), static_cast<uInt>(raw.size())));
    const uint64_t offset = file.size();
    const uint16_t method = compress ? 8 : 0;
    put(file, kLocalHeader, 4); put(file, 20, 2); put(file, 0, 2); put(file, method, 2);
    put(file, 0, 2); put(file, 0x21, 2);  // time, date: 1980-01-01 00:00
    put(file, crc, 4); put(file, data.size(), 4); put(file, raw.size(), 4);
    put(file, member.size(), 2); put(file, 0, 2);
    file += member;
    file += data;
    put(central, kCentralHeader, 4); put(central, 20, 2); put(central, 20, 2); put(central, 0, 2); put(central, method, 2);
    put(central, 0, 2); put(central, 0x21, 2);
    put(central, crc, 4); put(central, data.size(), 4); put(central, raw.size(), 4);
    put(central, member.size(), 2); put(central, 0, 2); put(central, 0, 2); put(central, 0, 2); put(central, 0, 2);
    put(central, 0, 4); put(central, offset, 4);
    central += member;
  }
  const uint64_t dir_offset = file.size();
  file += central;
  put(file, kEndOfDirectory, 4); put(file, 0, 2); put(file, 0, 2);
  put(file, arrays.size(), 2); put(file, arrays.size(), 2);
  put(file, central.size(), 4); put(file, dir_offset, 4); put(file, 0, 2);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    MEDTL_CHECK(out.good(), "write_npz: cannot create '", tmp, "' (does the folder exist? is it writable?)");
    out.write(file.data(), static_cast<std::streamsize>(file.size()));
    MEDTL_CHECK(out.good(), "write_npz: writing '", tmp, "' failed (disk full?)");
  }
  MEDTL_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "write_npz: cannot rename '", tmp, "' to '", path, "'");
}

}  // namespace medtl::data
