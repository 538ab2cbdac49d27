#!/usr/bin/env bash
# A real one-node Slurm 22.05 cluster on this host for tests: own munged + slurmctld + slurmd on
# loopback, all state under $MPITRAIN_SLURM_DIR (default /tmp/mpitrain-slurm). `stop` kills only
# the daemons this script started (pid files under that directory). Needs root.
# Usage: slurm/local-cluster.sh start|stop|status|env
#   then: export SLURM_CONF=$MPITRAIN_SLURM_DIR/slurm.conf; srun -n 2 --mpi=pmix ./prog
set -euo pipefail
DIR=${MPITRAIN_SLURM_DIR:-/tmp/mpitrain-slurm}
CPUS=${MPITRAIN_SLURM_CPUS:-8}          # CPUs advertised (config_overrides lets this exceed nproc)
OVERSUB=${MPITRAIN_SLURM_OVERSUB:-4}    # jobs/tasks per CPU
CTLD_PORT=${MPITRAIN_SLURM_CTLD_PORT:-6817}
D_PORT=${MPITRAIN_SLURM_D_PORT:-6818}
HOST=$(hostname -s)
CONF=$DIR/slurm.conf
MSOCK=$DIR/munge/munge.socket

# pid file holds a live process running the expected program (guards against pid reuse)
alive() {
  [[ -s $1 ]] || return 1
  local p; p=$(cat "$1"); [[ $p =~ ^[0-9]+$ ]] && [[ -r /proc/$p/cmdline ]] || return 1
  tr '\0' ' ' < "/proc/$p/cmdline" | grep -q "$2"
}

write_conf() {
  mkdir -p "$DIR"/{state,log,munge} "$DIR/spool/$HOST"
  chmod 711 "$DIR/munge"
  [[ -f $DIR/munge/munge.key ]] || { dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1 count=1024 status=none; chmod 400 "$DIR/munge/munge.key"; }
  cat > "$CONF" <<CONF
ClusterName=mpitrain
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MSOCK
SlurmctldPort=$CTLD_PORT
SlurmdPort=$D_PORT
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
SlurmdParameters=config_overrides
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=60
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:$OVERSUB
CONF
}

status() {
  for d in munged slurmctld slurmd; do
    if alive "$DIR/$d.pid" "$d"; then echo "$d: running pid $(cat "$DIR/$d.pid")"; else echo "$d: not running"; fi
  done
  SLURM_CONF=$CONF sinfo 2>&1 || true
}

start() {
  for exe in /usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd; do
    [[ -x $exe ]] || { echo "local-cluster: $exe missing (apt-get install slurm-wlm munge)" >&2; return 1; }
  done
  write_conf
  alive "$DIR/munged.pid" munged || /usr/sbin/munged --force --socket="$MSOCK" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed"
  alive "$DIR/slurmctld.pid" slurmctld || /usr/sbin/slurmctld -f "$CONF"
  alive "$DIR/slurmd.pid" slurmd || /usr/sbin/slurmd -f "$CONF"
  for _ in $(seq 1 60); do
    if SLURM_CONF=$CONF sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'; then status; return 0; fi
    sleep 0.5
  done
  echo "local-cluster: node did not become idle; logs in $DIR/log" >&2
  status
  return 1
}

stop() {
  for d in slurmd slurmctld munged; do
    local f=$DIR/$d.pid
    if alive "$f" "$d"; then
      local p; p=$(cat "$f"); kill "$p"
      for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$p" 2>/dev/null && kill -9 "$p"
      echo "stopped $d ($p)"
    fi
    rm -f "$f"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
