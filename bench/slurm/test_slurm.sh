#!/usr/bin/env bash
# A real single-node Slurm cluster on localhost: installs Debian's slurm-wlm and munge (needs root
# and apt), starts munged, slurmctld and slurmd, submits the job array that `harness slurm` writes
# for configs/ci.yaml (3 array tasks), waits for it, and checks that the report of the merged
# results folder equals the report of a local run of the same sweep (run ids, metrics, tables).
# Usage (repository root, after `make build`): bash bench/slurm/test_slurm.sh
set -euo pipefail
ROOT=$(pwd)
H=$ROOT/target/debug/harness
WORK=${WORK:-$(mktemp -d /tmp/harness-slurm.XXXX)}
chmod 755 "$WORK"
echo "work folder: $WORK"

if ! command -v slurmctld >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null
fi

# munge: a key and the daemon
if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge && dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 755 /run/munge
chmod 400 /etc/munge/munge.key
pgrep -x munged >/dev/null || runuser -u munge -- /usr/sbin/munged

# slurm.conf for one node (this host), all CPUs, no GPUs
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(awk '/MemTotal/ {print int($2/1024) - 1024}' /proc/meminfo)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=harness-test
SlurmctldHost=$HOST
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
pkill -x slurmctld 2>/dev/null || true; pkill -x slurmd 2>/dev/null || true; sleep 1
slurmctld -c
slurmd -c
for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -qE "idle|mix" && break; sleep 1; done
sinfo

# the array job: 3 tasks, CPU only, one CPU each
"$H" slurm configs/ci.yaml --tasks 3 --gpus-per-task 0 --cpus-per-task 1 --time 00:30:00 \
  --results "$WORK/cluster/ci" -o "$WORK/ci.sbatch"
cat "$WORK/ci.sbatch"
JOB=$(sbatch --parsable "$WORK/ci.sbatch")
echo "submitted job array $JOB"
for _ in $(seq 600); do
  [ -z "$(squeue -h -j "$JOB" 2>/dev/null)" ] && break
  sleep 2
done
sacct -j "$JOB" 2>/dev/null || true
ls "$WORK/cluster/ci/logs"
n=$(ls "$WORK/cluster/ci/runs" 2>/dev/null | wc -l)
echo "records written by the array: $n"
[ "$n" -gt 0 ] || { echo "FAIL: the job array wrote no records"; tail -20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log; exit 1; }

# the same sweep locally, and the two reports
"$H" sweep configs/ci.yaml --results "$WORK/local/ci"
"$H" report "$WORK/cluster/ci" -o "$WORK/cluster.md"
"$H" report "$WORK/local/ci" -o "$WORK/local.md"
# Both runs are the same binary on the same machine: records agree bit for bit except timings,
# so compare the reports with the compute line (total seconds) left out.
if diff <(grep -v '^| compute' "$WORK/cluster.md") <(grep -v '^| compute' "$WORK/local.md"); then
  echo "PASS: the merged report of the Slurm job array equals the local run's report"
else
  echo "FAIL: the reports differ"; exit 1
fi
