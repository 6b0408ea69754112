#!/usr/bin/env bash
# A private rsyslogd for the relay's syslog tests: its own configuration, pid file and work
# directory, a TCP input (imtcp, RFC 6587 octet counting and LF framing) on 127.0.0.1:PORT, and
# every message it receives written as received (the raw template, one a line) to
# DIR/received.log. It never touches the machine's own syslog.
#
#   scripts/rsyslog.sh start PORT [DIR] [tls]   # idempotent; DIR defaults to
#                                               # /tmp/evo-siem-rsyslog-PORT
#   scripts/rsyslog.sh stop PORT [DIR]          # idempotent; lets rsyslogd write out its queue
#
# With `tls`, the input speaks syslog over TLS (RFC 5425, rsyslog's gtls driver, anonymous
# client authentication) with the certificate DIR/tls/cert.pem, its key DIR/tls/key.pem and
# the CA DIR/tls/ca.pem, which the caller writes first.
#
# rsyslog (and rsyslog-gnutls for tls) is installed from Debian's packages when missing (root
# and apt-get needed). Exit codes: 0 done; 3 rsyslog is missing and cannot be installed here
# (callers skip their tests); anything else is a failure.
set -euo pipefail

action="${1:-}"
port="${2:-}"
if [[ ! "$action" =~ ^(start|stop)$ || ! "$port" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 start|stop PORT [DIR]" >&2
  exit 2
fi
dir="${3:-/tmp/evo-siem-rsyslog-$port}"
tls="${4:-}"
if [[ -n "$tls" && "$tls" != tls ]]; then
  echo "usage: $0 start|stop PORT [DIR] [tls]" >&2
  exit 2
fi
conf="$dir/rsyslog.conf"
pidfile="$dir/rsyslogd.pid"

up() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }
running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

if [ "$action" = stop ]; then
  if running; then
    pid="$(cat "$pidfile")"
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "rsyslog.sh: rsyslogd $pid did not stop in 10 s" >&2
      exit 1
    fi
  fi
  rm -f "$pidfile"
  echo "rsyslog.sh: stopped (port $port, $dir)"
  exit 0
fi

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }
candidate() { [[ "$(apt-cache policy "$1" 2>/dev/null)" == *"Candidate: "[0-9]* ]]; }
# Installs Debian's package $1, running `apt-get update` once if apt does not know it yet.
install_package() {
  if ! can_install; then
    echo "rsyslog.sh: $1 is not installed, and installing it needs root and apt-get" >&2
    exit 3
  fi
  candidate "$1" || apt-get update -q >/dev/null || true
  if ! candidate "$1"; then
    echo "rsyslog.sh: Debian's $1 package cannot be found here" >&2
    exit 3
  fi
  # No service is started by the package in a container without systemd; this script starts
  # its own instance anyway.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null
}

rsyslogd_bin="$(command -v rsyslogd || true)"
[ -z "$rsyslogd_bin" ] && [ -x /usr/sbin/rsyslogd ] && rsyslogd_bin=/usr/sbin/rsyslogd
if [ -z "$rsyslogd_bin" ]; then
  install_package rsyslog
  rsyslogd_bin=/usr/sbin/rsyslogd
fi
if [ -n "$tls" ] && ! ls /usr/lib/*/rsyslog/lmnsd_gtls.so /usr/lib/rsyslog/lmnsd_gtls.so >/dev/null 2>&1; then
  install_package rsyslog-gnutls
fi

mkdir -p "$dir/work"
if running && up; then
  echo "rsyslog.sh: already running (pid $(cat "$pidfile"), 127.0.0.1:$port, $dir/received.log)"
  exit 0
fi
if up; then
  echo "rsyslog.sh: 127.0.0.1:$port is taken by another process" >&2
  exit 1
fi

if [ -n "$tls" ]; then
  for file in ca.pem cert.pem key.pem; do
    if [ ! -s "$dir/tls/$file" ]; then
      echo "rsyslog.sh: tls needs $dir/tls/$file" >&2
      exit 2
    fi
  done
  global_tls="DefaultNetstreamDriver=\"gtls\"
       DefaultNetstreamDriverCAFile=\"$dir/tls/ca.pem\"
       DefaultNetstreamDriverCertFile=\"$dir/tls/cert.pem\"
       DefaultNetstreamDriverKeyFile=\"$dir/tls/key.pem\""
  imtcp='module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")'
else
  global_tls=""
  imtcp='module(load="imtcp")'
fi

cat >"$conf" <<CONF
# Written by scripts/rsyslog.sh: a private instance for tests, nothing else.
global(workDirectory="$dir/work" maxMessageSize="256k"
       $global_tls)
$imtcp
template(name="evo_raw" type="string" string="%rawmsg%\n")
ruleset(name="evo") {
  action(type="omfile" file="$dir/received.log" template="evo_raw"
         flushOnTXEnd="on" asyncWriting="off")
}
input(type="imtcp" address="127.0.0.1" port="$port" ruleset="evo")
CONF

"$rsyslogd_bin" -N1 -f "$conf" >"$dir/check.log" 2>&1 || {
  echo "rsyslog.sh: rsyslogd refuses $conf:" >&2
  cat "$dir/check.log" >&2
  exit 1
}
"$rsyslogd_bin" -f "$conf" -i "$pidfile"
for _ in $(seq 1 100); do up && break; sleep 0.1; done
if ! up; then
  echo "rsyslog.sh: rsyslogd does not listen on 127.0.0.1:$port" >&2
  exit 1
fi
echo "rsyslog.sh: started (pid $(cat "$pidfile"), 127.0.0.1:$port, $dir/received.log)"
