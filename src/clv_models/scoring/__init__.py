"""Scoring: the batch jobs that turn orders at a cutoff into the scores table with a registered
scorer (DESIGN.md §4): embedded (DuckDB, :mod:`clv_models.scoring.job`) and Spark
(:mod:`clv_models.scoring.spark_job`), which share everything after the features
(:mod:`clv_models.scoring.batch`)."""
