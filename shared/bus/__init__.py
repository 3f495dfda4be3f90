"""The message bus: one interface, an in-process implementation, and (later) RabbitMQ."""
