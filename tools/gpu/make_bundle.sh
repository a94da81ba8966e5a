#!/usr/bin/env bash
# Old name of tools/gpu/pack.sh, kept so that existing notes and commands still work.
exec "$(dirname "${BASH_SOURCE[0]}")/pack.sh" "$@"
