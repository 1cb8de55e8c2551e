"""`python -m trace_proxy` and the `trace-proxy` console script."""
from trace_proxy.cli import main

if __name__ == "__main__":
    main()
