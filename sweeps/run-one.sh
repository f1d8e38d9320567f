#!/usr/bin/env bash
# The sweep ledger for one scenario: as sweeps/run.sh, for a scenario an older engine's binary
# cannot load (a ledger's binary is fixed; a scenario added later is swept by a newer binary
# whose engine gives the same trace hashes, under that commit's directory).
#
#   sweeps/run-one.sh ENGINE BINARY SCENARIO [FROM...]
set -uo pipefail
engine=$1; bin=$2; name=$3; shift 3
froms=("${@:-1 100000}")
cd "$(dirname "$0")/.."
for from in ${froms[@]}; do
  for k in $(seq 1 10); do
    dir="sweeps/$engine/$from"; out="$dir/$name.$k-of-10.json"
    [ -s "$out" ] && continue
    mkdir -p "$dir"
    nice -n 19 "$bin" swarm "scenarios/$name.toml" --seeds 10000 --from "$from" --shard "$k/10" --jobs 1 --json > "$out.tmp" 2> "$out.err"
    rc=$?
    if [ $rc -ne 0 ] && [ $rc -ne 1 ] && [ $rc -ne 3 ]; then echo "$out: swarm exited $rc"; cat "$out.err"; rm -f "$out.tmp"; continue; fi
    mv "$out.tmp" "$out"; rm -f "$out.err"
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[1], "passed", d["passed"], "failed", d["failed"])' "$out"
    for i in 1 2 3 4 5; do
      git add "$out" && git commit -q -m "sweep $engine from $from: $name shard $k/10" -- "$out" && break
      sleep 7
    done
  done
done
