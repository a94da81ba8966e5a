// NumPy .npz archives (numpy.savez: stored entries; numpy.savez_compressed: deflated entries):
// a zip file of .npy members. The zip directory is parsed here (ZIP64 included), deflated members
// are inflated with zlib and checked against their CRC-32, and each member goes through
// parse_npy. MedMNIST ships its splits this way (train_images, train_labels, val_..., test_...).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace medtl::data {

// Array names in archive order, without the ".npy" suffix.
std::vector<std::string> list_npz(const std::string& path);
// Every array, by name (without ".npy").
std::map<std::string, Tensor> read_npz(const std::string& path);
// One array; an unknown name throws listing the names the archive has.
Tensor read_npz_array(const std::string& path, const std::string& name);

// Writes arrays as an .npz that numpy.load reads: deflated (savez_compressed) or stored (savez).
// Atomic (path.tmp, then rename). For tests and for exporting results.
void write_npz(const std::string& path, const std::map<std::string, Tensor>& arrays, bool compress);

}  // namespace medtl::data
