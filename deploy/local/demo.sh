#!/usr/bin/env bash
# The main job on an embedded default: builds pgrollout, then checks and plans the four White
# Cross migrations. (Grows into the full signed rollout as the agent and coordinator land.)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
deploy/local/services.sh deps cmake ninja-build gcc >&2
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build >/dev/null
echo "== pgrollout lint migrations/"
build/bin/pgrollout lint migrations
echo "== pgrollout plan --migrations migrations"
build/bin/pgrollout plan --migrations migrations
