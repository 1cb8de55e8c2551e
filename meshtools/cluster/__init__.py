"""The cluster target: kind (or a shared cluster), kubectl, the service image, the Honeycomb
Secret and port-forwards.

stack.py holds the steps of `inv up` in order (cluster, image, secret, manifests, forwards);
target.py decides which cluster they act on (the context guard) and remote.py what differs on
a shared one; the other modules each wrap one tool or one piece of remembered state (state.py)."""
