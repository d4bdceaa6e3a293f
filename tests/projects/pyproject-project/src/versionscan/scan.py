from more_itertools import bucket
from packaging.version import Version


def newest_per_series(tags):
    versions = [Version(t.lstrip("v")) for t in tags]
    stable = [v for v in versions if not v.is_prerelease]
    buckets = bucket(stable, key=lambda v: f"{v.major}.{v.minor}")
    return {series: str(max(buckets[series])) for series in sorted(set(buckets))}
