"""The gateway benchmark: a fake upstream (nginx), the real gateway, load from wrk, one table.

    wrk (core 1) --> nginx (core 1)                       "direct": what the machine can do
    wrk (core 1) --> llm-wrapper serve (core 0) --> nginx  "gateway": what the gateway adds

For JSON and for a 20-chunk SSE stream, at 1 and at 32 connections, it prints
requests/s, p50/p90/p99 latency, non-2xx responses and socket errors, and the
CPU time the gateway (and nginx) spent per request, read from /proc/PID/stat
before and after each run. Then a memory soak (>= 100,000 requests, JSON and
streams alternating) compares the worker's RSS after a warm-up and after the
soak. The results go to docs/benchmarks.md, between its `bench:begin` and
`bench:end` markers (the rest of that file is left as it is).

    upstream.py   the fake upstream's answers and nginx configuration
    processes.py  starting and stopping processes; CPU time and RSS from /proc
    load.py       wrk: its Lua scripts and one run's figures (`Run`)
    harness.py    `Bench`: everything started, each measurement, the soak, the profile
    pyspy.py      py-spy's stacks summarised
    report.py     targets, verdicts and the markdown report
    main.py       options and the order of the runs (`python -m bench`)

Run it through `bench/run`, which installs what it needs. All traffic goes to
127.0.0.1, every run is bounded in time, and every process started here is
stopped on exit, on Ctrl-C and on errors.
"""
