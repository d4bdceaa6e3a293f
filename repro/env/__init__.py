"""Environment builders: virtual environments from a lock (container images in a later issue)."""
