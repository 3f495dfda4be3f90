"""The message bus: one interface (``abc``), an in-process implementation and RabbitMQ."""
