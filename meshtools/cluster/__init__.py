"""The cluster target: kind, kubectl, the service image, the Honeycomb Secret and port-forwards.

stack.py holds the steps of `inv up` in order (cluster, image, secret, manifests, forwards);
the other modules each wrap one tool or one piece of remembered state (state.py)."""
