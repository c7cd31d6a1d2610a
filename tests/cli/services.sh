# Real engines for the worker-pool tests, sourced by them: a single-node Slurm cluster (munged,
# slurmctld, slurmd) and an sshd on 127.0.0.1, each configured under a folder of the build tree, on
# free ports, and stopped by its pid when the test ends, whatever way it ends. Nothing in /etc is
# changed. Needs root (slurmd and sshd do), as CI is.

service_pids=()
stop_services() {
  local pid
  for pid in "${service_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${service_pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  service_pids=()
}

# The pid in a pid file, once the daemon has written it (within 10 s).
pid_of() {
  for _ in $(seq 100); do
    [ -s "$1" ] && { cat "$1"; return 0; }
    sleep 0.1
  done
  echo "no pid file $1" >&2
  return 1
}

# A TCP port nothing listens on (from /proc/net/tcp*, which every Linux has).
free_port() {
  local port hex
  while :; do
    port=$((20000 + RANDOM % 40000))
    hex=$(printf ':%04X ' "$port")
    grep -q "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null || { echo "$port"; return; }
  done
}

# start_slurm DIR: munged with a key of its own, slurmctld and slurmd; exports SLURM_CONF. Waits
# until the node is idle.
start_slurm() {
  local dir=$1 host
  host=$(hostname -s)
  rm -rf "$dir" && mkdir -p "$dir"/{spool,state,munge} && chmod 700 "$dir/munge"
  mungekey --create --keyfile="$dir/munge/munge.key" --force >/dev/null 2>&1 ||
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=128 count=1 2>/dev/null
  chmod 600 "$dir/munge/munge.key"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed"
  service_pids+=("$(pid_of "$dir/munge/munged.pid")")
  cat >"$dir/slurm.conf" <<EOF
ClusterName=kforgetest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
SlurmUser=root
SlurmdUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmdSpoolDir=$dir/spool
StateSaveLocation=$dir/state
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF=$dir/slurm.conf
  unset SLURM_JOB_ID SLURM_JOBID
  slurmctld -f "$SLURM_CONF"
  service_pids+=("$(pid_of "$dir/slurmctld.pid")")
  slurmd -f "$SLURM_CONF"
  service_pids+=("$(pid_of "$dir/slurmd.pid")")
  for _ in $(seq 150); do
    sinfo -h -o %T 2>/dev/null | grep -qx idle && return 0
    sleep 0.2
  done
  echo "the Slurm node never became idle:"; sinfo 2>&1; tail -5 "$dir"/*.log
  return 1
}

# start_sshd DIR: sshd on 127.0.0.1 with a host key and a client key of the test's; writes
# DIR/ssh_config, under which `ssh -F DIR/ssh_config kforge-test` logs in as this user.
start_sshd() {
  local dir=$1 port
  rm -rf "$dir" && mkdir -p "$dir" && chmod 700 "$dir"
  mkdir -p /run/sshd && chmod 755 /run/sshd  # sshd's privilege separation folder
  ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
  cp "$dir/client_key.pub" "$dir/authorized_keys"
  port=$(free_port)
  cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PermitUserEnvironment no
EOF
  cat >"$dir/ssh_config" <<EOF
Host kforge-test
  HostName 127.0.0.1
  Port $port
  User $(id -un)
  IdentityFile $dir/client_key
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  StrictHostKeyChecking accept-new
  LogLevel ERROR
EOF
  "$(command -v sshd)" -f "$dir/sshd_config" -E "$dir/sshd.log"
  service_pids+=("$(pid_of "$dir/sshd.pid")")
  for _ in $(seq 50); do
    ssh -F "$dir/ssh_config" -o BatchMode=yes kforge-test true 2>/dev/null && return 0
    sleep 0.2
  done
  echo "cannot log in through the test's sshd:"; tail -5 "$dir/sshd.log"
  return 1
}
