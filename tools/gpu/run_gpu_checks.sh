#!/usr/bin/env bash
# Old name of tools/gpu/run.sh, kept so that existing notes and commands still work.
exec "$(dirname "${BASH_SOURCE[0]}")/run.sh" "$@"
