"""Vector stores: stores, their files and batches, ingestion (extract, chunk, embed) and search."""
