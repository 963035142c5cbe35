"""The stream worker: Kafka batches -> the sink -> the Deriver, offsets committed after the store acknowledged."""
