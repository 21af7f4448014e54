from dagster import DynamicPartitionsDefinition

# Snapshots arrive irregularly, so each one becomes a partition when it is discovered.
snapshot_partitions = DynamicPartitionsDefinition(name="snapshot_dt")
