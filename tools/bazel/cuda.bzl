"""Opt-in CUDA support: `cuda_library`, a cc_library whose .cu files nvcc compiles, and
`cuda_test`, a GoogleTest binary that runs its GPU tests under --config=cuda and skips otherwise.

nvcc compiles each .cu file into a -fPIC host object with sm_90 machine code and compute_90 PTX
embedded, `nvcc --lib` gathers them into one static archive, and a cc_library wraps the archive
and links cudart, cuBLAS and cuDNN (@local_cuda//:cuda_runtime, from //tools/bazel:cuda_repo.bzl).
All of it only under `--config=cuda` (//tools/bazel:cuda_enabled): in the default build the
cc_library holds its plain C++ headers and nothing else, and nvcc never runs, so a machine
without CUDA builds and tests the rest of the project.
"""

load("@local_cuda//:cuda_config.bzl", "CUDA_FOUND", "NVCC")

# Hopper (H100, H200): machine code for sm_90 plus compute_90 PTX, which newer GPUs JIT-compile.
_GENCODE = ["-gencode", "arch=compute_90,code=[sm_90,compute_90]"]
_NVCC_FLAGS = ["-std=c++17", "-O2", "--expt-relaxed-constexpr", "-Xcompiler", "-fPIC"] + _GENCODE

# ---------------------------------------------------------------------------- nvcc compile rule

def _nvcc_archive_impl(ctx):
    if not CUDA_FOUND:
        fail(("--config=cuda needs the CUDA toolkit, and there is no nvcc at %s. Install CUDA 13 with " +
              "cuDNN 9 there, or point CUDA_HOME at it, " +
              "or build without --config=cuda.") % NVCC)
    cc_infos = [d[CcInfo] for d in ctx.attr.deps if CcInfo in d]
    headers = depset(ctx.files.hdrs, transitive = [i.compilation_context.headers for i in cc_infos])

    # nvcc takes -I and -isystem (not -iquote): quote and plain include paths both become -I.
    defines, includes, system_includes = [], [".", ctx.bin_dir.path], []
    for i in cc_infos:
        cc = i.compilation_context
        defines += cc.defines.to_list()
        includes += cc.quote_includes.to_list() + cc.includes.to_list()
        system_includes += cc.system_includes.to_list()
    include_flags = []
    for flag, values in [("-D", defines), ("-I", includes), ("-isystem", system_includes)]:
        seen = {}
        for v in values:
            if v not in seen:
                seen[v] = True
                include_flags += [flag, v]  # nvcc wants "-isystem DIR", two arguments

    objects = []
    for src in ctx.files.srcs:
        obj = ctx.actions.declare_file("_nvcc/%s/%s.o" % (ctx.label.name, src.basename[:-len(src.extension) - 1]))
        args = ctx.actions.args()
        args.add_all(_NVCC_FLAGS)
        args.add_all(ctx.attr.copts)
        args.add_all(include_flags)
        args.add("-c", src)
        args.add("-o", obj)
        ctx.actions.run(
            executable = ctx.attr.nvcc,
            arguments = [args],
            inputs = depset([src], transitive = [headers]),
            outputs = [obj],
            mnemonic = "NvccCompile",
            progress_message = "nvcc %s" % src.short_path,
            use_default_shell_env = True,
        )
        objects.append(obj)

    # ".lo" is Bazel's name for an always-linked archive (--whole-archive): static initialisers
    # in it (the CUDA backend's registration) are kept even though nothing refers to them.
    archive = ctx.actions.declare_file(("lib%s.lo" if ctx.attr.alwayslink else "lib%s.a") % ctx.label.name)
    ctx.actions.run(
        executable = ctx.attr.nvcc,
        arguments = ["--lib", "-o", archive.path] + [o.path for o in objects],
        inputs = objects,
        outputs = [archive],
        mnemonic = "NvccArchive",
        progress_message = "nvcc --lib %s" % archive.short_path,
        use_default_shell_env = True,
    )
    return [DefaultInfo(files = depset([archive]))]

_nvcc_archive = rule(
    implementation = _nvcc_archive_impl,
    attrs = {
        "srcs": attr.label_list(allow_files = [".cu"]),
        "hdrs": attr.label_list(allow_files = [".h", ".cuh", ".hpp"]),
        "deps": attr.label_list(providers = [CcInfo]),
        "copts": attr.string_list(),
        "nvcc": attr.string(mandatory = True),
        "alwayslink": attr.bool(default = False),
    },
    doc = "Compiles .cu files with nvcc (-fPIC host objects, sm_90 code and compute_90 PTX) into one static archive.",
)

# ---------------------------------------------------------------------------- the macro

_CUDA = "//tools/bazel:cuda_enabled"

def cuda_library(name, srcs = [], hdrs = [], cuda_hdrs = [], deps = [], nvcc_copts = [], alwayslink = False,
                 visibility = None, **kwargs):
    """A cc_library whose .cu sources are compiled by nvcc under --config=cuda.

    Args:
      name: the cc_library's name.
      srcs: .cu files; compiled only under --config=cuda.
      hdrs: plain C++ headers (no CUDA includes): the library's interface in both modes.
      cuda_hdrs: headers that include CUDA's own; exported only under --config=cuda.
      deps: cc_library targets the .cu files and the headers need.
      nvcc_copts: extra nvcc flags for the .cu files.
      alwayslink: link every object of the archive, so that static initialisers survive.
      visibility: as for cc_library.
      **kwargs: passed on to cc_library.
    """
    _nvcc_archive(
        name = name + "_nvcc",
        srcs = srcs,
        hdrs = hdrs + cuda_hdrs,
        deps = deps + ["@local_cuda//:cuda_headers"],
        copts = nvcc_copts,
        nvcc = NVCC,
        alwayslink = alwayslink,
        # Built only as a dependency of the cc_library under --config=cuda, never by //... .
        tags = ["manual"],
        visibility = ["//visibility:private"],
    )
    native.cc_library(
        name = name,
        srcs = select({_CUDA: [":" + name + "_nvcc"], "//conditions:default": []}),
        hdrs = hdrs + select({_CUDA: cuda_hdrs, "//conditions:default": []}),
        deps = deps + select({_CUDA: ["@local_cuda//:cuda_runtime"], "//conditions:default": []}),
        # The archive is linked as it is; there are no objects to make a shared library of.
        linkstatic = kwargs.pop("linkstatic", True),
        visibility = visibility,
        **kwargs
    )

def cuda_test(name, srcs = None, deps = [], size = "small", **kwargs):
    """A GoogleTest binary for the CUDA backend, tests/cuda/<name>.cc by default.

    Compiled in both modes: under --config=cuda with MEDTL_WITH_CUDA defined (the test then runs
    on a GPU, or skips saying there is none); in the default build without it (the source then
    holds one test that skips, saying how to build for CUDA).

    Args:
      name: the test's name.
      srcs: defaults to [name + ".cc"].
      deps: what the test needs beyond //tensor/cuda and GoogleTest.
      size: as for cc_test.
      **kwargs: passed on to cc_test.
    """
    native.cc_test(
        name = name,
        srcs = srcs if srcs else [name + ".cc"],
        size = size,
        local_defines = select({_CUDA: ["MEDTL_WITH_CUDA"], "//conditions:default": []}),
        deps = deps + [
            "//tensor:core",
            "//tensor/cuda",
            "//tests/cuda:cuda_test_util",
            "//third_party:gtest_main",
        ],
        **kwargs
    )
