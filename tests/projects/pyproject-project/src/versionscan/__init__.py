from .scan import newest_per_series

__all__ = ["newest_per_series"]
