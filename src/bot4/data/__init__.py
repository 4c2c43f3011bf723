"""Market data: loading bars (feather, parquet, csv), synthetic series, replay feeds."""
