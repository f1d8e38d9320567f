#!/usr/bin/env bash
# The sweep ledger: 10,000 seeds of every scenario from seed 1 and from seed 100000, in ten
# shards each, one `swarm --json` file per scenario and shard, committed as each finishes so a
# sweep interrupted anywhere resumes where it stopped.
#
#   sweeps/run.sh ENGINE BINARY [FROM...]
#
# ENGINE names the commit whose engine BINARY was built from (the ledger's directory);
# `faultline merge sweeps/ENGINE/FROM/NAME.*.json` joins a scenario's shards.
set -uo pipefail
engine=$1; bin=$2; shift 2
froms=("${@:-1 100000}")
cd "$(dirname "$0")/.."
for from in ${froms[@]}; do
  for k in $(seq 1 10); do
    for scenario in scenarios/*.toml; do
      name=$(basename "$scenario" .toml)
      dir="sweeps/$engine/$from"; out="$dir/$name.$k-of-10.json"
      [ -s "$out" ] && continue
      mkdir -p "$dir"
      nice -n 19 "$bin" swarm "$scenario" --seeds 10000 --from "$from" --shard "$k/10" --jobs 2 --json > "$out.tmp" 2> "$out.err"
      rc=$?
      if [ $rc -ne 0 ] && [ $rc -ne 1 ] && [ $rc -ne 3 ]; then echo "$out: swarm exited $rc"; cat "$out.err"; rm -f "$out.tmp"; continue; fi
      mv "$out.tmp" "$out"; rm -f "$out.err"
      python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[1], "passed", d["passed"], "failed", d["failed"])' "$out"
      for i in 1 2 3 4 5; do
        git add "$out" && git commit -q -m "sweep $engine from $from: $name shard $k/10" -- "$out" && break
        sleep 5
      done
    done
  done
done
