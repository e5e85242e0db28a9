"""What an order is, independent of HTTP, Redis and RabbitMQ (imports none of them)."""
