"""The lake core: shared by the Spark job scripts (shipped to Glue/EMR) and the Dagster side.

Storage, snapshots, table folders and publishing, mapping files, name rules, errors, and the job
table. No Dagster and no Spark imports here.
"""
