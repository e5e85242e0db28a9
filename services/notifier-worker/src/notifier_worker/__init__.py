"""notifier-worker: consumes OrderCreated events and sends one notification per order.

Layout (ports and adapters, after cosmicpython's `src/allocation/`):
  domain/         the event and the notification it leads to (pure)
  service_layer/  "notify once": the use case, written against the ports it needs
  adapters/       Redis (notifications, processed markers) and RabbitMQ (consume, retry path)
  entrypoints/    the AMQP message handler and the probe/metrics HTTP server
  bootstrap.py    wires them into a Worker with run()/stop()
"""
