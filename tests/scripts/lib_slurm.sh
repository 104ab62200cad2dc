# A one-node Slurm cluster for the script tests (sourced after lib.sh): munged, slurmctld and slurmd
# as root on loopback, with every file (munge key and socket, slurm.conf, state, spool, logs) under
# one temporary directory, so nothing in /etc/slurm, /etc/munge or /run/munge is read or written.
#
#   source "$scripts/lib_slurm.sh"
#   slurm_cluster_start                 # exits 77 when not root or Slurm/munge are absent; returns
#                                       # when `sinfo` shows the node idle; exports SLURM_CONF
#   sbatch ... / srun --mpi=pmix ...    # as usual
#   (the cluster is stopped and its directory removed on exit, also on failure: an EXIT trap)
#
# Parallel tests cannot collide: each cluster has its own munge socket, its own ports (free ones,
# picked by binding port 0), its own cluster name, spool and state directories, and its own range of
# job ids (a random FirstJobId). Slurm 22.05 with the pmix plugins (Debian 12's slurm-wlm);
# scripts/install-deps.sh installs it. The node has the machine's real CPUs and memory
# (`slurmd -C`); its partition shares cores between up to 4 jobs (OverSubscribe=FORCE:4), so a job
# array of more workers than cores runs all at once on 2 cores.
# docs/distributed.md "Slurm" describes the same setup for a real installation. To debug a test:
# SLURM_TEST_DEBUG=debug (the daemons' log level, default info) and SLURM_KEEP_CLUSTER=1 (the
# directory, with log/slurmctld.log and log/slurmd.log, is kept after the test).

slurm_cluster_dir=""

slurm_cluster_stop() {
  [[ -n $slurm_cluster_dir && -d $slurm_cluster_dir ]] || return 0
  local d=$slurm_cluster_dir pidfile pid i
  # Jobs first, so that their steps (slurmstepd, which outlives slurmd) end before slurmd does.
  scancel --quiet --user=root 2> /dev/null || true
  for ((i = 0; i < 150; i++)); do
    [[ -z $(squeue --noheader --format=%i 2> /dev/null) ]] && break
    sleep 0.1
  done
  for pidfile in "$d/slurmd.pid" "$d/slurmctld.pid" "$d/munged.pid"; do
    [[ -s $pidfile ]] || continue
    pid=$(cat "$pidfile")
    kill -TERM "$pid" 2> /dev/null || continue
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2> /dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2> /dev/null || true
  done
  if [[ ${SLURM_KEEP_CLUSTER:-0} == 1 ]]; then
    echo "slurm cluster: kept $d" >&2
  else
    rm -rf "$d"
  fi
  slurm_cluster_dir=""
}

slurm_cluster_skip() {
  echo "SKIP: $*" >&2
  exit 77
}

# Prints a free TCP port on 127.0.0.1 (the kernel's choice for port 0, released right away).
slurm_free_port() {
  "${EXPT_PYTHON:-/usr/bin/python3}" -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Dumps the daemons' logs (on failure).
slurm_cluster_logs() {
  local f
  for f in "$slurm_cluster_dir"/log/*.log; do
    [[ -e $f ]] || continue
    echo "---- $f (last 30 lines)" >&2
    tail -n 30 "$f" >&2
  done
}

slurm_cluster_start() {
  local d
  ((EUID == 0)) || slurm_cluster_skip "the one-node Slurm cluster needs root (slurmd runs jobs as their users)"
  local tool
  for tool in munged mungekey slurmctld slurmd sinfo sbatch srun scontrol scancel squeue; do
    command -v "$tool" > /dev/null || slurm_cluster_skip "$tool not found: install slurm-wlm and munge (scripts/install-deps.sh)"
  done
  [[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/mpi_pmix.so || -n $(find /usr/lib* -name mpi_pmix.so 2> /dev/null | head -1) ]] ||
    slurm_cluster_skip "Slurm's pmix MPI plugin (mpi_pmix.so) not found"

  # Under /tmp, not under the test's work folder: Unix socket paths (munge's, slurmstepd's) must stay
  # below 108 bytes.
  d=$(mktemp -d "${TMPDIR:-/tmp}/expt-slurm.XXXXXX")
  slurm_cluster_dir=$d
  mkdir -p "$d"/{state,spool,log,tmp,munge}
  # A test killed by ctest's timeout (SIGTERM) or by hand stops its cluster too.
  trap 'slurm_cluster_stop' EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM

  local host ctld_port slurmd_port node_line
  host=$(hostname -s)
  ctld_port=$(slurm_free_port)
  slurmd_port=$(slurm_free_port)
  while [[ $slurmd_port == "$ctld_port" ]]; do slurmd_port=$(slurm_free_port); done
  node_line=$(slurmd -C | head -n 1)
  [[ $node_line == NodeName=* ]] || die "slurmd -C printed no node line: $node_line"

  # munged runs as root here (--force), with its key, socket, pid, seed and log files in $d/munge.
  mungekey --create --keyfile="$d/munge/munge.key"
  chmod 600 "$d/munge/munge.key"
  munged --force --socket="$d/munge/munge.socket" --key-file="$d/munge/munge.key" \
    --pid-file="$d/munged.pid" --seed-file="$d/munge/munged.seed" --log-file="$d/log/munged.log" ||
    die "munged did not start (log: $d/log/munged.log)"

  # Job ids from a random start, not from 1: Open MPI names its shared-memory (vader) segments after
  # the PMIx namespace slurm.pmix.JOB.STEP, so two clusters on this host running the same job id at
  # once mapped the same /dev/shm files and crashed each other's ranks (segfaults in
  # mca_btl_vader_poll_handle_frag, or hangs; decision 141).
  local first_job_id=$(((RANDOM * 32768 + RANDOM) % 60000000 + 1000))
  : > "$d/plugstack.conf"
  cat > "$d/slurm.conf" << EOF
# One-node test cluster (tests/scripts/lib_slurm.sh).
ClusterName=expt$$
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$d/munge/munge.socket
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool/slurmd-%n
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
SlurmctldDebug=${SLURM_TEST_DEBUG:-info}
SlurmdDebug=${SLURM_TEST_DEBUG:-info}
PlugStackConfig=$d/plugstack.conf
TmpFS=$d/tmp
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
FirstJobId=$first_job_id
KillWait=5
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
  export SLURM_CONF=$d/slurm.conf
  slurmctld -f "$SLURM_CONF" || { slurm_cluster_logs; die "slurmctld did not start"; }
  slurmd -f "$SLURM_CONF" || { slurm_cluster_logs; die "slurmd did not start"; }

  local i state=""
  for ((i = 0; i < 300; i++)); do
    state=$(sinfo --noheader --nodes="$host" --format=%t 2> /dev/null || true)
    [[ $state == idle ]] && break
    sleep 0.1
  done
  [[ $state == idle ]] || { slurm_cluster_logs; die "the node is '$state', not idle, after 30 s"; }
}

# Waits (up to $2 seconds, default 120) until job $1 (every task of an array) has left the queue.
slurm_wait_job() {
  local job=$1 limit=${2:-120} i
  for ((i = 0; i < limit * 10; i++)); do
    [[ -z $(squeue --noheader --jobs="$job" --format=%i 2> /dev/null) ]] && return 0
    sleep 0.1
  done
  squeue --jobs="$job" >&2 || true
  slurm_cluster_logs
  die "job $job still queued or running after $limit s"
}

# Releases the requeued task $1 (JOB_TASK, shown PENDING) from Slurm's hold after a requeue
# (Reason=BeginTime, CredExpire + 1 s = 121 s) in the next second, not in this one: slurmd refuses to
# launch a job whose credential is not newer, in whole seconds, than the revocation of its previous
# run's, and Slurm then ends the task FAILED 1:0 without running it ("Job credential revoked",
# decision 141). PENDING is shown once the previous run's epilog is done, after that revocation.
# (StartTime=now+2 is as safe, but the task then waited for slurmctld's next periodic scheduling
# pass: 30 s in the one run measured; StartTime=now schedules it at once.)
slurm_release_requeued() {
  local shown
  shown=$(date +%s)
  while (($(date +%s) <= shown)); do sleep 0.05; done
  scontrol update JobId="$1" StartTime=now
}
