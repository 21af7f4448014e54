"""Run book: etl-omc-flywheel-prod-infobase-split-and-part. Same script on Glue, EMR and local Spark."""

from flywheel_assets.spark_jobs.entry import main

if __name__ == "__main__":
    main("infobase_split_and_part")
