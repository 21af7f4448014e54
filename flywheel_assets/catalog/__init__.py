"""The catalog and SQL engine behind one interface: local Spark SQL + Hive metastore, or Glue + Athena."""
