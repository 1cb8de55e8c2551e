# The pod sandbox: one static binary, nothing else.
FROM scratch
COPY pause /pause
ENTRYPOINT ["/pause"]
