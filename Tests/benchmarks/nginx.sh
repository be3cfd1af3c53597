# Sourced by the benchmarks that start nginx (needs WORK).
# The main context of a one-worker nginx in the foreground, its pid and error log in WORK (an http block follows).
nginx_preamble() {
  cat <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 4096; }
CONF
}
