"""The views: `inv echo`, `inv load` and `inv traces`."""
