#!/usr/bin/env bash
# Before and now, side by side: a benchmark module run alternately on another checkout's code
# (PYTHONPATH=that checkout, for the client and the server it starts) and on this one.
#
#   bench/alternate.sh <checkout of the base commit> <rounds> <bench module> [its arguments]
#   e.g. git worktree add /tmp/base cbd1732 && ln -s "$PWD/bench/out" /tmp/base/bench/out
#        bench/alternate.sh /tmp/base 3 bench.batch_bench --runs 50000
set -euo pipefail
base=$(realpath "$1"); rounds=$2; module=$3; shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
python="$here/.venv/bin/python"
for round in $(seq 1 "$rounds"); do
  for side in before now; do
    code=$base; [ "$side" = now ] && code=$here
    echo "== round $round, $side ($code)"
    (cd /tmp && PYTHONPATH=$code "$python" -m "$module" "$@")
  done
done
