"""Configuration: `PATRON_*` variables, CLI overrides, one-line errors, warnings on typos."""

from __future__ import annotations

import logging

import pytest

from plugin.settings import ConfigError, Settings, load_settings


class TestEnvironment:
    def test_nothing_set_gives_the_documented_defaults(self) -> None:
        settings = load_settings({})
        assert settings == Settings()
        assert settings.embedded
        assert settings.port == 8000
        assert settings.worker is True

    def test_every_kind_of_value_is_parsed(self) -> None:
        settings = load_settings(
            {
                "PATRON_DATABASE_URL": "postgresql://db/patron",
                "PATRON_REDIS_URL": "redis://cache:6379/1",
                "PATRON_ADMIN_TOKEN": "s3cret",
                "PATRON_PORT": "9001",
                "PATRON_WORKER": "false",
                "PATRON_LOG_FORMAT": "json",
                "PATRON_LOG_LEVEL": "debug",
                "PATRON_KEY_CACHE_SECONDS": "2.5",
                "PATRON_DELIVERY_RETRY_SCHEDULE": "30, 120,600",
            }
        )
        assert settings.database_url == "postgresql://db/patron"
        assert settings.redis_url == "redis://cache:6379/1"
        assert not settings.embedded
        assert settings.admin_token == "s3cret"
        assert settings.port == 9001
        assert settings.worker is False
        assert settings.log_format == "json"
        assert settings.log_level == "DEBUG"
        assert settings.key_cache_seconds == 2.5
        assert settings.delivery_retry_schedule == (30, 120, 600)

    def test_an_empty_variable_counts_as_unset(self) -> None:
        assert load_settings({"PATRON_ADMIN_TOKEN": "", "PATRON_PORT": ""}) == Settings()

    def test_other_variables_are_not_configuration(self) -> None:
        assert load_settings({"PATH": "/bin", "PORT": "1", "patron_port": "2"}) == Settings()


class TestOverrides:
    def test_cli_flags_win_over_the_environment(self) -> None:
        settings = load_settings(
            {"PATRON_PORT": "9001", "PATRON_DATA_DIR": "/env", "PATRON_WORKER": "true"},
            port=9002,
            data_dir="/flag",
            worker=False,
        )
        assert (settings.port, settings.data_dir, settings.worker) == (9002, "/flag", False)

    def test_flags_left_unset_keep_the_environment(self) -> None:
        settings = load_settings({"PATRON_PORT": "9001", "PATRON_HOST": "10.0.0.1"}, port=None, host=None)
        assert (settings.port, settings.host) == (9001, "10.0.0.1")


class TestInvalid:
    @pytest.mark.parametrize(
        ("environ", "variable"),
        [
            ({"PATRON_PORT": "eighty"}, "PATRON_PORT"),
            ({"PATRON_PORT": "0"}, "PATRON_PORT"),
            ({"PATRON_PORT": "65536"}, "PATRON_PORT"),
            ({"PATRON_WORKERS": "-1"}, "PATRON_WORKERS"),
            ({"PATRON_WORKER": "maybe"}, "PATRON_WORKER"),
            ({"PATRON_LOG_FORMAT": "xml"}, "PATRON_LOG_FORMAT"),
            ({"PATRON_LOG_LEVEL": "loud"}, "PATRON_LOG_LEVEL"),
            ({"PATRON_KEY_CACHE_SECONDS": "-1"}, "PATRON_KEY_CACHE_SECONDS"),
            ({"PATRON_DELIVERY_RETRY_SCHEDULE": "30,soon"}, "PATRON_DELIVERY_RETRY_SCHEDULE"),
            ({"PATRON_DELIVERY_RETRY_SCHEDULE": "30,-5"}, "PATRON_DELIVERY_RETRY_SCHEDULE"),
        ],
    )
    def test_a_bad_variable_fails_in_one_line_naming_it(self, environ: dict[str, str], variable: str) -> None:
        with pytest.raises(ConfigError) as raised:
            load_settings(environ | {"PATRON_HOST": "10.0.0.1"})
        message = str(raised.value)
        assert "\n" not in message
        assert f"invalid configuration {variable}:" in message
        assert "$." not in message

    def test_a_bad_flag_is_named_as_the_flag(self) -> None:
        with pytest.raises(ConfigError, match=r"^invalid configuration --port: Expected `int` >= 1$"):
            load_settings({"PATRON_PORT": "9001"}, port=0)

    def test_a_bad_variable_is_named_even_when_a_flag_overrides_another(self) -> None:
        with pytest.raises(ConfigError, match="PATRON_WORKERS"):
            load_settings({"PATRON_WORKERS": "many"}, port=9000)


class TestUnknownVariables:
    def test_a_typo_is_named_in_a_warning(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="plugin.settings"):
            settings = load_settings({"PATRON_DATABSE_URL": "postgresql://db/x"})
        assert settings.database_url is None
        assert [record.getMessage() for record in caplog.records] == [
            "unknown configuration variable PATRON_DATABSE_URL is ignored"
        ]

    def test_the_test_harness_variables_are_not_warned_about(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.WARNING, logger="plugin.settings"):
            load_settings({"PATRON_TEST_DATABASE_URL": "postgresql://db/x", "PATRON_PORT": "1"})
        assert caplog.records == []
