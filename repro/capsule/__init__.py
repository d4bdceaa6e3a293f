"""The capsule format: deterministic writer, safe streaming reader, BagIt and RO-Crate views."""
