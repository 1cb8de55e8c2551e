"""Looking at a running mesh, whichever target serves it: one echo request, the load
generator, the Zipkin API client, trace lookup, and the terminal views of traces."""
