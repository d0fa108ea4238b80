"""The store's daily partitions (re-exported: the code lives in suishen.sync.partitions, since
ingest in sync creates the days a batch needs, and sync must not import central)."""

from suishen.sync.partitions import (
    PARTITIONED_TABLES,
    PartitionPolicy,
    day_of,
    drop_expired_partitions,
    ensure_partitions,
    ensure_partitions_for,
    list_partitions,
    maintain,
    partition_name,
    prune_kept_records,
)

__all__ = [
    "PARTITIONED_TABLES",
    "PartitionPolicy",
    "day_of",
    "drop_expired_partitions",
    "ensure_partitions",
    "ensure_partitions_for",
    "list_partitions",
    "maintain",
    "partition_name",
    "prune_kept_records",
]
