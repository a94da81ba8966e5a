#!/bin/sh
echo "bazel coverage is not supported offline: the coverage tools are a local stand-in (third_party/remote_coverage_tools)." >&2
exit 1
