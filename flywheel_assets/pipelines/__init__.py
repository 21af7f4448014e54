"""Assets grouped by pipeline, as in the run book: ``bucketed`` (pipeline 1), ``partitioned`` (2)."""
