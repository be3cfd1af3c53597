"""Paced load from independent clients: RATE calls per second for SECONDS, each call started on its own schedule
(call k at k / RATE seconds, with a random offset of up to one interval so that calls do not line up on a clock
tick), spread over CONNECTIONS keep-alive connections (a call waits for its connection only if the previous call on
it has not been answered). The calls are what a 3.17 client sends per trace, as ingest.lua sends them: the span
upload (/v1/traces, protobuf, 5 spans) and then the StartTraceV3 of the same fresh trace id.

Why not wrk: wrk's pacing (a delay after each answer) fires on millisecond ticks of the wall clock, so its
connections fall into step and arrive in bursts (measured: 80 % of calls within 0.5 ms of the one before, even with
ten wrk processes started apart); this measures calls that arrive as independent clients send them.

Latency is from the moment a call is written to the moment its whole answer is read (so a call that waits for its
connection does not count the wait). Prints one RESULT line like ingest.lua's, and fails on any answer but 200.
Usage: paced_clients.py PAYLOAD PORT RATE SECONDS [CONNECTIONS]"""

import asyncio
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trace_payload import TracePayload  # noqa: E402

payload, port, rate, seconds = TracePayload(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
connections = int(sys.argv[5]) if len(sys.argv) > 5 else 10


def calls():
    """The requests, in order, as HTTP/1.1 bytes: a span upload, then the StartTraceV3 of its trace, for a new trace each time."""
    while True:
        for path, body, headers in payload.trace():
            head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            yield f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


async def answer(reader):
    """Reads one answer; returns its status and whether the server closes the connection after it (nginx does
    after 1,000 calls on one connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, closes = 0, False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection":
            closes = value.strip().lower() == b"close"
        elif name == b"transfer-encoding":
            sys.exit("a chunked answer: this client reads answers by Content-Length only")
    if length:
        await reader.readexactly(length)
    return status, closes


async def main():
    streams = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    locks = [asyncio.Lock() for _ in range(connections)]
    latencies, failures = [], []
    requests = calls()
    loop = asyncio.get_running_loop()

    async def call(index, request):
        reader, writer = streams[index]
        async with locks[index]:
            started = time.perf_counter()
            writer.write(request)
            status, closes = await answer(reader)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                failures.append(status)
            if closes:  # a new connection, outside the measured time
                writer.close()
                streams[index] = await asyncio.open_connection("127.0.0.1", port)

    interval = 1 / rate
    total = int(rate * seconds)
    begin = loop.time() + 0.05
    tasks = []
    for k in range(total):
        due = begin + k * interval + random.uniform(0, interval)
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(call(k % connections, next(requests))))
    await asyncio.gather(*tasks)
    elapsed = loop.time() - begin
    for _, writer in streams:
        writer.close()
    if failures:
        sys.exit(f"{len(failures)} calls failed, first with HTTP {failures[0]}")
    latencies.sort()

    def percentile(p):
        return int(latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1e6)

    print(f"RESULT requests={len(latencies)} duration_us={int(elapsed * 1e6)} errors_status=0 errors_connect=0 "
          f"errors_timeout=0 p50_us={percentile(50)} p90_us={percentile(90)} p99_us={percentile(99)} "
          f"max_us={int(latencies[-1] * 1e6)}")


asyncio.run(main())
