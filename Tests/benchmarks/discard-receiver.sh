# Sourced by the benchmarks: start_discard_receiver starts the receiver that discards, an nginx worker answering
# 200 to every export, on a free 127.0.0.1 port (NGINX_PORT); its pid joins PIDS. Needs WORK and port().
start_discard_receiver() {
  NGINX_PORT=$(port)
  cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK;
  server { listen 127.0.0.1:$NGINX_PORT; client_max_body_size 0; location / { return 200; } }
}
CONF
  nginx -c "$WORK/nginx.conf" & PIDS+=($!)
}
