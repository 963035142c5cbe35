"""The contracts (the bottom layer): canonical events, service agreements, calendars, Kafka
topics, the warehouse's DDL, errors."""
