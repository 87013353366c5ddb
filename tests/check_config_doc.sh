#!/usr/bin/env bash
# The configuration reference in docs/OPERATIONS.md is generated from the config table
# (common/src/config.c) by tests/tools/config_doc.c, so it cannot drift from the code.
#
#   tests/check_config_doc.sh BIN            # exit 1 when the doc differs from BIN's output
#   tests/check_config_doc.sh BIN --write    # rewrite the section between the markers
#
# BIN is the built config_doc (e.g. build-test/bin/config_doc). Edit the table, then --write.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOC=$REPO/docs/OPERATIONS.md
BIN=${1:?usage: tests/check_config_doc.sh BIN [--write]}
readonly BEGIN='<!-- BEGIN config-reference'
readonly END='<!-- END config-reference -->'

grep -q "^$BEGIN" "$DOC" && grep -q "^$END" "$DOC" || {
  echo "check_config_doc: $DOC lacks the config-reference markers" >&2
  exit 1
}
want=$("$BIN")
have=$(awk -v b="$BEGIN" -v e="$END" 'index($0, e) == 1 { on = 0 } on { print } index($0, b) == 1 { on = 1 }' "$DOC")
if [[ ${2:-} == --write ]]; then
  tmp=$(mktemp)
  awk -v b="$BEGIN" -v e="$END" -v f=<(printf '%s\n' "$want") '
    index($0, e) == 1 { on = 0 }
    !on { print }
    index($0, b) == 1 { on = 1; while ((getline line < f) > 0) print line }' "$DOC" >"$tmp"
  mv "$tmp" "$DOC"
  echo "check_config_doc: wrote the configuration reference into docs/OPERATIONS.md"
  exit 0
fi
if [[ $want != "$have" ]]; then
  echo "check_config_doc: docs/OPERATIONS.md's configuration reference differs from the config table; run tests/check_config_doc.sh $BIN --write" >&2
  diff <(printf '%s\n' "$have") <(printf '%s\n' "$want") >&2 || true
  exit 1
fi
echo "check_config_doc: docs/OPERATIONS.md matches the config table"
