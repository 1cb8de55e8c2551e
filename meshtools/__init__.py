"""The tooling behind the invoke tasks: local processes, kind, kubectl, docker, load and trace views."""
