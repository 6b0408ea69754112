#!/usr/bin/env bash
# Makes sure the servers the tests use are running: PostgreSQL on 127.0.0.1:5432 (trust
# authentication, user postgres) and Redis on 127.0.0.1:6379. Starts whichever is down with the
# machine's own commands, installing it from Debian's packages first when it is missing and we
# are root. Idempotent. The tests that need a server run it when it is down
# (crates/test-services), so `cargo test --workspace` needs nothing before it.
set -euo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_up() {
  for _ in $(seq 1 100); do up "$1" && return 0; sleep 0.1; done
  echo "services.sh: nothing listens on 127.0.0.1:$1 after starting $2" >&2
  return 1
}
install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
  else
    echo "services.sh: install $* (Debian packages), then run me again" >&2
    exit 1
  fi
}

if ! up 6379; then
  command -v redis-server >/dev/null || install redis-server
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_up 6379 redis-server
fi

if ! up 5432; then
  command -v pg_ctlcluster >/dev/null || install postgresql
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  wait_up 5432 PostgreSQL
fi

echo "services.sh: PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 are up"
