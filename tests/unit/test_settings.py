"""Settings from the environment: the sign-in limits."""

from __future__ import annotations

import pytest

from metacrm.platform.settings import Settings
from metacrm.platform.signin import SignInPolicy


def test_sign_in_limits_default_to_5_per_account_and_20_per_address_in_15_minutes() -> None:
    policy = SignInPolicy.from_settings(Settings.from_env({}))
    assert (policy.per_account.attempts, policy.per_account.window) == (5, 900)
    assert (policy.per_address.attempts, policy.per_address.window) == (20, 900)


def test_sign_in_limits_come_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "METACRM_SIGNIN_ACCOUNT_ATTEMPTS": "3",
            "METACRM_SIGNIN_ADDRESS_ATTEMPTS": "50",
            "METACRM_SIGNIN_WINDOW": "60",
        }
    )
    policy = SignInPolicy.from_settings(settings)
    assert (policy.per_account.attempts, policy.per_address.attempts) == (3, 50)
    assert policy.per_account.window == policy.per_address.window == 60


@pytest.mark.parametrize("value", ["0", "-1", "five", "1.5", "٣"])
@pytest.mark.parametrize(
    "name",
    ["METACRM_SIGNIN_ACCOUNT_ATTEMPTS", "METACRM_SIGNIN_ADDRESS_ATTEMPTS", "METACRM_SIGNIN_WINDOW"],
)
def test_a_sign_in_limit_that_is_not_a_whole_number_above_0_is_refused_by_name(
    name: str, value: str
) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})
