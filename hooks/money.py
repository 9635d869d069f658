"""Platform money (decimal strings in a currency) to Patron's integer minor units, exactly."""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow

from loyalty.earning import minor_digits
from loyalty.errors import InvalidInput

MAX_AMOUNT = 10**13
"""The canonical events' ceiling for an amount in minor units."""

# Any rounding, overflow or underflow raises instead of quietly changing the amount.
_EXACT = Context(prec=40, traps=[InvalidOperation, Overflow, Inexact])


def to_minor(value: Decimal | str, currency: str, *, field: str, rounding: str | None = None) -> int:
    """`value` major units of `currency` as minor units: "19.99" EUR is 1999, "1500" JPY is 1500.

    No rounding unless asked for: an amount with more decimals than the currency has (non-zero
    ones) is refused rather than silently changed, and so are negative, infinite and absurdly
    large amounts. `rounding` (a `decimal` mode) is for platforms whose shops may be set to
    more price decimals than the currency has.
    """
    try:
        amount = value if isinstance(value, Decimal) else Decimal(value)
        scaled = amount.scaleb(minor_digits(currency), context=_EXACT)
        if rounding is not None:
            scaled = scaled.to_integral_value(rounding=rounding)
        exact = amount.is_finite() and scaled == scaled.to_integral_value()
    except ArithmeticError:
        exact = False
    if not exact:
        raise InvalidInput(f"{value!s} is not an amount of {currency}", field=field)
    # Compared as a Decimal first: int() of "1e999999999" would build a gigantic integer.
    if not 0 <= scaled <= MAX_AMOUNT:
        raise InvalidInput(f"{value!s} {currency} is out of range", field=field)
    return int(scaled)
