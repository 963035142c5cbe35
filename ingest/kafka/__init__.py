"""Kafka for the producers: publishers, topic administration, the partitioner's rule."""
