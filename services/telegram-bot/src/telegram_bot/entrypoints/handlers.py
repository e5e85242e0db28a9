"""What the bot says: /start, the /order conversation (item -> quantity -> confirm), /status, /cancel.

The conversation's state lives in the FSM storage (Redis, under the service's key prefix), so any
replica and any restart carries it on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, CommandObject, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import KeyboardButton, Message, ReplyKeyboardMarkup, ReplyKeyboardRemove, Update

from telegram_bot.domain.orders import (
    Draft,
    InvalidInput,
    idempotency_key,
    parse_confirmation,
    parse_item,
    parse_quantity,
)
from telegram_bot.observability import ORDERS_PLACED
from telegram_bot.service_layer.ordering import Ordering, OrderRejected, OrdersUnavailable

log = logging.getLogger(__name__)

GREETING = (
    "Hello! I take orders.\n"
    "/order - place an order\n"
    "/status <id> - see where an order is\n"
    "/cancel - stop what we are doing"
)
CONFIRM_KEYBOARD = ReplyKeyboardMarkup(
    keyboard=[[KeyboardButton(text="yes"), KeyboardButton(text="no")]], resize_keyboard=True, one_time_keyboard=True
)
NO_KEYBOARD = ReplyKeyboardRemove()


class OrderForm(StatesGroup):
    item = State()
    quantity = State()
    confirm = State()


async def start(message: Message, state: FSMContext) -> None:
    await state.clear()
    await message.answer(GREETING, reply_markup=NO_KEYBOARD)


async def cancel(message: Message, state: FSMContext) -> None:
    had_order = await state.get_state() is not None
    await state.clear()
    await message.answer("Order cancelled." if had_order else "Nothing to cancel.", reply_markup=NO_KEYBOARD)


async def order(message: Message, state: FSMContext) -> None:
    await state.clear()
    await state.set_state(OrderForm.item)
    await message.answer("What would you like to order?", reply_markup=NO_KEYBOARD)


async def status(message: Message, command: CommandObject, ordering: Ordering) -> None:
    order_id = (command.args or "").strip()
    if not order_id:
        await message.answer("Usage: /status <order id>")
        return
    try:
        found = await ordering.find(order_id)
    except OrdersUnavailable as exc:
        log.warning("order lookup failed: %s", exc)
        await message.answer("I cannot reach the order service right now; please try again in a minute.")
        return
    except OrderRejected as exc:
        log.warning("order lookup refused: %s", exc)
        await message.answer(f"The order service refused to look that up: {exc.detail}")
        return
    if found is None:
        await message.answer(f"Order {order_id} not found.")
        return
    state_text = f", {found.status}" if found.status else ""
    await message.answer(f"Order {found.id}: {found.quantity} x {found.item}{state_text}.")


def form_step(
    field: str,
    parse: Callable[[str | None], object],
    then: State,
    question: Callable[[dict[str, Any]], str],
    reply_markup: ReplyKeyboardMarkup | None = None,
) -> Callable[[Message, FSMContext], Awaitable[None]]:
    """The handler of one step of the order form: the answer, parsed, kept as `field` of the
    conversation, then on to the state `then` with its `question` (about what the conversation
    holds now); an answer that does not parse gets the reason, and the step stays."""

    async def step(message: Message, state: FSMContext) -> None:
        try:
            value = parse(message.text)
        except InvalidInput as exc:
            await message.answer(str(exc))
            return
        data = await state.update_data({field: value})
        await state.set_state(then)
        await message.answer(question(data), reply_markup=reply_markup)

    return step


got_item = form_step("item", parse_item, OrderForm.quantity, lambda data: f"How many {data['item']}?")
got_quantity = form_step(
    "quantity",
    parse_quantity,
    OrderForm.confirm,
    lambda data: f"Order {data['quantity']} x {data['item']}? Answer yes or no.",
    CONFIRM_KEYBOARD,
)


async def got_confirmation(
    message: Message, state: FSMContext, ordering: Ordering, bot: Bot, event_update: Update
) -> None:
    try:
        confirmed = parse_confirmation(message.text)
    except InvalidInput as exc:
        await message.answer(str(exc), reply_markup=CONFIRM_KEYBOARD)
        return
    if not confirmed:
        await state.clear()
        await message.answer("Order cancelled.", reply_markup=NO_KEYBOARD)
        return

    data = await state.get_data()
    draft = Draft(item=data["item"], quantity=data["quantity"])
    # The first confirming update names the order; kept in the conversation before orders-api is
    # asked, so that a "yes" sent again after a failure (a new update) reuses it too.
    key = data.get("idempotency_key") or idempotency_key(bot.id, event_update.update_id)
    await state.update_data(idempotency_key=key)
    sender = message.from_user
    telegram_id = sender.id if sender else message.chat.id
    name = (sender.full_name if sender else message.chat.full_name).strip() or f"Telegram user {telegram_id}"
    try:
        placed = await ordering.place(telegram_id, name, draft, key)
    except OrdersUnavailable as exc:
        log.warning("order not placed, kept for a retry: %s", exc)
        await message.answer(
            "I could not reach the order service. Answer yes to try again, or no to cancel.",
            reply_markup=CONFIRM_KEYBOARD,
        )
        return
    except OrderRejected as exc:
        log.warning("order refused: %s", exc)
        await state.clear()
        await message.answer(f"The order service refused this order: {exc.detail}", reply_markup=NO_KEYBOARD)
        return
    await state.clear()
    ORDERS_PLACED.inc()
    log.info("order %s placed", placed.id)
    await message.answer(f"Order {placed.id} placed: {placed.quantity} x {placed.item}.", reply_markup=NO_KEYBOARD)


async def not_text(message: Message) -> None:
    await message.answer("Please answer with text, or /cancel.")


async def anything_else(message: Message) -> None:
    await message.answer("I did not understand that.\n\n" + GREETING)


def build_router() -> Router:
    """The handlers, first match wins: commands work in any state (/start, /order and /cancel end a
    conversation in progress, /status leaves it be)."""
    router = Router(name="orders")
    router.message.register(start, CommandStart())
    router.message.register(cancel, Command("cancel"))
    router.message.register(order, Command("order"))
    router.message.register(status, Command("status"))
    router.message.register(got_item, OrderForm.item, F.text)
    router.message.register(got_quantity, OrderForm.quantity, F.text)
    router.message.register(got_confirmation, OrderForm.confirm, F.text)
    router.message.register(not_text, StateFilter(OrderForm))
    router.message.register(anything_else)
    return router
