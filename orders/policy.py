"""What cancelling a reward may do, by its state and what became of its code: the one written policy.

A disclosed code is spent. Once a code has left the vault (an API or portal reveal, the claim page, an email
or SMS that carried it) the money paid for it is refunded only after the supplier confirms a void of that
code; a code nobody has seen is voided too before its money comes back, so the supplier never keeps a live
card we refunded. `reward_cancel` (orders.lifecycle) applies this table, the portal offers only the actions
it allows, and docs/architecture.md prints it (`policy_rows()` keeps the two in step).

The code column is derived from the reward, not stored:
  none         no code exists (not issued yet, or a choice link whose product is not chosen)
  choosing     a choice link whose product the recipient picked and whose code is being issued right now
  undisclosed  a code is stored and has never left the vault
  disclosed    the code has reached someone (see above)
  shipment     a physical gift: cancel only before fulfilment; a return is refunded when the partner reports it
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .models import DeliveryMethod, Reward, RewardStatus


class CodeState(StrEnum):
    NONE = "none"
    CHOOSING = "choosing"
    UNDISCLOSED = "undisclosed"
    DISCLOSED = "disclosed"
    SHIPMENT = "shipment"


class CancelAction(StrEnum):
    RELEASE = "release"  # the hold is still pending: release it (nothing was issued or paid)
    REFUND = "refund"  # paid, but no code exists: refund the captured amount
    VOID_THEN_REFUND = "void_then_refund"  # the supplier must confirm a void; only then refund
    REFUSE = "refuse"  # 409: see the rule's code and reason


@dataclass(frozen=True)
class CancelRule:
    action: CancelAction
    code: str = ""  # the problem code when refused (or when the void is refused, for VOID_THEN_REFUND)
    reason: str = ""
    retryable: bool = False


_RELEASE = CancelRule(CancelAction.RELEASE)
_REFUND = CancelRule(CancelAction.REFUND)
_VOID = CancelRule(CancelAction.VOID_THEN_REFUND, "not_voidable", "the supplier cannot void this code")
_VOID_DISCLOSED = CancelRule(
    CancelAction.VOID_THEN_REFUND, "reward_redeemed", "its code was disclosed and the supplier cannot void it"
)
_IN_FLIGHT = CancelRule(
    CancelAction.REFUSE, "not_cancelable", "it is being fulfilled right now; try again in a minute", retryable=True
)
_CHOOSING = CancelRule(
    CancelAction.REFUSE,
    "not_cancelable",
    "the recipient has chosen a product and its code is being issued; try again once it is",
    retryable=True,
)
_FINAL = CancelRule(CancelAction.REFUSE, "not_cancelable", "it is already final (failed, canceled or expired)")
_SHIPPED = CancelRule(
    CancelAction.REFUSE,
    "not_cancelable",
    "the gift is with the fulfilment partner; a return is refunded when the partner reports it",
)

_AFTER_ISSUE = {
    CodeState.NONE: _REFUND,
    CodeState.CHOOSING: _CHOOSING,  # a card may exist at the supplier a moment from now: never refund it blind
    CodeState.UNDISCLOSED: _VOID,
    CodeState.DISCLOSED: _VOID_DISCLOSED,
    CodeState.SHIPMENT: _SHIPPED,
}
_ANY = dict.fromkeys(CodeState)

# state -> code state -> rule. Every (state, code state) pair is here: tests walk the whole table.
CANCEL_POLICY: dict[str, dict[CodeState, CancelRule]] = {
    RewardStatus.AWAITING_APPROVAL: dict.fromkeys(_ANY, _RELEASE),  # a rejection or expiry cancels it this way
    RewardStatus.PENDING: dict.fromkeys(_ANY, _RELEASE),
    RewardStatus.SCHEDULED: dict.fromkeys(_ANY, _RELEASE),
    # A physical gift stays `processing` while the partner has it: that is not "try again in a minute".
    RewardStatus.PROCESSING: {**dict.fromkeys(_ANY, _IN_FLIGHT), CodeState.SHIPMENT: _SHIPPED},
    RewardStatus.DELIVERED: _AFTER_ISSUE,
    RewardStatus.DELIVERY_FAILED: _AFTER_ISSUE,
    RewardStatus.OPENED: _AFTER_ISSUE,
    RewardStatus.REDEEMED: _AFTER_ISSUE,
    RewardStatus.FAILED: dict.fromkeys(_ANY, _FINAL),
    RewardStatus.CANCELED: dict.fromkeys(_ANY, _FINAL),
    RewardStatus.EXPIRED: dict.fromkeys(_ANY, _FINAL),
}


def code_state(reward: Reward) -> CodeState:
    if reward.delivery_method == DeliveryMethod.SHIPMENT:
        return CodeState.SHIPMENT
    if reward.code_disclosed_at is not None:
        return CodeState.DISCLOSED
    if reward.code_encrypted:
        return CodeState.UNDISCLOSED
    if (reward.product_snapshot or {}).get("chosen_from") is not None:
        return CodeState.CHOOSING
    return CodeState.NONE


def cancel_rule(reward: Reward) -> CancelRule:
    return CANCEL_POLICY[reward.status][code_state(reward)]


def can_offer_cancel(reward: Reward) -> bool:
    """Whether the portal offers Cancel: anything but a sure refusal (a void may still be refused)."""
    return cancel_rule(reward).action != CancelAction.REFUSE


def policy_rows() -> list[tuple[str, str, str, str]]:
    """(state, code state, action, refusal code) for every cell: the table docs/architecture.md shows."""
    return [
        (status, state.value, rule.action.value, rule.code)
        for status, by_code in CANCEL_POLICY.items()
        for state, rule in by_code.items()
    ]
