"""Which τ-bench the tools reproduce: `Rules(parity, seats)` and τ-bench's error strings.

parity "tau2" (the default) follows τ²-bench's airline tools (src/tau2/domains/airline/tools.py, data_model.py,
outputs serialized by tau2/environment/environment.py `to_json_str`: json.dumps of pydantic model_dump);
"tau_bench_v1" follows τ-bench's (tau_bench/envs/airline/tools/*.py: json.dumps of the raw JSON records).
The behaviours that differ between the two (README's FlightBooking table):

  * output format: field order and fields (τ² writes "status": null on active reservations, "date": null on
    direct search results, "user_id" in a user, "state" in an address, gift-card and certificate amounts
    as floats; v1 writes records as its JSON files hold them, "province", and tool-written flight entries
    in the order its tools build them);
  * seats (`seats` below): v1 never writes flight availability; τ² takes seats on booking and gives none
    back; "full" (this env's own accounting) also gives them back on cancel and moves them on a change;
  * update_reservation_flights' cabin: τ² writes the new cabin into the reservation, v1 does not (τ² calls
    v1's omission a bug; keep "tau2" unless you reproduce v1 runs);
  * search_onestop_flight's second leg: τ² shows its seats and prices on the second leg's date, v1 shows
    those of the first leg's date (while labelling the leg with the second date);
  * error strings: τ² capitalizes them and names the id ("Reservation ABC123 not found"), v1 does not (and its
    get_reservation_details says "user not found" for an unknown reservation);
  * get_flight_status (τ² only): the bare status word;
  * an unknown airport in a search: both answer [] (no flight matches).
`hints` (the env's own tasks: on) adds after the benchmark's text, in parentheses, what was wrong and what is
allowed, and turns the benchmarks' silent answers to malformed input (an unknown airport, a date not in
YYYY-MM-DD form) into errors that say so; off, every output is the benchmark's byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentrl.core.tools import ToolError

PARITIES = ("tau2", "tau_bench_v1")
SEAT_MODES = ("none", "book", "full")
DEFAULT_SEATS = {"tau_bench_v1": "none", "tau2": "book"}


@dataclass(frozen=True)
class Rules:
    """parity: "tau2" | "tau_bench_v1"; seats: None (the parity's: v1 "none", τ² "book"), "none", "book" or "full";
    hints: explanations after the benchmark's error strings (module docstring)."""

    parity: str = "tau2"
    seats: str | None = None
    hints: bool = True

    def __post_init__(self) -> None:
        if self.parity not in PARITIES:
            raise ValueError(f"parity must be one of {', '.join(map(repr, PARITIES))}, got {self.parity!r}")
        if self.seats is not None and self.seats not in SEAT_MODES:
            raise ValueError(
                f"seats must be None (the parity's default) or one of {', '.join(map(repr, SEAT_MODES))}, got {self.seats!r}"
            )

    @property
    def v1(self) -> bool:
        return self.parity == "tau_bench_v1"

    @property
    def seat_mode(self) -> str:
        return self.seats or DEFAULT_SEATS[self.parity]

    @property
    def writes_cabin(self) -> bool:
        return not self.v1


DEFAULT_RULES = Rules()


def rules_of(state: Any) -> Rules:
    """The rules a tool call runs under: `state.rules` (the env's), else τ²'s."""
    rules = getattr(state, "rules", None)
    return rules if isinstance(rules, Rules) else DEFAULT_RULES


# τ-bench's error strings: key -> (τ-bench v1, τ²). Fields in braces are filled from the call.
ERRORS: dict[str, tuple[str, str]] = {
    "user_not_found": ("user not found", "User {user_id} not found"),
    "reservation_not_found": ("reservation not found", "Reservation {reservation_id} not found"),
    "reservation_details_not_found": ("user not found", "Reservation {reservation_id} not found"),  # v1's get_reservation_details
    "flight_not_found": ("flight {flight_number} not found", "Flight {flight_number} not found"),
    "flight_not_on_date": ("flight {flight_number} not found on date {date}", "Flight {flight_number} not found on date {date}"),
    "flight_not_available": ("flight {flight_number} not available on date {date}", "Flight {flight_number} not available on date {date}"),
    "not_enough_seats": ("not enough seats on flight {flight_number}", "Not enough seats on flight {flight_number}"),
    "payment_not_found": ("payment method {payment_id} not found", "Payment method {payment_id} not found"),
    "not_enough_balance": ("not enough balance in payment method {payment_id}", "Not enough balance in payment method {payment_id}"),
    "payment_sum": ("payment amount does not add up, total price is {total}, but paid {paid}",
                    "Payment amount does not add up, total price is {total}, but paid {paid}"),
    "update_payment_not_found": ("payment method not found", "Payment method not found"),
    "certificate_for_update": ("certificate cannot be used to update reservation", "Certificate cannot be used to update reservation"),
    "gift_card_balance": ("gift card balance is not enough", "Gift card balance is not enough"),
    "passenger_count": ("number of passengers does not match", "Number of passengers does not match"),
    "invalid_characters": ("invalid characters in expression", "Invalid characters in expression"),
}  # fmt: skip


def num(x: float) -> int | float:
    """A number as τ-bench's JSON holds it: whole amounts as ints (620, not 620.0)."""
    x = float(x)
    return int(x) if x.is_integer() and abs(x) < 2**53 else x


def error(rules: Rules, key: str, hint: str = "", **fields: Any) -> ToolError:
    """τ-bench's error string for `key` under `rules`, then (in parentheses) what was wrong and what is allowed."""
    text = ERRORS[key][0 if rules.v1 else 1].format(
        **{k: num(v) if isinstance(v, float) else v for k, v in fields.items()}
    )
    return ToolError(f"{text} ({hint})" if hint and rules.hints else text)
