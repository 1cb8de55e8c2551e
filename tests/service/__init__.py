"""The Flask service that runs as service1 and service2."""
