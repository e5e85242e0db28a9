"""orders-api: a business API (PlatformService type `api`).

Takes orders over HTTP, checks the customer with users-data (the only holder of user data, reached
over HTTP), keeps the order in Redis under the service's key prefix and announces it as an
`order.created` event on RabbitMQ. POST /orders is idempotent through the `Idempotency-Key` header.
"""
