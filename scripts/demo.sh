#!/usr/bin/env bash
# The main job, Práctica 4 on a two-host lab: a base VM, cloned (virt-clone's
# job) into mvp4 on hosta with its disk in the shared pool CONT_VOL_COMP, booted
# (boot marker seen); both hosts prepared
# (FQDNs, firewall); mvp4 migrated live to the other host with temporary SSH
# access that is revoked afterwards; the validated report; hosts and VMs.
# Run it again and mvp4 migrates back.
set -euo pipefail
cd "$(dirname "$0")/.."
vpd=.venv/bin/vpd

if $vpd lab status >/dev/null 2>&1; then
  echo "lab already up: reusing it"
else
  $vpd lab up --hosts 2
fi
read -r where state < <($vpd vm list --all --json | .venv/bin/python -c '
import json, sys
found = [(h["host"], v["state"]) for h in json.load(sys.stdin)["hosts"] for v in h["vms"] if v["name"] == "mvp4"]
print(*(found[0] if found else ("-", "absent")))')
case "$state" in
  absent)   $vpd vm list --host hosta --all --json | grep -q '"mvp4-base"' ||
              $vpd vm create mvp4-base --host hosta --lab-guest --memory 128 \
                --disk size=64M,pool=CONT_VOL_COMP,format=qcow2
            $vpd vm clone mvp4-base mvp4 --host hosta --pool CONT_VOL_COMP
            $vpd vm start mvp4 --host hosta --wait-boot
            where=hosta ;;
  running)  echo "mvp4 already running on $where" ;;
  *)        $vpd vm start mvp4 --host "$where" --wait-boot ;;
esac
[ "$where" = hosta ] && dest=hostb || dest=hosta
$vpd host prepare hosta hostb
$vpd migrate mvp4 --to "$dest" --live --persistent --undefinesource
$vpd access list
$vpd history --limit 3
$vpd host list
$vpd vm list --all

# The web console on this lab (issue 13): a fresh operator token for the demo (the previous
# demo's is revoked), and how to start the server — the demo does not leave one running.
.venv/bin/python - <<'PY'
from vpd.web.tokens import TokenStore

store = TokenStore()
for old in store.list():
    if old.label == "make demo":
        store.revoke(old.id)
_, token = store.create("operator", label="make demo")
print(f"""
Web console: run   .venv/bin/vpd web
then open          http://127.0.0.1:8080/
and log in with    {token}
(an operator token, shown only now; `vpd web token create --role viewer` makes one for a class)""")
PY
