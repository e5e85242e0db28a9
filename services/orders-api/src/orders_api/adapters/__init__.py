"""The doors to Redis, users-data (HTTP) and RabbitMQ; each translates its client's failures into
the exceptions of service_layer.ports."""
