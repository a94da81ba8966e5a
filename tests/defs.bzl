"""medtl_test: a GoogleTest binary named after its source file, tests/<name>.cc."""

def medtl_test(name, deps = [], srcs = None, size = "small", **kwargs):
    native.cc_test(
        name = name,
        srcs = srcs if srcs else [name + ".cc"],
        size = size,
        deps = deps + ["//third_party:gtest_main", "//tests:test_util"],
        **kwargs
    )
