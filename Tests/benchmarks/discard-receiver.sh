# Sourced by the benchmarks: start_discard_receiver starts the receiver that discards, an nginx worker answering
# 200 to every export, on a free 127.0.0.1 port (NGINX_PORT); its pid joins PIDS. Needs WORK and port().
source "$(dirname "${BASH_SOURCE[0]}")/nginx.sh"
start_discard_receiver() {
  NGINX_PORT=$(port)
  {
    nginx_preamble
    cat <<CONF
http {
  access_log off;
  client_body_temp_path $WORK;
  server { listen 127.0.0.1:$NGINX_PORT; client_max_body_size 0; location / { return 200; } }
}
CONF
  } > "$WORK/nginx.conf"
  nginx -c "$WORK/nginx.conf" & PIDS+=($!)
}
