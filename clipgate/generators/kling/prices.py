"""What a Kling clip costs, per model, mode and duration."""

from __future__ import annotations


def price_key(model: str, mode: str, duration: str) -> str:
    """The key of one (model, mode, duration) row in a price table."""
    return f"{model}/{mode}/{duration}s"


# USD per generated clip: estimates. Kling bills API use in units of prepaid resource
# packs and publishes no per-clip dollar list; these are the only per-clip list prices
# found (eachlabs.ai's Kling model pages, 2026-05: v2.1 standard $0.28 for 5 s plus
# $0.056 a second, i.e. $0.56 for 10 s). Put the account's own rate card in
# CLIPGATE_KLING__PRICES_USD to make `clipgate costs` exact.
DEFAULT_PRICES_USD: dict[str, float] = {
    price_key("kling-v2-1", "std", "5"): 0.28,
    price_key("kling-v2-1", "std", "10"): 0.56,
    price_key("kling-v2-1", "pro", "5"): 0.49,
    price_key("kling-v2-1", "pro", "10"): 0.98,
    price_key("kling-v2-1-master", "pro", "5"): 1.40,
    price_key("kling-v2-1-master", "pro", "10"): 2.80,
    price_key("kling-v2-5-turbo", "std", "5"): 0.21,
    price_key("kling-v2-5-turbo", "std", "10"): 0.42,
    price_key("kling-v2-5-turbo", "pro", "5"): 0.35,
    price_key("kling-v2-5-turbo", "pro", "10"): 0.70,
}
