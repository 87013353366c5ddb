#!/usr/bin/env bash
# The shape of the code, checked from its #include lines (docs/ARCHITECTURE.md, "Module map"):
#   1. common/ includes nothing of agent/ or coordinator/;
#   2. in agent/, a file includes only headers of its own layer or a lower one (the table below),
#      and the daemon and CLI layers include none of the executor's internal headers (session up
#      to jobrec): they use its public header executor.h;
#   3. in coordinator/, likewise by its own table: the cmd_*.c files (the subcommands, the only
#      code that maps results to exit codes) sit on top, main.c above them;
#   4. no include cycle between modules (X.c and X.h are module X; executor.h, the executor's
#      public header, is a module of its own).
# A new agent or coordinator file must be added to its table. Exit 0 when the shape holds, 1 with the offending
# lines otherwise.
#
#   tests/check_layers.sh [REPO]
set -euo pipefail
REPO=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$REPO"

# agent module -> layer (lowest first)
declare -A LAYER=(
  [executor.h]=0 [failpoint]=0 [connpool]=0 [seqstore]=0
  [session]=1
  [state]=2 [audit]=2
  [step]=3
  [fk]=4 [index]=4 [backup]=4
  [stepexec]=5
  [status]=6 [verify]=6 [jobrec]=6
  [executor]=7
  [daemon_int]=8 [daemon_eventseq]=8
  [daemon_events]=9 [daemon_tenant]=9 [daemon_release]=9
  [daemon_audit]=10 [daemon_rejections]=10
  [daemon_intake]=11
  [daemon_worker]=12 [daemon_pool]=12 [daemon_discover]=12
  [daemon_main]=13 [cli]=13 [agent_cli]=13
  [main]=14
)
# coordinator module -> layer (cmd_* other than cmd_common: layer 7)
declare -A CLAYER=(
  [schema]=0 [planfile]=0 [event]=0
  [coord]=1
  [ctldb]=2 [verbs]=2 [report]=2 [outbox]=2 [event_ingest]=2
  [audit_ingest]=3 [live]=3
  [audit_read]=4
  [engine]=5
  [cmd_common]=6
  [main]=8
)
readonly INTERNAL_MAX=7 # layers 1..7: the executor's inside, not for the daemon or the CLI
readonly DAEMON_MIN=8

failures=0
fail() {
  printf 'check_layers: %s\n' "$*" >&2
  failures=$((failures + 1))
}

# "file<TAB>included" for every quoted include of the given directories
includes() {
  grep -HoE '^#include "[^"]+"' "$@" 2>/dev/null | sed -E 's/:#include "(.*)"$/\t\1/'
}

module_of() { # path or include name -> module
  local b
  b=$(basename "$1")
  [[ $b == executor.h ]] && { echo executor.h; return; }
  echo "${b%.[ch]}"
}

# 1. common/ stands alone
while IFS=$'\t' read -r file inc; do
  [[ $inc == pgr/* ]] || fail "$file includes \"$inc\": common/ may include only pgr/ headers"
done < <(includes common/src/*.c common/include/pgr/*.h)

# 2. and 3. layers: dir, name of its table; a file includes only its own layer or lower ones
layer_of() { # table module -> layer, or "" when not listed
  local -n t=$1
  if [[ -n ${t[$2]+x} ]]; then
    echo "${t[$2]}"
  elif [[ $1 == CLAYER && $2 == cmd_* ]]; then
    echo 7
  fi
}
check_layers() {
  local dir=$1 table=$2 f m im lm li file inc
  for f in "$dir"/*.c "$dir"/*.h; do
    m=$(module_of "$f")
    [[ -n $(layer_of "$table" "$m") ]] ||
      fail "$f: module \"$m\" is not in the layer table of tests/check_layers.sh"
  done
  while IFS=$'\t' read -r file inc; do
    [[ $inc == pgr/* ]] && continue
    m=$(module_of "$file") im=$(module_of "$inc")
    lm=$(layer_of "$table" "$m") li=$(layer_of "$table" "$im")
    [[ -n $lm && -n $li ]] || continue
    ((li <= lm)) ||
      fail "$file (layer $lm) includes \"$inc\" (layer $li): a lower layer includes a higher one"
    if [[ $table == LAYER ]] && ((lm >= DAEMON_MIN && li >= 1 && li <= INTERNAL_MAX)); then
      fail "$file includes \"$inc\", an internal header of the executor: use executor.h"
    fi
  done < <(includes "$dir"/*.c "$dir"/*.h)
}
check_layers agent LAYER
check_layers coordinator CLAYER

# 4. no cycles between modules
edges=$(includes common/src/*.c common/include/pgr/*.h agent/*.c agent/*.h coordinator/*.c \
  coordinator/*.h | while IFS=$'\t' read -r file inc; do
  a=$(dirname "$file")/$(module_of "$file")
  [[ $inc == pgr/* ]] && b=common/$(module_of "$inc") || b=$(dirname "$file")/$(module_of "$inc")
  [[ $file == common/* ]] && a=common/$(module_of "$file")
  [[ $a != "$b" ]] && printf '%s %s\n' "$a" "$b"
done | sort -u)
if ! loop=$(tsort <<<"$edges" 2>&1 >/dev/null) || [[ -n $loop ]]; then
  fail "include cycle between modules: $(grep -v 'input contains a loop' <<<"$loop" | sed 's/^tsort: //' | tr '\n' ' ')"
fi

if ((failures > 0)); then
  printf 'check_layers: %d problem(s); the layers are described in docs/ARCHITECTURE.md, "Module map"\n' "$failures" >&2
  exit 1
fi
echo "check_layers: common, agent and coordinator include only downwards; no cycles"
