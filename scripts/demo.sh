#!/usr/bin/env bash
# The main job: a two-host lab, VM mvp4 on hosta with its disk in the shared
# pool CONT_VOL_COMP, booted (boot marker seen), then the hosts and VMs.
set -euo pipefail
cd "$(dirname "$0")/.."
vpd=.venv/bin/vpd

if $vpd lab status >/dev/null 2>&1; then
  echo "lab already up: reusing it"
else
  $vpd lab up --hosts 2
fi
state=$($vpd vm list --host hosta --all --json | .venv/bin/python -c '
import json, sys
vms = [v for h in json.load(sys.stdin)["hosts"] for v in h["vms"] if v["name"] == "mvp4"]
print(vms[0]["state"] if vms else "absent")')
case "$state" in
  absent)   $vpd vm create mvp4 --host hosta --lab-guest --memory 128 \
              --disk size=64M,pool=CONT_VOL_COMP,format=qcow2 --start --wait-boot ;;
  running)  echo "mvp4 already running on hosta" ;;
  *)        $vpd vm start mvp4 --host hosta --wait-boot ;;
esac
$vpd host list
$vpd vm list --all
