// Proves //third_party:hdf5 works for dependents: <hdf5.h> is found (headers in
// /usr/include/hdf5/serial, exported by @hdf5_headers) and libhdf5 links and runs.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstdlib>
#include <string>
#include <vector>

namespace {

std::string temp_path(const char* name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

TEST(Hdf5Link, WritesAndReadsADataset) {
  const std::string path = temp_path("hdf5_link_test.h5");
  const std::vector<float> written = {1.5f, -2.0f, 3.25f, 0.0f, 1e-3f, 42.0f};
  const hsize_t dims[2] = {2, 3};

  const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(file, 0) << "H5Fcreate " << path;
  const hid_t space = H5Screate_simple(2, dims, nullptr);
  const hid_t group = H5Gcreate2(file, "/conv1", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(group, 0);
  const hid_t dset = H5Dcreate2(file, "/conv1/weight", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(dset, 0);
  ASSERT_GE(H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, written.data()), 0);
  H5Dclose(dset);
  H5Gclose(group);
  H5Sclose(space);
  ASSERT_GE(H5Fclose(file), 0);

  const hid_t rfile = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  ASSERT_GE(rfile, 0) << "H5Fopen " << path;
  const hid_t rdset = H5Dopen2(rfile, "/conv1/weight", H5P_DEFAULT);
  ASSERT_GE(rdset, 0);
  const hid_t rspace = H5Dget_space(rdset);
  ASSERT_EQ(H5Sget_simple_extent_ndims(rspace), 2);
  hsize_t rdims[2] = {0, 0};
  H5Sget_simple_extent_dims(rspace, rdims, nullptr);
  EXPECT_EQ(rdims[0], 2u);
  EXPECT_EQ(rdims[1], 3u);
  std::vector<float> read(6, -1.0f);
  ASSERT_GE(H5Dread(rdset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, read.data()), 0);
  EXPECT_EQ(read, written);
  H5Sclose(rspace);
  H5Dclose(rdset);
  H5Fclose(rfile);

  unsigned major = 0, minor = 0, release = 0;
  ASSERT_GE(H5get_libversion(&major, &minor, &release), 0);
  EXPECT_EQ(major, 1u);
}

}  // namespace
