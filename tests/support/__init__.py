"""What the tests share: real processes on free ports (trace proxy, Honeycomb stand-in),
`inv` as a user runs it, the fake docker/kind/kubectl (fakes/), trace assertions and waits."""
