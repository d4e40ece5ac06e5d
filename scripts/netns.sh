#!/usr/bin/env bash
# Run a command with loopback-only networking when the OS allows it, plainly otherwise.
#
#   bash scripts/netns.sh COMMAND [ARGS...]
#
# With `unshare --net` (root, or unprivileged user namespaces) the command runs in a new network
# namespace whose only interface is `lo`: nothing it starts - Python, ctypes, curl, bash's /dev/tcp -
# can reach another host ("Network is unreachable"), while 127.0.0.1 works. `make notebooks` uses it.
# One line on stderr says which way the command runs. LLMKIT_NETNS=off forces the plain way.
set -euo pipefail

if [ $# -eq 0 ]; then
  echo "usage: bash scripts/netns.sh COMMAND [ARGS...]" >&2
  exit 2
fi

if [ "${LLMKIT_NETNS:-auto}" != "off" ] && command -v unshare >/dev/null && command -v ip >/dev/null; then
  for flags in -n -rn; do  # -n as root; -rn maps the user to root in a new user namespace
    if unshare "$flags" sh -c 'ip link set lo up' 2>/dev/null; then
      echo "netns.sh: network namespace with loopback only (unshare $flags): other hosts are unreachable" >&2
      exec unshare "$flags" -- sh -c 'ip link set lo up && exec "$@"' netns.sh "$@"
    fi
  done
fi
echo "netns.sh: no network namespace available here: running with the normal network" >&2
exec "$@"
