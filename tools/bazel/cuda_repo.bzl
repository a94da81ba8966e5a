"""`local_cuda`: the installed CUDA toolkit as an external repository, for WORKSPACE.

Looks at $CUDA_HOME, else /usr/local/cuda. Nothing is downloaded: the repository symlinks the
toolkit's include folder and writes a BUILD file; with no toolkit there it makes empty targets,
so the default (CPU-only) build works on machines without CUDA.

Targets: @local_cuda//:cuda_headers (CUDA, cuBLAS, cuDNN headers, `#include <cuda_runtime.h>`),
@local_cuda//:cuda_runtime (links cudart, cuBLAS, cuDNN with -L and an rpath), and
@local_cuda//:cuda_config.bzl (CUDA_FOUND, CUDA_HOME, NVCC) for //tools/bazel:cuda.bzl.
"""

_DEFAULT_CUDA_HOME = "/usr/local/cuda"

def _lib_dir(rctx, dirs, lib):
    for d in dirs:
        if rctx.path(d + "/" + lib).exists:
            return d
    return None

def _local_cuda_impl(rctx):
    cuda_home = (rctx.os.environ.get("CUDA_HOME") or _DEFAULT_CUDA_HOME).rstrip("/")
    nvcc = cuda_home + "/bin/nvcc"
    found = rctx.path(nvcc).exists and rctx.path(cuda_home + "/include/cuda_runtime.h").exists
    rctx.file("cuda_config.bzl", "CUDA_FOUND = %s\nCUDA_HOME = %r\nNVCC = %r\n" % (found, cuda_home, nvcc))

    if not found:
        rctx.file("BUILD", """# No CUDA toolkit at {home} (set CUDA_HOME to where it is): empty targets.
package(default_visibility = ["//visibility:public"])

exports_files(["cuda_config.bzl"])

cc_library(name = "cuda_headers")

cc_library(name = "cuda_runtime")
""".format(home = cuda_home))
        return

    # lib64 on NVIDIA's installer layout, lib or targets/... on others; cuDNN may also come from a
    # distribution package in the multiarch folder.
    toolkit_dirs = [cuda_home + "/lib64", cuda_home + "/lib", cuda_home + "/targets/x86_64-linux/lib"]
    lib_dirs = []
    for lib, dirs in [
        ("libcudart.so", toolkit_dirs),
        ("libcublas.so", toolkit_dirs + ["/usr/lib/x86_64-linux-gnu"]),
        ("libcudnn.so", toolkit_dirs + ["/usr/lib/x86_64-linux-gnu"]),
    ]:
        d = _lib_dir(rctx, dirs, lib)
        if d == None:
            print("local_cuda: %s not found in %s; linking with --config=cuda will fail" % (lib, ", ".join(dirs)))
        elif d not in lib_dirs and d != "/usr/lib/x86_64-linux-gnu":
            lib_dirs.append(d)

    linkopts = []
    for d in lib_dirs:
        linkopts += ["-L" + d, "-Wl,-rpath," + d]
    linkopts += ["-lcudart", "-lcublas", "-lcudnn"]

    rctx.symlink(cuda_home + "/include", "include")
    rctx.file("BUILD", """# The CUDA toolkit at {home}, as found by //tools/bazel:cuda_repo.bzl.
package(default_visibility = ["//visibility:public"])

exports_files(["cuda_config.bzl"])

# Headers of CUDA, cuBLAS and cuDNN, for `#include <cuda_runtime.h>` in any dependent.
cc_library(
    name = "cuda_headers",
    hdrs = glob(["include/**"]),
    includes = ["include"],
)

# cudart, cuBLAS and cuDNN, with an rpath so binaries find them without LD_LIBRARY_PATH.
cc_library(
    name = "cuda_runtime",
    linkopts = {linkopts},
    deps = [":cuda_headers"],
)
""".format(home = cuda_home, linkopts = repr(linkopts)))

local_cuda = repository_rule(
    implementation = _local_cuda_impl,
    environ = ["CUDA_HOME"],
    local = True,
    doc = "The installed CUDA toolkit ($CUDA_HOME, else /usr/local/cuda) as an external repository.",
)
