# Sourced by the instruction-count benchmarks after common.sh: the proxy under valgrind's callgrind, counting only
# between callgrind_on and callgrind_total, and the table they print.
#   callgrind_start INDEX BINARY [VAR=value...] -- [ARGS...]  starts the binary (env -i, the variables given) with
#       ARGS, under callgrind with counting off (CALLGRIND_OPTIONS: more of valgrind's options, later ones win);
#       sets CALLGRIND_PID; waits until it logs "listening" (--log-level info in ARGS).
#   callgrind_on / callgrind_total INDEX: counting on; then dump, stop the proxy and print the instructions counted.
#   instruction_rows UNIT COUNT BINARY... -- TOTAL...: one row per binary (TOTAL / COUNT per UNIT), and the ratio of
#       the second to the first when there are two.
callgrind_start() {
  local index=$1 binary=$2
  shift 2
  local variables=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do variables+=("$1"); shift; done
  shift
  # Valgrind 3.19 cannot read the DWARF 5 debug info of these builds: a copy without it (the symbols stay).
  strip --strip-debug -o "$WORK/proxy-$index" "$binary"
  env -i PATH="$PATH" "${variables[@]}" valgrind --tool=callgrind --instr-atstart=no ${CALLGRIND_OPTIONS:-} --callgrind-out-file="$WORK/callgrind-$index.out" \
    "$WORK/proxy-$index" "$@" > "$WORK/proxy-$index.log" 2>&1 & CALLGRIND_PID=$!
  PIDS+=($CALLGRIND_PID)
  for _ in $(seq 600); do grep -qs "\] listening" "$WORK/proxy-$index.log" && return 0; sleep 0.2; done
  echo "the proxy under callgrind did not start; see $WORK/proxy-$index.log" >&2
  return 1
}

callgrind_on() { callgrind_control -i on "$CALLGRIND_PID" >/dev/null; }

callgrind_total() {
  callgrind_control -d "$CALLGRIND_PID" >/dev/null
  callgrind_control -i off "$CALLGRIND_PID" >/dev/null
  kill -TERM "$CALLGRIND_PID"; wait "$CALLGRIND_PID" 2>/dev/null || true
  awk '/^(summary|totals):/ {print $2; exit}' "$WORK"/callgrind-$1.out.*
}

instruction_rows() {
  local unit=$1 count=$2
  shift 2
  local binaries=()
  while [ "$1" != "--" ]; do binaries+=("$1"); shift; done
  shift
  local totals=("$@") index
  for index in "${!binaries[@]}"; do
    echo "| ${binaries[$index]} | $((totals[index] / count)) instructions per $unit ($count ${unit}s) |"
  done
  if [ ${#totals[@]} -eq 2 ]; then
    python3 -c "import sys; print(f'| second / first | {int(sys.argv[2]) / int(sys.argv[1]):.3f} |')" "${totals[0]}" "${totals[1]}"
  fi
}
