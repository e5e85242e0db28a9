"""A Telegram bot (PlatformService type `bot`): takes orders in a conversation and asks orders-api.

It runs alone in its process (aiogram owns the event loop; never beside FastAPI), in polling or
webhook mode as the operator says (BOT_MODE), with /health, /ready and /metrics on port 8000.
"""
