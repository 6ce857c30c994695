#!/usr/bin/env bash
# Installs the Debian packages Stasis needs, only those that are missing. Idempotent: a
# second run changes nothing. Needs root (apt-get). Never installs Debian's cargo: the Rust
# toolchain comes from rustup.
set -euo pipefail

# command-or-file -> package
declare -A need=(
  [ip]=iproute2
  [iptables]=iptables
  [faketime]=faketime
  [/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1]=libfaketime
  [etcd]=etcd-server
  [etcdctl]=etcd-client
  # ZooKeeper 3.8 (--sut zookeeper): the server jar, and Java to run it.
  [/usr/share/java/zookeeper.jar]=zookeeper
  [java]=default-jre-headless
  [redis-cli]=redis-tools
  [redis-benchmark]=redis-tools
  # Redis with Sentinel (the built-in `redis` system, harness/tests/redis.rs).
  [redis-server]=redis-server
  [redis-sentinel]=redis-sentinel
  [setpriv]=util-linux
  [pgrep]=procps
  [python3]=python3
  # The real-browser test of `stasis serve` (harness/tests/serve_browser.rs).
  [chromium]=chromium
  # The remote-hosts test (harness/tests/remote.rs): one sshd per test namespace.
  [/usr/sbin/sshd]=openssh-server
  [ssh]=openssh-client
  # Its hosts reached as a user with passwordless sudo (`sudo = true` in a hosts file).
  [/usr/bin/sudo]=sudo
  # Build-time: the etcd gRPC client (etcd-client) compiles etcd's .proto files, which it
  # ships, with protoc; they import protobuf's well-known types (libprotobuf-dev).
  [protoc]=protobuf-compiler
  [/usr/include/google/protobuf/descriptor.proto]=libprotobuf-dev
)

missing=()
for what in "${!need[@]}"; do
  if [[ $what == /* ]]; then
    [[ -e $what ]] && continue
    # A library: also accept it under the other multiarch directories.
    compgen -G "/usr/lib/*/faketime/$(basename "$what")" >/dev/null && continue
  else
    command -v "$what" >/dev/null 2>&1 && continue
  fi
  missing+=("${need[$what]}")
done

if ((${#missing[@]})); then
  pkgs=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: missing packages: $pkgs-- run this script as root (sudo scripts/setup.sh)" >&2
    exit 1
  fi
  echo "setup.sh: installing $pkgs"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
else
  echo "setup.sh: all Debian packages present"
fi

# The disk nemesis mounts a FUSE filesystem (as root with mount(2) directly: no fusermount3
# or libfuse needed), which needs the fuse kernel module's /dev/fuse.
if [[ ! -e /dev/fuse ]]; then
  modprobe fuse 2>/dev/null || echo "setup.sh: no /dev/fuse (modprobe fuse failed): the disk nemesis will not run" >&2
fi

source "$(dirname "$0")/env.sh"
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup.sh: no Rust toolchain: install it with rustup (https://rustup.rs), not Debian's cargo" >&2
  exit 1
fi
echo "setup.sh: $(cargo --version)"
