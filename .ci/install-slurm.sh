#!/usr/bin/env bash
# CI: a one-node SLURM (slurmctld, slurmd, munge; Debian packages) for tests/servers/test_slurm.py.
# Idempotent: does nothing when the daemons and clients are installed already. The packages'
# own services are not started (a policy-rc.d refuses it during the install); the test starts
# its own daemons with its own slurm.conf and munge key.
set -euo pipefail

need=(slurmctld slurmd sbatch squeue scontrol munged)
missing=0
for bin in "${need[@]}"; do
    if ! command -v "$bin" >/dev/null && [ ! -x "/usr/sbin/$bin" ]; then
        missing=1
    fi
done
[ "$missing" = 0 ] && exit 0

export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
