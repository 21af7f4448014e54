"""The Spark job code: importable functions plus thin entrypoint scripts in ``scripts/``.

Nothing here imports Dagster: these modules run unchanged on AWS Glue, EMR and local Spark.
"""
