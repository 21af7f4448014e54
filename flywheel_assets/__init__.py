"""flywheel: the audience-data flywheel pipelines as Dagster assets.

Kept import-light on purpose: ``flywheel_assets.core`` and ``flywheel_assets.spark_jobs`` ship to
Glue/EMR, where only PySpark, boto3, pyarrow and dagster-pipes exist. The Dagster definitions live
in ``flywheel_assets.definitions``; what lives where: docs/architecture.md.
"""
