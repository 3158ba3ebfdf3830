#!/usr/bin/env bash
# Mosquitto as the benchmark scripts' reference broker (sourced, not run):
#   stratus_mosquitto_require        installs Debian's mosquitto when /usr/sbin/mosquitto is missing
#   stratus_mosquitto_conf PORT FILE writes a configuration listening on 127.0.0.1:PORT with
#                                    Stratus's default windows (1024 in flight, 10000 queued)
#                                    instead of Mosquitto's 20 and 1000, no persistence, no limit
#                                    on connections, TCP_NODELAY, errors and warnings on stderr

stratus_mosquitto_require() {
    [ -x /usr/sbin/mosquitto ] && return 0
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mosquitto
}

stratus_mosquitto_conf() {
    cat >"$2" <<CONF
listener $1 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1024
max_queued_messages 10000
max_connections -1
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
CONF
}
